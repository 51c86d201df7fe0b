// Integration (F10, F13–F15, F6, F19): the signed webhook ingress end to end — every
// scheme's signature rules against deliveries signed by an independent implementation
// (node:crypto, tests/support/webhooks.mjs), dedup under concurrency and provider
// retries, what the events do (opt-outs racing a chat, reviews to the alert and
// thank-you hooks, Chatwoot into the webchat pipeline), the failure path (retries, dead
// letter, replay), the counters, and the acknowledgement's latency budget.
//
// One gateway for the file. The alert hook is a tiny proxy in this process in front of
// the sandbox's `/_sandbox/alerts` (the sandbox injects no faults on its control routes),
// so a test can make the merchant's alert endpoint answer 500 and then heal it. The
// tests run one after the other (node:test's default inside a file): counters are
// compared before/after each test, and each test waits until the events it caused have
// been processed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import {
  assertErrorShape, auPhone, envelope, gatewayForFile, inbound, outbound, page, sleep, testConfig,
  waitFor, waitForEmptyOutbox, waitForInbound, workerTail,
} from '../support/gateway.mjs';
import * as hooks from '../support/webhooks.mjs';
import { SECRETS, deliver, secretVars } from '../support/webhooks.mjs';

// ---- the merchant's alert endpoint: healthy (forwards to the sandbox) or failing (500) ----

const alertHook = { failing: false, hits: [], port: 0 };
const alertServer = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const body = Buffer.concat(chunks);
  alertHook.hits.push({ at_ms: Date.now(), failing: alertHook.failing, body: body.toString() });
  if (alertHook.failing) {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end('alert endpoint down (test)');
    return;
  }
  try {
    const r = await fetch(`${gw.sandbox.url}/_sandbox/alerts`, {
      method: 'POST', headers: { 'content-type': req.headers['content-type'] ?? 'application/json' }, body,
    });
    res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'text/plain' });
    res.end(await r.text());
  } catch (err) {
    res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(String(err));
  }
});

// Registered before gatewayForFile's hook, so the port is known when the config is built.
before(async () => {
  await new Promise((resolve) => alertServer.listen(0, '127.0.0.1', resolve));
  alertHook.port = alertServer.address().port;
});
after(() => new Promise((resolve) => alertServer.close(resolve)));

// Every provider route gets a rotated second secret (Podium and Standard have theirs in
// secretVars(); Shopify, Stripe and Chatwoot get one here).
const ROTATED = {
  podium: 'old-podium-secret',
  shopify: 'old-shopify-secret',
  stripe: 'whsec_old_stripe_secret',
  chatwoot: 'old-chatwoot-secret',
  standard: `whsec_${Buffer.from('rotated-crm-key').toString('base64')}`,
};

const MAX_BODY = 16_384;
const MAX_ATTEMPTS = 3;
const CHATWOOT_RETENTION_MS = 3000;

const gw = gatewayForFile({
  config: (sb) => testConfig({
    retry: { base_ms: 100, max_delay_ms: 300, max_attempts: 6, rate_limited_min_ms: 1000, max_retry_after_ms: 5000 },
    webhooks: {
      alert_url: `http://127.0.0.1:${alertHook.port}/alerts`,
      thank_you_url: `${sb.url}/_sandbox/hooks/thank-you`,
      shards: 4,
      process_delay_ms: 0,
      max_attempts: MAX_ATTEMPTS,
      shopify_max_age_ms: 60_000,
      max_body_bytes: MAX_BODY,
      // Chatwoot keys expire after 3 s here, so a test can watch a key being forgotten.
      retention: { chatwoot_ms: CHATWOOT_RETENTION_MS },
      allow_short_retention: true,
    },
  }),
  vars: {
    ...secretVars(),
    WEBHOOK_SECRETS_SHOPIFY: `${SECRETS.shopify},${ROTATED.shopify}`,
    WEBHOOK_SECRETS_STRIPE: `${SECRETS.stripe} ${ROTATED.stripe}`,
    WEBHOOK_SECRETS_CHATWOOT: `${SECRETS.chatwoot},${ROTATED.chatwoot}`,
  },
});

// ---- helpers ----

/** `/admin/metrics` → `.webhooks`. */
async function metrics() {
  const res = await gw.admin('GET', '/admin/metrics');
  assert.equal(res.status, 200, res.text);
  return res.body;
}
const hookMetrics = async () => (await metrics()).webhooks;

/** Per-counter difference of one scheme's counters (rejected_by_reason flattened). */
function delta(after, before, scheme) {
  const a = after[scheme];
  const b = before[scheme];
  const out = {};
  for (const k of ['received', 'verified', 'duplicate', 'rejected', 'processed', 'retried', 'failed', 'ignored']) {
    out[k] = a[k] - b[k];
  }
  out.rejected_by_reason = {};
  for (const [reason, n] of Object.entries(a.rejected_by_reason)) {
    const d = n - (b.rejected_by_reason[reason] ?? 0);
    if (d) out.rejected_by_reason[reason] = d;
  }
  return out;
}

/** Wait until no stored event is waiting to be processed (every shard idle). */
async function settle(what = 'every webhook event processed') {
  return waitFor(async () => {
    const m = await hookMetrics();
    return !m.stored?.pending ? m : null;
  }, { timeoutMs: 30_000, what, describe: () => workerTail(gw) });
}

