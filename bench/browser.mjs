// Chromium side of the bench: a tiny static server on 127.0.0.1 and headless Chromium
// driven by playwright-core. Every measurement runs in its own new browser context (so a
// new renderer process: no V8 isolate, wasm module cache or HTTP cache shared between
// runs) and its own page; the page measures itself with performance.now().

import http from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const TYPES = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
};

const COLD_PAGE = `<!doctype html><meta charset="utf-8"><title>cold</title>
<script type="module">
import { COLD_INPUT, COLD_EXPECTED } from '/bench/harness.mjs';
const q = new URLSearchParams(location.search);
const impl = q.get('impl');
const bust = 'r=' + q.get('r');
const [raw, region] = COLD_INPUT;
try {
  let e164;
  // Clock: from before the dynamic import to after the first E.164.
  const t0 = performance.now();
  if (impl === 'ours') {
    const widget = await import('/pkg/widget.js?' + bust);
    await widget.default({ module_or_path: '/pkg/widget_bg.wasm?' + bust });
    e164 = widget.normalizePhone(raw, region).e164;
  } else {
    const lib = await import('/lib/lpn.min.mjs?' + bust);
    e164 = lib.parsePhoneNumberFromString(raw, region)?.number;
  }
  const t1 = performance.now();
  if (e164 !== COLD_EXPECTED) throw new Error(impl + ': first result ' + e164);
  window.__bench = { ms: t1 - t0, e164, startedAtMs: t0 };
} catch (e) {
  window.__bench = { error: String(e && e.stack || e) };
}
</script>`;

const WARM_PAGE = `<!doctype html><meta charset="utf-8"><title>warm</title>
<script type="module">
import { oursCall, libCall, warmLoop } from '/bench/harness.mjs';
const q = new URLSearchParams(location.search);
const impl = q.get('impl');
try {
  const pairs = await (await fetch('/corpus.json')).json();
  let call;
  if (impl === 'ours') {
    const widget = await import('/pkg/widget.js');
    await widget.default({ module_or_path: '/pkg/widget_bg.wasm' });
    call = oursCall(widget);
  } else {
    const lib = await import('/lib/lpn.min.mjs');
    call = libCall(lib.parsePhoneNumberFromString);
  }
  // Let the load settle before timing.
  await new Promise((r) => setTimeout(r, 50));
  window.__bench = warmLoop(call, pairs, { warmupPasses: Number(q.get('warmup')), passes: Number(q.get('passes')) });
} catch (e) {
  window.__bench = { error: String(e && e.stack || e) };
}
</script>`;

/**
 * Serve www/pkg at /pkg/, the lib bundle at /lib/lpn.min.mjs, bench/harness.mjs,
 * /corpus.json and the two pages. Nothing is cacheable; pages are cross-origin isolated
 * so performance.now() has fine resolution.
 */
export async function startServer({ pkgDir, benchDir, libBundle, corpusJson }) {
  const files = new Map([
    ['/pkg/widget.js', path.join(pkgDir, 'widget.js')],
    ['/pkg/widget_bg.wasm', path.join(pkgDir, 'widget_bg.wasm')],
    ['/bench/harness.mjs', path.join(benchDir, 'harness.mjs')],
  ]);
  const inMemory = new Map([
    ['/lib/lpn.min.mjs', libBundle],
    ['/corpus.json', Buffer.from(corpusJson)],
    ['/cold.html', Buffer.from(COLD_PAGE)],
    ['/warm.html', Buffer.from(WARM_PAGE)],
    ['/', Buffer.from('<!doctype html><title>bench</title>')],
  ]);
  const server = http.createServer((req, res) => {
    const { pathname } = new URL(req.url, 'http://127.0.0.1');
    let body = inMemory.get(pathname);
    if (!body && files.has(pathname)) body = readFileSync(files.get(pathname));
    // Anything else under /pkg/ (the glue's snippets/, the message module).
    if (!body && pathname.startsWith('/pkg/')) {
      const file = path.resolve(pkgDir, `.${pathname.slice('/pkg'.length)}`);
      if (file.startsWith(path.resolve(pkgDir) + path.sep) && existsSync(file)) body = readFileSync(file);
    }
    const headers = {
      'Cache-Control': 'no-store',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
    };
    if (!body) {
      res.writeHead(404, headers).end('not found');
      return;
    }
    const ext = pathname === '/' ? '.html' : path.extname(pathname);
    headers['Content-Type'] = TYPES[ext] ?? 'application/octet-stream';
    headers['Content-Length'] = body.length;
    res.writeHead(200, headers).end(body);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

export async function launchChromium(executablePath) {
  // `launch` gives the browser a fresh temporary user-data dir of its own and deletes it
  // on close.
  return chromium.launch({
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
    // bench/run.mjs closes the browser itself on signals (a graceful close also
    // deletes the temporary profile); Playwright still kills it if Node dies.
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
}

/** Load `url` in a new context + page, wait for window.__bench, close both. */
export async function measurePage(browser, url, timeoutMs = 120_000) {
  const context = await browser.newContext({ serviceWorkers: 'block' });
  try {
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(url, { waitUntil: 'load', timeout: timeoutMs });
    const handle = await page.waitForFunction(() => window.__bench, null, { timeout: timeoutMs, polling: 50 });
    const result = await handle.jsonValue();
    if (result.error) throw new Error(`${url}: ${result.error}`);
    if (errors.length) throw new Error(`${url}: ${errors.join('; ')}`);
    return result;
  } finally {
    await context.close();
  }
}
