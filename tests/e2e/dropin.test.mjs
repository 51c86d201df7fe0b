// End-to-end: the drop-in widget — one <script> tag and no markup draws the launcher and
// chat panel (open Shadow DOM). The Sydney demo pages, served by the real worker
// (`wrangler dev`) in headless Chromium, with the real gateway and Podium sandbox behind.
// Run: node --test --test-concurrency=1 tests/e2e/dropin.test.mjs
//
// Screenshots of the open panel land in tests/artifacts/ (git-ignored).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { launchBrowser, openGatewayPage } from '../support/browser.mjs';
import { inbound, startGateway, testConfig, waitFor } from '../support/gateway.mjs';
import { ROOT } from '../support/stack.mjs';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const MB = 1024 * 1024;
const ARTIFACTS = path.join(ROOT, 'tests/artifacts');
const TURNSTILE_SRC = 'https://challenges.cloudflare.com/turnstile/v0/api.js?render=explicit';
// Cloudflare's documented test site key that always passes, and the dummy token its
// widget hands out (https://developers.cloudflare.com/turnstile/troubleshooting/testing/).
const TEST_SITEKEY = '1x00000000000000000000AA';
const DUMMY_TOKEN = 'XXXX.DUMMY.TOKEN.XXXX';

let stack;
let browser;

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  // Sessions of 8 s that warn after 2 s: long enough to navigate to another page first.
  stack = await startGateway({ config: testConfig({ session: { idle_ms: 8000, warning_ms: 6000 } }) });
  ({ browser } = await launchBrowser());
}, { timeout: 240_000 });

after(async () => {
  try {
    await browser?.close();
  } finally {
    await stack?.stop();
  }
});

const open = (pathname, options) => openGatewayPage(browser, stack.url, pathname, options);
const launcher = (page) => page.getByRole('button', { name: 'Chat with us' });
const dialog = (page) => page.getByRole('dialog');
const sendButton = (page) => page.getByRole('button', { name: 'Send', exact: true });

/** Inside the widget's shadow root (open, so tests and assistive tools can reach it). */
function inWidget(page, fn, arg) {
  return page.evaluate(([source, a]) => {
    const root = document.querySelector('podium-gateway-chat').shadowRoot;
    // eslint-disable-next-line no-new-func
    return new Function('root', 'arg', `return (${source})(root, arg);`)(root, a);
  }, [fn.toString(), arg]);
}

/** The focused element, through shadow roots: its id, or its accessible text. */
function focused(page) {
  return page.evaluate(() => {
    let el = document.activeElement;
    while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
    return el ? el.id || el.getAttribute('aria-label') || el.className || el.tagName : null;
  });
}

/** Wait until a send attempt has finished (sent, invalid or failed). */
async function settled(page) {
  const handle = await page.waitForFunction(() => {
    const root = document.querySelector('podium-gateway-chat')?.shadowRoot;
    const state = root?.querySelector('[data-podium-status]')?.getAttribute('data-state');
    return state === 'sent' || state === 'invalid' || state === 'failed' ? state : false;
  }, null, { timeout: 30_000 });
  return handle.jsonValue();
}

/** Let the page go idle (requestIdleCallback fires): what loads "on every page view" has. */
function pageIdle(page) {
  return page.evaluate(() => new Promise((resolve) => requestIdleCallback(() => setTimeout(resolve, 300), { timeout: 3000 })));
}

async function fillChat(page, { name = 'Ann', phone = '0412 345 678', text = 'Do you have the 3/2 in M?' } = {}) {
  await page.fill('#podium-name', name);
  await page.fill('#podium-phone', phone);
  await page.fill('#podium-message', text);
}

/**
 * No uncaught errors, no console errors, nothing personal in the console. Chromium logs
 * every failed request itself ("Failed to load resource"): a test that injects such
 * failures names them in `tab.expectedFailures` (a RegExp).
 */
function assertClean(tab, ...secrets) {
  assert.deepEqual(tab.errors.map(String), [], 'uncaught errors in the page');
  const unexpected = tab.consoleErrors.filter((t) => !(tab.expectedFailures && /^Failed to load resource/.test(t) && tab.expectedFailures.test(t)));
  assert.deepEqual(unexpected, [], 'console errors');
  for (const secret of secrets) {
    for (const line of tab.consoleText) assert.ok(!line.includes(secret), `console leaked ${secret}: ${line}`);
  }
}

/** Put attributes on the snippet's script tag and/or a style sheet before it. */
function withSnippet({ attrs = '', css = '' } = {}) {
  return (html) => html.replace('<script src="/gateway-widget.js"',
    `${css ? `<style>${css}</style>\n  ` : ''}<script src="/gateway-widget.js" ${attrs}`);
}

