//! `Limiter`: a token bucket per client key (`ip:…`, `session:…`) for the edge's rate
//! limits (F17). Works the same under `wrangler dev` and in production. A bucket that
//! has refilled is deleted by an alarm, so idle clients cost no storage.

use gateway_core::ratelimit::{Bucket, Limit};
use serde_json::{json, Value};
use worker::{durable_object, DurableObject, Env, Request, Response, State};

use crate::error::AppError;
use crate::rpc::{self, now_ms};

pub const BINDING: &str = "LIMITER";

// State and Env have no Debug.
#[allow(missing_debug_implementations)]
#[durable_object]
pub struct Limiter {
    state: State,
    #[allow(dead_code)]
    env: Env,
}

impl DurableObject for Limiter {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        rpc::serve(req, |op, body| async move {
            match op.as_str() {
                "take" => self.take(body).await,
                _ => Err(AppError::NotFound("no such operation")),
            }
        })
        .await
    }

    async fn alarm(&self) -> worker::Result<Response> {
        self.state.storage().delete_all().await?;
        Response::ok("")
    }
}

impl Limiter {
    async fn take(&self, body: Value) -> Result<Value, AppError> {
        let limit: Limit = rpc::args(body)?;
        let storage = self.state.storage();
        let now = now_ms();
        let mut bucket = storage
            .get::<Bucket>("b")
            .await?
            .unwrap_or_else(|| Bucket::full(&limit, now));
        let taken = bucket.take(&limit, now);
        storage.put("b", bucket).await?;
        // Forget the client once a full burst would have refilled.
        let refill_ms = i64::from(limit.burst.max(1)) * 60_000 / i64::from(limit.per_minute.max(1));
        rpc::alarm_at(&storage, now + refill_ms.max(1_000)).await?;
        Ok(match taken {
            Ok(()) => json!({"ok": true}),
            Err(wait_ms) => json!({"ok": false, "retry_after_ms": wait_ms}),
        })
    }
}
