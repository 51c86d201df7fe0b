//! Test-only: `core::phone` as it was before the compiled engine, on top of the
//! `phonenumber` crate (its metadata database, its parser for the prefix transformation
//! rules, and the `regex` crate for full-match validation), with this product's
//! corrections (`+` means international whatever the region, the IDD, full-match
//! validation, a first digit equal to the trunk prefix kept). The differential tests
//! compare the compiled engine against it on tens of thousands of inputs.
//!
//! Input cleaning (`Cleaned`: digits, `+`, extensions, `tel:`) is shared with the engine:
//! it never depended on the crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::{Once, OnceLock};

use phonenumber::country;
use phonenumber::metadata::{Database, Descriptor, Metadata, DATABASE};

use super::{Cleaned, Normalized, PhoneError, E164, MAX_INPUT_CHARS};

/// Regex cache entries for the metadata patterns. The default (100) thrashes under
/// mixed-region traffic (~200 live patterns).
const REGEX_CACHE_CAPACITY: usize = 1024;

/// The metadata the compiled tables came from: the XML vendored by `phonegen --xml`
/// if there is one, else the crate's bundled database.
pub(super) fn db() -> &'static Database {
    static DB: OnceLock<Option<Database>> = OnceLock::new();
    let vendored = DB.get_or_init(|| {
        let xml = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../phonegen/metadata/PhoneNumberMetadata.xml");
        xml.exists()
            .then(|| Database::load(&xml).expect("the vendored metadata loads"))
    });
    vendored.as_ref().unwrap_or(&DATABASE)
}

/// Normalize `raw` to E.164, taking national numbers to be in `default_region`
/// (ISO 3166 alpha-2, case-insensitive; `None` or `""` when unknown).
#[allow(dead_code)]
pub(super) fn normalize(raw: &str, default_region: Option<&str>) -> Result<E164, PhoneError> {
    parse(raw, default_region).map(|n| n.e164)
}

/// Like [`normalize`], but also returns the extension split off the input.
pub(super) fn parse(raw: &str, default_region: Option<&str>) -> Result<Normalized, PhoneError> {
    if raw.len() > MAX_INPUT_CHARS * 4 || raw.chars().count() > MAX_INPUT_CHARS {
        return Err(PhoneError::InputTooLong);
    }
    let region = match default_region.map(str::trim).filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => Some(Region::lookup(r)?),
    };
    let cleaned = Cleaned::from_raw(raw)?;
    let e164 = match (cleaned.plus, &region) {
        (true, _) => parse_international(&cleaned.digits)?,
        (false, None) => return Err(PhoneError::RegionRequired),
        (false, Some(region)) => match region.strip_idd(&cleaned.digits) {
            Some(international) => parse_international(international)?,
            None => parse_national(&cleaned.digits, region)?,
        },
    };
    if !E164::is_e164_shape(&e164) {
        return Err(PhoneError::NotANumber);
    }
    Ok(Normalized {
        e164: E164(e164),
        extension: cleaned.extension,
    })
}

fn ensure_cache_capacity() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Ok(mut cache) = db().cache().lock() {
            cache.set_capacity(REGEX_CACHE_CAPACITY);
        }
    });
}

/// The caller's default region, checked against the metadata.
struct Region {
    id: country::Id,
    meta: &'static Metadata,
}

impl Region {
    fn lookup(raw: &str) -> Result<Self, PhoneError> {
        let upper = raw.to_ascii_uppercase();
        let unknown = || PhoneError::UnknownRegion(raw.chars().take(16).collect());
        if upper.len() != 2 || !upper.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(unknown());
        }
        let meta = db().by_id(upper.as_str()).ok_or_else(unknown)?;
        let id: country::Id = upper.parse().map_err(|_| unknown())?;
        Ok(Region { id, meta })
    }

    /// If `digits` start with this region's international dialling prefix (IDD) and
    /// what follows could be a country code, return what follows.
    fn strip_idd<'a>(&self, digits: &'a str) -> Option<&'a str> {
        let idd = self.meta.international_prefix()?;
        let end = patterns::prefix_len(idd.as_str(), digits)?;
        let rest = digits.get(end..)?;
        // libphonenumber's rule: a country code never starts with 0, so "0" after an
        // apparent IDD means it was a national number after all.
        (!rest.is_empty() && !rest.starts_with('0')).then_some(rest)
    }
}

