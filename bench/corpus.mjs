// Deterministic mixed-region phone corpus for the benchmark.
//
// Every entry is { raw, region, kind, country }: `raw` is what a customer might type,
// `region` the store's ISO 3166 alpha-2 region (or null when unknown), `kind` how the
// entry was made (used to group disagreements), `country` the country the underlying
// number belongs to (null for junk).
//
// Sources: libphonenumber-js's own example numbers (mobile examples ship with the
// package; fixed-line examples do not, so FIXED_LINE_EXAMPLES below holds Google
// libphonenumber's fixed-line example numbers, kept only when libphonenumber-js agrees
// they are fixed-line numbers). Each example is also varied by re-drawing its last
// three digits. Everything random comes from a seeded PRNG, so the corpus is identical
// from run to run (for a given libphonenumber-js version); `corpusDigest()` proves it.
//
// Usage: `node bench/corpus.mjs` prints a summary; `--json` prints the corpus.

import { createHash } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { getExampleNumber, parsePhoneNumberFromString, Metadata } from 'libphonenumber-js/max';
import mobileExamples from 'libphonenumber-js/mobile/examples';

export const SEED = 0x5eed_2024;

/** Countries in the corpus: the brief's 40, plus a few more (KZ shares +7, MY…). */
export const COUNTRIES = [
  'AU', 'US', 'CA', 'GB', 'NZ', 'DE', 'FR', 'IT', 'ES', 'IN', 'BR', 'JP', 'CN', 'MX',
  'ZA', 'NG', 'AE', 'SA', 'SG', 'HK', 'PH', 'ID', 'NL', 'BE', 'CH', 'SE', 'NO', 'DK',
  'PL', 'IE', 'AR', 'CL', 'CO', 'KR', 'TR', 'EG', 'IL', 'PT', 'AT', 'RU',
  'KZ', 'MY', 'TH', 'VN', 'GR', 'FI', 'CZ', 'KE', 'PK',
];

/** Google libphonenumber's fixed-line example numbers (national significant numbers). */
const FIXED_LINE_EXAMPLES = {
  AU: '212345678', US: '2015550123', CA: '5062345678', GB: '1212345678', NZ: '32345678',
  DE: '30123456', FR: '123456789', IT: '0212345678', ES: '810123456', IN: '7410410123',
  BR: '1123456789', JP: '312345678', CN: '1012345678', MX: '2001234567', ZA: '101234567',
  NG: '2033123456', AE: '22345678', SA: '112345678', SG: '61234567', HK: '21234567',
  PH: '232345678', ID: '218350123', NL: '101234567', BE: '12345678', CH: '212345678',
  SE: '8123456', NO: '21234567', DK: '32123456', PL: '122345678', IE: '2212345',
  AR: '1123456789', CL: '221234567', CO: '6012345678', KR: '22123456', TR: '2123456789',
  EG: '234567890', IL: '21234567', PT: '212345678', AT: '1234567890', RU: '3011234567',
  KZ: '7123456789', MY: '323856789', TH: '21234567', VN: '2101234567', GR: '2123456789',
  FI: '131234567', CZ: '212345678', KE: '202012345', PK: '2123456789',
};

/** Digit scripts customers type in (all three are accepted by both libraries). */
const SCRIPTS = {
  'arabic-indic': 0x0660,
  persian: 0x06f0,
  fullwidth: 0xff10,
};
const ARABIC_SCRIPT_COUNTRIES = new Set(['AE', 'SA', 'EG']);
const FULLWIDTH_COUNTRIES = new Set(['JP', 'CN', 'KR', 'HK']);

/** Letters a customer might slip in (no x/e/t/#: those mark extensions). */
const LETTERS = 'OolISBZabcdfghkmnqrsuvwyz';

const RANDOM_PER_COUNTRY = 5;

const JUNK = ['', ' ', '   ', '+', '-', '()', '\u00a0', 'n/a', 'N/A', 'none', 'abc', 'phone',
  'TBC', 'asap', 'no phone', '???', '.', '+-', '0', '00', '+1', '12'];

const BAD_CC = ['+999 1234 5678', '+0 412 345 678', '+28 1234 5678', '+35 123 456 789',
  '+259 123 4567', '+969 123 4567', '+80 1234 5678', '+21 123 4567'];

/** mulberry32: small, fast, good enough, and the same everywhere. */
export function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  const pick = (xs) => xs[int(xs.length)];
  const chance = (p) => next() < p;
  const digits = (n) => Array.from({ length: n }, () => String(int(10))).join('');
  return { next, int, pick, chance, digits };
}

/** The region's international dialling prefix, where it is a plain digit string. */
function iddPrefixes() {
  const out = {};
  for (const c of COUNTRIES) {
    const m = new Metadata();
    m.selectNumberingPlan(c);
    const plan = m.numberingPlan;
    const preferred = plan.defaultIDDPrefix?.();
    const pattern = plan.IDDPrefix();
    const idd = preferred ? preferred.replace(/~/g, '') : pattern;
    if (idd && /^\d+$/.test(idd)) out[c] = idd;
  }
  return out;
}

