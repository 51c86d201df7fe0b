// Integration (F7–F12, F19): review requests from verified Shopify `orders/fulfilled` and
// Stripe `checkout.session.completed` deliveries, scheduled per phone in the
// `ReviewSchedule` Durable Object with second-scale windows (refund buffer 2 s, cooldown
// 8 s, unresolved after 3 s), fired by alarms against the sandbox (Shopify order re-check,
// `POST /v4/reviews/invites`, invite status webhooks, the alert hook) — and the operator's
// view of it all through `scripts/gatewayctl.mjs`.
//
// One gateway for the file; every test uses its own phone (and orders), so the tests only
// share the sandbox's lists, which they filter by phone, order or request id.
import { afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  auPhone, envelope, gatewayForFile, page, sleep, waitFor, waitForInbound, workerTail,
} from '../support/gateway.mjs';
import * as wh from '../support/webhooks.mjs';
import {
  SHOP, SLOW_SHOP, alertsFor, byOrder, checkoutCompleted, eventsOfOrder, fulfil, gatewayctl,
  invitesFor, newOrderId, orderFulfilled, orderPayload, phoneView, putOrder, requestsOf,
  reviewsConfig, reviewsList, reviewsVars, sandboxCall, targetGateway, waitForOrderState,
  waitForRequest,
} from '../support/reviews.mjs';

const REFUND_BUFFER_MS = 2000;
const COOLDOWN_MS = 8000;
const UNRESOLVED_AFTER_MS = 3000;
const SLOW_BUFFER_MS = 6000;
const RECHECK_RETRY_MS = 1000;
// testConfig's retry.max_attempts.
const MAX_ATTEMPTS = 6;

const gw = gatewayForFile({
  config: (sb) => reviewsConfig(sb, {
    refundBufferMs: REFUND_BUFFER_MS,
    cooldownMs: COOLDOWN_MS,
    unresolvedAfterMs: UNRESOLVED_AFTER_MS,
    slowBufferMs: SLOW_BUFFER_MS,
    recheckRetryMs: RECHECK_RETRY_MS,
  }),
  vars: reviewsVars(),
});

// Podium-signed webhooks from the sandbox (invite status) reach this gateway. Each suite
// asks (root-level hooks may run before the file's gateway is up).
let targeted;
const ready = () => { targeted ??= targetGateway(gw); return targeted; };

/** A Podium `message.received` from this phone. */
const textedIn = (phone, body) => wh.deliver(gw, 'podium', wh.podium('message.received', {
  uid: randomUUID(),
  body,
  createdAt: new Date().toISOString(),
  conversation: { uid: randomUUID(), channel: { type: 'phone', identifier: phone } },
  location: { uid: 'loc_sydney' },
}));

