// Shared by the worker benchmarks: start the sandbox and `wrangler dev` as process
// groups (killed on exit), and run wrk with its figures parsed.
import { execFileSync, spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';

import { ROOT, freePort, prepareWorker } from '../tests/support/stack.mjs';

export const SECONDS = Number(process.env.BENCH_WRK_SECONDS || 10);
export const CONNECTIONS = Number(process.env.BENCH_WRK_CONNECTIONS || 8);

const children = new Set();
export function cleanup() {
  for (const child of children) {
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { cleanup(); process.exit(130); });

export function start(cmd, args, env = {}) {
  const child = spawn(cmd, args, { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.add(child);
  child.output = '';
  child.stdout.on('data', (d) => { child.output += d; });
  child.stderr.on('data', (d) => { child.output += d; });
  return child;
}

export async function stop(child) {
  if (!child || child.exitCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  try { process.kill(-child.pid, 'SIGINT'); } catch { /* gone */ }
  const t = setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } }, 5000);
  await done;
  clearTimeout(t);
  children.delete(child);
}

export async function startSandbox() {
  const child = start(path.join(ROOT, 'target/debug/podium-sandbox'), ['--port', '0', '--rate-limit-per-minute', '0']);
  for (let i = 0; i < 200; i++) {
    const m = child.output.match(/"listening":"([^"]+)"/);
    if (m) return { child, url: m[1] };
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('sandbox did not start: ' + child.output);
}

/**
 * The worker on `sandboxUrl`'s Podium: under `wrangler dev` (its DevTools inspector on, as
 * the tests and `scripts/run.sh` run it), or with `quiet` through wrangler's dev API with
 * the inspector off (bench/quiet-worker.mjs).
 */
export async function startWorker(sandboxUrl, persist, config, extraVars = {}, { quiet = false } = {}) {
  const port = await freePort();
  const vars = {
    GATEWAY_CONFIG: JSON.stringify(config),
    PODIUM_API_BASE: sandboxUrl,
    PODIUM_TOKEN_URL: `${sandboxUrl}/oauth/token`,
    PODIUM_CLIENT_ID: 'sandbox-client',
    PODIUM_CLIENT_SECRET: 'sandbox-secret',
    PODIUM_REFRESH_TOKEN: 'sandbox-refresh-token',
    ADMIN_TOKEN: 'bench-admin',
    ...extraVars,
  };
  // Built once, run as built (see prepareWorker: no rebuild-and-restart under load).
  const wranglerToml = prepareWorker();
  const inspector = quiet ? null : await freePort();
  let args;
  if (quiet) {
    args = [path.join(ROOT, 'bench/quiet-worker.mjs'), wranglerToml, String(port), persist, JSON.stringify(vars)];
  } else {
    args = [path.join(ROOT, 'node_modules/wrangler/wrangler-dist/cli.js'), 'dev', '--config', wranglerToml, '--ip', '127.0.0.1', '--port', String(port), '--persist-to', persist, '--inspector-port', String(inspector)];
    for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}:${v}`);
  }
  const child = start(process.execPath, args, {
    PATH: `${ROOT}/node_modules/.bin:${os.homedir()}/.cargo/bin:${process.env.PATH}`,
    WRANGLER_SEND_METRICS: 'false',
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 1800; i++) {
    try { if ((await fetch(`${url}/health`)).ok) return { child, url, inspector }; } catch { /* not yet */ }
    if (child.exitCode !== null) throw new Error('wrangler exited: ' + child.output.slice(-2000));
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('worker did not start');
}

export function wrk(url, script, env = {}, seconds = SECONDS) {
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', '--timeout', '10s'];
  if (script) args.push('-s', script);
  args.push(url);
  const out = execFileSync('wrk', args, { encoding: 'utf8', env: { ...process.env, ...env } });
  const num = (re) => { const m = out.match(re); return m ? m[1] : null; };
  const ms = (v) => (v == null ? null : v.endsWith('us') ? parseFloat(v) / 1000 : v.endsWith('ms') ? parseFloat(v) : parseFloat(v) * 1000);
  const non2xx = Number(num(/Non-2xx or 3xx responses: (\d+)/) || 0);
  return {
    rps: parseFloat(num(/Requests\/sec:\s+([\d.]+)/)),
    p50: ms(num(/ 50%\s+([\d.]+\w+)/)),
    p99: ms(num(/ 99%\s+([\d.]+\w+)/)),
    requests: Number(num(/(\d+) requests in/)),
    non2xx,
  };
}

