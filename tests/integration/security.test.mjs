// Integration (issue 10): the public surface against scripts and retries, on the real
// worker and sandbox — automatic texts only for trusted browsers and allowed countries,
// one per phone per window; Turnstile with Cloudflare's test secrets; opt-out precedence by
// channel in every order; message idempotency keys; bounded body reads on every route;
// no configuration details in 401s; alerts with masked phones.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import {
  ADMIN_TOKEN, assertErrorShape, auPhone, envelope, gatewayForFile, inbound, makeClient, outbound, page, sleep,
  startWorker, testConfig, waitFor, waitForEmptyOutbox, waitForInbound, workerEvents,
} from '../support/gateway.mjs';
import * as hooks from '../support/webhooks.mjs';

const gw = gatewayForFile({
  vars: hooks.secretVars(),
  config: (sandbox) => ({
    ...testConfig(),
    auto_texts: { ...testConfig().auto_texts, per_phone_window_ms: 60_000 },
    webhooks: { alert_url: `${sandbox.url}/_sandbox/alerts` },
  }),
});

/** Sent from a real page on the shop, by default; `script: true` sends no Origin. */
const send = (env, { script = false, headers = {} } = {}) => gw.send(env, { headers: { ...(script ? { origin: undefined } : {}), ...headers } });
const sydney = (phone, text = 'hello', over = {}) => envelope({ phone, text, location: { page_url: page('/sydney/') }, ...over });
const settled = async (phone) => { await waitForEmptyOutbox(gw, phone); await sleep(300); return gw.sandbox.messages(phone); };

describe('automatic texts: only for trusted browsers, allowed countries, once per window', () => {
  test('a script (no Origin) is served — the chat reaches the inbox — but never triggers a text', async () => {
    const phone = auPhone();
    const res = await send(sydney(phone.national), { script: true });
    assert.equal(res.status, 202, res.text);
    assert.equal(res.body.confirmation_text, false);
    const msgs = await settled(phone.e164);
    assert.equal(inbound(msgs).length, 1);
    assert.equal(outbound(msgs).length, 0);
  });

  test('a number from a country the store does not text gets no text (still forwarded); the store\'s own country does', async () => {
    const uk = '+447400123456';
    const res = await send(sydney(uk));
    assert.equal(res.status, 202, res.text);
    assert.equal(res.body.confirmation_text, false);
    const ukMsgs = await settled(uk);
    assert.equal(inbound(ukMsgs).length, 1, 'the agent still gets the chat');
    assert.equal(outbound(ukMsgs).length, 0);
    const au = auPhone();
    const ok = await send(sydney(au.national));
    assert.equal(ok.body.confirmation_text, true, ok.text);
    assert.equal(outbound(await settled(au.e164)).length, 1);
  });

  test('one automatic text per phone per window, decided in the phone\'s object: 10 concurrent new sessions → one text', async () => {
    const phone = auPhone();
    const answers = await Promise.all(Array.from({ length: 10 }, () => send(sydney(phone.national))));
    assert.ok(answers.every((r) => r.status === 202), JSON.stringify(answers.map((r) => r.status)));
    assert.equal(answers.filter((r) => r.body.confirmation_text).length, 1);
    const msgs = await settled(phone.e164);
    assert.equal(inbound(msgs).length, 10);
    assert.equal(outbound(msgs).length, 1);
  });
});