async function sandboxCall(method, p, body) {
  const res = await fetch(gw.sandbox.url + p, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, text };
}

/** POST with node:http, which sends header names exactly as written (fetch lower-cases). */
function rawPost(url, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { ...headers, 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let parsed = null;
        try { parsed = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, body: parsed, text, rawHeaderNames: req.getRawHeaderNames() });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A header name in alternating case: `PoDiUm-SiGnAtUrE`. */
const oddCase = (name) => [...name].map((c, i) => (i % 2 ? c.toLowerCase() : c.toUpperCase())).join('');

function withHeader(signed, name, value) {
  const headers = { ...signed.headers };
  if (value === undefined) delete headers[name];
  else headers[name] = value;
  return { body: signed.body, headers };
}

function assertAccepted(res, extra = '') {
  assert.equal(res.status, 200, `${res.text}${extra}`);
  assert.equal(res.body.ok, true, res.text);
  assert.equal(res.body.duplicate, false, res.text);
  return res.body;
}

const sec = (ms) => Math.floor(ms / 1000);
const SIX_MINUTES = 6 * 60_000;
const usPhone = () => `+1415555${String(Math.floor(Math.random() * 10_000)).padStart(4, '0')}`;

/** Alerts (Slack bodies) and hooks the sandbox received about the review `uid`. */
async function reviewEffects(uid) {
  const { alerts, hooks: received } = await gw.sandbox.state();
  return {
    alerts: alerts.filter((a) => a.body?.review?.uid === uid),
    thankYous: received.filter((h) => h.name === 'thank-you' && h.body?.review?.uid === uid),
  };
}

const review = (uid, rating, extra = {}) => hooks.podium('review.created', {
  uid, rating, locationUid: 'loc_sydney', reviewSite: 'Google', authorName: 'Pat Example', ...extra,
});

// ---- the five schemes: one table, the same cases for each ----

/**
 * For each scheme: its route, a signer of an event with no side effects (so these tests
 * only exercise verification and the acknowledgement), and how to make a stale, a
 * future, a wrong-secret and a rotated-secret delivery.
 */
const SCHEMES = {
  podium: {
    route: 'podium',
    signatureHeader: 'podium-signature',
    malformed: 'not-a-signature',
    sign: (o = {}) => hooks.podium('conversation.assigned', { uid: randomUUID(), note: 'original' }, o),
    stale: () => ({ timestampMs: Date.now() - SIX_MINUTES }),
    future: () => ({ timestampMs: Date.now() + SIX_MINUTES }),
    wrongSecret: { secret: 'not-the-podium-secret' },
    rotated: { secret: ROTATED.podium },
  },
  shopify: {
    route: 'shopify',
    signatureHeader: 'x-shopify-hmac-sha256',
    malformed: 'not base64 at all',
    sign: (o = {}) => hooks.shopify('orders/create', { id: Math.floor(Math.random() * 1e12), note: 'original' }, o),
    // shopify_max_age_ms is 60 s in this file's config.
    stale: () => ({ triggeredAt: new Date(Date.now() - 120_000) }),
    future: () => ({ triggeredAt: new Date(Date.now() + SIX_MINUTES) }),
    wrongSecret: { secret: 'not-the-shopify-secret' },
    rotated: { secret: ROTATED.shopify },
  },
  stripe: {
    route: 'stripe',
    signatureHeader: 'stripe-signature',
    malformed: 'garbage',
    sign: (o = {}) => hooks.stripe({ id: `evt_${randomUUID()}`, type: 'payment_intent.created', note: 'original', data: { object: {} } }, o),
    stale: () => ({ t: sec(Date.now() - SIX_MINUTES) }),
    future: () => ({ t: sec(Date.now() + SIX_MINUTES) }),
    wrongSecret: { secret: 'whsec_not_the_stripe_secret' },
    rotated: { secret: ROTATED.stripe },
  },
  chatwoot: {
    route: 'chatwoot',
    signatureHeader: 'x-chatwoot-signature',
    malformed: 'md5=0123456789abcdef',
    sign: (o = {}) => hooks.chatwoot({ event: 'conversation_created', id: Math.floor(Math.random() * 1e9), note: 'original', conversation: { id: 1 } }, o),
    stale: () => ({ ts: sec(Date.now() - SIX_MINUTES) }),
    future: () => ({ ts: sec(Date.now() + SIX_MINUTES) }),
    wrongSecret: { secret: 'not-the-chatwoot-secret' },
    rotated: { secret: ROTATED.chatwoot },
  },
  standard: {
    route: 'standard/crm',
    signatureHeader: 'webhook-signature',
    malformed: 'v2,abc',
    sign: (o = {}) => hooks.standard({ type: 'contact.updated', data: { id: randomUUID() }, note: 'original' }, o),
    stale: () => ({ ts: sec(Date.now() - SIX_MINUTES) }),
    future: () => ({ ts: sec(Date.now() + SIX_MINUTES) }),
    wrongSecret: { secret: `whsec_${Buffer.from('not-the-crm-key').toString('base64')}` },
    rotated: { secret: ROTATED.standard },
  },
};

for (const [name, s] of Object.entries(SCHEMES)) {
  describe(`${name} signatures`, () => {
    test('valid → 200 {ok, duplicate:false} with the event type and action', async () => {
      const body = assertAccepted(await deliver(gw, s.route, s.sign()), workerTail(gw));
      assert.equal(body.action, 'ignore', 'these test events have nothing to do');
      assert.equal(body.state, 'done', 'an ignored event is done at once');
      assert.equal(typeof body.event_type, 'string');
    });

    test('tampered body (same headers) → 401 signature_mismatch', async () => {
      const signed = s.sign();
      const tampered = { ...signed, body: signed.body.replace('"original"', '"tampered"') };
      assert.notEqual(tampered.body, signed.body);
      assertErrorShape(assert, await deliver(gw, s.route, tampered), 401, 'signature_mismatch');
    });

    test('stale timestamp → 401 signature_timestamp_too_old', async () => {
      assertErrorShape(assert, await deliver(gw, s.route, s.sign(s.stale())), 401, 'signature_timestamp_too_old');
    });

    test('timestamp beyond the tolerance in the future → 401 signature_timestamp_in_future', async () => {
      assertErrorShape(assert, await deliver(gw, s.route, s.sign(s.future())), 401, 'signature_timestamp_in_future');
    });

    test('wrong secret → 401 signature_mismatch', async () => {
      assertErrorShape(assert, await deliver(gw, s.route, s.sign(s.wrongSecret)), 401, 'signature_mismatch');
    });

    test('the rotated (second configured) secret → 200', async () => {
      assertAccepted(await deliver(gw, s.route, s.sign(s.rotated)));
    });

    test('missing signature header → 401 signature_header_missing naming it', async () => {
      const error = assertErrorShape(assert, await deliver(gw, s.route, withHeader(s.sign(), s.signatureHeader)), 401, 'signature_header_missing');
      assert.equal(error.field?.toLowerCase(), s.signatureHeader);
    });

    test('malformed signature header → 401 signature_header_malformed naming it', async () => {
      const error = assertErrorShape(assert, await deliver(gw, s.route, withHeader(s.sign(), s.signatureHeader, s.malformed)), 401, 'signature_header_malformed');
      assert.equal(error.field?.toLowerCase(), s.signatureHeader);
    });

    test('header names in odd case (sent verbatim) → 200', async () => {
      const signed = s.sign();
      const headers = Object.fromEntries(Object.entries(signed.headers).map(([k, v]) => [oddCase(k), v]));
      const res = await rawPost(`${gw.url}/webhooks/${s.route}`, headers, signed.body);
      assert.ok(res.rawHeaderNames.includes(oddCase(s.signatureHeader)), `sent as ${res.rawHeaderNames}`);
      assertAccepted(res);
    });
  });
}

describe('scheme specifics', () => {
  test('Podium: base64 signature accepted (ours and the sandbox emitter\'s)', async () => {
    assertAccepted(await deliver(gw, 'podium', SCHEMES.podium.sign({ encoding: 'base64' })));
    const put = await sandboxCall('PUT', '/_sandbox/webhooks', { url: `${gw.url}/webhooks/podium`, secret: SECRETS.podium });
    assert.equal(put.status, 200, put.text);
    for (const encoding of ['hex', 'base64']) {
      const emitted = await sandboxCall('POST', '/_sandbox/webhooks/emit', {
        event_type: 'conversation.assigned', data: { uid: randomUUID() }, signature_encoding: encoding,
      });
      assert.equal(emitted.status, 200, emitted.text);
      assert.equal(emitted.body.status, 200, `${encoding}: ${JSON.stringify(emitted.body)}`);
      assert.equal(emitted.body.body.duplicate, false);
    }
    const wrong = await sandboxCall('POST', '/_sandbox/webhooks/emit', {
      event_type: 'conversation.assigned', data: { uid: randomUUID() }, secret: 'someone-else',
    });
    assert.equal(wrong.body.status, 401, JSON.stringify(wrong.body));
    assert.equal(wrong.body.body.error.code, 'signature_mismatch');
  });

  test('Podium: missing / malformed podium-timestamp → header_missing / header_malformed', async () => {
    const signed = SCHEMES.podium.sign();
    let error = assertErrorShape(assert, await deliver(gw, 'podium', withHeader(signed, 'podium-timestamp')), 401, 'signature_header_missing');
    assert.equal(error.field, 'podium-timestamp');
    error = assertErrorShape(assert, await deliver(gw, 'podium', withHeader(signed, 'podium-timestamp', 'yesterday')), 401, 'signature_header_malformed');
    assert.equal(error.field, 'podium-timestamp');
  });

  test('Shopify: stale with the default 48 h bound would pass; 3 days old does not (here bound = 60 s)', async () => {
    const old = SCHEMES.shopify.sign({ triggeredAt: new Date(Date.now() - 3 * 24 * 3_600_000) });
    assertErrorShape(assert, await deliver(gw, 'shopify', old), 401, 'signature_timestamp_too_old');
    const fresh = SCHEMES.shopify.sign({ triggeredAt: new Date(Date.now() - 30_000) });
    assertAccepted(await deliver(gw, 'shopify', fresh));
  });

  test('Stripe: several v1 signatures, one of them good → 200', async () => {
    const signed = SCHEMES.stripe.sign({ extraV1: ['0'.repeat(64), 'f'.repeat(64)] });
    assertAccepted(await deliver(gw, 'stripe', signed));
  });

  test('Standard: missing webhook-id / malformed webhook-timestamp', async () => {
    const signed = SCHEMES.standard.sign();
    let error = assertErrorShape(assert, await deliver(gw, 'standard/crm', withHeader(signed, 'webhook-id')), 401, 'signature_header_missing');
    assert.equal(error.field, 'webhook-id');
    error = assertErrorShape(assert, await deliver(gw, 'standard/crm', withHeader(signed, 'webhook-timestamp', '12.5')), 401, 'signature_header_malformed');
    assert.equal(error.field, 'webhook-timestamp');
  });

  test('a Standard source nobody configured → 401 signature_not_configured (fail closed), whatever is sent', async () => {
    const unsigned = { body: '{}', headers: { 'content-type': 'application/json' } };
    assertErrorShape(assert, await deliver(gw, 'standard/unconfigured', unsigned), 401, 'signature_not_configured');
    // Even a delivery signed with a key that is configured for another source.
    assertErrorShape(assert, await deliver(gw, 'standard/unconfigured', SCHEMES.standard.sign()), 401, 'signature_not_configured');
    assertErrorShape(assert, await deliver(gw, 'standard/other-crm', SCHEMES.standard.sign()), 401, 'signature_not_configured');
  });
});

describe('the request around the signature', () => {
  test(`body larger than max_body_bytes (${MAX_BODY}) → 413 body_too_large`, async () => {
    const signed = hooks.podium('conversation.assigned', { uid: randomUUID(), padding: 'x'.repeat(MAX_BODY) });
    assert.ok(signed.body.length > MAX_BODY);
    assertErrorShape(assert, await deliver(gw, 'podium', signed), 413, 'body_too_large');
    // Just under the limit is fine.
    const fits = hooks.podium('conversation.assigned', { uid: randomUUID(), padding: 'x'.repeat(MAX_BODY - 200) });
    assert.ok(fits.body.length <= MAX_BODY);
    assertAccepted(await deliver(gw, 'podium', fits));
  });

  test('wrong content type → 415', async () => {
    const signed = SCHEMES.podium.sign();
    const res = await deliver(gw, 'podium', withHeader(signed, 'content-type', 'text/plain'));
    assertErrorShape(assert, res, 415, 'unsupported_media_type');
    const form = await deliver(gw, 'stripe', withHeader(SCHEMES.stripe.sign(), 'content-type', 'application/x-www-form-urlencoded'));
    assertErrorShape(assert, form, 415, 'unsupported_media_type');
  });

  test('a signed body that is not JSON → 400 invalid_json', async () => {
    const ts = Date.now();
    const body = 'not json {';
    const { createHmac } = await import('node:crypto');
    const signature = createHmac('sha256', SECRETS.podium).update(`${ts}.${body}`).digest('hex');
    const res = await deliver(gw, 'podium', { body, headers: { 'content-type': 'application/json', 'podium-timestamp': String(ts), 'podium-signature': signature } });
    assertErrorShape(assert, res, 400, 'invalid_json');
  });

  test('unknown routes → 404: /webhooks/nope, /webhooks/standard, bad Standard source names', async () => {
    const signed = SCHEMES.standard.sign();
    for (const route of ['nope', 'standard', 'podium/extra', 'standard/Bad', 'standard/-x', 'standard/a.b', `standard/${'a'.repeat(33)}`]) {
      assertErrorShape(assert, await deliver(gw, route, signed), 404, 'not_found');
    }
  });

  test('refusals on made-up routes do not each create a counter (bounded metrics)', async () => {
    const marker = randomUUID();
    const unknown = async () => (await metrics()).counters?.['webhook:unknown:rejected:not_found'] ?? 0;
    const before = await unknown();
    for (let i = 0; i < 3; i++) {
      const res = await deliver(gw, `nope-${marker}-${i}`, SCHEMES.podium.sign());
      assert.equal(res.status, 404);
    }
    // Counted off the response path: all three land in the one `unknown` counter.
    await waitFor(async () => (await unknown()) - before >= 3, { what: 'three refusals counted under unknown' });
    const { counters } = await metrics();
    const leaked = Object.keys(counters ?? {}).filter((k) => k.includes(marker));
    assert.deepEqual(leaked, [], 'no counter named after an arbitrary path');
  });
});

// ---- dedup ----

describe('dedup', () => {
  test('100 concurrent copies of one Podium delivery → one new, 99 duplicates, processed once (one alert)', async () => {
    await settle();
    const before = await hookMetrics();
    const uid = `rev_${randomUUID()}`;
    const signed = review(uid, 1);
    const answers = await Promise.all(Array.from({ length: 100 }, () => deliver(gw, 'podium', signed)));
    assert.deepEqual(answers.map((r) => r.status), Array(100).fill(200), answers.filter((r) => r.status !== 200).map((r) => r.text).join('\n'));
    const fresh = answers.filter((r) => r.body.duplicate === false);
    assert.equal(fresh.length, 1, 'exactly one duplicate:false');
    assert.equal(answers.filter((r) => r.body.duplicate === true).length, 99, 'and 99 duplicate:true');
    assert.equal(fresh[0].body.action, 'review');

    await waitFor(async () => (await reviewEffects(uid)).alerts.length >= 1, { what: 'the alert', describe: () => workerTail(gw) });
    const m = await settle();
    await sleep(500);
    const { alerts } = await reviewEffects(uid);
    assert.equal(alerts.length, 1, 'exactly one alert');
    const d = delta(m, before, 'podium');
    assert.equal(d.verified, 1, JSON.stringify(d));
    assert.equal(d.duplicate, 99, JSON.stringify(d));
    assert.equal(d.processed, 1, JSON.stringify(d));
    assert.equal(d.received, 100, JSON.stringify(d));
    assert.equal(d.rejected, 0, JSON.stringify(d));

    // A provider retry long after: still a duplicate, of a done event.
    const again = await deliver(gw, 'podium', signed);
    assert.equal(again.body.duplicate, true, again.text);
    assert.equal(again.body.state, 'done');
  });

  test('Podium: the same event re-signed with a new timestamp is the same event (body hash) → duplicate', async () => {
    const data = { uid: randomUUID(), note: 'retry' };
    assertAccepted(await deliver(gw, 'podium', hooks.podium('conversation.assigned', data, { timestampMs: Date.now() - 60_000 })));
    const retry = await deliver(gw, 'podium', hooks.podium('conversation.assigned', data));
    assert.equal(retry.status, 200, retry.text);
    assert.equal(retry.body.duplicate, true, retry.text);
  });

  test('Stripe: the same event id with a different signature timestamp (a provider retry) → duplicate', async () => {
    const event = { id: `evt_${randomUUID()}`, type: 'checkout.session.completed', data: { object: { id: `cs_${randomUUID()}` } } };
    const first = assertAccepted(await deliver(gw, 'stripe', hooks.stripe(event, { t: sec(Date.now()) - 90 })));
    assert.equal(first.action, 'store');
    const retry = await deliver(gw, 'stripe', hooks.stripe(event));
    assert.equal(retry.status, 200, retry.text);
    assert.equal(retry.body.duplicate, true, retry.text);
    // A different event id is a different event.
    assertAccepted(await deliver(gw, 'stripe', hooks.stripe({ ...event, id: `evt_${randomUUID()}` })));
  });

  test('Shopify: the same X-Shopify-Webhook-Id → duplicate (even re-triggered later)', async () => {
    const webhookId = randomUUID();
    const order = { id: Math.floor(Math.random() * 1e12), phone: '+61412345678', financial_status: 'paid' };
    const first = assertAccepted(await deliver(gw, 'shopify', hooks.shopify('orders/fulfilled', order, { webhookId, triggeredAt: new Date(Date.now() - 20_000) })));
    assert.equal(first.action, 'store');
    const retry = await deliver(gw, 'shopify', hooks.shopify('orders/fulfilled', order, { webhookId }));
    assert.equal(retry.body.duplicate, true, retry.text);
    // A captured body replayed under a fresh X-Shopify-Webhook-Id is still the same
    // event: the signed body's topic + order id (+ updated_at) decide.
    const replayed = await deliver(gw, 'shopify', hooks.shopify('orders/fulfilled', order));
    assert.equal(replayed.status, 200, replayed.text);
    assert.equal(replayed.body.duplicate, true, replayed.text);
    // The order changed (a new updated_at): a new event.
    assertAccepted(await deliver(gw, 'shopify', hooks.shopify('orders/fulfilled', { ...order, updated_at: new Date().toISOString() })));
  });

  test('Chatwoot: the same X-Chatwoot-Delivery → duplicate; Standard: the same webhook-id → duplicate', async () => {
    const delivery = randomUUID();
    const payload = { event: 'conversation_created', id: 5, conversation: { id: 99 } };
    assertAccepted(await deliver(gw, 'chatwoot', hooks.chatwoot(payload, { delivery, ts: sec(Date.now()) - 30 })));
    assert.equal((await deliver(gw, 'chatwoot', hooks.chatwoot(payload, { delivery }))).body.duplicate, true);

    const id = `msg_${randomUUID()}`;
    const event = { type: 'contact.updated', data: { id: randomUUID() } };
    assertAccepted(await deliver(gw, 'standard/crm', hooks.standard(event, { id, ts: sec(Date.now()) - 30 })));
    assert.equal((await deliver(gw, 'standard/crm', hooks.standard(event, { id }))).body.duplicate, true);
    // The rotated key signing the retry changes nothing.
    assert.equal((await deliver(gw, 'standard/crm', hooks.standard(event, { id, secret: ROTATED.standard }))).body.duplicate, true);
  });

  test(`keys are forgotten after their retention (Chatwoot: ${CHATWOOT_RETENTION_MS} ms here) → the same delivery is new again`, async () => {
    const delivery = randomUUID();
    const payload = { event: 'conversation_created', id: 6, conversation: { id: 100 } };
    const t0 = Date.now();
    assertAccepted(await deliver(gw, 'chatwoot', hooks.chatwoot(payload, { delivery })));
    assert.equal((await deliver(gw, 'chatwoot', hooks.chatwoot(payload, { delivery }))).body.duplicate, true);
    await sleep(Math.max(0, t0 + CHATWOOT_RETENTION_MS + 500 - Date.now()));
    // The shard's alarm deletes the key at its expiry; poll briefly for it.
    const again = await waitFor(async () => {
      const res = await deliver(gw, 'chatwoot', hooks.chatwoot(payload, { delivery }));
      return res.body?.duplicate === false ? res : null;
    }, { timeoutMs: 10_000, intervalMs: 500, what: 'the key to expire' });
    assertAccepted(again);
  });
});

// ---- what the events do ----

describe('opt-outs (F6)', () => {
  test('STOP by SMS (Podium webhook), then a webchat message within a second → the chat arrives, no text is sent; START → opted in', async () => {
    const phone = auPhone();
    const control = auPhone(); // same chat, no STOP: proves a confirmation would have been sent
    const stop = hooks.podium('message.received', {
      uid: randomUUID(), body: 'STOP',
      conversation: { channel: { type: 'phone', identifier: phone.e164 } },
      contact: { name: 'Race Tester' },
    });
    const ack = assertAccepted(await deliver(gw, 'podium', stop));
    assert.equal(ack.action, 'keyword');
    const chatText = `right after STOP ${randomUUID()}`;
    const [chat, controlChat] = await Promise.all([
      gw.send(envelope({ phone: phone.national, text: chatText, location: { page_url: page('/sydney/') } })),
      gw.send(envelope({ phone: control.national, text: 'control', location: { page_url: page('/sydney/') } })),
    ]);
    assert.equal(chat.status, 202, chat.text);
    assert.equal(controlChat.status, 202, controlChat.text);

    await waitForInbound(gw, phone.e164);
    await waitForEmptyOutbox(gw, phone.e164);
    await waitForEmptyOutbox(gw, control.e164);
    await settle();
    const msgs = await gw.sandbox.messages(phone.e164);
    assert.deepEqual(inbound(msgs).map((m) => m.body), [chatText], 'the chat reaches the inbox');
    assert.deepEqual(outbound(msgs), [], 'no text to an opted-out phone');
    assert.equal(outbound(await gw.sandbox.messages(control.e164)).length, 1, 'the control phone got its confirmation');

    const admin = await gw.adminContact(phone.e164);
    assert.equal(admin.status, 200, admin.text);
    assert.equal(admin.body.opt_out.opted_out, true, admin.text);
    assert.equal(admin.body.opt_out.channel, 'sms', admin.text);

    // START (the phone on `channel` this time) → opted back in.
    const start = hooks.podium('message.received', { uid: randomUUID(), body: 'start', channel: { type: 'phone', identifier: phone.e164 } });
    assert.equal(assertAccepted(await deliver(gw, 'podium', start)).action, 'keyword');
    const back = await gw.adminContact(phone.e164);
    assert.equal(back.body.opt_out.opted_out, false, back.text);
    await settle();
    const afterProcessing = await gw.adminContact(phone.e164);
    assert.equal(afterProcessing.body.opt_out.opted_out, false, 'processing the events again changes nothing');
    assert.equal(afterProcessing.body.opt_out.history.length, 2, afterProcessing.text);
  });

  test('contact.updated from Podium (sandbox opt-out with emit) → opted out via channel podium; opt-in → lifted', async () => {
    const phone = auPhone();
    // A chat first, so the sandbox has the contact.
    const chat = await gw.send(envelope({ phone: phone.national, text: 'hello', location: { page_url: page('/sydney/') } }));
    assert.equal(chat.status, 202, chat.text);
    await waitForInbound(gw, phone.e164);
    await waitForEmptyOutbox(gw, phone.e164);

    const put = await sandboxCall('PUT', '/_sandbox/webhooks', { url: `${gw.url}/webhooks/podium`, secret: SECRETS.podium });
    assert.equal(put.status, 200, put.text);
    const out = await sandboxCall('POST', `/_sandbox/contacts/${encodeURIComponent(phone.e164)}/opt-out`, { emit: true });
    assert.equal(out.status, 200, out.text);
    assert.equal(out.body.webhook.status, 200, JSON.stringify(out.body.webhook));
    assert.equal(out.body.webhook.body.action, 'podium_opt_state', JSON.stringify(out.body.webhook));

    const admin = await gw.adminContact(phone.e164);
    assert.equal(admin.body.opt_out.opted_out, true, admin.text);
    assert.equal(admin.body.opt_out.channel, 'podium', admin.text);

    const back = await sandboxCall('POST', `/_sandbox/contacts/${encodeURIComponent(phone.e164)}/opt-in`, { emit: true });
    assert.equal(back.body.webhook.status, 200, JSON.stringify(back.body.webhook));
    const lifted = await gw.adminContact(phone.e164);
    assert.equal(lifted.body.opt_out.opted_out, false, lifted.text);
    await settle();
  });
});

describe('reviews (F10)', () => {
  test('rating 1 → Slack alert; rating 5 → thank-you hook; rating 3 → neither', async () => {
    await settle();
    const before = await hookMetrics();
    const uids = { low: `rev_${randomUUID()}`, high: `rev_${randomUUID()}`, mid: `rev_${randomUUID()}` };
    for (const [key, rating] of [['mid', 3], ['low', 1], ['high', 5]]) {
      const ack = assertAccepted(await deliver(gw, 'podium', review(uids[key], rating)));
      assert.equal(ack.action, 'review');
      assert.equal(ack.event_type, 'review.created');
    }
    await waitFor(async () => {
      const [low, high] = await Promise.all([reviewEffects(uids.low), reviewEffects(uids.high)]);
      return low.alerts.length && high.thankYous.length;
    }, { what: 'the alert and the thank-you', describe: () => workerTail(gw) });
    const m = await settle();
    assert.equal(delta(m, before, 'podium').processed, 3, 'all three processed');

    const low = await reviewEffects(uids.low);
    assert.equal(low.alerts.length, 1);
    assert.equal(low.thankYous.length, 0);
    const { text } = low.alerts[0].body;
    assert.equal(typeof text, 'string', 'Slack-compatible: a text field');
    assert.match(text, /1★/);
    assert.match(text, /loc_sydney/);
    assert.equal(low.alerts[0].body.review.class, 'escalate');

    const high = await reviewEffects(uids.high);
    assert.equal(high.alerts.length, 0);
    assert.equal(high.thankYous.length, 1);
    assert.equal(high.thankYous[0].body.review.rating, 5);

    const mid = await reviewEffects(uids.mid);
    assert.deepEqual(mid, { alerts: [], thankYous: [] }, 'a 3 is only logged');
  });

  test('an unknown Podium event type → 200, action ignore, counted as ignored', async () => {
    const before = await hookMetrics();
    const ack = assertAccepted(await deliver(gw, 'podium', hooks.podium('payment.settled', { uid: randomUUID() })));
    assert.equal(ack.action, 'ignore');
    assert.equal(ack.event_type, 'payment.settled');
    assert.equal(ack.state, 'done');
    const d = delta(await hookMetrics(), before, 'podium');
    assert.equal(d.ignored, 1);
    assert.equal(d.processed, 0);
  });
});

describe('Chatwoot into the webchat pipeline', () => {
  test('incoming message_created with a phone and a San Francisco referer → inbound webchat at loc_sanfrancisco; outgoing → ignored', async () => {
    const phone = usPhone();
    const text = `Hi from Chatwoot ${randomUUID()}`;
    const conversation = Math.floor(Math.random() * 1e9);
    const incoming = {
      event: 'message_created', id: Math.floor(Math.random() * 1e9), message_type: 'incoming', content: text, private: false,
      account: { id: 7 },
      conversation: { id: conversation, additional_attributes: { referer: 'https://shop.example/san-francisco/products/blue-runner' } },
      sender: { name: 'Casey', phone_number: phone },
    };
    const ack = assertAccepted(await deliver(gw, 'chatwoot', hooks.chatwoot(incoming)));
    assert.equal(ack.action, 'webchat');
    const [msg] = await waitForInbound(gw, phone);
    assert.equal(msg.body, text);
    assert.equal(msg.locationUid, 'loc_sanfrancisco');
    assert.equal(msg.channel.identifier, phone);

    const outgoing = { ...incoming, id: incoming.id + 1, message_type: 'outgoing', content: 'Agent reply' };
    const out = assertAccepted(await deliver(gw, 'chatwoot', hooks.chatwoot(outgoing)));
    assert.equal(out.action, 'ignore');
    await settle();
    await waitForEmptyOutbox(gw, phone);
    const all = inbound(await gw.sandbox.messages(phone));
    assert.deepEqual(all.map((m) => m.body), [text], 'only the customer\'s message, once');
  });
});

// ---- acknowledgement latency ----

test('fast ack: signed Podium deliveries (warm) are acknowledged well inside Podium\'s 5 s', async (t) => {
  // Warm-up (isolate, shards, ledger).
  for (let i = 0; i < 3; i++) assertAccepted(await deliver(gw, 'podium', review(`rev_${randomUUID()}`, 3)));
  const times = [];
  for (let i = 0; i < 30; i++) {
    const signed = i % 2 ? review(`rev_${randomUUID()}`, 3) : hooks.podium('message.received', { uid: randomUUID(), body: 'Is the blue one in stock?', channel: { type: 'phone', identifier: auPhone().e164 } });
    const t0 = performance.now();
    const res = await deliver(gw, 'podium', signed);
    times.push(performance.now() - t0);
    assertAccepted(res);
  }
  times.sort((a, b) => a - b);
  const pct = (p) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))];
  const summary = `ack latency over ${times.length}: p50 ${pct(50).toFixed(1)} ms, p95 ${pct(95).toFixed(1)} ms, max ${times.at(-1).toFixed(1)} ms`;
  t.diagnostic(summary);
  assert.ok(times.at(-1) < 2000, summary);
  await settle();
});