test('one tag draws the chat: open, type 0412 345 678, send, see the confirmation', { timeout: 90_000 }, async () => {
  const tab = await open('/sydney/?utm_source=newsletter&ref=ann#wetsuits');
  try {
    const { page } = tab;
    // The page has no chat markup of its own: the snippet chose the drop-in.
    assert.equal(await page.evaluate(() => window.PodiumGateway.mode), 'dropin');
    assert.equal(await page.locator('form').count(), 1, 'one form on the page, the widget\'s');
    assert.equal(await page.evaluate(() => document.querySelectorAll('form').length), 0, 'none in the page\'s own DOM');
    assert.equal(await page.evaluate(() => document.querySelector('podium-gateway-chat').shadowRoot.mode), 'open');
    await page.evaluate(() => {
      window.__events = [];
      document.addEventListener('podium-gateway:sent', (e) => window.__events.push([e.type, e.target.localName, typeof e.detail.sessionId]));
    });

    // Lazy (issue 9): a page view, even once idle, does not fetch the validator.
    await pageIdle(page);
    assert.ok(!tab.requests.some((r) => r.url.includes('/pkg/')), 'validator fetched on a page view');
    assert.equal(await dialog(page).isVisible(), false);

    await launcher(page).click();
    await dialog(page).waitFor({ state: 'visible' });
    assert.equal(await launcher(page).getAttribute('aria-expanded'), 'true');
    assert.equal(await focused(page), 'podium-name', 'focus moved into the panel');
    assert.equal(await page.evaluate(() => window.PodiumGateway.ready), true, 'opening loaded the validator');
    assert.ok(tab.requests.some((r) => r.url.endsWith('/pkg/widget_bg.wasm')));
    assert.equal(await dialog(page).getAttribute('aria-labelledby'), 'podium-title');
    assert.equal(await page.locator('#podium-title').innerText(), 'Chat with Harbour & Bay Sydney');

    // A real form: labelled fields of the right kinds.
    const phone = page.getByLabel('Mobile number');
    assert.equal(await phone.getAttribute('type'), 'tel');
    assert.equal(await phone.getAttribute('autocomplete'), 'tel');
    assert.equal(await page.getByLabel('Message').evaluate((el) => el.localName), 'textarea');
    assert.equal(await page.getByLabel(/Photo or file/).getAttribute('type'), 'file');
    assert.equal(await page.getByLabel(/Your name/).getAttribute('autocomplete'), 'name');

    await phone.fill('0412 345 678');
    await page.getByText('Will text +61412345678').waitFor();
    await fillChat(page);
    await dialog(page).screenshot({ path: path.join(ARTIFACTS, 'dropin-panel.png') });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dropin-page.png') });

    await sendButton(page).click();
    assert.equal(await settled(page), 'sent');
    await page.getByText('Sent! We’ll text you back shortly.').waitFor();
    assert.equal(await page.inputValue('#podium-message'), '', 'the message box is cleared');

    assert.equal(tab.messages.length, 1);
    const env = tab.messages[0];
    assert.equal(env.contact.phone, '+61412345678');
    assert.equal(env.contact.name, 'Ann');
    assert.deepEqual(env.message, { type: 'text', value: 'Do you have the 3/2 in M?' });
    assert.equal(env.location.location_uid, 'loc_sydney');
    // Issue 10: the page, without what the customer searched or clicked.
    assert.equal(env.location.page_url, `${stack.url}/sydney/`);
    assert.match(env.session_id, UUID_V4);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('podium-gateway:session')), env.session_id);
    assert.match(tab.posts[0].headers['idempotency-key'], UUID_V4);
    assert.equal(tab.posts[0].headers['cf-turnstile-response'], undefined, 'no Turnstile unless configured');
    assert.equal(tab.answers[0].status, 202);
    // Events cross the shadow root, retargeted to the widget element.
    assert.deepEqual(await page.evaluate(() => window.__events), [['podium-gateway:sent', 'podium-gateway-chat', 'string']]);

    const delivered = await waitFor(async () => inbound(await stack.sandbox.messages('+61412345678', 'loc_sydney'))
      .find((m) => m.body === 'Do you have the 3/2 in M?'), { what: 'the chat at the Sydney store' });
    assert.equal(delivered.webchatUrl, `${stack.url}/sydney/`);
    assert.ok(!tab.requests.some((r) => r.url.startsWith('https://challenges.cloudflare.com')));
    assertClean(tab, '412345678', '412 345 678', 'Do you have');
  } finally {
    await tab.close();
  }
});