describe('opt-out precedence by channel (F6)', () => {
  const smsStop = (phone, body = 'STOP', timestampMs = Date.now()) => hooks.deliver(gw, 'podium', hooks.podium('message.received', { body, createdAt: new Date(timestampMs).toISOString(), conversation: { channel: { type: 'phone', identifier: phone } } }, { timestampMs }));
  const optedOut = async (phone) => (await gw.adminContact(phone)).body.opt_out;

  test('STOP by SMS, then START typed in the webchat → still opted out, the customer is told to text START; SMS START lifts it', async () => {
    const phone = auPhone();
    assert.equal((await smsStop(phone.e164)).status, 200);
    await waitFor(async () => (await optedOut(phone.e164)).opted_out, { what: 'the SMS STOP applied' });
    const start = await send(sydney(phone.national, 'START'));
    assert.equal(start.body.opt_out, 'still_opted_out', start.text);
    assert.match(start.body.opt_out_message, /text START/);
    const view = await optedOut(phone.e164);
    assert.equal(view.opted_out, true);
    assert.equal(view.governed_by, 'sms');
    const channels = Object.fromEntries(view.channels.map((c) => [c.channel, c]));
    assert.equal(channels.sms.holds_opt_out, true);
    assert.equal(channels.sms.verified, true);
    assert.equal(channels.webchat.verified, false);
    assert.equal(channels.webchat.latest.opted_out, false, 'the webchat START is recorded, not obeyed');
    // A chat now: delivered, no text.
    await send(sydney(phone.national, 'hello?'));
    assert.equal(outbound(await settled(phone.e164)).length, 0);
    // START texted from the phone lifts it.
    await smsStop(phone.e164, 'START');
    await waitFor(async () => !(await optedOut(phone.e164)).opted_out, { what: 'the SMS START applied' });
  });

  test('a webchat START arriving before an older-dated verified STOP (a delayed webhook) does not win', async () => {
    const phone = auPhone();
    await send(sydney(phone.national, 'STOP'));
    const start = await send(sydney(phone.national, 'START'));
    assert.equal(start.body.opt_out, 'opted_in', 'a webchat START lifts a webchat STOP');
    // Podium's contact.updated says the phone opted out a minute ago (before that START).
    const older = Date.now() - 60_000;
    const res = await hooks.deliver(gw, 'podium', hooks.podium('contact.updated', {
      channels: [{ type: 'phone', identifier: phone.e164, transactionalOptedOutAt: new Date(older).toISOString() }],
    }));
    assert.equal(res.status, 200, res.text);
    const view = await waitFor(async () => { const v = await optedOut(phone.e164); return v.opted_out ? v : null; }, { what: 'Podium\'s opt-out' });
    assert.equal(view.governed_by, 'podium');
    const again = await send(sydney(phone.national, 'START'));
    assert.equal(again.body.opt_out, 'still_opted_out', 'an unverified opt-in cannot override it');
  });

  test('a webchat STOP opts out at once, whatever the other channels said', async () => {
    const phone = auPhone();
    await smsStop(phone.e164, 'START');
    const stop = await send(sydney(phone.national, 'STOP'));
    assert.equal(stop.body.opt_out, 'opted_out');
    assert.equal((await optedOut(phone.e164)).opted_out, true);
  });
});

describe('message idempotency keys', () => {
  test('a resend with the same Idempotency-Key → the first answer, queued once; concurrent copies too', async () => {
    const phone = auPhone();
    const env = sydney(phone.national, `once ${randomUUID()}`);
    const key = randomUUID();
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => send(env, { headers: { 'idempotency-key': key } })));
    for (const r of [a, b, c]) assert.equal(r.status, 202, r.text);
    const ids = new Set([a, b, c].map((r) => r.body.message_id));
    assert.equal(ids.size, 1, 'one message id');
    assert.equal([a, b, c].filter((r) => r.body.duplicate).length, 2);
    const later = await send(env, { headers: { 'idempotency-key': key } });
    assert.equal(later.body.message_id, a.body.message_id);
    assert.equal(later.body.duplicate, true);
    const msgs = await settled(phone.e164);
    assert.equal(inbound(msgs).length, 1, 'queued once');
    assert.equal(outbound(msgs).length, 1, 'one confirmation');
    // A new key is a new message.
    await send(env, { headers: { 'idempotency-key': randomUUID() } });
    await waitForInbound(gw, phone.e164, { count: 2 });
    const bad = await send(env, { headers: { 'idempotency-key': 'x'.repeat(201) } });
    assertErrorShape(assert, bad, 400, 'invalid_idempotency_key');
  });
});

