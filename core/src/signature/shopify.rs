//! Shopify's webhook signature: `X-Shopify-Hmac-Sha256` = base64(HMAC-SHA256(app client
//! secret, raw body)).
//!
//! Nothing time-related is signed, so replay protection can only come from the delivery
//! id (dedup) and from `X-Shopify-Triggered-At`: when present it is checked against the
//! tolerance the caller passes. Shopify retries for 4 hours, so the caller should pass a
//! much larger `past_ms` than for the other schemes (the worker uses 48 h); a too-small one
//! would refuse Shopify's own legitimate retries.

use super::{
    check_time, decode_base64_digest, encode_base64, hmac_sha256, require_secrets, Headers, Scheme,
    Secrets, SignatureError, Tolerance, Verified, BASE64_PADDED,
};
use crate::time::parse_rfc3339_ms;

/// base64 HMAC of the body.
pub const HMAC_HEADER: &str = "X-Shopify-Hmac-Sha256";
/// When Shopify first triggered the webhook (RFC 3339); not signed.
pub const TRIGGERED_AT_HEADER: &str = "X-Shopify-Triggered-At";
/// Delivery id, stable across retries (current docs).
pub const WEBHOOK_ID_HEADER: &str = "X-Shopify-Webhook-Id";
/// Event id (older docs), used when there is no `X-Shopify-Webhook-Id`.
pub const EVENT_ID_HEADER: &str = "X-Shopify-Event-Id";

/// Verify one Shopify delivery. `timestamp_ms` is `X-Shopify-Triggered-At` when sent.
pub fn verify(
    secrets: &Secrets,
    headers: &Headers,
    body: &[u8],
    now_ms: i64,
    tolerance: Tolerance,
) -> Result<Verified, SignatureError> {
    require_secrets(secrets)?;
    let signature = headers.required(HMAC_HEADER)?;
    // Shopify sends padded base64 (Ruby's strict_encode64); requiring exactly that keeps
    // one spelling per digest.
    let candidate =
        decode_base64_digest(&BASE64_PADDED, signature).ok_or(SignatureError::MalformedHeader {
            header: HMAC_HEADER,
            reason: "not padded base64 of a SHA-256 digest",
        })?;
    let timestamp_ms = match headers.get(TRIGGERED_AT_HEADER) {
        None => None,
        Some(value) => Some(
            parse_rfc3339_ms(value).ok_or(SignatureError::MalformedHeader {
                header: TRIGGERED_AT_HEADER,
                reason: "not an RFC 3339 date-time",
            })?,
        ),
    };
    if let Some(ts) = timestamp_ms {
        check_time(ts, now_ms, tolerance)?;
    }

    let secret_index = secrets
        .find_match(&[body], &[candidate])
        .ok_or(SignatureError::NoMatch)?;
    let delivery_id = [WEBHOOK_ID_HEADER, EVENT_ID_HEADER]
        .into_iter()
        .filter_map(|name| headers.get(name))
        .find(|id| !id.is_empty())
        .map(str::to_owned);
    Ok(Verified {
        scheme: Scheme::Shopify,
        timestamp_ms,
        delivery_id,
        secret_index,
    })
}

