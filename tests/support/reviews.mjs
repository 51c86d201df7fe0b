// Helpers for the review-request tests (F7–F12, F19): Shopify orders in the sandbox and
// their `orders/fulfilled` deliveries, Stripe checkouts, the phone's review state as the
// admin API shows it, and the sandbox's invites and alerts.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import * as wh from './webhooks.mjs';
import { ADMIN_TOKEN, testConfig, waitFor, workerTail } from './gateway.mjs';
import { ROOT } from './stack.mjs';

export const SHOP = 'harbour-and-bay.myshopify.com';
/** A second shop with a longer refund buffer (a request that stays scheduled a while). */
export const SLOW_SHOP = 'harbour-and-bay-slow.myshopify.com';

/** The review settings of the tests: second-scale windows (see core/src/review/config.rs). */
export function reviewsConfig(sb, { refundBufferMs = 2000, cooldownMs = 8000, unresolvedAfterMs = 3000, slowBufferMs = 6000, recheckRetryMs = 1000, ...webhooks } = {}) {
  return testConfig({
    webhooks: { alert_url: `${sb.url}/_sandbox/alerts`, shards: 4, ...webhooks },
    reviews: {
      refund_buffer_ms: refundBufferMs,
      cooldown_ms: cooldownMs,
      unresolved_after_ms: unresolvedAfterMs,
      recheck_retry_ms: recheckRetryMs,
      shops: [
        { domain: SHOP, location_uid: 'loc_sydney' },
        { domain: SLOW_SHOP, location_uid: 'loc_burleigh', refund_buffer_ms: slowBufferMs },
      ],
      shopify: { api_base: sb.url },
      platforms: [
        { name: 'google', review_site_uid: 'site_google' },
        { name: 'facebook', requires: 'facebook_id', review_site_uid: 'site_fb' },
      ],
    },
  });
}

export const reviewsVars = () => ({ ...wh.secretVars(), SHOPIFY_ADMIN_TOKEN: 'tok' });

// Shopify order ids: numbers, unique per process.
let orderCounter = 0;
const orderBase = 5_000_000_000 + Math.floor(Math.random() * 1_000_000) * 1000;
export const newOrderId = () => orderBase + (orderCounter += 1);

/** A raw sandbox control call (throws on a non-2xx answer). */
export async function sandboxCall(gw, method, p, body) {
  const res = await fetch(gw.sandbox.url + p, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`sandbox ${method} ${p} → ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Podium-signed webhooks the sandbox emits (invite status, opt-outs) go to the gateway. */
export const targetGateway = (gw) =>
  sandboxCall(gw, 'PUT', '/_sandbox/webhooks', { url: `${gw.url}/webhooks/podium`, secret: wh.SECRETS.podium });

/** Create or merge the order as the Shopify Admin API will show it at fire time. */
export const putOrder = (gw, id, patch = {}) => sandboxCall(gw, 'PUT', `/_sandbox/shopify/orders/${id}`, patch);

/** An `orders/fulfilled` payload: the phone on `phone` unless `fields` says otherwise. */
export function orderPayload({ id = newOrderId(), phone, noteAttributes = [], fulfilledAt = new Date(), ...fields } = {}) {
  return {
    id,
    name: `#${id}`,
    phone: phone ?? null,
    email: null,
    financial_status: 'paid',
    cancelled_at: null,
    fulfillment_status: 'fulfilled',
    customer: { first_name: 'Ada', last_name: 'Lovelace', phone: null },
    shipping_address: null,
    billing_address: null,
    fulfillments: [{ id: id + 1, status: 'success', created_at: fulfilledAt.toISOString() }],
    updated_at: fulfilledAt.toISOString(),
    note_attributes: noteAttributes,
    ...fields,
  };
}

/** Deliver a signed `orders/fulfilled`; asserts the acknowledgement (and whether it is a
 * duplicate, unless `expectDuplicate` is null) and returns it. */
export async function fulfil(gw, order, { webhookId = randomUUID(), shop = SHOP, expectDuplicate = false } = {}) {
  const res = await wh.deliver(gw, 'shopify', wh.shopify('orders/fulfilled', order, { webhookId, shop }));
  assert.equal(res.status, 200, `${res.text}${workerTail(gw)}`);
  if (expectDuplicate !== null) assert.equal(res.body.duplicate, expectDuplicate, res.text);
  return { ...res.body, webhookId };
}

