// Integration (F16, issue 11): the protocols merchants' widgets already speak, against the
// real worker and sandbox — the plain chat-widget `/chat` exactly as its document shows it
// (its curl commands, with and without X-CSRFToken; its `form` answer and submitUrl round
// trip), the `_incoming_webchat_data` envelope (the field notes' example, held without a
// phone, each schema rule broken), and the field notes' other events: Stripe
// `payment_intent.succeeded` beside `checkout.session.completed`, Chatwoot
// `conversation_created`.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { ROOT } from '../support/stack.mjs';
import {
  ORIGIN, assertErrorShape, auPhone, envelope, gatewayForFile, inbound, outbound, sleep, testConfig, waitFor,
  waitForInbound, workerTail,
} from '../support/gateway.mjs';
import * as hooks from '../support/webhooks.mjs';

const PROFILE = '8e74e2f4-f88f-502d-a11f-d53ae932c3ec'; // the field notes' profile_uuid
const gw = gatewayForFile({
  vars: hooks.secretVars(),
  config: (sandbox) => {
    const base = testConfig({
      reviews: {
        refund_buffer_ms: 1000,
        cooldown_ms: 1,
        unresolved_after_ms: 600_000,
        recheck_retry_ms: 1000,
        shops: [{ domain: 'harbour-and-bay.myshopify.com', location_uid: 'loc_sydney' }],
        stripe_location_uid: 'loc_sydney',
        shopify: { api_base: sandbox.url },
      },
    });
    // The Burleigh store is the widget profile of the field notes' example.
    base.routing.locations[1].profile_uuids = [PROFILE];
    return base;
  },
});

const example = () => JSON.parse(readFileSync(path.join(ROOT, 'tests/fixtures/incoming-webchat-data.example.json'), 'utf8'));

/** The field notes' curl command, as a script sends it: no Origin. */
const curlChat = (body, headers = {}) => gw.request('POST', '/chat', {
  body: JSON.stringify(body), headers: { 'Content-Type': 'application/json', ...headers },
});

