//! `Ops`: one shard of what operators reach for (F19) — dead letters, chats routed by
//! fallback, small indexes (invite → phone, scheduled review requests), the event log,
//! and exact counters. Records are spread over `ops_shards` objects by a hash of their
//! key (the phone, mostly), so no single object sees every write; operator routes ask
//! every shard at once and merge. Every row has an expiry; the alarm deletes what has
//! expired (the retention table in the README).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use worker::{
    durable_object, DurableObject, Env, Request, Response, SqlStorage, SqlStorageValue, State,
};

use crate::error::AppError;
use crate::rpc::{self, now_ms};

pub const BINDING: &str = "OPS";

/// Rows returned per page at most.
pub const MAX_PAGE: i64 = 500;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS dead_letters (
  id TEXT PRIMARY KEY, at_ms INTEGER NOT NULL, phone TEXT NOT NULL, reason TEXT NOT NULL,
  attempts INTEGER NOT NULL, job TEXT NOT NULL, expires_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS dead_letters_at ON dead_letters(at_ms, id);
CREATE TABLE IF NOT EXISTS fallbacks (
  id TEXT PRIMARY KEY, at_ms INTEGER NOT NULL, record TEXT NOT NULL, rerouted_to TEXT,
  expires_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS fallbacks_at ON fallbacks(at_ms, id);
CREATE TABLE IF NOT EXISTS idx (
  name TEXT PRIMARY KEY, value TEXT NOT NULL, expires_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, at_ms INTEGER NOT NULL, data TEXT NOT NULL,
  expires_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS events_kind_at ON events(kind, at_ms, id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS batches (source TEXT PRIMARY KEY, seq INTEGER NOT NULL);
";

/// A job (or webhook event) that could not be delivered, with what is needed to replay it.
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

/// A chat that went to the default location (F5), kept so it can be re-routed.
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

/// A provider event or a review transition kept for operators.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: String,
    pub kind: String,
    pub at_ms: i64,
    pub data: Value,
}

/// A page of rows after a cursor `(at_ms, id)`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PageArgs {
    #[serde(default)]
    pub since: i64,
    #[serde(default)]
    pub after: Option<(i64, String)>,
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub kind: Option<String>,
}

// State and Env have no Debug.
#[allow(missing_debug_implementations)]
#[durable_object]
pub struct Ops {
    state: State,
    #[allow(dead_code)]
    env: Env,
}

impl DurableObject for Ops {
    fn new(state: State, env: Env) -> Self {
        if let Err(e) = state.storage().sql().exec(SCHEMA, None) {
            worker::console_error!("{}", json!({"level": "error", "ops_schema": e.to_string()}));
        }
        Self { state, env }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        rpc::serve(req, |op, body| async move { self.handle(&op, body).await }).await
    }

    async fn alarm(&self) -> worker::Result<Response> {
        let outcome = self.purge().await;
        rpc::alarm_outcome(&self.state.storage(), "ops_alarm", outcome, 60_000).await
    }
}

fn int(v: i64) -> SqlStorageValue {
    SqlStorageValue::Integer(v)
}

fn text(v: impl Into<String>) -> SqlStorageValue {
    SqlStorageValue::String(v.into())
}

fn field<'a>(body: &'a Value, name: &str) -> &'a str {
    body.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// "Never" as a time (the largest JavaScript date): rows kept until deleted.
pub const NEVER_MS: i64 = 8_640_000_000_000_000;

fn expires(body: &Value) -> i64 {
    body.get("expires_ms")
        .and_then(Value::as_i64)
        .unwrap_or(NEVER_MS)
        .min(NEVER_MS)
}

/// A `dead_letters` row (id, at_ms, phone, reason, attempts, job) as the record.
fn dead_letter_row(row: &Value) -> Option<DeadLetter> {
    Some(DeadLetter {
        id: row.get("id")?.as_str()?.to_owned(),
        at_ms: row.get("at_ms")?.as_f64().map(|v| v as i64)?,
        phone: row.get("phone")?.as_str()?.to_owned(),
        reason: row.get("reason")?.as_str()?.to_owned(),
        attempts: row.get("attempts")?.as_f64().map(|v| v as u32).unwrap_or(0),
        job: serde_json::from_str(row.get("job")?.as_str()?).ok()?,
    })
}

/// Rows whose JSON column `column` holds the record, as values.
fn parse_rows(rows: Vec<Value>, column: &str) -> Vec<Value> {
    rows.into_iter()
        .filter_map(|row| {
            let raw = row.get(column)?.as_str()?;
            let mut value: Value = serde_json::from_str(raw).ok()?;
            if let (Some(map), Some(Value::String(to))) =
                (value.as_object_mut(), row.get("rerouted_to"))
            {
                map.insert("rerouted_to".into(), json!(to));
            }
            Some(value)
        })
        .collect()
}

impl Ops {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    /// Make sure the alarm comes by the earliest expiry.
    async fn expire_by(&self, at_ms: i64) -> Result<(), AppError> {
        if at_ms < NEVER_MS {
            rpc::wake_by(&self.state.storage(), at_ms).await?;
        }
        Ok(())
    }

    /// Insert a record that expires at `expires_ms` (nothing when its id is already
    /// here), counting `counter` only for a new one; whether it was new.
    async fn insert_once(
        &self,
        query: &str,
        args: Vec<SqlStorageValue>,
        counter: &str,
        expires_ms: i64,
    ) -> Result<bool, AppError> {
        let added = self.sql().exec(query, args)?.rows_written() > 0;
        if added {
            self.bump(counter, 1)?;
        }
        self.expire_by(expires_ms).await?;
        Ok(added)
    }

    fn bump(&self, name: &str, by: i64) -> Result<(), AppError> {
        let name: String = name.chars().take(96).collect();
        self.sql().exec(
            "INSERT INTO counters (name, n) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET n = n + excluded.n",
            vec![text(name), int(by)],
        )?;
        Ok(())
    }

    async fn handle(&self, op: &str, body: Value) -> Result<Value, AppError> {
        let sql = self.sql();
        match op {
            "dead_letter.add" => {
                let letter: DeadLetter =
                    rpc::args(body.get("letter").cloned().unwrap_or_default())?;
                let expires_ms = expires(&body);
                let added = self
                    .insert_once(
                        "INSERT INTO dead_letters (id, at_ms, phone, reason, attempts, job, expires_ms)
                         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
                        vec![
                            text(letter.id.clone()),
                            int(letter.at_ms),
                            text(letter.phone.clone()),
                            text(letter.reason.clone()),
                            int(i64::from(letter.attempts)),
                            text(letter.job.to_string()),
                            int(expires_ms),
                        ],
                        "dead_lettered",
                        expires_ms,
                    )
                    .await?;
                Ok(json!({"added": added}))
            }
            "dead_letter.page" => {
                let page: PageArgs = rpc::args(body)?;
                let (after_ms, after_id) = page.after.unwrap_or((i64::MIN, String::new()));
                let limit = page.limit.unwrap_or(100).clamp(1, MAX_PAGE);
                let rows: Vec<DeadLetter> = sql
                    .exec(
                        "SELECT id, at_ms, phone, reason, attempts, job FROM dead_letters
                         WHERE at_ms > ? OR (at_ms = ? AND id > ?) ORDER BY at_ms, id LIMIT ?",
                        vec![int(after_ms), int(after_ms), text(after_id), int(limit)],
                    )?
                    .to_array::<Value>()?
                    .iter()
                    .filter_map(dead_letter_row)
                    .collect();
                Ok(json!({"dead_letters": rows}))
            }
            "dead_letter.get" => {
                let rows: Vec<Value> = sql
                    .exec(
                        "SELECT id, at_ms, phone, reason, attempts, job FROM dead_letters WHERE id = ?",
                        vec![text(field(&body, "id"))],
                    )?
                    .to_array()?;
                let letter = rows.first().and_then(dead_letter_row);
                Ok(json!(letter))
            }
            "dead_letter.delete" => {
                let removed = sql
                    .exec(
                        "DELETE FROM dead_letters WHERE id = ?",
                        vec![text(field(&body, "id"))],
                    )?
                    .rows_written();
                if removed > 0 {
                    self.bump("replayed", 1)?;
                }
                Ok(json!({"removed": removed > 0}))
            }
            "fallback.add" => {
                let fallback: Fallback =
                    rpc::args(body.get("fallback").cloned().unwrap_or_default())?;
                let expires_ms = expires(&body);
                let added = self
                    .insert_once(
                        "INSERT INTO fallbacks (id, at_ms, record, expires_ms) VALUES (?, ?, ?, ?)
                         ON CONFLICT(id) DO NOTHING",
                        vec![
                            text(fallback.id.clone()),
                            int(fallback.at_ms),
                            text(serde_json::to_string(&fallback)?),
                            int(expires_ms),
                        ],
                        "routed_by_fallback",
                        expires_ms,
                    )
                    .await?;
                Ok(json!({"added": added}))
            }
            "fallback.page" => {
                let page: PageArgs = rpc::args(body)?;
                let (after_ms, after_id) = page.after.unwrap_or((page.since, String::new()));
                let limit = page.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
                let rows: Vec<Value> = sql
                    .exec(
                        "SELECT record, rerouted_to FROM fallbacks
                         WHERE at_ms >= ? AND (at_ms > ? OR (at_ms = ? AND id > ?))
                         ORDER BY at_ms, id LIMIT ?",
                        vec![
                            int(page.since),
                            int(after_ms),
                            int(after_ms),
                            text(after_id),
                            int(limit),
                        ],
                    )?
                    .to_array()?;
                Ok(json!({"fallbacks": parse_rows(rows, "record")}))
            }
            "fallback.mark" => {
                let marked = sql
                    .exec(
                        "UPDATE fallbacks SET rerouted_to = ? WHERE id = ? AND rerouted_to IS NULL",
                        vec![text(field(&body, "to")), text(field(&body, "id"))],
                    )?
                    .rows_written();
                if marked > 0 {
                    self.bump("rerouted", 1)?;
                }
                Ok(json!({"marked": marked > 0}))
            }
            "index.put" => {
                let expires_ms = expires(&body);
                sql.exec(
                    "INSERT INTO idx (name, value, expires_ms) VALUES (?, ?, ?)
                     ON CONFLICT(name) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms",
                    vec![
                        text(field(&body, "name")),
                        text(body.get("value").cloned().unwrap_or(Value::Null).to_string()),
                        int(expires_ms),
                    ],
                )?;
                self.expire_by(expires_ms).await?;
                Ok(json!({}))
            }
            "index.get" => {
                let rows: Vec<Value> = sql
                    .exec(
                        "SELECT value FROM idx WHERE name = ? AND expires_ms > ?",
                        vec![text(field(&body, "name")), int(now_ms())],
                    )?
                    .to_array()?;
                let value = rows
                    .first()
                    .and_then(|r| r.get("value"))
                    .and_then(Value::as_str)
                    .and_then(|raw| serde_json::from_str::<Value>(raw).ok());
                Ok(json!({"value": value}))
            }
            "index.delete" => {
                sql.exec(
                    "DELETE FROM idx WHERE name = ?",
                    vec![text(field(&body, "name"))],
                )?;
                Ok(json!({}))
            }
            "index.list" => {
                let prefix = field(&body, "prefix");
                let rows: Vec<Value> = sql
                    .exec(
                        "SELECT value FROM idx WHERE substr(name, 1, ?) = ? AND expires_ms > ? ORDER BY name LIMIT ?",
                        vec![
                            int(i64::try_from(prefix.len()).unwrap_or(0)),
                            text(prefix),
                            int(now_ms()),
                            int(MAX_PAGE),
                        ],
                    )?
                    .to_array()?;
                Ok(json!({"values": parse_rows(rows, "value")}))
            }
            "event.add" => {
                let event: EventRecord = rpc::args(body.get("event").cloned().unwrap_or_default())?;
                let expires_ms = expires(&body);
                self.insert_once(
                    "INSERT INTO events (id, kind, at_ms, data, expires_ms) VALUES (?, ?, ?, ?, ?)
                     ON CONFLICT(id) DO NOTHING",
                    vec![
                        text(event.id.clone()),
                        text(event.kind.clone()),
                        int(event.at_ms),
                        text(serde_json::to_string(&event)?),
                        int(expires_ms),
                    ],
                    &format!("event:{}", event.kind),
                    expires_ms,
                )
                .await?;
                Ok(json!({}))
            }
            "event.page" => {
                let page: PageArgs = rpc::args(body)?;
                let kind = page.kind.clone().unwrap_or_default();
                let (after_ms, after_id) = page.after.unwrap_or((page.since, String::new()));
                let limit = page.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
                let rows: Vec<Value> = sql
                    .exec(
                        "SELECT data FROM events WHERE kind = ? AND at_ms >= ?
                         AND (at_ms > ? OR (at_ms = ? AND id > ?)) ORDER BY at_ms, id LIMIT ?",
                        vec![
                            text(kind),
                            int(page.since),
                            int(after_ms),
                            int(after_ms),
                            text(after_id),
                            int(limit),
                        ],
                    )?
                    .to_array()?;
                Ok(json!({"events": parse_rows(rows, "data")}))
            }
            "count" => {
                let by = body.get("by").and_then(Value::as_i64).unwrap_or(1);
                self.bump(field(&body, "name"), by)?;
                Ok(json!({}))
            }
            // A batch of counts from an object that owns the events (a phone): applied
            // once per (source, seq), so a batch sent again after a crash is not counted
            // twice.
            "count.batch" => {
                let source = field(&body, "source");
                let seq = body.get("seq").and_then(Value::as_i64).unwrap_or(0);
                let seen: Vec<Value> = sql
                    .exec(
                        "SELECT seq FROM batches WHERE source = ?",
                        vec![text(source)],
                    )?
                    .to_array()?;
                let last = seen
                    .first()
                    .and_then(|r| r.get("seq"))
                    .and_then(Value::as_f64)
                    .map_or(-1, |v| v as i64);
                if seq <= last {
                    return Ok(json!({"applied": false}));
                }
                if let Some(counts) = body.get("counts").and_then(Value::as_object) {
                    for (name, n) in counts {
                        self.bump(name, n.as_i64().unwrap_or(0))?;
                    }
                }
                sql.exec(
                    "INSERT INTO batches (source, seq) VALUES (?, ?)
                     ON CONFLICT(source) DO UPDATE SET seq = excluded.seq",
                    vec![text(source), int(seq)],
                )?;
                Ok(json!({"applied": true}))
            }
            "counters" => {
                let rows: Vec<Value> =
                    sql.exec("SELECT name, n FROM counters", None)?.to_array()?;
                let mut out = Map::new();
                for row in rows {
                    if let (Some(name), Some(n)) = (
                        row.get("name").and_then(Value::as_str),
                        row.get("n").and_then(Value::as_f64),
                    ) {
                        #[allow(clippy::cast_possible_truncation)]
                        out.insert(name.to_owned(), json!(n as i64));
                    }
                }
                Ok(json!({"counters": out}))
            }
            _ => Err(AppError::NotFound("no such operation")),
        }
    }

    /// Delete every expired row; wake again at the next expiry.
    async fn purge(&self) -> Result<(), AppError> {
        let sql = self.sql();
        let now = now_ms();
        for table in ["dead_letters", "fallbacks", "idx", "events"] {
            sql.exec(
                &format!("DELETE FROM {table} WHERE expires_ms <= ?"),
                vec![int(now)],
            )?;
        }
        let rows: Vec<Value> = sql
            .exec(
                "SELECT MIN(t) AS t FROM (
                   SELECT MIN(expires_ms) AS t FROM dead_letters UNION ALL
                   SELECT MIN(expires_ms) FROM fallbacks UNION ALL
                   SELECT MIN(expires_ms) FROM idx UNION ALL
                   SELECT MIN(expires_ms) FROM events)",
                None,
            )?
            .to_array()?;
        if let Some(t) = rows
            .first()
            .and_then(|r| r.get("t"))
            .and_then(Value::as_f64)
        {
            #[allow(clippy::cast_possible_truncation)]
            let at = t as i64;
            if at < NEVER_MS {
                rpc::alarm_at(&self.state.storage(), at.max(now)).await?;
            }
        }
        Ok(())
    }
}
