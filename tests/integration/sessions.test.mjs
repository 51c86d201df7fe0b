// Integration: session idle clock and context carried over an expiry (F3), and the one
// opt-out record that suppresses every text (F6). The test config idles a session out
// after 3 s and warns 1 s before.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  CONFIRMATION, auPhone, envelope, inbound, outbound, page, sleep, gatewayForFile, waitFor,
  waitForEmptyOutbox, waitForInbound, workerTail,
} from '../support/gateway.mjs';

const IDLE_MS = 3000;
const WARNING_MS = 1000;

const gw = gatewayForFile();

const sydney = { page_url: page('/sydney/') };

/** Send from `phone` in `sessionId`; expect 202. */
async function send(phone, sessionId, text) {
  const res = await gw.send(envelope({ phone: phone.national, sessionId, text, location: sydney }));
  assert.equal(res.status, 202, `${res.text}${workerTail(gw)}`);
  return res.body;
}

/** GET the session status, with the local time the request was sent and answered. */
async function status(sessionId) {
  const sent = Date.now();
  const res = await gw.session(sessionId);
  const answered = Date.now();
  assert.equal(res.status, 200, res.text);
  return { ...res.body.session, sent, answered };
}

/**
 * Run `attempt` (which returns false when slowness made its observation inconclusive) up
 * to 3 times: timing windows here are 1 s wide, and a loaded machine may miss one.
 */
async function withRetries(attempt) {
  for (let i = 0; i < 3; i++) {
    if (await attempt()) return;
  }
  assert.fail('the machine was too slow to observe a 1 s window three times in a row');
}

describe('sessions (F3)', () => {
  test('a message answers with the idle clock: expires_at_ms ≈ now + idle', async () => {
    const sent = Date.now();
    const body = await send(auPhone(), randomUUID(), 'hello');
    const answered = Date.now();
    const s = body.session;
    assert.equal(s.conversation, 1);
    assert.equal(s.expired, false);
    assert.ok(s.expires_at_ms >= sent + IDLE_MS && s.expires_at_ms <= answered + IDLE_MS, JSON.stringify(s));
  });

  test('GET /v1/webchat/sessions/{id}: no warning, then warning inside the last second, then expired', async () => {
    await withRetries(async () => {
      const sessionId = randomUUID();
      const { session } = await send(auPhone(), sessionId, 'still looking');
      const expiresAt = session.expires_at_ms;
      const warnAt = expiresAt - WARNING_MS;
      let sawQuiet = false;
      let sawWarning = false;
      for (;;) {
        const s = await status(sessionId);
        assert.equal(s.expires_at_ms, expiresAt, 'polling does not move the clock');
        assert.equal(s.conversation, 1);
        // Whatever the timing, the answer must agree with the clock it was taken in.
        if (s.answered < warnAt) {
          assert.deepEqual([s.warning, s.expired], [false, false], JSON.stringify(s));
          sawQuiet = true;
        } else if (s.sent >= warnAt && s.answered < expiresAt) {
          assert.deepEqual([s.warning, s.expired], [true, false], JSON.stringify(s));
          sawWarning = true;
        } else if (s.sent >= expiresAt) {
          assert.equal(s.expired, true, JSON.stringify(s));
          assert.equal(s.warning, false, JSON.stringify(s));
          break;
        }
        await sleep(100);
      }
      assert.ok(sawQuiet, 'observed the session before the warning window');
      return sawWarning;
    });
  });

  test('unknown session → 404; a malformed id → 400 invalid_session_id', async () => {
    const res = await gw.session(randomUUID());
    assert.equal(res.status, 404, res.text);
    assert.equal(res.body.error.code, 'not_found');
    // Session ids are 1–128 printable characters (plain widgets use any string).
    assert.equal((await gw.session('any-widget-session')).status, 404);
    const bad = await gw.session('x'.repeat(129));
    assert.equal(bad.status, 400, bad.text);
    assert.equal(bad.body.error.code, 'invalid_session_id');
    const control = await gw.session('tab%09here');
    assert.equal(control.status, 400, control.text);
  });

  test('after expiry: a new conversation whose first message carries what the customer said', async () => {
    const phone = auPhone();
    const sessionId = randomUUID();
    const first = `Do you have the Harbour jacket in navy? ${randomUUID().slice(0, 8)}`;
    const second = 'Size 12 please';
    await send(phone, sessionId, first);
    const { session } = await send(phone, sessionId, second);
    assert.equal(session.conversation, 1);
    await waitForInbound(gw, phone.e164, { count: 2 });

    // Wait until the gateway itself says the session is over.
    await waitFor(async () => (await status(sessionId)).expired, { timeoutMs: IDLE_MS + 10_000, what: 'expiry' });
    const late = 'Sorry, I got distracted — still available?';
    const body = await send(phone, sessionId, late);
    assert.equal(body.session.conversation, 2, JSON.stringify(body.session));
    assert.equal(body.session.expired, false);

    const msgs = await waitForInbound(gw, phone.e164, { count: 3 });
    assert.equal(msgs.length, 3);
    const resumed = msgs[2];
    assert.ok(
      resumed.body.startsWith('[Continuing an earlier chat that timed out. The customer had said: "'),
      `context note first: ${resumed.body}`,
    );
    assert.ok(resumed.body.includes(`"${first}"`), `the earlier text is quoted: ${resumed.body}`);
    assert.ok(resumed.body.includes(`"${second}"`), `the earlier text is quoted: ${resumed.body}`);
    assert.ok(resumed.body.endsWith(late), `then the new message: ${resumed.body}`);
    // A resumed conversation is not a new customer: no second confirmation text.
    await waitForEmptyOutbox(gw, phone.e164);
    assert.equal(outbound(await gw.sandbox.messages(phone.e164)).length, 1);
  });

  test('keepalive restarts the idle clock; a keepalive after expiry does not revive the session', async () => {
    await withRetries(async () => {
      const sessionId = randomUUID();
      const { session } = await send(auPhone(), sessionId, 'browsing');
      await sleep(1500);
      const res = await gw.keepalive(sessionId);
      assert.equal(res.status, 200, res.text);
      const kept = res.body.session;
      assert.equal(kept.expired, false);
      assert.ok(kept.expires_at_ms >= session.expires_at_ms + 1400, `extended: ${session.expires_at_ms} → ${kept.expires_at_ms}`);
      // Past the original expiry, before the new one: still alive.
      while (Date.now() <= session.expires_at_ms + 100) await sleep(50);
      const s = await status(sessionId);
      if (s.answered >= kept.expires_at_ms) return false; // too slow to tell
      assert.equal(s.expired, false, `alive after the original expiry: ${JSON.stringify(s)}`);
      assert.equal(s.expires_at_ms, kept.expires_at_ms);

      await waitFor(async () => (await status(sessionId)).expired, { timeoutMs: IDLE_MS + 10_000, what: 'expiry' });
      const late = await gw.keepalive(sessionId);
      assert.equal(late.status, 200, late.text);
      assert.equal(late.body.session.expired, true, late.text);
      assert.equal(late.body.session.expires_at_ms, kept.expires_at_ms, 'not extended');
      return true;
    });
  });

  test('keepalive of an unknown session → 404', async () => {
    const res = await gw.keepalive(randomUUID());
    assert.equal(res.status, 404, res.text);
  });
});