describe('/chat: the plain chat-widget protocol', () => {
  test('the document\'s curl commands, with and without X-CSRFToken → 200 {output} and the phone form', async () => {
    for (const headers of [{}, { 'X-CSRFToken': 'test-token' }]) {
      const sessionId = `test-session-${randomUUID()}`;
      const res = await curlChat({ prompt: 'Hello', session_id: sessionId }, headers);
      assert.equal(res.status, 200, res.text);
      assert.equal(typeof res.body.output, 'string', 'text-only widgets read output');
      assert.match(res.body.output, /mobile number/i);
      // The protocol's interactive form, asking for the phone.
      assert.equal(res.body.content_type, 'form');
      assert.equal(res.body.content, res.body.output);
      const form = res.body.content_attributes.form;
      assert.equal(typeof form.title, 'string');
      assert.equal(typeof form.description, 'string');
      assert.equal(form.submitUrl, `${gw.url}/chat/sessions/${encodeURIComponent(sessionId)}/contact`);
      assert.deepEqual(form.fields.map((f) => [f.id, f.type, f.required]), [['name', 'text', false], ['phone', 'tel', true]]);
      assert.ok(form.fields.every((f) => typeof f.label === 'string'));
    }
  });

  test('the form round trip: prompts held until the phone, delivered in order through submitUrl, answered in the protocol', async () => {
    const sessionId = `user-session-${randomUUID()}`;
    const phone = auPhone();
    const first = await curlChat({ prompt: 'Do you have the blue one in a 10?', session_id: sessionId });
    await curlChat({ prompt: 'Or in an 11?', session_id: sessionId });
    const submitUrl = first.body.content_attributes.form.submitUrl;
    // Not delivered yet: no phone.
    await sleep(500);
    assert.equal(inbound(await gw.sandbox.messages(phone.e164)).length, 0);
    const bad = await gw.request('POST', new URL(submitUrl).pathname, { json: { name: 'Ann', phone: 'call me' } });
    assert.equal(assertErrorShape(assert, bad, 422, 'phone_not_a_number').field, 'phone');
    const res = await gw.request('POST', new URL(submitUrl).pathname, { json: { name: 'Ann', phone: phone.national } });
    assert.equal(res.status, 200, res.text);
    assert.match(res.body.output, /your message is with our/i);
    assert.ok(!res.body.output.includes(phone.e164.slice(1)), 'the answer masks the phone');
    const msgs = await waitForInbound(gw, phone.e164, { count: 2 });
    assert.deepEqual(msgs.map((m) => m.body), ['Do you have the blue one in a 10?', 'Or in an 11?']);
    assert.equal(msgs[0].contactName, 'Ann');
    // Submitting again delivers nothing twice (the held prompts are gone once queued).
    await gw.request('POST', new URL(submitUrl).pathname, { json: { name: 'Ann', phone: phone.national } });
    await sleep(800);
    assert.equal(inbound(await gw.sandbox.messages(phone.e164)).length, 2);
    // Later prompts in the same session go straight through (the session knows the phone).
    const later = await curlChat({ prompt: 'Thanks!', session_id: sessionId });
    assert.match(later.body.output, /your message is with our/i);
    assert.equal(later.body.content_type, undefined);
    await waitForInbound(gw, phone.e164, { count: 3 });
    // A script (no Origin) never triggers a text.
    await sleep(500);
    assert.equal(outbound(await gw.sandbox.messages(phone.e164)).length, 0);
  });

  test('session ids are any 1–128 printable characters; UUIDs keep working; each its own session', async () => {
    const a = auPhone();
    const b = auPhone();
    const uuid = randomUUID();
    assert.equal((await gw.chat({ prompt: 'uuid session', session_id: uuid, phone: a.national })).status, 200);
    const res = await gw.chat({ prompt: 'string session', session_id: 'visitor 42 / shop', phone: b.national });
    assert.equal(res.status, 200, res.text);
    await waitForInbound(gw, a.e164);
    await waitForInbound(gw, b.e164);
    // The same string, another phone: still that one session (it knows its phone).
    const again = await gw.chat({ prompt: 'back again', session_id: 'visitor 42 / shop' });
    assert.match(again.body.output, new RegExp(b.e164.slice(-3)));
  });

  test('CORS: the preflight allows Content-Type and X-CSRFToken from an allowed origin', async () => {
    const res = await gw.request('OPTIONS', '/chat', {
      headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, x-csrftoken' },
    });
    assert.equal(res.status, 204, res.text);
    const allowed = res.headers.get('access-control-allow-headers').toLowerCase();
    for (const h of ['content-type', 'x-csrftoken']) assert.ok(allowed.includes(h), allowed);
    assert.match(res.headers.get('access-control-allow-methods'), /POST/);
  });
});

