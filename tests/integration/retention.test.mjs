// Integration (issue 10): personal data expires, enforced by alarms, with second-scale
// settings — sessions (and anything they hold) are deleted after their expiry, message
// idempotency keys are forgotten, dead letters and fallback records expire; the dead-letter
// list pages through everything (no silent cap). And the Podium token: a new
// PODIUM_REFRESH_TOKEN supersedes a rotated one the gateway stored; an operator can reset it.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  auPhone, envelope, gatewayForFile, inbound, page, sleep, startWorker, testConfig, waitFor,
  waitForEmptyOutbox, waitForInbound, fallbacksFor,
} from '../support/gateway.mjs';
import { fetchWorker } from '../support/stack.mjs';

const gw = gatewayForFile({
  config: testConfig({
    session: { idle_ms: 1000, warning_ms: 500 },
    retention: {
      session_after_expiry_ms: 2000,
      // Long enough that the first of a test's dead letters is still listed when the last
      // arrives on a slow machine (CI once timed out waiting for 14 at 6 s).
      dead_letters_ms: 15000,
      fallbacks_ms: 6000,
      events_ms: 6000,
      message_keys_ms: 3000,
    },
  }),
});

describe('retention (alarms, second-scale settings)', () => {
  test('a session is deleted 2 s after it expired: its clock, its phone, its held prompts', async () => {
    const phone = auPhone();
    const sessionId = randomUUID();
    const res = await gw.send(envelope({ phone: phone.national, sessionId, location: { page_url: page('/sydney/') } }));
    assert.equal(res.status, 202, res.text);
    assert.equal((await gw.session(sessionId)).status, 200);
    // A plain-widget session that never got a phone holds its prompt.
    const chatSession = `held-${randomUUID()}`;
    const held = await gw.chat({ prompt: 'are you open on Sunday?', session_id: chatSession });
    assert.equal(held.body.content_type, 'form');
    await waitFor(async () => (await gw.session(sessionId)).status === 404, { timeoutMs: 15_000, what: 'the session deleted' });
    // The held prompt went with its session: a phone given now delivers nothing old.
    await sleep(3000);
    const late = auPhone();
    const res2 = await gw.chat({ prompt: late.national, session_id: chatSession });
    assert.equal(res2.status, 200, res2.text);
    await sleep(1500);
    assert.equal(inbound(await gw.sandbox.messages(late.e164)).length, 0, 'the held prompt expired with the session');
    await waitForEmptyOutbox(gw, phone.e164);
  });

  test('an idempotency key is kept 3 s: a resend inside it is the first message, after it a new one', async () => {
    const phone = auPhone();
    const env = envelope({ phone: phone.national, text: 'keyed', location: { page_url: page('/sydney/') } });
    const key = randomUUID();
    const first = await gw.send(env, { headers: { 'idempotency-key': key } });
    const again = await gw.send(env, { headers: { 'idempotency-key': key } });
    assert.equal(again.body.duplicate, true);
    assert.equal(again.body.message_id, first.body.message_id);
    await sleep(3500);
    const later = await gw.send({ ...env, session_id: randomUUID() }, { headers: { 'idempotency-key': key } });
    assert.equal(later.body.duplicate, undefined, later.text);
    await waitForInbound(gw, phone.e164, { count: 2 });
    // Its confirmation texts too: the next test's injected faults are for its own sends.
    await waitForEmptyOutbox(gw, phone.e164);
  });

  test('dead letters: listed page by page with a cursor (every one exactly once), then expired', async () => {
    const phones = Array.from({ length: 7 }, () => auPhone());
    await gw.sandbox.fault({ method: 'POST', path: '/v4/messages', status: 400, count: 14 });
    for (const p of phones) await gw.send(envelope({ phone: p.national, text: 'refused', location: { page_url: page('/sydney/') } }));
    const mine = (list) => list.filter((l) => phones.some((p) => p.e164 === l.phone));
    await waitFor(async () => mine((await gw.admin('GET', '/admin/dead-letters?limit=500')).body.dead_letters).length >= 14, { what: '14 dead letters' });
    const seen = [];
    let cursor = null;
    let pages = 0;
    do {
      const res = await gw.admin('GET', `/admin/dead-letters?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      assert.equal(res.status, 200, res.text);
      assert.ok(res.body.dead_letters.length <= 3);
      seen.push(...res.body.dead_letters.map((l) => l.id));
      cursor = res.body.next_cursor;
      pages += 1;
    } while (cursor && pages < 100);
    assert.equal(new Set(seen).size, seen.length, 'no letter twice');
    const all = (await gw.admin('GET', '/admin/dead-letters?limit=500')).body.dead_letters.map((l) => l.id);
    assert.deepEqual([...seen].sort(), [...all].sort(), 'the pages together are the whole list');
    assertOrdered(await gw.admin('GET', '/admin/dead-letters?limit=500'));
    const bad = await gw.admin('GET', '/admin/dead-letters?cursor=nonsense');
    assert.equal(bad.status, 400);
    await waitFor(async () => mine((await gw.admin('GET', '/admin/dead-letters?limit=500')).body.dead_letters).length === 0, { timeoutMs: 40_000, what: 'the dead letters expired' });
  });

  test('fallback records expire', async () => {
    const phone = auPhone();
    const since = Date.now() - 1000;
    await gw.send(envelope({ phone: phone.national, text: 'where am I?', location: { page_url: page('/nowhere/') } }));
    await fallbacksFor(gw, phone.e164, since);
    await waitFor(async () => {
      const res = await gw.admin('GET', `/admin/routing/fallbacks?since=${since}`);
      return !res.body.fallbacks.some((f) => f.phone === phone.e164);
    }, { timeoutMs: 20_000, what: 'the fallback record expired' });
  });
});

function assertOrdered(res) {
  const at = res.body.dead_letters.map((l) => l.at_ms);
  assert.deepEqual(at, [...at].sort((a, b) => a - b), 'oldest first');
}

describe('the Podium refresh token', () => {
  test('a new PODIUM_REFRESH_TOKEN supersedes the rotated one the gateway stored; an operator can reset the stored token', { timeout: 240_000 }, async () => {
    await gw.sandbox.config({ rotate_refresh_tokens: true });
    try {
      // A second worker with its own state (kept across its restart), on the same sandbox.
      const persist = mkdtempSync(path.join(os.tmpdir(), 'gateway-token-'));
      const first = await startWorker({ sandbox: gw.sandbox, config: gw.config, persistTo: persist });
      let fresh;
      try {
        await gw.sandbox.expireTokens();
        const phone = auPhone();
        await fetchJson(first.url, envelope({ phone: phone.national, location: { page_url: page('/sydney/') } }));
        await waitForInbound(gw, phone.e164);
        const status = await adminJson(first.url, 'GET', '/admin/metrics');
        assert.equal(status.podium_token.refresh_token, 'rotated (stored)', JSON.stringify(status.podium_token));
        const presentedBefore = (await gw.sandbox.state()).refreshes_presented.length;

        // The merchant re-authorizes: a new refresh token is put as the secret.
        const renewed = await gw.sandbox.mintRefreshToken();
        await first.stop();
        fresh = await startWorker({ sandbox: gw.sandbox, config: gw.config, persistTo: persist, vars: { PODIUM_REFRESH_TOKEN: renewed } });
        await gw.sandbox.expireTokens();
        const again = auPhone();
        await fetchJson(fresh.url, envelope({ phone: again.national, location: { page_url: page('/sydney/') } }));
        await waitForInbound(gw, again.e164);
        const presented = (await gw.sandbox.state()).refreshes_presented.slice(presentedBefore);
        assert.equal(presented[0], renewed, 'the new secret was used, not the stored rotated token');

        // Reset: the stored token is dropped; the next call refreshes with the secret.
        const reset = await adminJson(fresh.url, 'POST', '/admin/podium/token/reset');
        assert.equal(reset.reset, true);
        assert.equal(reset.dropped_rotated_refresh_token, true);
        const after = await adminJson(fresh.url, 'GET', '/admin/metrics');
        assert.equal(after.podium_token.has_token, false);
        assert.equal(after.podium_token.refresh_token, 'from the PODIUM_REFRESH_TOKEN secret');
        const third = auPhone();
        const before3 = (await gw.sandbox.state()).refreshes_presented.length;
        await fetchJson(fresh.url, envelope({ phone: third.national, location: { page_url: page('/sydney/') } }));
        await waitForInbound(gw, third.e164);
        assert.equal((await gw.sandbox.state()).refreshes_presented[before3], renewed);
      } finally {
        await fresh?.stop();
        await first.stop().catch(() => {});
        rmSync(persist, { recursive: true, force: true });
      }
    } finally {
      await gw.sandbox.config({ rotate_refresh_tokens: false });
    }
  });
});

async function fetchJson(url, env) {
  const res = await fetchWorker(`${url}/v1/webchat/messages`, { method: 'POST', headers: { 'content-type': 'application/json', origin: 'https://shop.example', 'cf-connecting-ip': `10.9.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}` }, body: JSON.stringify(env) });
  assert.equal(res.status, 202, await res.text());
}

async function adminJson(url, method, path) {
  const res = await fetchWorker(`${url}${path}`, { method, headers: { authorization: 'Bearer test-admin' } });
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  return res.json();
}

