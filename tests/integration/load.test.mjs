// Integration (issue 12): the message path under load against the real worker and a
// flaky Podium — 1,000 messages from 200 phones over 300 sessions at 16 concurrent
// connections, the sandbox failing 20% of calls at random (500, 503, 429 with and
// without Retry-After) without ever half-doing one. Exactly 200 contacts, 1,000
// messages delivered and none twice, every opt-out sent mid-run honoured, and the
// gateway's counters equal to what the sandbox recorded.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { CONFIRMATION, auPhone, envelope, page, startGateway, testConfig, waitFor, workerTail } from '../support/gateway.mjs';

const PHONES = 200;
const SESSIONS = 300;
const MESSAGES = 1000;
const CONCURRENCY = 16;
const STOPPED = 10; // phones that text STOP half-way (in their first session)

let gw;
before(async () => {
  gw = await startGateway({
    config: testConfig({
      // Sessions that outlast the run (a timed-out session would prefix context notes).
      session: { idle_ms: 600_000, warning_ms: 60_000 },
      // Never give up on a flaky Podium (P(30 failures in a row) ≈ 1e-21).
      retry: { base_ms: 100, max_delay_ms: 1000, max_attempts: 30, rate_limited_min_ms: 300, max_retry_after_ms: 2000 },
      podium: { requests_per_minute: 12_000, timeout_ms: 5000 },
    }),
  });
}, { timeout: 240_000 });
after(async () => { await gw?.stop(); });

/** Run `jobs` (functions) with at most `n` at once. */
async function pool(jobs, n) {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < jobs.length) {
      const job = jobs[next++];
      await job();
    }
  }));
}

test('1,000 messages, 200 phones, 300 sessions, 16 at a time, Podium failing 20% → 200 contacts, 1,000 delivered once, opt-outs honoured, counters exact', { timeout: 300_000 }, async () => {
  const phones = Array.from({ length: PHONES }, () => auPhone());
  // Sessions 0..199: each phone's first; 200..299: a second session for phones 0..99.
  const sessions = Array.from({ length: SESSIONS }, (_, s) => ({ id: randomUUID(), phone: phones[s % PHONES] }));
  const runId = randomUUID().slice(0, 8);
  let seq = 0;
  const texts = new Set();
  const message = (s) => {
    seq += 1;
    const text = `load ${runId} #${seq}`;
    texts.add(text);
    return { session: sessions[s], text };
  };
  // Phase A: the first sessions (600 messages); phase B: STOP from phones 0..9 in their
  // first session; phase C: the rest, mostly second sessions (390 messages).
  const phaseA = Array.from({ length: 600 }, (_, i) => message(i % PHONES));
  const phaseB = Array.from({ length: STOPPED }, (_, p) => ({ session: sessions[p], text: 'STOP' }));
  const phaseC = Array.from({ length: MESSAGES - 600 - STOPPED }, (_, i) => message(PHONES + (i % (SESSIONS - PHONES))));
  assert.equal(phaseA.length + phaseB.length + phaseC.length, MESSAGES);

  await gw.sandbox.config({ random_fault_percent: 20, random_fault_statuses: [500, 503, 429] });
  const statuses = {};
  const sendAll = (list) => pool(list.map((m) => async () => {
    const res = await gw.send(envelope({ phone: m.session.phone.national, sessionId: m.session.id, text: m.text, location: { page_url: page('/sydney/') } }));
    statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    if (res.status !== 202) throw new Error(`${res.status} ${res.text}`);
    assert.equal(res.headers.get('x-gateway-object-calls'), '2', 'two object calls per message');
  }), CONCURRENCY);
  const t0 = Date.now();
  await sendAll(phaseA);
  await sendAll(phaseB);
  await sendAll(phaseC);
  const ingestMs = Date.now() - t0;
  assert.deepEqual(statuses, { 202: MESSAGES });

  const mine = (s) => s.messages.filter((m) => phones.some((p) => p.e164 === m.channel?.identifier));
  const state = await waitFor(async () => {
    const s = await gw.sandbox.state();
    const delivered = mine(s).filter((m) => m.direction === 'inbound_webchat').length;
    return delivered >= MESSAGES ? s : null;
  }, { timeoutMs: 240_000, intervalMs: 1000, what: `${MESSAGES} messages delivered`, describe: () => workerTail(gw) });
  await gw.sandbox.config({ random_fault_percent: 0 });
  // Let the confirmations finish, then read everything once more.
  await waitFor(async () => {
    const s = await gw.sandbox.state();
    return mine(s).filter((m) => m.direction === 'outbound').length >= 280 ? s : null;
  }, { timeoutMs: 120_000, intervalMs: 1000, what: 'the confirmations' });
  await new Promise((r) => setTimeout(r, 3000));
  const final = await gw.sandbox.state();
  const faults = final.requests.filter((r) => r.faulted).length;

  // Exactly one contact per phone.
  const contacts = final.contacts.filter((c) => c.channels?.some((ch) => phones.some((p) => p.e164 === ch.identifier)) || phones.some((p) => p.e164 === c.phoneNumber));
  assert.equal(contacts.length, PHONES, `contacts: ${contacts.length}`);
  // Every message delivered, none twice.
  const inboundMsgs = mine(final).filter((m) => m.direction === 'inbound_webchat');
  assert.equal(inboundMsgs.length, MESSAGES, `inbound: ${inboundMsgs.length}`);
  const bodies = inboundMsgs.map((m) => m.body).filter((b) => b !== 'STOP');
  assert.equal(new Set(bodies).size, bodies.length, 'no message delivered twice');
  assert.deepEqual(new Set(bodies), texts, 'every message delivered');
  // Confirmations: one per new session, none to a phone after its STOP.
  const outboundMsgs = mine(final).filter((m) => m.direction === 'outbound');
  assert.ok(outboundMsgs.every((m) => m.body === CONFIRMATION));
  const perPhone = (p) => outboundMsgs.filter((m) => m.channel.identifier === p.e164).length;
  for (let p = 0; p < PHONES; p++) {
    const want = p < STOPPED ? 1 : (p < SESSIONS - PHONES ? 2 : 1);
    assert.equal(perPhone(phones[p]), want, `texts to phone #${p}${p < STOPPED ? ' (STOP before its second session)' : ''}`);
  }
  // The gateway's counters equal what the sandbox recorded.
  const counters = await waitFor(async () => {
    const c = (await gw.admin('GET', '/admin/metrics')).body.counters ?? {};
    return (c.forwarded ?? 0) >= MESSAGES && (c.texted ?? 0) >= outboundMsgs.length ? c : null;
  }, { what: 'the counters' });
  assert.equal(counters.received, MESSAGES, JSON.stringify(counters));
  assert.equal(counters.forwarded, inboundMsgs.length, JSON.stringify(counters));
  assert.equal(counters.texted, outboundMsgs.length, JSON.stringify(counters));
  assert.equal(counters.dead_lettered ?? 0, 0, JSON.stringify(counters));
  assert.ok((counters.retried ?? 0) > 0, 'the faults were retried');
  console.log(`# load: ingest ${MESSAGES} in ${ingestMs} ms (${Math.round(MESSAGES / (ingestMs / 1000))}/s); ${faults} injected faults; ${counters.retried} retries`);
});
