// Shared pieces of the integration tests: the test GATEWAY_CONFIG, one sandbox + one
// `wrangler dev` per test file, envelopes, unique phones and session ids, polling.
import { createHash, randomUUID } from 'node:crypto';
import { after, before } from 'node:test';
import { startSandbox } from './sandbox.mjs';
import { fetchWorker, startStack } from './stack.mjs';

export const ADMIN_TOKEN = 'test-admin';
export const ORIGIN = 'https://shop.example';
export const CONFIRMATION = 'Thanks for your message! Our team will text you back shortly. Reply STOP to opt out.';
export const PODIUM_VERSION = '2021.04.01';

/** The test configuration (see core/src/config.rs); `patch` replaces top-level keys. */
export function testConfig(patch = {}) {
  return {
    routing: {
      locations: [
        { uid: 'loc_sydney', name: 'Harbour & Bay — Sydney', region: 'AU', path_prefixes: ['/sydney/'], postcodes: ['2000-2234'] },
        { uid: 'loc_burleigh', name: 'Harbour & Bay — Burleigh Heads', region: 'AU', path_prefixes: ['/burleigh/'], postcodes: ['4220-4227'] },
        { uid: 'loc_sanfrancisco', name: 'Harbour & Bay — San Francisco', region: 'US', path_prefixes: ['/san-francisco/'], postcodes: ['94*'] },
      ],
      default_location_uid: 'loc_sydney',
    },
    allowed_origins: [ORIGIN],
    session: { idle_ms: 3000, warning_ms: 1000 },
    retry: { base_ms: 200, max_delay_ms: 2000, max_attempts: 6, rate_limited_min_ms: 1000, max_retry_after_ms: 5000 },
    rate_limits: {
      per_session: { burst: 1000, per_minute: 100000 },
    },
    // One confirmation per new session, as before the per-phone window existed, and a
    // breaker far above what a test sends (tests of the window and the breaker set them).
    auto_texts: { per_phone_window_ms: 0, breaker: { max_per_window: 100000, window_ms: 600000, open_ms: 3600000 } },
    // Well above what a test sends, so the gateway's own pacing (300/min in production)
    // does not turn a 400-request test into a minute-long one.
    podium: { requests_per_minute: 6000, timeout_ms: 3000 },
    confirmation_text: CONFIRMATION,
    ...patch,
  };
}

/**
 * One sandbox and one worker pointed at it. `sandboxArgs` default to no per-token rate
 * limit at the sandbox (tests that want Podium's 429 inject it as a fault).
 */
export async function startGateway({ config: configOrFn = testConfig(), sandboxArgs = ['--rate-limit-per-minute', '0'], persistTo, vars = {} } = {}) {
  const sandbox = await startSandbox({ args: sandboxArgs });
  // A config may depend on the sandbox's URL (alert hooks): pass a function of it.
  const config = typeof configOrFn === 'function' ? configOrFn(sandbox) : configOrFn;
  let worker;
  try {
    worker = await startWorker({ sandbox, config, persistTo, vars });
  } catch (err) {
    await sandbox.stop();
    throw err;
  }
  const gw = makeClient(worker.url);
  return {
    ...gw,
    sandbox,
    worker,
    config,
    async stop() {
      try { await worker.stop(); } finally { await sandbox.stop(); }
    },
  };
}

/**
 * One gateway for a whole test file: started before its tests, stopped after them. The
 * returned object is filled in by `before`, so tests use it as they would the gateway.
 */
export function gatewayForFile(options) {
  const gw = {};
  before(async () => {
    Object.assign(gw, await startGateway(options));
  }, { timeout: 240_000 });
  after(async () => {
    await gw.stop?.();
  });
  return gw;
}

/** `wrangler dev` with the test config and the sandbox's URLs and OAuth client; `vars`
 * adds or overrides (webhook secrets, …). */
