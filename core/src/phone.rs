//! E.164 phone normalization (F1): one function the browser and the edge both call.
//!
//! Built on the `phonenumber` crate (Google's libphonenumber metadata), with the
//! corrections this product needs in front of it:
//! - input is cleaned first: `tel:` URIs, every kind of space and dash, parentheses,
//!   dots, and non-ASCII decimal digits (Arabic-Indic, Persian, fullwidth, …) which the
//!   crate would otherwise call "not a number";
//! - a number written with `+` (or with the default region's IDD prefix, e.g. `0011`
//!   in AU, `011` in US) is parsed as international *without* a default region, because
//!   the crate strips the region's national prefix even from `+` numbers
//!   (`+49 1512 3452875` with region US would come out as `+495123452875`);
//! - the default region is the caller's (the store's country), never a constant; with
//!   no region and no `+`, normalization fails closed with [`PhoneError::RegionRequired`];
//! - an extension (`x123`, `ext. 123`, `#123`, `;ext=123`) is split off and returned
//!   beside the E.164 number, never folded into it: E.164 has no extensions and SMS cannot
//!   dial one.
//! - the crate's regex cache is enlarged once, because mixed-region traffic thrashes its
//!   default of 100 entries.

use std::fmt;
use std::sync::Once;

use phonenumber::country;
use phonenumber::metadata::{Descriptor, Metadata, DATABASE};

/// Inputs longer than this (in characters) are refused before any parsing.
pub const MAX_INPUT_CHARS: usize = 64;

/// Longest extension accepted (libphonenumber's own limit for explicit markers is 20;
/// real PBX extensions are at most 7).
pub const MAX_EXTENSION_DIGITS: usize = 7;

/// Regex cache entries for the metadata patterns. The default (100) thrashes under
/// mixed-region traffic (~200 live patterns); 1,024 covers every region's hot patterns
/// with room to spare and costs about a megabyte once warm.
const REGEX_CACHE_CAPACITY: usize = 1024;

/// Why a phone number was refused. Every variant has a stable [`PhoneError::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("enter a phone number")]
    Empty,
    #[error("that is longer than {MAX_INPUT_CHARS} characters, too long to be a phone number")]
    InputTooLong,
    #[error("that is not a phone number")]
    NotANumber,
    #[error("that country calling code does not exist")]
    InvalidCountryCode,
    #[error("that number is too short")]
    TooShort,
    #[error("that number is too long")]
    TooLong,
    #[error("that is not a valid number for {region}")]
    InvalidForRegion { region: String },
    #[error("start the number with + and the country code: the store's country is not known")]
    RegionRequired,
    #[error("{0:?} is not a known ISO 3166 region code")]
    UnknownRegion(String),
}

impl PhoneError {
    /// Stable machine-readable code (part of the public API: never rename).
    pub fn code(&self) -> &'static str {
        match self {
            PhoneError::Empty => "phone_empty",
            PhoneError::InputTooLong => "phone_input_too_long",
            PhoneError::NotANumber => "phone_not_a_number",
            PhoneError::InvalidCountryCode => "phone_invalid_country_code",
            PhoneError::TooShort => "phone_too_short",
            PhoneError::TooLong => "phone_too_long",
            PhoneError::InvalidForRegion { .. } => "phone_invalid_for_region",
            PhoneError::RegionRequired => "phone_region_required",
            PhoneError::UnknownRegion(_) => "phone_unknown_region",
        }
    }
}

/// A phone number in E.164 form (`+` then 2 to 15 digits, no leading zero).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct E164(String);

impl E164 {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with its middle hidden, for logs: `+61412345678` → `+6141****678`.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }

    /// Whether `s` has the E.164 shape `^\+[1-9]\d{1,14}$`.
    pub fn is_e164_shape(s: &str) -> bool {
        let Some(digits) = s.strip_prefix('+') else {
            return false;
        };
        (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hide the middle of a phone number for logs: keep 5 characters at the front and 3 at
/// the back (`+61412345678` → `+6141****678`); short strings are hidden entirely.
pub fn mask(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 9 {
        return "*".repeat(chars.len());
    }
    let head: String = chars.iter().take(5).collect();
    let tail: String = chars.iter().skip(chars.len() - 3).collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 8))
}

