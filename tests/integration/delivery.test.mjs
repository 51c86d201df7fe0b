// Integration: webchat messages through the real worker (`wrangler dev`, workerd, SQLite
// Durable Objects) to the local Podium sandbox. Happy paths for both demo stores (F1),
// every routing rule with the fallback list and re-routing (F5), the `/chat`
// compatibility endpoint (F16) and the operator counters (F19).
// Run: cargo build -q -p podium-sandbox && node --test tests/integration/
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  PODIUM_VERSION, assertErrorShape, auPhone, envelope, inbound, outbound, page, gatewayForFile,
  waitFor, waitForEmptyOutbox, waitForInbound, fallbacksFor, workerTail,
} from '../support/gateway.mjs';

const gw = gatewayForFile();

// Distinct valid US numbers: (415) 555-2xxx.
let usCounter = 0;
function usPhone() {
  usCounter += 1;
  const last = String(2000 + usCounter);
  return { national: `(415) 555-${last}`, e164: `+1415555${last}` };
}

/** Send and expect 202 routed to `uid` by `method`. */
async function sendRouted(env, uid, method) {
  const res = await gw.send(env);
  assert.equal(res.status, 202, `${res.text}${workerTail(gw)}`);
  assert.equal(res.body.location.uid, uid, res.text);
  if (method) assert.equal(res.body.location.method, method, res.text);
  return res;
}

describe('happy paths for both demo stores (F1)', () => {
  test('an AU national number on a /sydney/ page → one contact +61…, the chat at loc_sydney with its page URL', async () => {
    const phone = auPhone();
    const text = `Do you have the blue one in a 10? ${randomUUID()}`;
    const res = await sendRouted(
      envelope({ phone: phone.national, text, location: { page_url: page('/sydney/jackets/blue') } }),
      'loc_sydney', 'page_url',
    );
    assert.equal(res.body.accepted, true);
    assert.match(res.body.message_id, /\S/);
    assert.ok(!res.body.phone.includes(phone.e164.slice(1)), `the answer masks the phone: ${res.body.phone}`);
    assert.equal(res.body.session.conversation, 1);
    assert.equal(res.body.opt_out, null);

    const [msg] = await waitForInbound(gw, phone.e164);
    assert.equal(msg.locationUid, 'loc_sydney');
    assert.equal(msg.body, text);
    assert.equal(msg.webchatUrl, page('/sydney/jackets/blue'));
    assert.deepEqual(msg.channel, { type: 'phone', identifier: phone.e164 });
    assert.equal(msg.contactName, 'Test Customer');

    const contacts = await gw.sandbox.contacts(phone.e164);
    assert.equal(contacts.length, 1, JSON.stringify(contacts));
    assert.deepEqual(contacts[0].phoneNumbers, [phone.e164]);
    assert.ok(contacts[0].locations.includes('loc_sydney'), JSON.stringify(contacts[0]));
    assert.equal(msg.contactUid, contacts[0].uid, 'the message is filed under that contact');
    // Exactly one chat; the confirmation text goes out too.
    await waitForEmptyOutbox(gw, phone.e164);
    const all = await gw.sandbox.messages(phone.e164);
    assert.equal(inbound(all).length, 1, JSON.stringify(all));
    assert.equal(outbound(all).length, 1, JSON.stringify(all));
  });

  test('a US number typed (415) 555-1234 on /san-francisco/ → +14155551234 at loc_sanfrancisco', async () => {
    const res = await sendRouted(
      envelope({ phone: '(415) 555-1234', text: 'Are you open on Sunday?', location: { page_url: page('/san-francisco/') } }),
      'loc_sanfrancisco', 'page_url',
    );
    assert.equal(res.body.location.name, 'Harbour & Bay — San Francisco');
    const [msg] = await waitForInbound(gw, '+14155551234');
    assert.equal(msg.locationUid, 'loc_sanfrancisco');
    assert.equal(msg.body, 'Are you open on Sunday?');
    const contacts = await gw.sandbox.contacts('+14155551234');
    assert.equal(contacts.length, 1, JSON.stringify(contacts));
    assert.deepEqual(contacts[0].locations, ['loc_sanfrancisco']);
  });

  test('the same national digits are read with the store’s region, never a global default', async () => {
    // 0412 345 6xx is an Australian mobile; on the US store it is not a US number.
    const res = await gw.send(envelope({ phone: '0412 345 600', location: { page_url: page('/san-francisco/') } }));
    const error = assertErrorShape(assert, res, 422, /^phone_/);
    assert.equal(error.field, 'contact.phone');
  });

  test('every request to Podium carries the pinned podium-version and a bearer token', async () => {
    // After the deliveries above (and whatever else ran before).
    await waitFor(async () => (await gw.sandbox.state()).messages.length > 0, { what: 'any delivery' });
    const { requests } = await gw.sandbox.state();
    assert.ok(requests.length >= 4, JSON.stringify(requests));
    for (const r of requests) {
      assert.equal(r.podium_version, PODIUM_VERSION, `podium-version on ${r.method} ${r.path}`);
      if (r.path.startsWith('/v4/')) assert.equal(r.authorized, true, `bearer token on ${r.method} ${r.path}`);
    }
  });
});

