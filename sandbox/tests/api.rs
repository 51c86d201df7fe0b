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
        "invites",
        "shopify_orders",
        "webhooks_sent",
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

// ---------------------------------------------------------------- Shopify orders

const ORDER_PATH: &str = "/admin/api/2024-10/orders/5551234.json";

async fn shopify_get(t: &T, path: &str, token: Option<&str>) -> Resp {
    let mut b = Request::builder().uri(path);
    if let Some(tok) = token {
        b = b.header("X-Shopify-Access-Token", tok);
    }
    t.send(b.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn shopify_orders_token_404_create_merge_and_list() {
    let t = T::new();
    for tok in [None, Some(""), Some("  ")] {
        let r = shopify_get(&t, ORDER_PATH, tok).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{tok:?}");
        assert_eq!(
            r.json,
            json!({"errors": "[API] Invalid API key or access token"})
        );
    }
    let r = shopify_get(&t, ORDER_PATH, Some("shpat_x")).await;
    assert_eq!(
        (r.status, r.json.clone()),
        (StatusCode::NOT_FOUND, json!({"errors": "Not Found"}))
    );

    let put = t
        .call(
            "PUT",
            "/_sandbox/shopify/orders/5551234",
            None,
            Some(json!({"phone": PHONE, "customer": {"phone": PHONE}})),
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.json);
    assert_eq!(put.json["created"], true);
    let r = shopify_get(&t, ORDER_PATH, Some("shpat_x")).await;
    assert_eq!(r.status, StatusCode::OK);
    let o = &r.json["order"];
    assert_eq!(o["id"], 5_551_234);
    assert_eq!(o["name"], "#5551234");
    assert_eq!(o["phone"], PHONE);
    assert_eq!(o["email"], Value::Null);
    assert_eq!(o["financial_status"], "paid");
    assert_eq!(o["cancelled_at"], Value::Null);
    assert_eq!(o["fulfillment_status"], Value::Null);
    assert_eq!(o["customer"], json!({"phone": PHONE}));
    assert_eq!(o["shipping_address"], Value::Null);
    assert_eq!(o["billing_address"], Value::Null);
    assert!(o["updated_at"].as_str().unwrap().ends_with('Z'));

    // Partial fields merge; nested objects merge key by key; the path id wins.
    let put = t
        .call(
            "PUT",
            "/_sandbox/shopify/orders/5551234",
            None,
            Some(json!({"id": 1, "financial_status": "refunded", "cancelled_at": "2024-05-01T10:00:00Z",
                        "fulfillment_status": "fulfilled", "shipping_address": {"phone": "+61400000001"},
                        "customer": {"email": "ada@example.com"}, "tags": "vip"})),
        )
        .await;
    assert_eq!(
        (put.status, &put.json["created"]),
        (StatusCode::OK, &json!(false))
    );
    let o = shopify_get(&t, ORDER_PATH, Some("t")).await.json["order"].clone();
    assert_eq!(o["id"], 5_551_234);
    assert_eq!(o["financial_status"], "refunded");
    assert_eq!(o["cancelled_at"], "2024-05-01T10:00:00Z");
    assert_eq!(o["shipping_address"]["phone"], "+61400000001");
    assert_eq!(
        o["customer"],
        json!({"phone": PHONE, "email": "ada@example.com"})
    );
    assert_eq!(o["tags"], "vip");
    assert_eq!(o["phone"], PHONE);
    t.call(
        "PUT",
        "/_sandbox/shopify/orders/5551234",
        None,
        Some(json!({"cancelled_at": null, "phone": null})),
    )
    .await;
    let o = shopify_get(&t, ORDER_PATH, Some("t")).await.json["order"].clone();
    assert_eq!(
        (&o["cancelled_at"], &o["phone"]),
        (&Value::Null, &Value::Null)
    );

    // Non-numeric ids, other API versions, a path without `.json`.
    t.call(
        "PUT",
        "/_sandbox/shopify/orders/gid-7",
        None,
        Some(json!({})),
    )
    .await;
    let r = shopify_get(&t, "/admin/api/2025-01/orders/gid-7.json", Some("t")).await;
    assert_eq!(r.json["order"]["id"], "gid-7");
    let r = shopify_get(&t, "/admin/api/2024-10/orders/5551234", Some("t")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let listed = t.call("GET", "/_sandbox/shopify/orders", None, None).await;
    let ids: Vec<_> = listed.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(5_551_234), json!("gid-7")]);

    for bad in [
        json!({"financial_status": 3}),
        json!({"phone": 61_400_000_000_u64}),
        json!({"customer": "x"}),
        json!({"shipping_address": {"phone": 1}}),
        json!([]),
    ] {
        let r = t
            .call("PUT", "/_sandbox/shopify/orders/9", None, Some(bad.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.json["code"], "invalid_request");
    }

    // Faults apply to Shopify routes like to any other; requests are recorded.
    t.call(
        "POST",
        "/_sandbox/faults",
        None,
        Some(
            json!({"method": "GET", "path": "/admin/api/*", "status": 503,
                    "body": {"errors": "Service Unavailable"}}),
        ),
    )
    .await;
    let r = shopify_get(&t, ORDER_PATH, Some("t")).await;
    assert_eq!(
        (r.status, r.json),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"errors": "Service Unavailable"})
        )
    );
    assert_eq!(
        shopify_get(&t, ORDER_PATH, Some("t")).await.status,
        StatusCode::OK
    );
    let s = t.state().await;
    assert!(s["requests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["path"] == ORDER_PATH && r["faulted"] == true));
    assert_eq!(s["shopify_orders"].as_array().unwrap().len(), 2);
    t.call("POST", "/_sandbox/reset", None, None).await;
    assert_eq!(
        shopify_get(&t, ORDER_PATH, Some("t")).await.status,
        StatusCode::NOT_FOUND
    );
}

// ---------------------------------------------------------------- review invites

async fn invite(t: &T, tok: &str, body: Value) -> Resp {
    t.call("POST", "/v4/reviews/invites", Some(tok), Some(body))
        .await
}

#[tokio::test]
async fn review_invites_create_get_validate_opt_out_and_status() {
    let t = T::with(settings(|s| s.upsert_race_window_ms = 0));
    let tok = t.token().await;
    let r = invite(
        &t,
        &tok,
        json!({"locationUid": "loc_sydney", "phoneNumber": PHONE, "customerName": "Ada",
               "reviewSiteUid": "site_google", "platform": "google", "orderId": "5551234"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let d = r.json["data"].clone();
    let uid = d["uid"].as_str().unwrap().to_owned();
    assert_eq!(d["locationUid"], "loc_sydney");
    assert_eq!(d["phoneNumber"], PHONE);
    assert_eq!(d["email"], Value::Null);
    assert_eq!(d["deliveryStatus"], "pending");
    assert_eq!(d["customerName"], "Ada");
    assert_eq!(d["reviewSiteUid"], "site_google");
    assert_eq!(d["platform"], "google");
    assert_eq!(d["orderId"], "5551234");
    let short = d["shortUrl"].as_str().unwrap();
    assert!(short.len() > "https://pdm.sh/".len() && short.starts_with("https://pdm.sh/"));
    assert!(d["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(d["createdAt"], d["updatedAt"]);

    let g = t
        .call(
            "GET",
            &format!("/v4/reviews/invites/{uid}"),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!((g.status, &g.json["data"]), (StatusCode::OK, &d));
    let missing = t
        .call("GET", "/v4/reviews/invites/nope", Some(&tok), None)
        .await;
    assert_eq!(
        (missing.status, missing.json["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let unauthorized = t
        .call("POST", "/v4/reviews/invites", None, Some(json!({})))
        .await;
    assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);

    let by_email = invite(
        &t,
        &tok,
        json!({"locationUid": "loc_burleigh", "email": "bo@example.com"}),
    )
    .await;
    assert_eq!(by_email.status, StatusCode::CREATED);
    assert_eq!(by_email.json["data"]["email"], "bo@example.com");
    assert_eq!(by_email.json["data"]["phoneNumber"], Value::Null);

    for (body, code) in [
        (json!({"phoneNumber": PHONE}), "invalid_request"),
        (json!({"locationUid": "loc_sydney"}), "invalid_request"),
        (
            json!({"locationUid": "loc_sydney", "phoneNumber": PHONE, "email": "a@b.co"}),
            "invalid_request",
        ),
        (
            json!({"locationUid": "loc_sydney", "phoneNumber": "0412345678"}),
            "invalid_request",
        ),
        (
            json!({"locationUid": "loc_sydney", "email": "nope"}),
            "invalid_request",
        ),
        (
            json!({"locationUid": "loc_sydney", "phoneNumber": PHONE, "customerName": 7}),
            "invalid_request",
        ),
        (
            json!({"locationUid": "loc_mars", "phoneNumber": PHONE}),
            "invalid_location",
        ),
        (json!([1]), "invalid_request"),
    ] {
        let r = invite(&t, &tok, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.json["code"], code, "{body}");
        assert!(r.json["moreInfo"].is_string());
    }

    // An opted-out phone is refused like an outbound text.
    t.create_contact(&tok, PHONE, "loc_sydney").await;
    t.call(
        "POST",
        "/_sandbox/contacts/%2B61412345678/opt-out",
        None,
        None,
    )
    .await;
    let refused = invite(
        &t,
        &tok,
        json!({"locationUid": "loc_sydney", "phoneNumber": PHONE}),
    )
    .await;
    assert_eq!(
        (refused.status, refused.json["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("opted_out"))
    );

    // The initial status is a setting.
    let c = t
        .call(
            "POST",
            "/_sandbox/config",
            None,
            Some(json!({"invite_initial_status": "sent"})),
        )
        .await;
    assert_eq!(c.json["settings"]["invite_initial_status"], "sent");
    let sent = invite(
        &t,
        &tok,
        json!({"locationUid": "loc_sydney", "phoneNumber": "+61498765432"}),
    )
    .await;
    assert_eq!(sent.json["data"]["deliveryStatus"], "sent");
    let bad = t
        .call(
            "POST",
            "/_sandbox/config",
            None,
            Some(json!({"invite_initial_status": "read"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Control: list in order, set a status (no webhook target: nothing emitted).
    let listed = t.call("GET", "/_sandbox/invites", None, None).await;
    let uids: Vec<_> = listed.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["uid"].clone())
        .collect();
    assert_eq!(uids.len(), 3);
    assert_eq!(uids[0], uid.as_str());
    let path = format!("/_sandbox/invites/{uid}/status");
    let st = t
        .call(
            "POST",
            &path,
            None,
            Some(json!({"deliveryStatus": "delivered"})),
        )
        .await;
    assert_eq!(st.status, StatusCode::OK);
    assert_eq!(st.json["changed"], true);
    assert_eq!(st.json["webhook"], Value::Null);
    assert_eq!(st.json["data"]["deliveryStatus"], "delivered");
    let g = t
        .call(
            "GET",
            &format!("/v4/reviews/invites/{uid}"),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(g.json["data"]["deliveryStatus"], "delivered");
    let same = t
        .call(
            "POST",
            &path,
            None,
            Some(json!({"deliveryStatus": "delivered"})),
        )
        .await;
    assert_eq!(same.json["changed"], false);
    for bad in [
        json!({"deliveryStatus": "read"}),
        json!({}),
        json!({"deliveryStatus": 1}),
    ] {
        let r = t.call("POST", &path, None, Some(bad.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = t
        .call(
            "POST",
            "/_sandbox/invites/nope/status",
            None,
            Some(json!({"deliveryStatus": "sent"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    t.call("POST", "/_sandbox/reset", None, None).await;
    let s = t.state().await;
    assert_eq!(s["invites"], json!([]));
    assert_eq!(s["settings"]["invite_initial_status"], "pending");
}

// ---------------------------------------------------------------- webhook emitter

/// One request as a webhook receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    request_line: String,
    headers: std::collections::HashMap<String, String>,
    body: String,
}

/// A loopback HTTP server that records each request and answers every one with `answer`
/// (a complete raw HTTP response), closing the connection after.
async fn receiver(
    answer: &'static str,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Received>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/podium", listener.local_addr().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let got2 = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                let n = s.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i;
                }
                assert!(n > 0, "closed before the head");
            };
            let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
            let mut lines = head.split("\r\n");
            let request_line = lines.next().unwrap().to_owned();
            let headers: std::collections::HashMap<String, String> = lines
                .map(|l| {
                    let (k, v) = l.split_once(':').unwrap();
                    (k.trim().to_ascii_lowercase(), v.trim().to_owned())
                })
                .collect();
            let len: usize = headers["content-length"].parse().unwrap();
            while buf.len() < head_end + 4 + len {
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0, "closed inside the body");
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8(buf[head_end + 4..head_end + 4 + len].to_vec()).unwrap();
            got2.lock().unwrap().push(Received {
                request_line,
                headers,
                body,
            });
            s.write_all(answer.as_bytes()).await.unwrap();
            let _ = s.shutdown().await;
        }
    });
    (url, got)
}

const JSON_200: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"received\":1}\n";

fn hmac_hex(secret: &str, msg: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(msg.as_bytes());
    podium_sandbox::util::hex(&mac.finalize().into_bytes())
}

/// A loopback port nothing listens on.
async fn closed_port_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/webhooks/podium")
}

#[tokio::test]
async fn webhook_target_validation_and_emit_without_target() {
    let t = T::new();
    let none = t
        .call(
            "POST",
            "/_sandbox/webhooks/emit",
            None,
            Some(json!({"event_type": "message.received", "data": {}})),
        )
        .await;
    assert_eq!(
        (none.status, none.json["code"].as_str()),
        (StatusCode::CONFLICT, Some("no_webhook_target"))
    );
    for bad in [
        json!({"url": "https://127.0.0.1:8787/webhooks/podium", "secret": "s"}),
        json!({"url": "http://example.com/webhooks/podium", "secret": "s"}),
        json!({"url": "http://127.0.0.1:8787/webhooks/podium", "secret": ""}),
        json!({"url": "http://127.0.0.1:8787/webhooks/podium"}),
        json!({"url": "http://127.0.0.1:8787/", "secret": "s", "typo": 1}),
    ] {
        let r = t
            .call("PUT", "/_sandbox/webhooks", None, Some(bad.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.json["code"], "invalid_request");
    }
    let ok = t
        .call(
            "PUT",
            "/_sandbox/webhooks",
            None,
            Some(json!({"url": "http://localhost:8787/webhooks/podium", "secret": "s"})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        ok.json["target"],
        json!({"url": "http://localhost:8787/webhooks/podium", "secret_set": true})
    );
    for bad in [
        json!({"data": {}}),
        json!({"event_type": "x"}),
        json!({"event_type": "x", "data": {}, "signature_encoding": "hexx"}),
        json!({"event_type": "x", "data": {}, "timestamp_ms": 1.5}),
        json!({"event_type": "x", "data": {}, "signature": "a\r\nb"}),
        json!({"event_type": "x", "data": {}, "nope": 1}),
    ] {
        let r = t
            .call("POST", "/_sandbox/webhooks/emit", None, Some(bad.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let del = t.call("DELETE", "/_sandbox/webhooks", None, None).await;
    assert_eq!(del.json["removed"], true);
    assert_eq!(
        t.call("GET", "/_sandbox/webhooks", None, None).await.json["target"],
        Value::Null
    );
}

#[tokio::test]
async fn emit_signs_posts_and_records_the_answer() {
    let t = T::new();
    let (url, got) = receiver(JSON_200).await;
    t.call(
        "PUT",
        "/_sandbox/webhooks",
        None,
        Some(json!({"url": url, "secret": "whsec-podium"})),
    )
    .await;
    let data =
        json!({"uid": "msg_1", "body": "hi", "conversation": {"channel": {"identifier": PHONE}}});
    let r = t
        .call(
            "POST",
            "/_sandbox/webhooks/emit",
            None,
            Some(json!({"event_type": "message.received", "data": data, "timestamp_ms": 1_620_771_659_663_u64})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["status"], 200);
    assert_eq!(r.json["body"], json!({"received": 1}));
    assert_eq!(r.json["error"], Value::Null);
    let sent_body = r.json["sent"]["body"].as_str().unwrap().to_owned();
    assert_eq!(
        serde_json::from_str::<Value>(&sent_body).unwrap(),
        json!({"data": data, "metadata": {"event_type": "message.received", "version": "2021.04.01"}})
    );
    let want_sig = hmac_hex("whsec-podium", &format!("1620771659663.{sent_body}"));
    assert_eq!(
        r.json["sent"]["headers"]["podium-timestamp"],
        "1620771659663"
    );
    assert_eq!(
        r.json["sent"]["headers"]["podium-signature"],
        want_sig.as_str()
    );

    let seen = got.lock().unwrap()[0].clone();
    assert_eq!(seen.request_line, "POST /webhooks/podium HTTP/1.1");
    assert_eq!(seen.body, sent_body, "the exact bytes that were signed");
    assert_eq!(seen.headers["content-type"], "application/json");
    assert_eq!(seen.headers["podium-timestamp"], "1620771659663");
    assert_eq!(seen.headers["podium-signature"], want_sig);
    assert_eq!(seen.headers["connection"], "close");

    // Base64, a default (current) timestamp, an override secret and a verbatim signature.
    let before = podium_sandbox::util::now_ms();
    let r = t
        .call(
            "POST",
            "/_sandbox/webhooks/emit",
            None,
            Some(json!({"event_type": "review.created", "data": {"rating": 5}, "signature_encoding": "base64"})),
        )
        .await;
    let ts: i64 = r.json["sent"]["headers"]["podium-timestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ts >= before && ts <= podium_sandbox::util::now_ms());
    let sig = r.json["sent"]["headers"]["podium-signature"]
        .as_str()
        .unwrap();
    let body = r.json["sent"]["body"].as_str().unwrap();
    let raw = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec-podium").unwrap();
        mac.update(format!("{ts}.{body}").as_bytes());
        mac.finalize().into_bytes()
    };
    assert_eq!(sig, podium_sandbox::webhooks::base64(&raw));
    assert_eq!(sig.len(), 44);
    let r = t
        .call(
            "POST",
            "/_sandbox/webhooks/emit",
            None,
            Some(
                json!({"event_type": "x", "data": null, "timestamp_ms": "abc", "secret": "wrong"}),
            ),
        )
        .await;
    let body = r.json["sent"]["body"].as_str().unwrap();
    assert_eq!(
        r.json["sent"]["headers"]["podium-signature"],
        hmac_hex("wrong", &format!("abc.{body}")).as_str()
    );
    let r = t
        .call(
            "POST",
            "/_sandbox/webhooks/emit",
            None,
            Some(json!({"event_type": "x", "data": {}, "signature": "deadbeef"})),
        )
        .await;
    assert_eq!(
        got.lock().unwrap()[3].headers["podium-signature"],
        "deadbeef"
    );
    assert_eq!(r.json["sent"]["headers"]["podium-signature"], "deadbeef");

    let s = t.state().await;
    let sent = s["webhooks_sent"].as_array().unwrap();
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[0]["event_type"], "message.received");
    assert_eq!(sent[0]["trigger"], "emit");
    assert_eq!(sent[0]["status"], 200);
    assert_eq!(s["webhook_target"]["url"], url.as_str());
    assert_eq!(s["requests"], json!([]), "control routes are not recorded");
}

#[tokio::test]
async fn emit_reads_chunked_and_text_answers_and_records_failures() {
    let t = T::new();
    let (url, _) = receiver(
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
         b\r\n{\"error\":\"b\r\n9\r\nad_sig\"}\n\r\n0\r\n\r\n",
    )
    .await;
    t.call(
        "PUT",
        "/_sandbox/webhooks",
        None,
        Some(json!({"url": url, "secret": "s"})),
    )
    .await;
    let emit = json!({"event_type": "message.received", "data": {}});
    let r = t
        .call("POST", "/_sandbox/webhooks/emit", None, Some(emit.clone()))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        (r.json["status"].as_u64(), &r.json["body"]),
        (Some(401), &json!({"error": "bad_sig"}))
    );

    let (url, _) =
        receiver("HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nboom")
            .await;
    t.call(
        "PUT",
        "/_sandbox/webhooks",
        None,
        Some(json!({"url": url, "secret": "s"})),
    )
    .await;
    let r = t
        .call("POST", "/_sandbox/webhooks/emit", None, Some(emit.clone()))
        .await;
    assert_eq!(
        (r.json["status"].as_u64(), &r.json["body"]),
        (Some(500), &json!("boom"))
    );

    // Nobody listening: 502, recorded with the error, the sandbox carries on.
    let url = closed_port_url().await;
    t.call(
        "PUT",
        "/_sandbox/webhooks",
        None,
        Some(json!({"url": url, "secret": "s"})),
    )
    .await;
    let r = t
        .call("POST", "/_sandbox/webhooks/emit", None, Some(emit.clone()))
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.json["status"], Value::Null);
    assert!(
        r.json["error"].as_str().unwrap().contains("connect"),
        "{}",
        r.json
    );
    assert!(r.json["sent"]["headers"]["podium-signature"].is_string());

    // Only the last 200 are kept.
    for _ in 0..200 {
        t.call("POST", "/_sandbox/webhooks/emit", None, Some(emit.clone()))
            .await;
    }
    let s = t.state().await;
    let sent = s["webhooks_sent"].as_array().unwrap();
    assert_eq!(sent.len(), 200);
    assert!(sent.iter().all(|w| w["status"].is_null()));
    assert_eq!(
        t.call("GET", "/_sandbox/health", None, None).await.status,
        StatusCode::OK
    );
    t.call("POST", "/_sandbox/reset", None, None).await;
    let s = t.state().await;
    assert_eq!(
        (&s["webhooks_sent"], &s["webhook_target"]),
        (&json!([]), &Value::Null)
    );
}

#[tokio::test]
async fn invite_status_and_opt_out_emit_webhooks() {
    let t = T::with(settings(|s| s.upsert_race_window_ms = 0));
    let tok = t.token().await;
    let (url, got) = receiver(JSON_200).await;
    t.call(
        "PUT",
        "/_sandbox/webhooks",
        None,
        Some(json!({"url": url, "secret": "s"})),
    )
    .await;
    let inv = invite(
        &t,
        &tok,
        json!({"locationUid": "loc_sydney", "phoneNumber": PHONE}),
    )
    .await;
    let uid = inv.json["data"]["uid"].as_str().unwrap().to_owned();
    assert!(
        got.lock().unwrap().is_empty(),
        "creating an invite emits nothing"
    );
    let path = format!("/_sandbox/invites/{uid}/status");
    let st = t
        .call(
            "POST",
            &path,
            None,
            Some(json!({"deliveryStatus": "failed"})),
        )
        .await;
    assert_eq!(st.json["webhook"]["status"], 200);
    let seen = got.lock().unwrap()[0].clone();
    let body: Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(body["metadata"]["event_type"], "review.invite_link_updated");
    assert_eq!(body["metadata"]["version"], "2021.04.01");
    assert_eq!(
        body["data"],
        json!({"uid": uid, "locationUid": "loc_sydney", "phoneNumber": PHONE,
               "deliveryStatus": "failed", "updatedAt": st.json["data"]["updatedAt"]})
    );
    let ts = &seen.headers["podium-timestamp"];
    assert_eq!(
        seen.headers["podium-signature"],
        hmac_hex("s", &format!("{ts}.{}", seen.body))
    );
    // No change, no webhook.
    let same = t
        .call(
            "POST",
            &path,
            None,
            Some(json!({"deliveryStatus": "failed"})),
        )
        .await;
    assert_eq!(same.json["webhook"], Value::Null);
    assert_eq!(got.lock().unwrap().len(), 1);

    // Opt-out / opt-in with emit: contact.updated; without: nothing.
    t.create_contact(&tok, PHONE, "loc_sydney").await;
    t.call(
        "POST",
        "/_sandbox/contacts/%2B61412345678/opt-out",
        None,
        None,
    )
    .await;
    assert_eq!(got.lock().unwrap().len(), 1);
    let out = t
        .call(
            "POST",
            "/_sandbox/contacts/%2B61412345678/opt-out",
            None,
            Some(json!({"emit": true})),
        )
        .await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.json["webhook"]["status"], 200);
    let body: Value = serde_json::from_str(&got.lock().unwrap()[1].body).unwrap();
    assert_eq!(body["metadata"]["event_type"], "contact.updated");
    assert_eq!(body["data"]["phoneNumbers"], json!([PHONE]));
    let ch = &body["data"]["channels"][0];
    assert_eq!(
        (&ch["type"], &ch["identifier"]),
        (&json!("phone"), &json!(PHONE))
    );
    let stamp = ch["transactionalOptedOutAt"].as_str().unwrap();
    assert!(stamp.ends_with('Z') && stamp.contains('T'));
    assert_eq!(
        out.json["data"][0]["channels"][0]["transactionalOptedOutAt"],
        stamp
    );
    t.call(
        "POST",
        "/_sandbox/contacts/+61412345678/opt-in",
        None,
        Some(json!({"emit": true})),
    )
    .await;
    let body: Value = serde_json::from_str(&got.lock().unwrap()[2].body).unwrap();
    assert_eq!(
        body["data"]["channels"][0]["transactionalOptedOutAt"],
        Value::Null
    );
    let bad = t
        .call(
            "POST",
            "/_sandbox/contacts/+61412345678/opt-in",
            None,
            Some(json!({"emit": "yes"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let triggers: Vec<_> = t.state().await["webhooks_sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["trigger"].clone())
        .collect();
    assert_eq!(
        triggers,
        vec![json!("invite_status"), json!("opt_out"), json!("opt_in")]
    );

    // Without a target: the opt-out still happens, the answer says nothing was sent.
    t.call("DELETE", "/_sandbox/webhooks", None, None).await;
    let out = t
        .call(
            "POST",
            "/_sandbox/contacts/%2B61412345678/opt-out",
            None,
            Some(json!({"emit": true})),
        )
        .await;
    assert_eq!(out.status, StatusCode::OK);
    assert!(out.json["webhook"]["error"].is_string());
    assert_eq!(got.lock().unwrap().len(), 3);
}