/// A normalized number and the extension that was typed after it, if any.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Normalized {
    pub e164: E164,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
}

/// Normalize `raw` to E.164, taking national numbers to be in `default_region`
/// (ISO 3166 alpha-2, case-insensitive; `None` or `""` when unknown).
pub fn normalize(raw: &str, default_region: Option<&str>) -> Result<E164, PhoneError> {
    parse(raw, default_region).map(|n| n.e164)
}

/// Like [`normalize`], but also returns the extension split off the input.
pub fn parse(raw: &str, default_region: Option<&str>) -> Result<Normalized, PhoneError> {
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
    debug_assert!(E164::is_e164_shape(&e164), "{e164}");
    if !E164::is_e164_shape(&e164) {
        return Err(PhoneError::NotANumber);
    }
    Ok(Normalized {
        e164: E164(e164),
        extension: cleaned.extension,
    })
}

/// The country calling code of an E.164 number (`+44…` → 44).
pub fn calling_code(e164: &E164) -> Option<u16> {
    let digits = e164.as_str().strip_prefix('+')?;
    split_country_code(digits).map(|(code, _)| code)
}

/// The region (ISO 3166 alpha-2) a valid E.164 number belongs to, as libphonenumber's
/// `getRegionCodeForNumber` decides it: the region sharing the country code whose
/// leading digits or number patterns match (`+1 876 …` is JM, not US). `None` for a
/// number that is not valid, or for non-geographic codes (`+800`).
pub fn region_of(e164: &E164) -> Option<&'static str> {
    let digits = e164.as_str().strip_prefix('+')?;
    let (code, nsn) = split_country_code(digits)?;
    let metas = DATABASE.by_code(&code)?;
    // libphonenumber's order: the code's main country first, then the others.
    let main_first = metas
        .iter()
        .filter(|m| m.is_main_country_for_code())
        .chain(metas.iter().filter(|m| !m.is_main_country_for_code()));
    let meta = main_first
        .into_iter()
        .find(|meta| match meta.leading_digits() {
            Some(leading) => {
                patterns::prefix_len(leading.as_str(), nsn).is_some() && has_valid_type(meta, nsn)
            }
            None => has_valid_type(meta, nsn),
        })?;
    let id = meta.id();
    (id != "001").then(|| {
        // The crate's region ids are static strings inside its static database.
        country_str(id)
    })?
}

/// The region code as a `'static` string (ids come from the static database).
fn country_str(id: &str) -> Option<&'static str> {
    DATABASE.by_id(id).map(|m| m.id())
}

/// Build the metadata database and its regexes now rather than on the first real call
/// (~200 ms in a browser): the widget calls this when the page is idle.
pub fn warm_up() {
    let _ = normalize("+61412345678", None);
    let _ = normalize("(415) 555-1234", Some("US"));
}

fn ensure_cache_capacity() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Ok(mut cache) = DATABASE.cache().lock() {
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
        let meta = DATABASE.by_id(upper.as_str()).ok_or_else(unknown)?;
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
        phonenumber::parse(None, format!("+{digits}"))
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
        phonenumber::parse(Some(region.id), digits)
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
        DATABASE.region(&code).map(|_| (code, rest))
    })
}

