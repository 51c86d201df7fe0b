//! The phone's one opt-out record (F6), and its import from the former per-phone
//! `OptOut` object: a deployed gateway has opt-out records there, so the first time this
//! object needs the record it reads the old one and merges it (by time, erring towards
//! silence). The old class stays deployed, read-only, until a later migration deletes
//! it (see the README's upgrade notes).

use gateway_core::optout::{Channel, OptOutRecord};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::Storage;

use crate::error::AppError;
use crate::objects::optout as legacy;
use crate::objects::turn::Turn;
use crate::rpc::{self, Ctx};
use crate::settings;

/// A change from another flow (an SMS keyword webhook, an operator).
#[derive(Debug, Serialize, Deserialize)]
pub struct ApplyIn {
    pub opted_out: bool,
    pub at_ms: i64,
    pub channel: Channel,
}

/// The entries a turn must load to read and change the record ([`load_in`], [`save_in`]).
pub const ENTRIES: [&str; 1] = [RECORD];

const RECORD: &str = "optout";
const IMPORTED: &str = "optout_imported";

/// The record, with the former object's merged in once.
pub async fn load(ctx: &Ctx, storage: &Storage, phone: &str) -> Result<OptOutRecord, AppError> {
    import(ctx, storage, phone).await?;
    load_local(storage).await
}

/// Merge the former object's record into this one, once (unless the configuration says
/// this gateway never had the former layout: `import_legacy_optouts`). It calls that
/// object, so a turn does it before it loads (see `turn`).
pub async fn import(ctx: &Ctx, storage: &Storage, phone: &str) -> Result<(), AppError> {
    if !settings::load(ctx)?.config.import_legacy_optouts
        || storage.get::<bool>(IMPORTED).await?.unwrap_or(false)
    {
        return Ok(());
    }
    let old: OptOutRecord = rpc::call(ctx, legacy::BINDING, phone, "get", &json!({})).await?;
    // Read after the call: a change made while it was out is kept.
    let mut record = load_local(storage).await?;
    record.merge_legacy(&old);
    storage.put(RECORD, &record).await?;
    storage.put(IMPORTED, true).await?;
    if old.opted_out || !old.history.is_empty() {
        worker::console_log!(
            "{}",
            json!({"event": "optout_imported", "phone": crate::mask_phone(phone),
                   "opted_out": record.opted_out, "changes": old.history.len()})
        );
    }
    Ok(())
}

/// The record as stored, without the import: for a decision that the send-time check
/// repeats anyway (the import happens before any send).
pub async fn load_local(storage: &Storage) -> Result<OptOutRecord, AppError> {
    Ok(storage.get(RECORD).await?.unwrap_or_default())
}

/// [`load_local`] inside a turn that loaded [`ENTRIES`].
pub fn load_in(turn: &Turn) -> Result<OptOutRecord, AppError> {
    Ok(turn.get(RECORD)?.unwrap_or_default())
}

pub async fn save(storage: &Storage, record: &OptOutRecord) -> Result<(), AppError> {
    storage.put(RECORD, record).await?;
    Ok(())
}

pub fn save_in(turn: &mut Turn, record: &OptOutRecord) -> Result<(), AppError> {
    turn.put(RECORD, record)
}

/// For operators: every channel's state and which one governs.
pub fn view(record: &OptOutRecord) -> Value {
    let last = record.last_change();
    json!({
        "opted_out": record.opted_out,
        "governed_by": record.governing(),
        "changed_at_ms": last.as_ref().map(|c| c.at_ms),
        "channel": last.as_ref().map(|c| c.channel),
        "channels": record.channels(),
        "by_channel": record.by_channel(),
        "history": record.history,
        "podium_last_webhook": record.podium,
        "drift": record.drift(),
    })
}
