// End-to-end: enhance mode — the snippet www/gateway-widget.js on chat forms the merchant
// wrote (the San Francisco demo page, and www/examples/panel-on-open/ whose panel is
// inserted from a <template> on first open), served by the real worker (`wrangler dev`,
// workerd) in headless Chromium, with its WebAssembly validator. The drop-in widget (the
// Sydney pages) has its own file, dropin.test.mjs. Run: node --test tests/e2e/
//
// Everything is real: the worker forwards to a local Podium sandbox, and the tests check
// what reached "Podium". Each page records (page.route, passing requests through) what
// the snippet sent to /v1/webchat/attachments and /v1/webchat/messages and what it got.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { launchBrowser, openGatewayPage } from '../support/browser.mjs';
import { inbound, startGateway, testConfig, waitFor } from '../support/gateway.mjs';
import { fetchWorker } from '../support/stack.mjs';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
// A real 1×1 PNG.
const TINY_PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
  'base64',
);
const MB = 1024 * 1024;

let stack;
let browser;

before(async () => {
  // Short sessions so the "still there?" prompt can be seen; the first start compiles.
  stack = await startGateway({ config: testConfig({ session: { idle_ms: 5000, warning_ms: 3000 } }) });
  browser = await launchBrowser();
}, { timeout: 240_000 });

after(async () => {
  try {
    await browser?.close();
  } finally {
    await stack?.stop();
  }
});

// The own-form page whose chat panel is inserted on first open (AU, loc_sydney).
const PANEL_ON_OPEN = '/examples/panel-on-open/';

/** A page in a fresh context with the chat routes recorded (see openGatewayPage). */
function openStore(pathname, options) {
  return openGatewayPage(browser, stack.url, pathname, options);
}

/** Let the page go idle (requestIdleCallback fires): what loads "on every page view" has. */
function pageIdle(page) {
  return page.evaluate(() => new Promise((resolve) => requestIdleCallback(() => setTimeout(resolve, 300), { timeout: 3000 })));
}

async function openChat(page) {
  await page.getByRole('button', { name: 'Chat with us' }).click();
  await page.locator('form[data-podium-chat]').waitFor({ state: 'visible' });
}

const form = (page) => page.locator('form[data-podium-chat]');
const phoneAlert = (page) => page.locator('#chat-phone + [role=alert]');
const fileAlert = (page) => page.locator('#chat-file + [role=alert]');
const statusLine = (page) => page.locator('[data-podium-status]');

async function sendMessage(page, { phone, text = 'Do you have the wetsuit in M?', name = 'Ann' }) {
  await page.fill('#chat-name', name);
  await page.fill('#chat-phone', phone);
  await page.fill('#chat-message', text);
  await page.getByRole('button', { name: 'Send' }).click();
}

/** Wait until a send attempt has finished (sent, invalid or failed). */
async function settled(page) {
  await page.waitForFunction(() => {
    const state = document.querySelector('[data-podium-status]')?.getAttribute('data-state');
    return state === 'sent' || state === 'invalid' || state === 'failed';
  });
  return statusLine(page).getAttribute('data-state');
}

/** Nothing personal reaches the console, nothing was thrown, no console errors. */
function assertClean(tab, ...secrets) {
  assert.deepEqual(tab.errors.map(String), [], 'uncaught errors in the page');
  assert.deepEqual(tab.consoleErrors, [], 'console errors');
  for (const secret of secrets) {
    for (const line of tab.consoleText) assert.ok(!line.includes(secret), `console leaked ${secret}: ${line}`);
  }
}

