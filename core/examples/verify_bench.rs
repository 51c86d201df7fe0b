//! CPU per webhook verification (issue 4's benchmark): each scheme's `verify` on a
//! realistic 1 KiB and a 16 KiB body, in ns per call, natively in release mode.
//! `cargo run --release -p gateway-core --example verify_bench` prints one JSON line
//! per case (bench/webhooks.mjs compares them with Node's crypto in the same run).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::time::Instant;

use gateway_core::signature::{
    chatwoot, podium, shopify, standard, stripe, Headers, Scheme, Tolerance,
};

fn body(size: usize) -> Vec<u8> {
    let mut s = String::from(r#"{"data":{"body":""#);
    while s.len() < size - 60 {
        s.push_str("Do you have the blue one in a size 10? ");
    }
    s.push_str(r#""},"metadata":{"event_type":"message.received"}}"#);
    s.into_bytes()
}

fn time(iterations: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn main() {
    let now = 1_795_000_000_000_i64;
    let secs = now / 1000;
    let tol = Tolerance::default();
    for size in [1024_usize, 16 * 1024] {
        let b = body(size);
        let text = std::str::from_utf8(&b).unwrap();
        let key = "bench-secret";
        let cases: Vec<(Scheme, String, Headers)> = vec![
            (
                Scheme::Podium,
                key.into(),
                Headers::from_pairs([
                    ("podium-timestamp", now.to_string()),
                    ("podium-signature", podium::sign(key.as_bytes(), now, &b)),
                ]),
            ),
            (
                Scheme::Shopify,
                key.into(),
                Headers::from_pairs([("x-shopify-hmac-sha256", shopify::sign(key.as_bytes(), &b))]),
            ),
            (
                Scheme::Stripe,
                key.into(),
                Headers::from_pairs([("stripe-signature", stripe::sign(key.as_bytes(), secs, &b))]),
            ),
            (
                Scheme::Chatwoot,
                key.into(),
                Headers::from_pairs([
                    ("x-chatwoot-timestamp", secs.to_string()),
                    (
                        "x-chatwoot-signature",
                        chatwoot::sign(key.as_bytes(), secs, &b),
                    ),
                ]),
            ),
            (
                Scheme::Standard,
                "whsec_YmVuY2gtc2VjcmV0LWtleQ==".into(),
                Headers::from_pairs([
                    ("webhook-id", "msg_1".to_owned()),
                    ("webhook-timestamp", secs.to_string()),
                    (
                        "webhook-signature",
                        standard::sign(b"bench-secret-key", "msg_1", secs, &b),
                    ),
                ]),
            ),
        ];
        for (scheme, secret_list, headers) in cases {
            let secrets = scheme.secrets(&secret_list).unwrap();
            assert!(
                scheme.verify(&secrets, &headers, &b, now, tol).is_ok(),
                "{scheme:?}"
            );
            let iterations = if size > 4096 { 20_000 } else { 100_000 };
            let ns = time(iterations, || {
                black_box(scheme.verify(black_box(&secrets), &headers, black_box(&b), now, tol))
                    .ok();
            });
            println!(
                "{{\"scheme\":\"{}\",\"body_bytes\":{},\"ns_per_verify\":{:.0}}}",
                scheme.as_str(),
                text.len(),
                ns
            );
        }
    }
}
