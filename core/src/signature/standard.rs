//! Standard Webhooks (standardwebhooks.com, Svix): `webhook-signature` is a space-separated
//! list of `v1,<base64>`, each an HMAC-SHA256 over `"{webhook-id}.{webhook-timestamp}.{raw
//! body}"` keyed with the base64-decoded part of a `whsec_…` secret; the timestamp is in
//! unix seconds; `webhook-id` is the dedup key.
//!
//! Other versions in the list (`v1a,` for the asymmetric ed25519 variant, future ones) are
//! ignored; only when no `v1` entry is usable is the header malformed.

use base64::Engine as _;

use super::{
    check_time, decode_base64_digest, encode_base64, hmac_sha256, parse_seconds, require_secrets,
    Headers, Scheme, Secrets, SignatureError, Tolerance, Verified, BASE64_ANY_PADDING,
    BASE64_PADDED, MAX_SIGNATURES,
};

/// Delivery id, stable across retries; part of the signed string.
pub const ID_HEADER: &str = "webhook-id";
/// Signed time, unix seconds.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Space-separated `v1,<base64>` list.
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// The prefix of a Standard Webhooks symmetric secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// The HMAC key of a `whsec_<base64>` secret (padding optional), or `None` when it isn't
/// one or the key would be empty.
pub fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    let key = BASE64_ANY_PADDING
        .decode(secret.strip_prefix(SECRET_PREFIX)?)
        .ok()?;
    (!key.is_empty()).then_some(key)
}

/// Verify one Standard Webhooks delivery. `timestamp_ms` is `webhook-timestamp` × 1000,
/// `delivery_id` is `webhook-id`.
pub fn verify(
    secrets: &Secrets,
    headers: &Headers,
    body: &[u8],
    now_ms: i64,
    tolerance: Tolerance,
) -> Result<Verified, SignatureError> {
    require_secrets(secrets)?;
    let id = headers.required(ID_HEADER)?;
    let timestamp = headers.required(TIMESTAMP_HEADER)?;
    let signature = headers.required(SIGNATURE_HEADER)?;

    if id.is_empty() {
        return Err(SignatureError::MalformedHeader {
            header: ID_HEADER,
            reason: "empty",
        });
    }
    let timestamp_ms = parse_seconds(TIMESTAMP_HEADER, timestamp)?;
    let candidates = parse_signatures(signature)?;
    check_time(timestamp_ms, now_ms, tolerance)?;

    let secret_index = secrets
        .find_match(
            &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
            &candidates,
        )
        .ok_or(SignatureError::NoMatch)?;
    Ok(Verified {
        scheme: Scheme::Standard,
        timestamp_ms: Some(timestamp_ms),
        delivery_id: Some(id.to_owned()),
        secret_index,
    })
}

/// The `webhook-signature` value a sender would produce. `key` is the *decoded* secret
/// (see [`decode_secret`]), not the `whsec_` string.
pub fn sign(key: &[u8], id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    let t = timestamp_secs.to_string();
    let digest = hmac_sha256(key, &[id.as_bytes(), b".", t.as_bytes(), b".", body]);
    format!("v1,{}", encode_base64(&digest))
}