test('a form added on open (MutationObserver): a national AU number is sent as E.164 with the store and a session', { timeout: 60_000 }, async () => {
  const tab = await openStore(PANEL_ON_OPEN);
  try {
    const { page } = tab;
    // The form is only in a <template>: the snippet still knows it is the merchant's own.
    assert.equal(await page.evaluate(() => window.PodiumGateway.mode), 'enhance');
    assert.equal(await page.locator('podium-gateway-chat').count(), 0, 'no drop-in drawn');
    await openChat(page); // the form is inserted into the page now
    await page.evaluate(() => {
      window.__events = [];
      document.addEventListener('podium-gateway:sent', (e) => window.__events.push(e.type));
    });
    await page.fill('#chat-phone', '0412 345 678');
    // The validator (wasm) normalized it while typing.
    await page.getByText('Will text +61412345678').waitFor();
    assert.equal(await page.evaluate(() => window.PodiumGateway.ready), true);

    await sendMessage(page, { phone: '0412 345 678', text: 'Do you have the 3/2 in M?' });
    assert.equal(await settled(page), 'sent');

    assert.equal(tab.messages.length, 1);
    const env = tab.messages[0];
    assert.equal(env.contact.phone, '+61412345678');
    assert.equal(env.contact.name, 'Ann');
    assert.deepEqual(env.message, { type: 'text', value: 'Do you have the 3/2 in M?' });
    assert.equal(env.location.location_uid, 'loc_sydney');
    assert.equal(env.location.page_url, `${stack.url}${PANEL_ON_OPEN}`);
    assert.match(env.session_id, UUID_V4);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('podium-gateway:session')), env.session_id);
    assert.equal(env.client.widget_version, '0.1.0');
    assert.equal(env.attachments, undefined);
    // Posted to the script's own origin (no data-endpoint on the page).
    assert.ok(tab.requests.some((r) => r.method === 'POST' && r.url === `${stack.url}/v1/webchat/messages`));
    assert.deepEqual(await page.evaluate(() => window.__events), ['podium-gateway:sent']);
    assert.equal(await page.inputValue('#chat-message'), '', 'the message box is cleared after sending');
    assert.equal(tab.answers[0].status, 202);
    assert.equal(tab.answers[0].body.location.uid, 'loc_sydney');
    assert.match(tab.posts[0].headers['idempotency-key'], UUID_V4);
    // It reached Podium: one contact, the chat in the Sydney inbox.
    const delivered = await waitFor(async () => inbound(await stack.sandbox.messages('+61412345678', 'loc_sydney'))
      .find((m) => m.body === 'Do you have the 3/2 in M?'), { what: 'the chat at the Sydney store' });
    assert.equal(delivered.webchatUrl, `${stack.url}${PANEL_ON_OPEN}`);
    assert.equal((await stack.sandbox.contacts('+61412345678')).length, 1);
    assertClean(tab, '412345678', '412 345 678', 'Do you have');
  } finally {
    await tab.close();
  }
});

test('San Francisco: a national US number is sent as E.164, from the page URL without query or fragment', { timeout: 60_000 }, async () => {
  const tab = await openStore('/san-francisco/?utm_campaign=spring&email=sam%40example.com#chat');
  try {
    const { page } = tab;
    assert.equal(await page.evaluate(() => window.PodiumGateway.mode), 'enhance');
    await openChat(page); // the form was on the page, hidden
    await sendMessage(page, { phone: '(415) 555-1234', name: 'Sam' });
    assert.equal(await settled(page), 'sent');
    assert.equal(tab.messages.length, 1);
    assert.equal(tab.messages[0].contact.phone, '+14155551234');
    assert.equal(tab.messages[0].location.location_uid, 'loc_sanfrancisco');
    assert.equal(tab.messages[0].location.page_url, `${stack.url}/san-francisco/`);
    assert.match(tab.posts[0].headers['idempotency-key'], UUID_V4);
    assert.equal(tab.posts[0].headers['x-requested-with'], 'podium-gateway');
    assert.equal(await page.evaluate(() => window.PodiumGateway.ready), true);
    assertClean(tab, '5551234', '555-1234');
  } finally {
    await tab.close();
  }
});

