//! `OptOut`: the one opt-out record per E.164 phone (F6). Every flow that would text the
//! phone asks it at the moment of sending; keywords from any channel change it.

use gateway_core::optout::{Channel, OptOutRecord, PodiumView};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{durable_object, DurableObject, Env, Request, Response, State};

use crate::error::AppError;
use crate::rpc;

pub const BINDING: &str = "OPT_OUT";

#[derive(Debug, Serialize, Deserialize)]
pub struct Apply {
    pub opted_out: bool,
    pub at_ms: i64,
    pub channel: Channel,
}

// State and Env have no Debug.
#[allow(missing_debug_implementations)]
#[durable_object]
pub struct OptOut {
    state: State,
    #[allow(dead_code)]
    env: Env,
}

impl DurableObject for OptOut {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        rpc::serve(req, |op, body| async move { self.handle(&op, body).await }).await
    }
}

impl OptOut {
    async fn handle(&self, op: &str, body: Value) -> Result<Value, AppError> {
        let storage = self.state.storage();
        let mut record: OptOutRecord = storage.get("record").await?.unwrap_or_default();
        match op {
            "get" => Ok(json!(record)),
            "apply" => {
                let change: Apply = rpc::args(body)?;
                let flipped = record.apply(change.opted_out, change.at_ms, change.channel);
                storage.put("record", &record).await?;
                Ok(json!({"flipped": flipped, "record": record}))
            }
            "podium" => {
                let view: PodiumView = rpc::args(body)?;
                let outcome = record.apply_podium(view.opted_out_at_ms, view.observed_ms);
                storage.put("record", &record).await?;
                Ok(json!({"outcome": outcome, "record": record, "drift": record.drift()}))
            }
            _ => Err(AppError::NotFound("no such operation")),
        }
    }
}
