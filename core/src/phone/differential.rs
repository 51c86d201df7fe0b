//! Differential tests: the compiled engine against the previous, `phonenumber`-crate
//! based engine (`reference.rs`), and the compiled patterns against the regex crate.
//!
//! Inputs come from the metadata itself: every region's example number of every type,
//! typed nationally, internationally, after an IDD and with decoration, then mutated (a
//! digit added, dropped, changed), plus random digit strings of each region's possible
//! lengths. Every verdict must be identical: same E.164 and extension, or the same error
//! (code and region). Where the new engine is meant to differ, the case is listed in
//! [`CORRECTIONS`] with the reason.

use std::collections::BTreeMap;

use phonenumber::metadata::Metadata;
use regex::Regex;

use super::matcher::{self, Anchor, Scratch};
use super::metadata::{self as tables, Slot};
use super::reference;
use super::{parse, Normalized, PhoneError};

/// Inputs on which the compiled engine deliberately differs from the reference, and
/// why. (Empty: it reproduces every verdict, quirks included.)
const CORRECTIONS: &[(&str, Option<&str>, &str)] = &[];

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn digits(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

/// Store regions whose pages the numbers are also typed on (foreign numbers, IDDs).
const STORES: &[&str] = &[
    "US", "AU", "GB", "DE", "JP", "BR", "AR", "IN", "FR", "RU", "NZ", "CA",
];

fn crate_meta(region: &tables::Region) -> Option<&'static Metadata> {
    let db = reference::db();
    match region.iso() {
        Some(id) => db.by_id(id),
        None => db
            .by_code(&region.code)?
            .into_iter()
            .find(|m| m.id() == "001"),
    }
}

fn examples(meta: &Metadata) -> Vec<String> {
    let d = meta.descriptors();
    [
        d.fixed_line(),
        d.mobile(),
        d.toll_free(),
        d.premium_rate(),
        d.shared_cost(),
        d.personal_number(),
        d.voip(),
        d.pager(),
        d.uan(),
        d.voicemail(),
    ]
    .into_iter()
    .flatten()
    .filter_map(|desc| desc.example().map(str::to_owned))
    .collect()
}

