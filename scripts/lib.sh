# shellcheck shell=bash
#! Shared settings for the scripts: pinned tool versions, PATH, and small helpers.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
cd "$ROOT"

# Pinned tools. wasm-bindgen must equal the `=` pin in Cargo.toml.
WASM_BINDGEN_VERSION="0.2.129"
WASM_PACK_VERSION="0.15.1"
WORKER_BUILD_VERSION="0.8.7"

export PATH="$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"
export WRANGLER_SEND_METRICS=false
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# worker-build downloads these unless told where they are (nothing but the registries
# is reachable here).
export WASM_BINDGEN_BIN="$HOME/.cargo/bin/wasm-bindgen"
export ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"
export CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
export CHROMEDRIVER_BIN="${CHROMEDRIVER_BIN:-/usr/bin/chromedriver}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
