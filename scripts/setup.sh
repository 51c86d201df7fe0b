#!/usr/bin/env bash
#! Installs whatever is missing to build, run and test the gateway. Idempotent: a second
#! run only checks versions and takes seconds.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root to run: $*"; fi
}

# --- Rust toolchain pieces -------------------------------------------------------------
command -v cargo >/dev/null || die "cargo not found: install Rust with rustup first"
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi
for component in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$component"; then
    say "adding rustup component $component"
    rustup component add "$component"
  fi
done

# cargo_tool BINARY VERSION CRATE: install CRATE@VERSION unless BINARY reports VERSION.
cargo_tool() {
  local bin="$1" version="$2" crate="$3"
  if "$bin" --version 2>/dev/null | grep -Eq "(^| )$version\$"; then return 0; fi
  say "installing $crate $version (a few minutes, once)"
  cargo install --locked "$crate" --version "$version" ||
    { say "retrying $crate without --locked"; cargo install "$crate" --version "$version"; }
}
cargo_tool wasm-bindgen "$WASM_BINDGEN_VERSION" wasm-bindgen-cli
cargo_tool wasm-pack "$WASM_PACK_VERSION" wasm-pack
cargo_tool worker-build "$WORKER_BUILD_VERSION" worker-build

# --- Node packages (wrangler/workerd, wasm-opt, esbuild, playwright-core, benchmarks) ---
stamp="node_modules/.setup-stamp"
lock_hash="$(sha256sum package.json package-lock.json 2>/dev/null | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  say "installing npm packages"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
  echo "$lock_hash" > "$stamp"
fi

# --- Debian's Chromium and ChromeDriver for browser tests -------------------------------
if [ ! -x "$CHROMIUM_BIN" ] || [ ! -x "$CHROMEDRIVER_BIN" ]; then
  say "installing Chromium and ChromeDriver from Debian"
  need_root apt-get update -qq
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi

say "setup complete"