/**
 * POST up to `total` bytes chunked (no Content-Length) to `path`, honouring backpressure,
 * until the worker has decided (its request log line for the path appears) or answered.
 * Under wrangler dev the local proxy may hold the worker's early answer until the upload
 * ends, so the worker's own log line is the decision; the upload then stops. Resolves
 * `{line, sent}`.
 */
function chunked(path, total, headers = {}) {
  const lines = () => workerEvents(gw).filter((e) => e.path === path && e.method === 'POST' && e.status);
  const seen = lines().length;
  return new Promise((resolve, reject) => {
    const state = { sent: 0, done: false };
    const req = http.request({ host: '127.0.0.1', port: gw.worker.port, method: 'POST', path, headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked', ...headers } });
    const finish = (line) => {
      if (state.done) return;
      state.done = true;
      clearInterval(poll);
      req.destroy();
      resolve({ line, sent: state.sent });
    };
    const poll = setInterval(() => { const line = lines()[seen]; if (line) finish(line); }, 100);
    setTimeout(() => finish(null), 120_000);
    req.on('response', (res) => { res.resume(); res.on('end', () => setTimeout(() => finish(lines()[seen] ?? { status: res.statusCode }), 200)); });
    req.on('error', () => setTimeout(() => finish(lines()[seen] ?? null), 500));
    const chunk = Buffer.alloc(256 * 1024, 0x61);
    (async () => {
      while (!state.done && state.sent < total && !req.destroyed) {
        state.sent += chunk.length;
        if (!req.write(chunk)) await new Promise((r) => { req.once('drain', r); req.once('close', r); });
      }
      if (!state.done && !req.destroyed) req.end();
    })().catch(reject);
  });
}

/** Resident memory of the worker's workerd processes, in MB. */
function workerdRssMb() {
  let total = 0;
  for (const pid of gw.worker.processes()) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'workerd') continue;
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      total += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
    } catch { /* gone */ }
  }
  return total;
}

describe('bounded reads (F17)', () => {
  test('50 MB chunked to every route that reads a body → 413, the worker stays up, memory does not spike', { timeout: 240_000 }, async () => {
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const routes = [
      ['/v1/webchat/messages', {}],
      ['/v1/webchat/validate', {}],
      ['/chat', {}],
      ['/chat/sessions/s1/contact', {}],
      ['/v1/webchat/attachments', { 'content-type': 'image/png', 'x-filename': 'big.png' }],
      ['/webhooks/podium', {}],
      ['/webhooks/chatwoot', {}],
      ['/admin/routing/reroute', admin],
      ['/admin/webhooks/replay', admin],
    ];
    const before = workerdRssMb();
    let peak = before;
    const sampler = setInterval(() => { peak = Math.max(peak, workerdRssMb()); }, 100);
    try {
      for (const [path, headers] of routes) {
        const { line, sent } = await chunked(path, 50 * 1024 * 1024, headers);
        assert.ok(line, `${path}: no decision logged`);
        assert.equal(line.status, 413, `${path}: ${JSON.stringify(line)}`);
        assert.match(line.code, /too_large/, path);
        assert.ok(sent < 50 * 1024 * 1024, `${path}: the upload stopped once the worker decided (${sent} bytes sent)`);
        // A GET takes the hit of the proxy's broken connection (it retries GETs).
        const health = await gw.request('GET', '/health');
        assert.equal(health.status, 200, `the worker is up after ${path}`);
      }
    } finally {
      clearInterval(sampler);
    }
    if (before > 0) {
      // Each body is cut off at its route's limit (64 KiB; 25 MB for files), never read whole.
      assert.ok(peak - before < 120, `workerd RSS grew ${Math.round(peak - before)} MB (from ${Math.round(before)} MB)`);
    }
    const ok = await send(sydney(auPhone().national));
    assert.equal(ok.status, 202, 'and still takes messages');
  });
});

