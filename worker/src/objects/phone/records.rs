//! What the phone object hands to the operations shards: dead letters, fallback-routed
//! chats and exact counts. They are written here first (durable, with the state change
//! that caused them) and shipped by the alarm, so the request path never waits on
//! another object and a crash between the two only delays them. Every shipment is
//! idempotent: records keep their ids, count batches their sequence number.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use worker::{ListOptions, Storage};

use crate::error::AppError;
use crate::objects::ops::{DeadLetter, Fallback};
use crate::objects::turn::Turn;
use crate::ops;
use crate::rpc::{now_ms, Ctx};
use crate::settings::Settings;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    DeadLetter(DeadLetter),
    Fallback(Fallback),
}

/// Records shipped per alarm run.
const BATCH: usize = 50;

/// The entries a turn must load to [`push_in`] (`rec_seq`) and [`count_in`] (`counts`).
pub const ENTRIES: [&str; 2] = [REC_SEQ, COUNTS];

const REC_SEQ: &str = "rec_seq";
const COUNTS: &str = "counts";

/// Queue a record for the operations shards.
pub async fn push(storage: &Storage, record: Record) -> Result<(), AppError> {
    let mut turn = Turn::load(storage, &[REC_SEQ]).await?;
    push_in(&mut turn, &record)?;
    turn.commit(storage).await
}

/// [`push`] inside a turn that loaded [`ENTRIES`].
pub fn push_in(turn: &mut Turn, record: &Record) -> Result<(), AppError> {
    let seq: u64 = turn.get::<u64>(REC_SEQ)?.unwrap_or(0) + 1;
    turn.put(&format!("rec:{seq:012}"), record)?;
    turn.put(REC_SEQ, &seq)
}

/// Add to a counter (shipped in the next batch).
pub async fn count(storage: &Storage, name: &str, by: i64) -> Result<(), AppError> {
    let mut turn = Turn::load(storage, &[COUNTS]).await?;
    count_in(&mut turn, name, by)?;
    turn.commit(storage).await
}

/// [`count`] inside a turn that loaded [`ENTRIES`].
pub fn count_in(turn: &mut Turn, name: &str, by: i64) -> Result<(), AppError> {
    let mut counts: Map<String, Value> = turn.get(COUNTS)?.unwrap_or_default();
    let current = counts.get(name).and_then(Value::as_i64).unwrap_or(0);
    counts.insert(name.to_owned(), json!(current.saturating_add(by)));
    turn.put(COUNTS, &counts)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Batch {
    seq: i64,
    counts: Map<String, Value>,
}

/// The two keys written together when a batch is cut.
#[derive(Debug, Serialize)]
struct Cut {
    count_batch: Batch,
    counts: Map<String, Value>,
}

/// Ship queued records and counts. Returns when to try again if something is left.
pub async fn ship(
    ctx: &Ctx,
    storage: &Storage,
    settings: &Settings,
    phone: &str,
) -> Result<Option<i64>, AppError> {
    let queued = storage
        .list_with_options(ListOptions::new().prefix("rec:").limit(BATCH))
        .await?;
    let mut shipped = Vec::new();
    let mut left = false;
    for entry in queued.entries() {
        let entry = entry.map_err(|e| AppError::Internal(format!("{e:?}")))?;
        let pair = js_sys::Array::from(&entry);
        let key = pair.get(0).as_string().unwrap_or_default();
        let record: Record = serde_wasm_bindgen::from_value(pair.get(1))
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let sent = match record {
            Record::DeadLetter(letter) => ops::add_dead_letter(ctx, settings, letter)
                .await
                .map(|_| ()),
            Record::Fallback(fallback) => ops::add_fallback(ctx, settings, &fallback).await,
        };
        match sent {
            Ok(()) => shipped.push(key),
            Err(e) => {
                worker::console_error!(
                    "{}",
                    json!({"level": "warn", "event": "record_not_shipped", "error": e.to_string()})
                );
                left = true;
                break;
            }
        }
    }
    if !shipped.is_empty() {
        storage.delete_multiple(shipped.clone()).await?;
    }
    left |= shipped.len() == BATCH;

    // Counts: a batch, once cut, is sent until the shard has it (the shard applies each
    // sequence number once).
    let mut batch: Option<Batch> = storage.get("count_batch").await?;
    if batch.is_none() {
        let counts: Map<String, Value> = storage.get("counts").await?.unwrap_or_default();
        if !counts.is_empty() {
            let seq = storage.get::<i64>("count_seq").await?.unwrap_or(0) + 1;
            let cut = Batch { seq, counts };
            // One storage operation: the counts move into the batch atomically.
            storage
                .put_multiple(&Cut {
                    count_batch: cut.clone(),
                    counts: Map::new(),
                })
                .await?;
            batch = Some(cut);
        }
    }
    if let Some(batch) = batch {
        let shard = ops::shard_of(settings, phone);
        let sent: Result<Value, AppError> = ops::call(
            ctx,
            shard,
            "count.batch",
            &json!({"source": format!("phone:{phone}"), "seq": batch.seq, "counts": batch.counts}),
        )
        .await;
        match sent {
            Ok(_) => {
                storage.delete("count_batch").await?;
                storage.put("count_seq", batch.seq).await?;
            }
            Err(e) => {
                worker::console_error!(
                    "{}",
                    json!({"level": "warn", "event": "counts_not_shipped", "error": e.to_string()})
                );
                left = true;
            }
        }
    }
    // Read again after the last call out: a message may have added a count or a record
    // while this run waited on a shard.
    if !left
        && storage
            .get::<Map<String, Value>>("counts")
            .await?
            .is_some_and(|c| !c.is_empty())
    {
        left = true;
    }
    if !left
        && storage
            .list_with_options(ListOptions::new().prefix("rec:").limit(1))
            .await?
            .size()
            > 0
    {
        left = true;
    }
    Ok(left.then(|| now_ms() + 2_000))
}
