//! The Durable Object classes, one small file (or folder) each.

pub mod breaker;
pub mod idempotency;
pub mod keys;
pub mod ledger;
pub mod ops;
pub mod optout;
pub mod phone;
pub mod reviews;
pub mod session;
pub mod token;
pub mod turn;