describe('secrets and logs', () => {
  test('a 401 for an unconfigured webhook says nothing about the configuration (the log does)', async () => {
    const res = await hooks.deliver(gw, 'standard/unknown-source', hooks.standard({ type: 'x' }));
    const error = assertErrorShape(assert, res, 401, 'signature_not_configured');
    assert.doesNotMatch(error.message, /WEBHOOK_SECRETS|secret|configured for/i);
    assert.equal(error.field, null);
    // The worker's log line reaches wrangler's output a moment after the answer.
    await waitFor(() => /WEBHOOK_SECRETS_STANDARD_UNKNOWN_SOURCE/.test(gw.worker.log()), { what: 'the log line naming the missing secret' });
  });

  test('a review alert carries the phone masked', async () => {
    const phone = '+61412987654';
    const res = await hooks.deliver(gw, 'podium', hooks.podium('review.created', { uid: `rev_${randomUUID()}`, rating: 1, locationUid: 'loc_sydney', reviewSite: 'google', phoneNumber: phone }));
    assert.equal(res.status, 200, res.text);
    const alert = await waitFor(async () => (await gw.sandbox.state()).alerts.find((a) => a.body?.review?.rating === 1), { what: 'the alert' });
    assert.ok(!JSON.stringify(alert).includes('412987654'), JSON.stringify(alert));
  });
});

describe('Turnstile (Cloudflare\'s test secrets, siteverify answered by the sandbox)', () => {
  let pass;
  let spent;
  before(async () => {
    const vars = (secret) => ({ TURNSTILE_SECRET_KEY: secret, TURNSTILE_SITEVERIFY_URL: `${gw.sandbox.url}/turnstile/v0/siteverify` });
    pass = await startWorker({ sandbox: gw.sandbox, config: gw.config, vars: vars('1x0000000000000000000000000000000AA') });
    spent = await startWorker({ sandbox: gw.sandbox, config: gw.config, vars: vars('3x0000000000000000000000000000000AA') });
  }, { timeout: 240_000 });
  after(async () => {
    await pass?.stop();
    await spent?.stop();
  });

  test('configured: a message without a token → 403 turnstile_required; with a valid one → accepted and trusted', async () => {
    const client = makeClient(pass.url);
    const phone = auPhone();
    const without = await client.send(sydney(phone.national));
    assertErrorShape(assert, without, 403, 'turnstile_required');
    const script = await client.send(sydney(phone.national), { headers: { origin: undefined } });
    assertErrorShape(assert, script, 403, 'turnstile_required');
    const before = (await gw.sandbox.state()).turnstile.length;
    const ok = await client.send(sydney(phone.national), { headers: { 'cf-turnstile-response': 'XXXX.DUMMY.TOKEN.XXXX' } });
    assert.equal(ok.status, 202, ok.text);
    assert.equal(ok.body.confirmation_text, true);
    const calls = (await gw.sandbox.state()).turnstile.slice(before);
    assert.equal(calls.length, 1);
    assert.equal(calls[0].secret_kind, 'always_pass');
    assert.equal(calls[0].has_idempotency_key, true);
    // /chat's widgets cannot carry a token: served, but never trusted for a text.
    const chat = await client.chat({ prompt: 'hi', session_id: randomUUID(), phone: auPhone().national });
    assert.equal(chat.status, 200, chat.text);
  });

  test('a spent (or failing) token → 403 turnstile_failed, nothing queued', async () => {
    const client = makeClient(spent.url);
    const phone = auPhone();
    const res = await client.send(sydney(phone.national), { headers: { 'cf-turnstile-response': 'XXXX.DUMMY.TOKEN.XXXX' } });
    assertErrorShape(assert, res, 403, 'turnstile_failed');
    await sleep(500);
    assert.equal(inbound(await gw.sandbox.messages(phone.e164)).length, 0);
  });
});