describe('routing (F5)', () => {
  test('an explicit, configured location_uid wins over page URL and postcode', async () => {
    const phone = auPhone();
    const res = await sendRouted(
      envelope({ phone: phone.national, text: 'explicit uid', location: { location_uid: 'loc_burleigh', page_url: page('/sydney/'), postcode: '2000' } }),
      'loc_burleigh', 'explicit_uid',
    );
    assert.match(res.body.location.rule, /loc_burleigh/);
    const [msg] = await waitForInbound(gw, phone.e164);
    assert.equal(msg.locationUid, 'loc_burleigh');
    assert.equal(msg.body, 'explicit uid');
  });

  test('an unknown location_uid is ignored: the page URL decides (and the phone is read as a US number)', async () => {
    const phone = usPhone();
    await sendRouted(
      envelope({ phone: phone.national, text: 'unknown uid, SF page', location: { location_uid: 'loc_atlantis', page_url: page('/san-francisco/') } }),
      'loc_sanfrancisco', 'page_url',
    );
    const [msg] = await waitForInbound(gw, phone.e164);
    assert.equal(msg.locationUid, 'loc_sanfrancisco');
  });

  test('an unknown location_uid with nothing else → the default, flagged with a note in the fallback list', async () => {
    const since = Date.now() - 1000;
    const phone = auPhone();
    await sendRouted(
      envelope({ phone: phone.national, text: 'unknown uid only', location: { location_uid: 'loc_atlantis' } }),
      'loc_sydney', 'default',
    );
    const [msg] = await waitForInbound(gw, phone.e164);
    assert.equal(msg.locationUid, 'loc_sydney');
    const mine = await fallbacksFor(gw, phone.e164, since);
    assert.equal(mine.length, 1, JSON.stringify(mine));
    assert.equal(mine[0].location_uid, 'loc_sydney');
    assert.ok(mine[0].notes.some((n) => n.includes('loc_atlantis')), `note about the ignored uid: ${JSON.stringify(mine[0].notes)}`);
  });

  for (const [name, location, uid, method] of [
    ['page URL path /burleigh/', { page_url: page('/burleigh/store-hours') }, 'loc_burleigh', 'page_url'],
    ['page URL path /sydney/ (no trailing path)', { page_url: page('/sydney/') }, 'loc_sydney', 'page_url'],
    ['postcode inside a range (2150 in 2000-2234)', { postcode: '2150' }, 'loc_sydney', 'postcode'],
    ['postcode at the end of a range (2234, inclusive)', { postcode: '2234' }, 'loc_sydney', 'postcode'],
    ['postcode in another store’s range (4225 in 4220-4227)', { postcode: '4225' }, 'loc_burleigh', 'postcode'],
    ['page URL beats postcode', { page_url: page('/burleigh/'), postcode: '2000' }, 'loc_burleigh', 'page_url'],
    ['a page outside every store falls through to the postcode', { page_url: page('/about/'), postcode: '4221' }, 'loc_burleigh', 'postcode'],
  ]) {
    test(`${name} → ${uid}`, async () => {
      const phone = auPhone();
      const text = `routing: ${name}`;
      await sendRouted(envelope({ phone: phone.national, text, location }), uid, method);
      const [msg] = await waitForInbound(gw, phone.e164);
      assert.equal(msg.locationUid, uid);
      assert.equal(msg.body, text);
    });
  }

  test('postcode prefix rule (94* → loc_sanfrancisco), with a US number', async () => {
    const phone = usPhone();
    await sendRouted(envelope({ phone: phone.national, text: 'postcode prefix', location: { postcode: '94103' } }), 'loc_sanfrancisco', 'postcode');
    const [msg] = await waitForInbound(gw, phone.e164);
    assert.equal(msg.locationUid, 'loc_sanfrancisco');
  });

  test('postcodes just outside every rule (2235, 4228) fall back to the default', async () => {
    for (const postcode of ['2235', '4228']) {
      const phone = auPhone();
      await sendRouted(envelope({ phone: phone.national, text: `outside ${postcode}`, location: { postcode } }), 'loc_sydney', 'default');
    }
  });

  test('default fallback → listed by GET /admin/routing/fallbacks?since=, re-routed to the right store with a note', async () => {
    const since = Date.now() - 1000;
    const phone = auPhone();
    const text = `I'm near the Gold Coast store ${randomUUID()}`;
    const url = page('/about/');
    const res = await sendRouted(envelope({ phone: phone.national, text, location: { page_url: url, postcode: '9999' } }), 'loc_sydney', 'default');
    await waitForInbound(gw, phone.e164);

    // Listed, with what an operator needs to decide.
    const [fb] = await fallbacksFor(gw, phone.e164, since);
    assert.equal(fb.location_uid, 'loc_sydney');
    assert.equal(fb.page_url, url);
    assert.equal(fb.postcode, '9999');
    assert.equal(fb.message_id, res.body.message_id);
    assert.equal(fb.rerouted_to ?? null, null);
    assert.ok(fb.at_ms >= since, JSON.stringify(fb));
    // `since` filters: nothing from the future.
    const later = await gw.admin('GET', `/admin/routing/fallbacks?since=${Date.now() + 60_000}`);
    assert.equal(later.status, 200, later.text);
    assert.equal(later.body.fallbacks.filter((f) => f.phone === phone.e164).length, 0, later.text);

    // An unknown target is refused.
    const bad = await gw.admin('POST', '/admin/routing/reroute', { json: { ids: [fb.id], location_uid: 'loc_atlantis' } });
    assertErrorShape(assert, bad, 400, 'unknown_location');

    const rerouted = await gw.admin('POST', '/admin/routing/reroute', { json: { ids: [fb.id], location_uid: 'loc_burleigh' } });
    assert.equal(rerouted.status, 200, rerouted.text);
    assert.deepEqual(rerouted.body.rerouted, [{ id: fb.id, from: 'loc_sydney', to: 'loc_burleigh' }]);

    // A second chat, at the right store, carrying the note and the original text.
    const msgs = await waitForInbound(gw, phone.e164, { count: 2 });
    assert.equal(msgs.length, 2, JSON.stringify(msgs));
    const second = msgs.find((m) => m.locationUid === 'loc_burleigh');
    assert.ok(second, JSON.stringify(msgs));
    assert.match(second.body, /^\[Re-routed from loc_sydney/);
    assert.ok(second.body.includes(text), second.body);
    // The contact now belongs to both stores.
    const [contact] = await gw.sandbox.contacts(phone.e164);
    assert.deepEqual([...contact.locations].sort(), ['loc_burleigh', 'loc_sydney']);

    // Marked re-routed, and not re-routed twice.
    const marked = await gw.admin('GET', `/admin/routing/fallbacks?since=${since}`);
    assert.equal(marked.body.fallbacks.find((f) => f.id === fb.id).rerouted_to, 'loc_burleigh', marked.text);
    const again = await gw.admin('POST', '/admin/routing/reroute', { json: { ids: [fb.id], location_uid: 'loc_sanfrancisco' } });
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(again.body.rerouted, []);
    await waitForEmptyOutbox(gw, phone.e164);
    assert.equal(inbound(await gw.sandbox.messages(phone.e164)).length, 2);
  });

  test('re-route without a target re-resolves with the current rules: nothing better → skipped, not re-sent', async () => {
    const since = Date.now() - 1000;
    const phone = auPhone();
    await sendRouted(envelope({ phone: phone.national, text: 'no rule matches', location: { page_url: page('/contact/') } }), 'loc_sydney', 'default');
    const [fb] = await fallbacksFor(gw, phone.e164, since);
    const res = await gw.admin('POST', '/admin/routing/reroute', { json: { ids: [fb.id] } });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body.rerouted, []);
    assert.deepEqual(res.body.skipped.map((s) => s.id), [fb.id]);
  });
});