fn strip_national_prefix(code: u16, nsn: &str) -> Option<&str> {
    let metas = DATABASE.by_code(&code)?;
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
    let Some(metas) = DATABASE.by_code(&code) else {
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
    let Some(metas) = DATABASE.by_code(&code) else {
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

/// The input reduced to what matters: a leading `+`, ASCII digits, an extension.
#[derive(Debug, PartialEq, Eq)]
struct Cleaned {
    plus: bool,
    digits: String,
    extension: Option<String>,
}

/// More digits than any IDD prefix (4) plus the longest E.164 number (15) can hold.
const MAX_DIGITS: usize = 19;

impl Cleaned {
    fn from_raw(raw: &str) -> Result<Self, PhoneError> {
        let text: String = raw.chars().map(fold_char).collect();
        let text = text.trim();
        if text.is_empty() {
            return Err(PhoneError::Empty);
        }
        let (text, context) = strip_tel_uri(text);
        let (number_part, extension) = split_extension(text)?;

        let mut plus = false;
        let mut digits = String::with_capacity(number_part.len());
        for c in number_part.chars() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if !plus && digits.is_empty() => plus = true,
                c if is_separator(c) => {}
                _ => return Err(PhoneError::NotANumber),
            }
        }
        if !plus {
            if let Some(context) = context {
                plus = true;
                digits.insert_str(0, &context);
            }
        }
        match digits.len() {
            0 => Err(PhoneError::NotANumber),
            1..=2 => Err(PhoneError::TooShort),
            n if n > MAX_DIGITS => Err(PhoneError::TooLong),
            _ => Ok(Cleaned {
                plus,
                digits,
                extension,
            }),
        }
    }
}

/// Map any Unicode decimal digit to ASCII, fullwidth `＋` to `+`, and letters to
/// lowercase (extension markers are matched case-insensitively).
fn fold_char(c: char) -> char {
    // Zero code points of the decimal-digit blocks people type phone numbers in.
    const ZEROS: [u32; 22] = [
        0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6,
        0x0D66, 0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x17E0, 0x1810, 0x1946, 0xA9D0, 0xFF10,
    ];
    let cp = c as u32;
    for zero in ZEROS {
        if (zero..zero + 10).contains(&cp) {
            return char::from_digit(cp - zero, 10).unwrap_or(c);
        }
    }
    match c {
        '＋' => '+',
        '（' => '(',
        '）' => ')',
        '－' => '-',
        '．' => '.',
        c if c.is_ascii_uppercase() => c.to_ascii_lowercase(),
        c => c,
    }
}

fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '.' | '(' | ')' | '[' | ']' | '/' | '~' | '\u{00AD}' | '\u{2010}'
                ..='\u{2015}' | '\u{2212}' | '\u{30FC}' | '\u{200B}' | '\u{2060}' | '\u{FEFF}'
        )
}

/// `tel:+61-412-345-678;ext=9` → (`+61-412-345-678;ext=9`, None);
/// `tel:0412345678;phone-context=+61` → (`0412345678`, Some("61")).
/// Parameters other than `ext` and a global `phone-context` are dropped.
fn strip_tel_uri(text: &str) -> (&str, Option<String>) {
    let Some(rest) = text.strip_prefix("tel:") else {
        return (text, None);
    };
    let context = rest.split(';').skip(1).find_map(|param| {
        let value = param.strip_prefix("phone-context=")?.strip_prefix('+')?;
        let digits: String = value.chars().filter(char::is_ascii_digit).collect();
        (!digits.is_empty()).then_some(digits)
    });
    (rest.trim(), context)
}