export function startWorker({ sandbox, config, persistTo, vars = {} }) {
  return startStack({
    persistTo,
    logLimit: 400_000,
    vars: {
      GATEWAY_CONFIG: JSON.stringify(config),
      PODIUM_API_BASE: sandbox.url,
      PODIUM_TOKEN_URL: `${sandbox.url}/oauth/token`,
      PODIUM_CLIENT_ID: 'sandbox-client',
      PODIUM_CLIENT_SECRET: 'sandbox-secret',
      PODIUM_REFRESH_TOKEN: 'sandbox-refresh-token',
      ADMIN_TOKEN,
      ...vars,
    },
  });
}

/**
 * A stable client IP for a visitor (a session, a phone): each visitor their own, as in
 * production, so the per-IP limits on new sessions and phones see what they would there.
 */
export function ipFor(key) {
  const h = createHash('sha256').update(String(key)).digest();
  return `10.${h[0]}.${h[1]}.${h[2]}`;
}

/** A browser visitor's headers: the shop's origin and the visitor's own IP. */
function visitor(key, headers = {}) {
  return { origin: ORIGIN, 'cf-connecting-ip': ipFor(key), ...headers };
}

/** Requests to the worker. Every helper resolves to `{status, headers, body, text}`. */
export function makeClient(url) {
  async function request(method, p, { json, body, headers = {}, timeoutMs = 30_000 } = {}) {
    // A header set to undefined or null is left out (e.g. `origin: undefined` for a script).
    const h = Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== undefined && v !== null));
    let payload = body;
    if (json !== undefined) {
      payload = JSON.stringify(json);
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
    }
    const res = await fetchWorker(url + p, { method, headers: h, body: payload, signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    return { status: res.status, headers: res.headers, body: parsed, text };
  }
  const admin = (method, p, opts = {}) =>
    request(method, p, { ...opts, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(opts.headers ?? {}) } });
  return {
    url,
    request,
    admin,
    // As the widget sends it: from the shop's origin, each session from its own IP.
    send: (envelope, opts = {}) =>
      request('POST', '/v1/webchat/messages', { ...opts, json: envelope, headers: visitor(envelope?.session_id, opts.headers) }),
    chat: (body, opts = {}) =>
      request('POST', '/chat', { ...opts, json: body, headers: visitor(body?.session_id, opts.headers) }),
    session: (id) => request('GET', `/v1/webchat/sessions/${id}`),
    keepalive: (id) => request('POST', `/v1/webchat/sessions/${id}/keepalive`),
    adminContact: (phone) => admin('GET', `/admin/contacts/${encodeURIComponent(phone)}`),
  };
}

/** A webchat envelope; `over` replaces top-level keys (`contact`, `location`, …). */
export function envelope({ phone, text = 'Do you have the blue one in a 10?', sessionId = randomUUID(), location, ...over } = {}) {
  return {
    session_id: sessionId,
    message: { type: 'text', value: text },
    contact: { phone, name: 'Test Customer' },
    ...(location === undefined ? {} : { location }),
    client: { widget_version: 'integration-test' },
    ...over,
  };
}

export const page = (p) => `https://shop.example${p}`;