describe('/chat compatibility endpoint (F16)', () => {
  test('no phone yet → asks for one and holds the prompt; the number → delivers the held prompt at loc_sydney', async () => {
    const sessionId = randomUUID();
    const first = await gw.chat({ prompt: 'hi', session_id: sessionId });
    assert.equal(first.status, 200, first.text);
    assert.equal(typeof first.body.output, 'string');
    assert.match(first.body.output, /number/i);
    assert.ok(first.body.session && typeof first.body.session.expires_at_ms === 'number', first.text);

    const second = await gw.chat({ prompt: '0412 345 678', session_id: sessionId, page_url: page('/sydney/') });
    assert.equal(second.status, 200, second.text);
    assert.match(second.body.output, /your message is with our Harbour & Bay — Sydney team/i);
    assert.ok(!second.body.output.includes('412345678'), `the answer masks the phone: ${second.body.output}`);

    const msgs = await waitForInbound(gw, '+61412345678');
    assert.equal(msgs.length, 1, JSON.stringify(msgs));
    assert.equal(msgs[0].locationUid, 'loc_sydney');
    assert.equal(msgs[0].body, 'hi');
  });

  test('a /chat customer gets the confirmation text once the number is known, like a widget customer',
    async () => {
      const phone = auPhone();
      const sessionId = randomUUID();
      const first = await gw.chat({ prompt: 'Do you stock wetsuits?', session_id: sessionId, page_url: page('/burleigh/') });
      assert.equal(first.status, 200, first.text);
      const second = await gw.chat({ prompt: phone.national, session_id: sessionId, page_url: page('/burleigh/') });
      assert.equal(second.status, 200, second.text);
      const msgs = await waitForEmptyOutbox(gw, phone.e164).then(() => gw.sandbox.messages(phone.e164));
      assert.deepEqual(inbound(msgs).map((m) => m.body), ['Do you stock wetsuits?']);
      assert.equal(outbound(msgs).length, 1, `a confirmation text: ${JSON.stringify(msgs)}; session: ${JSON.stringify(second.body.session)}`);
      // For comparison, the same first message through /v1/webchat/messages is confirmed.
      const other = auPhone();
      await sendRouted(envelope({ phone: other.national, text: 'Do you stock wetsuits?', location: { page_url: page('/burleigh/') } }), 'loc_burleigh');
      await waitForEmptyOutbox(gw, other.e164);
      assert.equal(outbound(await gw.sandbox.messages(other.e164)).length, 1);
    });

  test('a prompt with the phone given as a field is delivered at once, to the explicit store', async () => {
    const phone = auPhone();
    const res = await gw.chat({ prompt: 'Is parking free?', session_id: randomUUID(), phone: phone.national, location_uid: 'loc_burleigh' });
    assert.equal(res.status, 200, res.text);
    assert.match(res.body.output, /Burleigh/);
    const [msg] = await waitForInbound(gw, phone.e164);
    assert.equal(msg.locationUid, 'loc_burleigh');
    assert.equal(msg.body, 'Is parking free?');
  });

  test('unknown fields, a bad session id or prompt → 400 with a code; a bad phone → 422', async () => {
    const unknown = await gw.chat({ prompt: 'hi', session_id: randomUUID(), colour: 'blue' });
    assertErrorShape(assert, unknown, 400, 'invalid_field');
    assert.match(unknown.body.error.message, /colour/);
    // Any 1–128 printable characters is a session id; empty, too long or control
    // characters are not.
    for (const bad of ['', 'x'.repeat(129), 'tab\there', 42]) {
      const res = await gw.chat({ prompt: 'hi', session_id: bad });
      assert.equal(assertErrorShape(assert, res, 400, 'invalid_session_id').field, 'session_id', JSON.stringify(bad));
    }
    assert.equal(assertErrorShape(assert, await gw.chat({ prompt: 'x'.repeat(1001), session_id: randomUUID() }), 400, 'prompt_too_long').field, 'prompt');
    assert.equal(assertErrorShape(assert, await gw.chat({ prompt: 7, session_id: randomUUID() }), 400, 'invalid_prompt').field, 'prompt');
    const badPhone = await gw.chat({ prompt: 'hi', session_id: randomUUID(), phone: 'call me maybe' });
    const error = assertErrorShape(assert, badPhone, 422, /^phone_/);
    assert.equal(error.field, 'phone');
    assertErrorShape(assert, await gw.chat({ session_id: randomUUID() }), 400, 'invalid_field');
  });
});

