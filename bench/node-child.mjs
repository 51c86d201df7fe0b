// One measurement in a fresh Node process; prints one JSON line. Spawned by bench/run.mjs.
//
//   node bench/node-child.mjs cold ours <www/pkg dir>
//   node bench/node-child.mjs cold lib-bundle <bundle.mjs>
//   node bench/node-child.mjs cold lib-pkg
//   node bench/node-child.mjs warm ours|lib <corpus.json> <www/pkg dir | bundle.mjs> <warmupPasses> <passes>

import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { COLD_INPUT, COLD_EXPECTED, oursCall, libCall, warmLoop } from './harness.mjs';

const [mode, impl, ...rest] = process.argv.slice(2);

let oursExports = null;
async function loadOurs(pkgDir) {
  const widget = await import(pathToFileURL(path.join(pkgDir, 'widget.js')).href);
  const bytes = await readFile(path.join(pkgDir, 'widget_bg.wasm'));
  oursExports = await widget.default({ module_or_path: bytes });
  return widget;
}

async function loadLib(implName, bundlePath) {
  const mod = implName === 'lib-pkg'
    ? await import('libphonenumber-js/max')
    : await import(pathToFileURL(bundlePath).href);
  return mod.parsePhoneNumberFromString;
}

async function cold() {
  const [raw, region] = COLD_INPUT;
  let e164;
  // The clock starts before the module is imported and stops at the first E.164.
  const t0 = performance.now();
  if (impl === 'ours') {
    const widget = await loadOurs(rest[0]);
    e164 = widget.normalizePhone(raw, region).e164;
  } else {
    const parse = await loadLib(impl, rest[0]);
    e164 = parse(raw, region)?.number;
  }
  const ms = performance.now() - t0;
  if (e164 !== COLD_EXPECTED) throw new Error(`${impl}: first result ${e164}, expected ${COLD_EXPECTED}`);
  return { ms, e164 };
}

async function warm() {
  const [corpusPath, artefact, warmupPasses, passes] = rest;
  const pairs = JSON.parse(readFileSync(corpusPath, 'utf8'));
  const call = impl === 'ours' ? oursCall(await loadOurs(artefact)) : libCall(await loadLib(impl, artefact));
  const result = warmLoop(call, pairs, { warmupPasses: Number(warmupPasses), passes: Number(passes) });
  // The wasm module's linear memory once it has seen the whole corpus many times.
  if (oursExports?.memory) result.wasmMemoryBytes = oursExports.memory.buffer.byteLength;
  return result;
}

const result = mode === 'cold' ? await cold() : await warm();
process.stdout.write(`${JSON.stringify(result)}\n`);
