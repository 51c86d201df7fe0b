//! `OptOut` (legacy, read-only): the former per-phone opt-out record. Opt-outs now live
//! in the phone object (`phone::consent`), which reads this once per phone and merges it;
//! nothing writes here any more. The class stays deployed until a later migration
//! deletes it (README, "Upgrading").

use gateway_core::optout::OptOutRecord;
use serde_json::json;
use worker::{durable_object, DurableObject, Env, Request, Response, State};

use crate::error::AppError;
use crate::rpc;

pub const BINDING: &str = "OPT_OUT";

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
        rpc::serve(req, |op, _body| async move {
            match op.as_str() {
                "get" => {
                    let record: OptOutRecord = self
                        .state
                        .storage()
                        .get("record")
                        .await?
                        .unwrap_or_default();
                    Ok(json!(record))
                }
                _ => Err(AppError::NotFound("no such operation")),
            }
        })
        .await
    }
}