describe('operator counters (F19)', () => {
  test('GET /admin/metrics counts forwarded chats, texts and fallbacks', async () => {
    const start = (await gw.admin('GET', '/admin/metrics')).body.counters ?? {};
    const phone = auPhone();
    await sendRouted(envelope({ phone: phone.national, text: 'count me', location: { page_url: page('/nowhere/') } }), 'loc_sydney', 'default');
    await waitForEmptyOutbox(gw, phone.e164);
    // Counters are bumped off the response path: poll.
    const counters = await waitFor(async () => {
      const res = await gw.admin('GET', '/admin/metrics');
      const c = res.body.counters ?? {};
      return (c.forwarded ?? 0) >= (start.forwarded ?? 0) + 1 && (c.texted ?? 0) >= (start.texted ?? 0) + 1 ? c : null;
    }, { what: 'forwarded and texted counters to move' });
    assert.ok(counters.routed_by_fallback >= (start.routed_by_fallback ?? 0) + 1, JSON.stringify(counters));
    const res = await gw.admin('GET', '/admin/metrics');
    assert.equal(res.body.podium_token.has_token, true, res.text);
  });

  test('GET /admin/metrics also counts received messages and rejections by reason (MISSION F19)',
    async () => {
      const start = (await gw.admin('GET', '/admin/metrics')).body.counters ?? {};
      const phone = auPhone();
      await sendRouted(envelope({ phone: phone.national, text: 'counted', location: { page_url: page('/sydney/') } }), 'loc_sydney');
      const refused = await gw.send(envelope({ phone: 'call me', location: { page_url: page('/sydney/') } }));
      assert.equal(refused.status, 422);
      await waitForEmptyOutbox(gw, phone.e164);
      // Counters are bumped off the response path: poll.
      const key = (counters, re) => Object.keys(counters).find((k) => re.test(k));
      const counters = await waitFor(async () => {
        const c = (await gw.admin('GET', '/admin/metrics')).body.counters ?? {};
        const received = key(c, /^received$/);
        const moved = received && c[received] >= (start[received] ?? 0) + 1;
        return moved && key(c, /rejected.*phone_not_a_number|phone_not_a_number.*rejected/) ? c : null;
      }, { what: 'received and rejected:phone_not_a_number counters' });
      assert.ok(key(counters, /^received$/), JSON.stringify(counters));
    });
});

