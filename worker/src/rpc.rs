//! Calls between the worker and its Durable Objects: JSON in, JSON out, one helper for
//! both ends so every object speaks the same way.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use worker::{Env, Headers, Method, Request, RequestInit, Response};

use crate::error::AppError;

/// Milliseconds since the epoch, from the platform (std's clock traps on wasm32).
pub fn now_ms() -> i64 {
    #[allow(clippy::cast_possible_truncation)]
    let now = js_sys::Date::now() as i64;
    now
}

/// A uniformly random number in `[0, 1)` for jitter.
pub fn random() -> f64 {
    js_sys::Math::random()
}

/// A random identifier with a readable prefix (`msg_3f2a…`), 96 bits of randomness.
pub fn new_id(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 25);
    out.push_str(prefix);
    out.push('_');
    for _ in 0..24 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let nibble = (random() * 16.0) as u32 & 0xF;
        out.push(char::from_digit(nibble, 16).unwrap_or('0'));
    }
    out
}

/// Call operation `op` on the object named `name` of `binding` with `body`.
pub async fn call<Req: Serialize, Res: DeserializeOwned>(
    env: &Env,
    binding: &str,
    name: &str,
    op: &str,
    body: &Req,
) -> Result<Res, AppError> {
    let stub = env.durable_object(binding)?.get_by_name(name)?;
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(serde_json::to_string(body)?.into()));
    let request = Request::new_with_init(&format!("https://object.internal/{op}"), &init)?;
    let mut response = stub.fetch_with_request(request).await?;
    let status = response.status_code();
    let text = response.text().await?;
    if status != 200 {
        return Err(AppError::Internal(format!(
            "{binding}/{op} answered {status}: {text}"
        )));
    }
    Ok(serde_json::from_str(&text)?)
}

/// Inside an object's `fetch`: read the operation, run `handle`, answer.
pub async fn serve<F, Fut>(mut req: Request, handle: F) -> worker::Result<Response>
where
    F: FnOnce(String, Value) -> Fut,
    Fut: std::future::Future<Output = Result<Value, AppError>>,
{
    let outcome = match read_op(&mut req).await {
        Ok((op, body)) => handle(op, body).await,
        Err(e) => Err(e),
    };
    reply(outcome)
}

/// Inside an object: the operation name and its JSON body.
async fn read_op(req: &mut Request) -> Result<(String, Value), AppError> {
    let op = req.path().trim_start_matches('/').to_owned();
    let text = req.text().await?;
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)?
    };
    Ok((op, body))
}

/// Inside an object: answer an operation.
fn reply<T: Serialize>(outcome: Result<T, AppError>) -> worker::Result<Response> {
    match outcome {
        Ok(value) => Response::from_json(&value),
        Err(e) => {
            worker::console_error!(
                "{}",
                json!({"level": "error", "object_error": e.to_string()})
            );
            Ok(Response::from_json(&json!({"error": e.to_string()}))?.with_status(500))
        }
    }
}

/// Decode an operation's body into its type.
pub fn args<T: DeserializeOwned>(body: Value) -> Result<T, AppError> {
    serde_json::from_value(body).map_err(|e| AppError::Internal(format!("bad object call: {e}")))
}

/// Set a Durable Object alarm at an absolute time (`set_alarm(i64)` would read it as an
/// offset from now).
pub async fn alarm_at(storage: &worker::Storage, at_ms: i64) -> worker::Result<()> {
    #[allow(clippy::cast_precision_loss)]
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at_ms as f64));
    storage.set_alarm(worker::ScheduledTime::new(date)).await
}
