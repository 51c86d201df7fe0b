// Headless Chromium (the system one; never downloaded) through playwright-core.
import { chromium } from 'playwright-core';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Launch Chromium. Playwright gives it a fresh temporary profile (user-data dir) and
 * removes it on close; each `newContext()` is a further isolated, incognito-like
 * context (own cache, storage, routes), so tests do not see each other's state.
 */
export async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
  return {
    browser,
    newContext: (options = {}) => browser.newContext({ viewport: { width: 1280, height: 900 }, ...options }),
    close: () => browser.close(),
  };
}

/**
 * Open a page of the gateway's demo (served by the worker at `baseUrl`) in a fresh
 * context, recording what the chat snippet does. Requests to the two chat routes pass
 * through to the real gateway (Playwright's page.route), and are recorded:
 * - `requests`: every request the page made, in order ({url, method, headers, bodyBytes,
 *   contentLength}), for "no upload was attempted" assertions;
 * - `uploads`: bodies sent to /v1/webchat/attachments, with headers and the answer;
 * - `posts`: every POST to /v1/webchat/messages ({headers, envelope, outcome}), including
 *   attempts a fault stopped;
 * - `messages` / `answers`: the envelopes that reached the gateway and its answers;
 * - `errors` (uncaught exceptions), `consoleText` (every console line), `consoleErrors`.
 *
 * `faults` (push onto it at any time) shapes the next message POSTs, one entry each:
 * `{fulfill: {status, body}}` answers without reaching the gateway; `'lose-answer'`
 * delivers to the gateway, then drops the connection so the page sees a network error.
 *
 * Options: `blockWasm` (the validator cannot load), `rewrite(html)` (change the page's
 * HTML as served, e.g. the script tag's attributes), `context` (newContext options, e.g.
 * a phone-sized viewport), `setup(page)` (more routes before the page loads),
 * `onPost(post, page)` (awaited as each message POST arrives, before it goes on; what it
 * returns is kept as `post.seen`).
 */
export async function openGatewayPage(browser, baseUrl, pathname, { blockWasm = false, rewrite, context: contextOptions = {}, setup, onPost } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...contextOptions });
  const page = await context.newPage();
  const tab = {
    page, context,
    requests: [], uploads: [], posts: [], messages: [], answers: [], faults: [],
    errors: [], consoleText: [], consoleErrors: [],
    close: () => context.close(),
  };
  page.on('request', (req) => {
    tab.requests.push({
      url: req.url(),
      method: req.method(),
      headers: req.headers(),
      bodyBytes: req.postDataBuffer()?.length ?? 0,
      contentLength: Number(req.headers()['content-length'] ?? 0),
    });
  });
  page.on('pageerror', (err) => tab.errors.push(err));
  page.on('console', (msg) => {
    tab.consoleText.push(msg.text());
    if (msg.type() === 'error') tab.consoleErrors.push(msg.text());
  });

  await page.route(`${baseUrl}/v1/webchat/attachments`, async (route) => {
    const req = route.request();
    const response = await route.fetch();
    tab.uploads.push({ headers: req.headers(), body: req.postDataBuffer() ?? Buffer.alloc(0), answer: await response.json() });
    await route.fulfill({ response });
  });
  await page.route(`${baseUrl}/v1/webchat/messages`, async (route) => {
    const req = route.request();
    const post = { headers: req.headers(), envelope: JSON.parse(req.postData()), outcome: 'delivered' };
    tab.posts.push(post);
    if (onPost) post.seen = await onPost(post, page);
    const fault = tab.faults.shift();
    if (fault?.fulfill) {
      post.outcome = fault.fulfill.status;
      await route.fulfill({ status: fault.fulfill.status, contentType: 'application/json', body: JSON.stringify(fault.fulfill.body ?? {}) });
      return;
    }
    const response = await route.fetch();
    tab.messages.push(post.envelope);
    tab.answers.push({ status: response.status(), body: await response.json() });
    if (fault === 'lose-answer') {
      post.outcome = 'answer lost';
      await route.abort('connectionreset');
      return;
    }
    await route.fulfill({ response });
  });
  if (blockWasm) await page.route('**/pkg/widget_bg.wasm', (route) => route.abort());
  if (rewrite) {
    await page.route((url) => url.href.startsWith(baseUrl) && url.pathname === new URL(pathname, baseUrl).pathname, async (route) => {
      if (route.request().resourceType() !== 'document') return route.fallback();
      const response = await route.fetch();
      await route.fulfill({ response, body: rewrite(await response.text()) });
    });
  }
  if (setup) await setup(page);
  // E2E_CPU_THROTTLE=4 runs the page's JavaScript 4× slower (a cheap phone): a way to
  // shake out races in the snippet and in the tests.
  const throttle = Number(process.env.E2E_CPU_THROTTLE || 1);
  if (throttle > 1) {
    const cdp = await context.newCDPSession(page);
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: throttle });
  }
  await page.goto(baseUrl + pathname, { waitUntil: 'load' });
  return tab;
}
