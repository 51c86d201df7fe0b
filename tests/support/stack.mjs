// Starts the gateway exactly as developers run it (`wrangler dev`, workerd, the [assets]
// in www/) on a free port with a throwaway state directory, for end-to-end tests.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Processes in a process group (Linux /proc; elsewhere none, and stop() kills the group). */
function groupMembers(pgid) {
  let entries = [];
  try { entries = readdirSync('/proc').filter((d) => /^\d+$/.test(d)); } catch { return []; }
  const out = [];
  for (const d of entries) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ... ; comm may contain spaces, so parse after ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid) out.push(Number(d));
    } catch { /* exited meanwhile */ }
  }
  return out;
}

/** Still there and not yet reaped (a zombie counts as gone only once reaped). */
function exists(pid) {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/**
 * Run `fn` while holding the repo's stack-start lock, so stacks started by test files
 * running in parallel do not build the worker into worker/build at the same time. The
 * lock is a directory under the git-ignored .wrangler/, removed when done (or found
 * stale: its owner is gone).
 */
async function withStartLock(fn) {
  const lock = path.join(ROOT, '.wrangler', 'tests-stack-start.lock');
  mkdirSync(path.dirname(lock), { recursive: true });
  const release = () => rmSync(lock, { recursive: true, force: true });
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      let owner = 0;
      try { owner = Number(readFileSync(path.join(lock, 'pid'), 'utf8')); } catch { /* being written */ }
      let age = 0;
      try { age = Date.now() - statSync(lock).mtimeMs; } catch { continue; }
      if ((owner && !exists(owner)) || (!owner && age > 60_000) || age > 15 * 60_000) release();
      else await new Promise((r) => setTimeout(r, 250));
    }
  }
  process.once('exit', release);
  try {
    return await fn();
  } finally {
    process.removeListener('exit', release);
    release();
  }
}

