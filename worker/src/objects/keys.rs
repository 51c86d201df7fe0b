//! Idempotency keys inside an object (a phone, a session): the first answer given for a
//! key, kept for a retention period, so a repeat gets the same answer and changes
//! nothing. One storage entry per object, pruned on every write and bounded: a key is
//! only as useful as the client that resends it within the retention.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use worker::Storage;

use crate::error::AppError;
use crate::objects::turn::Turn;

/// Keys kept per object at most (the oldest are dropped first): a stored value must stay
/// under the storage API's 128 KiB, and a phone or session with more keyed messages than
/// this in a day is not a customer.
const MAX_KEYS: usize = 200;
/// Longest key accepted (longer ones are hashed by the caller or refused at the edge).
pub const MAX_KEY_CHARS: usize = 200;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry<T> {
    key: String,
    at_ms: i64,
    answer: T,
}

async fn load<T: DeserializeOwned>(
    storage: &Storage,
    name: &str,
) -> Result<Vec<Entry<T>>, AppError> {
    Ok(storage.get(name).await?.unwrap_or_default())
}

/// The answer first given for `key`, if it is still kept (the turn loaded `name`).
pub fn find<T: DeserializeOwned>(
    turn: &Turn,
    name: &str,
    key: &str,
    now_ms: i64,
    retention_ms: i64,
) -> Result<Option<T>, AppError> {
    let entries: Vec<Entry<T>> = turn.get(name)?.unwrap_or_default();
    Ok(entries
        .into_iter()
        .find(|e| e.key == key && e.at_ms.saturating_add(retention_ms) > now_ms)
        .map(|e| e.answer))
}

/// Keep `answer` for `key`, dropping expired keys and the oldest beyond the bound (the
/// turn loaded `name`).
pub fn remember<T: DeserializeOwned + Serialize + Clone>(
    turn: &mut Turn,
    name: &str,
    key: &str,
    answer: &T,
    now_ms: i64,
    retention_ms: i64,
) -> Result<(), AppError> {
    let mut entries: Vec<Entry<T>> = turn.get(name)?.unwrap_or_default();
    entries.retain(|e| e.key != key && e.at_ms.saturating_add(retention_ms) > now_ms);
    entries.push(Entry {
        key: key.to_owned(),
        at_ms: now_ms,
        answer: answer.clone(),
    });
    if entries.len() > MAX_KEYS {
        let excess = entries.len() - MAX_KEYS;
        entries.drain(..excess);
    }
    turn.put(name, &entries)
}

/// Drop expired keys; the time the next one expires, if any.
pub async fn expire<T: DeserializeOwned + Serialize>(
    storage: &Storage,
    name: &str,
    now_ms: i64,
    retention_ms: i64,
) -> Result<Option<i64>, AppError> {
    let mut entries: Vec<Entry<T>> = load(storage, name).await?;
    let before = entries.len();
    entries.retain(|e| e.at_ms.saturating_add(retention_ms) > now_ms);
    if entries.is_empty() {
        if before > 0 {
            storage.delete(name).await?;
        }
        return Ok(None);
    }
    if entries.len() != before {
        storage.put(name, &entries).await?;
    }
    Ok(entries
        .iter()
        .map(|e| e.at_ms.saturating_add(retention_ms))
        .min())
}