test('"abc" is refused inline, announced, and nothing is sent', { timeout: 60_000 }, async () => {
  const tab = await open('/sydney/');
  try {
    const { page } = tab;
    await page.evaluate(() => {
      window.__invalid = [];
      document.addEventListener('podium-gateway:invalid', (e) => window.__invalid.push(e.detail.problems.map((p) => p.field)));
    });
    await launcher(page).click();
    await page.fill('#podium-phone', 'abc');
    await page.fill('#podium-message', 'Hello');
    // Leaving the field says what is wrong, politely, through the live region.
    await page.locator('#podium-message').focus();
    await page.waitForFunction(() => /not a phone number/i.test(
      document.querySelector('podium-gateway-chat').shadowRoot.querySelector('.root > [aria-live=polite]').textContent));

    await sendButton(page).click();
    assert.equal(await settled(page), 'invalid');
    const phone = page.locator('#podium-phone');
    assert.equal(await phone.getAttribute('aria-invalid'), 'true');
    const error = await inWidget(page, (root) => {
      const field = root.getElementById('podium-phone');
      const ids = field.getAttribute('aria-describedby').split(' ');
      const notes = ids.map((id) => root.getElementById(id)).filter((el) => el && !el.hidden);
      return notes.map((el) => el.textContent).join(' ');
    });
    assert.match(error, /not a phone number/i, 'the error is the field\'s description');
    assert.match(await page.getByRole('alert').innerText(), /check the highlighted fields/i, 'announced (role=alert)');
    assert.equal(await focused(page), 'podium-phone', 'focus moved to the field to fix');
    assert.deepEqual(await page.evaluate(() => window.__invalid), [['contact.phone']]);

    await sendButton(page).click();
    assert.equal(await settled(page), 'invalid');
    await page.waitForTimeout(300);
    assert.ok(!tab.requests.some((r) => r.url.includes('/v1/webchat/messages')), 'no message request at all');

    await page.fill('#podium-phone', '0412 345 678');
    await page.getByText('Will text +61412345678').waitFor();
    assert.equal(await phone.getAttribute('aria-invalid'), null);
    assertClean(tab);
  } finally {
    await tab.close();
  }
});

test('a 30 MB file is refused before upload: inline, announced, no upload request', { timeout: 90_000 }, async () => {
  const tab = await open('/sydney/');
  try {
    const { page } = tab;
    await launcher(page).click();
    await page.setInputFiles('#podium-file', { name: 'wetsuit-tear.png', mimeType: 'image/png', buffer: Buffer.alloc(30 * MB, 7) });
    const note = page.locator('#podium-file ~ .podium-gateway-error');
    await note.waitFor({ state: 'visible' });
    assert.match(await note.innerText(), /31\.5 MB and the limit is 25 MB \(wetsuit-tear\.png\)/);
    assert.equal(await page.getAttribute('#podium-file', 'aria-invalid'), 'true');
    assert.equal(await page.$eval('#podium-file', (input) => input.files.length), 0, 'removed from the selection');
    assert.match(await inWidget(page, (root) => root.querySelector('.root > [aria-live=polite]').textContent), /limit is 25 MB/);

    await fillChat(page, { text: 'Photo was too big, sorry' });
    await sendButton(page).click();
    assert.equal(await settled(page), 'sent');
    assert.equal(tab.messages[0].attachments, undefined);
    assert.deepEqual(tab.uploads, []);
    assert.deepEqual(tab.requests.filter((r) => r.url.includes('/attachments')), [], 'no request to /v1/webchat/attachments');
    assert.deepEqual(tab.requests.filter((r) => r.bodyBytes >= MB || r.contentLength >= MB), [], 'no request carried 1 MB or more');
    assertClean(tab);
  } finally {
    await tab.close();
  }
});

test('keyboard only: Tab to the launcher, fill in, send, Escape back to the launcher', { timeout: 60_000 }, async () => {
  const tab = await open('/sydney/');
  try {
    const { page } = tab;
    const kb = page.keyboard;
    for (let i = 0; i < 20 && (await focused(page)) !== 'launcher'; i++) await kb.press('Tab');
    assert.equal(await focused(page), 'launcher', 'the launcher is in the tab order');
    await kb.press('Enter');
    await dialog(page).waitFor({ state: 'visible' });
    assert.equal(await focused(page), 'podium-name');
    await kb.press('Shift+Tab');
    assert.equal(await focused(page), 'Close chat', 'the close button comes before the form');
    await kb.press('Tab');
    await kb.type('Kim');
    await kb.press('Tab');
    assert.equal(await focused(page), 'podium-phone');
    await kb.type('0412 345 678');
    await kb.press('Tab');
    assert.equal(await focused(page), 'podium-message');
    await kb.type('Typed with the keyboard only');
    await kb.press('Tab');
    assert.equal(await focused(page), 'podium-file');
    await kb.press('Tab');
    assert.equal(await focused(page), 'send');
    await kb.press('Enter');
    assert.equal(await settled(page), 'sent');
    assert.equal(tab.messages.length, 1);
    assert.equal(tab.messages[0].contact.name, 'Kim');
    assert.equal(tab.messages[0].message.value, 'Typed with the keyboard only');

    await kb.press('Escape');
    await dialog(page).waitFor({ state: 'hidden' });
    assert.equal(await focused(page), 'launcher', 'focus went back to the launcher');
    assert.equal(await launcher(page).getAttribute('aria-expanded'), 'false');

    // Again, and Escape from inside a field; then Enter on the launcher toggles it shut.
    await kb.press('Enter');
    await dialog(page).waitFor({ state: 'visible' });
    assert.equal(await focused(page), 'podium-message', 'name and phone are kept: straight to the message');
    await kb.press('Escape');
    assert.equal(await focused(page), 'launcher');
    // Ctrl+Enter in the message box sends.
    await kb.press('Enter');
    await kb.type('Second one');
    await kb.press('Control+Enter');
    assert.equal(await settled(page), 'sent');
    assert.equal(tab.messages.length, 2);
    assertClean(tab);
  } finally {
    await tab.close();
  }
});

