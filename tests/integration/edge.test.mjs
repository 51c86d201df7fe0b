// Integration: edge hygiene (F16, F17) — CORS allow-list and preflight, body limits and
// content types, strict envelope errors with codes and field paths, per-session rate
// limits, and the admin bearer token.
//
// This file's worker allows 3 messages per session (burst 3, refilling 1 a minute), so
// the rate-limit test needs no timing; every other test here uses a fresh session id.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  ORIGIN, assertErrorShape, auPhone, envelope, makeClient, page, gatewayForFile, startWorker, testConfig,
  waitForInbound, withinOneRateWindow,
} from '../support/gateway.mjs';

const gw = gatewayForFile({
  config: testConfig({
    rate_limits: {
      per_session: { burst: 3, per_minute: 1 },
    },
  }),
});

const EVIL = 'https://evil.example';
const valid = () => envelope({ phone: auPhone().national, location: { page_url: page('/sydney/') } });

test('GET /health → ok', async () => {
  const res = await gw.request('GET', '/health');
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.status, 'ok');
  assert.equal(res.body.service, 'podium-gateway');
  assert.match(res.body.phone_metadata_version, /^\d+\.\d+\.\d+$/);
});

describe('CORS (F17)', () => {
  for (const path of ['/v1/webchat/messages', '/v1/webchat/attachments', '/chat']) {
    test(`preflight ${path} from the allowed origin → 204 with allow-origin and Vary: Origin`, async () => {
      const res = await gw.request('OPTIONS', path, {
        headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      });
      assert.equal(res.status, 204, res.text);
      assert.equal(res.headers.get('access-control-allow-origin'), ORIGIN);
      assert.match(res.headers.get('vary') ?? '', /\bOrigin\b/i);
      assert.match(res.headers.get('access-control-allow-methods') ?? '', /\bPOST\b/);
      assert.match(res.headers.get('access-control-allow-headers') ?? '', /content-type/i);
    });
  }

  test('preflight from another origin → 403, no access-control-allow-origin', async () => {
    const res = await gw.request('OPTIONS', '/v1/webchat/messages', {
      headers: { origin: EVIL, 'access-control-request-method': 'POST' },
    });
    assertErrorShape(assert, res, 403, 'origin_not_allowed');
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    assert.equal(res.headers.get('access-control-allow-methods'), null);
  });

  test('POST from another origin → 403 origin_not_allowed, no allow-origin, nothing queued', async () => {
    const phone = auPhone();
    const env = envelope({ phone: phone.national, location: { page_url: page('/sydney/') } });
    const res = await gw.send(env, { headers: { origin: EVIL } });
    assertErrorShape(assert, res, 403, 'origin_not_allowed');
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    // Nothing was queued for that phone (jobs are persisted before any 202).
    const state = await gw.adminContact(phone.e164);
    assert.equal(state.status, 200, state.text);
    assert.deepEqual(state.body.outbox, [], state.text);
    assert.equal(state.body.contact.identifier, null, state.text);
    const chat = await gw.chat({ prompt: 'hi', session_id: randomUUID() }, { headers: { origin: EVIL } });
    assertErrorShape(assert, chat, 403, 'origin_not_allowed');
    assert.equal(chat.headers.get('access-control-allow-origin'), null);
  });

  test('POST from the allowed origin → allow-origin on the 202 and on a 422', async () => {
    const env = valid();
    const ok = await gw.send(env, { headers: { origin: ORIGIN } });
    assert.equal(ok.status, 202, ok.text);
    assert.equal(ok.headers.get('access-control-allow-origin'), ORIGIN);
    assert.match(ok.headers.get('vary') ?? '', /\bOrigin\b/i);

    const bad = await gw.send({ ...valid(), colour: 'blue' }, { headers: { origin: ORIGIN } });
    assertErrorShape(assert, bad, 422, 'unknown_field');
    assert.equal(bad.headers.get('access-control-allow-origin'), ORIGIN);
    assert.match(bad.headers.get('vary') ?? '', /\bOrigin\b/i);
  });

  test('a request without Origin (a server) is served, without CORS headers', async () => {
    const res = await gw.send(valid(), { headers: { origin: undefined } });
    assert.equal(res.status, 202, res.text);
    assert.equal(res.headers.get('access-control-allow-origin'), null);
  });
});

