#!/usr/bin/env bash
#! Installs whatever is missing, builds, and runs the product locally: the worker in
#! workerd (`wrangler dev`) serving the snippet and the demo pages. PORT picks the port
#! (default 8787); state persists in .wrangler/state.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT="${PORT:-8787}"
bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/build-widget.sh"

say "starting the worker in workerd on 127.0.0.1:$PORT (first start compiles it)"
wrangler dev --ip 127.0.0.1 --port "$PORT" --persist-to "$ROOT/.wrangler/state" &
wrangler_pid=$!
trap 'kill "$wrangler_pid" 2>/dev/null; wait "$wrangler_pid" 2>/dev/null' EXIT INT TERM

for _ in $(seq 1 300); do
  if curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then break; fi
  kill -0 "$wrangler_pid" 2>/dev/null || die "wrangler dev exited; see its output above"
  sleep 1
done
curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null || die "the worker did not come up"

cat <<MSG

  Podium gateway is running.
    demo page       http://127.0.0.1:$PORT/
    Sydney store    http://127.0.0.1:$PORT/sydney/
    San Francisco   http://127.0.0.1:$PORT/san-francisco/
    health          http://127.0.0.1:$PORT/health
  Ctrl-C stops it.

MSG
wait "$wrangler_pid"
