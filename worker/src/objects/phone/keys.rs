//! The phone's message idempotency keys: a resend of the same message (same key) within
//! `retention.message_keys_ms` is answered with the first answer and queues nothing.

use worker::Storage;

use super::MessageOut;
use crate::error::AppError;
use crate::objects::keys as store;

const NAME: &str = "keys";

pub async fn find(
    storage: &Storage,
    key: &str,
    now_ms: i64,
    retention_ms: i64,
) -> Result<Option<MessageOut>, AppError> {
    store::find(storage, NAME, key, now_ms, retention_ms).await
}

pub async fn remember(
    storage: &Storage,
    key: &str,
    answer: &MessageOut,
    now_ms: i64,
    retention_ms: i64,
) -> Result<(), AppError> {
    store::remember(storage, NAME, key, answer, now_ms, retention_ms).await
}

/// Drop expired keys; when the next expires.
pub async fn expire(
    storage: &Storage,
    now_ms: i64,
    retention_ms: i64,
) -> Result<Option<i64>, AppError> {
    store::expire::<MessageOut>(storage, NAME, now_ms, retention_ms).await
}