/// Lengths worth generating random numbers of: every type's possible lengths,
/// including the local-only ones.
fn lengths(meta: &Metadata) -> Vec<usize> {
    let d = meta.descriptors();
    let mut out: Vec<usize> = [d.fixed_line(), d.mobile(), d.toll_free(), d.voip(), d.uan()]
        .into_iter()
        .flatten()
        .flat_map(|desc| {
            desc.possible_length()
                .iter()
                .chain(desc.possible_local_length())
                .map(|&l| usize::from(l))
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The IDD a customer in `store` would type (the preferred one, else the pattern if it
/// is a plain digit string).
fn idd_of(store: &str) -> Option<String> {
    let meta = reference::db().by_id(store)?;
    meta.preferred_international_prefix()
        .map(str::to_owned)
        .or_else(|| {
            let p = meta.international_prefix()?.as_str();
            p.bytes().all(|b| b.is_ascii_digit()).then(|| p.to_owned())
        })
}

fn spaced(digits: &str) -> String {
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && i % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn script(digits: &str, zero: u32) -> String {
    digits
        .chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from_u32(zero + d).unwrap_or(c),
            None => c,
        })
        .collect()
}

fn mutations(nsn: &str, rng: &mut Rng) -> Vec<String> {
    let mut out = Vec::new();
    let n = nsn.len();
    let at = rng.below(n + 1);
    out.push(format!("{}{}{}", &nsn[..at], rng.below(10), &nsn[at..]));
    out.push(format!("{nsn}{}", rng.below(10)));
    if n > 1 {
        let at = rng.below(n);
        out.push(format!("{}{}", &nsn[..at], &nsn[at + 1..]));
        out.push(nsn[..n - 1].to_owned());
        let at = rng.below(n);
        let d = (nsn.as_bytes()[at] - b'0' + 1 + rng.below(9) as u8) % 10;
        out.push(format!("{}{}{}", &nsn[..at], d, &nsn[at + 1..]));
    }
    out
}

/// Every (input, store region) pair the differential test runs.
fn cases() -> Vec<(String, Option<String>)> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut push = |raw: String, region: Option<&str>| out.push((raw, region.map(str::to_owned)));
    for (i, region) in tables::all().iter().enumerate() {
        let Some(meta) = crate_meta(region) else {
            continue;
        };
        let cc = region.code;
        let here = region.iso();
        let other = STORES[i % STORES.len()];
        let np = region.national_prefix();
        for nsn in examples(meta) {
            push(format!("+{cc}{nsn}"), None);
            push(format!("+{cc} {}", spaced(&nsn)), Some(other));
            push(format!("tel:+{cc}-{nsn};ext=12"), None);
            push(
                format!(
                    "+{} {}",
                    script(&cc.to_string(), 0x0660),
                    script(&nsn, 0x0660)
                ),
                None,
            );
            push(format!("+{cc} ({np}) {nsn}"), None);
            if let Some(here) = here {
                push(format!("+{cc}{nsn}"), Some(here));
                push(format!("{np}{nsn}"), Some(here));
                push(nsn.clone(), Some(here));
                push(format!("{cc}{nsn}"), Some(here));
                let split = nsn.len().min(3);
                push(
                    format!("({np}{}) {}-{} x 7", &nsn[..split], &nsn[split..], "")
                        .replace("- x", " x"),
                    Some(here),
                );
                push(script(&format!("{np}{nsn}"), 0xFF10), Some(here));
                push(format!("{np}\u{a0}{}", spaced(&nsn)), Some(here));
                if let Some(idd) = idd_of(here) {
                    push(format!("{idd} {cc} {nsn}"), Some(here));
                }
            }
            if let Some(idd) = idd_of(other) {
                push(format!("{idd} {cc} {nsn}"), Some(other));
                push(format!("{idd}{cc}{np}{nsn}"), Some(other));
            }
            for m in mutations(&nsn, &mut rng) {
                push(format!("+{cc}{m}"), None);
                if let Some(here) = here {
                    push(format!("{np}{m}"), Some(here));
                    push(m.clone(), Some(here));
                }
            }
        }
        for len in lengths(meta) {
            for _ in 0..4 {
                let d = rng.digits(len);
                push(format!("+{cc}{d}"), None);
                if let Some(here) = here {
                    push(format!("{np}{d}"), Some(here));
                    push(d.clone(), Some(here));
                    push(format!("{cc}{d}"), Some(here));
                }
                push(d, Some(other));
            }
        }
        // The national prefix for parsing with random tails (AR's 0 11 15, BR's
        // carrier codes, the NANPA islands' 7-digit local numbers, …).
        if let Some(here) = here {
            for _ in 0..12 {
                let len = 4 + rng.below(12);
                push(format!("{np}{}", rng.digits(len)), Some(here));
                push(rng.digits(len), Some(here));
            }
        }
    }
    for _ in 0..4000 {
        let len = 3 + rng.below(17);
        let plus = if rng.below(2) == 0 { "+" } else { "" };
        let store = STORES[rng.below(STORES.len())];
        out.push((format!("{plus}{}", rng.digits(len)), Some(store.to_owned())));
    }
    out
}

fn show(r: &Result<Normalized, PhoneError>) -> String {
    match r {
        Ok(n) => format!(
            "{}{}",
            n.e164,
            n.extension
                .as_ref()
                .map(|e| format!(" ext {e}"))
                .unwrap_or_default()
        ),
        Err(e) => format!("{} ({e})", e.code()),
    }
}

#[test]
fn the_compiled_engine_gives_the_reference_verdict_on_every_case() {
    let cases = cases();
    assert!(cases.len() > 40_000, "only {} cases", cases.len());
    let mut differences = Vec::new();
    let mut valid = 0;
    for (raw, region) in &cases {
        let ours = parse(raw, region.as_deref());
        let theirs = reference::parse(raw, region.as_deref());
        valid += usize::from(ours.is_ok());
        let corrected = CORRECTIONS
            .iter()
            .any(|(r, g, _)| r == raw && g.map(str::to_owned) == *region);
        if ours != theirs && !corrected {
            differences.push(format!(
                "{raw:?} in {region:?}: ours {}, reference {}",
                show(&ours),
                show(&theirs)
            ));
        }
    }
    eprintln!(
        "differential: {} cases ({valid} valid), {} differences",
        cases.len(),
        differences.len()
    );
    assert!(
        differences.is_empty(),
        "{} of {} cases differ:\n{}",
        differences.len(),
        cases.len(),
        differences
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The tables in data.rs are what phonegen makes of the reference's metadata today
/// (the CI drift check, from the test's side).
#[test]
fn the_tables_are_compiled_from_the_reference_metadata() {
    let model = phonegen::model::build(reference::db(), tables::version(), "test").unwrap();
    assert_eq!(
        model.sets.len(),
        (0..=255u8).filter_map(tables::common_set).count()
    );
    for (i, set) in model.sets.iter().enumerate() {
        assert_eq!(tables::common_set(i as u8), Some(*set));
    }
    assert_eq!(model.regions.len(), tables::all().len());
    let slots = [Slot::Npfp, Slot::Idd, Slot::LeadingDigits, Slot::General]
        .into_iter()
        .chain((0..10).map(Slot::Type));
    let slots: Vec<Slot> = slots.collect();
    for (r, ours) in model.regions.iter().zip(tables::all()) {
        assert_eq!(ours.iso().unwrap_or("001"), r.id);
        assert_eq!(ours.code, r.code, "{}", r.id);
        assert_eq!(ours.national_prefix(), r.national_prefix, "{}", r.id);
        assert_eq!(ours.transform(), r.transform, "{}", r.id);
        assert_eq!(ours.npfp_groups, r.npfp_groups, "{}", r.id);
        for (slot, want) in slots.iter().zip(r.slots()) {
            let want = want.map(|i| model.patterns[i].program.as_slice());
            assert_eq!(
                ours.pattern(*slot).map(|p| p.program),
                want,
                "{} {slot:?}",
                r.id
            );
        }
        for t in 0..10 {
            assert_eq!(ours.lengths(t), r.lengths[t], "{} type {t}", r.id);
        }
    }
}

/// Every compiled pattern against the regex crate (as the previous engine compiled
/// them), full and anchored-prefix, captures included, on random digit strings and on
/// the metadata's own example numbers.
#[test]
fn every_compiled_pattern_matches_like_the_regex_crate() {
    let model = phonegen::model::build(reference::db(), tables::version(), "test").unwrap();
    let mut examples: Vec<String> = Vec::new();
    for region in tables::all() {
        if let Some(meta) = crate_meta(region) {
            examples.extend(self::examples(meta));
        }
    }
    let mut rng = Rng(42);
    let mut scratch = Scratch::default();
    let mut checked = 0usize;
    let mut max_steps = 0usize;
    for p in &model.patterns {
        let jumps = matcher::Jumps::new(&p.program).unwrap();
        let full = Regex::new(&format!("^(?:{})$", p.source)).unwrap();
        let prefix = Regex::new(&format!("^(?:{})", p.source)).unwrap();
        let mut inputs: Vec<String> = (0..=19)
            .flat_map(|len| (0..12).map(move |_| len))
            .map(|len| rng.digits(len))
            .collect();
        inputs.extend(examples.iter().step_by(7).cloned());
        // Strings the pattern itself accepts, to reach deep into it: prefixes of its
        // matches are what random strings rarely find.
        for _ in 0..40 {
            inputs.push(sample(&p.source, &mut rng));
        }
        for input in &inputs {
            let ours_full =
                matcher::run(&p.program, input.as_bytes(), Anchor::Full, &mut scratch).is_some();
            max_steps = max_steps.max(scratch.steps);
            assert_eq!(
                ours_full,
                full.is_match(input),
                "full {:?} on {input:?}",
                p.source
            );
            let ours = matcher::run(&p.program, input.as_bytes(), Anchor::Prefix, &mut scratch);
            if ours.is_some() {
                assert!(
                    !jumps.excludes(input.as_bytes()),
                    "first digit of {input:?} in {:?}",
                    p.source
                );
            }
            max_steps = max_steps.max(scratch.steps);
            let theirs = prefix.captures(input);
            assert_eq!(
                ours.map(|m| m.end),
                theirs.as_ref().map(|c| c.get(0).unwrap().end()),
                "prefix {:?} on {input:?}",
                p.source
            );
            if let (Some(m), Some(c)) = (ours, theirs) {
                for g in 1..=usize::from(p.groups) {
                    assert_eq!(
                        m.captures.group(g, input),
                        c.get(g).map(|x| x.as_str()),
                        "group {g} of {:?} on {input:?}",
                        p.source
                    );
                }
            }
            checked += 2;
        }
    }
    eprintln!(
        "matcher: {checked} checks on {} patterns, at most {max_steps} steps",
        model.patterns.len()
    );
    assert!(checked > 500_000);
}

/// A string matching most of `source` (a random walk through it), then cut or extended.
fn sample(source: &str, rng: &mut Rng) -> String {
    let re = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .build()
        .parse(source)
        .unwrap();
    let mut out = String::new();
    walk(&re, rng, &mut out);
    match rng.below(4) {
        0 => out.truncate(out.len().saturating_sub(1)),
        1 => out.push(char::from(b'0' + rng.below(10) as u8)),
        _ => {}
    }
    out
}

fn walk(h: &regex_syntax::hir::Hir, rng: &mut Rng, out: &mut String) {
    use regex_syntax::hir::{Class, HirKind};
    match h.kind() {
        HirKind::Literal(l) => out.push_str(std::str::from_utf8(&l.0).unwrap()),
        HirKind::Class(Class::Bytes(c)) => {
            let ranges: Vec<_> = c.iter().collect();
            let r = ranges[rng.below(ranges.len())];
            let span = usize::from(r.end() - r.start()) + 1;
            out.push(char::from(r.start() + rng.below(span) as u8));
        }
        HirKind::Repetition(rep) => {
            let max = rep.max.unwrap_or(rep.min + 3);
            let n = rep.min as usize + rng.below((max - rep.min) as usize + 1);
            for _ in 0..n {
                walk(&rep.sub, rng, out);
            }
        }
        HirKind::Capture(c) => walk(&c.sub, rng, out),
        HirKind::Concat(hs) => hs.iter().for_each(|h| walk(h, rng, out)),
        HirKind::Alternation(hs) => walk(&hs[rng.below(hs.len())], rng, out),
        _ => {}
    }
}

/// Tally of the verdicts (for the curious: `cargo test -p gateway-core differential -- --nocapture`).
#[test]
fn verdicts_are_varied() {
    let mut codes: BTreeMap<&str, usize> = BTreeMap::new();
    for (raw, region) in cases() {
        let code = match parse(&raw, region.as_deref()) {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        *codes.entry(code).or_default() += 1;
    }
    eprintln!("{codes:?}");
    for code in [
        "ok",
        "phone_invalid_for_region",
        "phone_too_short",
        "phone_too_long",
        "phone_invalid_country_code",
    ] {
        assert!(
            codes.get(code).copied().unwrap_or(0) > 100,
            "{code}: {codes:?}"
        );
    }
}