describe('bad input (F16)', () => {
  test('another content type → 415', async () => {
    const res = await gw.request('POST', '/v1/webchat/messages', {
      body: JSON.stringify(valid()),
      headers: { 'content-type': 'text/plain' },
    });
    assertErrorShape(assert, res, 415, 'unsupported_media_type');
  });

  test('a body over 64 KiB → 413 body_too_large', async () => {
    const env = valid();
    env.message.value = 'x'.repeat(70 * 1024);
    const res = await gw.send(env);
    assertErrorShape(assert, res, 413, 'body_too_large');
  });

  test('a chunked body (no Content-Length) over 64 KiB → 413 body_too_large', async () => {
    const env = valid();
    env.message.value = 'y'.repeat(70 * 1024);
    const bytes = new TextEncoder().encode(JSON.stringify(env));
    // A stream body makes fetch send it chunked.
    const body = new ReadableStream({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 8192) controller.enqueue(bytes.subarray(i, i + 8192));
        controller.close();
      },
    });
    const res = await fetch(`${gw.url}/v1/webchat/messages`, {
      method: 'POST', body, duplex: 'half', headers: { 'content-type': 'application/json' },
    });
    const text = await res.text();
    assertErrorShape(assert, { status: res.status, body: JSON.parse(text), text }, 413, 'body_too_large');
    // The rest of a slightly oversized body is read and dropped (not cancelled), so the
    // next request is served normally (a cancelled body leaves wrangler dev's local
    // proxy stuck on the next one).
    assert.equal((await gw.request('GET', '/health')).status, 200);
  });

  test('invalid JSON → 422 invalid_json', async () => {
    const res = await gw.request('POST', '/v1/webchat/messages', {
      body: '{"session_id": ',
      headers: { 'content-type': 'application/json' },
    });
    assertErrorShape(assert, res, 422, 'invalid_json');
  });

  test('an unknown field → 422 unknown_field with the field path, at any level', async () => {
    const top = await gw.send({ ...valid(), colour: 'blue' });
    assert.equal(assertErrorShape(assert, top, 422, 'unknown_field').field, 'colour');
    const env = valid();
    env.message.colour = 'blue';
    const nested = await gw.send(env);
    const error = assertErrorShape(assert, nested, 422, 'unknown_field');
    assert.equal(error.field, 'message.colour');
    assert.ok(nested.body.problems.some((p) => p.code === 'unknown_field' && p.field === 'message.colour'), nested.text);
  });

  for (const [raw, code] of [
    ['call me', 'phone_not_a_number'],
    ['041', 'phone_too_short'],
    ['', 'phone_empty'],
    ['+999 1234 5678', 'phone_invalid_country_code'],
  ]) {
    test(`phone ${JSON.stringify(raw)} → 422 ${code} at contact.phone`, async () => {
      const res = await gw.send(envelope({ phone: raw, location: { page_url: page('/sydney/') } }));
      const error = assertErrorShape(assert, res, 422, code);
      assert.equal(error.field, 'contact.phone');
    });
  }

  test('every problem is reported at once, each with a code and field', async () => {
    const res = await gw.send({
      session_id: 'not-a-uuid',
      message: { type: 'telegram', value: 'hi' },
      contact: { phone: 'call me' },
    });
    assertErrorShape(assert, res, 422);
    const fields = res.body.problems.map((p) => p.field).sort();
    assert.deepEqual(fields, ['contact.phone', 'message.type', 'session_id'], res.text);
    for (const p of res.body.problems) {
      assert.equal(typeof p.code, 'string');
      assert.equal(typeof p.message, 'string');
    }
  });

  test('missing required fields → 422 missing_field', async () => {
    const res = await gw.send({ session_id: randomUUID(), message: { type: 'text', value: 'hi' } });
    const error = assertErrorShape(assert, res, 422, 'missing_field');
    assert.equal(error.field, 'contact');
  });

  test('unknown route → 404 not_found with the error shape', async () => {
    assertErrorShape(assert, await gw.request('POST', '/v1/webchat/nope', { json: {} }), 404, 'not_found');
  });
});