function toScript(text, zero) {
  return text.replace(/[0-9]/g, (d) => String.fromCodePoint(zero + Number(d)));
}

/** Replace one digit (not the first) with a letter. */
function withLetter(rng, text) {
  const positions = [...text].map((ch, i) => (/[0-9]/.test(ch) ? i : -1)).filter((i) => i > 0);
  if (positions.length === 0) return `${text}${rng.pick(LETTERS)}`;
  const i = rng.pick(positions);
  return text.slice(0, i) + rng.pick(LETTERS) + text.slice(i + 1);
}

/** Base numbers: one mobile and one fixed-line example per country. */
function baseNumbers() {
  const out = [];
  for (const c of COUNTRIES) {
    const mobile = getExampleNumber(c, mobileExamples);
    if (mobile) out.push({ country: c, type: 'mobile', nsn: mobile.nationalNumber });
    const fixed = FIXED_LINE_EXAMPLES[c] && parsePhoneNumberFromString(FIXED_LINE_EXAMPLES[c], c);
    const t = fixed?.isValid() ? fixed.getType() : undefined;
    if (t === 'FIXED_LINE' || t === 'FIXED_LINE_OR_MOBILE') {
      if (!mobile || fixed.nationalNumber !== mobile.nationalNumber) {
        out.push({ country: c, type: 'fixed', nsn: fixed.nationalNumber });
      }
    }
  }
  return out;
}

/**
 * Build the corpus. Same seed → same corpus, entry for entry and in the same
 * (shuffled, so regions interleave) order.
 */