test('an invalid phone number is shown inline and nothing is sent', { timeout: 60_000 }, async () => {
  const tab = await openStore(PANEL_ON_OPEN);
  try {
    const { page } = tab;
    await openChat(page);
    await page.evaluate(() => {
      window.__invalid = [];
      document.addEventListener('podium-gateway:invalid', (e) => window.__invalid.push(e.detail.problems));
    });
    await sendMessage(page, { phone: 'abc' });
    assert.equal(await settled(page), 'invalid');

    const alert = phoneAlert(page);
    await alert.waitFor({ state: 'visible' });
    assert.match(await alert.innerText(), /not a phone number/i);
    assert.equal(await page.getAttribute('#chat-phone', 'aria-invalid'), 'true');
    const describedBy = await page.getAttribute('#chat-phone', 'aria-describedby');
    assert.ok(describedBy.split(' ').includes(await alert.getAttribute('id')));
    const problems = await page.evaluate(() => window.__invalid);
    assert.equal(problems.length, 1);
    assert.ok(problems[0].some((p) => p.field === 'contact.phone'));
    assert.equal(await page.evaluate(() => document.activeElement.id), 'chat-phone', 'focus moved to the field to fix');

    // Clicking Send again changes nothing.
    await page.getByRole('button', { name: 'Send' }).click();
    await page.waitForTimeout(300);
    assert.equal(tab.messages.length, 0);
    assert.ok(!tab.requests.some((r) => r.url.includes('/v1/webchat/messages')), 'no message request at all');

    // Fixing it clears the error while typing.
    await page.fill('#chat-phone', '0412 345 678');
    await page.getByText('Will text +61412345678').waitFor();
    assert.equal(await page.getAttribute('#chat-phone', 'aria-invalid'), null);
    assert.equal(await alert.isVisible(), false);
    assertClean(tab);
  } finally {
    await tab.close();
  }
});

test('a 30 MB file is refused before upload: inline message, no request', { timeout: 90_000 }, async () => {
  const tab = await openStore('/san-francisco/');
  try {
    const { page } = tab;
    await openChat(page);
    await page.setInputFiles('#chat-file', {
      name: 'wetsuit-tear.png',
      mimeType: 'image/png',
      buffer: Buffer.alloc(30 * MB, 7),
    });
    const alert = fileAlert(page);
    await alert.waitFor({ state: 'visible' });
    const text = await alert.innerText();
    assert.match(text, /limit is 25 MB/);
    assert.match(text, /31\.5 MB/);
    assert.equal(await page.getAttribute('#chat-file', 'aria-invalid'), 'true');
    assert.equal(await page.$eval('#chat-file', (input) => input.files.length), 0, 'removed from the selection');

    // The message itself still goes, without the file.
    await sendMessage(page, { phone: '(415) 555-1234', text: 'Photo was too big, sorry' });
    assert.equal(await settled(page), 'sent');
    assert.equal(tab.messages.length, 1);
    assert.equal(tab.messages[0].attachments, undefined);

    assert.deepEqual(tab.uploads, []);
    const attachmentRequests = tab.requests.filter((r) => r.url.includes('/attachments'));
    assert.deepEqual(attachmentRequests, [], 'no request to /v1/webchat/attachments');
    const big = tab.requests.filter((r) => r.bodyBytes >= MB || r.contentLength >= MB);
    assert.deepEqual(big, [], 'no request carried a body of 1 MB or more');
    assertClean(tab);
  } finally {
    await tab.close();
  }
});

test('a small PNG is uploaded first and its file_id travels in the envelope', { timeout: 60_000 }, async () => {
  const tab = await openStore('/san-francisco/');
  try {
    const { page } = tab;
    await openChat(page);
    await page.setInputFiles('#chat-file', { name: 'receipt.png', mimeType: 'image/png', buffer: TINY_PNG });
    await sendMessage(page, { phone: '415-555-1234', text: 'Is this the right size?' });
    assert.equal(await settled(page), 'sent');
    assert.equal(await fileAlert(page).isVisible(), false, 'no file refused');

    assert.equal(tab.uploads.length, 1);
    const [upload] = tab.uploads;
    assert.equal(upload.headers['content-type'], 'image/png');
    assert.equal(upload.headers['x-filename'], 'receipt.png');
    assert.ok(upload.body.equals(TINY_PNG), 'the raw file is the body');

    assert.equal(tab.messages.length, 1);
    assert.deepEqual(tab.messages[0].attachments, [
      { file_id: upload.answer.file_id, filename: 'receipt.png', content_type: 'image/png', size: TINY_PNG.length },
    ]);
    assert.equal(tab.messages[0].contact.phone, '+14155551234');
    const order = tab.requests.filter((r) => r.url.includes('/v1/webchat/')).map((r) => new URL(r.url).pathname);
    assert.deepEqual(order, ['/v1/webchat/attachments', '/v1/webchat/messages'], 'upload before message');
    // The file itself reached Podium's attachment endpoint, byte for byte.
    const sha256 = createHash('sha256').update(TINY_PNG).digest('hex');
    const stored = await waitFor(async () => (await stack.sandbox.state()).attachments.find((a) => a.sha256 === sha256),
      { what: 'the PNG at the sandbox' });
    assert.equal(stored.size, TINY_PNG.length);
    assert.equal(stored.locationUid, 'loc_sanfrancisco');
    assertClean(tab);
  } finally {
    await tab.close();
  }
});

