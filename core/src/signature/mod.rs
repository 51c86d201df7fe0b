//! Webhook signature verification for the providers that call the gateway: Podium, Shopify,
//! Stripe, Chatwoot and Standard Webhooks.
//!
//! Pure: the caller passes the headers, the raw body bytes, the current time and the
//! accepted clock skew, and gets back a [`Verified`] or a [`SignatureError`] with a stable
//! code. There is no clock here because `std::time::SystemTime::now()` traps on
//! `wasm32-unknown-unknown`; the worker passes `Date.now()`.
//!
//! Every scheme checks in the same order, so an error always names the first thing wrong:
//! 1. no usable secret → [`SignatureError::NotConfigured`] (fail closed, never "accept all");
//! 2. required headers present ([`SignatureError::MissingHeader`]) and well-formed
//!    ([`SignatureError::MalformedHeader`]);
//! 3. the timestamp within the tolerance ([`SignatureError::TimestampTooOld`] /
//!    [`SignatureError::TimestampInFuture`]) — checked before the HMAC because it costs
//!    nothing and a forged timestamp fails the HMAC anyway (it is part of the signed string);
//! 4. the HMAC of every secret (rotation) against every candidate signature the header
//!    carries, compared in constant time by `hmac`'s `verify_slice`.

pub mod chatwoot;
pub mod podium;
pub mod shopify;
pub mod standard;
pub mod stripe;

#[cfg(test)]
mod testkit;

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Length of a SHA-256 digest, so of every signature these schemes carry.
pub(crate) const DIGEST_LEN: usize = 32;

/// Most candidate signatures one header may carry (Stripe's `v1=` list, Standard's
/// `v1,` list). Providers send one per active secret, so a handful at most; the cap keeps a
/// hostile header from buying thousands of HMAC comparisons per request on the Workers CPU
/// budget.
pub(crate) const MAX_SIGNATURES: usize = 16;

/// Which provider's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    Podium,
    Shopify,
    Stripe,
    Chatwoot,
    Standard,
}

impl Scheme {
    /// The name used in configuration and logs (`"podium"`, …), the same as serde's.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Podium => "podium",
            Scheme::Shopify => "shopify",
            Scheme::Stripe => "stripe",
            Scheme::Chatwoot => "chatwoot",
            Scheme::Standard => "standard",
        }
    }

    /// Parse the configured secret list: several secrets separated by commas and/or
    /// whitespace, so an operator can add the new secret before the provider switches
    /// and drop the old one after (Shopify signs with the old secret for up to an hour).
    ///
    /// Podium, Shopify, Stripe, Chatwoot: each secret's UTF-8 bytes are the HMAC key
    /// (Stripe's `whsec_…` included: Stripe keys the HMAC with the whole string).
    /// Standard: each must be `whsec_<base64>` and the key is the decoded bytes; one that
    /// isn't is [`SignatureError::BadSecret`] rather than silently skipped, because a
    /// typo would otherwise only show up as every webhook failing.
    /// An empty list (or only separators) is [`SignatureError::NotConfigured`].
    pub fn secrets(self, list: &str) -> Result<Secrets, SignatureError> {
        let mut out = Vec::new();
        for (index, token) in list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .enumerate()
        {
            let key = match self {
                Scheme::Standard => {
                    standard::decode_secret(token).ok_or_else(|| SignatureError::BadSecret {
                        reason: format!(
                            "secret #{index} is not `whsec_` followed by non-empty base64"
                        ),
                    })?
                }
                _ => token.as_bytes().to_vec(),
            };
            out.push(Secret(key));
        }
        if out.is_empty() {
            return Err(SignatureError::NotConfigured);
        }
        Ok(Secrets(out))
    }

    /// Verify one delivery with this scheme (see the scheme modules for the details).
    pub fn verify(
        self,
        secrets: &Secrets,
        headers: &Headers,
        body: &[u8],
        now_ms: i64,
        tolerance: Tolerance,
    ) -> Result<Verified, SignatureError> {
        match self {
            Scheme::Podium => podium::verify(secrets, headers, body, now_ms, tolerance),
            Scheme::Shopify => shopify::verify(secrets, headers, body, now_ms, tolerance),
            Scheme::Stripe => stripe::verify(secrets, headers, body, now_ms, tolerance),
            Scheme::Chatwoot => chatwoot::verify(secrets, headers, body, now_ms, tolerance),
            Scheme::Standard => standard::verify(secrets, headers, body, now_ms, tolerance),
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One HMAC key. Its `Debug` never shows the bytes, so a secret can't leak through a log
/// line or an error that happens to format a config struct.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    fn key(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The secrets configured for one scheme, in configuration order (the order gives
/// [`Verified::secret_index`]). `Debug` prints only how many there are.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(Vec<Secret>);

impl Secrets {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The index of the first secret whose HMAC over the concatenation of `parts` equals
    /// one of `candidates`. Every comparison is constant-time (`verify_slice`), so the
    /// response time says nothing about how many leading bytes of a forgery were right.
    fn find_match(&self, parts: &[&[u8]], candidates: &[[u8; DIGEST_LEN]]) -> Option<usize> {
        self.0.iter().position(|secret| {
            // HMAC accepts keys of any length, so this never fails; a failure would simply
            // be "this secret doesn't match", never a panic.
            let Ok(mut mac) = HmacSha256::new_from_slice(secret.key()) else {
                return false;
            };
            for part in parts {
                mac.update(part);
            }
            candidates
                .iter()
                .any(|candidate| mac.clone().verify_slice(candidate).is_ok())
        })
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} redacted)", self.0.len())
    }
}

