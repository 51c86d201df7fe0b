//! Calls between the worker and its Durable Objects: JSON in, JSON out, one helper for
//! both ends so every object speaks the same way — and [`Ctx`], the request's handle on
//! the environment, which counts the object calls a request makes (the benchmark and
//! the `x-gateway-object-calls` header report that count) and holds its Podium request
//! slots.

use std::cell::{Cell, RefCell};
use std::ops::Deref;
use std::rc::Rc;

use gateway_core::ratelimit::Permits;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use wasm_bindgen::{JsCast, JsValue};
use worker::{Env, Headers, Method, Request, RequestInit, Response};

use crate::error::AppError;

/// One request's (or one object's) view of the environment. It dereferences to the
/// [`Env`], and every Durable Object call made through it is counted: concurrent
/// requests in one isolate each have their own count.
#[derive(Clone)]
pub struct Ctx {
    env: Env,
    calls: Rc<Cell<u32>>,
    permits: Rc<RefCell<Permits>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("object_calls", &self.calls.get())
            .finish()
    }
}

thread_local! {
    /// The Podium request slots of this isolate's delivery runs: plain data (a token and
    /// counts, no I/O object), so the objects an isolate hosts may share it.
    static PERMITS: Rc<RefCell<Permits>> = Rc::new(RefCell::new(Permits::default()));
}

impl Ctx {
    pub fn new(env: Env) -> Self {
        Ctx {
            env,
            calls: Rc::new(Cell::new(0)),
            permits: PERMITS.with(Rc::clone),
        }
    }

    /// The Podium request slots this isolate's delivery runs hold (shared by them).
    pub fn permits(&self) -> &RefCell<Permits> {
        &self.permits
    }

    /// Durable Object calls made so far through this context.
    pub fn object_calls(&self) -> u32 {
        self.calls.get()
    }
}

impl Deref for Ctx {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.env
    }
}

/// Set `value[path…]` in a JSON object, creating objects on the way (a non-object on
/// the way is replaced): `Value`'s index operator would panic on a non-object.
pub fn set_json(target: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        *target = value;
        return;
    };
    let mut at = target;
    for key in parents {
        if !at.is_object() {
            *at = json!({});
        }
        let Some(map) = at.as_object_mut() else {
            return;
        };
        at = map.entry((*key).to_owned()).or_insert_with(|| json!({}));
    }
    if !at.is_object() {
        *at = json!({});
    }
    if let Some(map) = at.as_object_mut() {
        map.insert((*last).to_owned(), value);
    }
}

/// Milliseconds since the epoch, from the platform (std's clock traps on wasm32).
pub fn now_ms() -> i64 {
    #[allow(clippy::cast_possible_truncation)]
    let now = js_sys::Date::now() as i64;
    now
}

/// A uniformly random number in `[0, 1)` for jitter (not for secrets).
pub fn random() -> f64 {
    js_sys::Math::random()
}

/// `n` bytes from the platform's cryptographic generator (`crypto.getRandomValues`),
/// for identifiers that act as capabilities (file ids, form tokens).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0_u8; N];
    let array = js_sys::Uint8Array::new_with_length(u32::try_from(N).unwrap_or(0));
    let filled = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
        .ok()
        .and_then(|crypto| {
            let get = js_sys::Reflect::get(&crypto, &JsValue::from_str("getRandomValues"))
                .ok()?
                .dyn_into::<js_sys::Function>()
                .ok()?;
            get.call1(&crypto, &array).ok()
        })
        .is_some();
    if filled {
        array.copy_to(&mut out);
    } else {
        // Never on Workers (crypto is always there); keeps ids unique if it were not.
        for b in &mut out {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let v = (random() * 256.0) as u8;
            *b = v;
        }
    }
    out
}

/// A random identifier with a readable prefix (`msg_3f2a…`), 96 random bits.
pub fn new_id(prefix: &str) -> String {
    let bytes: [u8; 12] = random_bytes();
    let mut out = String::with_capacity(prefix.len() + 25);
    out.push_str(prefix);
    out.push('_');
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A random (version 4) UUID: the gateway's file ids (the incoming-webchat envelope
/// names files by `fileuuid`).
pub fn new_uuid() -> String {
    let mut b: [u8; 16] = random_bytes();
    if let Some(v) = b.get_mut(6) {
        *v = (*v & 0x0f) | 0x40;
    }
    if let Some(v) = b.get_mut(8) {
        *v = (*v & 0x3f) | 0x80;
    }
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let part = |a: usize, z: usize| hex.get(a..z).unwrap_or("0");
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

/// Call operation `op` on the object named `name` of `binding` with `body`.
pub async fn call<Req: Serialize, Res: DeserializeOwned>(
    ctx: &Ctx,
    binding: &str,
    name: &str,
    op: &str,
    body: &Req,
) -> Result<Res, AppError> {
    ctx.calls.set(ctx.calls.get().saturating_add(1));
    let stub = ctx.env.durable_object(binding)?.get_by_name(name)?;
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

/// The end of an object's alarm: on an error, log it under `what` and try again in
/// `retry_in_ms`, leaving the object's state where it is.
pub async fn alarm_outcome(
    storage: &worker::Storage,
    what: &str,
    outcome: Result<(), AppError>,
    retry_in_ms: i64,
) -> worker::Result<Response> {
    if let Err(e) = outcome {
        worker::console_error!("{}", json!({"level": "error", what: e.to_string()}));
        alarm_at(storage, now_ms().saturating_add(retry_in_ms)).await?;
    }
    Response::ok("")
}

/// Make sure the object's alarm fires no later than `at_ms`.
pub async fn wake_by(storage: &worker::Storage, at_ms: i64) -> worker::Result<()> {
    let current = storage.get_alarm().await?;
    if current.is_none_or(|t| t > at_ms) {
        alarm_at(storage, at_ms).await?;
    }
    Ok(())
}
