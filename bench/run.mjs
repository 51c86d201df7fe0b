// Benchmark: our Rust→wasm phone normalizer vs libphonenumber-js/max, on one corpus.
// Prints a Markdown table (stdout) and writes bench/results/latest.json. Progress goes
// to stderr. Run it with `bash scripts/bench.sh`.
//
// Environment knobs (defaults in brackets): BENCH_COLD_RUNS [7] cold runs per library
// and runtime, BENCH_WARMUP_PASSES [5] and BENCH_PASSES [10] corpus passes per warm run,
// BENCH_WARM_ROUNDS [3] warm runs per library and runtime, CHROMIUM_BIN [/usr/bin/chromium].

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { buildCorpus, corpusDigest, corpusPairs, SEED } from './corpus.mjs';
import { buildLibBundle, measureSizes, LIB_ENTRY } from './size.mjs';
import { compare, sampleDisagreements } from './agreement.mjs';
import { median, COLD_INPUT } from './harness.mjs';
import { startServer, launchChromium, measurePage, CHROMIUM_ARGS } from './browser.mjs';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH_DIR, '..');
const PKG_DIR = path.join(ROOT, 'www', 'pkg');
const RESULTS = path.join(BENCH_DIR, 'results', 'latest.json');

const intEnv = (name, dflt) => {
  const v = Number.parseInt(process.env[name] ?? '', 10);
  return Number.isFinite(v) && v > 0 ? v : dflt;
};
const COLD_RUNS = intEnv('BENCH_COLD_RUNS', 7);
const WARMUP_PASSES = intEnv('BENCH_WARMUP_PASSES', 5);
const PASSES = intEnv('BENCH_PASSES', 10);
const WARM_ROUNDS = intEnv('BENCH_WARM_ROUNDS', 3);
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const CHILD_TIMEOUT_MS = 120_000;

// Issue 9's targets: the module every chat loads at most 45 KB gzip (and smaller than
// libphonenumber-js/max), cold start no slower than it, warm twice as fast, agreement.
const TARGET_SIZE_GZIP = 45_000;
const TARGET_COLD = 1;
const TARGET_WARM_NODE = 0.5;
const TARGET_WARM_CHROMIUM = 0.5;
const TARGET_AGREEMENT = 99.9;

const log = (msg) => process.stderr.write(`  ${msg}\n`);

