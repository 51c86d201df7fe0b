//! Runs the real `podium-sandbox` binary on port 0 and talks raw HTTP/1.1 to it: the
//! startup line, a token, a contact, redacted logs and a clean exit on SIGTERM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// One request on a fresh connection; returns (status, JSON-or-text body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\npodium-version: 2021.04.01\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let json = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    (status, json)
}

#[test]
fn binary_listens_on_port_0_serves_logs_redacted_and_exits_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_podium-sandbox"))
        .args(["--port", "0", "--upsert-race-window-ms", "0"])
        .env_remove("SANDBOX_PORT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let started: Value = serde_json::from_str(&line).unwrap();
    let url = started["listening"].as_str().unwrap();
    let addr = url.strip_prefix("http://").unwrap().to_owned();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{url}"
    );

    let (st, tok) = http(
        &addr,
        "POST",
        "/oauth/token",
        None,
        Some(
            &json!({"client_id": "sandbox-client", "client_secret": "sandbox-secret",
                     "grant_type": "refresh_token", "refresh_token": "sandbox-refresh-token"}),
        ),
    );
    assert_eq!(st, 200);
    let tok = tok["access_token"].as_str().unwrap().to_owned();
    let (st, _) = http(
        &addr,
        "GET",
        "/v4/contacts/%2B61412345678",
        Some(&tok),
        None,
    );
    assert_eq!(st, 404);
    let (st, _) = http(
        &addr,
        "POST",
        "/v4/contacts",
        Some(&tok),
        Some(&json!({"name": "Ada", "phoneNumber": "+61412345678", "locations": ["loc_sydney"]})),
    );
    assert_eq!(st, 202);
    let (st, c) = http(&addr, "GET", "/v4/contacts/+61412345678", Some(&tok), None);
    assert_eq!(st, 200);
    assert_eq!(c["data"]["name"], "Ada");
    let (st, _) = http(
        &addr,
        "POST",
        "/v4/messages",
        Some(&tok),
        Some(
            &json!({"body": "secret words", "channel": {"type": "phone", "identifier": "+61412345678"},
                     "locationUid": "loc_sydney"}),
        ),
    );
    assert_eq!(st, 202);
    let (_, state) = http(&addr, "GET", "/_sandbox/state", None, None);
    assert_eq!(state["requests"].as_array().unwrap().len(), 5);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("+6141****678"), "{logs}");
    assert!(!logs.contains("61412345678"), "full phone in logs: {logs}");
    assert!(
        !logs.contains("secret words"),
        "message body in logs: {logs}"
    );
    assert!(logs.lines().count() >= 6, "{logs}");
}
