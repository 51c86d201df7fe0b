// Signing webhook deliveries the way each provider does (node:crypto, independent of the
// Rust implementation under test), and the development/test secrets.
import { createHmac, randomUUID } from 'node:crypto';

/** Secrets the tests configure (passed to `wrangler dev` as vars). */
export const SECRETS = {
  podium: 'test-podium-secret',
  shopify: 'test-shopify-secret',
  stripe: 'whsec_test_stripe_secret',
  chatwoot: 'test-chatwoot-secret',
  // Standard Webhooks source "crm": whsec_ + base64(key)
  standardCrm: `whsec_${Buffer.from('test-standard-crm-key').toString('base64')}`,
};

/** The vars that configure those secrets (rotation: the old one is still accepted). */
export function secretVars({ podium = [SECRETS.podium, 'old-podium-secret'] } = {}) {
  return {
    WEBHOOK_SECRETS_PODIUM: podium.join(','),
    WEBHOOK_SECRETS_SHOPIFY: SECRETS.shopify,
    WEBHOOK_SECRETS_STRIPE: SECRETS.stripe,
    WEBHOOK_SECRETS_CHATWOOT: SECRETS.chatwoot,
    WEBHOOK_SECRETS_STANDARD_CRM: `${SECRETS.standardCrm} whsec_${Buffer.from('rotated-crm-key').toString('base64')}`,
  };
}

const hmac = (key, text) => createHmac('sha256', key).update(text);

/** A Podium delivery: `{data, metadata}` body, ms timestamp, hex signature. */
export function podium(eventType, data, { secret = SECRETS.podium, timestampMs = Date.now(), encoding = 'hex' } = {}) {
  const body = JSON.stringify({ data, metadata: { event_type: eventType, version: '2021.04.01' } });
  const signature = hmac(secret, `${timestampMs}.${body}`).digest(encoding);
  return { body, headers: { 'content-type': 'application/json', 'podium-timestamp': String(timestampMs), 'podium-signature': signature } };
}

/** A Shopify delivery (no signed timestamp; `X-Shopify-Triggered-At` for staleness). */
export function shopify(topic, payload, { secret = SECRETS.shopify, webhookId = randomUUID(), triggeredAt = new Date(), shop = 'harbour-and-bay.myshopify.com' } = {}) {
  const body = JSON.stringify(payload);
  return {
    body,
    headers: {
      'content-type': 'application/json',
      'x-shopify-hmac-sha256': hmac(secret, body).digest('base64'),
      'x-shopify-topic': topic,
      'x-shopify-shop-domain': shop,
      'x-shopify-webhook-id': webhookId,
      'x-shopify-triggered-at': triggeredAt.toISOString(),
    },
  };
}

/** A Stripe delivery: `Stripe-Signature: t=…,v1=…`. */
export function stripe(event, { secret = SECRETS.stripe, t = Math.floor(Date.now() / 1000), extraV1 = [] } = {}) {
  const body = JSON.stringify(event);
  const v1 = hmac(secret, `${t}.${body}`).digest('hex');
  const header = [`t=${t}`, ...extraV1.map((s) => `v1=${s}`), `v1=${v1}`, 'v0=ignored'].join(',');
  return { body, headers: { 'content-type': 'application/json', 'stripe-signature': header } };
}

/** A Chatwoot delivery: `X-Chatwoot-Signature: sha256=<hex>` over `"{ts}.{body}"`. */
export function chatwoot(payload, { secret = SECRETS.chatwoot, ts = Math.floor(Date.now() / 1000), delivery = randomUUID() } = {}) {
  const body = JSON.stringify(payload);
  return {
    body,
    headers: {
      'content-type': 'application/json',
      'x-chatwoot-signature': `sha256=${hmac(secret, `${ts}.${body}`).digest('hex')}`,
      'x-chatwoot-timestamp': String(ts),
      ...(delivery ? { 'x-chatwoot-delivery': delivery } : {}),
    },
  };
}

/** A Standard Webhooks delivery: `v1,<base64>` over `"{id}.{ts}.{body}"`. */
export function standard(payload, { secret = SECRETS.standardCrm, id = `msg_${randomUUID()}`, ts = Math.floor(Date.now() / 1000) } = {}) {
  const body = JSON.stringify(payload);
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const signature = hmac(key, `${id}.${ts}.${body}`).digest('base64');
  return {
    body,
    headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': `v1,${signature}` },
  };
}

/** POST a signed delivery to the gateway. */
export function deliver(gw, route, { body, headers }) {
  return gw.request('POST', `/webhooks/${route}`, { body, headers });
}