describe('the incoming-webchat envelope (_incoming_webchat_data)', () => {
  async function upload(name = 'voicenote.webm', type = 'audio/webm') {
    const res = await gw.request('POST', '/v1/webchat/attachments', {
      body: Buffer.from('not really opus'), headers: { 'content-type': type, 'x-filename': encodeURIComponent(name), origin: ORIGIN },
    });
    assert.equal(res.status, 201, res.text);
    assert.match(res.body.file_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'file ids are UUIDs (fileuuid)');
    return res.body.file_id;
  }

  test('the field notes\' example is accepted, held for want of a phone, and delivered once a message in the session brings one', async () => {
    const body = example();
    const data = body._incoming_webchat_data;
    data.sessionuuid = randomUUID();
    // Its attachment names a file uploaded to the gateway (fileuuid = the gateway's id).
    data.webchat_attachments[0].fileuuid = await upload(data.webchat_attachments[0].originalname);
    const res = await gw.request('POST', '/v1/webchat/messages', { json: body, headers: { origin: ORIGIN } });
    assert.equal(res.status, 202, `${res.text}${workerTail(gw)}`);
    assert.equal(res.body.status, 'awaiting_phone', res.text);
    assert.equal(res.body.location.uid, 'loc_burleigh', 'profile_uuid routed it');
    assert.equal(res.body.location.method, 'profile');
    // The same session, now with a phone (the gateway's own envelope).
    const phone = auPhone();
    const follow = await gw.send(envelope({ phone: phone.national, sessionId: data.sessionuuid, text: 'my number is above' }));
    assert.equal(follow.status, 202, follow.text);
    const msgs = await waitForInbound(gw, phone.e164, { count: 2 });
    assert.match(msgs[0].body, /The chat opened with: "Initial message from DRAFT context"/);
    assert.match(msgs[0].body, /Pass-through data: \{'some','data'\}/);
    assert.match(msgs[0].body, /hi$/);
    assert.equal(msgs[0].locationUid, 'loc_burleigh');
    // The voice note it named went with it.
    const withFile = await waitFor(async () => (await gw.sandbox.messages(phone.e164)).find((m) => m.attachment), { what: 'the voice note delivered' });
    assert.equal(withFile.locationUid, 'loc_burleigh');
    assert.equal(withFile.attachment.filename, 'voicenote_10:55_26_03_2025.webm', JSON.stringify(withFile.attachment));
  });

  test('a phone in pass_through_data (JSON) delivers at once; the session keeps it for the next envelope', async () => {
    const phone = auPhone();
    const body = example();
    const data = body._incoming_webchat_data;
    data.sessionuuid = randomUUID();
    data.webchat_attachments = [];
    data.webchat_configuration.pass_through_data = JSON.stringify({ phone: phone.national, order: 'A-17' });
    data.webchat_message.value = 'Where is my order?';
    const res = await gw.request('POST', '/v1/webchat/messages', { json: body });
    assert.equal(res.status, 202, res.text);
    assert.equal(res.body.status, 'queued', res.text);
    const [msg] = await waitForInbound(gw, phone.e164);
    assert.match(msg.body, /Where is my order\?$/);
    // The next envelope in the session, without pass-through data: the session's phone.
    delete data.webchat_configuration.pass_through_data;
    data.webchat_message.value = 'Any update?';
    const next = await gw.request('POST', '/v1/webchat/messages', { json: body });
    assert.equal(next.body.status, 'queued', next.text);
    const msgs = await waitForInbound(gw, phone.e164, { count: 2 });
    assert.equal(msgs[1].body, 'Any update?');
  });

  test('each schema rule broken once → 422 with the code and the field path', async () => {
    const d = '_incoming_webchat_data';
    const cases = [
      [(b) => { delete b[d].sessionuuid; }, 'missing_field', `${d}.sessionuuid`],
      [(b) => { b[d].sessionuuid = 'user-session-123'; }, 'invalid_session_id', `${d}.sessionuuid`],
      [(b) => { b[d].webchat_message.type = 'video'; }, 'invalid_message_type', `${d}.webchat_message.type`],
      [(b) => { b[d].webchat_attachments[0].fileuuid = 'f_1'; }, 'invalid_file_id', `${d}.webchat_attachments[0].fileuuid`],
      [(b) => { b[d].webchat_configuration.profile_uuid = 'x'; }, 'invalid_profile_uuid', `${d}.webchat_configuration.profile_uuid`],
      [(b) => { delete b[d].webchat_meta_data.ip; }, 'missing_field', `${d}.webchat_meta_data.ip`],
      [(b) => { b[d].webchat_profile.webchat_client_config.opening_message.type = 'image'; }, 'invalid_message_type', `${d}.webchat_profile.webchat_client_config.opening_message.type`],
      [(b) => { b[d].colour = 'blue'; }, 'unknown_field', `${d}.colour`],
      [(b) => { b[d].webchat_configuration.pass_through_data = 7; }, 'wrong_type', `${d}.webchat_configuration.pass_through_data`],
    ];
    for (const [edit, code, field] of cases) {
      const body = example();
      edit(body);
      const res = await gw.request('POST', '/v1/webchat/messages', { json: body });
      const error = assertErrorShape(assert, res, 422, code);
      assert.equal(error.field, field, res.text);
      assert.equal(res.body.problems.length, 1, res.text);
    }
    // Valid by the schema, but naming a file the gateway never stored.
    const res = await gw.request('POST', '/v1/webchat/messages', { json: example() });
    const error = assertErrorShape(assert, res, 422, 'attachment_not_found');
    assert.equal(error.field, '_incoming_webchat_data.webchat_attachments[0].fileuuid');
  });
});