/** The newest modification time of any file under `dir` (0 when there is none). */
function newestIn(dir) {
  let newest = 0;
  let entries = [];
  try { entries = readdirSync(dir, { withFileTypes: true }); } catch { return 0; }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestIn(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * The worker, built once for every stack (wrangler's own `[build]` would build it again
 * when its file watcher becomes ready and restart the worker under the first requests),
 * and a copy of wrangler.toml without the `[build]` section for `wrangler dev` to run it
 * as it is. Rebuilt only when a source is newer than the bundle.
 */
export function prepareWorker() {
  const bundle = path.join(ROOT, 'worker/build/index.js');
  const sources = Math.max(
    newestIn(path.join(ROOT, 'worker/src')), newestIn(path.join(ROOT, 'core/src')),
    newestIn(path.join(ROOT, 'schema')),
    ...['Cargo.toml', 'Cargo.lock', 'worker/Cargo.toml', 'core/Cargo.toml'].map((f) => statSync(path.join(ROOT, f)).mtimeMs),
  );
  if (!existsSync(bundle) || statSync(bundle).mtimeMs < sources) {
    const built = spawnSync('bash', [path.join(ROOT, 'scripts/build-worker.sh')], { cwd: ROOT, encoding: 'utf8', env: process.env });
    if (built.status !== 0) throw new Error(`building the worker failed:\n${built.stdout}\n${built.stderr}`);
  }
  // Drop the [build] table: from its header to the next table header.
  let inBuild = false;
  const config = readFileSync(path.join(ROOT, 'wrangler.toml'), 'utf8').split('\n').filter((line) => {
    if (/^\[/.test(line)) inBuild = line.trim() === '[build]';
    return !inBuild;
  }).join('\n');
  const file = path.join(ROOT, '.wrangler-test.toml');
  if (!existsSync(file) || readFileSync(file, 'utf8') !== config) writeFileSync(file, config);
  return file;
}

/** Socket errors of a pooled connection the server closed as it was reused. */
const STALE_SOCKET = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

/**
 * `fetch` to the worker under `wrangler dev`, sending again a request that never reached
 * it. workerd closes a keep-alive connection after 5 s idle, and wrangler's proxy (like
 * Node's own pool) can pick such a connection just as it closes: the proxy then answers
 * 503 "Your worker restarted mid-request" (wrangler's words; nothing restarted) and Node
 * fails with a socket error, both before the worker saw the request (its log has no line
 * for it). Found when 50 concurrent first messages came a few seconds after the previous
 * burst (contacts.test.mjs, 3 of 50 answered 503). A browser resends such a request (the
 * snippet does, with the same Idempotency-Key); so do the tests, at most twice, and say so
 * on stderr. Only replayable bodies (strings, buffers) are sent again.
 */
export async function fetchWorker(url, init = {}) {
  const replayable = init.body === undefined || init.body === null || typeof init.body === 'string' || init.body instanceof Uint8Array;
  for (let attempt = 1; ; attempt++) {
    const last = attempt >= 3 || !replayable;
    const what = `${init.method ?? 'GET'} ${new URL(url).pathname}`;
    let res;
    try {
      res = await fetch(url, init);
    } catch (err) {
      if (last || init.signal?.aborted || !STALE_SOCKET.has(err?.cause?.code)) throw err;
      console.error(`# ${what}: the pooled connection closed before an answer (${err.cause.code}); sent again`);
      continue;
    }
    if (res.status === 503 && !last) {
      const text = await res.clone().text();
      if (text.startsWith('Your worker restarted mid-request')) {
        console.error(`# ${what}: wrangler's proxy reused a closing connection (503); sent again`);
        continue;
      }
    }
    return res;
  }
}

/** The kernel's ephemeral port range (what `listen(0)` and outgoing connections use). */
function ephemeralRange() {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low > 0 && high >= low) return [low, high];
  } catch { /* not Linux */ }
  return [32768, 60999];
}

/** Whether 127.0.0.1:`port` can be listened on right now. */
function canListen(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A port nobody listens on right now, chosen below the kernel's ephemeral range. A port
 * the OS picks for `listen(0)` is released before workerd binds it seconds later, and in
 * that gap the kernel may hand it to any outgoing connection (the tests make thousands on
 * loopback): CI once failed with "Address already in use" that way. Ports below the range
 * are never handed out by the kernel, and stacks are started one at a time (the start
 * lock), so only a foreign listener could take one, and startStack retries then.
 */
export async function freePort() {
  const [ephemeralLow] = ephemeralRange();
  const low = 10_000;
  const high = Math.min(ephemeralLow, 65_536) - 1;
  if (high - low >= 1_000) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const port = low + Math.floor(Math.random() * (high - low + 1));
      if (await canListen(port)) return port;
    }
  }
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * `wrangler dev` on 127.0.0.1:<free port>. Resolves once /health answers; the first
 * start builds the worker (~40 s cold). `stop()` ends the whole process group (wrangler,
 * esbuild, workerd) and removes the state directory.
 *
 * Options (all optional; without them this is exactly the e2e tests' stack):
 * - `vars`: `{NAME: value}` passed as `--var NAME:value` (wrangler splits at the first
 *   colon only, so JSON values with colons arrive intact; they are plain-text bindings
 *   that override `[vars]` and `.dev.vars`, and the worker reads them as secrets too).
 * - `persistTo`: an existing state directory to use (a restart test starts a second
 *   stack on the first one's state); the caller owns it and `stop()` leaves it in place.
 * - `logLimit`: characters of wrangler/workerd output kept for `log()` (default 20,000).
 */
export async function startStack(options = {}) {
  return withStartLock(async () => {
    // A port taken between choosing it and workerd binding it is the only start failure
    // worth another try (with fresh ports); anything else is a real finding.
    for (let attempt = 1; ; attempt++) {
      try {
        return await startStackUnlocked(options);
      } catch (err) {
        if (attempt >= 3 || !/Address already in use/.test(String(err?.message))) throw err;
        console.error(`# wrangler dev could not bind its port (attempt ${attempt}); retrying on fresh ports`);
      }
    }
  });
}

async function startStackUnlocked({ timeoutMs = 180_000, vars = {}, persistTo, logLimit = 20_000 } = {}) {
  const config = prepareWorker();
  const port = await freePort();
  const ownPersist = !persistTo;
  const persist = persistTo ?? mkdtempSync(path.join(os.tmpdir(), 'gateway-e2e-state-'));
  const varArgs = Object.entries(vars).flatMap(([k, v]) => ['--var', `${k}:${v}`]);
  const bin = path.join(ROOT, 'node_modules/.bin');
  const cargoBin = path.join(os.homedir(), '.cargo/bin');
  // wrangler's CLI itself, not its bin shim: the shim does not forward signals, and we
  // want wrangler to get SIGINT and shut workerd down (and reap it) on its own.
  const child = spawn(
    process.execPath,
    [
      '--no-warnings', '--experimental-vm-modules',
      path.join(ROOT, 'node_modules/wrangler/wrangler-dist/cli.js'),
      'dev', '--config', config, '--ip', '127.0.0.1', '--port', String(port), '--persist-to', persist,
      // Its own inspector port: the default 9229 is taken by any other wrangler running.
      '--inspector-port', String(await freePort()),
      ...varArgs,
    ],
    {
      cwd: ROOT,
      // Own process group, so stop() can kill wrangler and every child it started.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        PATH: `${bin}:${cargoBin}:${process.env.PATH}`,
        WRANGLER_SEND_METRICS: 'false',
        WASM_BINDGEN_BIN: path.join(cargoBin, 'wasm-bindgen'),
        ESBUILD_BIN: path.join(bin, 'esbuild'),
        CI: '1',
      },
    },
  );
  let log = '';
  const keep = (chunk) => { log = (log + chunk).slice(-logLimit); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  // If this process dies without calling stop() (a crash, Ctrl-C), take the group with it.
  const killGroup = () => {
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
    if (ownPersist) rmSync(persist, { recursive: true, force: true });
  };
  // On a signal, shut down as stop() does (wrangler then removes its own temp files),
  // with a hard deadline; then exit as the signal would have.
  const onSignal = (signal) => {
    globalThis.__gatewayStackShutdown = true;
    const exit = () => { killGroup(); process.exit(128 + (os.constants.signals[signal] || 1)); };
    setTimeout(exit, 12_000).unref();
    stop().then(exit, exit);
  };
  process.once('exit', killGroup);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.once(sig, onSignal);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let alive = true;
  exited.then(() => { alive = false; });

  async function stop() {
    if (alive) {
      // workerd first, while wrangler is alive to reap it: killed together, wrangler
      // exits first and the orphans stay zombies where PID 1 does not reap (containers).
      const others = groupMembers(child.pid).filter((pid) => pid !== child.pid);
      for (const pid of others) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
      for (let i = 0; i < 40 && others.some(exists); i++) await new Promise((r) => setTimeout(r, 50));
      // Then wrangler, as Ctrl-C would; whatever is left after 10 s: SIGKILL, whole group.
      try { process.kill(child.pid, 'SIGINT'); } catch { /* already gone */ }
      const timer = setTimeout(() => {
        try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
      }, 10_000);
      await exited;
      clearTimeout(timer);
    }
    // workerd may outlive wrangler for a moment: make sure the group is empty.
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* nothing left */ }
    process.removeListener('exit', killGroup);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.removeListener(sig, onSignal);
    if (ownPersist) rmSync(persist, { recursive: true, force: true });
  }

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      if (!alive) throw new Error(`wrangler dev exited before it was ready:\n${log}`);
      if (Date.now() > deadline) throw new Error(`wrangler dev not ready after ${timeoutMs} ms:\n${log}`);
      try {
        const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(5_000) });
        if (res.ok && (await res.json()).status === 'ok') break;
      } catch { /* not listening yet */ }
      await new Promise((r) => setTimeout(r, 500));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, port, persist, stop, log: () => log, processes: () => groupMembers(child.pid) };
}
