//! `Session`: one webchat session's idle clock (F3). An alarm fires at expiry (no
//! polling); a message after expiry starts a new conversation that carries what the
//! customer already said. `/chat` prompts typed before a phone number is known are held
//! here too (key `held`) until the first message can be delivered.

use gateway_core::session::{self, Arrival, SessionPolicy, SessionState, SessionStatus};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{durable_object, DurableObject, Env, Request, Response, State};

use crate::error::AppError;
use crate::rpc::{self, now_ms};

pub const BINDING: &str = "SESSIONS";

#[derive(Debug, Serialize, Deserialize)]
pub struct MessageIn {
    pub text: String,
    pub policy: SessionPolicy,
    /// The customer's phone once known (the `/chat` flow asks for it).
    #[serde(default)]
    pub phone: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct MessageOut {
    pub status: SessionStatus,
    /// `new`, `continued` or `resumed`.
    pub arrival: String,
    /// For the agent, prepended to the first message after an expiry.
    pub context_note: Option<String>,
    /// The customer's phone as this session knows it.
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    session: SessionState,
    policy: SessionPolicy,
    phone: Option<String>,
}

// State and Env have no Debug.
#[allow(missing_debug_implementations)]
#[durable_object]
pub struct Session {
    state: State,
    #[allow(dead_code)]
    env: Env,
}

impl DurableObject for Session {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        rpc::serve(req, |op, body| async move { self.handle(&op, body).await }).await
    }

    async fn alarm(&self) -> worker::Result<Response> {
        let storage = self.state.storage();
        if let Some(mut stored) = storage.get::<Stored>("s").await? {
            match stored.session.on_alarm(now_ms(), &stored.policy) {
                Some(at) => rpc::alarm_at(&storage, at).await?,
                None => storage.put("s", &stored).await?,
            }
        }
        Response::ok("")
    }
}

impl Session {
    async fn handle(&self, op: &str, body: Value) -> Result<Value, AppError> {
        let storage = self.state.storage();
        let stored: Option<Stored> = storage.get("s").await?;
        let now = now_ms();
        match op {
            "message" => {
                let input: MessageIn = rpc::args(body)?;
                let previous = stored.as_ref().map(|s| s.session.clone());
                let (next, arrival) =
                    session::on_message(previous, now, &input.text, &input.policy);
                let phone = input
                    .phone
                    .or_else(|| stored.as_ref().and_then(|s| s.phone.clone()));
                let (arrival_name, context_note) = match &arrival {
                    Arrival::New => ("new", None),
                    Arrival::Continued => ("continued", None),
                    Arrival::Resumed { carried } => ("resumed", session::context_note(carried)),
                };
                let status = next.status(now, &input.policy);
                rpc::alarm_at(&storage, next.expiry_at(&input.policy)).await?;
                storage
                    .put(
                        "s",
                        Stored {
                            session: next,
                            policy: input.policy,
                            phone: phone.clone(),
                        },
                    )
                    .await?;
                Ok(json!(MessageOut {
                    status,
                    arrival: arrival_name.into(),
                    context_note,
                    phone,
                }))
            }
            "get" => Ok(match stored {
                Some(s) => json!({"status": s.session.status(now, &s.policy), "phone": s.phone}),
                None => Value::Null,
            }),
            "keepalive" => {
                let Some(mut s) = stored else {
                    return Ok(Value::Null);
                };
                if !s.session.status(now, &s.policy).expired {
                    s.session.last_activity_ms = now;
                    rpc::alarm_at(&storage, s.session.expiry_at(&s.policy)).await?;
                }
                let status = s.session.status(now, &s.policy);
                storage.put("s", &s).await?;
                Ok(json!({"status": status}))
            }
            "hold" => {
                // `/chat` before a phone is known: keep the prompt for later. The session
                // itself starts with the first delivered message, so that one counts as
                // new (and gets the confirmation text).
                let text: String = rpc::args(body.get("text").cloned().unwrap_or_default())?;
                let policy: SessionPolicy =
                    rpc::args(body.get("policy").cloned().unwrap_or_default())?;
                let mut held: Vec<String> = storage.get("held").await?.unwrap_or_default();
                if held.len() < policy.max_buffered {
                    held.push(text.chars().take(policy.max_buffered_chars).collect());
                }
                storage.put("held", &held).await?;
                let provisional = SessionState {
                    conversation: 1,
                    last_activity_ms: now,
                    expired: false,
                    buffer: Vec::new(),
                };
                Ok(json!({"status": provisional.status(now, &policy)}))
            }
            "take_held" => {
                let held: Vec<String> = storage.get("held").await?.unwrap_or_default();
                storage.delete("held").await?;
                Ok(json!({"held": held}))
            }
            _ => Err(AppError::NotFound("no such operation")),
        }
    }
}