export function buildCorpus({ seed = SEED, variantsPerNumber = 3 } = {}) {
  const rng = prng(seed);
  const idd = iddPrefixes();
  const iddRegions = Object.keys(idd);
  const entries = [];
  const add = (raw, region, kind, country) => entries.push({ raw, region: region ?? null, kind, country: country ?? null });
  const otherThan = (c, pool = COUNTRIES) => {
    for (;;) {
      const r = rng.pick(pool);
      if (r !== c) return r;
    }
  };

  const bases = baseNumbers();
  for (const base of bases) {
    const c = base.country;
    for (let v = 0; v < variantsPerNumber; v++) {
      // Variant 0 is the example itself; the others re-draw the last three digits.
      const nsn = v === 0 ? base.nsn : base.nsn.slice(0, -3) + rng.digits(3);
      const pn = parsePhoneNumberFromString(`+${getCc(c)}${nsn}`);
      if (!pn) continue;
      const nat = pn.formatNational();
      const natDigits = nat.replace(/\D/g, '');
      const natGroups = nat.split(/\D+/).filter(Boolean);
      const intl = pn.formatInternational();
      const intlGroups = intl.slice(1).split(/\D+/).filter(Boolean);
      const cc = intlGroups[0];
      const e164 = pn.number;

      // How customers type their own country's numbers on a store page of that country.
      add(nat, c, 'national', c);
      add(natDigits, c, 'national-digits', c);
      add(natGroups.join('-'), c, 'national-dashes', c);
      add(natGroups.join('.'), c, 'national-dots', c);
      if (natGroups.length > 1) {
        add(`(${natGroups[0]}) ${natGroups.slice(1).join(rng.pick([' ', '-', '']))}`, c, 'national-parens', c);
      }
      add(nat.replace(/ /g, '\u00a0'), c, 'national-nbsp', c);
      add(intl, c, 'intl', c);
      add(e164, c, 'e164', c);
      add(`+${intlGroups.join('-')}`, c, 'intl-dashes', c);
      add(intl.replace(/ /g, '\u00a0'), c, 'intl-nbsp', c);
      // "+44 (0)20 …": the trunk 0 written after the country code.
      if (natDigits.startsWith('0') && !e164.slice(1 + cc.length).startsWith('0')) {
        const rest = natGroups.join(' ').replace(/^0/, '');
        add(`+${cc} (0)${rest}`, c, 'intl-trunk0', c);
      }

      // Foreign customers: '+' input on another country's store, or no region at all.
      add(rng.chance(0.5) ? intl : e164, otherThan(c), 'intl-other-region', c);
      add(rng.chance(0.5) ? intl : e164, null, 'intl-no-region', c);
      // IDD prefix of the store's region, then the country code.
      {
        const r = rng.chance(0.85) ? otherThan(c, iddRegions) : (idd[c] ? c : otherThan(c, iddRegions));
        const digits = e164.slice(1);
        add(rng.chance(0.6) ? `${idd[r]} ${intlGroups.join(' ')}` : `${idd[r]}${digits}`, r, 'idd', c);
      }

      // Other digit scripts.
      if (ARABIC_SCRIPT_COUNTRIES.has(c)) {
        add(toScript(rng.chance(0.5) ? nat : natDigits, SCRIPTS[rng.pick(['arabic-indic', 'persian'])]), c, 'unicode-digits', c);
      } else if (FULLWIDTH_COUNTRIES.has(c)) {
        add(toScript(rng.chance(0.5) ? nat : natDigits, SCRIPTS.fullwidth), c, 'unicode-digits', c);
      } else if (rng.chance(0.15)) {
        add(toScript(e164, SCRIPTS[rng.pick(Object.keys(SCRIPTS))]), rng.pick([c, null]), 'unicode-digits', c);
      }

      // An extension, sometimes.
      if (v === 0) {
        const ext = rng.digits(2 + rng.int(3));
        const marker = rng.pick([' ext. ', ' ext ', ' x', ' x ', ' #']);
        add(`${rng.chance(0.5) ? nat : intl}${marker}${ext}`, c, 'extension', c);
      }

      // A national number with no region: nobody can know the country.
      if (rng.chance(0.25)) add(nat, null, 'national-no-region', c);

      // Wrong or broken input: two of these per number.
      for (let k = 0; k < 2; k++) {
        switch (rng.int(8)) {
          case 0: add(natDigits.slice(0, 3 + rng.int(3)), c, 'invalid-short', c); break;
          case 1: add(`+${cc} ${e164.slice(1 + cc.length, 1 + cc.length + 2 + rng.int(3))}`, c, 'invalid-short', c); break;
          case 2: add(`${nat} ${rng.digits(3 + rng.int(2))}`, c, 'invalid-long', c); break;
          case 3: add(`${e164}${rng.digits(3 + rng.int(2))}`, rng.pick([c, null]), 'invalid-long', c); break;
          case 4: add(withLetter(rng, rng.chance(0.5) ? nat : intl), c, 'invalid-letters', c); break;
          case 5: add(nat, otherThan(c), 'wrong-region', c); break;
          case 6: {
            // Change the first significant digit: usually no longer a valid number.
            const lead = natDigits.startsWith('0') ? 1 : 0;
            const d = natDigits[lead];
            let nd = d;
            while (nd === d) nd = String(rng.int(10));
            add(natDigits.slice(0, lead) + nd + natDigits.slice(lead + 1), c, 'wrong-digits', c);
            break;
          }
          default: {
            const lead = 1 + cc.length;
            const d = e164[lead];
            let nd = d;
            while (nd === d) nd = String(1 + rng.int(9));
            add(`+${cc}${nd}${e164.slice(lead + 1)}`, rng.pick([c, null]), 'wrong-digits', c);
          }
        }
      }
    }
  }

  // Random national significant numbers (first digit 1-9, then anything) of a real
  // length for the country, unfiltered: whatever either library makes of them. They
  // reach number ranges the example numbers miss.
  for (const c of COUNTRIES) {
    const lengths = bases.filter((b) => b.country === c).map((b) => b.nsn.length);
    const prefix = nationalPrefix(c) ?? '';
    for (let k = 0; k < RANDOM_PER_COUNTRY; k++) {
      const nsn = String(1 + rng.int(9)) + rng.digits(rng.pick(lengths) - 1);
      if (rng.chance(0.5)) add(`+${getCc(c)} ${nsn}`, rng.pick([c, c, null]), 'random-digits', c);
      else add(`${prefix}${nsn}`, c, 'random-digits', c);
    }
  }

  for (const raw of JUNK) {
    add(raw, rng.pick(COUNTRIES), /[a-z]/i.test(raw) ? 'junk-letters' : 'junk-empty', null);
    add(raw, null, /[a-z]/i.test(raw) ? 'junk-letters' : 'junk-empty', null);
  }
  for (const raw of BAD_CC) add(raw, rng.pick([rng.pick(COUNTRIES), null]), 'invalid-country-code', null);

  // Shuffle (Fisher–Yates) so consecutive calls hit different regions, as real traffic does.
  for (let i = entries.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [entries[i], entries[j]] = [entries[j], entries[i]];
  }
  return entries;
}

function nationalPrefix(country) {
  const m = new Metadata();
  m.selectNumberingPlan(country);
  return m.numberingPlan.nationalPrefix();
}

function getCc(country) {
  const m = new Metadata();
  m.selectNumberingPlan(country);
  return m.numberingPlan.callingCode();
}

/** sha256 of the corpus (raw + region, in order): equal digests mean equal corpora. */
export function corpusDigest(entries) {
  const h = createHash('sha256');
  for (const e of entries) h.update(`${e.raw}\u0000${e.region ?? ''}\u0001`);
  return h.digest('hex');
}

/** The compact form the timing loops load: [[raw, region|null], …]. */
export function corpusPairs(entries) {
  return entries.map((e) => [e.raw, e.region]);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const entries = buildCorpus();
  if (process.argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify(entries, null, 1)}\n`);
  } else {
    const byKind = {};
    for (const e of entries) byKind[e.kind] = (byKind[e.kind] ?? 0) + 1;
    const regions = new Set(entries.map((e) => e.region));
    console.log(`${entries.length} entries, ${regions.size} regions (incl. none), sha256 ${corpusDigest(entries)}`);
    for (const [k, n] of Object.entries(byKind).sort()) console.log(`  ${k.padEnd(22)} ${n}`);
  }
}