describe('rate limits (F17)', () => {
  test('more messages from one session than its burst → 429 rate_limited with Retry-After', async () => {
    const sessionId = randomUUID();
    const phone = auPhone();
    const answers = [];
    for (let i = 0; i < 6; i++) {
      answers.push(await gw.send(envelope({ phone: phone.national, sessionId, text: `message ${i}`, location: { page_url: page('/sydney/') } })));
    }
    assert.deepEqual(answers.slice(0, 3).map((r) => r.status), [202, 202, 202], answers.map((r) => r.text).join('\n'));
    // At most one more token can have refilled (1 a minute) during the test.
    const limited = answers.slice(3).filter((r) => r.status === 429);
    assert.ok(limited.length >= 2, answers.map((r) => `${r.status} ${r.text}`).join('\n'));
    for (const res of limited) {
      assertErrorShape(assert, res, 429, 'rate_limited');
      const retryAfter = Number(res.headers.get('retry-after'));
      assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After: ${res.headers.get('retry-after')}`);
    }
    // What was accepted was delivered; what was refused was not.
    const msgs = await waitForInbound(gw, phone.e164, { count: 3 });
    assert.equal(msgs.length, answers.filter((r) => r.status === 202).length);
    // Another session of the same customer is not affected.
    const other = await gw.send(envelope({ phone: phone.national, text: 'new tab', location: { page_url: page('/sydney/') } }));
    assert.equal(other.status, 202, other.text);
  });

  test('a 429 to a browser still carries allow-origin and exposes Retry-After', async () => {
    const sessionId = randomUUID();
    const phone = auPhone().national;
    let res;
    for (let i = 0; i < 6; i++) {
      res = await gw.send(envelope({ phone, sessionId, text: `m${i}` }), { headers: { origin: ORIGIN } });
      if (res.status === 429) break;
    }
    assert.equal(res.status, 429, res.text);
    assert.equal(res.headers.get('access-control-allow-origin'), ORIGIN);
    assert.match(res.headers.get('access-control-expose-headers') ?? '', /retry-after/i);
  });
});

describe('admin auth (F19)', () => {
  for (const [name, headers] of [
    ['no Authorization', {}],
    ['a wrong bearer', { authorization: 'Bearer not-the-token' }],
    ['the right token without "Bearer "', { authorization: 'test-admin' }],
    ['Basic auth', { authorization: `Basic ${Buffer.from('admin:test-admin').toString('base64')}` }],
  ]) {
    test(`${name} → 401 unauthorized on every admin route`, async () => {
      for (const [method, path] of [
        ['GET', '/admin/metrics'],
        ['GET', '/admin/dead-letters'],
        ['GET', '/admin/contacts/%2B61412345678'],
        ['GET', '/admin/routing/fallbacks?since=0'],
        ['POST', '/admin/routing/reroute'],
        ['POST', '/admin/dead-letters/dl_x/replay'],
      ]) {
        const res = await gw.request(method, path, { headers, ...(method === 'POST' ? { json: {} } : {}) });
        assertErrorShape(assert, res, 401, 'unauthorized');
      }
    });
  }

  test('the right bearer → 200', async () => {
    const res = await gw.admin('GET', '/admin/metrics');
    assert.equal(res.status, 200, res.text);
    assert.ok(res.body.counters !== undefined, res.text);
  });
});

describe('second worker: optional CSRF header and the per-IP limit (F17)', () => {
  // A second worker on the same sandbox, with require_csrf_header on. The per-IP limits
  // are wrangler.toml's Rate Limiting bindings (simulated by wrangler dev): 120 requests,
  // 20 new sessions and 10 new phones per client IP a minute. Locally the client IP is
  // CF-Connecting-IP (Cloudflare sets it in production), so each test uses its own.
  let worker;
  let csrf;
  before(async () => {
    worker = await startWorker({
      sandbox: gw.sandbox,
      config: testConfig({
        require_csrf_header: true,
      }),
    });
    csrf = makeClient(worker.url);
  }, { timeout: 240_000 });
  after(async () => {
    await worker?.stop();
  });

  test('a browser request without X-Requested-With → 403 csrf_header_missing (readable by the page)', async () => {
    const res = await csrf.send(valid(), { headers: { origin: ORIGIN, 'cf-connecting-ip': '198.51.100.1' } });
    assertErrorShape(assert, res, 403, 'csrf_header_missing');
    assert.equal(res.headers.get('access-control-allow-origin'), ORIGIN);
  });

  test('with X-Requested-With: podium-gateway → 202; a server (no Origin) needs no header', async () => {
    const withHeader = await csrf.send(valid(), { headers: { origin: ORIGIN, 'x-requested-with': 'podium-gateway', 'cf-connecting-ip': '198.51.100.2' } });
    assert.equal(withHeader.status, 202, withHeader.text);
    const server = await csrf.send(valid(), { headers: { origin: undefined, 'cf-connecting-ip': '198.51.100.3' } });
    assert.equal(server.status, 202, server.text);
  });

  test('new phones per IP: the 11th new chat from one IP in a minute → 429 with Retry-After, nothing stored; other IPs unaffected', async () => {
    const ip = { 'cf-connecting-ip': '203.0.113.9', 'x-requested-with': 'podium-gateway' };
    const stillOneWindow = await withinOneRateWindow(15_000);
    const statuses = [];
    for (let i = 0; i < 10; i++) statuses.push((await csrf.send(valid(), { headers: ip })).status);
    assert.deepEqual(statuses, Array(10).fill(202));
    const refused = valid();
    const limited = await csrf.send(refused, { headers: ip });
    assert.ok(stillOneWindow(), 'the 11 requests took longer than the 15 s the test allows itself');
    assertErrorShape(assert, limited, 429, 'rate_limited');
    assert.equal(limited.headers.get('retry-after'), '60');
    const session = await csrf.session(refused.session_id);
    assert.equal(session.status, 404, 'the refused session was never stored');
    // The same IP's existing session and phone still chats (not new).
    const again = valid();
    const other = await csrf.send(again, { headers: { ...ip, 'cf-connecting-ip': '203.0.113.10' } });
    assert.equal(other.status, 202, other.text);
    const follow = await csrf.send({ ...again, message: { type: 'text', value: 'and another thing' } }, { headers: { ...ip, 'cf-connecting-ip': '203.0.113.10' } });
    assert.equal(follow.status, 202, follow.text);
  });

  test('new sessions per IP: plain-widget prompts (no phone) → the 21st new session in a minute → 429', async () => {
    const ip = { 'cf-connecting-ip': '203.0.113.20', origin: undefined };
    const stillOneWindow = await withinOneRateWindow(15_000);
    const statuses = [];
    for (let i = 0; i < 20; i++) statuses.push((await csrf.chat({ prompt: 'hi', session_id: `visitor-${i}-${randomUUID()}` }, { headers: ip })).status);
    assert.deepEqual(statuses, Array(20).fill(200));
    const limited = await csrf.chat({ prompt: 'hi', session_id: `visitor-x-${randomUUID()}` }, { headers: ip });
    assert.ok(stillOneWindow(), 'the 21 requests took longer than the 15 s the test allows itself');
    assertErrorShape(assert, limited, 429, 'rate_limited');
  });

  test('requests per IP: past 120 a minute every public route answers 429, uploads and dry runs too; other IPs unaffected', async () => {
    const ip = { 'cf-connecting-ip': '203.0.113.30', 'x-requested-with': 'podium-gateway', origin: undefined };
    const stillOneWindow = await withinOneRateWindow(30_000);
    let first429 = null;
    for (let i = 1; i <= 125 && first429 === null; i++) {
      const res = await csrf.request('POST', '/v1/webchat/validate', { json: valid(), headers: ip });
      if (res.status === 429) first429 = i;
      else assert.equal(res.status, 200, res.text);
    }
    assert.ok(stillOneWindow(), 'the requests took longer than the 30 s the test allows itself');
    assert.equal(first429, 121, 'the 121st request in the minute is refused');
    const upload = await csrf.request('POST', '/v1/webchat/attachments', {
      body: Buffer.from('hello'), headers: { ...ip, 'content-type': 'text/plain', 'x-filename': 'a.txt' },
    });
    assertErrorShape(assert, upload, 429, 'rate_limited');
    assert.equal(upload.headers.get('retry-after'), '60');
    const message = await csrf.send(valid(), { headers: ip });
    assert.ok(stillOneWindow(), 'the requests took longer than the 30 s the test allows itself');
    assertErrorShape(assert, message, 429, 'rate_limited');
    const other = await csrf.request('POST', '/v1/webchat/validate', { json: valid(), headers: { ...ip, 'cf-connecting-ip': '203.0.113.31' } });
    assert.equal(other.status, 200, other.text);
  });

  test('the preflight allows the header', async () => {
    const res = await csrf.request('OPTIONS', '/v1/webchat/messages', {
      headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, x-requested-with', 'cf-connecting-ip': '198.51.100.4' },
    });
    assert.equal(res.status, 204, res.text);
    assert.match(res.headers.get('access-control-allow-headers') ?? '', /x-requested-with/i);
  });
});
