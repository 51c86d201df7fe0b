// Integration (F18): the gateway paces itself under Podium's request budget. Production
// uses 300 requests a minute (bursts of 30, then 5 a second); this worker is configured
// for 60 a minute (bursts of 6, then 1 a second) so the tests see the pacing in seconds.
// The sandbox enforces its own per-token limit (300/min) and answers 429 past it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PODIUM_VERSION, auPhone, envelope, inbound, outbound, page, gatewayForFile, testConfig, waitFor, workerTail,
} from '../support/gateway.mjs';

const PER_MINUTE = 60;
const BURST = 6; // the worker's bucket: per_minute / 10, clamped to 1..30

const gw = gatewayForFile({
  config: testConfig({ podium: { requests_per_minute: PER_MINUTE, timeout_ms: 3000 } }),
  sandboxArgs: ['--rate-limit-per-minute', '300'],
});

/** Create contacts at the sandbox directly, with a token of the test's own. */
async function seedContacts(phones) {
  const tokenRes = await fetch(`${gw.sandbox.url}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_id: 'sandbox-client', client_secret: 'sandbox-secret', grant_type: 'refresh_token', refresh_token: 'sandbox-refresh-token' }),
  });
  const { access_token: token } = await tokenRes.json();
  for (const p of phones) {
    const res = await fetch(`${gw.sandbox.url}/v4/contacts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'podium-version': PODIUM_VERSION },
      body: JSON.stringify({ name: 'Returning customer', phoneNumber: p.e164, locations: ['loc_sydney'] }),
    });
    assert.equal(res.status, 202);
  }
  return token;
}

/** Requests the gateway made (not the test's own seeding), by time. */
async function gatewayCalls(since) {
  const { requests } = await gw.sandbox.state();
  return requests
    .filter((r) => r.seq > since && (r.path.startsWith('/v4/') || r.path === '/oauth/token'))
    .sort((a, b) => a.at_ms - b.at_ms);
}

const lastSeq = async () => (await gw.sandbox.state()).requests.reduce((m, r) => Math.max(m, r.seq), 0);

/**
 * Token bucket: from request i to request j, at most BURST + elapsed × rate requests.
 * Slack: +1 request (the token refresh rides on the first slot) and +500 ms (a slot is
 * granted before its request reaches the sandbox, and the bucket starts before the first
 * request). Without pacing, all 16 requests land within ~30 ms.
 */
function assertPaced(calls) {
  const rate = PER_MINUTE / 60_000;
  for (let i = 0; i < calls.length; i++) {
    for (let j = i; j < calls.length; j++) {
      const count = j - i + 1;
      const allowed = BURST + 1 + (calls[j].at_ms - calls[i].at_ms + 500) * rate;
      assert.ok(count <= allowed, `${count} requests in ${calls[j].at_ms - calls[i].at_ms} ms (allowed ${allowed.toFixed(1)}): ${calls.map((c) => c.at_ms - calls[0].at_ms).join(', ')}`);
    }
  }
}

test('returning customers: a burst is paced (never more than burst + rate × time) and nothing is lost', { timeout: 120_000 }, async () => {
  const phones = Array.from({ length: 5 }, () => auPhone());
  await seedContacts(phones);
  const seq = await lastSeq();
  const answers = await Promise.all(phones.map((p, i) =>
    gw.send(envelope({ phone: p.national, text: `paced ${i}`, location: { page_url: page('/sydney/') } }))));
  assert.deepEqual(answers.map((r) => r.status), Array(5).fill(202), answers.map((r) => r.text).join('\n'));

  // Each phone: contact lookup, chat, confirmation = 15 requests (+ the token refresh):
  // 6 at once, then 1 a second → ~10 s.
  await waitFor(async () => {
    const { messages } = await gw.sandbox.state();
    return phones.every((p) => {
      const mine = messages.filter((m) => m.channel.identifier === p.e164);
      return inbound(mine).length === 1 && outbound(mine).length === 1;
    });
  }, { timeoutMs: 60_000, what: 'every chat and confirmation', describe: () => workerTail(gw) });

  const calls = await gatewayCalls(seq);
  assert.ok(calls.length >= 15, JSON.stringify(calls));
  assert.equal(calls.filter((r) => r.status === 429).length, 0, 'Podium never had to say 429');
  assertPaced(calls);
  const span = calls.at(-1).at_ms - calls[0].at_ms;
  assert.ok(span >= 5_000, `paced, not burst: 15+ requests in ${span} ms`);
});

test('new customers under a tight budget are paced too, not starved',
  {
    timeout: 120_000,
  },
  async () => {
    const phones = Array.from({ length: 4 }, () => auPhone());
    const seq = await lastSeq();
    const answers = await Promise.all(phones.map((p, i) =>
      gw.send(envelope({ phone: p.national, text: `new ${i}`, location: { page_url: page('/sydney/') } }))));
    assert.deepEqual(answers.map((r) => r.status), Array(4).fill(202), answers.map((r) => r.text).join('\n'));

    // Each phone: lookup (404), create, chat, confirmation = 16 requests: ~11 s when paced.
    const done = () => gw.sandbox.state().then(({ messages }) => phones.every((p) => {
      const mine = messages.filter((m) => m.channel.identifier === p.e164);
      return inbound(mine).length === 1 && outbound(mine).length === 1;
    }));
    try {
      await waitFor(done, { timeoutMs: 30_000, what: 'every chat and confirmation' });
    } catch (err) {
      const calls = await gatewayCalls(seq);
      const lookups = Object.fromEntries(phones.map((p) => [p.e164,
        calls.filter((c) => c.method === 'GET' && c.path === `/v4/contacts/${encodeURIComponent(p.e164)}`).length]));
      const pending = {};
      for (const p of phones) pending[p.e164] = (await gw.adminContact(p.e164)).body.outbox.length;
      assert.fail(`${err.message}\nlookups per phone (GET /v4/contacts/{phone}): ${JSON.stringify(lookups)}\njobs still queued per phone: ${JSON.stringify(pending)}\nrequests (ms since first): ${calls.map((c) => `${c.at_ms - calls[0].at_ms} ${c.method} ${c.path} ${c.status}`).join('; ')}`);
    }
    const calls = await gatewayCalls(seq);
    assert.equal(calls.filter((r) => r.status === 429).length, 0);
    assertPaced(calls);
  });