// Styles real sites ship (resets, global button and input rules, tiny root font) plus
// outright attacks on the widget's element. None may break it.
const HOSTILE_CSS = `
  html { font-size: 6px !important; line-height: 0.6 !important; direction: rtl; }
  *, *::before, *::after { box-sizing: content-box !important; font-family: "Comic Sans MS", cursive !important;
    letter-spacing: 4px !important; text-transform: uppercase !important; color: #f0f !important; }
  button, input, textarea, label, form, section, h2, p, span, svg, div {
    display: none !important; visibility: hidden !important; opacity: 0 !important; all: unset; }
  [hidden] { display: block !important; }
  html > *, body > * { transform: scale(0.2) !important; filter: blur(6px) !important; pointer-events: none !important; }
  podium-gateway-chat { display: none !important; position: absolute !important; left: -9999px !important;
    width: 0 !important; height: 0 !important; overflow: hidden !important; --podium-z-index: 1; }
  *:focus { outline: none !important; }
  body { z-index: 2147483647; position: relative; }
`;

test('hostile page CSS cannot break the widget', { timeout: 60_000 }, async () => {
  const tab = await open('/sydney/', { rewrite: withSnippet({ css: HOSTILE_CSS }) });
  try {
    const { page } = tab;
    const button = launcher(page);
    await button.waitFor({ state: 'visible' });
    const box = await button.boundingBox();
    assert.ok(box.width >= 120 && box.height >= 48, `launcher drawn at a usable size: ${JSON.stringify(box)}`);
    assert.ok(box.x + box.width > 1200 && box.y + box.height > 850, `bottom right: ${JSON.stringify(box)}`);
    // It is what a click there hits (nothing of the page covers it).
    assert.equal(await page.evaluate(([x, y]) => {
      const host = document.elementFromPoint(x, y);
      return host?.localName === 'podium-gateway-chat' && host.shadowRoot.elementFromPoint(x, y)?.closest('.launcher') != null;
    }, [box.x + box.width / 2, box.y + box.height / 2]), true);
    const look = await button.evaluate((el) => {
      const s = getComputedStyle(el);
      return { font: s.fontSize, transform: s.textTransform, spacing: s.letterSpacing, bg: s.backgroundColor, family: s.fontFamily };
    });
    assert.equal(look.font, '16px');
    assert.equal(look.transform, 'none');
    assert.equal(look.spacing, 'normal');
    assert.equal(look.bg, 'rgb(15, 94, 115)');
    assert.ok(!/comic/i.test(look.family), look.family);

    await button.click();
    await dialog(page).waitFor({ state: 'visible' });
    const panelBox = await dialog(page).boundingBox();
    assert.ok(panelBox.width >= 360 && panelBox.height >= 400, `panel size ${JSON.stringify(panelBox)}`);
    const field = await page.locator('#podium-phone').evaluate((el) => {
      const s = getComputedStyle(el);
      return { font: s.fontSize, height: el.getBoundingClientRect().height, visible: s.visibility, direction: s.direction };
    });
    assert.equal(field.font, '16px');
    assert.ok(field.height >= 40, `phone field height ${field.height}`);
    assert.equal(field.visible, 'visible');
    assert.equal(field.direction, 'ltr');
    await dialog(page).screenshot({ path: path.join(ARTIFACTS, 'dropin-hostile-css.png') });

    await fillChat(page);
    await page.getByText('Will text +61412345678').waitFor();
    await sendButton(page).click();
    assert.equal(await settled(page), 'sent');
    assert.equal(tab.messages.length, 1);
    assertClean(tab);
  } finally {
    await tab.close();
  }
});

test('under 480 px the panel is full-screen, modal, and keeps Tab inside', { timeout: 60_000 }, async () => {
  const tab = await open('/sydney/', { context: { viewport: { width: 390, height: 760 }, isMobile: true, hasTouch: true } });
  try {
    const { page } = tab;
    await launcher(page).tap();
    await dialog(page).waitFor({ state: 'visible' });
    await dialog(page).evaluate((el) => Promise.all(el.getAnimations().map((a) => a.finished)));
    const box = await dialog(page).boundingBox();
    assert.deepEqual(box, { x: 0, y: 0, width: 390, height: 760 });
    assert.equal(await dialog(page).getAttribute('aria-modal'), 'true');
    assert.equal(await launcher(page).isVisible(), false, 'the launcher hides behind the full-screen panel');
    await page.screenshot({ path: path.join(ARTIFACTS, 'dropin-mobile.png') });
    // The last stop wraps to the first (the close button) and back.
    await sendButton(page).focus();
    await page.keyboard.press('Tab');
    assert.equal(await focused(page), 'Close chat');
    await page.keyboard.press('Shift+Tab');
    assert.equal(await focused(page), 'send');

    await page.getByRole('button', { name: 'Close chat' }).tap();
    await dialog(page).waitFor({ state: 'hidden' });
    assert.equal(await launcher(page).isVisible(), true);
    assert.equal(await focused(page), 'launcher');
    assertClean(tab);
  } finally {
    await tab.close();
  }
});