/// Split a trailing extension off. Markers, in the order tried: `;ext=`, `extension`,
/// `ext.`, `ext`, `x`, `#`. Anything after a marker other than 1–7 digits makes the
/// whole input "not a number" (we never guess).
fn split_extension(text: &str) -> Result<(&str, Option<String>), PhoneError> {
    // A `tel:` URI's own parameters (other than ext) end the number part.
    let (text, ext_param) = match text.find(';') {
        None => (text, None),
        Some(i) => {
            let (number, params) = text.split_at(i);
            let ext = params
                .split(';')
                .find_map(|p| p.strip_prefix("ext=").map(str::to_owned));
            (number, ext)
        }
    };
    let marker_split = ["extension", "ext.", "ext", "x", "#"]
        .iter()
        .find_map(|m| text.rfind(m).map(|i| (i, m.len())));
    let (number, raw_ext) = match (ext_param, marker_split) {
        (Some(ext), None) => (text, Some(ext)),
        (Some(_), Some(_)) => return Err(PhoneError::NotANumber),
        (None, Some((i, len))) => (
            text.get(..i).unwrap_or_default(),
            text.get(i + len..).map(str::to_owned),
        ),
        (None, None) => (text, None),
    };
    let extension = match raw_ext {
        None => None,
        Some(raw) => {
            let raw = raw.trim_start_matches(|c: char| c == ':' || c == '.' || is_separator(c));
            let raw = raw.trim_end();
            let ok = !raw.is_empty()
                && raw.len() <= MAX_EXTENSION_DIGITS
                && raw.bytes().all(|b| b.is_ascii_digit());
            if !ok {
                return Err(PhoneError::NotANumber);
            }
            Some(raw.to_owned())
        }
    };
    Ok((number, extension))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str, region: Option<&str>) -> String {
        match normalize(raw, region) {
            Ok(e) => e.to_string(),
            Err(e) => panic!("{raw:?} in {region:?}: {e:?}"),
        }
    }

    fn err(raw: &str, region: Option<&str>) -> PhoneError {
        match normalize(raw, region) {
            Ok(e) => panic!("{raw:?} in {region:?} unexpectedly gave {e}"),
            Err(e) => e,
        }
    }

    #[test]
    fn local_numbers_take_the_store_region() {
        let cases = [
            ("0412 345 678", "AU", "+61412345678"),
            ("(02) 9374 4000", "AU", "+61293744000"),
            ("(415) 555-1234", "US", "+14155551234"),
            ("415.555.1234", "US", "+14155551234"),
            ("1 415 555 1234", "US", "+14155551234"),
            ("07911 123456", "GB", "+447911123456"),
            ("021 123 4567", "NZ", "+64211234567"),
            ("030 123456", "DE", "+4930123456"),
            ("06 1234 5678", "IT", "+390612345678"),
            ("(416) 555-0123", "CA", "+14165550123"),
        ];
        for (raw, region, want) in cases {
            assert_eq!(ok(raw, Some(region)), want, "{raw} in {region}");
        }
    }

    #[test]
    fn region_is_case_insensitive_and_blank_means_unknown() {
        assert_eq!(ok("0412 345 678", Some("au")), "+61412345678");
        assert_eq!(err("0412 345 678", Some("")), PhoneError::RegionRequired);
        assert_eq!(err("0412 345 678", Some("  ")), PhoneError::RegionRequired);
    }

    #[test]
    fn plus_numbers_ignore_the_default_region() {
        // The crate alone gets this one wrong with region US (strips the US "1").
        assert_eq!(ok("+49 1512 3452875", Some("US")), "+4915123452875");
        assert_eq!(ok("+49 1512 3452875", None), "+4915123452875");
        assert_eq!(ok("+61 412 345 678", Some("US")), "+61412345678");
        assert_eq!(ok("+1 (415) 555-1234", Some("AU")), "+14155551234");
        // A national prefix written after the country code is dropped, as libphonenumber does.
        assert_eq!(ok("+61 (0)412 345 678", None), "+61412345678");
    }

    #[test]
    fn idd_prefixes_typed_on_a_local_page() {
        assert_eq!(ok("0011 49 1512 3452875", Some("AU")), "+4915123452875");
        assert_eq!(ok("011 61 412 345 678", Some("US")), "+61412345678");
        assert_eq!(ok("011 61 412 345 678", Some("CA")), "+61412345678");
        assert_eq!(ok("00 61 412 345 678", Some("GB")), "+61412345678");
        assert_eq!(ok("00 1 415 555 1234", Some("NZ")), "+14155551234");
        assert_eq!(ok("0049 1512 3452875", Some("FR")), "+4915123452875");
    }

    #[test]
    fn separators_and_unicode_digits() {
        assert_eq!(ok("0412\u{a0}345\u{a0}678", Some("AU")), "+61412345678");
        assert_eq!(ok("0412‑345‑678", Some("AU")), "+61412345678");
        assert_eq!(ok("tel:+61-412-345-678", None), "+61412345678");
        assert_eq!(ok("TEL:+61412345678", None), "+61412345678");
        assert_eq!(ok("tel:0412345678;phone-context=+61", None), "+61412345678");
        // Arabic-Indic, Persian (extended Arabic-Indic) and fullwidth digits.
        assert_eq!(ok("+٦١٤١٢٣٤٥٦٧٨", None), "+61412345678");
        assert_eq!(ok("+۶۱۴۱۲۳۴۵۶۷۸", None), "+61412345678");
        assert_eq!(ok("＋６１ ４１２ ３４５ ６７８", None), "+61412345678");
        assert_eq!(ok("０４１２３４５６７８", Some("AU")), "+61412345678");
    }

    #[test]
    fn extensions_are_split_off() {
        for raw in [
            "(415) 555-1234 x 55",
            "(415) 555-1234 ext. 55",
            "(415) 555-1234 EXT 55",
            "(415) 555-1234 extension 55",
            "(415) 555-1234#55",
            "tel:+1-415-555-1234;ext=55",
        ] {
            let n = parse(raw, Some("US")).unwrap();
            assert_eq!(n.e164.as_str(), "+14155551234", "{raw}");
            assert_eq!(n.extension.as_deref(), Some("55"), "{raw}");
        }
        assert_eq!(err("(415) 555-1234 x", Some("US")), PhoneError::NotANumber);
        assert_eq!(
            err("(415) 555-1234 x12345678", Some("US")),
            PhoneError::NotANumber
        );
        assert_eq!(parse("(415) 555-1234", Some("US")).unwrap().extension, None);
    }

    /// The crate strips a "national prefix" that is really the number's first digit.
    #[test]
    fn a_first_digit_equal_to_the_trunk_prefix_is_kept() {
        assert_eq!(ok("+7 812 123-45-67", None), "+78121234567");
        assert_eq!(ok("+7 812 123-45-67", Some("RU")), "+78121234567");
        assert_eq!(ok("+7 (812) 555-35-35", Some("US")), "+78125553535");
        assert_eq!(ok("8 (812) 555-35-35", Some("RU")), "+78125553535");
        assert_eq!(ok("8 800 555-35-35", Some("RU")), "+78005553535");
        assert_eq!(ok("0011 7 812 123 4567", Some("AU")), "+78121234567");
        assert_eq!(ok("+370 800 12345", None), "+37080012345");
        assert_eq!(ok("+7 495 123-45-67", None), "+74951234567");
    }

    /// The crate accepts a number when a *prefix* of it matches a number type; full
    /// matches only (as libphonenumber).
    #[test]
    fn number_patterns_must_match_in_full() {
        for (raw, region) in [
            ("021 234 58 01", "PH"),
            ("042123267", "KR"),
            ("+86 23242140206", "CN"),
            ("0981973950", "IE"),
            ("+20 388699657", "EG"),
            ("0783599833", "MY"),
            ("+86 10 1234 5678 9", "CN"),
        ] {
            let e = err(raw, Some(region));
            assert!(
                matches!(
                    e,
                    PhoneError::InvalidForRegion { .. }
                        | PhoneError::TooLong
                        | PhoneError::TooShort
                ),
                "{raw} in {region}: {e:?}"
            );
        }
        // Their valid neighbours still pass.
        assert_eq!(ok("+86 10 1234 5678", None), "+861012345678");
        assert_eq!(ok("+20 2 2345 6789", None), "+20223456789");
    }

    #[test]
    fn every_rejection_has_its_reason() {
        assert_eq!(err("", Some("AU")), PhoneError::Empty);
        assert_eq!(err("   ", Some("AU")), PhoneError::Empty);
        assert_eq!(err("abc", Some("AU")), PhoneError::NotANumber);
        assert_eq!(err("call me", Some("AU")), PhoneError::NotANumber);
        assert_eq!(err("+", None), PhoneError::NotANumber);
        assert_eq!(err("12", Some("AU")), PhoneError::TooShort);
        assert_eq!(err("0412 345", Some("AU")), PhoneError::TooShort);
        assert_eq!(err("0412 345 678 901 234", Some("AU")), PhoneError::TooLong);
        assert_eq!(err("+999 1234 5678", None), PhoneError::InvalidCountryCode);
        assert_eq!(err("0412 345 678", None), PhoneError::RegionRequired);
        assert_eq!(
            err("0412 345 678", Some("ZZ")),
            PhoneError::UnknownRegion("ZZ".into())
        );
        assert_eq!(
            err("0412 345 678", Some("australia")),
            PhoneError::UnknownRegion("australia".into())
        );
        assert_eq!(
            err("(415) 155-1234", Some("US")),
            PhoneError::InvalidForRegion {
                region: "US".into()
            }
        );
        let long = "1".repeat(MAX_INPUT_CHARS + 1);
        assert_eq!(err(&long, Some("AU")), PhoneError::InputTooLong);
        assert_eq!(err("+61 412 345 678 +", None), PhoneError::NotANumber);
    }

    #[test]
    fn codes_are_stable_and_distinct() {
        let all = [
            PhoneError::Empty,
            PhoneError::InputTooLong,
            PhoneError::NotANumber,
            PhoneError::InvalidCountryCode,
            PhoneError::TooShort,
            PhoneError::TooLong,
            PhoneError::InvalidForRegion {
                region: "AU".into(),
            },
            PhoneError::RegionRequired,
            PhoneError::UnknownRegion("ZZ".into()),
        ];
        let mut codes: Vec<_> = all.iter().map(PhoneError::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert!(codes.iter().all(|c| c.starts_with("phone_")));
    }

    #[test]
    fn regions_of_numbers_sharing_a_country_code() {
        let region = |raw: &str| region_of(&normalize(raw, None).unwrap());
        assert_eq!(region("+14155551234"), Some("US"));
        assert_eq!(region("+14165550123"), Some("CA"));
        assert_eq!(region("+18765550123"), Some("JM"));
        assert_eq!(region("+61412345678"), Some("AU"));
        assert_eq!(region("+447400123456"), Some("GB"));
        // 07911 1… is a Guernsey mobile range inside +44, as libphonenumber says.
        assert_eq!(region("+447911123456"), Some("GG"));
        assert_eq!(region("+78121234567"), Some("RU"));
        assert_eq!(region("+4915123452875"), Some("DE"));
        let code = |raw: &str| calling_code(&normalize(raw, None).unwrap());
        assert_eq!(code("+447911123456"), Some(44));
        assert_eq!(code("+18765550123"), Some(1));
    }

    #[test]
    fn masking_hides_the_middle() {
        let e = normalize("+61412345678", None).unwrap();
        assert_eq!(e.masked(), "+6141****678");
        assert_eq!(E164("+12".into()).masked(), "***");
        assert_eq!(mask("+14155551234"), "+1415****234");
    }

    #[test]
    fn e164_shape() {
        assert!(E164::is_e164_shape("+61412345678"));
        assert!(!E164::is_e164_shape("61412345678"));
        assert!(!E164::is_e164_shape("+0412345678"));
        assert!(!E164::is_e164_shape("+1234567890123456"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn region() -> impl Strategy<Value = Option<&'static str>> {
            prop::sample::select(vec![
                None,
                Some("AU"),
                Some("US"),
                Some("GB"),
                Some("NZ"),
                Some("DE"),
                Some("IT"),
                Some("IN"),
                Some("BR"),
                Some("JP"),
            ])
        }

        /// Strings that look like phone numbers often enough to reach the parser.
        fn phoneish() -> impl Strategy<Value = String> {
            prop::string::string_regex(r"[+]?[0-9 ()\-.]{0,24}(x[0-9]{0,9})?").unwrap()
        }

        fn check(raw: &str, region: Option<&str>) {
            if let Ok(e) = normalize(raw, region) {
                assert!(E164::is_e164_shape(e.as_str()), "{raw:?} -> {e}");
                assert_eq!(normalize(e.as_str(), region).as_ref(), Ok(&e), "{raw:?}");
                assert_eq!(normalize(e.as_str(), None).as_ref(), Ok(&e), "{raw:?}");
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn never_panics_on_any_string(raw in any::<String>(), region in region()) {
                check(&raw, region);
            }

            #[test]
            fn ok_results_are_e164_and_stable(raw in phoneish(), region in region()) {
                check(&raw, region);
            }

            #[test]
            fn arbitrary_regions_never_panic(raw in phoneish(), region in "[A-Za-z0-9]{0,3}") {
                let _ = normalize(&raw, Some(&region));
            }
        }
    }
}
