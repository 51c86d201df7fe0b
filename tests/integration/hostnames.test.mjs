// Integration (F5): routing by page hostname, for merchants whose stores live on their
// own (sub)domains. A worker with hostname rules (the other routing rules are covered in
// delivery.test.mjs): a specific host beats "any host", then the longest path prefix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { auPhone, envelope, gatewayForFile, testConfig, waitForInbound, workerTail } from '../support/gateway.mjs';

const gw = gatewayForFile({
  config: testConfig({
    routing: {
      locations: [
        { uid: 'loc_sydney', name: 'Harbour & Bay — Sydney', region: 'AU', path_prefixes: ['/sydney/'], postcodes: ['2000-2234'] },
        { uid: 'loc_burleigh', name: 'Harbour & Bay — Burleigh Heads', region: 'AU', hostnames: ['burleigh.shop.example', '*.goldcoast.example'] },
        { uid: 'loc_sanfrancisco', name: 'Harbour & Bay — San Francisco', region: 'US', hostnames: ['sf.shop.example'], path_prefixes: ['/store/'] },
      ],
      default_location_uid: 'loc_sydney',
    },
  }),
});

for (const [url, uid, method] of [
  ['https://burleigh.shop.example/', 'loc_burleigh', 'page_url'],
  ['https://burleigh.shop.example/boards/longboards?colour=blue#top', 'loc_burleigh', 'page_url'],
  ['https://BURLEIGH.Shop.Example:8443/x', 'loc_burleigh', 'page_url'],
  ['https://www.goldcoast.example/', 'loc_burleigh', 'page_url'],
  ['https://goldcoast.example/', 'loc_sydney', 'default'], // "*." needs a subdomain
  ['https://burleigh.shop.example/sydney/', 'loc_burleigh', 'page_url'], // specific host beats any-host path
  ['https://shop.example/sydney/', 'loc_sydney', 'page_url'],
  ['https://sf.shop.example/other/', 'loc_sydney', 'default'], // host matches, path does not
]) {
  test(`${url} → ${uid} (${method})`, async () => {
    const phone = auPhone();
    const res = await gw.send(envelope({ phone: phone.national, text: `from ${url}`, location: { page_url: url } }));
    assert.equal(res.status, 202, `${res.text}${workerTail(gw)}`);
    assert.equal(res.body.location.uid, uid, res.text);
    assert.equal(res.body.location.method, method, res.text);
    const [msg] = await waitForInbound(gw, phone.e164);
    assert.equal(msg.locationUid, uid);
    assert.equal(msg.webchatUrl, url);
  });
}

test('https://sf.shop.example/store/… → loc_sanfrancisco, and the phone is read as a US number', async () => {
  const res = await gw.send(envelope({ phone: '(415) 555-0199', text: 'hostname + path', location: { page_url: 'https://sf.shop.example/store/sale' } }));
  assert.equal(res.status, 202, res.text);
  assert.equal(res.body.location.uid, 'loc_sanfrancisco');
  assert.match(res.body.location.rule, /sf\.shop\.example/);
  const [msg] = await waitForInbound(gw, '+14155550199');
  assert.equal(msg.locationUid, 'loc_sanfrancisco');
});
