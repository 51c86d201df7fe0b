// The local Podium sandbox (`target/debug/podium-sandbox`, build it with
// `cargo build -q -p podium-sandbox`) on a free port, with helpers for its control API.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './stack.mjs';

export const SANDBOX_BIN = path.join(ROOT, 'target/debug/podium-sandbox');

/**
 * Start the sandbox with `--port 0` plus `args` (e.g. `['--rate-limit-per-minute', '0']`).
 * Resolves once it printed `{"listening": …}`. `stop()` ends it (SIGTERM, then SIGKILL).
 */
export async function startSandbox({ args = [], timeoutMs = 30_000 } = {}) {
  if (!existsSync(SANDBOX_BIN)) {
    throw new Error(`${SANDBOX_BIN} is missing: run \`cargo build -q -p podium-sandbox\` first`);
  }
  const child = spawn(SANDBOX_BIN, ['--port', '0', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c) => { stderr = (stderr + c).slice(-50_000); });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let alive = true;
  exited.then(() => { alive = false; });
  const kill = () => { try { child.kill('SIGKILL'); } catch { /* gone */ } };
  // Never outlive this process: on exit, and on a signal (then exit as the signal would
  // have, unless someone else, e.g. a running wrangler stack, handles the exit).
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const onSignal = (signal) => {
    kill();
    for (const sig of signals) process.removeListener(sig, onSignal);
    // A stack's own handler (stack.mjs) marks that it is shutting down and exits itself.
    setImmediate(() => {
      if (!globalThis.__gatewayStackShutdown) process.exit(128 + (os.constants.signals[signal] || 1));
    });
  };
  process.once('exit', kill);
  for (const sig of signals) process.on(sig, onSignal);

  async function stop() {
    if (alive) {
      child.kill('SIGTERM');
      const timer = setTimeout(kill, 5_000);
      await exited;
      clearTimeout(timer);
    }
    process.removeListener('exit', kill);
    for (const sig of signals) process.removeListener(sig, onSignal);
  }

  let url;
  try {
    url = await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`sandbox not ready after ${timeoutMs} ms:\n${stderr}`)), timeoutMs);
      child.stdout.on('data', (chunk) => {
        out += chunk;
        const nl = out.indexOf('\n');
        if (nl < 0) return;
        clearTimeout(timer);
        try { resolve(JSON.parse(out.slice(0, nl)).listening); } catch (e) { reject(e); }
      });
      exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`sandbox exited (${code ?? signal}) before it was ready:\n${stderr}`));
      });
    });
  } catch (err) {
    await stop();
    throw err;
  }
  child.stdout.resume();

  const call = async (method, p, body) => {
    const res = await fetch(url + p, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`sandbox ${method} ${p} → ${res.status}: ${text}`);
    return text ? JSON.parse(text) : null;
  };

  return {
    url,
    stop,
    log: () => stderr,
    state: () => call('GET', '/_sandbox/state'),
    /** Every message the sandbox recorded for this E.164 phone (both directions). */
    messages: async (phone, locationUid) => {
      const q = new URLSearchParams({ phone });
      if (locationUid) q.set('locationUid', locationUid);
      return (await call('GET', `/_sandbox/messages?${q}`)).data;
    },
    contacts: async (phone) => (await call('GET', `/_sandbox/contacts?${new URLSearchParams({ phone })}`)).data,
    fault: (spec) => call('POST', '/_sandbox/faults', spec),
    clearFaults: () => call('DELETE', '/_sandbox/faults'),
    reset: (body) => call('POST', '/_sandbox/reset', body),
    expireTokens: () => call('POST', '/_sandbox/expire-tokens'),
    config: (patch) => call('POST', '/_sandbox/config', patch),
    /** A new valid refresh token (a merchant's fresh OAuth authorization). */
    mintRefreshToken: async () => (await call('POST', '/_sandbox/refresh-tokens')).refresh_token,
  };
}
