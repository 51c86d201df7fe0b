//! The phone's automatic texts (see `gateway_core::texts`): the window (at most one per
//! phone per `auto_texts.per_phone_window_ms`) is decided here, inside the phone's own
//! object, so two concurrent chats cannot both pass; the country breaker is asked at
//! send time by the outbox.

use gateway_core::outbox::JobKind;
use gateway_core::texts::{self, AutoTextPolicy, Skip};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::Storage;

use super::consent;
use crate::error::AppError;
use crate::objects::turn::Turn;

/// What the edge knows about an automatic text this chat may trigger.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AutoTextIn {
    pub body: String,
    pub location_uid: String,
    /// `confirmation` today.
    pub purpose: String,
    /// A verified browser on an allowed origin (Turnstile passed, when configured).
    pub trusted: bool,
    pub phone_region: Option<String>,
    pub allowed_regions: Vec<String>,
    /// The first message of a session: a confirmation answers the start of a chat, not
    /// every message in it.
    pub starts_conversation: bool,
}

const LAST: &str = "auto_text_last_ms";

/// The entries a turn must load for [`decide`] (with `consent::ENTRIES`).
pub const ENTRIES: [&str; 1] = [LAST];

/// Queue the text (and start the window) or say why not. `opted_out`: the record's
/// state if this request already read it.
pub fn decide(
    turn: &mut Turn,
    policy: &AutoTextPolicy,
    input: &AutoTextIn,
    opted_out: Option<bool>,
    now_ms: i64,
) -> Result<Result<JobKind, Skip>, AppError> {
    let last: Option<i64> = turn.get(LAST)?;
    let opted_out = match opted_out {
        Some(o) => o,
        None => consent::load_in(turn)?.opted_out,
    };
    let request = texts::Request {
        trusted: input.trusted,
        phone_region: input.phone_region.as_deref(),
        allowed_regions: &input.allowed_regions,
        last_auto_text_ms: last,
        opted_out,
        now_ms,
    };
    if let Err(skip) = texts::decide(policy, &request) {
        return Ok(Err(skip));
    }
    if !input.starts_conversation {
        return Ok(Err(Skip::MidConversation));
    }
    turn.put(LAST, &now_ms)?;
    Ok(Ok(JobKind::Text {
        location_uid: input.location_uid.clone(),
        body: input.body.clone(),
        purpose: input.purpose.clone(),
    }))
}

pub async fn view(storage: &Storage) -> Result<Value, AppError> {
    let last: Option<i64> = storage.get(LAST).await?;
    Ok(json!({"last_ms": last}))
}