test('lazy: a page view never fetches the validator; focusing the form does', { timeout: 60_000 }, async () => {
  const tab = await openStore('/san-francisco/');
  try {
    const { page } = tab;
    await pageIdle(page); // loaded, then idle: nothing is fetched for a customer who never chats
    const fetched = (suffix) => tab.requests.some((r) => r.url.endsWith(suffix));
    assert.equal(fetched('/pkg/widget.js'), false, 'widget.js fetched on a page view');
    assert.equal(fetched('/pkg/widget_bg.wasm'), false, 'wasm fetched on a page view');

    await openChat(page); // the merchant's launcher focuses the name field
    assert.equal(await page.evaluate(() => window.PodiumGateway.ready), true);
    assert.equal(fetched('/pkg/widget_bg.wasm'), true);
    assertClean(tab);
  } finally {
    await tab.close();
  }
});

test('lazy: a form inserted on open loads the validator as it takes focus', { timeout: 60_000 }, async () => {
  const tab = await openStore(PANEL_ON_OPEN);
  try {
    const { page } = tab;
    await pageIdle(page);
    assert.ok(!tab.requests.some((r) => r.url.includes('/pkg/')), 'nothing fetched before the chat was opened');
    await openChat(page);
    assert.equal(await page.evaluate(() => window.PodiumGateway.ready), true);
    // The module's metadata version, when the module has one (read defensively).
    const version = await page.evaluate(() => window.PodiumGateway.metadataVersion());
    assert.ok(version === null || /\d/.test(version), String(version));
    assertClean(tab);
  } finally {
    await tab.close();
  }
});

test('validator blocked: the page still works and the gateway gets the phone as typed', { timeout: 60_000 }, async () => {
  const tab = await openStore(PANEL_ON_OPEN, { blockWasm: true });
  try {
    const { page } = tab;
    await openChat(page);
    assert.equal(await page.evaluate(() => window.PodiumGateway.ready), false);
    const verdict = await page.evaluate(() => window.PodiumGateway.normalizePhone('0412 345 678', 'AU'));
    assert.equal(verdict.code, 'validator_unavailable');

    await sendMessage(page, { phone: ' 0412 345 678 ' });
    assert.equal(await settled(page), 'sent');
    assert.equal(tab.messages.length, 1);
    // No client-side normalization: the server validates and normalizes.
    assert.equal(tab.messages[0].contact.phone, '0412 345 678');
    assert.equal(tab.messages[0].location.location_uid, 'loc_sydney');
    assert.equal(tab.answers[0].status, 202, 'the gateway normalized it with the store region');
    assert.ok(tab.requests.some((r) => r.url.endsWith('/pkg/widget_bg.wasm')), 'the wasm was attempted');

    // Files still get the plain size check.
    await page.setInputFiles('#chat-file', { name: 'big.pdf', mimeType: 'application/pdf', buffer: Buffer.alloc(26_000_000) });
    await fileAlert(page).waitFor({ state: 'visible' });
    assert.match(await fileAlert(page).innerText(), /limit is 25 MB/);
    assert.equal(await page.$eval('#chat-file', (input) => input.files.length), 0);
    assert.deepEqual(tab.uploads, []);
    assert.deepEqual(tab.errors.map(String), []);
    // Chromium's own line for the blocked request is the only console error.
    assert.ok(tab.consoleErrors.every((t) => /^Failed to load resource: net::ERR_FAILED/.test(t)), tab.consoleErrors.join('\n'));
    for (const line of tab.consoleText) assert.ok(!line.includes('412 345 678'), line);
  } finally {
    await tab.close();
  }
});