test('themed by data attributes and CSS custom properties', { timeout: 60_000 }, async () => {
  const attrs = 'data-color="#ffd400" data-position="left" data-launcher-label="Ask the crew" data-title="Ask the Rocks crew" data-subtitle="Usually within minutes."';
  const css = ':root { --podium-radius: 4px; } podium-gateway-chat { --podium-font: Georgia, serif; }';
  const tab = await open('/sydney/', { rewrite: withSnippet({ attrs, css }) });
  try {
    const { page } = tab;
    const button = page.getByRole('button', { name: 'Ask the crew' });
    await button.click();
    await page.getByRole('dialog', { name: 'Ask the Rocks crew' }).waitFor();
    assert.equal(await page.locator('#podium-subtitle').innerText(), 'Usually within minutes.');
    const look = await button.evaluate((el) => {
      const s = getComputedStyle(el);
      return { bg: s.backgroundColor, color: s.color, family: s.fontFamily, left: el.getBoundingClientRect().left };
    });
    assert.equal(look.bg, 'rgb(255, 212, 0)');
    assert.equal(look.color, 'rgb(17, 17, 17)', 'dark text on a light colour');
    assert.match(look.family, /Georgia/);
    assert.ok(look.left < 40, `on the left: ${look.left}`);
    assert.equal(await dialog(page).evaluate((el) => getComputedStyle(el).borderTopLeftRadius), '4px');
    assertClean(tab);
  } finally {
    await tab.close();
  }
  // A custom property from the page wins over the default colour.
  const themed = await open('/sydney/', { rewrite: withSnippet({ css: ':root { --podium-accent: rgb(120, 20, 60); --podium-accent-text: rgb(255, 255, 240); }' }) });
  try {
    const look = await launcher(themed.page).evaluate((el) => [getComputedStyle(el).backgroundColor, getComputedStyle(el).color]);
    assert.deepEqual(look, ['rgb(120, 20, 60)', 'rgb(255, 255, 240)']);
    assertClean(themed);
  } finally {
    await themed.close();
  }
});

test('the chat follows the customer to the next page: same session, panel, "still there?"', { timeout: 90_000 }, async () => {
  const tab = await open('/sydney/');
  try {
    const { page } = tab;
    await launcher(page).click();
    await fillChat(page, { name: 'Lee', text: 'Which size for 1.80 m?' });
    await sendButton(page).click();
    assert.equal(await settled(page), 'sent');
    const first = tab.messages[0];

    // An ordinary link on the merchant's page: a full navigation, same tab.
    await page.getByRole('link', { name: 'wetsuit size guide' }).click();
    await page.waitForURL('**/sydney/wetsuit-sizes/');
    await dialog(page).waitFor({ state: 'visible' });
    assert.notEqual(await focused(page), 'podium-name', 'reopened without taking focus');
    assert.equal(await page.inputValue('#podium-name'), 'Lee');
    assert.equal(await page.inputValue('#podium-phone'), '0412 345 678');
    assert.equal(await page.inputValue('#podium-message'), '');

    // The session's clock came along: the prompt appears here (warns 2 s after the send).
    const prompt = page.locator('.still');
    await prompt.getByText('Still there?').waitFor({ timeout: 10_000 });
    const keepalive = page.waitForResponse((r) => r.url().endsWith('/keepalive'));
    await prompt.getByRole('button', { name: 'I’m still here' }).click();
    assert.equal((await keepalive).status(), 200);
    await page.waitForFunction(() => document.querySelector('podium-gateway-chat').shadowRoot.querySelector('.still').textContent === '');

    await page.fill('#podium-message', 'And for 1.72 m?');
    await sendButton(page).click();
    assert.equal(await settled(page), 'sent');
    assert.equal(tab.messages.length, 2);
    assert.equal(tab.messages[1].session_id, first.session_id, 'one chat session across pages');
    assert.equal(tab.messages[1].location.page_url, `${stack.url}/sydney/wetsuit-sizes/`);
    assert.equal(tab.answers[1].body.session.conversation, tab.answers[0].body.session.conversation, 'the same conversation');
    assert.notEqual(tab.posts[1].headers['idempotency-key'], tab.posts[0].headers['idempotency-key']);
    assertClean(tab, '412 345 678', 'Which size');
  } finally {
    await tab.close();
  }
});

