//! Podium's webhook signature: `podium-signature` = HMAC-SHA256(secret,
//! `"{podium-timestamp}.{raw body}"`), the timestamp in milliseconds.
//!
//! Podium doesn't document the signature's encoding, so both lowercase/uppercase hex and
//! standard base64 (padded or not) are accepted: exactly 64 hex digits is hex, anything
//! else must be base64 of a 32-byte digest. The two can't be confused — 64 base64
//! characters would be 48 bytes. No tolerance is documented either; the caller passes one
//! (five minutes by default).

use super::{
    check_time, decode_base64_digest, decode_hex_digest, hmac_sha256, parse_digits,
    require_secrets, Headers, Scheme, Secrets, SignatureError, Tolerance, Verified,
    BASE64_ANY_PADDING, DIGEST_LEN,
};

/// The signed time, in milliseconds since the epoch.
pub const TIMESTAMP_HEADER: &str = "podium-timestamp";
/// The HMAC, hex or base64.
pub const SIGNATURE_HEADER: &str = "podium-signature";

/// Verify one Podium delivery. `timestamp_ms` is `podium-timestamp`; Podium sends no
/// delivery id in headers.
pub fn verify(
    secrets: &Secrets,
    headers: &Headers,
    body: &[u8],
    now_ms: i64,
    tolerance: Tolerance,
) -> Result<Verified, SignatureError> {
    require_secrets(secrets)?;
    let timestamp = headers.required(TIMESTAMP_HEADER)?;
    let signature = headers.required(SIGNATURE_HEADER)?;

    let timestamp_ms = parse_digits(timestamp).ok_or(SignatureError::MalformedHeader {
        header: TIMESTAMP_HEADER,
        reason: "not a non-negative integer number of milliseconds",
    })?;
    let candidate = decode_signature(signature).ok_or(SignatureError::MalformedHeader {
        header: SIGNATURE_HEADER,
        reason: "neither 64 hex digits nor base64 of a SHA-256 digest",
    })?;
    check_time(timestamp_ms, now_ms, tolerance)?;

    // The signed string uses the header text as sent, not the parsed number.
    let secret_index = secrets
        .find_match(&[timestamp.as_bytes(), b".", body], &[candidate])
        .ok_or(SignatureError::NoMatch)?;
    Ok(Verified {
        scheme: Scheme::Podium,
        timestamp_ms: Some(timestamp_ms),
        delivery_id: None,
        secret_index,
    })
}

/// The `podium-signature` value Podium would send for this body (lowercase hex; the
/// verifier accepts base64 as well).
pub fn sign(secret: &[u8], timestamp_ms: i64, body: &[u8]) -> String {
    let timestamp = timestamp_ms.to_string();
    hex::encode(hmac_sha256(secret, &[timestamp.as_bytes(), b".", body]))
}

