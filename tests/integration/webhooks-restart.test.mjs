// Integration (F14, F15 durability): a verified webhook is acknowledged first and
// processed after. Kill the runtime (workerd gets SIGKILL, as in a crash) between the
// acknowledgement and the processing, start `wrangler dev` again on the same state
// directory after the event was due: it is processed exactly once after the restart, and
// the provider's retry of the same delivery is still recognised as a duplicate.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { makeClient, sleep, startWorker, testConfig, waitFor } from '../support/gateway.mjs';
import { startSandbox } from '../support/sandbox.mjs';
import * as hooks from '../support/webhooks.mjs';
import { deliver, secretVars } from '../support/webhooks.mjs';

const PROCESS_DELAY_MS = 4000;

let sandbox;
let worker;
let persist;

before(async () => {
  persist = mkdtempSync(path.join(os.tmpdir(), 'gateway-webhooks-restart-state-'));
  sandbox = await startSandbox({ args: ['--rate-limit-per-minute', '0'] });
}, { timeout: 60_000 });

after(async () => {
  try {
    await worker?.stop();
  } finally {
    try { await sandbox?.stop(); } finally { rmSync(persist, { recursive: true, force: true }); }
  }
});

test('acknowledged, runtime killed before processing, restarted on the same state → processed exactly once; a retry is a duplicate', { timeout: 300_000 }, async (t) => {
  const config = testConfig({
    webhooks: { alert_url: `${sandbox.url}/_sandbox/alerts`, shards: 4, process_delay_ms: PROCESS_DELAY_MS },
  });
  const start = () => startWorker({ sandbox, config, persistTo: persist, vars: secretVars() });
  worker = await start();
  let gw = makeClient(worker.url);
  const alertsFor = async (uid) => (await sandbox.state()).alerts.filter((a) => a.body?.review?.uid === uid);

  // Warm the path (isolate, shard objects) with an ignored event, so the delivery under
  // test is acknowledged well inside the window.
  const warm = await deliver(gw, 'podium', hooks.podium('conversation.assigned', { uid: randomUUID() }));
  assert.equal(warm.status, 200, warm.text);

  const uid = `rev_${randomUUID()}`;
  const signed = hooks.podium('review.created', { uid, rating: 1, locationUid: 'loc_sydney', reviewSite: 'Google' });
  const t0 = Date.now();
  const ack = await deliver(gw, 'podium', signed);
  assert.equal(ack.status, 200, ack.text);
  assert.equal(ack.body.duplicate, false, ack.text);
  assert.equal(ack.body.state, 'pending', ack.text);

  // Crash inside the processing delay.
  await worker.stop();
  worker = undefined;
  const killedAfter = Date.now() - t0;
  assert.ok(killedAfter < PROCESS_DELAY_MS, `killed ${killedAfter} ms after the ack, before processing was due`);
  assert.deepEqual(await alertsFor(uid), [], 'nothing was processed before the crash');
  // Stay down until the event is overdue: nobody is running when its alarm is due.
  await sleep(Math.max(0, t0 + PROCESS_DELAY_MS + 1000 - Date.now()));
  assert.deepEqual(await alertsFor(uid), [], 'nothing processed while down');

  worker = await start();
  gw = makeClient(worker.url);
  const restartedAfter = Date.now() - t0;

  await waitFor(async () => (await alertsFor(uid)).length >= 1, {
    timeoutMs: 60_000, what: 'the alert after the restart', describe: () => worker.log().split('\n').slice(-30).join('\n'),
  });
  // Give a second (wrong) processing every chance to show up.
  await waitFor(async () => {
    const res = await gw.admin('GET', '/admin/metrics');
    return res.status === 200 && !res.body.webhooks.stored?.pending ? res.body : null;
  }, { timeoutMs: 30_000, what: 'nothing pending' });
  await sleep(1500);
  const alerts = await alertsFor(uid);
  assert.equal(alerts.length, 1, `exactly one alert: ${JSON.stringify(alerts)}`);
  assert.ok(alerts[0].at_ms - t0 >= PROCESS_DELAY_MS, 'not before the processing delay');
  assert.match(alerts[0].body.text, /1★/);

  // Podium retries the same bytes (it never saw our 200, say): a duplicate of a done event.
  const retry = await deliver(gw, 'podium', signed);
  assert.equal(retry.status, 200, retry.text);
  assert.equal(retry.body.duplicate, true, retry.text);
  assert.equal(retry.body.state, 'done', retry.text);
  await sleep(500);
  assert.equal((await alertsFor(uid)).length, 1, 'the retry changes nothing');

  const m = (await gw.admin('GET', '/admin/metrics')).body.webhooks.podium;
  assert.equal(m.verified, 2, `the warm-up and the review: ${JSON.stringify(m)}`);
  assert.equal(m.duplicate, 1, JSON.stringify(m));
  assert.equal(m.processed, 1, `processed once, across the restart: ${JSON.stringify(m)}`);
  t.diagnostic(`restart: killed ${killedAfter} ms after the ack, back up after ${restartedAfter} ms, alert at ${alerts[0].at_ms - t0} ms`);
});