describe('the refund buffer and the fire-time checks (F8, F12)', () => {
  before(ready);

  test('a fulfilled order is scheduled, re-checked at fire time and its invite goes out after the buffer', async () => {
    const phone = auPhone();
    const t0 = Date.now();
    const { order, ack } = await orderFulfilled(gw, { phone: phone.national });
    assert.equal(ack.action, 'store', JSON.stringify(ack));
    const scheduled = await waitForOrderState(gw, phone.e164, order.id, 'scheduled');
    assert.equal(scheduled.candidate.phone, phone.e164, 'the national number became E.164 in the shop\'s region (AU)');
    assert.equal(scheduled.candidate.location_uid, 'loc_sydney');
    assert.ok(scheduled.fire_at_ms >= t0 + REFUND_BUFFER_MS - 1000, `fires after the buffer: ${JSON.stringify(scheduled)}`);
    const listed = await reviewsList(gw, 'scheduled');
    assert.ok(listed.some((r) => r.value?.id === scheduled.id || r.id === scheduled.id), `listed as scheduled: ${JSON.stringify(listed)}`);
    assert.equal((await invitesFor(gw, phone.e164)).length, 0, 'nothing sent inside the buffer');

    const sent = await waitForOrderState(gw, phone.e164, order.id, 'sent');
    const [invite] = await invitesFor(gw, phone.e164);
    assert.ok(invite, 'the sandbox has the invite');
    assert.ok(Date.parse(invite.createdAt) >= t0 + REFUND_BUFFER_MS - 50, `sent after the buffer: ${invite.createdAt}`);
    assert.equal(invite.locationUid, 'loc_sydney');
    assert.equal(invite.customerName, 'Ada Lovelace');
    assert.equal(sent.invite.uid, invite.uid);
    const { requests } = await gw.sandbox.state();
    assert.ok(requests.some((r) => r.method === 'GET' && r.path.endsWith(`/orders/${order.id}.json`) && r.status === 200),
      'the order was re-checked in the Shopify Admin API');
  });

  for (const status of ['refunded', 'partially_refunded']) {
    test(`${status} during the buffer → skipped (${status}) at fire time, no invite`, async () => {
      const phone = auPhone();
      const { order } = await orderFulfilled(gw, { phone: phone.e164 });
      await waitForOrderState(gw, phone.e164, order.id, 'scheduled');
      await putOrder(gw, order.id, { financial_status: status });
      const skipped = await waitForOrderState(gw, phone.e164, order.id, 'skipped');
      assert.equal(skipped.reason.code, status, JSON.stringify(skipped));
      assert.deepEqual(await invitesFor(gw, phone.e164), []);
      const events = await eventsOfOrder(gw, 'skipped', order.id);
      assert.equal(events.length, 1, JSON.stringify(events));
      assert.equal(events[0].data.request.reason.code, status);
      assert.equal((await phoneView(gw, phone.e164)).reviews.cooldown_until_ms, null, 'no cooldown without an invite');
    });
  }

  test('cancelled during the buffer → skipped (cancelled), no invite', async () => {
    const phone = auPhone();
    const { order } = await orderFulfilled(gw, { phone: phone.e164 });
    await waitForOrderState(gw, phone.e164, order.id, 'scheduled');
    await putOrder(gw, order.id, { cancelled_at: new Date().toISOString() });
    const skipped = await waitForOrderState(gw, phone.e164, order.id, 'skipped');
    assert.equal(skipped.reason.code, 'cancelled', JSON.stringify(skipped));
    assert.deepEqual(await invitesFor(gw, phone.e164), []);
  });

  test('already refunded when the trigger arrives → not scheduled at all (not_reviewable)', async () => {
    const phone = auPhone();
    const order = orderPayload({ phone: phone.e164, financial_status: 'refunded' });
    await fulfil(gw, order);
    const event = await waitFor(async () => (await eventsOfOrder(gw, 'skipped', order.id))[0], { what: 'the skipped trigger' });
    assert.equal(event.data.request.reason.code, 'not_reviewable', JSON.stringify(event));
    assert.deepEqual(await requestsOf(gw, phone.e164), []);
  });

  test('STOP texted in during the buffer → skipped (opted_out) at fire time, no invite (F6, F12)', async () => {
    const phone = auPhone();
    const { order } = await orderFulfilled(gw, { phone: phone.e164 });
    await waitForOrderState(gw, phone.e164, order.id, 'scheduled');
    const stop = await textedIn(phone.e164, 'STOP');
    assert.equal(stop.status, 200, stop.text);
    assert.equal(stop.body.action, 'keyword', stop.text);
    const skipped = await waitForOrderState(gw, phone.e164, order.id, 'skipped');
    assert.equal(skipped.reason.code, 'opted_out', JSON.stringify(skipped));
    assert.deepEqual(await invitesFor(gw, phone.e164), []);
    const view = await phoneView(gw, phone.e164);
    assert.equal(view.opt_out.opted_out, true, JSON.stringify(view.opt_out));

    // …and at the other end: a new order while opted out is refused when it arrives.
    const next = await orderFulfilled(gw, { phone: phone.e164 });
    const refused = await waitForOrderState(gw, phone.e164, next.order.id, 'skipped');
    assert.equal(refused.reason.code, 'opted_out');
    assert.equal(refused.created_ms, refused.updated_ms, 'skipped when scheduled, not at fire time');
  });

  test('STOP arriving while the Shopify re-check is slow → no invite (the opt-out is read last, in the phone\'s object, right before the POST)', async () => {
    const phone = auPhone();
    const order = orderPayload({ phone: phone.e164 });
    await putOrder(gw, order.id, { phone: phone.e164 });
    const orderPath = `/admin/api/2025-01/orders/${order.id}.json`;
    // Shopify answers the fire-time re-check after 5 s; the STOP comes in meanwhile.
    await gw.sandbox.fault({ method: 'GET', path: orderPath, status: 200, delay_ms: 5000 });
    await fulfil(gw, order);
    const scheduled = await waitForOrderState(gw, phone.e164, order.id, 'scheduled');
    await sleep(Math.max(0, scheduled.fire_at_ms - Date.now()) + 1500);
    const stop = await textedIn(phone.e164, 'STOP');
    const stoppedAt = Date.now();
    assert.equal(stop.status, 200, stop.text);
    const skipped = await waitForOrderState(gw, phone.e164, order.id, ['skipped', 'sent', 'failed']);
    assert.equal(skipped.state, 'skipped', JSON.stringify(skipped));
    assert.equal(skipped.reason.code, 'opted_out', JSON.stringify(skipped));
    await sleep(500);
    assert.deepEqual(await invitesFor(gw, phone.e164), [], 'no invite');
    const [get] = (await gw.sandbox.state()).requests.filter((r) => r.path === orderPath);
    // The re-check reached Shopify before the STOP and was answered 5 s later, after it.
    assert.ok(get.at_ms < stoppedAt && stoppedAt < get.at_ms + 5000, `the STOP arrived while the re-check was waiting for Shopify (${get.at_ms}, ${stoppedAt})`);
  });

  test('an order that no longer exists in Shopify → skipped (order_not_found)', async () => {
    const phone = auPhone();
    const order = orderPayload({ phone: phone.e164 });
    await fulfil(gw, order); // never created in the sandbox: the Admin API answers 404
    const skipped = await waitForOrderState(gw, phone.e164, order.id, 'skipped');
    assert.equal(skipped.reason.code, 'order_not_found', JSON.stringify(skipped));
    assert.deepEqual(await invitesFor(gw, phone.e164), []);
  });

  test('Shopify unavailable at fire time → the re-check is tried again after recheck_retry_ms, then sent', async () => {
    const phone = auPhone();
    const order = orderPayload({ phone: phone.e164 });
    await putOrder(gw, order.id, { phone: phone.e164 });
    const orderPath = `/admin/api/2025-01/orders/${order.id}.json`;
    await gw.sandbox.fault({ method: 'GET', path: orderPath, status: 503, count: 2 });
    await fulfil(gw, order);
    await waitForOrderState(gw, phone.e164, order.id, 'sent');
    const gets = (await gw.sandbox.state()).requests.filter((r) => r.path === orderPath);
    assert.deepEqual(gets.map((r) => r.status), [503, 503, 200]);
    assert.ok(gets[1].at_ms - gets[0].at_ms >= RECHECK_RETRY_MS - 100, 'waited before asking again');
    assert.equal((await invitesFor(gw, phone.e164)).length, 1);
  });
});