/// Request headers, names compared ASCII-case-insensitively.
///
/// A name that occurs more than once is combined as the Fetch API does — values joined
/// with `", "` — and values lose leading and trailing HTTP whitespace, also as Fetch does,
/// so native tests see exactly what the worker sees from workerd's `Headers` object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut headers = Self::new();
        for (name, value) in pairs {
            headers.insert(name.as_ref(), value.as_ref());
        }
        headers
    }

    /// Add a header; a repeated name is appended to the existing value after `", "`.
    pub fn insert(&mut self, name: &str, value: &str) {
        let name = name.to_ascii_lowercase();
        // Fetch's "normalize": strip HTTP tab or space, CR and LF from both ends.
        let value = value.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(value);
            }
            None => self.0.push((name, value.to_owned())),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The header's value, or [`SignatureError::MissingHeader`] naming it.
    fn required(&self, name: &'static str) -> Result<&str, SignatureError> {
        self.get(name)
            .ok_or(SignatureError::MissingHeader { header: name })
    }
}

/// How far the signed time may be from the caller's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerance {
    /// Oldest accepted age (replay window).
    pub past_ms: i64,
    /// Furthest accepted time ahead of our clock (the sender's clock skew).
    pub future_ms: i64,
}

impl Default for Tolerance {
    /// Five minutes each way: Stripe's and Standard Webhooks' default, and what we use for
    /// Podium, which documents none.
    fn default() -> Self {
        Self {
            past_ms: 300_000,
            future_ms: 300_000,
        }
    }
}

/// A delivery whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    pub scheme: Scheme,
    /// The signed (or, for Shopify, the `X-Shopify-Triggered-At`) time in ms, if the scheme
    /// has one.
    pub timestamp_ms: Option<i64>,
    /// The provider's delivery id when the scheme carries one in headers (Standard
    /// `webhook-id`, Shopify `X-Shopify-Webhook-Id` else `X-Shopify-Event-Id`, Chatwoot
    /// `X-Chatwoot-Delivery`): the dedup key across retries.
    pub delivery_id: Option<String>,
    /// Index in [`Secrets`] of the secret that matched, so an operator can see when the
    /// old secret stops being used and can be removed.
    pub secret_index: usize,
}

/// Why a delivery was refused. Messages never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no webhook secret is configured for this provider")]
    NotConfigured,
    #[error("a configured webhook secret can't be used: {reason}")]
    BadSecret { reason: String },
    #[error("the {header} header is missing")]
    MissingHeader { header: &'static str },
    #[error("the {header} header is malformed: {reason}")]
    MalformedHeader {
        header: &'static str,
        reason: &'static str,
    },
    #[error("the signed timestamp is {age_ms} ms old, more than allowed")]
    TimestampTooOld { age_ms: i64 },
    #[error("the signed timestamp is {ahead_ms} ms in the future, more than allowed")]
    TimestampInFuture { ahead_ms: i64 },
    #[error("the signature does not match any configured secret")]
    NoMatch,
}

impl SignatureError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            // A secret that can't be used is a configuration problem, same as none at all:
            // the sender can't fix it, the operator must.
            SignatureError::NotConfigured | SignatureError::BadSecret { .. } => {
                "signature_not_configured"
            }
            SignatureError::MissingHeader { .. } => "signature_header_missing",
            SignatureError::MalformedHeader { .. } => "signature_header_malformed",
            SignatureError::TimestampTooOld { .. } => "signature_timestamp_too_old",
            SignatureError::TimestampInFuture { .. } => "signature_timestamp_in_future",
            SignatureError::NoMatch => "signature_mismatch",
        }
    }

    /// The header involved, for the error's `field`.
    pub fn header(&self) -> Option<&'static str> {
        match self {
            SignatureError::MissingHeader { header }
            | SignatureError::MalformedHeader { header, .. } => Some(header),
            _ => None,
        }
    }
}

