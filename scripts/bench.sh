#!/usr/bin/env bash
#! Benchmarks that print figures (not tests). `scripts/bench.sh [phone|worker|webhooks|all]`:
#!   phone  — our widget (Rust → wasm) vs libphonenumber-js/max: size, cold start and warm
#!            speed in Node and headless Chromium, agreement on one mixed-region corpus
#!            (bench/run.mjs; knobs BENCH_COLD_RUNS, BENCH_PASSES, BENCH_WARMUP_PASSES,
#!            BENCH_WARM_ROUNDS, CHROMIUM_BIN).
#!   worker — the worker in workerd: first messages and returning customers vs a no-op
#!            route under wrk, object calls per message, in two modes (production-like:
#!            inspector off, object storage on tmpfs, the issue-12 targets, median of 3
#!            trials; and as `wrangler dev` runs it, 1 trial), cold vs warm first
#!            request, bundle size (bench/worker.mjs; knobs BENCH_MODES, BENCH_TRIALS,
#!            BENCH_LEGACY_IMPORT, BENCH_WRK_SECONDS, BENCH_WRK_CONNECTIONS,
#!            BENCH_COLD_RUNS, BENCH_CUSTOMERS).
#!   worker-cold — the same without the wrk load: bundle size, cold vs warm request.
#!   webhooks — signed Podium deliveries vs a no-op route under wrk on one workerd, and CPU
#!            per signature verification (core, native) vs Node's crypto
#!            (bench/webhooks.mjs; knobs BENCH_WRK_SECONDS, BENCH_WRK_CONNECTIONS,
#!            BENCH_WEBHOOK_SHARDS).
#! Markdown on stdout; JSON in bench/results/.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -x "$CHROMIUM_BIN" ]] || die "Chromium not found at $CHROMIUM_BIN (set CHROMIUM_BIN)"
[[ -d "$ROOT/node_modules/playwright-core" && -d "$ROOT/node_modules/libphonenumber-js" ]] \
  || die "node_modules is missing: run npm ci"
# Incremental (it says "up to date" when nothing changed): the bench measures what the
# sources build today, never a stale or half-built www/pkg.
bash "$ROOT/scripts/build-widget.sh"

what="${1:-all}"
if [[ "$what" == phone || "$what" == all ]]; then
  say "bench: widget vs libphonenumber-js/max"
  node "$ROOT/bench/run.mjs"
fi
if [[ "$what" == worker || "$what" == webhooks || "$what" == all ]]; then
  if ! command -v wrk >/dev/null; then
    say "installing wrk from Debian"
    if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk; else sudo apt-get install -y -qq wrk; fi
  fi
  cargo build -q -p podium-sandbox
fi
if [[ "$what" == worker || "$what" == all ]]; then
  say "bench: worker in workerd (production-like, then as wrangler dev runs it)"
  node "$ROOT/bench/worker.mjs"
fi
if [[ "$what" == worker-cold ]]; then
  say "bench: worker cold start under wrangler dev"
  cargo build -q -p podium-sandbox
  BENCH_COLD_ONLY=1 node "$ROOT/bench/worker.mjs"
fi
if [[ "$what" == webhooks || "$what" == all ]]; then
  say "bench: signed webhooks under wrangler dev"
  node "$ROOT/bench/webhooks.mjs"
fi
