// Webhook benchmark (issue 4): in one run on one local workerd (`wrangler dev`), the
// throughput and p50/p99 of signed Podium deliveries (each one new: verified, claimed in
// its idempotency shard, stored, acknowledged) against the no-op GET /health under the
// same wrk load (their ratio); and the CPU of one signature verification per scheme
// (native release build of core) against Node's crypto HMAC on the same bytes (ratio).
// Prints Markdown; writes bench/results/webhooks.json.
//
// Knobs: BENCH_WRK_SECONDS [10], BENCH_WRK_CONNECTIONS [8], BENCH_WEBHOOK_SHARDS [16].

import { execFileSync } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { ROOT } from '../tests/support/stack.mjs';
import { CONNECTIONS, SECONDS, cleanup, startSandbox, startWorker, stop, wrk } from './workerd.mjs';

const SHARDS = Number(process.env.BENCH_WEBHOOK_SHARDS || 16);
const SECRET = 'bench-podium-secret';
const log = (...a) => console.error(...a);
const f = (x, d = 1) => (x == null ? '–' : Number(x).toFixed(d));

const CONFIG = {
  routing: {
    locations: [{ uid: 'loc_sydney', name: 'Sydney', region: 'AU', path_prefixes: ['/sydney/'] }],
    default_location_uid: 'loc_sydney',
  },
  webhooks: { shards: SHARDS },
};

function podiumDelivery(i, ts) {
  // message.received with ordinary text: the most common Podium event (ignored after
  // verification and dedup, so the figure is the ingress path itself).
  const body = JSON.stringify({
    data: { uid: `msg_${i}`, body: `Is order ${i} ready for pickup?`, conversation: { channel: { type: 'phone', identifier: '+61412345678' } } },
    metadata: { event_type: 'message.received', version: '2021.04.01' },
  });
  const sig = createHmac('sha256', SECRET).update(`${ts}.${body}`).digest('hex');
  return { ts, sig, body };
}

/** Node's crypto doing the same check (HMAC-SHA256 over `ts.body`, constant-time compare). */
function nodeVerifyNs(body, iterations) {
  const ts = '1795000000000';
  const expected = Buffer.from(createHmac('sha256', SECRET).update(`${ts}.${body}`).digest('hex'), 'hex');
  const run = () => {
    const got = createHmac('sha256', SECRET).update(`${ts}.`).update(body).digest();
    return timingSafeEqual(got, expected);
  };
  for (let i = 0; i < iterations / 10; i++) run();
  const t = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) run();
  return Number(process.hrtime.bigint() - t) / iterations;
}

function bodyOf(size) {
  let s = '{"data":{"body":"';
  while (s.length < size - 60) s += 'Do you have the blue one in a size 10? ';
  return `${s}"},"metadata":{"event_type":"message.received"}}`;
}