describe('the cooldown (F7) and failed deliveries (F9)', () => {
  before(ready);

  test('a second order inside the cooldown is skipped (cooldown); one after the window is sent', async () => {
    const phone = auPhone();
    const first = await orderFulfilled(gw, { phone: phone.e164 });
    const sent = await waitForOrderState(gw, phone.e164, first.order.id, 'sent');

    const second = await orderFulfilled(gw, { phone: phone.e164 });
    const skipped = await waitForOrderState(gw, phone.e164, second.order.id, 'skipped');
    assert.equal(skipped.reason.code, 'cooldown', JSON.stringify(skipped));
    const events = await eventsOfOrder(gw, 'skipped', second.order.id);
    assert.equal(events.length, 1, 'listed in GET /admin/reviews?state=skipped');
    assert.equal(events[0].data.request.reason.code, 'cooldown');
    assert.equal(events[0].data.phone, phone.e164);

    const view = await phoneView(gw, phone.e164);
    const until = view.reviews.cooldown_until_ms;
    assert.ok(until >= sent.invite.sent_ms + COOLDOWN_MS - 1, `cooldown from the send: ${JSON.stringify(view.reviews)}`);
    assert.ok(view.reviews.cooldown_remaining_ms > 0 && view.reviews.cooldown_remaining_ms <= COOLDOWN_MS);
    assert.equal(view.reviews.last_invite.invite.uid, sent.invite.uid);

    await sleep(Math.max(0, until - Date.now() + 300));
    assert.equal((await phoneView(gw, phone.e164)).reviews.cooldown_remaining_ms, null, 'the window is over');
    const third = await orderFulfilled(gw, { phone: phone.e164 });
    await waitForOrderState(gw, phone.e164, third.order.id, 'sent');
    const invites = await invitesFor(gw, phone.e164);
    assert.equal(invites.length, 2, JSON.stringify(invites));
  });

  test('a failed delivery rolls the cooldown back and flags the phone; the next order\'s request goes out', async () => {
    const phone = auPhone();
    const first = await orderFulfilled(gw, { phone: phone.e164 });
    const sent = await waitForOrderState(gw, phone.e164, first.order.id, 'sent');
    assert.ok((await phoneView(gw, phone.e164)).reviews.cooldown_remaining_ms > 0, 'cooldown running after the send');

    const changed = await sandboxCall(gw, 'POST', `/_sandbox/invites/${sent.invite.uid}/status`, { deliveryStatus: 'failed' });
    assert.equal(changed.changed, true);
    assert.equal(changed.webhook?.status, 200, `the gateway took the review.invite_link_updated: ${JSON.stringify(changed.webhook)}`);
    const failed = await waitForOrderState(gw, phone.e164, first.order.id, 'failed');
    assert.equal(failed.invite.status, 'failed');
    assert.equal(failed.reason.code, 'delivery_failed');

    const view = await phoneView(gw, phone.e164);
    assert.equal(view.reviews.cooldown_until_ms, null, `no cooldown: ${JSON.stringify(view.reviews)}`);
    assert.equal(view.reviews.cooldown_remaining_ms, null);
    assert.equal(view.reviews.flag?.invite_uid, sent.invite.uid, `flagged: ${JSON.stringify(view.reviews.flag)}`);
    assert.equal((await eventsOfOrder(gw, 'failed', first.order.id)).length, 1, 'listed under state=failed');

    const next = await orderFulfilled(gw, { phone: phone.e164 });
    const nextSent = await waitForOrderState(gw, phone.e164, next.order.id, 'sent');
    const invites = await invitesFor(gw, phone.e164);
    assert.deepEqual(invites.map((i) => i.uid), [sent.invite.uid, nextSent.invite.uid]);
  });

  test('a delivered invite keeps its cooldown; a late status does not undo it', async () => {
    const phone = auPhone();
    const { order } = await orderFulfilled(gw, { phone: phone.e164 });
    const sent = await waitForOrderState(gw, phone.e164, order.id, 'sent');
    await sandboxCall(gw, 'POST', `/_sandbox/invites/${sent.invite.uid}/status`, { deliveryStatus: 'delivered' });
    await waitForOrderState(gw, phone.e164, order.id, 'delivered');
    await sandboxCall(gw, 'POST', `/_sandbox/invites/${sent.invite.uid}/status`, { deliveryStatus: 'failed' });
    await sleep(1000);
    const view = await phoneView(gw, phone.e164);
    assert.equal(byOrder(view.reviews.requests, order.id)[0].state, 'delivered', 'final stays final');
    assert.ok(view.reviews.cooldown_remaining_ms > 0, JSON.stringify(view.reviews));
    assert.equal(view.reviews.flag, null);
  });

  test('an invite neither delivered nor failed after unresolved_after_ms is read and escalated once', async () => {
    const phone = auPhone();
    const { order } = await orderFulfilled(gw, { phone: phone.e164 });
    const sent = await waitForOrderState(gw, phone.e164, order.id, 'sent');
    assert.equal(sent.invite.status, 'pending');
    const alerts = await waitFor(async () => {
      const found = await alertsFor(gw, sent.id);
      return found.length ? found : null;
    }, { timeoutMs: UNRESOLVED_AFTER_MS + 15_000, what: 'the escalation', describe: () => workerTail(gw) });
    assert.match(alerts[0].body.text, new RegExp(`${sent.invite.uid}.*still pending`), alerts[0].body.text);
    assert.ok(alerts[0].at_ms >= sent.invite.sent_ms + UNRESOLVED_AFTER_MS, 'not before the deadline');
    assert.ok(!alerts[0].body.text.includes(phone.e164), 'the phone is masked in the alert');
    const { requests } = await gw.sandbox.state();
    assert.ok(requests.some((r) => r.method === 'GET' && r.path === `/v4/reviews/invites/${sent.invite.uid}`),
      'the gateway read the invite before escalating');
    const after = await waitForOrderState(gw, phone.e164, order.id, 'sent');
    assert.equal(after.invite.escalated, true);
    await sleep(UNRESOLVED_AFTER_MS + 1000);
    assert.equal((await alertsFor(gw, sent.id)).length, 1, 'escalated once');
  });
});

