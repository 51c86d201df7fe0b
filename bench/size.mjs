// Shipped size: our wasm + JS glue as built, and an esbuild bundle of libphonenumber-js/max.

import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync, constants } from 'node:zlib';
import * as esbuild from 'esbuild';

/** The whole entry: what a page needs to call parsePhoneNumberFromString. */
export const LIB_ENTRY = "export { parsePhoneNumberFromString } from 'libphonenumber-js/max';\n";

export function gzipSize(buf) {
  return gzipSync(buf, { level: constants.Z_BEST_COMPRESSION }).length;
}

/**
 * esbuild-minified ESM bundle of LIB_ENTRY, written to `outDir/lpn.min.mjs` (the same
 * file the Node and Chromium runs load).
 */
export async function buildLibBundle(rootDir, outDir) {
  try {
    const result = await esbuild.build({
      stdin: { contents: LIB_ENTRY, resolveDir: rootDir, sourcefile: 'lpn-entry.mjs', loader: 'js' },
      bundle: true,
      minify: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2020',
      write: false,
      logLevel: 'silent',
    });
    const bytes = Buffer.from(result.outputFiles[0].contents);
    const file = path.join(outDir, 'lpn.min.mjs');
    writeFileSync(file, bytes);
    return { file, bytes, esbuildVersion: esbuild.version };
  } finally {
    await esbuild.stop(); // ends esbuild's service process
  }
}

/** The glue's snippet files (wasm-bindgen's `snippets/…/*.js`), which widget.js imports. */
function snippets(pkgDir) {
  const dir = path.join(pkgDir, 'snippets');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true })
    .filter((f) => String(f).endsWith('.js'))
    .map((f) => readFileSync(path.join(dir, String(f))));
}

export function measureSizes(pkgDir, libBundleBytes) {
  const wasm = readFileSync(path.join(pkgDir, 'widget_bg.wasm'));
  const glue = readFileSync(path.join(pkgDir, 'widget.js'));
  const extra = snippets(pkgDir);
  const ours = {
    wasmRaw: wasm.length,
    wasmGzip: gzipSize(wasm),
    glueRaw: glue.length + extra.reduce((n, b) => n + b.length, 0),
    glueGzip: gzipSize(glue) + extra.reduce((n, b) => n + gzipSize(b), 0),
    files: 2 + extra.length,
  };
  ours.raw = ours.wasmRaw + ours.glueRaw;
  // Separate files on the wire, each compressed on its own.
  ours.gzip = ours.wasmGzip + ours.glueGzip;
  // The second module (validateMessage), fetched only when a message is sent.
  let message = null;
  const messageWasm = path.join(pkgDir, 'widget_message_bg.wasm');
  if (existsSync(messageWasm)) {
    const mw = readFileSync(messageWasm);
    const mj = readFileSync(path.join(pkgDir, 'widget_message.js'));
    message = { raw: mw.length + mj.length, gzip: gzipSize(mw) + gzipSize(mj), wasmGzip: gzipSize(mw), glueGzip: gzipSize(mj) };
  }
  const lib = { raw: libBundleBytes.length, gzip: gzipSize(libBundleBytes) };
  return { ours, lib, message };
}
