//! `Idempotency`: one shard of the webhook idempotency keys (F14) and the durable queue
//! of verified events waiting to be processed (F15). Keys are spread over
//! `webhooks.shards` objects by a hash, so no single object caps throughput.
//!
//! A claim is one SQLite statement (`INSERT … ON CONFLICT DO NOTHING`), so two
//! concurrent deliveries of one event cannot both win. The event is stored with the key;
//! an alarm processes it, retries it with backoff, dead-letters it after the last
//! attempt, and deletes keys once their retention has passed.

use gateway_core::delivery::{self, Attempt, Next};
use gateway_core::webhook::Action;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{
    durable_object, DurableObject, Env, Request, Response, SqlStorage, SqlStorageValue, State,
};

use crate::error::AppError;
use crate::events;
use crate::objects::ops::DeadLetter;
use crate::ops;
use crate::rpc::{self, now_ms, Ctx};
use crate::settings;

pub const BINDING: &str = "IDEMPOTENCY";

/// The object name of shard `n`.
pub fn shard_name(n: u32) -> String {
    format!("shard-{n}")
}

/// Events processed per alarm run (the rest go in the next run, moments later).
const BATCH: u32 = 25;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS deliveries (
  key TEXT PRIMARY KEY,
  scheme TEXT NOT NULL,
  event_type TEXT NOT NULL,
  state TEXT NOT NULL,
  received_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL,
  next_ms INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  duplicates INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  outcome TEXT,
  action TEXT NOT NULL,
  headers TEXT NOT NULL,
  body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(state, next_ms);
CREATE INDEX IF NOT EXISTS deliveries_expiry ON deliveries(expires_ms);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
";

/// What the ingress route stores for a verified delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claim {
    pub key: String,
    pub scheme: String,
    pub event_type: String,
    pub action: Action,
    /// The headers worth keeping (topic, shop domain, delivery ids) for replay.
    pub headers: Value,
    /// The exact body as delivered.
    pub body: String,
    pub received_ms: i64,
    pub expires_ms: i64,
    /// When processing may start (received + `process_delay_ms`).
    pub process_at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claimed {
    pub duplicate: bool,
    /// `pending`, `done` or `dead` — for a duplicate, the first delivery's state.
    pub state: String,
}

/// Where a claim comes from: a provider's delivery, or an operator replaying a dead
/// letter (which must not count as another verified delivery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Delivery,
    Replay,
}

#[derive(Debug, Deserialize)]
struct DueRow {
    key: String,
    scheme: String,
    event_type: String,
    attempts: i64,
    action: String,
}

// State and Env have no Debug.
#[allow(missing_debug_implementations)]
#[durable_object]
pub struct Idempotency {
    state: State,
    env: Env,
}

impl DurableObject for Idempotency {
    fn new(state: State, env: Env) -> Self {
        if let Err(e) = state.storage().sql().exec(SCHEMA, None) {
            worker::console_error!(
                "{}",
                json!({"level": "error", "idempotency_schema": e.to_string()})
            );
        }
        Self { state, env }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        rpc::serve(req, |op, body| async move { self.handle(&op, body).await }).await
    }

    async fn alarm(&self) -> worker::Result<Response> {
        let outcome = self.run().await;
        rpc::alarm_outcome(&self.state.storage(), "idempotency_alarm", outcome, 5_000).await
    }
}

fn int(v: i64) -> SqlStorageValue {
    SqlStorageValue::Integer(v)
}

fn text(v: impl Into<String>) -> SqlStorageValue {
    SqlStorageValue::String(v.into())
}

fn bump(sql: &SqlStorage, name: &str, by: i64) -> Result<(), AppError> {
    sql.exec(
        "INSERT INTO counters (name, n) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET n = n + excluded.n",
        vec![text(name), int(by)],
    )?;
    Ok(())
}