describe('when Podium fails the invite call (F9, F18)', () => {
  before(ready);
  // Faults are global to the sandbox: these tests run one after the other and clear them.
  afterEach(() => gw.sandbox.clearFaults());

  const invitePosts = async (phone) => {
    const uids = new Set((await invitesFor(gw, phone)).map((i) => i.uid));
    return uids.size;
  };
  const postsSince = async (seq) => (await gw.sandbox.state()).requests
    .filter((r) => r.seq > seq && r.method === 'POST' && r.path === '/v4/reviews/invites');
  const lastSeq = async () => (await gw.sandbox.state()).requests.reduce((m, r) => Math.max(m, r.seq), 0);

  test('500 twice → retried with backoff → one invite', async () => {
    const phone = auPhone();
    const seq = await lastSeq();
    await gw.sandbox.fault({ method: 'POST', path: '/v4/reviews/invites', status: 500, count: 2 });
    const { order } = await orderFulfilled(gw, { phone: phone.e164 });
    await waitForOrderState(gw, phone.e164, order.id, 'sent');
    const posts = await postsSince(seq);
    assert.deepEqual(posts.map((r) => r.status), [500, 500, 201]);
    assert.ok(posts[1].at_ms - posts[0].at_ms >= 90, 'backed off between attempts');
    assert.equal(await invitePosts(phone.e164), 1);
  });

  test('500 every time → gives up after retry.max_attempts: failed, escalated, no cooldown', async () => {
    const phone = auPhone();
    const seq = await lastSeq();
    await gw.sandbox.fault({ method: 'POST', path: '/v4/reviews/invites', status: 500, count: 1000 });
    const { order } = await orderFulfilled(gw, { phone: phone.e164 });
    const failed = await waitForOrderState(gw, phone.e164, order.id, 'failed', { timeoutMs: 30_000 });
    const posts = await postsSince(seq);
    assert.equal(posts.length, MAX_ATTEMPTS, `attempts: ${posts.map((r) => r.status)}`);
    assert.match(failed.reason.message, /500/, JSON.stringify(failed.reason));
    const alerts = await waitFor(async () => {
      const found = await alertsFor(gw, failed.id);
      return found.length ? found : null;
    }, { what: 'the escalation' });
    assert.equal(alerts.length, 1);
    await sleep(1500);
    assert.equal((await postsSince(seq)).length, MAX_ATTEMPTS, 'no attempt after giving up');
    const view = await phoneView(gw, phone.e164);
    assert.equal(view.reviews.cooldown_until_ms, null, JSON.stringify(view.reviews));
  });

  test('no answer in time (the invite may exist) → verified by reading Podium\'s invites: found, recorded as sent, never re-sent', async () => {
    const phone = auPhone();
    // Podium creates the invite, but only after the gateway stopped waiting (3 s).
    await gw.sandbox.fault({ method: 'POST', path: '/v4/reviews/invites', status: 200, delay_ms: 4500 });
    const { order } = await orderFulfilled(gw, { phone: phone.e164 });
    const verifying = await waitForOrderState(gw, phone.e164, order.id, 'verifying', { timeoutMs: 20_000 });
    assert.equal(verifying.reason.code, 'verifying', JSON.stringify(verifying));
    await waitFor(async () => (await invitesFor(gw, phone.e164)).length === 1, { what: 'the late invite at Podium' });
    // The read of Podium's invites finds it: recorded as the invite, not sent again.
    const sent = await waitForOrderState(gw, phone.e164, order.id, 'sent', { timeoutMs: 20_000 });
    const [invite] = await invitesFor(gw, phone.e164);
    assert.equal(sent.invite.uid, invite.uid, JSON.stringify(sent));

    // The customer has the invite: a next order inside the window must not send another.
    const view = await phoneView(gw, phone.e164);
    assert.ok(view.reviews.cooldown_remaining_ms > 0, `cooldown after an unknown send: ${JSON.stringify(view.reviews)}`);
    const next = await orderFulfilled(gw, { phone: phone.e164 });
    const skipped = await waitForOrderState(gw, phone.e164, next.order.id, ['skipped', 'scheduled']);
    assert.equal(skipped.reason?.code, 'cooldown', JSON.stringify(skipped));
    await sleep(REFUND_BUFFER_MS + 1000);
    assert.equal((await invitesFor(gw, phone.e164)).length, 1, 'never sent twice');
  });

  test('500 (the invite may exist) → Podium\'s invites read before any retry; none there → sent again, once', async () => {
    const phone = auPhone();
    const seq = await lastSeq();
    await gw.sandbox.fault({ method: 'POST', path: '/v4/reviews/invites', status: 500, count: 1 });
    const { order } = await orderFulfilled(gw, { phone: phone.e164 });
    await waitForOrderState(gw, phone.e164, order.id, 'sent', { timeoutMs: 20_000 });
    const requests = (await gw.sandbox.state()).requests.filter((r) => r.seq > seq && r.path.startsWith('/v4/reviews/invites'));
    const steps = requests.map((r) => `${r.method} ${r.status}`);
    assert.deepEqual(steps, ['POST 500', 'GET 200', 'POST 201'], `a read between the failed POST and the retry: ${steps}`);
    assert.equal((await invitesFor(gw, phone.e164)).length, 1);
  });
});

