#!/usr/bin/env bash
#! Installs whatever is missing, builds, and runs the whole product locally on embedded
#! defaults: the local Podium sandbox, and the worker in workerd (`wrangler dev`) pointed
#! at it, serving the snippet and the demo pages. PORT (default 8787) and SANDBOX_PORT
#! (default 8788) pick the ports; worker state persists in .wrangler/state.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT="${PORT:-8787}"
SANDBOX_PORT="${SANDBOX_PORT:-8788}"
bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/build-widget.sh"
say "building the Podium sandbox"
cargo build -q -p podium-sandbox
[ -f "$ROOT/.dev.vars" ] || cp "$ROOT/.dev.vars.example" "$ROOT/.dev.vars"
# An older .dev.vars gains the entries added to the example since (never overwritten).
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  grep -q "^${line%%=*}=" "$ROOT/.dev.vars" || echo "$line" >>"$ROOT/.dev.vars"
done <"$ROOT/.dev.vars.example"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT INT TERM

"$ROOT/target/debug/podium-sandbox" --port "$SANDBOX_PORT" &
pids+=($!)

say "starting the worker in workerd on 127.0.0.1:$PORT (first start compiles it)"
wrangler dev --ip 127.0.0.1 --port "$PORT" --persist-to "$ROOT/.wrangler/state" \
  --var "PODIUM_API_BASE:http://127.0.0.1:$SANDBOX_PORT" \
  --var "PODIUM_TOKEN_URL:http://127.0.0.1:$SANDBOX_PORT/oauth/token" \
  --var "WEBHOOK_ALERT_URL:http://127.0.0.1:$SANDBOX_PORT/_sandbox/alerts" \
  --var "WEBHOOK_THANK_YOU_URL:http://127.0.0.1:$SANDBOX_PORT/_sandbox/hooks/thank-you" \
  --var "SHOPIFY_API_BASE:http://127.0.0.1:$SANDBOX_PORT" \
  --var "TURNSTILE_SITEVERIFY_URL:http://127.0.0.1:$SANDBOX_PORT/turnstile/v0/siteverify" &
pids+=($!)

for _ in $(seq 1 300); do
  if curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then break; fi
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || die "a process exited; see its output above"; done
  sleep 1
done
curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null || die "the worker did not come up"

cat <<MSG

  Podium gateway is running (local Podium sandbox, no credentials needed).
    demo page        http://127.0.0.1:$PORT/
    Sydney store     http://127.0.0.1:$PORT/sydney/
    San Francisco    http://127.0.0.1:$PORT/san-francisco/
    worker health    http://127.0.0.1:$PORT/health
    Podium sandbox   http://127.0.0.1:$SANDBOX_PORT/_sandbox/state   (what "Podium" received)
    admin API        curl -H 'authorization: Bearer dev-admin-token' http://127.0.0.1:$PORT/admin/metrics
  Ctrl-C stops both.

MSG
wait
