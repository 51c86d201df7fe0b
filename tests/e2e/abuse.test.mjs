// End-to-end: an SMS-pumping attack on the public webchat route, scripted at scale
// against the real worker, while a real customer chats on the Sydney demo page in
// Chromium in the same run. What must hold (issue 10): automatic texts stay within the
// configured bounds (store countries, per-IP new phones, the per-country breaker,
// nothing for scripts), the breaker's trip is counted and alerted, every accepted chat
// still reaches the inbox, and the customer gets their message through and their one
// confirmation text.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { launchBrowser, openGatewayPage } from '../support/browser.mjs';
import { ORIGIN, inbound, outbound, startGateway, testConfig, waitFor, sleep } from '../support/gateway.mjs';
import { fetchWorker } from '../support/stack.mjs';

const BREAKER_MAX = 3;
let gw;
let browser;

before(async () => {
  gw = await startGateway({
    config: (sandbox) => {
      const base = testConfig();
      // The Sydney store also texts UK numbers (tourists): the attack goes after +44.
      base.routing.locations[0].auto_text_regions = ['AU', 'GB'];
      return {
        ...base,
        auto_texts: {
          per_phone_window_ms: 86_400_000,
          breaker: { max_per_window: BREAKER_MAX, window_ms: 600_000, open_ms: 600_000 },
        },
        webhooks: { alert_url: `${sandbox.url}/_sandbox/alerts` },
      };
    },
  });
  ({ browser } = await launchBrowser());
}, { timeout: 240_000 });

after(async () => {
  try { await browser?.close(); } finally { await gw?.stop(); }
});

const digits = (n) => Array.from({ length: n }, () => Math.floor(Math.random() * 10)).join('');
// Valid mobile numbers of six countries (libphonenumber's ranges).
const COUNTRIES = {
  GB: () => `+447400${digits(6)}`,
  DE: () => `+49151${digits(8)}`,
  FR: () => `+33612${digits(6)}`,
  US: () => `+1415${2 + Math.floor(Math.random() * 8)}${digits(6)}`,
  IN: () => `+9198${digits(8)}`,
  PH: () => `+63917${digits(7)}`,
};

