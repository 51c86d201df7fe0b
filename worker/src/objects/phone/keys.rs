//! The phone's message idempotency keys: a resend of the same message (same key) within
//! `retention.message_keys_ms` is answered with the first answer and queues nothing.

use worker::Storage;

use super::MessageOut;
use crate::error::AppError;
use crate::objects::keys as store;
use crate::objects::turn::Turn;

const NAME: &str = "keys";

/// The entry a turn must load to use the keys.
pub const ENTRY: &str = NAME;

pub fn find(
    turn: &Turn,
    key: &str,
    now_ms: i64,
    retention_ms: i64,
) -> Result<Option<MessageOut>, AppError> {
    store::find(turn, NAME, key, now_ms, retention_ms)
}

pub fn remember(
    turn: &mut Turn,
    key: &str,
    answer: &MessageOut,
    now_ms: i64,
    retention_ms: i64,
) -> Result<(), AppError> {
    store::remember(turn, NAME, key, answer, now_ms, retention_ms)
}

/// Drop expired keys; when the next expires.
pub async fn expire(
    storage: &Storage,
    now_ms: i64,
    retention_ms: i64,
) -> Result<Option<i64>, AppError> {
    store::expire::<MessageOut>(storage, NAME, now_ms, retention_ms).await
}
