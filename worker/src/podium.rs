//! The Podium API client: pinned `podium-version`, bearer token, timeouts, and answers
//! turned into values the delivery policy (`gateway_core::delivery`) can judge.

use std::time::Duration;

use crate::error::AppError;
use crate::objects::token;
use crate::rpc::{self, Ctx};
use futures_util::future::{select, Either};
use gateway_core::config::PodiumConfig;
use gateway_core::delivery::{self, Attempt};
use gateway_core::ratelimit::SPARE_PERMITS;
use serde_json::{json, Value};

use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

/// Any HTTP answer from Podium.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub retry_after_ms: Option<i64>,
    pub body: Value,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Podium's error `code` (a string, or an integer in some responses) and message.
    pub fn detail(&self) -> String {
        let code = match self.body.get("code") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let message = self
            .body
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let detail = format!("{code} {message}");
        detail.trim().chars().take(300).collect()
    }
}

/// A request body: JSON, or a prepared body with its content type (multipart).
pub enum Body {
    None,
    Json(Value),
    Raw {
        content_type: String,
        body: wasm_bindgen::JsValue,
    },
}

/// Call `method url` with the token. `Err` only when there was no HTTP answer.
pub async fn call(
    config: &PodiumConfig,
    token: Option<&str>,
    method: Method,
    url: &str,
    body: Body,
) -> Result<Reply, Attempt> {
    let network = |e: worker::Error| Attempt::Network(e.to_string());
    let headers = Headers::new();
    headers
        .set("podium-version", &config.api_version)
        .map_err(network)?;
    headers.set("accept", "application/json").map_err(network)?;
    if let Some(token) = token {
        headers
            .set("authorization", &format!("Bearer {token}"))
            .map_err(network)?;
    }
    let mut init = RequestInit::new();
    init.with_method(method);
    match body {
        Body::None => {}
        Body::Json(value) => {
            headers
                .set("content-type", "application/json")
                .map_err(network)?;
            init.with_body(Some(value.to_string().into()));
        }
        Body::Raw { content_type, body } => {
            headers
                .set("content-type", &content_type)
                .map_err(network)?;
            init.with_body(Some(body));
        }
    }
    init.with_headers(headers);
    let request = Request::new_with_init(url, &init).map_err(network)?;
    let mut response = send(request, config.timeout_ms).await?;
    let status = response.status_code();
    let retry_after_ms = delivery::retry_after_ms(
        response
            .headers()
            .get("retry-after")
            .ok()
            .flatten()
            .as_deref(),
    );
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Reply {
        status,
        retry_after_ms,
        body,
    })
}

/// Why a call produced no answer to judge.
#[derive(Debug)]
pub enum NoReply {
    /// No request slot or token yet: come back after this many ms without counting an
    /// attempt.
    Wait(i64),
    Failed(Attempt),
    /// The guard said no: nothing was sent.
    Refused,
}

/// Call Podium with the shared token (`PodiumToken` object): paced under Podium's
/// limit, refreshed once on a 401, the pacing drained on a bare 429.
pub async fn call_authorized(
    ctx: &Ctx,
    config: &PodiumConfig,
    method: Method,
    url: &str,
    body: Body,
) -> Result<Result<Reply, NoReply>, AppError> {
    let answer = call_guarded(ctx, config, method, url, body, || async { Ok(true) }).await?;
    if let Ok(reply) = &answer {
        if reply.status == 429 && reply.retry_after_ms.is_none() {
            drain_pacing(ctx).await?;
        }
    }
    Ok(answer)
}