describe('one invite per phone under concurrency and repetition (F7, F14)', () => {
  before(ready);

  test('10 concurrent triggers for one phone → one scheduled, the rest skipped, exactly one invite', async () => {
    const phone = auPhone();
    const orders = Array.from({ length: 5 }, () => orderPayload({ phone: phone.e164 }));
    for (const o of orders) await putOrder(gw, o.id, { phone: phone.e164 });
    // 5 distinct orders, and the first order 5 more times under different webhook ids: the
    // signed body (topic + order id + updated_at) makes those 6 one event, whichever
    // copy's claim wins.
    const deliveries = [...orders, ...Array(5).fill(orders[0])];
    const acks = await Promise.all(deliveries.map((o) => fulfil(gw, o, { expectDuplicate: null })));
    assert.equal(acks.filter((a) => a.duplicate === false).length, 5, 'five distinct orders, the repeats duplicates');

    const requests = await waitFor(async () => {
      const list = await requestsOf(gw, phone.e164);
      return list.length >= 5 ? list : null;
    }, { what: '5 requests' });
    await sleep(500);
    assert.equal((await requestsOf(gw, phone.e164)).length, 5, JSON.stringify(requests.map((r) => [r.candidate.order_id, r.state])));
    const open = requests.filter((r) => r.state !== 'skipped');
    assert.equal(open.length, 1, `one passed the gate: ${JSON.stringify(requests.map((r) => [r.candidate.order_id, r.state, r.reason?.code]))}`);
    for (const r of requests.filter((x) => x.state === 'skipped')) {
      assert.ok(['already_scheduled', 'duplicate_order'].includes(r.reason.code), JSON.stringify(r.reason));
    }
    await waitForOrderState(gw, phone.e164, open[0].candidate.order_id, 'sent');
    await sleep(1500);
    assert.equal((await invitesFor(gw, phone.e164)).length, 1, 'exactly one invite');
  });

  test('the same delivery twice is processed once; the same order again after the send → duplicate_order', async () => {
    const phone = auPhone();
    const order = orderPayload({ phone: phone.e164 });
    await putOrder(gw, order.id, { phone: phone.e164 });
    const webhookId = randomUUID();
    await fulfil(gw, order, { webhookId });
    const again = await fulfil(gw, order, { webhookId, expectDuplicate: true });
    assert.equal(again.duplicate, true);
    const sent = await waitForOrderState(gw, phone.e164, order.id, 'sent');

    // The same body under a new webhook id (a replay) is the same event.
    await fulfil(gw, order, { expectDuplicate: true });
    // Shopify sends the topic again for the edited order (new updated_at, new webhook id).
    await fulfil(gw, { ...order, updated_at: new Date(Date.now() + 1000).toISOString() });
    const dup = await waitForRequest(gw, phone.e164, (r) => r.state === 'skipped', { what: 'the repeat skipped' });
    assert.equal(dup.reason.code, 'duplicate_order', JSON.stringify(dup));
    assert.ok(dup.reason.message.includes(sent.id), dup.reason.message);
    await sleep(REFUND_BUFFER_MS + 500);
    const requests = await requestsOf(gw, phone.e164);
    assert.equal(requests.length, 2, 'the duplicate delivery made no request');
    assert.equal((await invitesFor(gw, phone.e164)).length, 1, 'exactly one invite');
  });
});

