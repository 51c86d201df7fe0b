//! `Ledger`: what operators reach for (F19) — dead letters with their reason and the
//! job to replay, chats routed by fallback (to find and re-route after an incident), and
//! counters. A single instance: everything here is rare by design (counters are bumped
//! off the response path).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use worker::{durable_object, DurableObject, Env, ListOptions, Request, Response, State};

use crate::error::AppError;
use crate::rpc::{self, now_ms};

pub const BINDING: &str = "LEDGER";
pub const NAME: &str = "ops";
/// Fallback records are kept this long (an incident is usually found within days).
const FALLBACK_RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: String,
    pub at_ms: i64,
    pub phone: String,
    pub reason: String,
    pub attempts: u32,
    /// The job exactly as it was queued, for replay.
    pub job: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fallback {
    pub id: String,
    pub at_ms: i64,
    pub session_id: String,
    pub phone: String,
    pub message_id: String,
    pub location_uid: String,
    pub page_url: Option<String>,
    pub postcode: Option<String>,
    pub notes: Vec<String>,
    /// What the customer wrote, so a re-route can deliver it to the right store.
    pub body: String,
    pub contact_name: String,
    #[serde(default)]
    pub rerouted_to: Option<String>,
}

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

/// A provider event kept for operators and later flows (reviews, failed messages,
/// fulfilled orders), under `ev:{kind}:{time}:{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: String,
    pub kind: String,
    pub at_ms: i64,
    pub data: Value,
}

fn event_key(kind: &str, at_ms: i64, id: &str) -> String {
    format!("ev:{kind}:{:013}:{id}", at_ms.max(0))
}

fn fallback_key(at_ms: i64, id: &str) -> String {
    format!("fb:{:013}:{id}", at_ms.max(0))
}

impl Ledger {
    async fn list(&self, prefix: &str, start: Option<&str>) -> Result<Vec<Value>, AppError> {
        let mut opts = ListOptions::new().prefix(prefix).limit(1000);
        if let Some(start) = start {
            opts = opts.start(start);
        }
        let map = self.state.storage().list_with_options(opts).await?;
        let mut out = Vec::new();
        for value in map.values() {
            let value = value.map_err(|e| AppError::Internal(format!("{e:?}")))?;
            out.push(
                serde_wasm_bindgen::from_value(value)
                    .map_err(|e| AppError::Internal(e.to_string()))?,
            );
        }
        Ok(out)
    }

    async fn handle(&self, op: &str, body: Value) -> Result<Value, AppError> {
        let storage = self.state.storage();
        match op {
            "dead_letter.add" => {
                let letter: DeadLetter = rpc::args(body)?;
                storage.put(&format!("dl:{}", letter.id), &letter).await?;
                self.bump("dead_lettered", 1).await?;
                Ok(json!({}))
            }
            "dead_letter.list" => Ok(json!({"dead_letters": self.list("dl:", None).await?})),
            "dead_letter.get" => {
                let id = body.get("id").and_then(Value::as_str).unwrap_or_default();
                Ok(json!(storage.get::<DeadLetter>(&format!("dl:{id}")).await?))
            }
            "dead_letter.delete" => {
                let id = body.get("id").and_then(Value::as_str).unwrap_or_default();
                storage.delete(&format!("dl:{id}")).await?;
                self.bump("replayed", 1).await?;
                Ok(json!({}))
            }
            "fallback.add" => {
                let fallback: Fallback = rpc::args(body)?;
                storage
                    .put(&fallback_key(fallback.at_ms, &fallback.id), &fallback)
                    .await?;
                self.bump("routed_by_fallback", 1).await?;
                self.prune("fb:", &fallback_key(now_ms() - FALLBACK_RETENTION_MS, ""))
                    .await?;
                Ok(json!({}))
            }
            "event.add" => {
                let event: EventRecord = rpc::args(body)?;
                storage
                    .put(&event_key(&event.kind, event.at_ms, &event.id), &event)
                    .await?;
                self.bump(&format!("event:{}", event.kind), 1).await?;
                self.prune(
                    &format!("ev:{}:", event.kind),
                    &event_key(&event.kind, now_ms() - FALLBACK_RETENTION_MS, ""),
                )
                .await?;
                Ok(json!({}))
            }
            "event.list" => {
                let kind = body.get("kind").and_then(Value::as_str).unwrap_or_default();
                let since = body.get("since").and_then(Value::as_i64).unwrap_or(0);
                let start = event_key(kind, since, "");
                Ok(json!({"events": self.list(&format!("ev:{kind}:"), Some(&start)).await?}))
            }
            // Small lookups other objects need across phones: invite uid → phone,
            // scheduled request → phone. Keys `ix:{name}`.
            "index.put" => {
                let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
                let value = body.get("value").cloned().unwrap_or(Value::Null);
                storage.put(&format!("ix:{name}"), &value).await?;
                Ok(json!({}))
            }
            "index.get" => {
                let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
                Ok(json!({"value": storage.get::<Value>(&format!("ix:{name}")).await?}))
            }
            "index.delete" => {
                let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
                storage.delete(&format!("ix:{name}")).await?;
                Ok(json!({}))
            }
            "index.list" => {
                let prefix = body.get("name").and_then(Value::as_str).unwrap_or_default();
                Ok(json!({"values": self.list(&format!("ix:{prefix}"), None).await?}))
            }
            "fallback.list" => {
                let since = body.get("since").and_then(Value::as_i64).unwrap_or(0);
                let start = fallback_key(since, "");
                Ok(json!({"fallbacks": self.list("fb:", Some(&start)).await?}))
            }
            "fallback.mark" => {
                let id = body.get("id").and_then(Value::as_str).unwrap_or_default();
                let at_ms = body
                    .get("at_ms")
                    .and_then(Value::as_i64)
                    .unwrap_or_default();
                let to = body.get("to").and_then(Value::as_str).unwrap_or_default();
                let key = fallback_key(at_ms, id);
                if let Some(mut fallback) = storage.get::<Fallback>(&key).await? {
                    fallback.rerouted_to = Some(to.to_owned());
                    storage.put(&key, &fallback).await?;
                    self.bump("rerouted", 1).await?;
                }
                Ok(json!({}))
            }
            "count" => {
                let name = body
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                let by = body.get("by").and_then(Value::as_u64).unwrap_or(1);
                self.bump(name, by).await?;
                Ok(json!({}))
            }
            "counters" => Ok(
                json!({"counters": storage.get::<Map<String, Value>>("counters").await?.unwrap_or_default()}),
            ),
            _ => Err(AppError::NotFound("no such operation")),
        }
    }

    /// Delete records under `prefix` older than `cutoff` (bounded work per call).
    async fn prune(&self, prefix: &str, cutoff: &str) -> Result<(), AppError> {
        let storage = self.state.storage();
        let old = storage
            .list_with_options(ListOptions::new().prefix(prefix).end(cutoff).limit(50))
            .await?;
        let keys: Vec<String> = old
            .keys()
            .into_iter()
            .filter_map(|k| k.ok()?.as_string())
            .collect();
        if !keys.is_empty() {
            storage.delete_multiple(keys).await?;
        }
        Ok(())
    }

    async fn bump(&self, name: &str, by: u64) -> Result<(), AppError> {
        let storage = self.state.storage();
        let mut counters: Map<String, Value> = storage.get("counters").await?.unwrap_or_default();
        let current = counters.get(name).and_then(Value::as_u64).unwrap_or(0);
        counters.insert(
            name.chars().take(64).collect(),
            json!(current.saturating_add(by)),
        );
        storage.put("counters", counters).await?;
        Ok(())
    }
}