/// `+` digits: split the country code, then the national number as typed, then without
/// a national prefix written after the code (`+61 (0)4…`), then the crate's reading.
/// As typed comes first: the crate strips a "national prefix" that is really the first
/// digit of the number (`+7 812 …` St Petersburg, `+7 800 …`, `+370 800 …`).
fn parse_international(digits: &str) -> Result<String, PhoneError> {
    let (code, rest) = split_country_code(digits).ok_or(PhoneError::InvalidCountryCode)?;
    let mut candidates = vec![rest.to_owned()];
    if let Some(stripped) = strip_national_prefix(code, rest) {
        candidates.push(stripped.to_owned());
    }
    pick(code, candidates, None, || {
        ensure_cache_capacity();
        phonenumber::parse_with(db(), None, format!("+{digits}"))
    })
}

/// National digits in the store's region: without the national prefix, as typed, then
/// the crate's reading (which knows the regions' prefix transformation rules and a
/// country code typed without `+`).
fn parse_national(digits: &str, region: &Region) -> Result<String, PhoneError> {
    let code = region.meta.country_code();
    let mut candidates = Vec::with_capacity(3);
    if let Some(stripped) = strip_national_prefix(code, digits) {
        candidates.push(stripped.to_owned());
    }
    candidates.push(digits.to_owned());
    pick(code, candidates, Some(region.meta.id()), || {
        ensure_cache_capacity();
        phonenumber::parse_with(db(), Some(region.id), digits)
    })
}

/// The first candidate national number that is valid under `code` wins; the crate's
/// parse is the last resort. Errors say why the best attempt failed.
fn pick(
    code: u16,
    mut candidates: Vec<String>,
    region: Option<&str>,
    crate_parse: impl FnOnce() -> Result<phonenumber::PhoneNumber, phonenumber::ParseError>,
) -> Result<String, PhoneError> {
    for nsn in &candidates {
        if is_valid_nsn(code, nsn) {
            return Ok(format!("+{code}{nsn}"));
        }
    }
    let parsed = crate_parse();
    if let Ok(number) = &parsed {
        let parsed_code = number.code().value();
        let nsn = number.national().to_string();
        if is_valid_nsn(parsed_code, &nsn) {
            return Ok(format!("+{parsed_code}{nsn}"));
        }
        if parsed_code == code {
            candidates.push(nsn);
        }
    }
    match parsed {
        Err(phonenumber::ParseError::InvalidCountryCode) => Err(PhoneError::InvalidCountryCode),
        _ => Err(classify_invalid(code, &candidates, region)),
    }
}

/// `61412345678` → (61, `412345678`): country codes are prefix-free, 1 to 3 digits.
fn split_country_code(digits: &str) -> Option<(u16, &str)> {
    (1..=3).find_map(|len| {
        let code: u16 = digits.get(..len)?.parse().ok()?;
        let rest = digits.get(len..)?;
        db().region(&code).map(|_| (code, rest))
    })
}

fn strip_national_prefix(code: u16, nsn: &str) -> Option<&str> {
    let metas = db().by_code(&code)?;
    let prefix = metas.first()?.national_prefix()?;
    nsn.strip_prefix(prefix).filter(|rest| !rest.is_empty())
}

/// libphonenumber's `isValidNumber` on a national significant number: pick the region
/// (leading digits, else the first whose types match), then the number must match the
/// general pattern and one number type's pattern *in full*, with a possible length.
/// The crate's own check only anchors patterns at the start, so it accepts numbers
/// whose first digits happen to form a shorter valid number.
fn is_valid_nsn(code: u16, nsn: &str) -> bool {
    if nsn.is_empty() || nsn.len() > 17 || !nsn.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Some(metas) = db().by_code(&code) else {
        return false;
    };
    for meta in metas {
        match meta.leading_digits() {
            Some(leading) if patterns::prefix_len(leading.as_str(), nsn).is_some() => {
                return has_valid_type(meta, nsn);
            }
            Some(_) => {}
            None if has_valid_type(meta, nsn) => return true,
            None => {}
        }
    }
    false
}