describe('opt-out (F6)', () => {
  /** Messages recorded for the phone, once its outbox has drained. */
  async function settled(phone) {
    await waitForEmptyOutbox(gw, phone.e164);
    return gw.sandbox.messages(phone.e164);
  }

  test('the first message of a phone that never opted out gets the confirmation text', async () => {
    const phone = auPhone();
    const sessionId = randomUUID();
    await send(phone, sessionId, 'First time here');
    const texts = await waitFor(async () => {
      const list = outbound(await gw.sandbox.messages(phone.e164));
      return list.length ? list : null;
    }, { what: 'the confirmation text', describe: () => workerTail(gw) });
    assert.equal(texts.length, 1);
    assert.equal(texts[0].body, CONFIRMATION);
    assert.equal(texts[0].locationUid, 'loc_sydney');
    assert.equal(texts[0].webchatUrl, undefined, 'a text to the phone, not a webchat message');
    // A second message in the same session continues it: no second text.
    await send(phone, sessionId, 'and one more question');
    assert.equal(outbound(await settled(phone)).length, 1);
  });

  test('STOP → no confirmation for a new session; admin shows opted_out via webchat; START → confirmations resume', async () => {
    const phone = auPhone();
    const t0 = Date.now();
    const stop = await send(phone, randomUUID(), 'STOP');
    assert.equal(stop.opt_out, 'opted_out');
    const afterStop = Date.now();

    // A new session would normally confirm by text.
    const next = await send(phone, randomUUID(), 'Actually, one question about returns');
    assert.equal(next.opt_out, null);
    const msgs = await settled(phone);
    assert.deepEqual(inbound(msgs).map((m) => m.body), ['STOP', 'Actually, one question about returns'], 'the chats still reach the inbox');
    assert.deepEqual(outbound(msgs), [], 'no text to an opted-out phone');
    // The phone's object knew at once: no confirmation was even queued (counted why).
    const metrics = await waitFor(async () => {
      const res = await gw.admin('GET', '/admin/metrics');
      return (res.body.counters?.['auto_text_skipped:opted_out'] ?? 0) >= 1 ? res.body.counters : null;
    }, { what: 'the auto_text_skipped:opted_out counter' });
    assert.ok(metrics['auto_text_skipped:opted_out'] >= 1);

    const admin = await gw.adminContact(phone.e164);
    assert.equal(admin.status, 200, admin.text);
    assert.equal(admin.body.phone, phone.e164);
    assert.equal(admin.body.opt_out.opted_out, true, admin.text);
    assert.equal(admin.body.opt_out.channel, 'webchat', admin.text);
    assert.ok(admin.body.opt_out.changed_at_ms >= t0 - 1000 && admin.body.opt_out.changed_at_ms <= afterStop + 1000, admin.text);
    assert.equal(admin.body.opt_out.history.length, 1, admin.text);

    const start = await send(phone, randomUUID(), 'START');
    assert.equal(start.opt_out, 'opted_in');
    const back = await gw.adminContact(phone.e164);
    assert.equal(back.body.opt_out.opted_out, false, back.text);
    assert.equal(back.body.opt_out.history.length, 2, back.text);

    await send(phone, randomUUID(), 'Thanks, one more thing');
    const texts = await waitFor(async () => {
      const list = outbound(await gw.sandbox.messages(phone.e164));
      return list.length ? list : null;
    }, { what: 'a confirmation after START', describe: () => workerTail(gw) });
    assert.equal(texts.length, 1);
    assert.equal(texts[0].body, CONFIRMATION);
    const all = await settled(phone);
    assert.equal(outbound(all).length, 1, JSON.stringify(all));
  });

  test('carrier keywords count only as the whole message, any case, trailing punctuation', async () => {
    for (const word of ['stop.', ' Unsubscribe ', 'CANCEL!', 'end', 'Quit', 'STOPALL']) {
      const phone = auPhone();
      const body = await send(phone, randomUUID(), word);
      assert.equal(body.opt_out, 'opted_out', `${JSON.stringify(word)} opts out`);
    }
    const back = auPhone();
    assert.equal((await send(back, randomUUID(), 'STOP')).opt_out, 'opted_out');
    assert.equal((await send(back, randomUUID(), 'unstop')).opt_out, 'opted_in', 'UNSTOP opts back in');
    const phone = auPhone();
    const body = await send(phone, randomUUID(), "please don't cancel my order");
    assert.equal(body.opt_out, null);
    const texts = await waitFor(async () => {
      const list = outbound(await gw.sandbox.messages(phone.e164));
      return list.length ? list : null;
    }, { what: 'the confirmation text' });
    assert.equal(texts.length, 1);
  });

  test('a confirmation still queued when STOP arrives is not sent (checked at the moment of sending)', async () => {
    const phone = auPhone();
    // Hold the phone's first Podium call so the confirmation waits in the outbox.
    await gw.sandbox.fault({ method: 'GET', path: `/v4/contacts/${encodeURIComponent(phone.e164)}`, status: 503, count: 2 });
    await send(phone, randomUUID(), 'Hi there');
    await send(phone, randomUUID(), 'STOP');
    const msgs = await settled(phone);
    assert.equal(inbound(msgs).length, 2, JSON.stringify(msgs));
    assert.deepEqual(outbound(msgs), [], 'the queued confirmation was suppressed');
  });

  test('the admin view shows drift between the gateway’s record and Podium’s (MISSION F19)',
    async () => {
      const phone = auPhone();
      await send(phone, randomUUID(), 'Hello');
      await settled(phone);
      // Opted out at Podium (say, by SMS there); the gateway still says opted in.
      const res = await fetch(`${gw.sandbox.url}/_sandbox/contacts/${encodeURIComponent(phone.e164)}/opt-out`, { method: 'POST' });
      assert.equal(res.status, 200);
      const admin = await gw.admin('GET', `/admin/contacts/${encodeURIComponent(phone.e164)}?live=true`);
      assert.equal(admin.status, 200, admin.text);
      assert.equal(admin.body.opt_out.opted_out, false, 'our record never heard of it');
      assert.equal(admin.body.podium.opted_out, true, `Podium's contact is read now: ${JSON.stringify(admin.body.podium)}`);
      assert.ok(admin.body.drift.length >= 1, `the view flags the disagreement: ${admin.text}`);
      assert.match(admin.body.drift[0].reason, /Podium has the phone opted out/);
    });
});
