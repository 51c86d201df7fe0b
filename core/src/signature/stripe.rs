//! Stripe's webhook signature: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`,
//! each `v1` an HMAC-SHA256 over `"{t}.{raw body}"` keyed with the endpoint's whole
//! `whsec_…` string.
//!
//! Parsed like Stripe's own libraries: items split on `,` and trimmed, each split at its
//! first `=`; `v0` (test-mode legacy) and unknown keys are ignored. Stripe sends several
//! `v1` while an endpoint has more than one active secret, so any of them may match.

use super::{
    check_time, decode_hex_digest, hmac_sha256, parse_seconds, require_secrets, Headers, Scheme,
    Secrets, SignatureError, Tolerance, Verified, MAX_SIGNATURES,
};

/// `t=…,v1=…` list.
pub const SIGNATURE_HEADER: &str = "Stripe-Signature";

/// Verify one Stripe delivery. `timestamp_ms` is `t` × 1000; the delivery id lives in the
/// body (the event `id`), not in headers.
pub fn verify(
    secrets: &Secrets,
    headers: &Headers,
    body: &[u8],
    now_ms: i64,
    tolerance: Tolerance,
) -> Result<Verified, SignatureError> {
    require_secrets(secrets)?;
    let header = headers.required(SIGNATURE_HEADER)?;
    let malformed = |reason| SignatureError::MalformedHeader {
        header: SIGNATURE_HEADER,
        reason,
    };

    let mut timestamp: Option<&str> = None;
    let mut candidates = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" => {
                // A header sent twice arrives as "t=…,v1=…, t=…,v1=…": fine if both say the
                // same time, ambiguous (so refused) if they don't.
                if timestamp.is_some_and(|t| t != value) {
                    return Err(malformed("more than one distinct t= timestamp"));
                }
                timestamp = Some(value);
            }
            // A v1 that isn't 64 hex digits can't match anything; it's skipped, not an error,
            // so one garbled entry doesn't hide a good one beside it.
            "v1" => {
                if let Some(digest) = decode_hex_digest(value) {
                    if candidates.len() == MAX_SIGNATURES {
                        return Err(malformed("too many v1= signatures"));
                    }
                    candidates.push(digest);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(malformed("no t= timestamp"))?;
    let timestamp_ms = parse_seconds(SIGNATURE_HEADER, timestamp)?;
    if candidates.is_empty() {
        return Err(malformed("no v1= signature of 64 hex digits"));
    }
    check_time(timestamp_ms, now_ms, tolerance)?;

    let secret_index = secrets
        .find_match(&[timestamp.as_bytes(), b".", body], &candidates)
        .ok_or(SignatureError::NoMatch)?;
    Ok(Verified {
        scheme: Scheme::Stripe,
        timestamp_ms: Some(timestamp_ms),
        delivery_id: None,
        secret_index,
    })
}

/// The `Stripe-Signature` value Stripe would send (one `v1`, no `v0`).
pub fn sign(secret: &[u8], timestamp_secs: i64, body: &[u8]) -> String {
    let t = timestamp_secs.to_string();
    let v1 = hex::encode(hmac_sha256(secret, &[t.as_bytes(), b".", body]));
    format!("t={t},v1={v1}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::testkit::{assert_tolerance_bounds, mutate, mutate_header};

    const SECRET: &str = "whsec_stripe_test";
    const T: i64 = 1_700_000_000;
    const T_MS: i64 = T * 1000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
    // printf '%s' '1700000000.<BODY>' | openssl dgst -sha256 -hmac 'whsec_stripe_test' -hex
    const V1: &str = "6f3356ce5701dd6223636ac876d42e3d64a5c998dc193818a0dba9df61942206";
    const OTHER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn run(list: &str, value: &str, body: &[u8], now_ms: i64) -> Result<Verified, SignatureError> {
        let secrets = Scheme::Stripe.secrets(list).unwrap();
        let h = Headers::from_pairs([(SIGNATURE_HEADER, value)]);
        Scheme::Stripe.verify(&secrets, &h, body, now_ms, Tolerance::default())
    }

    fn malformed(value: &str) -> &'static str {
        match run(SECRET, value, BODY, T_MS) {
            Err(SignatureError::MalformedHeader { header, reason }) => {
                assert_eq!(header, SIGNATURE_HEADER);
                reason
            }
            other => panic!("{value:?}: {other:?}"),
        }
    }

    #[test]
    fn known_answer() {
        let value = format!("t={T},v1={V1}");
        assert_eq!(
            run(SECRET, &value, BODY, T_MS).unwrap(),
            Verified {
                scheme: Scheme::Stripe,
                timestamp_ms: Some(T_MS),
                delivery_id: None,
                secret_index: 0,
            }
        );
        assert_eq!(sign(SECRET.as_bytes(), T, BODY), value);
        // Uppercase hex is the same digest.
        assert!(run(
            SECRET,
            &format!("t={T},v1={}", V1.to_ascii_uppercase()),
            BODY,
            T_MS
        )
        .is_ok());
    }

    #[test]
    fn v0_unknown_keys_and_extra_signatures_are_tolerated() {
        for value in [
            format!("t={T}, v0={OTHER}, v1={V1}, foo=bar, novalue"),
            format!("v1={OTHER},v1={V1},t={T}"),
            format!("t={T},v1=not-hex,v1={V1}"),
            format!("t={T},v1={V1},v1={OTHER}"),
            format!(",t={T},,v1={V1},"),
        ] {
            assert!(run(SECRET, &value, BODY, T_MS).is_ok(), "{value}");
        }
    }

    #[test]
    fn tampered_body_wrong_secret_and_v0_only_match() {
        let value = format!("t={T},v1={V1}");
        assert_eq!(
            run(SECRET, &value, b"{}", T_MS),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            run("whsec_other", &value, BODY, T_MS),
            Err(SignatureError::NoMatch)
        );
        // The right digest as v0 is ignored: no v1 left.
        assert_eq!(
            malformed(&format!("t={T},v0={V1}")),
            "no v1= signature of 64 hex digits"
        );
        // The time is signed: a different t in range fails.
        assert_eq!(
            run(SECRET, &format!("t={},v1={V1}", T + 1), BODY, T_MS),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn rotated_secret_reports_its_index() {
        let value = format!("t={T},v1={V1}");
        let v = run(&format!("whsec_new,{SECRET}"), &value, BODY, T_MS).unwrap();
        assert_eq!(v.secret_index, 1);
    }

    #[test]
    fn tolerance_bounds() {
        let secrets = Scheme::Stripe.secrets(SECRET).unwrap();
        let h = Headers::from_pairs([(SIGNATURE_HEADER, format!("t={T},v1={V1}"))]);
        assert_tolerance_bounds(T_MS, |now, tol| verify(&secrets, &h, BODY, now, tol));
    }

    #[test]
    fn missing_and_malformed() {
        let secrets = Scheme::Stripe.secrets(SECRET).unwrap();
        assert_eq!(
            verify(&secrets, &Headers::new(), BODY, T_MS, Tolerance::default()),
            Err(SignatureError::MissingHeader {
                header: SIGNATURE_HEADER
            })
        );
        assert_eq!(malformed(&format!("v1={V1}")), "no t= timestamp");
        assert_eq!(malformed(""), "no t= timestamp");
        assert_eq!(
            malformed(&format!("t={T}")),
            "no v1= signature of 64 hex digits"
        );
        assert_eq!(
            malformed(&format!("t={T},v1=xyz,v1={}", &V1[1..])),
            "no v1= signature of 64 hex digits"
        );
        for t in [
            "",
            "abc",
            "-1",
            "1.5",
            "9223372036854776",
            "99999999999999999999",
        ] {
            assert_eq!(
                malformed(&format!("t={t},v1={V1}")),
                "not a non-negative integer number of seconds",
                "{t:?}"
            );
        }
        let many = format!("t={T}{}", format!(",v1={OTHER}").repeat(MAX_SIGNATURES + 1));
        assert_eq!(malformed(&many), "too many v1= signatures");
    }

    #[test]
    fn header_name_in_any_case() {
        let secrets = Scheme::Stripe.secrets(SECRET).unwrap();
        let h = Headers::from_pairs([("stripe-SIGNATURE", format!("t={T},v1={V1}"))]);
        assert!(verify(&secrets, &h, BODY, T_MS, Tolerance::default()).is_ok());
    }

    #[test]
    fn duplicated_header() {
        let secrets = Scheme::Stripe.secrets(SECRET).unwrap();
        let run_twice = |first: String, second: String| {
            let h = Headers::from_pairs([(SIGNATURE_HEADER, first), (SIGNATURE_HEADER, second)]);
            verify(&secrets, &h, BODY, T_MS, Tolerance::default())
        };
        // The same t twice: the joined list is just more v1 candidates.
        assert!(run_twice(format!("t={T},v1={OTHER}"), format!("t={T},v1={V1}")).is_ok());
        // Two different times can't both be right.
        assert_eq!(
            run_twice(format!("t={T},v1={V1}"), format!("t={},v1={OTHER}", T - 1)),
            Err(SignatureError::MalformedHeader {
                header: SIGNATURE_HEADER,
                reason: "more than one distinct t= timestamp"
            })
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_body_byte_change_is_rejected(
                secret in "whsec_[A-Za-z0-9]{1,40}",
                body in prop::collection::vec(any::<u8>(), 1..200),
                index in any::<usize>(),
                byte in any::<u8>(),
            ) {
                let value = sign(secret.as_bytes(), T, &body);
                prop_assert!(run(&secret, &value, &body, T_MS).is_ok());
                if let Some(changed) = mutate(&body, index, byte) {
                    prop_assert_eq!(run(&secret, &value, &changed, T_MS), Err(SignatureError::NoMatch));
                }
            }

            #[test]
            fn any_signature_byte_change_is_rejected(
                secret in "whsec_[A-Za-z0-9]{1,40}",
                body in prop::collection::vec(any::<u8>(), 0..200),
                t in (T - 300)..=(T + 300),
                index in any::<usize>(),
                byte in 0x20u8..0x7f,
            ) {
                let value = sign(secret.as_bytes(), t, &body);
                prop_assert!(run(&secret, &value, &body, T_MS).is_ok());
                if let Some(changed) = mutate_header(&value, index, byte, true) {
                    prop_assert!(run(&secret, &changed, &body, T_MS).is_err(), "{}", changed);
                }
            }
        }
    }
}