test('the browser verdict equals the worker verdict', { timeout: 60_000 }, async () => {
  const base = {
    session_id: 'd1b467d4-7eb6-448d-b21f-50578ebaf69b',
    message: { type: 'text', value: 'Do you have the blue one?' },
    contact: { phone: '0412 345 678', name: 'Ann' },
    location: { location_uid: 'loc_sydney', page_url: 'https://shop.example/sydney/' },
  };
  const cases = [
    // [label, region, envelope, expected first code (null: valid)]
    ['valid AU national', 'AU', base, null],
    ['valid US national', 'US', { ...base, contact: { phone: '(415) 555-1234' } }, null],
    ['national number, no region', '', base, 'phone_region_required'],
    ['invalid phone', 'AU', { ...base, contact: { phone: 'abc' } }, 'phone_not_a_number'],
    ['unknown field', 'AU', { ...base, coupon: 'FREE' }, 'unknown_field'],
    ['empty message', 'AU', { ...base, message: { type: 'text', value: '  ' } }, 'message_empty'],
    ['bad session id', 'AU', { ...base, session_id: 'nope' }, 'invalid_session_id'],
    ['attachment too large', 'AU', {
      ...base,
      attachments: [{ file_id: 'f_1', filename: 'a.png', content_type: 'image/png', size: 30 * MB }],
    }, 'attachment_too_large'],
    ['image with a pdf', 'AU', {
      ...base,
      message: { type: 'image', value: '' },
      attachments: [{ file_id: 'f_1', filename: 'a.pdf', content_type: 'application/pdf', size: 10 }],
    }, 'attachment_type_mismatch'],
  ];
  const tab = await openStore('/san-francisco/');
  try {
    const { page } = tab;
    assert.equal(await page.evaluate(() => window.PodiumGateway.load()), true);
    for (const [label, region, envelope, expected] of cases) {
      const browserVerdict = await page.evaluate(
        ([env, r]) => window.PodiumGateway.validateMessage(env, r || undefined),
        [envelope, region],
      );
      const res = await fetchWorker(`${stack.url}/v1/webchat/validate?region=${region}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(envelope),
      });
      const body = await res.json();
      const server = res.ok
        ? { ok: true, e164: body.e164, codes: [] }
        : { ok: false, code: body.error.code, codes: body.problems.map((p) => p.code) };
      const client = browserVerdict.ok
        ? { ok: true, e164: browserVerdict.e164, codes: [] }
        : { ok: false, code: browserVerdict.code, codes: browserVerdict.problems.map((p) => p.code) };
      assert.deepEqual(client, server, label);
      assert.equal(server.ok ? null : server.code, expected, label);
      assert.equal(res.status, server.ok ? 200 : 422, label);
    }
    assertClean(tab);
  } finally {
    await tab.close();
  }
});

test('an idle chat asks "still there?", keeps the session alive, then says it timed out', { timeout: 60_000 }, async () => {
  // Sessions here last 5 s with a 3 s warning window (see before()).
  const tab = await openStore('/san-francisco/');
  try {
    const { page } = tab;
    await openChat(page);
    await page.evaluate(() => {
      window.__session = [];
      document.addEventListener('podium-gateway:session', (e) => window.__session.push(e.detail));
    });
    await sendMessage(page, { phone: '(415) 555-1234', text: 'Back in a minute' });
    assert.equal(await settled(page), 'sent');
    const prompt = page.locator('[data-podium-still-there]');
    await prompt.getByText('Still there?').waitFor({ timeout: 10_000 });
    const before = tab.answers[0].body.session.expires_at_ms;
    const keepalive = page.waitForResponse((r) => r.url().endsWith('/keepalive'));
    await prompt.getByRole('button', { name: 'I’m still here' }).click();
    const kept = await (await keepalive).json();
    assert.ok(kept.session.expires_at_ms > before, 'the idle clock restarted');
    assert.equal(await prompt.innerText(), '', 'the prompt goes away');
    // Ignore the next prompt: the chat closes and the widget says so.
    await prompt.getByText('This chat timed out').waitFor({ timeout: 15_000 });
    assert.deepEqual(await page.evaluate(() => window.__session), [
      { warning: true, expired: false }, { warning: true, expired: false }, { warning: false, expired: true },
    ]);
    assertClean(tab, '555-1234', 'Back in a minute');
  } finally {
    await tab.close();
  }
});