describe('candidates and the platform (F11)', () => {
  before(ready);

  test('a missing phone → skipped (no_phone); a redacted one → skipped (unusable_phone); no invite', async () => {
    const missing = orderPayload({ phone: null });
    const redacted = orderPayload({ phone: '***', customer: { first_name: 'R', phone: '[REDACTED]' }, billing_address: { phone: 'xxxx' } });
    await fulfil(gw, missing);
    await fulfil(gw, redacted);
    const noPhone = await waitFor(async () => (await eventsOfOrder(gw, 'skipped', missing.id))[0], { what: 'no_phone skip' });
    assert.equal(noPhone.data.request.reason.code, 'no_phone', JSON.stringify(noPhone));
    assert.match(noPhone.data.request.reason.message, /customer\.phone/);
    const unusable = await waitFor(async () => (await eventsOfOrder(gw, 'skipped', redacted.id))[0], { what: 'unusable_phone skip' });
    assert.equal(unusable.data.request.reason.code, 'unusable_phone', JSON.stringify(unusable));
    assert.match(unusable.data.request.reason.message, /customer\.phone/, 'says which field');
    const metrics = await gw.admin('GET', '/admin/metrics');
    assert.ok(metrics.body.counters['review:skipped:no_phone'] >= 1, JSON.stringify(metrics.body.counters));
    const { invites } = await gw.sandbox.state();
    assert.ok(!invites.some((i) => [missing.id, redacted.id].some((id) => JSON.stringify(i).includes(String(id)))));
  });

  test('the phone is taken from the first usable field in order (customer.phone, then shipping)', async () => {
    const phone = auPhone();
    const { order } = await orderFulfilled(gw, { phone: '', customer: { first_name: 'Bo', phone: '***' }, shipping_address: { phone: phone.national } });
    const sent = await waitForOrderState(gw, phone.e164, order.id, 'sent');
    assert.equal(sent.candidate.phone_field, 'shipping_address.phone');
  });

  test('review_platform facebook without facebook_id → Google (site_google) and the reason says why; with it → site_fb', async () => {
    const phone = auPhone();
    const { order } = await orderFulfilled(gw, { phone: phone.e164, noteAttributes: [{ name: 'review_platform', value: 'facebook' }] });
    const sent = await waitForOrderState(gw, phone.e164, order.id, 'sent');
    assert.equal(sent.platform, 'google');
    assert.match(sent.platform_reason, /facebook needs an account the customer lacks/, sent.platform_reason);
    const [invite] = await invitesFor(gw, phone.e164);
    assert.equal(invite.reviewSiteUid, 'site_google');

    const other = auPhone();
    const fb = await orderFulfilled(gw, {
      phone: other.e164,
      noteAttributes: [{ name: 'review_platform', value: 'Facebook' }, { name: 'facebook_id', value: '1000123' }],
    });
    const fbSent = await waitForOrderState(gw, other.e164, fb.order.id, 'sent');
    assert.equal(fbSent.platform, 'facebook');
    assert.equal(fbSent.platform_reason, 'customer_preference');
    const [fbInvite] = await invitesFor(gw, other.e164);
    assert.equal(fbInvite.reviewSiteUid, 'site_fb');
  });

  test('Stripe checkout.session.completed with customer_details.phone → an invite, no order re-check', async () => {
    const phone = auPhone();
    const sessionId = `cs_test_${randomUUID().replaceAll('-', '')}`;
    const { ack } = await checkoutCompleted(gw, {
      id: sessionId,
      customer_details: { name: 'Stripe Customer', phone: phone.national, email: null },
      metadata: { location_uid: 'loc_burleigh' },
    });
    assert.equal(ack.duplicate, false);
    const sent = await waitForOrderState(gw, phone.e164, sessionId, 'sent');
    assert.equal(sent.candidate.source, 'stripe');
    assert.equal(sent.candidate.phone_field, 'customer_details.phone');
    const [invite] = await invitesFor(gw, phone.e164);
    assert.equal(invite.locationUid, 'loc_burleigh');
    assert.equal(invite.customerName, 'Stripe Customer');
    const { requests } = await gw.sandbox.state();
    const id = sessionId.replace(/[^A-Za-z0-9]/g, '');
    assert.ok(!requests.some((r) => r.path.includes(id)), 'Shopify was not asked about a Stripe checkout');
  });
});