test('STOP and START are answered as such, not with "we\'ll text you back"', { timeout: 60_000 }, async () => {
  const tab = await open('/sydney/');
  try {
    const { page } = tab;
    await launcher(page).click();
    // Its own number: the opt-out must not touch the other tests' phone.
    await fillChat(page, { phone: '0412 000 111', text: 'STOP' });
    await sendButton(page).click();
    assert.equal(await settled(page), 'sent');
    assert.equal(tab.answers[0].body.opt_out, 'opted_out');
    await page.getByText('Done: we won’t send you texts any more. Send START to get them again.').waitFor();
    await page.fill('#podium-message', 'START');
    await sendButton(page).click();
    assert.equal(await settled(page), 'sent');
    assert.equal(tab.answers[1].body.opt_out, 'opted_in');
    await page.getByText('You’ll get our texts again. We’ll text you back shortly.').waitFor();
    assertClean(tab, '412 000 111');
  } finally {
    await tab.close();
  }
});

test('one Idempotency-Key per message: double clicks and resends reuse it, a new message gets a new one', { timeout: 90_000 }, async () => {
  const tab = await open('/sydney/');
  try {
    const { page } = tab;
    const keys = () => tab.posts.map((p) => p.headers['idempotency-key']);
    tab.expectedFailures = /net::ERR_CONNECTION_RESET|status of 503/;
    await launcher(page).click();
    await fillChat(page, { text: 'First' });
    await sendButton(page).dblclick();
    assert.equal(await settled(page), 'sent');
    await page.waitForTimeout(500);
    assert.equal(tab.posts.length, 1, 'a double click sends once');

    // The answer is lost on the way back: the widget resends by itself, same key.
    tab.faults.push('lose-answer');
    await page.fill('#podium-message', 'Second');
    await sendButton(page).click();
    assert.equal(await settled(page), 'sent');
    assert.equal(tab.posts.length, 3);
    assert.equal(tab.posts[1].outcome, 'answer lost');
    assert.equal(keys()[2], keys()[1], 'the automatic resend is the same message');
    assert.notEqual(keys()[1], keys()[0], 'a new message, a new key');

    // The gateway is down for every automatic attempt: the customer presses Send again.
    for (let i = 0; i < 3; i++) tab.faults.push({ fulfill: { status: 503, body: { error: { code: 'unavailable' } } } });
    await page.fill('#podium-message', 'Third');
    await sendButton(page).click();
    assert.equal(await settled(page), 'failed');
    await page.getByText('Sorry, your message could not be sent. Please try again.').waitFor();
    assert.equal(tab.posts.length, 6);
    assert.equal(new Set(keys().slice(3)).size, 1);
    assert.equal(await page.inputValue('#podium-message'), 'Third', 'kept for the resend');
    // Even after a reload (the tab keeps the pending key, not the text).
    await page.reload({ waitUntil: 'load' });
    await dialog(page).waitFor({ state: 'visible' });
    await page.fill('#podium-message', 'Third');
    await sendButton(page).click();
    assert.equal(await settled(page), 'sent');
    assert.equal(keys()[6], keys()[3], 'the customer\'s resend is the same message');
    assert.ok(keys().every((k) => UUID_V4.test(k)), keys().join(' '));

    // Done with it: the same words again later are a new message.
    await page.fill('#podium-message', 'Third');
    await sendButton(page).click();
    assert.equal(await settled(page), 'sent');
    assert.notEqual(keys()[7], keys()[6]);
    assert.equal(new Set(keys()).size, 4, 'four messages, four keys');
    assertClean(tab);
  } finally {
    await tab.close();
  }
});

// A local stand-in for Cloudflare's api.js (no network here): explicit render, reset,
// getResponse; hands out the dummy token a little after render and after each reset.
const TURNSTILE_DOUBLE = `
(function () {
  var log = window.__turnstile = { renders: [], resets: 0, issued: 0, hold: false };
  var widgets = {};
  function issue(id) {
    setTimeout(function () {
      var w = widgets[id];
      if (!w || log.hold) return;
      w.token = ${JSON.stringify(DUMMY_TOKEN)};
      log.issued++;
      w.opts.callback(w.token);
    }, 300);
  }
  window.turnstile = {
    render: function (container, opts) {
      var id = 'tw-' + (log.renders.length + 1);
      var box = document.createElement('div');
      box.className = 'turnstile-double';
      box.textContent = 'Success! (Turnstile test double)';
      box.style.cssText = 'width:300px;height:65px;border:1px solid #ccc;display:flex;align-items:center;padding:0 12px;font:14px sans-serif';
      container.appendChild(box);
      log.renders.push({ sitekey: opts.sitekey, options: Object.keys(opts).sort(), container: container.getAttribute('slot'), hostTag: container.parentNode && container.parentNode.localName });
      widgets[id] = { opts: opts, token: '' };
      issue(id);
      return id;
    },
    reset: function (id) { log.resets++; widgets[id].token = ''; issue(id); },
    getResponse: function (id) { return widgets[id] ? widgets[id].token || undefined : undefined; },
    remove: function (id) { delete widgets[id]; },
  };
})();
`;