describe('the field notes\' other events', () => {
  test('Stripe payment_intent.succeeded and checkout.session.completed of one payment → one review request', async () => {
    const phone = auPhone();
    const intent = `pi_${randomUUID().replaceAll('-', '')}`;
    const now = Math.floor(Date.now() / 1000);
    const paid = {
      id: `evt_${randomUUID().replaceAll('-', '')}`, type: 'payment_intent.succeeded', created: now,
      data: { object: { id: intent, object: 'payment_intent', created: now, metadata: { phone: phone.e164 }, shipping: { name: 'Ann', phone: phone.e164 } } },
    };
    const checkout = {
      id: `evt_${randomUUID().replaceAll('-', '')}`, type: 'checkout.session.completed', created: now,
      data: { object: { id: `cs_${randomUUID()}`, object: 'checkout.session', payment_intent: intent, created: now, customer_details: { phone: phone.e164, name: 'Ann' } } },
    };
    for (const event of [paid, checkout]) {
      const res = await hooks.deliver(gw, 'stripe', hooks.stripe(event));
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.duplicate, false);
    }
    const view = await waitFor(async () => {
      const v = (await gw.adminContact(phone.e164)).body;
      return v?.reviews?.requests?.length >= 2 ? v : null;
    }, { what: 'both triggers recorded' });
    const requests = view.reviews.requests;
    assert.deepEqual(requests.map((r) => r.candidate.order_id), [intent, intent], 'both keyed on the payment intent');
    assert.equal(requests.filter((r) => r.state !== 'skipped').length, 1, JSON.stringify(requests.map((r) => [r.state, r.reason?.code])));
    assert.equal(requests.find((r) => r.state === 'skipped').reason.code, 'duplicate_order');
    await waitFor(async () => ((await gw.sandbox.state()).invites.filter((i) => i.phoneNumber === phone.e164).length === 1), { what: 'one invite' });
    await sleep(1200);
    assert.equal((await gw.sandbox.state()).invites.filter((i) => i.phoneNumber === phone.e164).length, 1);
  });

  test('Chatwoot conversation_created is recorded, and its contact\'s phone is used when a later message_created lacks one', async () => {
    const phone = auPhone();
    const conversation = Math.floor(Math.random() * 1e9);
    const created = { event: 'conversation_created', id: conversation, account: { id: 7 }, meta: { sender: { name: 'Ann', phone_number: phone.e164 } }, additional_attributes: { referer: 'https://shop.example/sydney/' } };
    const res = await hooks.deliver(gw, 'chatwoot', hooks.chatwoot(created));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.action, 'remember_phone');
    const message = { event: 'message_created', id: 1, message_type: 'incoming', content: 'Hello from Chatwoot', account: { id: 7 }, conversation: { id: conversation }, sender: { name: 'Ann' } };
    const delivery = randomUUID();
    assert.equal((await hooks.deliver(gw, 'chatwoot', hooks.chatwoot(message, { delivery }))).status, 200);
    const [msg] = await waitForInbound(gw, phone.e164, { timeoutMs: 30_000 });
    assert.equal(msg.body, 'Hello from Chatwoot');
    // The stored delivery run again (as after a crash, or an operator's forced replay):
    // the enqueue is keyed on the delivery, so it is not queued twice.
    const key = `chatwoot:${delivery}`;
    const replay = await gw.admin('POST', '/admin/webhooks/replay', { json: { key, force: true } });
    assert.equal(replay.status, 202, replay.text);
    await waitFor(async () => (await gw.admin('GET', '/admin/webhooks?limit=50')).body.deliveries.find((d) => d.key === key && d.attempts >= 1 && d.state === 'done'), { what: 'the replay processed' });
    await sleep(1500);
    assert.equal(inbound(await gw.sandbox.messages(phone.e164)).length, 1, 'queued once');
  });
});
