#!/usr/bin/env bash
#! Benchmark: our widget (Rust → wasm) vs libphonenumber-js/max — size, cold start and warm
#! speed in Node and headless Chromium, and agreement on one mixed-region corpus.
#! Prints a Markdown table; writes bench/results/latest.json. Builds the widget first if
#! www/pkg is missing. Knobs: BENCH_COLD_RUNS, BENCH_PASSES, BENCH_WARMUP_PASSES,
#! BENCH_WARM_ROUNDS, CHROMIUM_BIN (see bench/run.mjs).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ! -f "$ROOT/www/pkg/widget_bg.wasm" || ! -f "$ROOT/www/pkg/widget.js" ]]; then
  say "www/pkg is missing: building the widget"
  bash "$ROOT/scripts/build-widget.sh"
fi
[[ -x "$CHROMIUM_BIN" ]] || die "Chromium not found at $CHROMIUM_BIN (set CHROMIUM_BIN)"
[[ -d "$ROOT/node_modules/playwright-core" && -d "$ROOT/node_modules/libphonenumber-js" ]] \
  || die "node_modules is missing: run npm ci"

say "bench: widget vs libphonenumber-js/max"
exec node "$ROOT/bench/run.mjs" "$@"
