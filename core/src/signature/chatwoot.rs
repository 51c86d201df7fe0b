//! Chatwoot's webhook signature: `X-Chatwoot-Signature: sha256=<hex>` = HMAC-SHA256(secret,
//! `"{X-Chatwoot-Timestamp}.{raw body}"`), the timestamp in unix seconds.
//!
//! `X-Chatwoot-Delivery` is stable across retries, so it is returned as the dedup key.

use super::{
    check_time, decode_hex_digest, hmac_sha256, parse_seconds, require_secrets, Headers, Scheme,
    Secrets, SignatureError, Tolerance, Verified,
};

/// `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Chatwoot-Signature";
/// Signed time, unix seconds.
pub const TIMESTAMP_HEADER: &str = "X-Chatwoot-Timestamp";
/// Delivery id, stable across retries.
pub const DELIVERY_HEADER: &str = "X-Chatwoot-Delivery";

const PREFIX: &str = "sha256=";

/// Verify one Chatwoot delivery. `timestamp_ms` is the timestamp × 1000.
pub fn verify(
    secrets: &Secrets,
    headers: &Headers,
    body: &[u8],
    now_ms: i64,
    tolerance: Tolerance,
) -> Result<Verified, SignatureError> {
    require_secrets(secrets)?;
    let signature = headers.required(SIGNATURE_HEADER)?;
    let timestamp = headers.required(TIMESTAMP_HEADER)?;

    let hex = signature
        .strip_prefix(PREFIX)
        .ok_or(SignatureError::MalformedHeader {
            header: SIGNATURE_HEADER,
            reason: "does not start with sha256=",
        })?;
    let candidate = decode_hex_digest(hex).ok_or(SignatureError::MalformedHeader {
        header: SIGNATURE_HEADER,
        reason: "not sha256= followed by 64 hex digits",
    })?;
    let timestamp_ms = parse_seconds(TIMESTAMP_HEADER, timestamp)?;
    check_time(timestamp_ms, now_ms, tolerance)?;

    let secret_index = secrets
        .find_match(&[timestamp.as_bytes(), b".", body], &[candidate])
        .ok_or(SignatureError::NoMatch)?;
    let delivery_id = headers
        .get(DELIVERY_HEADER)
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    Ok(Verified {
        scheme: Scheme::Chatwoot,
        timestamp_ms: Some(timestamp_ms),
        delivery_id,
        secret_index,
    })
}

