//! `Ledger` (legacy, read-only): the former single object that held dead letters,
//! fallback-routed chats, indexes, the event log and counters. Those now live in the
//! sharded `Ops` objects; `POST /admin/migrate/ledger` copies what a deployed gateway
//! still has here into the shards (idempotently), and a later migration deletes the
//! class (README, "Upgrading"). Nothing writes here any more.

use serde_json::{json, Value};
use worker::{durable_object, DurableObject, Env, ListOptions, Request, Response, State};

use crate::error::AppError;
use crate::rpc;

pub const BINDING: &str = "LEDGER";
pub const NAME: &str = "ops";

// State and Env have no Debug.
#[allow(missing_debug_implementations)]
#[durable_object]
pub struct Ledger {
    state: State,
    #[allow(dead_code)]
    env: Env,
}

impl DurableObject for Ledger {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        rpc::serve(req, |op, body| async move { self.handle(&op, body).await }).await
    }
}

impl Ledger {
    async fn handle(&self, op: &str, body: Value) -> Result<Value, AppError> {
        let storage = self.state.storage();
        match op {
            // A page of entries under `prefix` (`dl:`, `fb:`, `ix:`, `ev:`) after `after`.
            "export" => {
                let prefix = body
                    .get("prefix")
                    .and_then(Value::as_str)
                    .unwrap_or("none:");
                let after = body.get("after").and_then(Value::as_str);
                let limit = body
                    .get("limit")
                    .and_then(Value::as_u64)
                    .unwrap_or(200)
                    .clamp(1, 500);
                let mut opts = ListOptions::new()
                    .prefix(prefix)
                    .limit(usize::try_from(limit).unwrap_or(200) + 1);
                if let Some(after) = after {
                    opts = opts.start(after);
                }
                let map = storage.list_with_options(opts).await?;
                let mut entries = Vec::new();
                for entry in map.entries() {
                    let entry = entry.map_err(|e| AppError::Internal(format!("{e:?}")))?;
                    let pair = js_sys::Array::from(&entry);
                    let key = pair.get(0).as_string().unwrap_or_default();
                    if Some(key.as_str()) == after {
                        continue;
                    }
                    let value: Value = serde_wasm_bindgen::from_value(pair.get(1))
                        .map_err(|e| AppError::Internal(e.to_string()))?;
                    entries.push(json!({"key": key, "value": value}));
                }
                entries.truncate(usize::try_from(limit).unwrap_or(200));
                Ok(json!({"entries": entries}))
            }
            "counters" => Ok(json!({"counters": storage.get::<Value>("counters").await?})),
            _ => Err(AppError::NotFound("no such operation")),
        }
    }
}
