//! Pure domain logic shared by the browser widget and the edge worker: no clock, no I/O.
//!
//! Every function here takes plain values and returns a verdict, so the widget
//! (`widget-wasm`) and the worker give the same answer on the same input.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod attachment;
pub mod config;
pub mod delivery;
pub mod envelope;
pub mod incoming;
pub mod optout;
pub mod outbox;
pub mod phone;
pub mod ratelimit;
pub mod review;
pub mod routing;
pub mod session;
pub mod signature;
mod text;
pub mod texts;
pub mod time;
pub mod webhook;

/// A machine-readable verdict on one piece of input: a stable `code`, a human `message`
/// and, where it applies, the path of the offending field (`contact.phone`,
/// `attachments[1].size`). This is the shape every 4xx body and every widget result uses.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