/// Like [`call_authorized`], with a `guard` asked after the request slot and the token
/// are in hand and immediately before the request goes out (and again before a retry
/// after a 401). `Ok(false)` from the guard sends nothing: [`NoReply::Refused`]. The
/// phone object's opt-out check is such a guard, so nothing (no token refresh, no
/// wait for a slot) can come between the check and the send. A bare 429 is left to the
/// caller (the outbox decides to drain the pacing).
pub async fn call_guarded<G, F>(
    ctx: &Ctx,
    config: &PodiumConfig,
    method: Method,
    url: &str,
    body: Body,
    mut guard: G,
) -> Result<Result<Reply, NoReply>, AppError>
where
    G: FnMut() -> F,
    F: std::future::Future<Output = Result<bool, AppError>>,
{
    let mut body = Some(body);
    for _ in 0..2 {
        let access_token = match slot(ctx).await? {
            Ok(token) => token,
            Err(wait_ms) => return Ok(Err(NoReply::Wait(wait_ms))),
        };
        if !guard().await? {
            return Ok(Err(NoReply::Refused));
        }
        let this_body = match body.take() {
            Some(Body::Json(v)) => {
                body = Some(Body::Json(v.clone()));
                Body::Json(v)
            }
            Some(other) => other,
            None => {
                return Ok(Err(NoReply::Failed(Attempt::Network(
                    "request body already sent".into(),
                ))))
            }
        };
        let reply = match call(config, Some(&access_token), method.clone(), url, this_body).await {
            Ok(reply) => reply,
            Err(attempt) => return Ok(Err(NoReply::Failed(attempt))),
        };
        if reply.status == 401 {
            ctx.permits().borrow_mut().drop_all();
            rpc::call::<_, Value>(
                ctx,
                token::BINDING,
                token::NAME,
                "invalidate",
                &json!({"access_token": access_token}),
            )
            .await?;
            if body.is_some() {
                continue;
            }
        }
        return Ok(Ok(reply));
    }
    Ok(Err(NoReply::Failed(Attempt::Status {
        status: 401,
        retry_after_ms: None,
        detail: "unauthorized after a token refresh".into(),
    })))
}

/// A request slot and the token: from the isolate's last grants, else from a new one
/// (asked for as many slots as the run expects, plus spares the token object gives only
/// while the bucket is more than half full). `Err(wait_ms)`: no slot yet.
async fn slot(ctx: &Ctx) -> Result<Result<String, i64>, AppError> {
    let spent = ctx.permits().borrow_mut().spend(rpc::now_ms());
    if let Some(token) = spent {
        return Ok(Ok(token));
    }
    let want = ctx.permits().borrow().want();
    let grant: token::Grant = rpc::call(
        ctx,
        token::BINDING,
        token::NAME,
        "acquire",
        &json!({"want": want, "spare": SPARE_PERMITS}),
    )
    .await?;
    Ok(match grant.access_token {
        Some(token) => {
            ctx.permits()
                .borrow_mut()
                .granted(&token, grant.permits, rpc::now_ms());
            Ok(token)
        }
        None => Err(grant.wait_ms),
    })
}

/// A 429 without `Retry-After`: empty the shared pacing bucket so every phone slows down.
pub async fn drain_pacing(ctx: &Ctx) -> Result<(), AppError> {
    ctx.permits().borrow_mut().drop_all();
    rpc::call::<_, Value>(ctx, token::BINDING, token::NAME, "drain", &json!({})).await?;
    Ok(())
}

/// Send a request, giving up (and aborting it) after `timeout_ms`.
pub async fn send(request: Request, timeout_ms: u32) -> Result<worker::Response, Attempt> {
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let sending = Box::pin(fetch.send_with_signal(&signal));
    let timeout = Box::pin(Delay::from(Duration::from_millis(u64::from(timeout_ms))));
    let outcome = match select(sending, timeout).await {
        Either::Left((result, _)) => result.map_err(|e| Attempt::Network(e.to_string())),
        Either::Right(_) => {
            controller.abort();
            Err(Attempt::Timeout)
        }
    };
    outcome
}

/// `https://api.podium.com` + `/v4/contacts` (identifiers are path-escaped).
pub fn url(config: &PodiumConfig, path: &str) -> String {
    format!("{}{}", config.api_base, path)
}

/// Escape a path segment (`+61…` → `%2B61…`).
pub fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 3);
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
