// Integration (F18 durability): messages accepted while Podium is down wait in the
// phones' outboxes (SQLite-backed Durable Objects with alarms). Kill the runtime (workerd
// gets SIGKILL, as in a crash), start `wrangler dev` again on the same state directory
// with Podium healthy: every message is delivered, none twice.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import {
  auPhone, envelope, inbound, makeClient, outbound, page, startWorker, testConfig, waitFor,
} from '../support/gateway.mjs';
import { startSandbox } from '../support/sandbox.mjs';

let sandbox;
let worker;
let persist;

// Retries must not give up while the runtime is down and restarting: more attempts than
// the default test config (the backoff still caps at 2 s).
const config = testConfig({
  retry: { base_ms: 200, max_delay_ms: 2000, max_attempts: 50, rate_limited_min_ms: 1000, max_retry_after_ms: 5000 },
});

before(async () => {
  persist = mkdtempSync(path.join(os.tmpdir(), 'gateway-restart-state-'));
  sandbox = await startSandbox({ args: ['--rate-limit-per-minute', '0'] });
}, { timeout: 60_000 });

after(async () => {
  try {
    await worker?.stop();
  } finally {
    try { await sandbox?.stop(); } finally { rmSync(persist, { recursive: true, force: true }); }
  }
});

test('queued while Podium fails, runtime killed and restarted on the same state → all delivered exactly once', { timeout: 300_000 }, async () => {
  worker = await startWorker({ sandbox, config, persistTo: persist });
  let gw = makeClient(worker.url);

  await sandbox.fault({ method: 'POST', path: '/v4/messages', status: 500, count: 10_000 });
  const phones = Array.from({ length: 10 }, () => auPhone());
  const texts = new Map(phones.map((p) => [p.e164, `before the crash ${randomUUID()}`]));
  const sessionId = randomUUID();
  const answers = await Promise.all(phones.map((p, i) => gw.send(envelope({
    phone: p.national,
    text: texts.get(p.e164),
    sessionId: i === 0 ? sessionId : randomUUID(),
    location: { page_url: page('/sydney/') },
  }))));
  assert.deepEqual(answers.map((r) => r.status), Array(10).fill(202), answers.map((r) => r.text).join('\n'));

  // Every phone's chat has been tried (and refused) at least once.
  await waitFor(async () => {
    const { requests } = await sandbox.state();
    return requests.filter((r) => r.method === 'POST' && r.path === '/v4/messages' && r.status === 500).length >= 10;
  }, { timeoutMs: 30_000, what: '10 failed attempts' });
  for (const p of phones) {
    const res = await gw.adminContact(p.e164);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body.outbox.map((j) => j.type), ['chat', 'text'], `queued for ${p.e164}: ${res.text}`);
  }

  // Crash and restart on the same state; Podium recovers meanwhile.
  await worker.stop();
  worker = undefined;
  await sandbox.clearFaults();
  const { messages: beforeRestart } = await sandbox.state();
  assert.equal(inbound(beforeRestart).length, 0, 'nothing was delivered before the restart');

  worker = await startWorker({ sandbox, config, persistTo: persist });
  gw = makeClient(worker.url);

  await waitFor(async () => {
    const { messages } = await sandbox.state();
    const seen = new Set(inbound(messages).map((m) => m.channel.identifier));
    return phones.every((p) => seen.has(p.e164));
  }, { timeoutMs: 60_000, what: 'every queued chat after the restart', describe: () => worker.log().split('\n').slice(-30).join('\n') });
  // Let the outboxes drain completely (the confirmations follow the chats).
  for (const p of phones) {
    await waitFor(async () => {
      const res = await gw.adminContact(p.e164);
      return res.status === 200 && res.body.outbox.length === 0;
    }, { timeoutMs: 30_000, what: `an empty outbox for ${p.e164}` });
  }

  const { messages } = await sandbox.state();
  for (const p of phones) {
    const mine = messages.filter((m) => m.channel.identifier === p.e164);
    assert.deepEqual(inbound(mine).map((m) => m.body), [texts.get(p.e164)], `one chat for ${p.e164}`);
    assert.equal(outbound(mine).length, 1, `one confirmation for ${p.e164}`);
  }
  assert.equal((await sandbox.state()).contact_creates, 10, 'one contact per phone, across the restart');

  // The session survived the restart too.
  const session = await gw.session(sessionId);
  assert.equal(session.status, 200, session.text);
  assert.equal(session.body.session.conversation, 1);
});
