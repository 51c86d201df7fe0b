//! In-process tests: drive the axum router with `tower::ServiceExt::oneshot` (no network).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use podium_sandbox::{router, Sandbox, Seeds, Settings, Shared};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

const PHONE: &str = "+61412345678";

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

struct T {
    app: Router,
    #[allow(dead_code)]
    sb: Shared,
}

impl T {
    fn new() -> Self {
        Self::with(Settings::default())
    }

    fn with(settings: Settings) -> Self {
        let sb = Sandbox::new(Seeds::default(), settings);
        Self {
            app: router(sb.clone()),
            sb,
        }
    }

    async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Resp {
            status,
            headers,
            json,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("podium-version", "2021.04.01");
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        }
        .unwrap();
        self.send(req).await
    }

    async fn refresh(&self, refresh_token: &str) -> Resp {
        self.call(
            "POST",
            "/oauth/token",
            None,
            Some(json!({
                "client_id": "sandbox-client",
                "client_secret": "sandbox-secret",
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
            })),
        )
        .await
    }

    async fn token(&self) -> String {
        let r = self.refresh("sandbox-refresh-token").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        r.json["access_token"].as_str().unwrap().to_owned()
    }

    async fn state(&self) -> Value {
        self.call("GET", "/_sandbox/state", None, None).await.json
    }

    async fn create_contact(&self, tok: &str, phone: &str, loc: &str) -> Resp {
        self.call(
            "POST",
            "/v4/contacts",
            Some(tok),
            Some(json!({"name": "Ada", "phoneNumber": phone, "locations": [loc]})),
        )
        .await
    }

    /// An outbound text (no `webchatUrl`), which an opt-out blocks.
    async fn message(&self, tok: &str, phone: &str, loc: &str) -> Resp {
        self.call(
            "POST",
            "/v4/messages",
            Some(tok),
            Some(json!({
                "body": "Hello from the website",
                "channel": {"type": "phone", "identifier": phone},
                "locationUid": loc,
                "contactName": "Ada",
            })),
        )
        .await
    }
}

fn settings(f: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = Settings::default();
    f(&mut s);
    s
}

// ---------------------------------------------------------------- OAuth

#[tokio::test]
async fn token_flow_good_bad_expiry_and_refresh() {
    let t = T::new();
    let r = t.refresh("sandbox-refresh-token").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["expires_in"], 36_000);
    assert_eq!(r.json["refresh_token"], "sandbox-refresh-token");
    let tok1 = r.json["access_token"].as_str().unwrap().to_owned();
    assert_ne!(
        tok1,
        t.token().await,
        "each refresh issues a new access token"
    );

    let bad_client = t
        .call(
            "POST",
            "/oauth/token",
            None,
            Some(
                json!({"client_id": "sandbox-client", "client_secret": "nope",
                        "grant_type": "refresh_token", "refresh_token": "sandbox-refresh-token"}),
            ),
        )
        .await;
    assert_eq!(bad_client.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad_client.json["code"], "invalid_client");
    assert!(bad_client.json["moreInfo"].is_string());

    let bad_grant = t.refresh("stolen").await;
    assert_eq!(bad_grant.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_grant.json["code"], "invalid_grant");

    let bad_type = t
        .call(
            "POST",
            "/oauth/token",
            None,
            Some(json!({"client_id": "sandbox-client", "client_secret": "sandbox-secret",
                        "grant_type": "client_credentials", "refresh_token": "sandbox-refresh-token"})),
        )
        .await;
    assert_eq!(bad_type.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_type.json["code"], "unsupported_grant_type");

    // Form-encoded works too.
    let form = Request::builder()
        .method("POST")
        .uri("/oauth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(
            "client_id=sandbox-client&client_secret=sandbox-secret&grant_type=refresh_token&refresh_token=sandbox-refresh-token",
        ))
        .unwrap();
    assert_eq!(t.send(form).await.status, StatusCode::OK);

    // The token opens /v4; none, a wrong one or an expired one does not.
    assert_eq!(
        t.call("GET", "/v4/locations", Some(&tok1), None)
            .await
            .status,
        StatusCode::OK
    );
    let none = t.call("GET", "/v4/locations", None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.json["code"], "unauthorized");
    assert_eq!(
        t.call("GET", "/v4/locations", Some("made-up"), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let exp = t.call("POST", "/_sandbox/expire-tokens", None, None).await;
    assert_eq!(exp.json["expired"], 3);
    let expired = t.call("GET", "/v4/locations", Some(&tok1), None).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.json["message"], "access token expired");
    let tok2 = t.token().await;
    assert_eq!(
        t.call("GET", "/v4/locations", Some(&tok2), None)
            .await
            .status,
        StatusCode::OK
    );

    let s = t.state().await;
    assert_eq!(s["token_refreshes"], 4);
    let reqs = s["requests"].as_array().unwrap();
    let last = reqs.last().unwrap();
    assert_eq!(last["path"], "/v4/locations");
    assert_eq!(last["status"], 200);
    assert_eq!(last["authorized"], true);
    assert_eq!(last["podium_version"], "2021.04.01");
    assert!(reqs
        .iter()
        .any(|r| r["status"] == 401 && r["authorized"] == false));
    assert!(reqs
        .iter()
        .all(|r| !r["path"].as_str().unwrap().starts_with("/_sandbox")));
}