test('a scripted attack (120 requests, 6 IPs, 6 countries) is bounded; a real customer in the same run gets through with one confirmation', { timeout: 180_000 }, async () => {
  const countries = Object.keys(COUNTRIES);
  const attack = [];
  for (let i = 0; i < 120; i++) {
    // Each IP sends every country; waves of six.
    const country = countries[Math.floor(i / 6) % countries.length];
    attack.push({
      ip: `198.51.100.${1 + (i % 6)}`,
      // Half forge the shop's Origin header (scripts can), half send none.
      forged: Math.floor(i / 2) % 2 === 0,
      country,
      phone: COUNTRIES[country](),
    });
  }
  // The real customer arrives while the attack runs.
  const local = digits(6);
  const customer = `+61412${local}`;
  const national = `0412 ${local.slice(0, 3)} ${local.slice(3)}`;

  const fire = async (a) => {
    const headers = { 'content-type': 'application/json', 'cf-connecting-ip': a.ip };
    if (a.forged) headers.origin = ORIGIN;
    const res = await fetchWorker(`${gw.url}/v1/webchat/messages`, {
      method: 'POST', headers,
      body: JSON.stringify({ session_id: randomUUID(), message: { type: 'text', value: 'hi' }, contact: { phone: a.phone } }),
    });
    a.status = res.status;
    a.body = await res.json().catch(() => null);
  };
  // The limits count in fixed windows of the binding's period (60 s, aligned to the
  // clock, as wrangler dev simulates them): an attack that crosses a minute boundary
  // (CI once took 150 s for it) gets a fresh allowance per window it touches.
  const attackWindow = { from: Date.now(), to: 0 };
  const attacking = (async () => {
    for (let i = 0; i < attack.length; i += 12) await Promise.all(attack.slice(i, i + 12).map(fire));
    attackWindow.to = Date.now();
  })();

  const tab = await openGatewayPage(browser, gw.url, '/sydney/');
  try {
    const { page } = tab;
    await page.getByRole('button', { name: 'Chat with us' }).click();
    await page.getByRole('dialog').waitFor({ state: 'visible' });
    await page.fill('#podium-name', 'Ann');
    await page.fill('#podium-phone', national);
    await page.fill('#podium-message', 'Do you have the 3/2 wetsuit in M?');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    const state = await page.waitForFunction(() => {
      const s = document.querySelector('podium-gateway-chat')?.shadowRoot?.querySelector('[data-podium-status]')?.getAttribute('data-state');
      return s === 'sent' || s === 'failed' || s === 'invalid' ? s : false;
    }, null, { timeout: 30_000 });
    assert.equal(await state.jsonValue(), 'sent', 'the customer\'s message was accepted');
  } finally {
    await tab.close();
  }
  await attacking;

  // Every request was answered: accepted (202), or refused by the per-IP limits (429).
  const accepted = attack.filter((a) => a.status === 202);
  const limited = attack.filter((a) => a.status === 429);
  assert.equal(accepted.length + limited.length, attack.length, JSON.stringify(attack.filter((a) => ![202, 429].includes(a.status)).map((a) => [a.status, a.body])));
  const windows = Math.floor(attackWindow.to / 60_000) - Math.floor(attackWindow.from / 60_000) + 1;
  for (let ip = 1; ip <= 6; ip++) {
    const fromIp = accepted.filter((a) => a.ip === `198.51.100.${ip}`).length;
    assert.ok(fromIp <= 10 * windows, `at most 10 new phones per IP a minute (RL_NEW_PHONE), got ${fromIp} from .${ip} in ${windows} window(s)`);
  }
  assert.ok(limited.length >= attack.length - 60 * windows, `the per-IP limits refused the rest: ${limited.length} in ${windows} window(s)`);
  // Clients never learn why no text was sent.
  for (const a of accepted) assert.equal(typeof a.body.confirmation_text, 'boolean');

  // The customer's chat and their one confirmation.
  const customerMsgs = await waitFor(async () => {
    const msgs = await gw.sandbox.messages(customer);
    return inbound(msgs).length >= 1 && outbound(msgs).length >= 1 ? msgs : null;
  }, { timeoutMs: 40_000, what: 'the customer\'s chat and confirmation' });
  assert.equal(inbound(customerMsgs)[0].body, 'Do you have the 3/2 wetsuit in M?');

  // Every accepted attack chat still reached the inbox (the agent can reply).
  const state = await waitFor(async () => {
    const s = await gw.sandbox.state();
    const phones = new Set(accepted.map((a) => a.phone));
    const delivered = s.messages.filter((m) => m.direction === 'inbound_webchat' && phones.has(m.channel?.identifier));
    return delivered.length >= accepted.length ? s : null;
  }, { timeoutMs: 90_000, what: 'every accepted chat in the inbox' });
  await sleep(2000);
  const final = await gw.sandbox.state();
  const texts = final.messages.filter((m) => m.direction === 'outbound');
  const byCountry = {};
  for (const t of texts) {
    const a = attack.find((x) => x.phone === t.channel?.identifier);
    const key = a ? `${a.country}${a.forged ? '' : ' (no Origin)'}` : (t.channel?.identifier === customer ? 'customer' : 'other');
    byCountry[key] = (byCountry[key] ?? 0) + 1;
  }
  assert.equal(byCountry.customer, 1, `exactly one confirmation to the customer: ${JSON.stringify(byCountry)}`);
  const attackTexts = texts.length - 1;
  assert.ok(attackTexts <= BREAKER_MAX, `automatic texts to attack numbers bounded by the +44 breaker (${BREAKER_MAX}): ${JSON.stringify(byCountry)}`);
  for (const key of Object.keys(byCountry)) {
    assert.ok(['customer', 'GB'].includes(key), `texts only to allowed countries from browsers: ${JSON.stringify(byCountry)}`);
  }
  assert.equal(final.messages.filter((m) => m.direction === 'inbound_webchat').length >= accepted.length + 1, true);
  void state;

  // The trip is counted and alerted, once.
  const metrics = await waitFor(async () => {
    const c = (await gw.admin('GET', '/admin/metrics')).body.counters ?? {};
    return (c.auto_text_breaker_tripped ?? 0) >= 1 ? c : null;
  }, { what: 'the breaker trip counter' });
  assert.equal(metrics.auto_text_breaker_tripped, 1, JSON.stringify(metrics));
  assert.equal(metrics['auto_text_breaker_tripped:+44'], 1);
  assert.ok((metrics['auto_text_skipped:untrusted'] ?? 0) >= 1, 'scripts without an Origin triggered nothing');
  assert.ok((metrics['auto_text_skipped:country_not_allowed'] ?? 0) >= 1, 'other countries triggered nothing');
  const alerts = final.alerts.filter((a) => a.body?.event === 'auto_text_breaker_tripped');
  assert.equal(alerts.length, 1, JSON.stringify(final.alerts));
  assert.equal(alerts[0].body.calling_code, 44);
  assert.match(alerts[0].body.text, /\+44 paused/);
  console.log(`# attack: ${attack.length} requests from 6 IPs in ${Math.round((attackWindow.to - attackWindow.from) / 1000)} s (${windows} rate-limit window(s)) → ${accepted.length} accepted (all delivered to the inbox), ${limited.length} refused 429; `
    + `automatic texts: ${attackTexts} to attack numbers (${JSON.stringify(byCountry)}), breaker tripped ${metrics.auto_text_breaker_tripped}× (+44), `
    + `skipped untrusted ${metrics['auto_text_skipped:untrusted'] ?? 0}, country ${metrics['auto_text_skipped:country_not_allowed'] ?? 0}, `
    + `suppressed by the open breaker ${metrics.suppressed_breaker ?? 0}; alerts ${alerts.length}; the customer: 1 chat, 1 confirmation`);
  // Alerts and counters carry no full phone number.
  assert.ok(!JSON.stringify(final.alerts).match(/\+44\d{6,}/), 'no phone in the alert');
});