// ---- failure path: retries, dead letter, replay ----

describe('a failing alert hook', () => {
  test('500 from the hook → retried, dead-lettered after max_attempts; the provider still got a fast 200; replay → processed', async () => {
    await settle();
    const before = await hookMetrics();
    alertHook.failing = true;
    const hitsBefore = alertHook.hits.length;
    const uid = `rev_${randomUUID()}`;
    const signed = review(uid, 1);
    const t0 = performance.now();
    const ack = await deliver(gw, 'podium', signed);
    const ackMs = performance.now() - t0;
    assertAccepted(ack);
    assert.ok(ackMs < 2000, `acknowledged in ${ackMs.toFixed(0)} ms, before any processing`);

    const letter = await waitFor(async () => {
      const res = await gw.admin('GET', '/admin/dead-letters');
      return res.body.dead_letters.find((d) => d.job?.kind === 'webhook' && d.job.body?.includes(uid));
    }, { timeoutMs: 30_000, what: 'the dead letter', describe: () => workerTail(gw) });
    assert.match(letter.reason, /webhook/);
    assert.match(letter.reason, /review\.created/);
    assert.match(letter.reason, /500/);
    assert.equal(letter.attempts, MAX_ATTEMPTS);
    assert.equal(alertHook.hits.length - hitsBefore, MAX_ATTEMPTS, 'one call per attempt');

    const dead = await settle();
    const d = delta(dead, before, 'podium');
    assert.equal(d.verified, 1, JSON.stringify(d));
    assert.equal(d.retried, MAX_ATTEMPTS - 1, JSON.stringify(d));
    assert.equal(d.failed, 1, JSON.stringify(d));
    assert.equal(d.processed, 0, JSON.stringify(d));
    assert.equal((await reviewEffects(uid)).alerts.length, 0);

    // Podium retrying the delivery now is still a duplicate (the key outlives the failure).
    const retry = await deliver(gw, 'podium', signed);
    assert.equal(retry.body.duplicate, true, retry.text);
    assert.equal(retry.body.state, 'dead', retry.text);

    // The merchant fixes the endpoint; an operator replays.
    alertHook.failing = false;
    const replay = await gw.admin('POST', `/admin/dead-letters/${letter.id}/replay`);
    assert.equal(replay.status, 202, replay.text);
    await waitFor(async () => (await reviewEffects(uid)).alerts.length >= 1, { what: 'the alert after the replay', describe: () => workerTail(gw) });
    const done = await settle();
    await sleep(300);
    assert.equal((await reviewEffects(uid)).alerts.length, 1, 'one alert');
    const remaining = (await gw.admin('GET', '/admin/dead-letters')).body.dead_letters;
    assert.ok(!remaining.some((x) => x.id === letter.id), 'the dead letter is gone');
    const d2 = delta(done, before, 'podium');
    assert.equal(d2.processed, 1, JSON.stringify(d2));
    assert.equal(d2.failed, 1, JSON.stringify(d2));
    assert.equal(d2.verified, 1, `a replay is not a new delivery: ${JSON.stringify(d2)}`);
    assert.equal(d2.received, 2, `the delivery and Podium's retry: ${JSON.stringify(d2)}`);
    const after = await deliver(gw, 'podium', signed);
    assert.equal(after.body.state, 'done', after.text);
  });
});