impl Idempotency {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    async fn handle(&self, op: &str, body: Value) -> Result<Value, AppError> {
        match op {
            "claim" => {
                let claim: Claim = rpc::args(body)?;
                Ok(json!(self.claim(claim, Origin::Delivery).await?))
            }
            "requeue" => {
                // Replay of a dead letter: the same key, back to pending, attempts reset.
                // Only a dead row is replaced: of two replays at once, the second finds
                // the row pending and is answered as a duplicate.
                let claim: Claim = rpc::args(body)?;
                let sql = self.sql();
                sql.exec(
                    "DELETE FROM deliveries WHERE key = ? AND state = 'dead'",
                    vec![text(claim.key.clone())],
                )?;
                let claimed = self.claim(claim, Origin::Replay).await?;
                Ok(json!(claimed))
            }
            "recent" => {
                let limit = body
                    .get("limit")
                    .and_then(Value::as_i64)
                    .unwrap_or(20)
                    .clamp(1, 200);
                let rows: Vec<Value> = self
                    .sql()
                    .exec(
                        "SELECT key, scheme, event_type, state, received_ms, attempts, duplicates, last_error, outcome FROM deliveries ORDER BY received_ms DESC LIMIT ?",
                        vec![int(limit)],
                    )?
                    .to_array()?;
                Ok(json!({"deliveries": rows}))
            }
            // An operator replays a stored delivery (F19). Without `force` the key's
            // dedup still applies: a delivery already processed is not run again.
            "replay" => {
                let key = body.get("key").and_then(Value::as_str).unwrap_or_default();
                let force = body.get("force").and_then(Value::as_bool).unwrap_or(false);
                let sql = self.sql();
                let rows: Vec<Value> = sql
                    .exec(
                        "SELECT state FROM deliveries WHERE key = ?",
                        vec![text(key)],
                    )?
                    .to_array()?;
                let Some(state) = rows
                    .first()
                    .and_then(|r| r.get("state"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                else {
                    return Ok(json!({"found": false}));
                };
                if state != "dead" && !force {
                    return Ok(
                        json!({"found": true, "replayed": false, "duplicate": true, "state": state}),
                    );
                }
                let now = now_ms();
                sql.exec(
                    "UPDATE deliveries SET state = 'pending', attempts = 0, next_ms = ?, last_error = NULL WHERE key = ?",
                    vec![int(now), text(key)],
                )?;
                self.wake_by(now).await?;
                Ok(
                    json!({"found": true, "replayed": true, "duplicate": false, "previous_state": state}),
                )
            }
            "get" => {
                let key = body.get("key").and_then(Value::as_str).unwrap_or_default();
                let rows: Vec<Value> = self
                    .sql()
                    .exec(
                        "SELECT key, scheme, event_type, state, received_ms, expires_ms, next_ms, attempts, duplicates, last_error, outcome, action FROM deliveries WHERE key = ?",
                        vec![text(key)],
                    )?
                    .to_array()?;
                Ok(json!({"delivery": rows.into_iter().next()}))
            }
            "counters" => {
                let rows: Vec<Value> = self
                    .sql()
                    .exec("SELECT name, n FROM counters", None)?
                    .to_array()?;
                let stored: Vec<Value> = self
                    .sql()
                    .exec(
                        "SELECT state, COUNT(*) AS n FROM deliveries GROUP BY state",
                        None,
                    )?
                    .to_array()?;
                Ok(json!({"counters": rows, "stored": stored}))
            }
            _ => Err(AppError::NotFound("no such operation")),
        }
    }

    async fn claim(&self, claim: Claim, origin: Origin) -> Result<Claimed, AppError> {
        let sql = self.sql();
        let nothing_to_do = matches!(claim.action, Action::Ignore { .. });
        let state = if nothing_to_do { "done" } else { "pending" };
        let outcome = match &claim.action {
            Action::Ignore { reason } => Some(json!({"ignored": reason}).to_string()),
            _ => None,
        };
        let inserted = sql
            .exec(
                "INSERT INTO deliveries (key, scheme, event_type, state, received_ms, expires_ms, next_ms, outcome, action, headers, body)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING",
                vec![
                    text(claim.key.clone()),
                    text(claim.scheme.clone()),
                    text(claim.event_type.clone()),
                    text(state),
                    int(claim.received_ms),
                    int(claim.expires_ms),
                    int(claim.process_at_ms),
                    outcome.map_or(SqlStorageValue::Null, text),
                    text(serde_json::to_string(&claim.action)?),
                    text(claim.headers.to_string()),
                    text(claim.body),
                ],
            )?
            .rows_written()
            > 0;
        if !inserted {
            sql.exec(
                "UPDATE deliveries SET duplicates = duplicates + 1 WHERE key = ?",
                vec![text(claim.key.clone())],
            )?;
            bump(&sql, &format!("{}.duplicate", claim.scheme), 1)?;
            let first: Vec<Value> = sql
                .exec(
                    "SELECT state FROM deliveries WHERE key = ?",
                    vec![text(claim.key)],
                )?
                .to_array()?;
            let state = first
                .first()
                .and_then(|r| r.get("state"))
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned();
            return Ok(Claimed {
                duplicate: true,
                state,
            });
        }
        // A replay is the same event again, not a new delivery: counted once, when
        // it was received.
        if origin == Origin::Delivery {
            bump(&sql, &format!("{}.verified", claim.scheme), 1)?;
            if nothing_to_do {
                bump(&sql, &format!("{}.ignored", claim.scheme), 1)?;
            }
        }
        let wake = if nothing_to_do {
            claim.expires_ms
        } else {
            claim.process_at_ms
        };
        self.wake_by(wake).await?;
        Ok(Claimed {
            duplicate: false,
            state: state.into(),
        })
    }

    /// Make sure the alarm fires no later than `at_ms`.
    async fn wake_by(&self, at_ms: i64) -> Result<(), AppError> {
        let storage = self.state.storage();
        let current = storage.get_alarm().await?;
        if current.is_none_or(|t| t > at_ms) {
            rpc::alarm_at(&storage, at_ms).await?;
        }
        Ok(())
    }

    /// The alarm: process what is due, forget what has expired, set the next alarm.
    async fn run(&self) -> Result<(), AppError> {
        let settings = settings::load(&self.env)?;
        let config = &settings.config;
        let now = now_ms();
        let sql = self.sql();
        let due: Vec<DueRow> = sql
            .exec(
                "SELECT key, scheme, event_type, attempts, action FROM deliveries
                 WHERE state = 'pending' AND next_ms <= ? ORDER BY next_ms LIMIT ?",
                vec![int(now), int(i64::from(BATCH))],
            )?
            .to_array()?;
        for row in due {
            // Claim the attempt before performing it: a crash mid-way is retried, and a
            // second alarm run sees the attempt counted.
            let attempts = row.attempts.saturating_add(1);
            sql.exec(
                "UPDATE deliveries SET attempts = ? WHERE key = ?",
                vec![int(attempts), text(row.key.clone())],
            )?;
            let action: Action = serde_json::from_str(&row.action)?;
            let ctx = Ctx::new(self.env.clone());
            let result = events::perform(&ctx, &settings, &row.scheme, &row.key, &action).await;
            let now = now_ms();
            match result {
                Ok(outcome) => {
                    sql.exec(
                        "UPDATE deliveries SET state = 'done', outcome = ?, last_error = NULL WHERE key = ?",
                        vec![text(outcome.to_string()), text(row.key.clone())],
                    )?;
                    bump(&sql, &format!("{}.processed", row.scheme), 1)?;
                }
                Err(e) => {
                    let reason: String = e.to_string().chars().take(300).collect();
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let attempts_u32 = attempts.clamp(0, i64::from(u32::MAX)) as u32;
                    let next = if attempts_u32 >= config.webhooks.max_attempts
                        || events::is_permanent(&e)
                    {
                        Next::DeadLetter {
                            reason: reason.clone(),
                        }
                    } else {
                        delivery::next(
                            &config.retry,
                            attempts_u32,
                            &Attempt::Network(reason.clone()),
                            now,
                            rpc::random(),
                        )
                    };
                    worker::console_error!(
                        "{}",
                        json!({"level": "warn", "webhook_event_failed": row.event_type,
                               "scheme": row.scheme, "attempts": attempts, "error": reason})
                    );
                    match next {
                        Next::RetryAt { at_ms, .. } => {
                            sql.exec(
                                "UPDATE deliveries SET next_ms = ?, last_error = ? WHERE key = ?",
                                vec![int(at_ms), text(reason), text(row.key.clone())],
                            )?;
                            bump(&sql, &format!("{}.retried", row.scheme), 1)?;
                        }
                        Next::Done | Next::DeadLetter { .. } => {
                            self.dead_letter(&row, attempts_u32, &reason).await?;
                        }
                    }
                }
            }
        }
        sql.exec(
            "DELETE FROM deliveries WHERE state != 'pending' AND expires_ms <= ?",
            vec![int(now_ms())],
        )?;
        self.schedule_next().await
    }

    /// After the last attempt: the event goes to the dead letters (with everything
    /// needed to replay it), and the key stays so retries of it are still duplicates.
    async fn dead_letter(&self, row: &DueRow, attempts: u32, reason: &str) -> Result<(), AppError> {
        let sql = self.sql();
        let stored: Vec<Value> = sql
            .exec(
                "SELECT key, scheme, event_type, action, headers, body, received_ms, expires_ms FROM deliveries WHERE key = ?",
                vec![text(row.key.clone())],
            )?
            .to_array()?;
        let job = match stored.into_iter().next() {
            Some(Value::Object(mut row)) => {
                row.insert("kind".into(), json!("webhook"));
                Value::Object(row)
            }
            _ => Value::Null,
        };
        let phone = events::phone_of(&serde_json::from_str(&row.action).unwrap_or(
            Action::Ignore {
                reason: String::new(),
            },
        ))
        .unwrap_or_default();
        let ctx = Ctx::new(self.env.clone());
        let settings = settings::load(&ctx)?;
        // Its shard: the phone's, or the key's for events about no phone. The id follows
        // from the key, so a dead letter recorded twice (a crash in between) is one.
        let shard = ops::shard_of(
            settings.as_ref(),
            if phone.is_empty() { &row.key } else { &phone },
        );
        let letter = DeadLetter {
            id: format!(
                "dl-{shard}-wh_{}",
                gateway_core::webhook::sha256_hex(&[row.key.as_bytes()])
                    .get(..24)
                    .unwrap_or_default()
            ),
            at_ms: now_ms(),
            phone,
            reason: format!("webhook {} {}: {reason}", row.scheme, row.event_type),
            attempts,
            job,
        };
        ops::add_dead_letter(&ctx, &settings, letter).await?;
        sql.exec(
            "UPDATE deliveries SET state = 'dead', last_error = ? WHERE key = ?",
            vec![text(reason), text(row.key.clone())],
        )?;
        bump(&sql, &format!("{}.failed", row.scheme), 1)?;
        Ok(())
    }

    async fn schedule_next(&self) -> Result<(), AppError> {
        let rows: Vec<Value> = self
            .sql()
            .exec(
                "SELECT MIN(CASE WHEN state = 'pending' THEN next_ms ELSE expires_ms END) AS t FROM deliveries",
                None,
            )?
            .to_array()?;
        let next = rows
            .first()
            .and_then(|r| r.get("t"))
            .and_then(Value::as_f64);
        if let Some(t) = next {
            #[allow(clippy::cast_possible_truncation)]
            rpc::alarm_at(&self.state.storage(), (t as i64).max(now_ms())).await?;
        }
        Ok(())
    }
}
