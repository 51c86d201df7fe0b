// The upgrade from the earlier object layout (one OptOut object per phone, one Ledger for
// dead letters and counters, outboxes in Contact) to this one (the phone object holds the
// opt-out record; operations are sharded). The state directory in
// tests/fixtures/legacy-state-v3 was written by that version (its make.mjs, run against
// commit 2be42c2): this version, started on it, must honour every decision in it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { ROOT } from '../support/stack.mjs';
import { startGateway, testConfig, envelope, waitFor, waitForInbound, inbound, outbound, sleep, workerTail } from '../support/gateway.mjs';
import { secretVars } from '../support/webhooks.mjs';

const FIXTURE = path.join(ROOT, 'tests/fixtures/legacy-state-v3');
// What the old version was left holding (see make.mjs).
const SMS_STOP = '+61412000001'; // STOP texted from the phone: the old OptOut object, channel sms
const WEB_STOP = '+61412000002'; // STOP typed in the webchat
const PENDING = '+61412000003'; // a chat (and its confirmation) still in the old outbox
const DEAD = '+61412000004'; // a dead letter in the old Ledger

let gw;
let dir;
before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'gateway-upgrade-'));
  cpSync(FIXTURE, dir, { recursive: true });
  gw = await startGateway({ persistTo: dir, vars: secretVars() });
}, { timeout: 240_000 });
after(async () => {
  await gw?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('an opt-out made on a verified channel before the upgrade still holds, and a webchat START cannot lift it', async () => {
  const view = await gw.adminContact(SMS_STOP);
  assert.equal(view.status, 200, view.text);
  assert.equal(view.body.opt_out.opted_out, true, `imported from the old OptOut object: ${view.text}`);
  assert.equal(view.body.opt_out.governed_by, 'sms', view.text);
  const start = await gw.send(envelope({ phone: SMS_STOP, text: 'START' }));
  assert.equal(start.status, 202, start.text);
  assert.equal(start.body.opt_out, 'still_opted_out', start.text);
  assert.match(start.body.opt_out_message, /text START/i);
  // A chat in a new session: delivered to the inbox, but no text to the phone.
  await gw.send(envelope({ phone: SMS_STOP, text: 'hello again' }));
  await waitFor(async () => inbound(await gw.sandbox.messages(SMS_STOP)).length >= 2, { what: 'both chats in the inbox' });
  await sleep(1500);
  assert.equal(outbound(await gw.sandbox.messages(SMS_STOP)).length, 0, 'no text to a phone that texted STOP');
  assert.equal((await gw.adminContact(SMS_STOP)).body.opt_out.opted_out, true);
});

test('a webchat STOP from before the upgrade holds until a webchat START', async () => {
  const view = await gw.adminContact(WEB_STOP);
  assert.equal(view.body.opt_out.opted_out, true, view.text);
  assert.equal(view.body.opt_out.governed_by, 'webchat', view.text);
  const start = await gw.send(envelope({ phone: WEB_STOP, text: 'START' }));
  assert.equal(start.body.opt_out, 'opted_in', start.text);
  assert.equal((await gw.adminContact(WEB_STOP)).body.opt_out.opted_out, false);
});

test('a chat queued by the old version is delivered, once', async () => {
  const list = await waitForInbound(gw, PENDING, { timeoutMs: 40_000 });
  await sleep(1500);
  const all = inbound(await gw.sandbox.messages(PENDING));
  assert.equal(all.length, 1, `delivered once: ${JSON.stringify(all.map((m) => m.body))}`);
  assert.equal(list[0].body, 'queued before the upgrade');
});

test("the old Ledger's dead letter moves to the shards and replays", async () => {
  const before = await gw.admin('GET', '/admin/dead-letters');
  assert.equal(before.status, 200, before.text);
  assert.ok(!before.body.dead_letters.some((l) => l.phone === DEAD), 'not in the shards before the migration');
  const migrated = await gw.admin('POST', '/admin/migrate/ledger');
  assert.equal(migrated.status, 200, migrated.text);
  assert.equal(migrated.body.done, true, migrated.text);
  assert.ok(migrated.body.copied.dl >= 1, migrated.text);
  const again = await gw.admin('POST', '/admin/migrate/ledger');
  assert.equal(again.status, 200, 'running it again is harmless');
  const after = await gw.admin('GET', '/admin/dead-letters');
  // The old version dead-lettered the chat (and its confirmation text) when Podium
  // answered 400: each copied once, the chat replayable.
  const letters = after.body.dead_letters.filter((l) => l.phone === DEAD && l.job.type === 'chat');
  assert.equal(letters.length, 1, `copied once: ${after.text}`);
  const replay = await gw.admin('POST', `/admin/dead-letters/${letters[0].id}/replay`);
  assert.equal(replay.status, 202, replay.text);
  const delivered = await waitForInbound(gw, DEAD, { timeoutMs: 30_000 });
  assert.equal(delivered[0].body, 'this one will be refused');
  const gone = await gw.admin('GET', '/admin/dead-letters');
  assert.ok(!gone.body.dead_letters.some((l) => l.id === letters[0].id), workerTail(gw));
});

test('a fresh phone after the upgrade is an ordinary phone (nothing to import)', async () => {
  const phone = '+61412000099';
  const res = await gw.send(envelope({ phone, sessionId: randomUUID(), text: 'hi' }));
  assert.equal(res.status, 202, res.text);
  assert.equal(res.headers.get('x-gateway-object-calls'), '2', 'session + phone');
  const view = await gw.adminContact(phone);
  assert.equal(view.body.opt_out.opted_out, false);
});

test('import_legacy_optouts: false reads nothing from the former objects (for fresh installs only); turned back on, what was skipped is imported', { timeout: 240_000 }, async () => {
  // Its own copy of the old state: the gateway above has already imported it.
  const copy = mkdtempSync(path.join(os.tmpdir(), 'gateway-upgrade-off-'));
  cpSync(FIXTURE, copy, { recursive: true });
  let off;
  let on;
  try {
    off = await startGateway({ persistTo: copy, vars: secretVars(), config: testConfig({ import_legacy_optouts: false }) });
    const skipped = await off.adminContact(SMS_STOP);
    assert.equal(skipped.status, 200, skipped.text);
    assert.equal(skipped.body.opt_out.opted_out, false, `off: the old OptOut object is not read, which is why an upgraded gateway must keep it on: ${skipped.text}`);
    const chat = await off.send(envelope({ phone: '+61412000098', sessionId: randomUUID(), text: 'hi' }));
    assert.equal(chat.status, 202, chat.text);
    await waitForInbound(off, '+61412000098');
    await off.stop();
    off = null;
    on = await startGateway({ persistTo: copy, vars: secretVars() });
    const imported = await on.adminContact(SMS_STOP);
    assert.equal(imported.body.opt_out.opted_out, true, `on again: imported now: ${imported.text}`);
    assert.equal(imported.body.opt_out.governed_by, 'sms', imported.text);
  } finally {
    await off?.stop();
    await on?.stop();
    rmSync(copy, { recursive: true, force: true });
  }
});