// ---- counters ----

test('metrics: received / verified / duplicate / rejected by reason / processed / ignored per scheme', async () => {
  await settle();
  const before = await hookMetrics();
  const uid = `rev_${randomUUID()}`;
  const signed = review(uid, 3);
  assertAccepted(await deliver(gw, 'podium', signed));
  assert.equal((await deliver(gw, 'podium', signed)).body.duplicate, true);
  assert.equal((await deliver(gw, 'podium', SCHEMES.podium.sign())).status, 200); // ignored
  assert.equal((await deliver(gw, 'podium', SCHEMES.podium.sign(SCHEMES.podium.stale()))).status, 401);
  assert.equal((await deliver(gw, 'podium', SCHEMES.podium.sign(SCHEMES.podium.wrongSecret))).status, 401);
  assert.equal((await deliver(gw, 'podium', SCHEMES.podium.sign(SCHEMES.podium.wrongSecret))).status, 401);
  assert.equal((await deliver(gw, 'podium', withHeader(SCHEMES.podium.sign(), 'podium-signature'))).status, 401);
  assert.equal((await deliver(gw, 'podium', withHeader(SCHEMES.podium.sign(), 'content-type', 'text/plain'))).status, 415);
  assert.equal((await deliver(gw, 'stripe', SCHEMES.stripe.sign(SCHEMES.stripe.future()))).status, 401);

  // Refusals are counted off the response path: wait for them.
  const m = await waitFor(async () => {
    const now = await hookMetrics();
    return delta(now, before, 'podium').rejected >= 5 && delta(now, before, 'stripe').rejected >= 1 && !now.stored?.pending ? now : null;
  }, { what: 'the refusals counted and the review processed' });
  const d = delta(m, before, 'podium');
  assert.deepEqual(d, {
    received: 8,
    verified: 2,
    duplicate: 1,
    rejected: 5,
    processed: 1,
    retried: 0,
    failed: 0,
    ignored: 1,
    rejected_by_reason: {
      signature_timestamp_too_old: 1,
      signature_mismatch: 2,
      signature_header_missing: 1,
      unsupported_media_type: 1,
    },
  });
  const s = delta(m, before, 'stripe');
  assert.deepEqual(s.rejected_by_reason, { signature_timestamp_in_future: 1 });
  assert.equal(s.received, 1);
  for (const other of ['shopify', 'chatwoot', 'standard']) {
    assert.equal(delta(m, before, other).received, 0, other);
  }
  assert.equal(typeof m.stored.done, 'number', `stored by state: ${JSON.stringify(m.stored)}`);
  assert.ok(m.stored.dead === undefined || m.stored.dead === 0, 'the replayed event is no longer dead');
});