test('Turnstile: loaded on open, rendered in the panel, one fresh token per message POST', { timeout: 90_000 }, async () => {
  const turnstileState = (page) => page.evaluate(() => ({ issued: window.__turnstile.issued, resets: window.__turnstile.resets }));
  const tab = await open('/sydney/', {
    rewrite: withSnippet({ attrs: `data-turnstile-sitekey="${TEST_SITEKEY}"` }),
    setup: (page) => page.route(TURNSTILE_SRC, (route) => route.fulfill({ contentType: 'text/javascript', body: TURNSTILE_DOUBLE })),
    // What the Turnstile widget had handed out when each POST left the page.
    onPost: (post, page) => turnstileState(page),
  });
  try {
    const { page } = tab;
    tab.expectedFailures = /status of 403/;
    const turnstileRequests = () => tab.requests.filter((r) => r.url.startsWith('https://challenges.cloudflare.com/'));
    await pageIdle(page);
    assert.deepEqual(turnstileRequests(), [], 'not loaded on a page view');

    await launcher(page).click();
    await page.getByText('Success! (Turnstile test double)').waitFor();
    assert.deepEqual(turnstileRequests().map((r) => r.url), [TURNSTILE_SRC]);
    const [render] = await page.evaluate(() => window.__turnstile.renders);
    assert.deepEqual(render, {
      sitekey: TEST_SITEKEY,
      options: ['callback', 'error-callback', 'expired-callback', 'sitekey'],
      container: 'turnstile',
      hostTag: 'podium-gateway-chat',
    });
    // Shown inside the panel (slotted into it).
    const inPanel = await page.evaluate(() => {
      const double = document.querySelector('.turnstile-double').getBoundingClientRect();
      const panel = document.querySelector('podium-gateway-chat').shadowRoot.querySelector('.panel').getBoundingClientRect();
      return double.width > 0 && double.left >= panel.left && double.right <= panel.right && double.top >= panel.top && double.bottom <= panel.bottom;
    });
    assert.equal(inPanel, true);
    await dialog(page).screenshot({ path: path.join(ARTIFACTS, 'dropin-turnstile.png') });

    await fillChat(page, { text: 'Checked by Turnstile' });
    await sendButton(page).click();
    assert.equal(await settled(page), 'sent');
    assert.equal(tab.posts[0].headers['cf-turnstile-response'], DUMMY_TOKEN, 'the token travels with the message');
    assert.equal(tab.answers[0].status, 202);
    await page.waitForFunction(() => window.__turnstile.resets === 1);

    // The gateway refuses the token: say so plainly, reset, and the next send works.
    tab.faults.push({ fulfill: { status: 403, body: { error: { code: 'turnstile_failed', message: 'the Turnstile check failed' } } } });
    await page.fill('#podium-message', 'Second, refused');
    await sendButton(page).click(); // straight away: waits for the reset's fresh token
    assert.equal(await settled(page), 'failed');
    assert.match(await page.getByRole('alert').innerText(), /confirm you’re human, then send again/);
    assert.equal(tab.posts[1].headers['cf-turnstile-response'], DUMMY_TOKEN);
    // From the next reset on, the double hands out no more tokens.
    await page.waitForFunction(() => window.__turnstile.resets === 2 && window.__turnstile.issued === 3);
    await page.evaluate(() => { window.__turnstile.hold = true; });
    await sendButton(page).click();
    assert.equal(await settled(page), 'sent');
    assert.equal(tab.posts[2].headers['cf-turnstile-response'], DUMMY_TOKEN);
    // Every POST left with a token issued after the latest reset: none was used twice.
    assert.deepEqual(tab.posts.map((p) => p.seen), [
      { issued: 1, resets: 0 }, { issued: 2, resets: 1 }, { issued: 3, resets: 2 },
    ]);
    assert.equal(tab.posts[1].headers['idempotency-key'] !== tab.posts[2].headers['idempotency-key'], true,
      'refused outright: nothing was taken, so the resend may carry a new key');

    // No token comes (an interactive challenge nobody solved): ask, send nothing.
    await page.waitForFunction(() => window.__turnstile.resets === 3);
    assert.equal((await turnstileState(page)).issued, 3, 'held: no token after the last reset');
    await page.fill('#podium-message', 'Nobody solved it');
    await sendButton(page).click();
    assert.equal(await settled(page), 'failed');
    assert.match(await page.getByRole('alert').innerText(), /confirm you’re human/);
    assert.equal(tab.posts.length, 3, 'nothing sent without a token');
    assertClean(tab);
  } finally {
    await tab.close();
  }
});

