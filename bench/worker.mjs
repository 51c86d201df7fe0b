// Worker benchmark (issue 3): in one run on one local workerd (`wrangler dev`),
// requests/s and p50/p99 for POST /v1/webchat/messages and for the no-op GET /health
// under the same bounded wrk load (their ratio), the time of the first request after a
// cold start (phone metadata load) vs a warm one, and the deploy bundle size from
// `wrangler deploy --dry-run`. Prints a Markdown table; writes bench/results/worker.json.
//
// Knobs: BENCH_WRK_SECONDS [10], BENCH_WRK_CONNECTIONS [8], BENCH_COLD_RUNS [3],
// BENCH_COLD_ONLY [unset]: 1 = bundle size and cold vs warm request only, no wrk load
// (`scripts/bench.sh worker-cold`: quicker and quieter on a shared machine).

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { ROOT } from '../tests/support/stack.mjs';
import { CONNECTIONS, SECONDS, cleanup, startSandbox, startWorker, stop, wrk } from './workerd.mjs';
const COLD_RUNS = Number(process.env.BENCH_COLD_RUNS || 3);
const COLD_ONLY = process.env.BENCH_COLD_ONLY === '1';
const log = (...a) => console.error(...a);

const CONFIG = {
  routing: {
    locations: [
      { uid: 'loc_sydney', name: 'Sydney', region: 'AU', path_prefixes: ['/sydney/'] },
      { uid: 'loc_sanfrancisco', name: 'San Francisco', region: 'US', path_prefixes: ['/san-francisco/'] },
    ],
    default_location_uid: 'loc_sydney',
  },
  // The bench measures the edge, not our own limits.
  rate_limits: { per_ip: { burst: 1000000, per_minute: 100000000 }, per_session: { burst: 1000, per_minute: 1000000 } },
  podium: { requests_per_minute: 100000 },
};

async function timed(url, init) {
  const t = performance.now();
  const res = await fetch(url, init);
  await res.arrayBuffer();
  return { ms: performance.now() - t, status: res.status };
}