/** A fulfilled order: in the sandbox first (the fire-time re-check reads it), then delivered. */
export async function orderFulfilled(gw, { shop = SHOP, webhookId, ...orderFields } = {}) {
  const order = orderPayload(orderFields);
  await putOrder(gw, order.id, { financial_status: order.financial_status, phone: order.phone });
  const ack = await fulfil(gw, order, { shop, webhookId });
  return { order, ack };
}

/** Deliver a signed Stripe `checkout.session.completed`. */
export async function checkoutCompleted(gw, session, { eventId = `evt_${randomUUID().replaceAll('-', '')}` } = {}) {
  const event = {
    id: eventId,
    object: 'event',
    type: 'checkout.session.completed',
    created: Math.floor(Date.now() / 1000),
    data: { object: { object: 'checkout.session', status: 'complete', payment_status: 'paid', ...session } },
  };
  const res = await wh.deliver(gw, 'stripe', wh.stripe(event));
  assert.equal(res.status, 200, `${res.text}${workerTail(gw)}`);
  return { event, ack: res.body };
}

/** `GET /admin/contacts/{phone}` (asserted 200). */
export async function phoneView(gw, phone) {
  const res = await gw.adminContact(phone);
  assert.equal(res.status, 200, res.text);
  return res.body;
}

/** The phone's review requests, oldest first. */
export const requestsOf = async (gw, phone) => (await phoneView(gw, phone)).reviews.requests;

/** The request of this order (Shopify id or Stripe session id). */
export const byOrder = (requests, orderId) => requests.filter((r) => r.candidate.order_id === String(orderId));

/** Wait until one of the phone's requests satisfies `pred`; returns it. */
export async function waitForRequest(gw, phone, pred, { what = 'a review request', timeoutMs = 20_000 } = {}) {
  let last;
  return waitFor(async () => {
    last = await requestsOf(gw, phone);
    return last.find(pred);
  }, {
    timeoutMs,
    what: `${what} for ${phone}`,
    describe: () => `${JSON.stringify(last?.map((r) => ({ id: r.id, order: r.candidate.order_id, state: r.state, reason: r.reason?.code })))}${workerTail(gw, 20)}`,
  });
}

/** The request of `orderId` once it is in `state` (one of them when an array). */
export function waitForOrderState(gw, phone, orderId, state, opts = {}) {
  const states = [state].flat();
  return waitForRequest(gw, phone, (r) => r.candidate.order_id === String(orderId) && states.includes(r.state), {
    what: `order ${orderId} ${states.join('|')}`,
    ...opts,
  });
}

/** The sandbox's invites for this phone, oldest first. */
export async function invitesFor(gw, phone) {
  const { data } = await sandboxCall(gw, 'GET', '/_sandbox/invites');
  return data.filter((i) => i.phoneNumber === phone);
}

/** Alerts the sandbox received about this review request. */
export async function alertsFor(gw, requestId) {
  const { alerts } = await gw.sandbox.state();
  return alerts.filter((a) => a.body?.request_id === requestId);
}

/** `GET /admin/reviews?state=…` → events (or, for `scheduled`, the index rows). */
export async function reviewsList(gw, state) {
  const res = await gw.admin('GET', `/admin/reviews?state=${state}`);
  assert.equal(res.status, 200, res.text);
  return state === 'scheduled' ? res.body.requests : res.body.events;
}

/** Logged transitions of `state` whose request belongs to this order. */
export async function eventsOfOrder(gw, state, orderId) {
  const events = await reviewsList(gw, state);
  return events.filter((e) => String(e.data?.request?.candidate?.order_id ?? e.data?.order_id) === String(orderId));
}

const execFileP = promisify(execFile);

/** `node scripts/gatewayctl.mjs …args` against this gateway: `{code, json, stdout, stderr}`. */
export async function gatewayctl(gw, ...args) {
  const env = { ...process.env, GATEWAY_URL: gw.url, ADMIN_TOKEN };
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [path.join(ROOT, 'scripts/gatewayctl.mjs'), ...args], { env, timeout: 40_000 });
    return { code: 0, json: JSON.parse(stdout), stdout, stderr };
  } catch (err) {
    let json = null;
    try { json = JSON.parse(err.stderr); } catch { /* not JSON */ }
    return { code: err.code, json, stdout: err.stdout, stderr: err.stderr };
  }
}