async function main() {
  const started = Date.now();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'gateway-bench-webhooks-'));
  try {
    log('==> CPU per verification: core (native, release) vs Node crypto');
    const rust = execFileSync('cargo', ['run', '-q', '--release', '-p', 'gateway-core', '--example', 'verify_bench'], { cwd: ROOT, encoding: 'utf8' })
      .trim().split('\n').map((l) => JSON.parse(l));
    const peer = {};
    for (const size of [...new Set(rust.map((r) => r.body_bytes))]) {
      peer[size] = nodeVerifyNs(bodyOf(size), size > 4096 ? 20_000 : 100_000);
    }

    const sandbox = await startSandbox();
    const worker = await startWorker(sandbox.url, path.join(tmp, 'state'), CONFIG, { WEBHOOK_SECRETS_PODIUM: SECRET });
    log(`==> worker ${worker.url}; warming up`);
    const ts = Date.now();
    const count = Math.max(20_000, SECONDS * 3000);
    const lines = [];
    for (let i = 0; i < count; i++) {
      const d = podiumDelivery(i, ts);
      lines.push(`${d.ts}\t${d.sig}\t${d.body}`);
    }
    const file = path.join(tmp, 'requests.tsv');
    writeFileSync(file, lines.join('\n'));
    // Warm every shard and the isolate (distinct events, outside the measured set).
    for (let i = 0; i < 50; i++) {
      const d = podiumDelivery(`warm-${i}`, Date.now());
      const res = await fetch(`${worker.url}/webhooks/podium`, { method: 'POST', headers: { 'content-type': 'application/json', 'podium-timestamp': String(d.ts), 'podium-signature': d.sig }, body: d.body });
      if (res.status !== 200) throw new Error(`warm-up delivery answered ${res.status}: ${await res.text()}`);
    }
    log(`==> load: wrk -t1 -c${CONNECTIONS} -d${SECONDS}s`);
    const health = wrk(`${worker.url}/health`);
    log(`  GET /health: ${health.rps} req/s, p50 ${health.p50} ms, p99 ${health.p99} ms`);
    process.env.WEBHOOK_REQUESTS = file;
    const hooks = wrk(`${worker.url}/webhooks/podium`, path.join(ROOT, 'bench/wrk-webhooks.lua'));
    log(`  POST /webhooks/podium: ${hooks.rps} req/s, p50 ${hooks.p50} ms, p99 ${hooks.p99} ms, non-2xx ${hooks.non2xx}`);
    if (hooks.requests > count) log(`  note: ${hooks.requests} requests > ${count} distinct deliveries: the rest were duplicates`);
    // wrangler dev's proxy may close idle keep-alive sockets after the load: retry.
    let metrics = {};
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        metrics = await (await fetch(`${worker.url}/admin/metrics`, { headers: { authorization: 'Bearer bench-admin', connection: 'close' } })).json();
        break;
      } catch (e) {
        log(`  metrics: ${e.message}; retrying`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    await stop(worker.child);
    await stop(sandbox.child);

    const result = {
      startedAt: new Date(started).toISOString(), shards: SHARDS,
      load: { connections: CONNECTIONS, seconds: SECONDS, threads: 1 },
      health, webhooks: hooks, podiumCounters: metrics.webhooks?.podium,
      verifyNs: rust.map((r) => ({ ...r, node_ns: peer[r.body_bytes] })),
      cores: os.cpus().length, loadAverageAtStart: os.loadavg()[0],
    };
    mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
    writeFileSync(path.join(ROOT, 'bench/results/webhooks.json'), JSON.stringify(result, null, 2));

    console.log(`### Signed Podium webhooks under wrangler dev, ${SHARDS} idempotency shards, wrk -t1 -c${CONNECTIONS} -d${SECONDS}s\n`);
    console.log('| Measure | POST /webhooks/podium (new events) | GET /health (no-op) | webhooks ÷ no-op |');
    console.log('|---|---:|---:|---:|');
    console.log(`| Requests/s | ${f(hooks.rps)} | ${f(health.rps)} | ${f(hooks.rps / health.rps, 3)}× |`);
    console.log(`| p50 latency | ${f(hooks.p50, 2)} ms | ${f(health.p50, 2)} ms | ${f(hooks.p50 / health.p50, 1)}× |`);
    console.log(`| p99 latency | ${f(hooks.p99, 2)} ms | ${f(health.p99, 2)} ms | ${f(hooks.p99 / health.p99, 1)}× |`);
    console.log(`| Non-2xx responses | ${hooks.non2xx} of ${hooks.requests} | ${health.non2xx} of ${health.requests} | |`);
    const c = metrics.webhooks?.podium ?? {};
    console.log(`\nGateway counters after the run: verified ${c.verified}, duplicate ${c.duplicate}, rejected ${c.rejected}, ignored ${c.ignored}.\n`);
    console.log('| CPU per verification | body | core (native release; sha2, hmac at opt-level 3) | Node crypto (same HMAC + compare) | core ÷ Node |');
    console.log('|---|---:|---:|---:|---:|');
    for (const r of rust) {
      console.log(`| ${r.scheme} | ${r.body_bytes} B | ${f(r.ns_per_verify / 1000, 2)} µs | ${f(peer[r.body_bytes] / 1000, 2)} µs | ${f(r.ns_per_verify / peer[r.body_bytes], 2)}× |`);
    }
    console.log(`\n_${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(2)} at start; took ${f((Date.now() - started) / 1000, 0)} s._`);
  } finally {
    cleanup();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); cleanup(); process.exit(1); });
