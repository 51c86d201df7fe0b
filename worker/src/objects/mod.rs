//! The Durable Object classes, one small file each.

pub mod contact;
pub mod idempotency;
pub mod ledger;
pub mod limiter;
pub mod optout;
pub mod reviews;
pub mod session;
pub mod token;