fn decode_signature(value: &str) -> Option<[u8; DIGEST_LEN]> {
    if value.len() == 2 * DIGEST_LEN && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        decode_hex_digest(value)
    } else {
        decode_base64_digest(&BASE64_ANY_PADDING, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::testkit::{assert_tolerance_bounds, mutate, mutate_header};

    const SECRET: &str = "podium_test_secret";
    const TS: &str = "1620771659663";
    const TS_MS: i64 = 1_620_771_659_663;
    const BODY: &[u8] = br#"{"data":{"uid":"m1"},"metadata":{"event_type":"message.received","version":"2021.04.01"}}"#;
    // printf '%s' '1620771659663.<BODY>' | openssl dgst -sha256 -hmac 'podium_test_secret' -hex
    const SIG_HEX: &str = "2bfeddc1673de6d40c0396f8869821bcaa6eb6f8747e299a59b03a36e8ddd0da";
    // … | openssl dgst -sha256 -hmac 'podium_test_secret' -binary | base64
    const SIG_B64: &str = "K/7dwWc95tQMA5b4hpghvKputvh0fimaWbA6Nujd0No=";

    fn headers(ts: &str, sig: &str) -> Headers {
        Headers::from_pairs([(TIMESTAMP_HEADER, ts), (SIGNATURE_HEADER, sig)])
    }

    fn run(list: &str, h: &Headers, body: &[u8], now_ms: i64) -> Result<Verified, SignatureError> {
        let secrets = Scheme::Podium.secrets(list).unwrap();
        Scheme::Podium.verify(&secrets, h, body, now_ms, Tolerance::default())
    }

    #[test]
    fn known_answer_in_every_accepted_encoding() {
        let upper = SIG_HEX.to_ascii_uppercase();
        let unpadded = SIG_B64.trim_end_matches('=');
        for sig in [SIG_HEX, upper.as_str(), SIG_B64, unpadded] {
            let v = run(SECRET, &headers(TS, sig), BODY, TS_MS).unwrap();
            assert_eq!(
                v,
                Verified {
                    scheme: Scheme::Podium,
                    timestamp_ms: Some(TS_MS),
                    delivery_id: None,
                    secret_index: 0,
                },
                "{sig}"
            );
        }
        assert_eq!(sign(SECRET.as_bytes(), TS_MS, BODY), SIG_HEX);
    }

    #[test]
    fn tampered_body_and_wrong_secret_do_not_match() {
        let h = headers(TS, SIG_HEX);
        let mut body = BODY.to_vec();
        body.push(b' ');
        assert_eq!(run(SECRET, &h, &body, TS_MS), Err(SignatureError::NoMatch));
        assert_eq!(run(SECRET, &h, b"", TS_MS), Err(SignatureError::NoMatch));
        assert_eq!(
            run("podium_test_secreT", &h, BODY, TS_MS),
            Err(SignatureError::NoMatch)
        );
        // The timestamp is signed: a different one (still in tolerance) fails.
        let later = (TS_MS + 1).to_string();
        assert_eq!(
            run(SECRET, &headers(&later, SIG_HEX), BODY, TS_MS),
            Err(SignatureError::NoMatch)
        );
        // A leading zero is the same number but not the same signed text.
        let padded = format!("0{TS}");
        assert_eq!(
            run(SECRET, &headers(&padded, SIG_HEX), BODY, TS_MS),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn rotated_secret_reports_its_index() {
        let h = headers(TS, SIG_B64);
        let v = run(&format!("old_secret, {SECRET}"), &h, BODY, TS_MS).unwrap();
        assert_eq!(v.secret_index, 1);
        let v = run(&format!("{SECRET}\nold_secret"), &h, BODY, TS_MS).unwrap();
        assert_eq!(v.secret_index, 0);
    }

    #[test]
    fn tolerance_bounds() {
        let secrets = Scheme::Podium.secrets(SECRET).unwrap();
        let h = headers(TS, SIG_HEX);
        assert_tolerance_bounds(TS_MS, |now, tol| verify(&secrets, &h, BODY, now, tol));
    }

    #[test]
    fn missing_headers() {
        let only_sig = Headers::from_pairs([(SIGNATURE_HEADER, SIG_HEX)]);
        let only_ts = Headers::from_pairs([(TIMESTAMP_HEADER, TS)]);
        let err = run(SECRET, &only_sig, BODY, TS_MS).unwrap_err();
        assert_eq!(
            err,
            SignatureError::MissingHeader {
                header: TIMESTAMP_HEADER
            }
        );
        assert_eq!(err.code(), "signature_header_missing");
        assert_eq!(err.header(), Some("podium-timestamp"));
        assert_eq!(
            run(SECRET, &only_ts, BODY, TS_MS),
            Err(SignatureError::MissingHeader {
                header: SIGNATURE_HEADER
            })
        );
        // Missing beats malformed, and an empty secret list beats both.
        assert_eq!(
            run(
                SECRET,
                &Headers::from_pairs([(SIGNATURE_HEADER, "junk")]),
                BODY,
                TS_MS
            ),
            Err(SignatureError::MissingHeader {
                header: TIMESTAMP_HEADER
            })
        );
        assert_eq!(
            verify(
                &Secrets::default(),
                &Headers::new(),
                BODY,
                TS_MS,
                Tolerance::default()
            ),
            Err(SignatureError::NotConfigured)
        );
    }

    #[test]
    fn malformed_headers() {
        for ts in [
            "",
            "abc",
            "-1",
            "+1620771659663",
            "1620771659663.0",
            "1.6e12",
            "99999999999999999999",
        ] {
            let err = run(SECRET, &headers(ts, SIG_HEX), BODY, TS_MS).unwrap_err();
            assert_eq!(err.code(), "signature_header_malformed", "{ts:?}");
            assert_eq!(err.header(), Some(TIMESTAMP_HEADER), "{ts:?}");
        }
        let wrong_length_b64 = "Zm9v"; // valid base64, 3 bytes
        for sig in [
            "",
            "zz",
            &SIG_HEX[..63],
            &format!("{SIG_HEX}0"),
            &format!("sha256={SIG_HEX}"),
            wrong_length_b64,
            "K/7dwWc95tQMA5b4hpghvKputvh0fimaWbA6Nujd0No=====",
            "K_7dwWc95tQMA5b4hpghvKputvh0fimaWbA6Nujd0No=", // URL-safe alphabet
        ] {
            let err = run(SECRET, &headers(TS, sig), BODY, TS_MS).unwrap_err();
            assert_eq!(
                err,
                SignatureError::MalformedHeader {
                    header: SIGNATURE_HEADER,
                    reason: "neither 64 hex digits nor base64 of a SHA-256 digest"
                },
                "{sig:?}"
            );
        }
    }

    #[test]
    fn header_names_in_any_case() {
        let h = Headers::from_pairs([("PODIUM-TIMESTAMP", TS), ("Podium-Signature", SIG_HEX)]);
        assert!(run(SECRET, &h, BODY, TS_MS).is_ok());
    }

    #[test]
    fn duplicated_headers_are_malformed() {
        // Fetch joins them as "a, b", which is neither hex nor base64 nor a number.
        let mut h = headers(TS, SIG_HEX);
        h.insert(SIGNATURE_HEADER, SIG_HEX);
        assert_eq!(
            run(SECRET, &h, BODY, TS_MS).unwrap_err().header(),
            Some(SIGNATURE_HEADER)
        );
        let mut h = headers(TS, SIG_HEX);
        h.insert(TIMESTAMP_HEADER, TS);
        assert_eq!(
            run(SECRET, &h, BODY, TS_MS).unwrap_err().header(),
            Some(TIMESTAMP_HEADER)
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_body_byte_change_is_rejected(
                secret in "[A-Za-z0-9_]{1,40}",
                body in prop::collection::vec(any::<u8>(), 1..200),
                index in any::<usize>(),
                byte in any::<u8>(),
                ts in 0i64..=4_102_444_800_000,
            ) {
                let signed = headers(&ts.to_string(), &sign(secret.as_bytes(), ts, &body));
                prop_assert!(run(&secret, &signed, &body, ts).is_ok());
                if let Some(changed) = mutate(&body, index, byte) {
                    prop_assert_eq!(run(&secret, &signed, &changed, ts), Err(SignatureError::NoMatch));
                }
            }

            #[test]
            fn any_signature_byte_change_is_rejected(
                secret in "[A-Za-z0-9_]{1,40}",
                body in prop::collection::vec(any::<u8>(), 0..200),
                index in any::<usize>(),
                byte in 0x20u8..0x7f,
                base64 in any::<bool>(),
            ) {
                let hex_sig = sign(secret.as_bytes(), TS_MS, &body);
                let sig = if base64 {
                    crate::signature::encode_base64(&decode_hex_digest(&hex_sig).unwrap())
                } else {
                    hex_sig
                };
                prop_assert!(run(&secret, &headers(TS, &sig), &body, TS_MS).is_ok());
                // Hex is case-insensitive; base64 padding is optional, so a trailing '='
                // turned into a space (trimmed, like every HTTP header) is the same value.
                let padding_to_space = base64 && sig.ends_with('=') && byte == b' '
                    && index % sig.len() >= sig.trim_end_matches('=').len();
                if let (false, Some(changed)) = (padding_to_space, mutate_header(&sig, index, byte, !base64)) {
                    prop_assert!(run(&secret, &headers(TS, &changed), &body, TS_MS).is_err(), "{}", changed);
                }
            }
        }
    }
}
