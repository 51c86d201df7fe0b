#!/usr/bin/env bash
#! Installs whatever is missing, then runs every check and test: fmt, clippy (native and
#! wasm32), core and sandbox tests, the widget's wasm tests in Node and headless Chromium,
#! the integration tests (the real worker under wrangler dev against the Podium sandbox)
#! and the browser end-to-end tests (Chromium on the demo pages, same stack).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$ROOT/scripts/setup.sh"

say "cargo fmt --check"
cargo fmt --all -- --check

say "clippy (native, all targets)"
cargo clippy --workspace --all-targets -- -D warnings
say "clippy (wasm32: widget modules and worker)"
cargo clippy -p widget-wasm -p widget-message-wasm -p gateway-worker --target wasm32-unknown-unknown -- -D warnings

say "compiled phone metadata is up to date (phonegen --check)"
bash "$ROOT/scripts/phone-metadata.sh" --check

say "core (unit, property and phone differential tests), phonegen and the Podium sandbox"
cargo test -p gateway-core -p phonegen -p podium-sandbox

for crate in widget-wasm widget-wasm/message; do
  say "$crate: wasm-bindgen tests in Node"
  (cd "$ROOT/$crate" && wasm-pack test --node)
  say "$crate: wasm-bindgen tests in headless Chromium"
  (cd "$ROOT/$crate" && WASM_BINDGEN_USE_BROWSER=1 \
    wasm-pack test --headless --chrome --chromedriver "$CHROMEDRIVER_BIN")
done

say "building the widget module (www/pkg)"
bash "$ROOT/scripts/build-widget.sh"

cargo build -q -p podium-sandbox
say "integration and browser end-to-end tests (worker under wrangler dev + Podium sandbox)"
# One file at a time: each starts its own sandbox and workerd, and 2 cores are enough
# for one stack under load, not several.
node --test --test-concurrency=1 --test-reporter=spec "$ROOT/tests/integration/" "$ROOT/tests/e2e/"