/// The `X-Shopify-Hmac-Sha256` value Shopify would send for this body.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    encode_base64(&hmac_sha256(secret, &[body]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::testkit::{assert_tolerance_bounds, mutate, mutate_header};

    const SECRET: &str = "shpss_test_secret";
    const BODY: &[u8] = br#"{"id":820982911946154508,"phone":"+15551234567"}"#;
    // printf '%s' '<BODY>' | openssl dgst -sha256 -hmac 'shpss_test_secret' -binary | base64
    const SIG: &str = "GpMIk3mkwq51HauidDmAOQm2M4VL1WA59+74tvc/aH4=";
    const TRIGGERED: &str = "2026-11-21T10:00:00.123Z";
    // date -u -d '2026-11-21T10:00:00.123Z' +%s%3N
    const TRIGGERED_MS: i64 = 1_795_255_200_123;
    const HOURS_48: Tolerance = Tolerance {
        past_ms: 48 * 3_600_000,
        future_ms: 300_000,
    };

    fn run(list: &str, h: &Headers, body: &[u8], now_ms: i64) -> Result<Verified, SignatureError> {
        let secrets = Scheme::Shopify.secrets(list).unwrap();
        Scheme::Shopify.verify(&secrets, h, body, now_ms, HOURS_48)
    }

    #[test]
    fn known_answer() {
        let h = Headers::from_pairs([(HMAC_HEADER, SIG)]);
        assert_eq!(
            run(SECRET, &h, BODY, 0).unwrap(),
            Verified {
                scheme: Scheme::Shopify,
                timestamp_ms: None,
                delivery_id: None,
                secret_index: 0,
            }
        );
        assert_eq!(sign(SECRET.as_bytes(), BODY), SIG);
    }

    #[test]
    fn triggered_at_and_delivery_id() {
        let h = Headers::from_pairs([
            (HMAC_HEADER, SIG),
            (TRIGGERED_AT_HEADER, TRIGGERED),
            (EVENT_ID_HEADER, "evt-1"),
            (WEBHOOK_ID_HEADER, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"),
        ]);
        let v = run(SECRET, &h, BODY, TRIGGERED_MS + 4 * 3_600_000).unwrap();
        assert_eq!(v.timestamp_ms, Some(TRIGGERED_MS));
        assert_eq!(
            v.delivery_id.as_deref(),
            Some("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
        );
        // Older deliveries carry only the event id.
        let h = Headers::from_pairs([(HMAC_HEADER, SIG), (EVENT_ID_HEADER, "evt-1")]);
        assert_eq!(
            run(SECRET, &h, BODY, 0).unwrap().delivery_id.as_deref(),
            Some("evt-1")
        );
        // An offset is honoured: 05:00-05:00 is 10:00Z.
        let h = Headers::from_pairs([
            (HMAC_HEADER, SIG),
            (TRIGGERED_AT_HEADER, "2026-11-21T05:00:00-05:00"),
        ]);
        let v = run(SECRET, &h, BODY, TRIGGERED_MS).unwrap();
        assert_eq!(v.timestamp_ms, Some(TRIGGERED_MS - 123));
    }

    #[test]
    fn tampered_body_and_wrong_secret_do_not_match() {
        let h = Headers::from_pairs([(HMAC_HEADER, SIG)]);
        assert_eq!(run(SECRET, &h, &BODY[1..], 0), Err(SignatureError::NoMatch));
        assert_eq!(
            run("shpss_other", &h, BODY, 0),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn rotated_secret_reports_its_index() {
        let h = Headers::from_pairs([(HMAC_HEADER, SIG)]);
        assert_eq!(
            run(&format!("shpss_new {SECRET}"), &h, BODY, 0)
                .unwrap()
                .secret_index,
            1
        );
    }

    #[test]
    fn tolerance_bounds_apply_only_with_triggered_at() {
        let secrets = Scheme::Shopify.secrets(SECRET).unwrap();
        let h = Headers::from_pairs([(HMAC_HEADER, SIG), (TRIGGERED_AT_HEADER, TRIGGERED)]);
        assert_tolerance_bounds(TRIGGERED_MS, |now, tol| {
            verify(&secrets, &h, BODY, now, tol)
        });
        // Shopify's 4-hour retry window passes with the 48 h staleness bound.
        assert!(run(SECRET, &h, BODY, TRIGGERED_MS + 48 * 3_600_000).is_ok());
        assert!(run(SECRET, &h, BODY, TRIGGERED_MS + 48 * 3_600_000 + 1).is_err());
        // Without the header there's nothing to check.
        let h = Headers::from_pairs([(HMAC_HEADER, SIG)]);
        assert!(verify(&secrets, &h, BODY, i64::MAX, Tolerance::default()).is_ok());
    }

    #[test]
    fn missing_and_malformed_headers() {
        assert_eq!(
            run(
                SECRET,
                &Headers::from_pairs([(TRIGGERED_AT_HEADER, TRIGGERED)]),
                BODY,
                0
            ),
            Err(SignatureError::MissingHeader {
                header: HMAC_HEADER
            })
        );
        let unpadded = SIG.trim_end_matches('=');
        // The same digest in hex (`… | base64 -d | xxd -p -c 64`): Shopify never sends hex.
        let hex = "1a93089379a4c2ae751daba27439803909b633854bd56039f7eef8b6f73f687e";
        for sig in [
            "",
            unpadded,
            hex,
            "GpMIk3mkwq51HauidDmAOQm2M4VL1WA59-74tvc_aH4=",
            "Zm9v",
        ] {
            let err = run(SECRET, &Headers::from_pairs([(HMAC_HEADER, sig)]), BODY, 0).unwrap_err();
            assert_eq!(err.code(), "signature_header_malformed", "{sig:?}");
            assert_eq!(err.header(), Some(HMAC_HEADER));
        }
        for at in [
            "",
            "yesterday",
            "1795255200",
            "2026-11-21T10:00:00",
            "2026-11-21",
        ] {
            let h = Headers::from_pairs([(HMAC_HEADER, SIG), (TRIGGERED_AT_HEADER, at)]);
            assert_eq!(
                run(SECRET, &h, BODY, 0).unwrap_err().header(),
                Some(TRIGGERED_AT_HEADER),
                "{at:?}"
            );
        }
    }

    #[test]
    fn header_names_in_any_case() {
        let h = Headers::from_pairs([
            ("x-shopify-hmac-sha256", SIG),
            ("X-SHOPIFY-TRIGGERED-AT", TRIGGERED),
            ("x-shopify-webhook-ID", "w1"),
        ]);
        let v = run(SECRET, &h, BODY, TRIGGERED_MS).unwrap();
        assert_eq!(v.delivery_id.as_deref(), Some("w1"));
    }

    #[test]
    fn duplicated_headers() {
        // A repeated HMAC header is "a, b": not base64, so malformed.
        let h = Headers::from_pairs([(HMAC_HEADER, SIG), (HMAC_HEADER, SIG)]);
        assert_eq!(
            run(SECRET, &h, BODY, 0).unwrap_err().header(),
            Some(HMAC_HEADER)
        );
        let h = Headers::from_pairs([
            (HMAC_HEADER, SIG),
            (TRIGGERED_AT_HEADER, TRIGGERED),
            (TRIGGERED_AT_HEADER, TRIGGERED),
        ]);
        assert_eq!(
            run(SECRET, &h, BODY, 0).unwrap_err().header(),
            Some(TRIGGERED_AT_HEADER)
        );
        // A repeated id is passed through as Fetch shows it; it is only a dedup key.
        let h = Headers::from_pairs([
            (HMAC_HEADER, SIG),
            (WEBHOOK_ID_HEADER, "a"),
            (WEBHOOK_ID_HEADER, "b"),
        ]);
        assert_eq!(
            run(SECRET, &h, BODY, 0).unwrap().delivery_id.as_deref(),
            Some("a, b")
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
                let h = Headers::from_pairs([(HMAC_HEADER, sign(secret.as_bytes(), &body))]);
                prop_assert!(run(&secret, &h, &body, 0).is_ok());
                if let Some(changed) = mutate(&body, index, byte) {
                    prop_assert_eq!(run(&secret, &h, &changed, 0), Err(SignatureError::NoMatch));
                }
            }

            #[test]
            fn any_signature_byte_change_is_rejected(
                secret in "[A-Za-z0-9_]{1,40}",
                body in prop::collection::vec(any::<u8>(), 0..200),
                index in any::<usize>(),
                byte in 0x20u8..0x7f,
            ) {
                let sig = sign(secret.as_bytes(), &body);
                prop_assert!(run(&secret, &Headers::from_pairs([(HMAC_HEADER, &sig)]), &body, 0).is_ok());
                if let Some(changed) = mutate_header(&sig, index, byte, false) {
                    let h = Headers::from_pairs([(HMAC_HEADER, &changed)]);
                    prop_assert!(run(&secret, &h, &body, 0).is_err(), "{}", changed);
                }
            }
        }
    }
}