describe('structured logs (F17)', () => {
  test('the worker’s logs never contain a full phone number or a message body', async () => {
    const phone = auPhone();
    const text = `secret text ${randomUUID()}`;
    await sendRouted(envelope({ phone: phone.national, text, location: { page_url: page('/sydney/') } }), 'loc_sydney');
    await gw.send(envelope({ phone: 'call me', text: `refused ${text}` })); // a 422 is logged too
    await gw.adminContact(phone.e164);
    await waitForEmptyOutbox(gw, phone.e164);
    const log = gw.worker.log();
    const e164Digits = phone.e164.slice(1);
    const nationalDigits = phone.national.replace(/\D/g, '');
    // The worker's own lines (one JSON object per request / delivery attempt).
    const own = log.split('\n').filter((l) => l.trimStart().startsWith('{'));
    assert.ok(own.some((l) => l.includes('"event":"delivery"')), 'delivery lines are logged');
    for (const line of own) {
      assert.ok(!line.replace(/\D/g, '').includes(e164Digits), `phone in: ${line}`);
      assert.ok(!line.includes(nationalDigits) && !line.includes(phone.national), `phone in: ${line}`);
      assert.ok(!line.includes(text), `body in: ${line}`);
    }
    // And nowhere else in what wrangler dev printed, except its own request line for
    // the admin URL (which carries the phone in its path by design of the route).
    for (const line of log.split('\n').filter((l) => !/\[wrangler:info\] GET \/admin\/contacts\//.test(l))) {
      assert.ok(!line.includes(text), `body in: ${line}`);
      assert.ok(!line.includes(e164Digits), `phone in: ${line}`);
    }
  });
});
