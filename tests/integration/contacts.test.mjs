// Integration (F2): concurrent first messages from one phone must make exactly one Podium
// contact, although the sandbox's upsert has a real check-then-create race window (25 ms
// by default): the worker has to serialize per phone. Nothing lost either.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { auPhone, envelope, inbound, page, gatewayForFile, waitFor, workerTail } from '../support/gateway.mjs';

const gw = gatewayForFile();

test('the sandbox really has the race: two concurrent creates for one phone make two contacts', async () => {
  // Guard for the test below: without this, "one contact" would prove nothing. Talks to
  // the sandbox directly with a token of its own.
  const tokenRes = await fetch(`${gw.sandbox.url}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_id: 'sandbox-client', client_secret: 'sandbox-secret', grant_type: 'refresh_token', refresh_token: 'sandbox-refresh-token' }),
  });
  const { access_token: token } = await tokenRes.json();
  const phone = auPhone().e164;
  const create = () => fetch(`${gw.sandbox.url}/v4/contacts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'podium-version': '2021.04.01' },
    body: JSON.stringify({ name: 'Race', phoneNumber: phone, locations: ['loc_sydney'] }),
  });
  const answers = await Promise.all([create(), create()]);
  assert.deepEqual(answers.map((r) => r.status), [202, 202]);
  assert.equal((await gw.sandbox.contacts(phone)).length, 2, 'the sandbox models the duplicate-contact race');
});

test('50 concurrent first messages from ONE phone (50 sessions) → one contact, one create, all 50 delivered', async () => {
  const phone = auPhone();
  const creates0 = (await gw.sandbox.state()).contact_creates;
  const texts = Array.from({ length: 50 }, (_, i) => `tab ${i} ${randomUUID()}`);
  const answers = await Promise.all(texts.map((text) =>
    gw.send(envelope({ phone: phone.national, text, sessionId: randomUUID(), location: { page_url: page('/sydney/') } }), { timeoutMs: 120_000 })));
  const statuses = answers.map((r) => r.status);
  assert.deepEqual(statuses, Array(50).fill(202), `every message accepted: ${answers.filter((r) => r.status !== 202).map((r) => r.text).join('\n')}`);
  assert.equal(new Set(answers.map((r) => r.body.message_id)).size, 50, 'one message id each');

  const delivered = await waitFor(async () => {
    const list = inbound(await gw.sandbox.messages(phone.e164));
    return list.length >= 50 ? list : null;
  }, { timeoutMs: 90_000, what: '50 inbound messages', describe: () => workerTail(gw) });
  assert.equal(delivered.length, 50, 'no message twice');
  assert.deepEqual(delivered.map((m) => m.body).sort(), [...texts].sort(), 'every text, once');

  const contacts = await gw.sandbox.contacts(phone.e164);
  assert.equal(contacts.length, 1, `exactly one contact: ${JSON.stringify(contacts)}`);
  assert.equal((await gw.sandbox.state()).contact_creates - creates0, 1, 'contact_creates == 1');
  assert.ok(delivered.every((m) => m.contactUid === contacts[0].uid), 'all filed under that contact');
});

test('50 different phones at once → 50 contacts, one each', async () => {
  const phones = Array.from({ length: 50 }, () => auPhone());
  const creates0 = (await gw.sandbox.state()).contact_creates;
  const answers = await Promise.all(phones.map((p, i) =>
    gw.send(envelope({ phone: p.national, text: `hello from phone ${i}`, location: { page_url: page('/burleigh/') } }), { timeoutMs: 120_000 })));
  assert.deepEqual(answers.map((r) => r.status), Array(50).fill(202), answers.filter((r) => r.status !== 202).map((r) => r.text).join('\n'));

  const wanted = new Set(phones.map((p) => p.e164));
  await waitFor(async () => {
    const { messages } = await gw.sandbox.state();
    const seen = new Set(inbound(messages).map((m) => m.channel.identifier).filter((id) => wanted.has(id)));
    return seen.size === 50;
  }, { timeoutMs: 90_000, what: 'a chat from each of the 50 phones', describe: () => workerTail(gw) });

  const { contacts, contact_creates: creates, messages } = await gw.sandbox.state();
  for (const p of phones) {
    const mine = contacts.filter((c) => c.phoneNumbers.includes(p.e164));
    assert.equal(mine.length, 1, `one contact for ${p.e164}: ${JSON.stringify(mine)}`);
    assert.deepEqual(mine[0].locations, ['loc_burleigh']);
    assert.equal(inbound(messages).filter((m) => m.channel.identifier === p.e164).length, 1, `one chat for ${p.e164}`);
  }
  assert.equal(creates - creates0, 50);
});

test('one phone typed three ways, chatting with two stores at once → still one contact, at both stores', async () => {
  const phone = auPhone();
  const digits = phone.e164.slice(3); // 4xxxxxxxx
  const ways = [phone.national, `+61 ${digits.slice(0, 3)} ${digits.slice(3, 6)} ${digits.slice(6)}`, `0${digits.slice(0, 3)}-${digits.slice(3, 6)}-${digits.slice(6)}`];
  const creates0 = (await gw.sandbox.state()).contact_creates;
  const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => gw.send(envelope({
    phone: ways[i % 3],
    text: `multi-store ${i}`,
    location: { page_url: page(i % 2 ? '/burleigh/' : '/sydney/') },
  }))));
  assert.deepEqual(answers.map((r) => r.status), Array(20).fill(202), answers.map((r) => r.text).join('\n'));
  const delivered = await waitFor(async () => {
    const list = inbound(await gw.sandbox.messages(phone.e164));
    return list.length >= 20 ? list : null;
  }, { timeoutMs: 60_000, what: '20 inbound messages', describe: () => workerTail(gw) });
  assert.equal(delivered.length, 20);
  assert.equal(delivered.filter((m) => m.locationUid === 'loc_burleigh').length, 10);
  const contacts = await gw.sandbox.contacts(phone.e164);
  assert.equal(contacts.length, 1, JSON.stringify(contacts));
  assert.deepEqual([...contacts[0].locations].sort(), ['loc_burleigh', 'loc_sydney']);
  assert.equal((await gw.sandbox.state()).contact_creates - creates0, 1);
});