// ---- cleanup: every child, server and browser we start is ended, even on Ctrl-C ----
const children = new Set();
const cleanups = [];
let cleanupPromise = null;
let interrupted = false;
/** Runs once; every caller awaits the same cleanup. */
function cleanup() {
  cleanupPromise ??= (async () => {
    for (const child of children) child.kill('SIGKILL');
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (e) {
        process.stderr.write(`cleanup: ${e?.message ?? e}\n`);
      }
    }
  })();
  return cleanupPromise;
}
for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\n${sig}: cleaning up\n`);
    cleanup().finally(() => process.exit(code));
  });
}

/** Run node-child.mjs in a fresh `node`; resolve its JSON line (+ wall time). */
function nodeChild(args) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [path.join(BENCH_DIR, 'node-child.mjs'), ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      const wallMs = performance.now() - started;
      if (code !== 0) {
        reject(new Error(`node-child ${args.join(' ')} failed (${signal ?? code}): ${err.trim()}`));
        return;
      }
      try {
        resolve({ ...JSON.parse(out.trim().split('\n').pop()), wallMs });
      } catch (e) {
        reject(new Error(`node-child ${args.join(' ')}: bad output ${JSON.stringify(out)}: ${e}`));
      }
    });
  });
}

function summary(samples) {
  return {
    median: median(samples),
    min: Math.min(...samples),
    max: Math.max(...samples),
    runs: samples.length,
    samples,
  };
}

/** Interleave implementations run by run (plus one untimed run each first). */
async function coldRuns(impls, measureOne) {
  const samples = Object.fromEntries(impls.map((i) => [i, []]));
  for (const impl of impls) await measureOne(impl, -1); // discarded: warms the OS file cache
  for (let r = 0; r < COLD_RUNS; r++) {
    for (const impl of impls) samples[impl].push((await measureOne(impl, r)).ms);
  }
  return Object.fromEntries(impls.map((i) => [i, summary(samples[i])]));
}

/** Warm rounds alternate between implementations; ns/op = median over all timed passes. */
async function warmRuns(impls, measureOne) {
  const passes = Object.fromEntries(impls.map((i) => [i, []]));
  let ops = 0;
  for (let r = 0; r < WARM_ROUNDS; r++) {
    for (const impl of impls) {
      const res = await measureOne(impl);
      ops = res.ops;
      passes[impl].push(...res.passMs);
    }
  }
  return Object.fromEntries(impls.map((i) => {
    const med = median(passes[i]);
    return [i, {
      nsPerOp: (med * 1e6) / ops,
      minNsPerOp: (Math.min(...passes[i]) * 1e6) / ops,
      maxNsPerOp: (Math.max(...passes[i]) * 1e6) / ops,
      medianPassMs: med,
      passMs: passes[i],
      ops,
      rounds: WARM_ROUNDS,
      warmupPasses: WARMUP_PASSES,
      passesPerRound: PASSES,
    }];
  }));
}

// ---- formatting ----
const nf = (x, d = 0) => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const kib = (b) => `${nf(b)} B (${nf(b / 1024, 1)} KiB)`;
const ms = (s) => `${nf(s.median, s.median < 20 ? 1 : 0)} ms (${nf(s.min, s.min < 20 ? 1 : 0)}–${nf(s.max, s.max < 20 ? 1 : 0)})`;
const ratio = (a, b) => `${nf(a / b, 2)}×`;
const met = (ok) => (ok ? '✅ met' : '❌ not met');
const esc = (s) => JSON.stringify(s)
  .replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  .replace(/\|/g, '\\|');

async function main() {
  const startedAt = new Date();
  const t0 = performance.now();
  const loadAtStart = os.loadavg()[0];
  if (loadAtStart > 0.5 * os.cpus().length) {
    process.stderr.write(`warning: load average ${loadAtStart.toFixed(2)} on ${os.cpus().length} cores: timings will be noisy\n`);
  }
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'podium-bench-'));
  cleanups.push(() => rmSync(tmp, { recursive: true, force: true }));

  process.stderr.write('==> corpus\n');
  const entries = buildCorpus();
  const pairs = corpusPairs(entries);
  const corpusJson = JSON.stringify(pairs);
  const corpusPath = path.join(tmp, 'corpus.json');
  writeFileSync(corpusPath, corpusJson);
  const digest = corpusDigest(entries);
  const kinds = {};
  for (const e of entries) kinds[e.kind] = (kinds[e.kind] ?? 0) + 1;
  const regionCount = new Set(entries.map((e) => e.region)).size;
  const countryCount = new Set(entries.map((e) => e.country).filter(Boolean)).size;
  log(`${entries.length} entries, ${countryCount} countries, sha256 ${digest.slice(0, 16)}…`);

  process.stderr.write('==> shipped size\n');
  const bundle = await buildLibBundle(ROOT, tmp);
  const sizes = measureSizes(PKG_DIR, bundle.bytes);
  log(`ours ${nf(sizes.ours.raw)} B raw / ${nf(sizes.ours.gzip)} B gzip; libphonenumber-js ${nf(sizes.lib.raw)} / ${nf(sizes.lib.gzip)}`);

  process.stderr.write('==> agreement\n');
  const widget = await import(pathToFileURL(path.join(PKG_DIR, 'widget.js')).href);
  await widget.default({ module_or_path: readFileSync(path.join(PKG_DIR, 'widget_bg.wasm')) });
  const lib = await import('libphonenumber-js/max');
  const metadataVersion = widget.metadataVersion();
  const agreement = compare(entries, widget, lib);
  log(`${nf(agreement.percent, 2)}% (${agreement.disagreements.length} disagreements)`);

  process.stderr.write(`==> Node cold start (${COLD_RUNS} runs each, fresh process per run)\n`);
  const nodeCold = await coldRuns(['ours', 'lib-bundle', 'lib-pkg'], (impl) => {
    const extra = impl === 'ours' ? [PKG_DIR] : impl === 'lib-bundle' ? [bundle.file] : [];
    return nodeChild(['cold', impl, ...extra]);
  });
  log(`ours ${ms(nodeCold.ours)}; lib ${ms(nodeCold['lib-bundle'])}; lib (package import) ${ms(nodeCold['lib-pkg'])}`);

  process.stderr.write(`==> Node warm (${WARM_ROUNDS} runs × ${PASSES} passes each)\n`);
  const nodeWarmMemory = [];
  const nodeWarm = await warmRuns(['ours', 'lib'], async (impl) => {
    const res = await nodeChild([
      'warm', impl, corpusPath, impl === 'ours' ? PKG_DIR : bundle.file, String(WARMUP_PASSES), String(PASSES),
    ]);
    if (impl === 'ours' && res.wasmMemoryBytes) nodeWarmMemory.push(res.wasmMemoryBytes);
    return res;
  });
  log(`ours ${nf(nodeWarm.ours.nsPerOp)} ns/op; lib ${nf(nodeWarm.lib.nsPerOp)} ns/op`);

  process.stderr.write('==> Chromium\n');
  const server = await startServer({ pkgDir: PKG_DIR, benchDir: BENCH_DIR, libBundle: bundle.bytes, corpusJson });
  cleanups.push(() => server.close());
  const launching = launchChromium(CHROMIUM);
  cleanups.push(async () => (await launching.catch(() => null))?.close());
  const browser = await launching;
  const chromiumVersion = browser.version();
  log(`Chromium ${chromiumVersion} at ${server.origin}`);
  const browserCold = await coldRuns(['ours', 'lib'], (impl, r) => measurePage(browser, `${server.origin}/cold.html?impl=${impl}&r=${r}`));
  log(`cold: ours ${ms(browserCold.ours)}; lib ${ms(browserCold.lib)}`);
  const browserWarm = await warmRuns(['ours', 'lib'], (impl) => measurePage(
    browser, `${server.origin}/warm.html?impl=${impl}&warmup=${WARMUP_PASSES}&passes=${PASSES}`,
  ));
  log(`warm: ours ${nf(browserWarm.ours.nsPerOp)} ns/op; lib ${nf(browserWarm.lib.nsPerOp)} ns/op`);
  await browser.close();
  await server.close();

  const elapsedS = (performance.now() - t0) / 1000;
  const warmNodeRatio = nodeWarm.ours.nsPerOp / nodeWarm.lib.nsPerOp;
  const warmBrowserRatio = browserWarm.ours.nsPerOp / browserWarm.lib.nsPerOp;
  const coldNodeRatio = nodeCold.ours.median / nodeCold['lib-bundle'].median;
  const coldBrowserRatio = browserCold.ours.median / browserCold.lib.median;
  const sizeMet = sizes.ours.gzip <= TARGET_SIZE_GZIP && sizes.ours.gzip < sizes.lib.gzip;
  const wasmMemory = Math.max(...nodeWarmMemory);
  const targets = {
    size: { target: `≤ ${TARGET_SIZE_GZIP} B gzip and < libphonenumber-js`, gzip: sizes.ours.gzip, met: sizeMet },
    coldNode: { target: `ours ≤ ${TARGET_COLD}× libphonenumber-js`, ratio: coldNodeRatio, met: coldNodeRatio <= TARGET_COLD },
    coldChromium: { target: `ours ≤ ${TARGET_COLD}× libphonenumber-js`, ratio: coldBrowserRatio, met: coldBrowserRatio <= TARGET_COLD },
    warmNode: { target: `ours ≤ ${TARGET_WARM_NODE}× libphonenumber-js`, ratio: warmNodeRatio, met: warmNodeRatio <= TARGET_WARM_NODE },
    warmChromium: { target: `ours ≤ ${TARGET_WARM_CHROMIUM}× libphonenumber-js`, ratio: warmBrowserRatio, met: warmBrowserRatio <= TARGET_WARM_CHROMIUM },
    agreement: { target: `≥ ${TARGET_AGREEMENT}%`, percent: agreement.percent, met: agreement.percent >= TARGET_AGREEMENT },
  };

  const libVersion = JSON.parse(readFileSync(path.join(ROOT, 'node_modules', 'libphonenumber-js', 'package.json'), 'utf8')).version;
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const cores = os.cpus().length;
  const chromiumMajor = chromiumVersion.split('.')[0];

  // ---- the Markdown ----
  const L = [];
  L.push(`### Phone normalization: our widget (Rust → wasm) vs libphonenumber-js/max ${libVersion}`);
  L.push('');
  L.push(`| Measure | Ours (Rust → wasm) | libphonenumber-js/max | Ours ÷ theirs | Target | Result |`);
  L.push(`|---|---:|---:|---:|---|---|`);
  L.push(`| Shipped size, raw | ${kib(sizes.ours.raw)} | ${kib(sizes.lib.raw)} | ${ratio(sizes.ours.raw, sizes.lib.raw)} | – | – |`);
  L.push(`| Shipped size, gzip -9 | ${kib(sizes.ours.gzip)} | ${kib(sizes.lib.gzip)} | ${ratio(sizes.ours.gzip, sizes.lib.gzip)} | ≤ ${nf(TARGET_SIZE_GZIP)} B and < theirs | ${met(targets.size.met)} |`);
  L.push(`| Cold: load → first E.164, Node ${process.versions.node.split('.')[0]} (median, min–max) | ${ms(nodeCold.ours)} | ${ms(nodeCold['lib-bundle'])} | ${ratio(nodeCold.ours.median, nodeCold['lib-bundle'].median)} | ≤ ${TARGET_COLD}× | ${met(targets.coldNode.met)} |`);
  L.push(`| Cold: load → first E.164, Chromium ${chromiumMajor} headless (median, min–max) | ${ms(browserCold.ours)} | ${ms(browserCold.lib)} | ${ratio(browserCold.ours.median, browserCold.lib.median)} | ≤ ${TARGET_COLD}× | ${met(targets.coldChromium.met)} |`);
  L.push(`| Warm, Node: ns per number (mixed regions) | ${nf(nodeWarm.ours.nsPerOp)} | ${nf(nodeWarm.lib.nsPerOp)} | ${ratio(nodeWarm.ours.nsPerOp, nodeWarm.lib.nsPerOp)} | ≤ ${TARGET_WARM_NODE}× | ${met(targets.warmNode.met)} |`);
  L.push(`| Warm, Chromium: ns per number (mixed regions) | ${nf(browserWarm.ours.nsPerOp)} | ${nf(browserWarm.lib.nsPerOp)} | ${ratio(browserWarm.ours.nsPerOp, browserWarm.lib.nsPerOp)} | ≤ ${TARGET_WARM_CHROMIUM}× | ${met(targets.warmChromium.met)} |`);
  L.push(`| Agreement: same verdict and same E.164 | ${nf(agreement.percent, 2)}% (${nf(agreement.agree)} of ${nf(agreement.total)}) | | | ≥ ${TARGET_AGREEMENT}% | ${met(targets.agreement.met)} |`);
  if (sizes.message) {
    L.push(`| Message module (\`validateMessage\`, fetched when a message is sent), gzip -9 | ${kib(sizes.message.gzip)} | | | – | – |`);
  }
  L.push(`| wasm linear memory after the warm runs (Node) | ${kib(wasmMemory)} | | | – | – |`);
  L.push('');
  L.push(`Corpus: ${nf(entries.length)} inputs (seed 0x${SEED.toString(16)}, sha256 ${digest.slice(0, 12)}…), ${countryCount} countries, ${regionCount - 1} store regions plus "no region", shuffled; ` +
    `example numbers from libphonenumber-js typed nationally and internationally with spaces, dashes, dots, parentheses, NBSP, IDD prefixes, other digit scripts and extensions, random digit strings of a real length for each country (unfiltered), plus too-short, too-long, wrong-digit, wrong-region, lettered and empty inputs. ` +
    `Ours = what \`www/pkg/widget.js\` loads: \`widget.js\` + \`widget_bg.wasm\`${sizes.ours.files > 2 ? ' + its snippets' : ''} (${sizes.ours.files} files, each gzipped on its own; metadata libphonenumber ${metadataVersion}; \`validateMessage\`'s module is the separate row); theirs = esbuild ${bundle.esbuildVersion} \`--bundle --minify --format=esm\` of \`${LIB_ENTRY.trim()}\`. ` +
    `Cold = fresh process / fresh browser context per run, ${COLD_RUNS} runs after one untimed run, first call \`${COLD_INPUT[0]}\` in ${COLD_INPUT[1]}, clock from before the dynamic import to the first E.164 (includes fetching and compiling the wasm and, for ours, the first use of the region's tables). ` +
    `Node cold for libphonenumber-js imported from the package instead of the bundle: ${ms(nodeCold['lib-pkg'])}. ` +
    `Warm = ${WARMUP_PASSES} untimed passes over the corpus, then ${PASSES} timed, ${WARM_ROUNDS} runs per library; median pass ÷ corpus size; both sides return the E.164 or nothing. ` +
    `Machine: ${cpu}, ${cores} cores, Node ${process.versions.node}, Chromium ${chromiumVersion}; 1-min load average at start ${nf(loadAtStart, 2)}; ${startedAt.toISOString().slice(0, 10)}.`);
  L.push('');
  L.push(`#### Disagreements: ${nf(agreement.disagreements.length)} of ${nf(agreement.total)}`);
  L.push('');
  if (agreement.disagreements.length) {
    L.push('By pattern:');
    L.push('');
    for (const g of agreement.groups) L.push(`- ${g.count} × ${g.key}`);
    L.push('');
    const shown = sampleDisagreements(agreement, 30);
    L.push(`${shown.length === agreement.disagreements.length ? 'All' : `${shown.length} examples (every pattern; all ${agreement.disagreements.length} in bench/results/latest.json)`}:`);
    L.push('');
    L.push('| Input | Region | Kind | Ours | libphonenumber-js |');
    L.push('|---|---|---|---|---|');
    for (const d of shown) L.push(`| ${esc(d.raw)} | ${d.region ?? '(none)'} | ${d.kind} | ${d.ours} | ${d.theirs} |`);
  }
  L.push('');
  L.push(`_Bench run took ${nf(elapsedS, 0)} s._`);
  process.stdout.write(`${L.join('\n')}\n`);

  mkdirSync(path.dirname(RESULTS), { recursive: true });
  writeFileSync(RESULTS, `${JSON.stringify({
    startedAt: startedAt.toISOString(),
    elapsedS,
    environment: {
      node: process.versions.node, chromium: chromiumVersion, chromiumArgs: CHROMIUM_ARGS,
      cpu, cores, loadAverageAtStart: loadAtStart, platform: `${os.platform()} ${os.release()}`,
      libphonenumberJs: libVersion, esbuild: bundle.esbuildVersion,
    },
    settings: { coldRuns: COLD_RUNS, warmupPasses: WARMUP_PASSES, passes: PASSES, warmRounds: WARM_ROUNDS, coldInput: COLD_INPUT },
    corpus: { seed: SEED, entries: entries.length, countries: countryCount, regions: regionCount, sha256: digest, kinds },
    size: sizes,
    cold: { node: nodeCold, chromium: browserCold },
    warm: { node: nodeWarm, chromium: browserWarm },
    agreement: {
      percent: agreement.percent, agree: agreement.agree, total: agreement.total,
      bothValid: agreement.bothValid, bothInvalid: agreement.bothInvalid,
      groups: agreement.groups, disagreements: agreement.disagreements,
    },
    targets,
    markdown: L.join('\n'),
  }, null, 2)}\n`);
  process.stderr.write(`==> wrote ${path.relative(ROOT, RESULTS)} (${nf(elapsedS, 0)} s)\n`);
}

try {
  await main();
  await cleanup();
} catch (e) {
  // After a signal, the failure is only the interruption: the signal handler exits.
  if (!interrupted) process.stderr.write(`bench failed: ${e?.stack ?? e}\n`);
  await cleanup();
  if (!interrupted) process.exit(1);
}
