#!/usr/bin/env node
// gatewayctl: the operator's command line over the gateway's admin API (F19). Every
// command prints JSON on stdout; errors print JSON on stderr and exit non-zero.
//
//   GATEWAY_URL=http://127.0.0.1:8787 ADMIN_TOKEN=dev-admin-token node scripts/gatewayctl.mjs <command> …
//
// Commands:
//   phone <phone>                      a phone across flows: opt-out per channel, Podium's
//                                      view now and any drift, cooldown, scheduled requests,
//                                      last invite, chat outbox
//   reviews [state]                    requests by state: scheduled (default), skipped, sent,
//                                      delivered, failed, cancelled, unknown
//   cancel <phone> <request-id>        cancel a scheduled review request
//   webhooks [limit]                   the newest stored webhook deliveries (keys, states)
//   replay-webhook <key> [--force]     run a stored delivery through processing again
//                                      (dedup applies unless --force)
//   dead-letters                       list dead letters
//   replay <dead-letter-id>            replay a dead letter
//   fallbacks [since-ms]               chats routed to the default location
//   metrics                            counters (webchat, webhooks by scheme, reviews)

const USAGE = `usage: gatewayctl <phone|reviews|cancel|webhooks|replay-webhook|dead-letters|replay|fallbacks|metrics> …
  env: GATEWAY_URL (default http://127.0.0.1:8787), ADMIN_TOKEN (default dev-admin-token)`;

const base = (process.env.GATEWAY_URL ?? 'http://127.0.0.1:8787').replace(/\/$/, '');
const token = process.env.ADMIN_TOKEN ?? 'dev-admin-token';

function fail(error, code = 2) {
  process.stderr.write(`${JSON.stringify({ error }, null, 2)}\n`);
  process.exit(code);
}

async function call(method, path, body) {
  let res;
  try {
    res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(30_000),
    });
  } catch (e) {
    fail({ code: 'unreachable', message: `${base}: ${e.message}` });
  }
  const text = await res.text();
  let parsed;
  try { parsed = JSON.parse(text); } catch { parsed = { raw: text }; }
  if (!res.ok) fail({ status: res.status, ...(parsed.error ?? parsed) }, 1);
  return parsed;
}

const [command, ...args] = process.argv.slice(2);
const need = (i, what) => args[i] ?? fail({ code: 'usage', message: `missing ${what}\n${USAGE}` });
const phonePath = (p) => encodeURIComponent(p);

const commands = {
  phone: () => call('GET', `/admin/contacts/${phonePath(need(0, 'phone'))}?live=true`),
  reviews: () => call('GET', `/admin/reviews?state=${encodeURIComponent(args[0] ?? 'scheduled')}`),
  cancel: () => call('POST', `/admin/reviews/${phonePath(need(0, 'phone'))}/${encodeURIComponent(need(1, 'request id'))}/cancel`),
  webhooks: () => call('GET', `/admin/webhooks?limit=${encodeURIComponent(args[0] ?? '20')}`),
  'replay-webhook': () => call('POST', '/admin/webhooks/replay', { key: need(0, 'key'), force: args.includes('--force') }),
  'dead-letters': () => call('GET', '/admin/dead-letters'),
  replay: () => call('POST', `/admin/dead-letters/${encodeURIComponent(need(0, 'dead letter id'))}/replay`),
  fallbacks: () => call('GET', `/admin/routing/fallbacks${args[0] ? `?since=${encodeURIComponent(args[0])}` : ''}`),
  metrics: () => call('GET', '/admin/metrics'),
};

if (!command || command === 'help' || command === '--help') {
  process.stdout.write(`${USAGE}\n`);
  process.exit(command ? 0 : 2);
}
const run = commands[command] ?? (() => fail({ code: 'usage', message: `unknown command ${command}\n${USAGE}` }));
process.stdout.write(`${JSON.stringify(await run(), null, 2)}\n`);