#[tokio::test]
async fn short_ttl_expires_on_its_own_and_rotation_keeps_old_refresh_token_briefly() {
    let t = T::with(settings(|s| {
        s.token_ttl_secs = 0;
        s.rotate_refresh_tokens = true;
    }));
    let r = t.refresh("sandbox-refresh-token").await;
    let tok = r.json["access_token"].as_str().unwrap();
    assert_eq!(
        t.call("GET", "/v4/locations", Some(tok), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let new_rt = r.json["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(new_rt, "sandbox-refresh-token");
    // The rotated-out token works for 60 s more, and so does the new one.
    assert_eq!(
        t.refresh("sandbox-refresh-token").await.status,
        StatusCode::OK
    );
    assert_eq!(t.refresh(&new_rt).await.status, StatusCode::OK);
}

// ---------------------------------------------------------------- contacts

#[tokio::test]
async fn contact_upsert_creates_then_matches_and_merges() {
    let t = T::new();
    let tok = t.token().await;
    let a = t.create_contact(&tok, PHONE, "loc_sydney").await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let uid = a.json["data"]["identifier"].as_str().unwrap().to_owned();
    let b = t.create_contact(&tok, PHONE, "loc_burleigh").await;
    assert_eq!(b.status, StatusCode::ACCEPTED);
    assert_eq!(b.json["data"]["identifier"], uid.as_str());
    // Match on e-mail too, adding the phone-less contact's locations.
    let c = t
        .call(
            "POST",
            "/v4/contacts",
            Some(&tok),
            Some(json!({"name": "Bo", "email": "bo@example.com", "locations": ["loc_sydney"]})),
        )
        .await;
    let d = t
        .call(
            "POST",
            "/v4/contacts",
            Some(&tok),
            Some(
                json!({"name": "Bo", "email": "BO@example.com", "locations": ["loc_sanfrancisco"]}),
            ),
        )
        .await;
    assert_eq!(c.json["data"]["identifier"], d.json["data"]["identifier"]);

    for path in [
        "/v4/contacts/%2B61412345678".to_owned(),
        format!("/v4/contacts/{PHONE}"),
        format!("/v4/contacts/{uid}"),
    ] {
        let g = t.call("GET", &path, Some(&tok), None).await;
        assert_eq!(g.status, StatusCode::OK, "{path}");
        let data = &g.json["data"];
        assert_eq!(data["uid"], uid.as_str());
        assert_eq!(data["phoneNumbers"], json!([PHONE]));
        assert_eq!(data["locations"], json!(["loc_sydney", "loc_burleigh"]));
        assert_eq!(data["channels"][0]["type"], "phone");
        assert_eq!(data["channels"][0]["identifier"], PHONE);
        assert_eq!(data["channels"][0]["transactionalOptedOutAt"], Value::Null);
        assert_eq!(
            data["channels"][0]["marketingOptedInLocationUids"],
            json!([])
        );
        assert!(data["createdAt"].as_str().unwrap().ends_with('Z'));
    }
    let missing = t
        .call("GET", "/v4/contacts/%2B61400000000", Some(&tok), None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json["code"], "not_found");

    let p = t
        .call(
            "PATCH",
            "/v4/contacts/%2B61412345678",
            Some(&tok),
            Some(json!({"name": "Ada L.", "email": "ada@example.com", "locations": ["loc_sanfrancisco"]})),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.json["data"]["name"], "Ada L.");
    assert_eq!(p.json["data"]["emails"], json!(["ada@example.com"]));
    assert_eq!(p.json["data"]["locations"], json!(["loc_sanfrancisco"]));

    let s = t.state().await;
    assert_eq!(s["contact_creates"], 2);
    assert_eq!(s["contacts"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn contact_validation() {
    let t = T::new();
    let tok = t.token().await;
    let cases = [
        (
            json!({"phoneNumber": PHONE, "locations": ["loc_sydney"]}),
            "invalid_request",
        ),
        (
            json!({"name": " ", "phoneNumber": PHONE, "locations": ["loc_sydney"]}),
            "invalid_request",
        ),
        (
            json!({"name": "A", "phoneNumber": "0412345678", "locations": ["loc_sydney"]}),
            "invalid_request",
        ),
        (
            json!({"name": "A", "phoneNumber": PHONE}),
            "invalid_request",
        ),
        (
            json!({"name": "A", "phoneNumber": PHONE, "locations": []}),
            "invalid_request",
        ),
        (
            json!({"name": "A", "locations": ["loc_sydney"]}),
            "invalid_request",
        ),
        (
            json!({"name": "A", "email": "not-an-email", "locations": ["loc_sydney"]}),
            "invalid_request",
        ),
        (
            json!({"name": "A", "phoneNumber": PHONE, "locations": ["loc_nowhere"]}),
            "invalid_location",
        ),
    ];
    for (body, code) in cases {
        let r = t
            .call("POST", "/v4/contacts", Some(&tok), Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.json["code"], code, "{body}");
        assert!(!r.json["message"].as_str().unwrap().is_empty());
    }
    let not_json = Request::builder()
        .method("POST")
        .uri("/v4/contacts")
        .header(header::AUTHORIZATION, format!("Bearer {tok}"))
        .body(Body::from("{nope"))
        .unwrap();
    assert_eq!(t.send(not_json).await.json["code"], "invalid_request");
    assert_eq!(t.state().await["contact_creates"], 0);
}

#[tokio::test]
async fn concurrent_creates_race_into_a_duplicate_but_sequential_ones_do_not() {
    let t = T::new(); // race window 25 ms
    let tok = t.token().await;
    let (a, b) = tokio::join!(
        t.create_contact(&tok, PHONE, "loc_sydney"),
        t.create_contact(&tok, PHONE, "loc_sydney"),
    );
    assert_eq!(
        (a.status, b.status),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED)
    );
    let (ua, ub) = (&a.json["data"]["identifier"], &b.json["data"]["identifier"]);
    assert_ne!(ua, ub, "the race window must let both create");
    let s = t.state().await;
    assert_eq!(s["contact_creates"], 2);
    let dups = t
        .call("GET", "/_sandbox/contacts?phone=%2B61412345678", None, None)
        .await;
    assert_eq!(dups.json["data"].as_array().unwrap().len(), 2);
    // Reading by phone returns the first created.
    let first = s["contacts"][0]["uid"].clone();
    let g = t
        .call("GET", "/v4/contacts/%2B61412345678", Some(&tok), None)
        .await;
    assert_eq!(g.json["data"]["uid"], first);

    // Serialized (as a per-phone gateway would do): one contact.
    let other = "+61498765432";
    let c = t.create_contact(&tok, other, "loc_sydney").await;
    let d = t.create_contact(&tok, other, "loc_sydney").await;
    assert_eq!(c.json["data"]["identifier"], d.json["data"]["identifier"]);
    assert_eq!(t.state().await["contact_creates"], 3);

    // With the window at 0 even concurrent creates cannot race.
    let t0 = T::with(settings(|s| s.upsert_race_window_ms = 0));
    let tok0 = t0.token().await;
    let (a, b) = tokio::join!(
        t0.create_contact(&tok0, PHONE, "loc_sydney"),
        t0.create_contact(&tok0, PHONE, "loc_sydney"),
    );
    assert_eq!(a.json["data"]["identifier"], b.json["data"]["identifier"]);
    assert_eq!(t0.state().await["contact_creates"], 1);
}

// ---------------------------------------------------------------- messages

#[tokio::test]
async fn messages_ok_unknown_location_and_opt_out() {
    let t = T::new();
    let tok = t.token().await;
    // No contact yet: accepted, recorded with a null contact, no contact created.
    let r = t.message(&tok, PHONE, "loc_sydney").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.json["data"]["body"], "Hello from the website");
    assert_eq!(
        r.json["data"]["channel"],
        json!({"type": "phone", "identifier": PHONE})
    );
    assert_eq!(r.json["data"]["locationUid"], "loc_sydney");
    assert_eq!(r.json["data"]["contactUid"], Value::Null);
    assert!(r.json["data"]["uid"].is_string());
    assert_eq!(t.state().await["contacts"], json!([]));

    let bad = t.message(&tok, PHONE, "loc_mars").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json["code"], "invalid_location");

    let uid = t.create_contact(&tok, PHONE, "loc_sydney").await.json["data"]["identifier"].clone();
    let ok = t.message(&tok, PHONE, "loc_sydney").await;
    assert_eq!(ok.json["data"]["contactUid"], uid);

    let out = t
        .call(
            "POST",
            "/_sandbox/contacts/%2B61412345678/opt-out",
            None,
            None,
        )
        .await;
    assert_eq!(out.status, StatusCode::OK);
    let g = t
        .call("GET", "/v4/contacts/%2B61412345678", Some(&tok), None)
        .await;
    assert!(g.json["data"]["channels"][0]["transactionalOptedOutAt"].is_string());
    let refused = t.message(&tok, PHONE, "loc_sydney").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.json["code"], "opted_out");
    assert_eq!(ok.json["data"]["direction"], "outbound");
    // The customer's own webchat message is still recorded: it texts nobody.
    let inbound = t
        .call(
            "POST",
            "/v4/messages",
            Some(&tok),
            Some(
                json!({"body": "hi again", "channel": {"type": "phone", "identifier": PHONE},
                        "locationUid": "loc_sydney", "webchatUrl": "https://shop.example/sydney/"}),
            ),
        )
        .await;
    assert_eq!(inbound.status, StatusCode::ACCEPTED);
    assert_eq!(inbound.json["data"]["direction"], "inbound_webchat");
    t.call("POST", "/_sandbox/contacts/+61412345678/opt-in", None, None)
        .await;
    assert_eq!(
        t.message(&tok, PHONE, "loc_sydney").await.status,
        StatusCode::ACCEPTED
    );
    let nobody = t
        .call(
            "POST",
            "/_sandbox/contacts/%2B61400000000/opt-out",
            None,
            None,
        )
        .await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);

    // Validation.
    for body in [
        json!({"channel": {"type": "phone", "identifier": PHONE}, "locationUid": "loc_sydney"}),
        json!({"body": "", "channel": {"type": "phone", "identifier": PHONE}, "locationUid": "loc_sydney"}),
        json!({"body": "x", "locationUid": "loc_sydney"}),
        json!({"body": "x", "channel": {"type": "sms", "identifier": PHONE}, "locationUid": "loc_sydney"}),
        json!({"body": "x", "channel": {"type": "phone", "identifier": "0412"}, "locationUid": "loc_sydney"}),
        json!({"body": "x", "channel": {"type": "phone", "identifier": PHONE}}),
    ] {
        let r = t
            .call("POST", "/v4/messages", Some(&tok), Some(body.clone()))
            .await;
        assert_eq!(
            (r.status, r.json["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{body}"
        );
    }

    let listed = t
        .call(
            "GET",
            "/_sandbox/messages?locationUid=loc_sydney&phone=%2B61412345678",
            None,
            None,
        )
        .await;
    // Two outbound texts, the inbound webchat message, the text after opting back in.
    assert_eq!(listed.json["data"].as_array().unwrap().len(), 4);
    let plus_as_space = t
        .call("GET", "/_sandbox/messages?phone=+61412345678", None, None)
        .await;
    assert_eq!(plus_as_space.json["data"].as_array().unwrap().len(), 4);
    let elsewhere = t
        .call(
            "GET",
            "/_sandbox/messages?locationUid=loc_burleigh",
            None,
            None,
        )
        .await;
    assert_eq!(elsewhere.json["data"], json!([]));
}

// ---------------------------------------------------------------- attachments

const BOUNDARY: &str = "sandbox-test-boundary";

fn multipart_head(data: &Value, filename: &str, content_type: &str) -> String {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"data\"\r\nContent-Type: application/json\r\n\r\n{data}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
}

fn multipart_tail() -> String {
    format!("\r\n--{BOUNDARY}--\r\n")
}

fn attachment_request(tok: &str, body: Body, content_length: Option<u64>) -> Request<Body> {
    let mut b = Request::builder()
        .method("POST")
        .uri("/v4/messages/attachment")
        .header(header::AUTHORIZATION, format!("Bearer {tok}"))
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        );
    if let Some(n) = content_length {
        b = b.header(header::CONTENT_LENGTH, n);
    }
    b.body(body).unwrap()
}

static CHUNK: [u8; 64 * 1024] = [b'a'; 64 * 1024];

/// A multipart body whose file is `size` bytes of `a`, generated lazily.
fn streamed_body(tok: &str, size: u64, declare_length: bool) -> Request<Body> {
    let data = json!({"body": "", "channel": {"type": "phone", "identifier": PHONE}, "locationUid": "loc_sydney"});
    let head = multipart_head(&data, "big.bin", "application/octet-stream");
    let tail = multipart_tail();
    let total = head.len() as u64 + size + tail.len() as u64;
    let full = size / CHUNK.len() as u64;
    let rest = usize::try_from(size % CHUNK.len() as u64).unwrap();
    let parts = std::iter::once(Bytes::from(head))
        .chain((0..full).map(|_| Bytes::from_static(&CHUNK)))
        .chain(std::iter::once(Bytes::from_static(&CHUNK[..rest])))
        .chain(std::iter::once(Bytes::from(tail)))
        .map(Ok::<_, std::io::Error>);
    let body = Body::from_stream(futures_util::stream::iter(parts));
    attachment_request(tok, body, declare_length.then_some(total))
}

#[tokio::test]
async fn attachment_ok_records_metadata_and_sha256() {
    let t = T::new();
    let tok = t.token().await;
    let file = b"%PDF-1.4 pretend invoice".to_vec();
    let data = json!({"body": "Your invoice", "channel": {"type": "phone", "identifier": PHONE},
                      "locationUid": "loc_sanfrancisco", "senderName": "Shop"});
    let mut body = multipart_head(&data, "invoice.pdf", "application/pdf").into_bytes();
    body.extend_from_slice(&file);
    body.extend_from_slice(multipart_tail().as_bytes());
    let r = t
        .send(attachment_request(&tok, Body::from(body), None))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    assert_eq!(r.json["data"]["body"], "Your invoice");
    let want = podium_sandbox::util::hex(&Sha256::digest(&file));
    let s = t.state().await;
    let a = &s["attachments"][0];
    assert_eq!(a["filename"], "invoice.pdf");
    assert_eq!(a["contentType"], "application/pdf");
    assert_eq!(a["size"], file.len());
    assert_eq!(a["sha256"], want.as_str());
    assert_eq!(a["messageUid"], r.json["data"]["uid"]);
    assert_eq!(s["messages"][0]["attachment"]["sha256"], want.as_str());

    // Missing parts and bad data.
    let only_data = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n{data}\r\n--{BOUNDARY}--\r\n"
    );
    let r = t
        .send(attachment_request(&tok, Body::from(only_data), None))
        .await;
    assert_eq!(
        (r.status, r.json["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let bad_loc =
        json!({"channel": {"type": "phone", "identifier": PHONE}, "locationUid": "loc_x"});
    let mut body = multipart_head(&bad_loc, "a.txt", "text/plain").into_bytes();
    body.extend_from_slice(b"hi");
    body.extend_from_slice(multipart_tail().as_bytes());
    let r = t
        .send(attachment_request(&tok, Body::from(body), None))
        .await;
    assert_eq!(r.json["code"], "invalid_location");
    let not_multipart = t
        .call(
            "POST",
            "/v4/messages/attachment",
            Some(&tok),
            Some(json!({})),
        )
        .await;
    assert_eq!(not_multipart.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn attachment_limit_is_25_000_000_bytes_enforced_while_streaming() {
    let t = T::new();
    let tok = t.token().await;
    // Exactly at the limit: accepted (streamed without a declared length).
    let r = t.send(streamed_body(&tok, 25_000_000, false)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    assert_eq!(t.state().await["attachments"][0]["size"], 25_000_000);
    // One byte over, no Content-Length: refused mid-stream.
    let r = t.send(streamed_body(&tok, 25_000_001, false)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json["code"], "payload_too_large");
    // Far over with an honest Content-Length: refused before reading.
    let r = t.send(streamed_body(&tok, 40_000_000, true)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(t.state().await["attachments"].as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------- locations

#[tokio::test]
async fn locations_paginate_with_cursor() {
    let t = T::new();
    let tok = t.token().await;
    let all = t.call("GET", "/v4/locations", Some(&tok), None).await;
    assert_eq!(all.json["data"].as_array().unwrap().len(), 3);
    assert_eq!(all.json["metadata"]["nextCursor"], Value::Null);
    let syd = &all.json["data"][0];
    assert_eq!(syd["uid"], "loc_sydney");
    assert_eq!(syd["phoneNumber"], "+61293744000");
    assert_eq!(syd["addressDetails"]["country"], "AU");
    assert_eq!(syd["archived"], false);

    let p1 = t
        .call("GET", "/v4/locations?limit=2", Some(&tok), None)
        .await;
    let uids: Vec<_> = p1.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["uid"].clone())
        .collect();
    assert_eq!(uids, vec![json!("loc_sydney"), json!("loc_burleigh")]);
    let cursor = p1.json["metadata"]["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let p2 = t
        .call(
            "GET",
            &format!("/v4/locations?limit=2&cursor={cursor}"),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(p2.json["data"][0]["uid"], "loc_sanfrancisco");
    assert_eq!(p2.json["data"].as_array().unwrap().len(), 1);
    assert_eq!(p2.json["metadata"]["nextCursor"], Value::Null);

    for q in ["limit=0", "limit=101", "limit=x", "cursor=zz"] {
        let r = t
            .call("GET", &format!("/v4/locations?{q}"), Some(&tok), None)
            .await;
        assert_eq!(
            (r.status, r.json["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{q}"
        );
    }
    let one = t
        .call("GET", "/v4/locations/loc_burleigh", Some(&tok), None)
        .await;
    assert_eq!(one.json["data"]["addressDetails"]["country"], "AU");
}

// ---------------------------------------------------------------- faults

#[tokio::test]
async fn faults_are_consumed_in_order_with_headers_only_when_given() {
    let t = T::new();
    let tok = t.token().await;
    let q = t
        .call(
            "POST",
            "/_sandbox/faults",
            None,
            Some(
                json!({"method": "POST", "path": "/v4/messages", "responses": [
                    {"status": 500}, {"status": 429, "retry_after": 2}, {"status": 429},
                    {"status": 409}, {"status": 400, "code": "invalid_request"},
                    {"status": 202, "delay_ms": 300}
                ]}),
            ),
        )
        .await;
    assert_eq!(q.status, StatusCode::CREATED);
    assert_eq!(q.json["queued"], 6);

    // A GET to another route does not consume anything.
    assert_eq!(
        t.call("GET", "/v4/locations", Some(&tok), None)
            .await
            .status,
        StatusCode::OK
    );

    let expected = [
        (500, Some("internal_error"), None),
        (429, Some("rate_limit"), Some("2")),
        (429, Some("rate_limit"), None),
        (409, Some("conflict"), None),
        (400, Some("invalid_request"), None),
    ];
    for (status, code, retry_after) in expected {
        let r = t.message(&tok, PHONE, "loc_sydney").await;
        assert_eq!(r.status.as_u16(), status);
        assert_eq!(r.json["code"].as_str(), code);
        assert!(r.json["message"].is_string() && r.json["moreInfo"].is_string());
        assert_eq!(
            r.headers
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap()),
            retry_after,
            "status {status}"
        );
    }
    assert_eq!(
        t.state().await["messages"],
        json!([]),
        "faulted requests do nothing"
    );
    let started = Instant::now();
    let slow = t.message(&tok, PHONE, "loc_sydney").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(slow.status, StatusCode::ACCEPTED);
    assert_eq!(
        t.message(&tok, PHONE, "loc_sydney").await.status,
        StatusCode::ACCEPTED
    );

    let s = t.state().await;
    assert_eq!(s["faults_pending"], json!([]));
    assert_eq!(s["messages"].as_array().unwrap().len(), 2);
    let msgs: Vec<_> = s["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/v4/messages")
        .map(|r| {
            (
                r["status"].as_u64().unwrap(),
                r["faulted"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        msgs,
        vec![
            (500, true),
            (429, true),
            (429, true),
            (409, true),
            (400, true),
            (202, true),
            (202, false)
        ]
    );
}

#[tokio::test]
async fn a_slow_success_is_still_processed_when_the_caller_gives_up() {
    let t = T::new();
    let tok = t.token().await;
    t.call(
        "POST",
        "/_sandbox/faults",
        None,
        Some(json!({"method": "POST", "path": "/v4/messages", "status": 202, "delay_ms": 200})),
    )
    .await;
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        t.message(&tok, PHONE, "loc_sydney"),
    )
    .await;
    assert!(gave_up.is_err(), "the caller timed out");
    assert_eq!(t.state().await["messages"], json!([]));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let s = t.state().await;
    assert_eq!(
        s["messages"].as_array().unwrap().len(),
        1,
        "Podium did send it"
    );
    assert_eq!(
        s["requests"].as_array().unwrap().last().unwrap()["status"],
        202
    );
}

#[tokio::test]
async fn fault_shorthand_prefix_delay_integer_code_and_clear() {
    let t = T::new();
    let tok = t.token().await;
    t.call(
        "POST",
        "/_sandbox/faults",
        None,
        Some(json!([
            {"path": "/v4/contacts*", "status": 503, "count": 2, "delay_ms": 150, "code": 5003},
            {"method": "POST", "path": "/oauth/token", "status": 500}
        ])),
    )
    .await;
    let started = Instant::now();
    let a = t
        .call("GET", "/v4/contacts/%2B61412345678", Some(&tok), None)
        .await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.json["code"], 5003);
    assert!(a.headers.get(header::RETRY_AFTER).is_none());
    let b = t.create_contact(&tok, PHONE, "loc_sydney").await;
    assert_eq!(b.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        t.create_contact(&tok, PHONE, "loc_sydney").await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        t.refresh("sandbox-refresh-token").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        t.refresh("sandbox-refresh-token").await.status,
        StatusCode::OK
    );

    t.call(
        "POST",
        "/_sandbox/faults",
        None,
        Some(json!({"path": "/v4/*", "status": 500, "count": 9})),
    )
    .await;
    assert_eq!(
        t.call("GET", "/_sandbox/faults", None, None).await.json["faults_pending"][0]["responses"]
            .as_array()
            .unwrap()
            .len(),
        9
    );
    let cleared = t.call("DELETE", "/_sandbox/faults", None, None).await;
    assert_eq!(cleared.json["cleared"], 9);
    assert_eq!(
        t.call("GET", "/v4/locations", Some(&tok), None)
            .await
            .status,
        StatusCode::OK
    );

    for bad in [
        json!({"path": "/v4/messages"}),
        json!({"path": "/x", "status": 99}),
        json!({"status": 500}),
    ] {
        let r = t
            .call("POST", "/_sandbox/faults", None, Some(bad.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

// ---------------------------------------------------------------- rate limit, reset, misc

#[tokio::test]
async fn rate_limit_per_token_without_retry_after() {
    let t = T::with(settings(|s| s.rate_limit_per_minute = 5));
    let tok = t.token().await;
    for _ in 0..5 {
        assert_eq!(
            t.call("GET", "/v4/locations", Some(&tok), None)
                .await
                .status,
            StatusCode::OK
        );
    }
    let r = t.call("GET", "/v4/locations", Some(&tok), None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.json["code"], "rate_limit");
    assert!(r.headers.get(header::RETRY_AFTER).is_none());
    // Another token has its own budget; the token endpoint is not limited.
    let other = t.token().await;
    assert_eq!(
        t.call("GET", "/v4/locations", Some(&other), None)
            .await
            .status,
        StatusCode::OK
    );
    // Turn it off at run time.
    t.call(
        "POST",
        "/_sandbox/config",
        None,
        Some(json!({"rate_limit_per_minute": 0})),
    )
    .await;
    assert_eq!(
        t.call("GET", "/v4/locations", Some(&tok), None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn reset_returns_to_seeds() {
    let t = T::with(settings(|s| s.upsert_race_window_ms = 0));
    let tok = t.token().await;
    t.create_contact(&tok, PHONE, "loc_sydney").await;
    t.message(&tok, PHONE, "loc_sydney").await;
    t.call(
        "POST",
        "/_sandbox/faults",
        None,
        Some(json!({"path": "/v4/messages", "status": 500})),
    )
    .await;
    t.call(
        "POST",
        "/_sandbox/alerts",
        None,
        Some(json!({"text": "down"})),
    )
    .await;
    t.call(
        "POST",
        "/_sandbox/config",
        None,
        Some(json!({"rate_limit_per_minute": 1})),
    )
    .await;
    let r = t.call("POST", "/_sandbox/reset", None, None).await;
    assert_eq!(r.json["tokens_revoked"], false);
    let s = t.state().await;
    for key in [
        "contacts",
        "messages",
        "attachments",
        "requests",
        "faults_pending",
        "alerts",
        "hooks",
    ] {
        assert_eq!(s[key], json!([]), "{key}");
    }
    assert_eq!(s["contact_creates"], 0);
    assert_eq!(s["token_refreshes"], 0);
    assert_eq!(s["settings"]["rate_limit_per_minute"], 300);
    // Tokens survive a plain reset, not a revoking one.
    assert_eq!(
        t.call("GET", "/v4/locations", Some(&tok), None)
            .await
            .status,
        StatusCode::OK
    );
    t.call(
        "POST",
        "/_sandbox/reset",
        None,
        Some(json!({"revoke_tokens": true})),
    )
    .await;
    assert_eq!(
        t.call("GET", "/v4/locations", Some(&tok), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    t.token().await;
}

#[tokio::test]
async fn unknown_routes_methods_and_receivers() {
    let t = T::new();
    let tok = t.token().await;
    let r = t.call("GET", "/nope", None, None).await;
    assert_eq!(
        (r.status, r.json["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("route_not_found"))
    );
    let r = t.call("GET", "/v4/nope", Some(&tok), None).await;
    assert_eq!(r.json["code"], "route_not_found");
    let r = t.call("DELETE", "/v4/messages", Some(&tok), None).await;
    assert_eq!(
        (r.status, r.json["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );

    let a = t
        .call(
            "POST",
            "/_sandbox/alerts",
            None,
            Some(json!({"text": "5xx spike"})),
        )
        .await;
    assert_eq!((a.status, a.json.as_str()), (StatusCode::OK, Some("ok")));
    let h = t
        .call(
            "POST",
            "/_sandbox/hooks/podium",
            None,
            Some(json!({"data": {}, "metadata": {"event_type": "message.sent"}})),
        )
        .await;
    assert_eq!(h.status, StatusCode::OK);
    let bad = Request::builder()
        .method("POST")
        .uri("/_sandbox/alerts")
        .body(Body::from("not json"))
        .unwrap();
    assert_eq!(t.send(bad).await.status, StatusCode::BAD_REQUEST);
    let s = t.state().await;
    assert_eq!(s["alerts"][0]["body"]["text"], "5xx spike");
    assert_eq!(s["hooks"][0]["name"], "podium");
    assert_eq!(
        s["hooks"][0]["body"]["metadata"]["event_type"],
        "message.sent"
    );
    assert_eq!(
        t.call("GET", "/_sandbox/health", None, None).await.json["ok"],
        true
    );

    // No podium-version header: recorded as null.
    let req = Request::builder()
        .uri("/v4/locations")
        .header(header::AUTHORIZATION, format!("Bearer {tok}"))
        .body(Body::empty())
        .unwrap();
    t.send(req).await;
    let s = t.state().await;
    assert_eq!(
        s["requests"].as_array().unwrap().last().unwrap()["podium_version"],
        Value::Null
    );
}