// ---- helpers shared by the scheme modules ----

/// Fail closed before looking at anything else.
fn require_secrets(secrets: &Secrets) -> Result<(), SignatureError> {
    if secrets.is_empty() {
        Err(SignatureError::NotConfigured)
    } else {
        Ok(())
    }
}

/// A decimal integer made only of ASCII digits (no sign, no spaces, no `+`), or `None`
/// when it isn't one or doesn't fit an `i64`.
fn parse_digits(s: &str) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0i64, |acc, b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(i64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// A timestamp header in whole seconds, as milliseconds.
fn parse_seconds(header: &'static str, value: &str) -> Result<i64, SignatureError> {
    parse_digits(value)
        .and_then(|s| s.checked_mul(1000))
        .ok_or(SignatureError::MalformedHeader {
            header,
            reason: "not a non-negative integer number of seconds",
        })
}

/// Accept `ts_ms` if `now_ms - ts_ms` lies within `[-future_ms, past_ms]` (the bounds
/// themselves accepted). Computed in `i128` so no combination of inputs can overflow.
fn check_time(ts_ms: i64, now_ms: i64, tolerance: Tolerance) -> Result<(), SignatureError> {
    let age = i128::from(now_ms) - i128::from(ts_ms);
    let clamp = |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
    if age > i128::from(tolerance.past_ms) {
        return Err(SignatureError::TimestampTooOld { age_ms: clamp(age) });
    }
    if -age > i128::from(tolerance.future_ms) {
        return Err(SignatureError::TimestampInFuture {
            ahead_ms: clamp(-age),
        });
    }
    Ok(())
}

/// HMAC-SHA256 of the concatenation of `parts`, for the `sign` helpers.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    let mut out = [0u8; DIGEST_LEN];
    // Never fails: HMAC takes keys of any length.
    if let Ok(mut mac) = HmacSha256::new_from_slice(key) {
        for part in parts {
            mac.update(part);
        }
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

/// Exactly 64 hex digits (either case) as a digest.
fn decode_hex_digest(s: &str) -> Option<[u8; DIGEST_LEN]> {
    let mut out = [0u8; DIGEST_LEN];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Standard-alphabet base64 with the `=` padding required (the canonical form the
/// providers send). Strict about trailing bits, so each digest has exactly one accepted
/// spelling and a one-character change can't decode to the same bytes.
const BASE64_PADDED: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Standard-alphabet base64, padding optional (for Podium, whose encoding is undocumented,
/// and for `whsec_` secrets typed by hand).
const BASE64_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Base64 that decodes to exactly one digest.
fn decode_base64_digest(engine: &GeneralPurpose, s: &str) -> Option<[u8; DIGEST_LEN]> {
    // A 32-byte digest is 44 characters padded; refuse anything longer before decoding so
    // a huge header costs nothing.
    if s.len() > 44 {
        return None;
    }
    engine.decode(s).ok()?.try_into().ok()
}

fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_names_match_serde() {
        for scheme in [
            Scheme::Podium,
            Scheme::Shopify,
            Scheme::Stripe,
            Scheme::Chatwoot,
            Scheme::Standard,
        ] {
            let json = serde_json::to_string(&scheme).unwrap();
            assert_eq!(json, format!("\"{}\"", scheme.as_str()));
            assert_eq!(serde_json::from_str::<Scheme>(&json).unwrap(), scheme);
            assert_eq!(scheme.to_string(), scheme.as_str());
        }
    }

    #[test]
    fn secret_lists_split_on_commas_and_whitespace() {
        let s = Scheme::Podium.secrets(" a, b\n\tc ,,d ").unwrap();
        assert_eq!(s.len(), 4);
        let keys: Vec<&[u8]> = s.0.iter().map(Secret::key).collect();
        assert_eq!(keys, [&b"a"[..], b"b", b"c", b"d"]);
    }

    #[test]
    fn empty_secret_lists_are_not_configured() {
        for scheme in [
            Scheme::Podium,
            Scheme::Shopify,
            Scheme::Stripe,
            Scheme::Chatwoot,
            Scheme::Standard,
        ] {
            for list in ["", " ", ",", " ,\n\t, "] {
                let err = scheme.secrets(list).unwrap_err();
                assert_eq!(err, SignatureError::NotConfigured, "{scheme} {list:?}");
                assert_eq!(err.code(), "signature_not_configured");
            }
            // An empty `Secrets` (Default) also fails closed at verification.
            let err = scheme
                .verify(
                    &Secrets::default(),
                    &Headers::new(),
                    b"",
                    0,
                    Tolerance::default(),
                )
                .unwrap_err();
            assert_eq!(err, SignatureError::NotConfigured, "{scheme}");
        }
    }

    #[test]
    fn bad_standard_secrets_name_the_index_not_the_secret() {
        let good = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        for bad in [
            "sk_live_topsecret",
            "whsec_",
            "whsec_not*base64",
            "whsec_Zm9v!",
        ] {
            let err = Scheme::Standard
                .secrets(&format!("{good} {bad}"))
                .unwrap_err();
            assert_eq!(err.code(), "signature_not_configured");
            let SignatureError::BadSecret { reason } = &err else {
                panic!("{bad}: {err:?}");
            };
            assert!(reason.contains("#1"), "{reason}");
            // What follows the prefix (the bare prefix is named by the message itself).
            let private = bad.strip_prefix("whsec_").unwrap_or(bad);
            if !private.is_empty() {
                assert!(!err.to_string().contains(private), "{err}");
                assert!(!format!("{err:?}").contains(private), "{err:?}");
            }
            assert!(!err.to_string().contains(&good[6..]), "{err}");
        }
        // Unpadded base64 is fine in a secret (people paste them by hand).
        assert_eq!(Scheme::Standard.secrets("whsec_Zm9vYg").unwrap().len(), 1);
        assert_eq!(Scheme::Standard.secrets("whsec_Zm9vYg==").unwrap().len(), 1);
    }

    #[test]
    fn debug_never_shows_secret_bytes() {
        let s = Scheme::Stripe
            .secrets("hunter2-secret, other-secret")
            .unwrap();
        let all = format!("{s:?} {:?} {s:#?}", s.0);
        assert!(!all.contains("hunter2"), "{all}");
        assert!(!all.contains("other-secret"), "{all}");
        assert!(!all.contains("104"), "{all}"); // no byte values either ('h' = 104)
        assert_eq!(format!("{s:?}"), "Secrets(2 redacted)");
        assert_eq!(format!("{:?}", s.0[0]), "Secret(<redacted>)");
    }

    #[test]
    fn headers_are_case_insensitive_and_combine_like_fetch() {
        let mut h = Headers::from_pairs([("X-Thing", " one "), ("x-other", "z")]);
        h.insert("x-THING", "two\t");
        assert_eq!(h.get("x-thing"), Some("one, two"));
        assert_eq!(h.get("X-THING"), Some("one, two"));
        assert_eq!(h.get("X-Other"), Some("z"));
        assert_eq!(h.get("x-missing"), None);
        let owned = Headers::from_pairs(vec![(String::from("A"), String::from("b"))]);
        assert_eq!(owned.get("a"), Some("b"));
    }

    #[test]
    fn error_codes_and_fields() {
        let cases = [
            (
                SignatureError::NotConfigured,
                "signature_not_configured",
                None,
            ),
            (
                SignatureError::BadSecret { reason: "x".into() },
                "signature_not_configured",
                None,
            ),
            (
                SignatureError::MissingHeader { header: "h" },
                "signature_header_missing",
                Some("h"),
            ),
            (
                SignatureError::MalformedHeader {
                    header: "m",
                    reason: "r",
                },
                "signature_header_malformed",
                Some("m"),
            ),
            (
                SignatureError::TimestampTooOld { age_ms: 1 },
                "signature_timestamp_too_old",
                None,
            ),
            (
                SignatureError::TimestampInFuture { ahead_ms: 1 },
                "signature_timestamp_in_future",
                None,
            ),
            (SignatureError::NoMatch, "signature_mismatch", None),
        ];
        for (err, code, header) in cases {
            assert_eq!(err.code(), code, "{err:?}");
            assert_eq!(err.header(), header, "{err:?}");
        }
    }

    #[test]
    fn digits_and_time_checks_never_overflow() {
        assert_eq!(parse_digits("0"), Some(0));
        assert_eq!(parse_digits("9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_digits("9223372036854775808"), None);
        for bad in ["", "-1", "+1", " 1", "1 ", "1.0", "1e3", "١٢"] {
            assert_eq!(parse_digits(bad), None, "{bad:?}");
        }
        assert!(parse_seconds("h", "9223372036854775").is_ok());
        assert!(parse_seconds("h", "9223372036854776").is_err());

        let t = Tolerance::default();
        assert!(matches!(
            check_time(i64::MAX, i64::MIN, t),
            Err(SignatureError::TimestampInFuture { ahead_ms: i64::MAX })
        ));
        assert!(matches!(
            check_time(0, i64::MAX, t),
            Err(SignatureError::TimestampTooOld { age_ms: i64::MAX })
        ));
        let extreme = Tolerance {
            past_ms: i64::MAX,
            future_ms: i64::MIN,
        };
        assert!(check_time(0, i64::MIN, extreme).is_err());
    }

    #[test]
    fn base64_digests_are_strict() {
        let b64 = "K/7dwWc95tQMA5b4hpghvKputvh0fimaWbA6Nujd0No=";
        assert!(decode_base64_digest(&BASE64_PADDED, b64).is_some());
        assert!(decode_base64_digest(&BASE64_PADDED, &b64[..43]).is_none());
        assert!(decode_base64_digest(&BASE64_ANY_PADDING, &b64[..43]).is_some());
        // Non-canonical trailing bits ('o' → 'p' changes only the two unused bits).
        let noncanonical = b64.replace("0No=", "0Np=");
        assert!(decode_base64_digest(&BASE64_ANY_PADDING, &noncanonical).is_none());
        // Right alphabet, wrong length.
        assert!(decode_base64_digest(&BASE64_ANY_PADDING, "Zm9v").is_none());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const ALL: [Scheme; 5] = [
            Scheme::Podium,
            Scheme::Shopify,
            Scheme::Stripe,
            Scheme::Chatwoot,
            Scheme::Standard,
        ];

        /// Every header name any scheme reads, in random case, plus a stranger.
        fn name() -> impl Strategy<Value = String> {
            (
                prop::sample::select(vec![
                    podium::TIMESTAMP_HEADER,
                    podium::SIGNATURE_HEADER,
                    shopify::HMAC_HEADER,
                    shopify::TRIGGERED_AT_HEADER,
                    shopify::WEBHOOK_ID_HEADER,
                    shopify::EVENT_ID_HEADER,
                    stripe::SIGNATURE_HEADER,
                    chatwoot::SIGNATURE_HEADER,
                    chatwoot::TIMESTAMP_HEADER,
                    chatwoot::DELIVERY_HEADER,
                    standard::ID_HEADER,
                    standard::TIMESTAMP_HEADER,
                    standard::SIGNATURE_HEADER,
                    "x-other",
                ]),
                any::<bool>(),
            )
                .prop_map(|(n, upper)| {
                    if upper {
                        n.to_ascii_uppercase()
                    } else {
                        n.to_ascii_lowercase()
                    }
                })
        }

        /// Arbitrary strings, and strings shaped like the real values so parsing gets deep.
        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                "[0-9]{0,22}",
                "(t=[0-9]{0,12}|v1=[0-9a-fA-F]{0,66}|v0=[a-z]*|,|, | |=)*",
                "(v1,[A-Za-z0-9+/=]{0,46}|v1a,[a-z]*| |, |,)*",
                "sha256=[0-9a-fA-F]{0,66}",
                "[A-Za-z0-9+/=_-]{0,70}",
                "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,10})?(Z|[+-][0-9]{2}:[0-9]{2})?",
            ]
        }

        fn tolerance() -> impl Strategy<Value = Tolerance> {
            (any::<i64>(), any::<i64>())
                .prop_map(|(past_ms, future_ms)| Tolerance { past_ms, future_ms })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn verify_never_panics(
                pairs in prop::collection::vec((name(), value()), 0..8),
                body in prop::collection::vec(any::<u8>(), 0..64),
                now_ms in any::<i64>(),
                tolerance in tolerance(),
            ) {
                let headers = Headers::from_pairs(pairs);
                for scheme in ALL {
                    let secrets = match scheme {
                        Scheme::Standard => scheme.secrets("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD whsec_Zm9v"),
                        _ => scheme.secrets("secret-one secret-two"),
                    }
                    .unwrap();
                    let _ = scheme.verify(&secrets, &headers, &body, now_ms, tolerance);
                }
            }

            #[test]
            fn secrets_never_panic(list in any::<String>()) {
                for scheme in ALL {
                    if let Ok(secrets) = scheme.secrets(&list) {
                        prop_assert!(!secrets.is_empty());
                    }
                }
            }
        }
    }
}
