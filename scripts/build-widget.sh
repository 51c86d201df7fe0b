#!/usr/bin/env bash
#! Builds the browser modules into www/pkg: cargo (cdylib, LTO) → wasm-bindgen → wasm-opt -Oz.
#!   widget.js + widget_bg.wasm (+ snippets/)   phone and file checks: what every chat loads
#!   widget_message.js + widget_message_bg.wasm validateMessage: loaded when a message is sent
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

out="$ROOT/www/pkg"
target="$ROOT/target/wasm32-unknown-unknown/release"
say "building widget-wasm and widget-message-wasm"
cargo build -p widget-wasm -p widget-message-wasm --target wasm32-unknown-unknown --release
mkdir -p "$out"

# bundle CRATE_ARTIFACT OUT_NAME: wasm-bindgen then wasm-opt, unless already up to date
# (cargo leaves a fresh artifact untouched, so an up-to-date pkg means nothing changed).
bundle() {
  local wasm="$target/$1.wasm" name="$2"
  if [ "$out/${name}_bg.wasm" -nt "$wasm" ] && [ "$out/$name.js" -nt "$wasm" ]; then
    say "widget: www/pkg/$name is up to date"
    return 0
  fi
  # Built in a staging directory and moved into www/pkg only when every step worked: a
  # failed step (say wasm-opt missing) must not leave files that look up to date.
  local stage
  stage=$(mktemp -d "$ROOT/target/widget-stage.XXXXXX")
  wasm-bindgen --target web --out-dir "$stage" --out-name "$name" "$wasm"
  # (The producers and target-features sections are for tools; browsers ignore them.)
  node "$ROOT/node_modules/binaryen/bin/wasm-opt" -Oz --strip-producers --strip-target-features \
    "$stage/${name}_bg.wasm" -o "$stage/${name}_bg.wasm"
  # Given wasm bytes or a compiled Module, the glue still asks `typeof Request` and
  # `typeof Response`, which in Node loads its whole fetch implementation (~18 ms, most
  # of a cold start there): check for bytes and Modules first. Browsers are unaffected.
  local glue="$stage/$name.js" bytes="(ArrayBuffer.isView(X) || X instanceof ArrayBuffer || X instanceof WebAssembly.Module)"
  grep -q "(typeof Request === 'function' && module_or_path instanceof Request)" "$glue" \
    && grep -q "if (typeof Response === 'function' && module instanceof Response) {" "$glue" \
    || die "widget: wasm-bindgen's glue changed; revisit the Request/Response check in build-widget.sh"
  sed -i -e "s/(typeof Request === 'function' \&\& module_or_path instanceof Request)/(!${bytes//X/module_or_path} \&\& typeof Request === 'function' \&\& module_or_path instanceof Request)/" \
    -e "s/if (typeof Response === 'function' \&\& module instanceof Response) {/if (!${bytes//X/module} \&\& typeof Response === 'function' \&\& module instanceof Response) {/" "$glue"
  # The glue ships to every visitor: minified it is ~40% smaller gzipped (its doc
  # comments are in the .d.ts), and bundled with its snippet (the message-module loader)
  # it is one request instead of two on a cold start. Same module, same exports.
  "$ROOT/node_modules/.bin/esbuild" "$glue" --bundle --minify --format=esm --platform=neutral \
    --log-level=error --outfile="$glue.min"
  mv "$glue.min" "$glue"
  rm -rf "$stage/snippets" "$out/snippets"
  # The wasm first, the glue last: the up-to-date check above wants both newer.
  mv "$stage/${name}_bg.wasm" "$stage/${name}_bg.wasm.d.ts" "$stage/$name.d.ts" "$out/"
  mv "$glue" "$out/$name.js"
  rm -rf "$stage"
  local raw gz
  raw=$(stat -c %s "$out/${name}_bg.wasm")
  gz=$(gzip -9c "$out/${name}_bg.wasm" | wc -c)
  say "widget: www/pkg/${name}_bg.wasm $raw bytes raw, $gz gzip"
}
bundle widget_wasm widget
bundle widget_message_wasm widget_message
# widget.js (its loader bundled in) finds the message module beside itself.
grep -q "widget_message.js" "$out/widget.js" || die "widget: the message-module loader is not in widget.js"
[ -f "$out/widget_message.js" ] || die "widget: widget_message.js is missing"