const VALIDATE_BODY = JSON.stringify({
  session_id: '6f9619ff-8b86-4011-b42d-00cf4fc964ff',
  message: { type: 'text', value: 'hi' },
  contact: { phone: '0412 345 678' },
  location: { page_url: 'http://127.0.0.1/sydney/' },
});
const validate = (url) => timed(`${url}/v1/webchat/validate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: VALIDATE_BODY });
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

async function main() {
  const started = Date.now();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'gateway-bench-'));
  try {
    log('==> bundle size (wrangler deploy --dry-run)');
    const dry = execFileSync(process.execPath, [path.join(ROOT, 'node_modules/wrangler/wrangler-dist/cli.js'), 'deploy', '--dry-run', '--outdir', path.join(tmp, 'dist')], {
      cwd: ROOT, encoding: 'utf8', env: { ...process.env, WRANGLER_SEND_METRICS: 'false', PATH: `${ROOT}/node_modules/.bin:${os.homedir()}/.cargo/bin:${process.env.PATH}` },
    });
    const upload = dry.match(/Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/);
    const bundle = upload ? { raw_kib: Number(upload[1]), gzip_kib: Number(upload[2]) } : null;
    log(`  ${upload ? upload[0] : 'not found'}`);

    const sandbox = await startSandbox();
    log(`==> sandbox ${sandbox.url}`);

    log(`==> cold vs warm first request (${COLD_RUNS} fresh workerd starts)`);
    const cold = [];
    let warm = [];
    for (let i = 0; i < COLD_RUNS; i++) {
      const worker = await startWorker(sandbox.url, path.join(tmp, `cold-${i}`), CONFIG);
      // /health touches no phone code; the first validate builds the metadata.
      cold.push((await validate(worker.url)).ms);
      for (let j = 0; j < 20; j++) warm.push((await validate(worker.url)).ms);
      await stop(worker.child);
    }
    log(`  cold ${cold.map((x) => x.toFixed(1)).join(', ')} ms; warm median ${median(warm).toFixed(2)} ms`);
    // The same cold start with GET /health first (no envelope, no phone check), then the
    // first validate: what the phone engine adds to a cold request is the difference.
    const coldHealth = [];
    const afterHealth = [];
    for (let i = 0; i < COLD_RUNS; i++) {
      const worker = await startWorker(sandbox.url, path.join(tmp, `cold-health-${i}`), CONFIG);
      coldHealth.push((await timed(`${worker.url}/health`)).ms);
      afterHealth.push((await validate(worker.url)).ms);
      await stop(worker.child);
    }
    log(`  cold GET /health ${coldHealth.map((x) => x.toFixed(1)).join(', ')} ms; then the first validate ${afterHealth.map((x) => x.toFixed(1)).join(', ')} ms`);

    let health = null;
    let messages = null;
    if (!COLD_ONLY) {
    log(`==> load: wrk -t1 -c${CONNECTIONS} -d${SECONDS}s on one workerd`);
    const worker = await startWorker(sandbox.url, path.join(tmp, 'load'), CONFIG);
    for (let j = 0; j < 20; j++) await validate(worker.url);
    health = wrk(`${worker.url}/health`);
    log(`  GET /health: ${health.rps} req/s, p50 ${health.p50} ms, p99 ${health.p99} ms`);
    messages = wrk(`${worker.url}/v1/webchat/messages`, path.join(ROOT, 'bench/wrk-webchat.lua'));
    log(`  POST /v1/webchat/messages: ${messages.rps} req/s, p50 ${messages.p50} ms, p99 ${messages.p99} ms, non-2xx ${messages.non2xx}`);
    await stop(worker.child);
    }
    await stop(sandbox.child);

    const result = {
      startedAt: new Date(started).toISOString(),
      elapsedS: (Date.now() - started) / 1000,
      load: { connections: CONNECTIONS, seconds: SECONDS, threads: 1 },
      health, messages, bundle,
      coldFirstRequestMs: cold, warmRequestMedianMs: median(warm),
      coldFirstHealthMs: coldHealth, firstValidateAfterHealthMs: afterHealth,
      cores: os.cpus().length, loadAverageAtStart: os.loadavg()[0],
    };
    mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
    writeFileSync(path.join(ROOT, 'bench/results/worker.json'), JSON.stringify(result, null, 2));
    const f = (x, d = 1) => (x == null ? '–' : Number(x).toFixed(d));
    console.log(`### Worker under wrangler dev (workerd ${execFileSync(path.join(ROOT, 'node_modules/.bin/workerd'), ['--version'], { encoding: 'utf8' }).trim()}), loopback, wrk -t1 -c${CONNECTIONS} -d${SECONDS}s\n`);
    if (messages && health) {
      console.log('| Measure | POST /v1/webchat/messages | GET /health (no-op) | messages ÷ no-op |');
      console.log('|---|---:|---:|---:|');
      console.log(`| Requests/s | ${f(messages.rps)} | ${f(health.rps)} | ${f(messages.rps / health.rps, 3)}× |`);
      console.log(`| p50 latency | ${f(messages.p50, 2)} ms | ${f(health.p50, 2)} ms | ${f(messages.p50 / health.p50, 1)}× |`);
      console.log(`| p99 latency | ${f(messages.p99, 2)} ms | ${f(health.p99, 2)} ms | ${f(messages.p99 / health.p99, 1)}× |`);
      console.log(`| Non-2xx responses | ${messages.non2xx} of ${messages.requests} | ${health.non2xx} of ${health.requests} | |`);
      console.log('');
    }
    console.log('| Measure | Value |');
    console.log('|---|---:|');
    console.log(`| First request after a cold start (POST /v1/webchat/validate: envelope, routing, the first phone check; no I/O, so wall ≈ CPU + the local proxy) | ${cold.map((x) => f(x) + ' ms').join(', ')} |`);
    console.log(`| Cold minus warm (what a cold isolate adds) | ${cold.map((x) => f(x - median(warm)) + ' ms').join(', ')} |`);
    console.log(`| First request after a cold start when it is GET /health (no phone code) | ${coldHealth.map((x) => f(x) + ' ms').join(', ')} |`);
    console.log(`| …then the first POST /v1/webchat/validate (first envelope and phone check, isolate already up) | ${afterHealth.map((x) => f(x) + ' ms').join(', ')} |`);
    console.log(`| Warm request, same route (median of ${warm.length}) | ${f(median(warm), 2)} ms |`);
    console.log(`| Worker bundle (wrangler deploy --dry-run) | ${bundle ? `${bundle.raw_kib} KiB raw / ${bundle.gzip_kib} KiB gzip` : '–'} |`);
    console.log(`\n_${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(2)} at start; took ${f((Date.now() - started) / 1000, 0)} s._`);
  } finally {
    cleanup();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); cleanup(); process.exit(1); });