/// The `X-Chatwoot-Signature` value Chatwoot would send.
pub fn sign(secret: &[u8], timestamp_secs: i64, body: &[u8]) -> String {
    let t = timestamp_secs.to_string();
    let digest = hmac_sha256(secret, &[t.as_bytes(), b".", body]);
    format!("{PREFIX}{}", hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::testkit::{assert_tolerance_bounds, mutate, mutate_header};

    const SECRET: &str = "chatwoot_secret";
    const TS: &str = "1700000000";
    const TS_MS: i64 = 1_700_000_000_000;
    const BODY: &[u8] = br#"{"event":"message_created","id":42}"#;
    // printf '%s' '1700000000.<BODY>' | openssl dgst -sha256 -hmac 'chatwoot_secret' -hex
    const HEX: &str = "82b0a05b43eda9cef291765cbc6c341e1259d9cab56442dd738399d2d48b50d5";

    fn headers(sig: &str, ts: &str) -> Headers {
        Headers::from_pairs([(SIGNATURE_HEADER, sig), (TIMESTAMP_HEADER, ts)])
    }

    fn run(list: &str, h: &Headers, body: &[u8], now_ms: i64) -> Result<Verified, SignatureError> {
        let secrets = Scheme::Chatwoot.secrets(list).unwrap();
        Scheme::Chatwoot.verify(&secrets, h, body, now_ms, Tolerance::default())
    }

    #[test]
    fn known_answer_with_delivery_id() {
        let mut h = headers(&format!("sha256={HEX}"), TS);
        h.insert(DELIVERY_HEADER, "5f1c2c1e-delivery");
        assert_eq!(
            run(SECRET, &h, BODY, TS_MS).unwrap(),
            Verified {
                scheme: Scheme::Chatwoot,
                timestamp_ms: Some(TS_MS),
                delivery_id: Some("5f1c2c1e-delivery".into()),
                secret_index: 0,
            }
        );
        assert_eq!(
            sign(SECRET.as_bytes(), 1_700_000_000, BODY),
            format!("sha256={HEX}")
        );
        let upper = format!("sha256={}", HEX.to_ascii_uppercase());
        assert_eq!(
            run(SECRET, &headers(&upper, TS), BODY, TS_MS)
                .unwrap()
                .delivery_id,
            None
        );
    }

    #[test]
    fn tampered_body_wrong_secret_and_rotation() {
        let h = headers(&format!("sha256={HEX}"), TS);
        assert_eq!(
            run(SECRET, &h, br#"{"event":"message_created","id":43}"#, TS_MS),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            run("chatwoot_secreT", &h, BODY, TS_MS),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            run(&format!("a b {SECRET}"), &h, BODY, TS_MS)
                .unwrap()
                .secret_index,
            2
        );
        assert_eq!(
            run(
                SECRET,
                &headers(&format!("sha256={HEX}"), "1700000001"),
                BODY,
                TS_MS
            ),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn tolerance_bounds() {
        let secrets = Scheme::Chatwoot.secrets(SECRET).unwrap();
        let h = headers(&format!("sha256={HEX}"), TS);
        assert_tolerance_bounds(TS_MS, |now, tol| verify(&secrets, &h, BODY, now, tol));
    }

    #[test]
    fn missing_and_malformed() {
        let sig = format!("sha256={HEX}");
        assert_eq!(
            run(
                SECRET,
                &Headers::from_pairs([(TIMESTAMP_HEADER, TS)]),
                BODY,
                TS_MS
            ),
            Err(SignatureError::MissingHeader {
                header: SIGNATURE_HEADER
            })
        );
        assert_eq!(
            run(
                SECRET,
                &Headers::from_pairs([(SIGNATURE_HEADER, sig.as_str())]),
                BODY,
                TS_MS
            ),
            Err(SignatureError::MissingHeader {
                header: TIMESTAMP_HEADER
            })
        );
        assert_eq!(
            run(SECRET, &headers(HEX, TS), BODY, TS_MS),
            Err(SignatureError::MalformedHeader {
                header: SIGNATURE_HEADER,
                reason: "does not start with sha256="
            })
        );
        for bad in [
            "sha256=",
            "sha256=xyz",
            &format!("sha256={}", &HEX[2..]),
            &format!("sha1={HEX}"),
            &format!("SHA256={HEX}"),
        ] {
            let err = run(SECRET, &headers(bad, TS), BODY, TS_MS).unwrap_err();
            assert_eq!(err.header(), Some(SIGNATURE_HEADER), "{bad:?}");
            assert_eq!(err.code(), "signature_header_malformed");
        }
        for ts in ["", "now", "-5", "1700000000000000000", "1700000000.5"] {
            let err = run(SECRET, &headers(&sig, ts), BODY, TS_MS).unwrap_err();
            assert_eq!(err.header(), Some(TIMESTAMP_HEADER), "{ts:?}");
            assert_eq!(err.code(), "signature_header_malformed");
        }
    }

    #[test]
    fn header_names_in_any_case_and_duplicates() {
        let sig = format!("sha256={HEX}");
        let h = Headers::from_pairs([
            ("x-chatwoot-signature", sig.as_str()),
            ("X-CHATWOOT-TIMESTAMP", TS),
        ]);
        assert!(run(SECRET, &h, BODY, TS_MS).is_ok());
        // A repeated signature header ("sha256=…, sha256=…") is not hex: malformed.
        let mut h = headers(&sig, TS);
        h.insert(SIGNATURE_HEADER, &sig);
        assert_eq!(
            run(SECRET, &h, BODY, TS_MS).unwrap_err().header(),
            Some(SIGNATURE_HEADER)
        );
        let mut h = headers(&sig, TS);
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
            ) {
                let h = headers(&sign(secret.as_bytes(), 1_700_000_000, &body), TS);
                prop_assert!(run(&secret, &h, &body, TS_MS).is_ok());
                if let Some(changed) = mutate(&body, index, byte) {
                    prop_assert_eq!(run(&secret, &h, &changed, TS_MS), Err(SignatureError::NoMatch));
                }
            }

            #[test]
            fn any_signature_byte_change_is_rejected(
                secret in "[A-Za-z0-9_]{1,40}",
                body in prop::collection::vec(any::<u8>(), 0..200),
                index in any::<usize>(),
                byte in 0x20u8..0x7f,
            ) {
                let sig = sign(secret.as_bytes(), 1_700_000_000, &body);
                prop_assert!(run(&secret, &headers(&sig, TS), &body, TS_MS).is_ok());
                if let Some(changed) = mutate_header(&sig, index, byte, true) {
                    prop_assert!(run(&secret, &headers(&changed, TS), &body, TS_MS).is_err(), "{}", changed);
                }
            }
        }
    }
}
