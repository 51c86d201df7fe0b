#!/usr/bin/env bash
#! Builds the browser module into www/pkg: cargo (cdylib, LTO) → wasm-bindgen → wasm-opt -Oz.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

out="$ROOT/www/pkg"
wasm="$ROOT/target/wasm32-unknown-unknown/release/widget_wasm.wasm"
say "building widget-wasm"
cargo build -p widget-wasm --target wasm32-unknown-unknown --release
mkdir -p "$out"
# Cargo leaves a fresh artifact untouched, so an up-to-date pkg means nothing changed.
if [ "$out/widget_bg.wasm" -nt "$wasm" ] && [ "$out/widget.js" -nt "$wasm" ]; then
  say "widget: www/pkg is up to date"
  exit 0
fi
wasm-bindgen --target web --out-dir "$out" --out-name widget "$wasm"
node "$ROOT/node_modules/binaryen/bin/wasm-opt" -Oz "$out/widget_bg.wasm" -o "$out/widget_bg.wasm"
raw=$(stat -c %s "$out/widget_bg.wasm")
gz=$(gzip -9c "$out/widget_bg.wasm" | wc -c)
say "widget: www/pkg/widget_bg.wasm $raw bytes raw, $gz gzip"