fn has_valid_type(meta: &Metadata, nsn: &str) -> bool {
    let d = meta.descriptors();
    if !matches_descriptor(d.general(), nsn) {
        return false;
    }
    [
        d.premium_rate(),
        d.toll_free(),
        d.shared_cost(),
        d.voip(),
        d.personal_number(),
        d.pager(),
        d.uan(),
        d.voicemail(),
        d.fixed_line(),
        d.mobile(),
    ]
    .into_iter()
    .flatten()
    .any(|desc| matches_descriptor(desc, nsn))
}

fn matches_descriptor(desc: &Descriptor, nsn: &str) -> bool {
    let lengths = desc.possible_length();
    let length_ok =
        lengths.is_empty() || u16::try_from(nsn.len()).is_ok_and(|len| lengths.contains(&len));
    length_ok && patterns::full_match(desc.national_number().as_str(), nsn)
}

/// Why no candidate is valid: shorter or longer than any mobile or fixed-line number of
/// the regions sharing the country code, else "invalid for region".
fn classify_invalid(code: u16, candidates: &[String], region: Option<&str>) -> PhoneError {
    let Some(metas) = db().by_code(&code) else {
        return PhoneError::InvalidCountryCode;
    };
    // Judge length against what customers type into a chat box, mobile and fixed-line
    // numbers, not the general range (which includes 5-digit short codes in AU, say).
    let (min, max) = metas
        .iter()
        .flat_map(|m| {
            let d = m.descriptors();
            let typed: Vec<u16> = [d.mobile(), d.fixed_line()]
                .into_iter()
                .flatten()
                .flat_map(|desc| desc.possible_length().iter().copied())
                .collect();
            if typed.is_empty() {
                d.general().possible_length().to_vec()
            } else {
                typed
            }
        })
        .fold((usize::MAX, 0usize), |(lo, hi), l| {
            (lo.min(usize::from(l)), hi.max(usize::from(l)))
        });
    let lengths = || candidates.iter().map(String::len);
    if min != usize::MAX && lengths().all(|l| l < min) {
        return PhoneError::TooShort;
    }
    if max != 0 && lengths().all(|l| l > max) {
        return PhoneError::TooLong;
    }
    let region = region
        .map(str::to_owned)
        .or_else(|| metas.first().map(|m| m.id().to_owned()))
        .filter(|r| r != "001")
        .unwrap_or_else(|| format!("+{code}"));
    PhoneError::InvalidForRegion { region }
}

/// The metadata's patterns, compiled once more with anchors. The crate only offers
/// unanchored matching through a locked LRU cache; these are compiled on first use per
/// pattern and kept (a few hundred patterns at most).
mod patterns {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    use regex::{Regex, RegexBuilder};

    /// Keyed by the address and length of the pattern text inside the static metadata
    /// database, which never moves; `true` for a full match, `false` for a prefix.
    type Key = (usize, usize, bool);

    /// Run `f` on the compiled pattern, inside the lock: cloning a `Regex` would give the
    /// clone a fresh scratch-space pool, costing an allocation on every search.
    fn with_compiled<R>(source: &str, full: bool, f: impl FnOnce(&Regex) -> R) -> Option<R> {
        static CACHE: OnceLock<Mutex<HashMap<Key, Option<Regex>>>> = OnceLock::new();
        let key = (source.as_ptr() as usize, source.len(), full);
        let mut cache = CACHE.get_or_init(Default::default).lock().ok()?;
        let regex = cache.entry(key).or_insert_with(|| {
            let anchored = if full {
                format!("^(?:{source})$")
            } else {
                format!("^(?:{source})")
            };
            RegexBuilder::new(&anchored)
                .unicode(false)
                .ignore_whitespace(true)
                .build()
                .ok()
        });
        regex.as_ref().map(f)
    }

    /// Whether `source` matches the whole of `text`.
    pub fn full_match(source: &str, text: &str) -> bool {
        with_compiled(source, true, |re| re.is_match(text)).unwrap_or(false)
    }

    /// The length of the longest match of `source` at the start of `text`.
    pub fn prefix_len(source: &str, text: &str) -> Option<usize> {
        with_compiled(source, false, |re| re.find(text).map(|m| m.end())).flatten()
    }
}