describe('operators (F19): gatewayctl', () => {
  before(ready);

  test('phone: drift after a Podium opt-out our record missed', async () => {
    const phone = auPhone();
    const sent = await gw.send(envelope({ phone: phone.national, text: 'hello', location: { page_url: page('/sydney/') } }));
    assert.equal(sent.status, 202, sent.text);
    await waitForInbound(gw, phone.e164);

    const before = await gatewayctl(gw, 'phone', phone.e164);
    assert.equal(before.code, 0, before.stderr);
    assert.deepEqual(before.json.drift, [], JSON.stringify(before.json));
    assert.equal(before.json.podium.opted_out, false);

    // Opted out at Podium, and no contact.updated reaches the gateway.
    await sandboxCall(gw, 'POST', `/_sandbox/contacts/${encodeURIComponent(phone.e164)}/opt-out`);
    const out = await gatewayctl(gw, 'phone', phone.e164);
    assert.equal(out.code, 0, out.stderr);
    const view = out.json;
    assert.equal(view.phone, phone.e164);
    assert.equal(view.opt_out.opted_out, false, 'our record missed it');
    assert.equal(view.podium.read, true, JSON.stringify(view.podium));
    assert.equal(view.podium.opted_out, true);
    assert.ok(view.drift.length > 0, JSON.stringify(view));
    assert.ok(view.drift.some((d) => /Podium/.test(d.reason)), JSON.stringify(view.drift));
    for (const key of ['cooldown_until_ms', 'cooldown_remaining_ms', 'scheduled', 'last_invite', 'flag', 'requests']) {
      assert.ok(key in view.reviews, `reviews.${key}: ${JSON.stringify(view.reviews)}`);
    }

    // A review request for this phone is refused by Podium (opted out): the gateway takes
    // the opt-out from that answer, and the drift is gone.
    const { order } = await orderFulfilled(gw, { phone: phone.e164 });
    const failed = await waitForOrderState(gw, phone.e164, order.id, ['failed', 'skipped']);
    assert.equal(failed.state, 'failed', JSON.stringify(failed));
    assert.equal(failed.reason.code, 'podium_refused', JSON.stringify(failed));
    const healed = await gatewayctl(gw, 'phone', phone.e164);
    assert.equal(healed.json.opt_out.opted_out, true, JSON.stringify(healed.json.opt_out));
    assert.deepEqual(healed.json.drift, [], JSON.stringify(healed.json.drift));
    assert.equal(healed.json.reviews.cooldown_until_ms, null, 'a refused invite starts no cooldown');
  });

  test('reviews skipped, cancel, webhooks, replay-webhook', async () => {
    const phone = auPhone();
    // A request that waits (the slow shop's buffer), cancelled through the CLI.
    const { order, ack } = await orderFulfilled(gw, { phone: phone.e164, shop: SLOW_SHOP });
    const scheduled = await waitForOrderState(gw, phone.e164, order.id, 'scheduled');
    assert.equal(scheduled.candidate.location_uid, 'loc_burleigh');

    const listed = await gatewayctl(gw, 'reviews');
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(listed.json.state, 'scheduled');
    assert.ok(JSON.stringify(listed.json.requests).includes(scheduled.id), JSON.stringify(listed.json));

    const cancelled = await gatewayctl(gw, 'cancel', phone.e164, scheduled.id);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.equal(cancelled.json.cancelled, scheduled.id);
    const state = await waitForOrderState(gw, phone.e164, order.id, 'cancelled');
    assert.equal(state.reason.code, 'cancelled_by_operator');
    const again = await gatewayctl(gw, 'cancel', phone.e164, scheduled.id);
    assert.equal(again.code, 1, 'a cancelled request cannot be cancelled again');
    assert.equal(again.json.error.code, 'not_cancellable', again.stderr);
    assert.ok(!JSON.stringify((await gatewayctl(gw, 'reviews')).json).includes(scheduled.id), 'no longer scheduled');
    const cancelledList = await gatewayctl(gw, 'reviews', 'cancelled');
    assert.ok(JSON.stringify(cancelledList.json.events).includes(scheduled.id));

    // The stored delivery behind it.
    const hooks = await gatewayctl(gw, 'webhooks', '200');
    assert.equal(hooks.code, 0, hooks.stderr);
    // Keyed on the signed body: topic, order id and updated_at.
    const delivery = hooks.json.deliveries.find((d) => d.key.startsWith(`shopify:orders/fulfilled:${order.id}:`));
    assert.ok(ack.webhookId);
    assert.ok(delivery, `listed: ${JSON.stringify(hooks.json.deliveries.slice(0, 3))}`);
    assert.equal(delivery.scheme, 'shopify');
    assert.equal(delivery.event_type, 'orders/fulfilled');
    assert.equal(delivery.state, 'done');

    const plain = await gatewayctl(gw, 'replay-webhook', delivery.key);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.json.duplicate, true, JSON.stringify(plain.json));
    assert.equal(plain.json.replayed, false);

    const forced = await gatewayctl(gw, 'replay-webhook', delivery.key, '--force');
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(forced.json.replayed, true, JSON.stringify(forced.json));
    // Processed again: the order already has a (cancelled) request, so no second one.
    const repeat = await waitForRequest(gw, phone.e164, (r) => r.state === 'skipped', { what: 'the replayed trigger' });
    assert.equal(repeat.reason.code, 'duplicate_order', JSON.stringify(repeat));
    const skippedList = await gatewayctl(gw, 'reviews', 'skipped');
    assert.equal(skippedList.code, 0, skippedList.stderr);
    const mine = skippedList.json.events.filter((e) => e.data?.phone === phone.e164);
    assert.deepEqual(mine.map((e) => e.data.request.reason.code), ['duplicate_order']);

    const bad = await gatewayctl(gw, 'reviews', 'nonsense');
    assert.equal(bad.code, 1);
    assert.equal(bad.json.error.code, 'invalid_state');

    // The cancelled request never fires.
    await sleep(Math.max(0, scheduled.fire_at_ms - Date.now() + 1500));
    assert.deepEqual(await invitesFor(gw, phone.e164), [], 'no invite for a cancelled request');
    const { requests } = await gw.sandbox.state();
    assert.ok(!requests.some((r) => r.path.endsWith(`/orders/${order.id}.json`)), 'its order was never re-checked');
  });
});
