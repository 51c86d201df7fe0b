// Integration (F8, F9): review requests are durably scheduled — Durable Object alarms on
// persisted state, not sleeps. Kill the runtime (workerd gets SIGKILL, as in a crash)
// while a request waits out its refund buffer, start `wrangler dev` again on the same
// state directory: it fires once, after the restart. And kill it while the invite call is
// in flight: Podium got the invite, the gateway never heard the answer — after the
// restart the request is marked unknown and escalated, never sent a second time.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { auPhone, makeClient, sleep, startWorker, waitFor } from '../support/gateway.mjs';
import { startSandbox } from '../support/sandbox.mjs';
import {
  alertsFor, invitesFor, orderFulfilled, phoneView, reviewsConfig, reviewsVars, targetGateway, waitForOrderState,
} from '../support/reviews.mjs';

const REFUND_BUFFER_MS = 8000;
// The invite call is slowed to this at the sandbox (and the gateway waits for it).
const SLOW_INVITE_MS = 6000;

let sandbox;
let worker;
let persist;
let config;
// `gw`-shaped handle for the helpers: the client of the current worker plus the sandbox.
const gw = {};

async function start() {
  worker = await startWorker({ sandbox, config, persistTo: persist, vars: reviewsVars() });
  Object.assign(gw, makeClient(worker.url), { sandbox, worker });
  await targetGateway(gw);
}

async function crash() {
  await worker.stop();
  worker = undefined;
}

before(async () => {
  persist = mkdtempSync(path.join(os.tmpdir(), 'gateway-reviews-restart-'));
  sandbox = await startSandbox({ args: ['--rate-limit-per-minute', '0'] });
  config = reviewsConfig(sandbox, { refundBufferMs: REFUND_BUFFER_MS, unresolvedAfterMs: 600_000 });
  config.podium = { ...config.podium, timeout_ms: SLOW_INVITE_MS + 4000 };
  await start();
}, { timeout: 240_000 });

after(async () => {
  try {
    await worker?.stop();
  } finally {
    try { await sandbox?.stop(); } finally { rmSync(persist, { recursive: true, force: true }); }
  }
});

test('runtime killed during the refund buffer → the request fires once, after the restart', { timeout: 240_000 }, async () => {
  const phone = auPhone();
  const { order } = await orderFulfilled(gw, { phone: phone.e164 });
  const scheduled = await waitForOrderState(gw, phone.e164, order.id, 'scheduled');

  await crash();
  const restartAt = Date.now();
  assert.ok(restartAt < scheduled.fire_at_ms, 'killed inside the buffer');
  assert.deepEqual(await invitesFor(gw, phone.e164), [], 'nothing sent before the crash');
  await start();

  const sent = await waitForOrderState(gw, phone.e164, order.id, 'sent', { timeoutMs: REFUND_BUFFER_MS + 30_000 });
  const invites = await invitesFor(gw, phone.e164);
  assert.equal(invites.length, 1, JSON.stringify(invites));
  assert.equal(invites[0].uid, sent.invite.uid);
  assert.ok(Date.parse(invites[0].createdAt) > restartAt, 'sent by the restarted runtime');
  assert.ok(Date.parse(invites[0].createdAt) >= scheduled.fire_at_ms - 50, 'not before the buffer ended');
  await sleep(3000);
  assert.equal((await invitesFor(gw, phone.e164)).length, 1, 'exactly one invite');
});

test('runtime killed while the invite call is in flight → unknown and escalated after the restart, never sent twice', { timeout: 240_000 }, async () => {
  const phone = auPhone();
  // Podium takes its time over the invite (and creates it even if the caller is gone).
  await sandbox.fault({ method: 'POST', path: '/v4/reviews/invites', status: 200, delay_ms: SLOW_INVITE_MS });
  const { order } = await orderFulfilled(gw, { phone: phone.e164 });
  const sending = await waitForOrderState(gw, phone.e164, order.id, 'sending', { timeoutMs: REFUND_BUFFER_MS + 15_000 });
  await crash();
  await waitFor(async () => (await invitesFor(gw, phone.e164)).length === 1, { timeoutMs: SLOW_INVITE_MS + 5000, what: 'Podium finishing the invite' });

  await start();
  // The alarm stays armed for SENDING_GRACE_MS (30 s) after the send began.
  const unknown = await waitForOrderState(gw, phone.e164, order.id, 'unknown', { timeoutMs: 60_000 });
  assert.equal(unknown.reason.code, 'interrupted', JSON.stringify(unknown));
  assert.ok(unknown.updated_ms >= sending.updated_ms + 30_000 - 1000, 'after the grace, not while the call could still be running');
  const alerts = await waitFor(async () => {
    const found = await alertsFor(gw, sending.id);
    return found.length ? found : null;
  }, { what: 'the escalation of the interrupted send' });
  assert.match(alerts[0].body.text, /interrupted/);
  await sleep(3000);
  assert.equal((await invitesFor(gw, phone.e164)).length, 1, 'never sent a second time');
  assert.equal((await alertsFor(gw, sending.id)).length, 1, 'escalated once');
  const view = await phoneView(gw, phone.e164);
  assert.ok(view.reviews.cooldown_remaining_ms > 0, `the customer may have it: cooldown holds: ${JSON.stringify(view.reviews)}`);
});