test('Turnstile unreachable: the message goes without a token and the gateway decides', { timeout: 60_000 }, async () => {
  const tab = await open('/sydney/', {
    rewrite: withSnippet({ attrs: `data-turnstile-sitekey="${TEST_SITEKEY}"` }),
    setup: (page) => page.route(TURNSTILE_SRC, (route) => route.abort('connectionrefused')),
  });
  try {
    const { page } = tab;
    tab.expectedFailures = /ERR_CONNECTION_REFUSED|status of 403/;
    await launcher(page).click();
    await fillChat(page, { text: 'No Turnstile today' });
    // A gateway that requires Turnstile refuses: the customer is told what to do.
    tab.faults.push({ fulfill: { status: 403, body: { error: { code: 'turnstile_required', message: 'a Turnstile token is required' } } } });
    await sendButton(page).click();
    assert.equal(await settled(page), 'failed');
    assert.match(await page.getByRole('alert').innerText(), /security check could not be loaded/);
    assert.equal(tab.posts[0].headers['cf-turnstile-response'], undefined);
    // One that does not: it goes through.
    await sendButton(page).click();
    assert.equal(await settled(page), 'sent');
    assert.equal(tab.messages.length, 1);
    assert.ok(tab.consoleText.includes('podium-gateway: Turnstile could not be loaded; sending without it'));
    assertClean(tab);
  } finally {
    await tab.close();
  }
});

test('modes: data-mode or the page\'s own form decides; PodiumGateway.open()/close()', { timeout: 60_000 }, async () => {
  // Sydney told to enhance: no form on the page, so nothing is drawn.
  const enhance = await open('/sydney/', { rewrite: withSnippet({ attrs: 'data-mode="enhance"' }) });
  try {
    await enhance.page.waitForFunction(() => window.PodiumGateway.mode !== null);
    assert.equal(await enhance.page.evaluate(() => window.PodiumGateway.mode), 'enhance');
    assert.equal(await enhance.page.locator('podium-gateway-chat').count(), 0);
    assertClean(enhance);
  } finally {
    await enhance.close();
  }
  // San Francisco (its own form) told to drop in: our widget, their form left alone.
  const dropin = await open('/san-francisco/', { rewrite: withSnippet({ attrs: 'data-mode="dropin"' }) });
  try {
    const { page } = dropin;
    await launcher(page).last().waitFor();
    assert.equal(await page.evaluate(() => window.PodiumGateway.mode), 'dropin');
    assert.equal(await page.locator('podium-gateway-chat').count(), 1);
    assert.equal(await page.evaluate(() => document.querySelector('form[data-podium-chat] [data-podium-still-there]')), null,
      'the page\'s own form is not bound');
    assert.equal(await page.evaluate(() => window.PodiumGateway.open()), true);
    await dialog(page).filter({ has: page.locator('#podium-title') }).waitFor({ state: 'visible' });
    assert.equal(await focused(page), 'podium-name');
    await page.evaluate(() => window.PodiumGateway.close());
    await page.locator('#podium-panel').waitFor({ state: 'hidden' });
    // The merchant's own button opens it: Escape brings focus back to that button.
    await page.evaluate(() => {
      const ask = document.createElement('button');
      ask.id = 'ask';
      ask.textContent = 'Ask about this wetsuit';
      ask.addEventListener('click', () => window.PodiumGateway.open());
      document.querySelector('main').append(ask);
    });
    await page.getByRole('button', { name: 'Ask about this wetsuit' }).click();
    await page.locator('#podium-panel').waitFor({ state: 'visible' });
    assert.equal(await focused(page), 'podium-name');
    await page.keyboard.press('Escape');
    await page.locator('#podium-panel').waitFor({ state: 'hidden' });
    assert.equal(await focused(page), 'ask');
    assertClean(dropin);
  } finally {
    await dropin.close();
  }
});

test('validator blocked: the drop-in still sends (phone as typed) and checks file size', { timeout: 60_000 }, async () => {
  const tab = await open('/sydney/', { blockWasm: true });
  try {
    const { page } = tab;
    await launcher(page).click();
    assert.equal(await page.evaluate(() => window.PodiumGateway.ready), false);
    await page.setInputFiles('#podium-file', { name: 'big.pdf', mimeType: 'application/pdf', buffer: Buffer.alloc(26_000_000) });
    await page.locator('#podium-file ~ .podium-gateway-error').getByText(/limit is 25 MB/).waitFor();
    await fillChat(page, { phone: ' 0412 345 678 ' });
    await sendButton(page).click();
    assert.equal(await settled(page), 'sent');
    assert.equal(tab.messages[0].contact.phone, '0412 345 678');
    assert.equal(tab.answers[0].status, 202, 'the gateway normalized it with the store region');
    assert.deepEqual(tab.uploads, []);
    // The one warning is the snippet's own, without personal data.
    assert.deepEqual(tab.consoleText.filter((t) => /podium-gateway/.test(t)), ['podium-gateway: validator unavailable; the gateway will validate']);
    assert.deepEqual(tab.errors.map(String), []);
    assert.ok(tab.consoleErrors.every((t) => /widget_bg\.wasm|Failed to load resource|net::ERR_FAILED/.test(t)), tab.consoleErrors.join('\n'));
  } finally {
    await tab.close();
  }
});