fn parse_signatures(value: &str) -> Result<Vec<[u8; super::DIGEST_LEN]>, SignatureError> {
    let malformed = |reason| SignatureError::MalformedHeader {
        header: SIGNATURE_HEADER,
        reason,
    };
    let mut candidates = Vec::new();
    for token in value.split_ascii_whitespace() {
        // A header sent twice arrives joined with ", "; base64 has no commas, so a single
        // trailing one is that join, not part of the signature.
        let token = token.strip_suffix(',').unwrap_or(token);
        let Some(("v1", encoded)) = token.split_once(',') else {
            continue;
        };
        // Senders use padded standard base64; requiring exactly that keeps one spelling per
        // digest (so the trailing-comma rule above can't turn "…=" into an accepted "…,").
        if let Some(digest) = decode_base64_digest(&BASE64_PADDED, encoded) {
            if candidates.len() == MAX_SIGNATURES {
                return Err(malformed("too many v1 signatures"));
            }
            candidates.push(digest);
        }
    }
    if candidates.is_empty() {
        return Err(malformed("no v1,<base64> signature"));
    }
    Ok(candidates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::testkit::{assert_tolerance_bounds, mutate, mutate_header};

    // The known-answer vector published by Standard Webhooks (PODIUM_API.md).
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: &str = "1649367553";
    const TS_MS: i64 = 1_649_367_553_000;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    const OTHER: &str = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    fn headers(id: &str, ts: &str, sig: &str) -> Headers {
        Headers::from_pairs([
            (ID_HEADER, id),
            (TIMESTAMP_HEADER, ts),
            (SIGNATURE_HEADER, sig),
        ])
    }

    fn run(list: &str, h: &Headers, body: &[u8], now_ms: i64) -> Result<Verified, SignatureError> {
        let secrets = Scheme::Standard.secrets(list).unwrap();
        Scheme::Standard.verify(&secrets, h, body, now_ms, Tolerance::default())
    }

    #[test]
    fn known_answer() {
        assert_eq!(
            run(SECRET, &headers(ID, TS, SIG), BODY, TS_MS).unwrap(),
            Verified {
                scheme: Scheme::Standard,
                timestamp_ms: Some(TS_MS),
                delivery_id: Some(ID.into()),
                secret_index: 0,
            }
        );
        let key = decode_secret(SECRET).unwrap();
        // printf '%s' 'C2FVsBQIhrscChlQIMV+b5sSYspob7oD' | base64 -d | xxd -p
        assert_eq!(
            hex::encode(&key),
            "0b6155b0140886bb1c0a195020c57e6f9b1262ca686fba03"
        );
        assert_eq!(sign(&key, ID, 1_649_367_553, BODY), SIG);
    }

    #[test]
    fn signature_lists() {
        for sig in [
            format!("{OTHER} {SIG}"),
            format!("v1a,c2lnbmF0dXJl {SIG}"),
            format!("v2,{} {SIG}", &SIG[3..]),
            format!("  {SIG}   {OTHER} "),
            format!("v1,not-base64 {SIG}"),
        ] {
            assert!(
                run(SECRET, &headers(ID, TS, &sig), BODY, TS_MS).is_ok(),
                "{sig}"
            );
        }
    }

    #[test]
    fn tampered_body_id_and_wrong_secret() {
        let h = headers(ID, TS, SIG);
        assert_eq!(
            run(SECRET, &h, br#"{"email":"test@example.com"}"#, TS_MS),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            run(SECRET, &headers("msg_other", TS, SIG), BODY, TS_MS),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            run(SECRET, &headers(ID, "1649367554", SIG), BODY, TS_MS),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            run("whsec_Zm9vYmFy", &h, BODY, TS_MS),
            Err(SignatureError::NoMatch)
        );
        // The whole whsec_ string as the key (a common bug) is not the key.
        let wrong = sign(SECRET.as_bytes(), ID, 1_649_367_553, BODY);
        assert_eq!(
            run(SECRET, &headers(ID, TS, &wrong), BODY, TS_MS),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn rotated_secret_reports_its_index() {
        let v = run(
            &format!("whsec_Zm9vYmFy, {SECRET}"),
            &headers(ID, TS, SIG),
            BODY,
            TS_MS,
        )
        .unwrap();
        assert_eq!(v.secret_index, 1);
    }

    #[test]
    fn tolerance_bounds() {
        let secrets = Scheme::Standard.secrets(SECRET).unwrap();
        let h = headers(ID, TS, SIG);
        assert_tolerance_bounds(TS_MS, |now, tol| verify(&secrets, &h, BODY, now, tol));
    }

    #[test]
    fn missing_and_malformed() {
        let cases = [
            (
                Headers::from_pairs([(TIMESTAMP_HEADER, TS), (SIGNATURE_HEADER, SIG)]),
                ID_HEADER,
            ),
            (
                Headers::from_pairs([(ID_HEADER, ID), (SIGNATURE_HEADER, SIG)]),
                TIMESTAMP_HEADER,
            ),
            (
                Headers::from_pairs([(ID_HEADER, ID), (TIMESTAMP_HEADER, TS)]),
                SIGNATURE_HEADER,
            ),
        ];
        for (h, header) in cases {
            assert_eq!(
                run(SECRET, &h, BODY, TS_MS),
                Err(SignatureError::MissingHeader { header })
            );
        }
        let malformed = |h: Headers| run(SECRET, &h, BODY, TS_MS).unwrap_err();
        assert_eq!(malformed(headers("", TS, SIG)).header(), Some(ID_HEADER));
        assert_eq!(malformed(headers(" ", TS, SIG)).header(), Some(ID_HEADER));
        for ts in ["", "x", "-1", "1649367553.0", "1649367553000000000000"] {
            assert_eq!(
                malformed(headers(ID, ts, SIG)).header(),
                Some(TIMESTAMP_HEADER),
                "{ts:?}"
            );
        }
        let unpadded = SIG.trim_end_matches('=');
        for sig in [
            "",
            "v1",
            "v1,",
            &SIG[3..],
            "v1a,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            "v1=tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            "v1,Zm9v",
            unpadded,
            "v1,tZ1I4_hDygAJgO5TYxiSd6Sd0kDW6hPenDe-bTa3Kkw=",
        ] {
            let err = malformed(headers(ID, TS, sig));
            assert_eq!(
                err,
                SignatureError::MalformedHeader {
                    header: SIGNATURE_HEADER,
                    reason: "no v1,<base64> signature"
                },
                "{sig:?}"
            );
        }
        let many = vec![OTHER; MAX_SIGNATURES + 1].join(" ");
        assert_eq!(
            malformed(headers(ID, TS, &many)),
            SignatureError::MalformedHeader {
                header: SIGNATURE_HEADER,
                reason: "too many v1 signatures"
            }
        );
    }

    #[test]
    fn header_names_in_any_case() {
        let h = Headers::from_pairs([
            ("Webhook-Id", ID),
            ("WEBHOOK-TIMESTAMP", TS),
            ("Webhook-Signature", SIG),
        ]);
        assert!(run(SECRET, &h, BODY, TS_MS).is_ok());
    }

    #[test]
    fn duplicated_headers() {
        // Signature sent twice: "v1,AAA…=, v1,tZ1…=" still finds the good one.
        let mut h = headers(ID, TS, OTHER);
        h.insert(SIGNATURE_HEADER, SIG);
        assert_eq!(
            h.get(SIGNATURE_HEADER),
            Some(format!("{OTHER}, {SIG}").as_str())
        );
        assert!(run(SECRET, &h, BODY, TS_MS).is_ok());
        let mut h = headers(ID, TS, SIG);
        h.insert(SIGNATURE_HEADER, OTHER);
        assert!(run(SECRET, &h, BODY, TS_MS).is_ok());
        // A repeated timestamp is not a number; a repeated id is signed text that no longer
        // matches.
        let mut h = headers(ID, TS, SIG);
        h.insert(TIMESTAMP_HEADER, TS);
        assert_eq!(
            run(SECRET, &h, BODY, TS_MS).unwrap_err().header(),
            Some(TIMESTAMP_HEADER)
        );
        let mut h = headers(ID, TS, SIG);
        h.insert(ID_HEADER, ID);
        assert_eq!(run(SECRET, &h, BODY, TS_MS), Err(SignatureError::NoMatch));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn whsec(key: &[u8]) -> String {
            format!("{SECRET_PREFIX}{}", encode_base64(key))
        }

        proptest! {
            #[test]
            fn secrets_round_trip(key in prop::collection::vec(any::<u8>(), 1..64)) {
                prop_assert_eq!(decode_secret(&whsec(&key)), Some(key));
            }

            #[test]
            fn any_body_byte_change_is_rejected(
                key in prop::collection::vec(any::<u8>(), 1..64),
                id in "msg_[A-Za-z0-9]{1,30}",
                body in prop::collection::vec(any::<u8>(), 1..200),
                index in any::<usize>(),
                byte in any::<u8>(),
            ) {
                let h = headers(&id, TS, &sign(&key, &id, 1_649_367_553, &body));
                prop_assert!(run(&whsec(&key), &h, &body, TS_MS).is_ok());
                if let Some(changed) = mutate(&body, index, byte) {
                    prop_assert_eq!(run(&whsec(&key), &h, &changed, TS_MS), Err(SignatureError::NoMatch));
                }
            }

            #[test]
            fn any_signature_byte_change_is_rejected(
                key in prop::collection::vec(any::<u8>(), 1..64),
                body in prop::collection::vec(any::<u8>(), 0..200),
                index in any::<usize>(),
                byte in 0x20u8..0x7f,
            ) {
                let sig = sign(&key, ID, 1_649_367_553, &body);
                prop_assert!(run(&whsec(&key), &headers(ID, TS, &sig), &body, TS_MS).is_ok());
                if let Some(changed) = mutate_header(&sig, index, byte, false) {
                    prop_assert!(run(&whsec(&key), &headers(ID, TS, &changed), &body, TS_MS).is_err(), "{}", changed);
                }
            }
        }
    }
}