// Unique numbers per process: a random block, then a counter. AU mobiles 04[0-3]x xxx xxx
// are all valid (libphonenumber), E.164 +614…
let counter = 0;
const auBlock = Math.floor(Math.random() * 4000);
/** `{national, e164}` of a fresh Australian mobile. */
export function auPhone() {
  counter += 1;
  const n = auBlock * 10_000 + counter; // < 40,000,000
  const digits = String(n).padStart(8, '0'); // 0x xxx xxx with x0 in 0..3
  const national = `04${digits.slice(0, 2)} ${digits.slice(2, 5)} ${digits.slice(5)}`;
  return { national, e164: `+614${digits}` };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Wait, if need be, until the Rate Limiting binding's current window has `needMs` left.
 * The binding counts in fixed windows aligned to the clock (`floor(now / period)`, as
 * `wrangler dev` simulates it), so a test counting requests up to a per-minute limit
 * that straddles a minute boundary gets a fresh allowance halfway (CI failed once that
 * way: the 11th new phone from one IP was accepted). Returns a check that the requests
 * really stayed within one window, so a slow machine fails with that reason instead.
 */
export async function withinOneRateWindow(needMs, periodMs = 60_000) {
  const left = periodMs - (Date.now() % periodMs);
  if (left < needMs) await sleep(left + 250);
  const window = Math.floor(Date.now() / periodMs);
  return () => Math.floor(Date.now() / periodMs) === window;
}

/**
 * Poll `fn` until it returns a truthy value (returned) or the deadline passes (throws
 * with `describe()` of the last value, so a failure shows what was there instead).
 */
export async function waitFor(fn, { timeoutMs = 20_000, intervalMs = 200, what = 'condition', describe } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await fn();
      lastErr = undefined;
      if (last) return last;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      const detail = lastErr ? `last error: ${lastErr.stack ?? lastErr}` : `last value: ${describe ? describe(last) : JSON.stringify(last)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${detail}`);
    }
    await sleep(intervalMs);
  }
}

export const inbound = (messages) => messages.filter((m) => m.direction === 'inbound_webchat');
export const outbound = (messages) => messages.filter((m) => m.direction === 'outbound');

/** Wait until the sandbox has at least `count` inbound webchat messages for `phone`. */
export async function waitForInbound(gw, phone, { count = 1, timeoutMs = 20_000 } = {}) {
  return waitFor(async () => {
    const list = inbound(await gw.sandbox.messages(phone));
    return list.length >= count ? list : null;
  }, { timeoutMs, what: `${count} inbound message(s) for ${phone}`, describe: () => workerTail(gw) });
}

/** Wait until the phone's outbox in the worker is empty (every job delivered or dropped). */
export async function waitForEmptyOutbox(gw, phone, { timeoutMs = 20_000 } = {}) {
  return waitFor(async () => {
    const res = await gw.adminContact(phone);
    return res.status === 200 && Array.isArray(res.body.outbox) && res.body.outbox.length === 0 ? res.body : null;
  }, { timeoutMs, what: `an empty outbox for ${phone}` });
}

/**
 * The fallback records for `phone` since `since`, once listed: the phone's object ships
 * them to the operations shards behind the answer (milliseconds), so operator lists are
 * read with a short wait.
 */
export async function fallbacksFor(gw, phone, since = 0, { count = 1 } = {}) {
  return waitFor(async () => {
    const res = await gw.admin('GET', `/admin/routing/fallbacks?since=${since}`);
    const mine = (res.body?.fallbacks ?? []).filter((f) => f.phone === phone);
    return res.status === 200 && mine.length >= count ? mine : null;
  }, { what: `${count} fallback record(s) for ${phone}` });
}

/** The worker's last log lines, for failure messages. */
export function workerTail(gw, lines = 30) {
  return `\n--- worker log (tail) ---\n${gw.worker.log().split('\n').slice(-lines).join('\n')}`;
}

/** Worker log lines that are JSON objects (request and delivery lines). */
export function workerEvents(gw) {
  const out = [];
  for (const line of gw.worker.log().split('\n')) {
    const i = line.indexOf('{');
    if (i < 0) continue;
    try { out.push(JSON.parse(line.slice(i))); } catch { /* not JSON */ }
  }
  return out;
}

/** Every error answer's shape: `{error: {code, message, field}}`. */
export function assertErrorShape(assert, res, status, code) {
  assert.equal(res.status, status, `status: ${res.text}`);
  assert.ok(res.body && typeof res.body.error === 'object', `error body: ${res.text}`);
  const { error } = res.body;
  assert.equal(typeof error.message, 'string', res.text);
  assert.ok(error.message.length > 0, res.text);
  assert.ok('field' in error, `error.field present (null allowed): ${res.text}`);
  assert.ok('code' in error, res.text);
  if (code instanceof RegExp) assert.match(error.code, code, res.text);
  else if (code) assert.equal(error.code, code, res.text);
  return error;
}
