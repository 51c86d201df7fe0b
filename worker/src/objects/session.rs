//! `Session`: one webchat session (F3) — its idle clock (an alarm at expiry), the
//! context carried over an expiry, the customer's phone once known, messages held until
//! it is, the session's own exact rate limit, and its message idempotency keys. The
//! per-IP limits on *new* sessions and *new* phones are asked here, through the Rate
//! Limiting bindings, before anything is stored, so a refused request leaves no trace.
//! A session is deleted `retention.session_after_expiry_ms` after it expired.

use gateway_core::ratelimit::{Bucket, Limit};
use gateway_core::session::{self, Arrival, HeldItem, SessionPolicy, SessionState, SessionStatus};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{durable_object, DurableObject, Env, Request, Response, State, Storage};

use crate::edge;
use crate::error::AppError;
use crate::objects::keys;
use crate::objects::turn::Turn;
use crate::rpc::{self, now_ms};
use crate::settings;

pub const BINDING: &str = "SESSIONS";

/// The per-IP checks the edge asks this object to make before a new session or a new
/// phone is stored (the client's key for the Rate Limiting bindings).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientLimits {
    pub client: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct MessageIn {
    pub text: String,
    pub policy: SessionPolicy,
    pub limit: Limit,
    /// The customer's phone, when this message brings one.
    #[serde(default)]
    pub phone: Option<String>,
    /// The client's idempotency key: a repeat changes nothing and gets the first answer.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub limits: Option<ClientLimits>,
    /// When neither this message nor the session knows the phone: hold this instead
    /// (answered `awaiting_phone`).
    #[serde(default)]
    pub hold: Option<HeldItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageOut {
    pub status: SessionStatus,
    /// `new`, `continued` or `resumed`.
    pub arrival: String,
    /// For the agent, prepended to the first message after an expiry.
    pub context_note: Option<String>,
    /// The customer's phone as this session knows it.
    pub phone: Option<String>,
    /// Messages held until the phone was known, to deliver with this one; acknowledged
    /// (`ack_held`) once they are queued, never dropped before.
    #[serde(default)]
    pub held: Option<HeldBatch>,
    #[serde(default)]
    pub duplicate: bool,
}

/// Held messages released together.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldBatch {
    pub id: String,
    pub items: Vec<HeldItem>,
}

/// A refusal from this object: the edge turns it into a 429.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refused {
    pub refused: String,
    pub retry_after_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    session: SessionState,
    policy: SessionPolicy,
    phone: Option<String>,
}

/// The storage entries: the session, its idempotency keys, its own rate bucket, a phone
/// learnt before the session began, and what is held for want of a phone.
const STATE: &str = "s";
const KEYS: &str = "keys";
const BUCKET: &str = "bucket";
const KNOWN_PHONE: &str = "known_phone";
const HELD: &str = "held";
/// Everything a message's turn may read.
const MESSAGE_ENTRIES: [&str; 5] = [STATE, KEYS, BUCKET, KNOWN_PHONE, HELD];

/// Messages held for want of a phone, and the batch being released: one storage entry,
/// so moving items into a batch is a single write.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Held {
    items: Vec<HeldItem>,
    releasing: Option<HeldBatch>,
    /// When the first item was held (retention for a session that never got a phone).
    since: Option<i64>,
}

// State and Env have no Debug.
#[allow(missing_debug_implementations)]
#[durable_object]
pub struct Session {
    state: State,
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
        let now = now_ms();
        let keep_ms = settings::load(&self.env)
            .map(|s| s.config.retention.session_after_expiry_ms)
            .unwrap_or(7 * 24 * 3600 * 1000);
        match storage.get::<Stored>(STATE).await? {
            Some(mut stored) => match stored.session.on_alarm(now, &stored.policy) {
                Some(at) => rpc::alarm_at(&storage, at).await?,
                None => {
                    let forget = session::forget_at(&stored.session, &stored.policy, keep_ms);
                    if now >= forget {
                        // Retention: the session, its context, its phone and anything
                        // still held are gone.
                        storage.delete_all().await?;
                    } else {
                        storage.put(STATE, &stored).await?;
                        rpc::alarm_at(&storage, forget).await?;
                    }
                }
            },
            None => {
                // Held before a phone was ever known, and abandoned.
                let held: Held = storage.get(HELD).await?.unwrap_or_default();
                match held.since {
                    Some(at) if now < at.saturating_add(keep_ms) => {
                        rpc::alarm_at(&storage, at.saturating_add(keep_ms)).await?;
                    }
                    _ => storage.delete_all().await?,
                }
            }
        }
        Response::ok("")
    }
}

fn refused(what: &str, retry_after_ms: i64) -> Value {
    json!(Refused {
        refused: what.to_owned(),
        retry_after_ms,
    })
}

impl Session {
    /// Ask a Rate Limiting binding for `client`; `false` when over the limit. A binding
    /// that is missing or fails lets the request through (it is a limit, not a gate).
    async fn within(&self, binding: &str, limits: Option<&ClientLimits>) -> bool {
        let Some(limits) = limits else {
            return true;
        };
        edge::within_binding(&self.env, binding, &limits.client).await
    }

    async fn handle(&self, op: &str, body: Value) -> Result<Value, AppError> {
        let storage = self.state.storage();
        let now = now_ms();
        if op == "message" {
            let input: MessageIn = rpc::args(body)?;
            return self.message(&storage, input, now).await;
        }
        let stored: Option<Stored> = storage.get(STATE).await?;
        match op {
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
                storage.put(STATE, &s).await?;
                Ok(json!({"status": status}))
            }
            // A message to keep until the phone is known (`/chat` before the number, an
            // incoming-webchat envelope without one).
            "hold" => {
                let item: HeldItem = rpc::args(body.get("item").cloned().unwrap_or_default())?;
                let policy: SessionPolicy =
                    rpc::args(body.get("policy").cloned().unwrap_or_default())?;
                let limit: Limit = rpc::args(body.get("limit").cloned().unwrap_or_default())?;
                let limits: Option<ClientLimits> =
                    serde_json::from_value(body.get("limits").cloned().unwrap_or_default()).ok();
                let mut turn = Turn::load(&storage, &[BUCKET]).await?;
                let taken = take_from_bucket(&mut turn, &limit, now)?;
                turn.commit(&storage).await?;
                if let Err(wait) = taken {
                    return Ok(refused("session", wait));
                }
                self.hold(
                    &storage,
                    stored.as_ref(),
                    item,
                    &policy,
                    limits.as_ref(),
                    now,
                )
                .await
            }
            // The held batch was queued: drop it (only that batch).
            "ack_held" => {
                let id = body
                    .get("batch")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let mut held: Held = storage.get(HELD).await?.unwrap_or_default();
                let acked = held.releasing.as_ref().is_some_and(|b| b.id == id);
                if acked {
                    held.releasing = None;
                    storage.put(HELD, &held).await?;
                }
                Ok(json!({"acked": acked}))
            }
            // Chatwoot's `conversation_created` told us the contact's phone.
            "remember_phone" => {
                let phone = body.get("phone").and_then(Value::as_str).map(str::to_owned);
                storage.put(KNOWN_PHONE, &phone).await?;
                if let Some(mut s) = stored {
                    if s.phone.is_none() {
                        s.phone.clone_from(&phone);
                        storage.put(STATE, &s).await?;
                    }
                } else {
                    let keep = settings::load(&self.env)?
                        .config
                        .retention
                        .session_after_expiry_ms;
                    rpc::wake_by(&storage, now.saturating_add(keep)).await?;
                }
                Ok(json!({"remembered": phone.is_some()}))
            }
            "phone" => {
                let from_session = stored.and_then(|s| s.phone);
                let remembered: Option<Option<String>> = storage.get(KNOWN_PHONE).await?;
                Ok(json!({"phone": from_session.or(remembered.flatten())}))
            }
            _ => Err(AppError::NotFound("no such operation")),
        }
    }

    /// A message: read in one storage call and written in one (see `turn`). The per-IP
    /// bindings are the one thing awaited that is not storage, so a turn that asks them
    /// saves what it has (the session bucket) first and reads everything again after.
    async fn message(
        &self,
        storage: &Storage,
        input: MessageIn,
        now: i64,
    ) -> Result<Value, AppError> {
        let retention = settings::load(&self.env)?.config.retention.message_keys_ms;
        let mut turn = Turn::load(storage, &MESSAGE_ENTRIES).await?;
        let mut stored: Option<Stored> = turn.get(STATE)?;
        if let Some(first) = repeat(&turn, stored.as_ref(), input.key.as_deref(), now, retention)? {
            return Ok(first);
        }
        let taken = take_from_bucket(&mut turn, &input.limit, now)?;
        if let Err(wait) = taken {
            turn.commit(storage).await?;
            return Ok(refused("session", wait));
        }
        let mut known_phone = known_phone(&turn, stored.as_ref())?;
        if input.phone.is_none() && known_phone.is_none() {
            if let Some(item) = input.hold {
                turn.commit(storage).await?;
                return self
                    .hold(
                        storage,
                        stored.as_ref(),
                        item,
                        &input.policy,
                        input.limits.as_ref(),
                        now,
                    )
                    .await;
            }
        }
        let new_session = stored.is_none();
        let new_phone = input
            .phone
            .as_ref()
            .is_some_and(|p| known_phone.as_deref() != Some(p.as_str()));
        if input.limits.is_some() && (new_session || new_phone) {
            turn.commit(storage).await?;
            // A first message asks both bindings; at once, so it waits for one round
            // trip, not two. A request refused for its session has then also spent a
            // new-phone slot: that only errs towards refusing a client already over its
            // limit.
            let (session_ok, phone_ok) = futures_util::future::join(
                async {
                    !new_session
                        || self
                            .within(edge::RL_NEW_SESSION, input.limits.as_ref())
                            .await
                },
                async {
                    !new_phone || self.within(edge::RL_NEW_PHONE, input.limits.as_ref()).await
                },
            )
            .await;
            if !session_ok {
                return Ok(refused("new_sessions", 60_000));
            }
            if !phone_ok {
                return Ok(refused("new_phones", 60_000));
            }
            // Other messages of this session may have run while the bindings answered.
            turn = Turn::load(storage, &MESSAGE_ENTRIES).await?;
            stored = turn.get(STATE)?;
            if let Some(first) =
                repeat(&turn, stored.as_ref(), input.key.as_deref(), now, retention)?
            {
                return Ok(first);
            }
            known_phone = self::known_phone(&turn, stored.as_ref())?;
        }
        let previous = stored.as_ref().map(|s| s.session.clone());
        let (next, arrival) = session::on_message(previous, now, &input.text, &input.policy);
        let phone = input.phone.clone().or(known_phone);
        let (arrival_name, context_note) = match &arrival {
            Arrival::New => ("new", None),
            Arrival::Continued => ("continued", None),
            Arrival::Resumed { carried } => ("resumed", session::context_note(carried)),
        };
        let status = next.status(now, &input.policy);
        let expiry = next.expiry_at(&input.policy);
        turn.put(
            STATE,
            &Stored {
                session: next,
                policy: input.policy,
                phone: phone.clone(),
            },
        )?;
        // Anything held for want of a phone goes out with this message.
        let held = match &phone {
            Some(_) => release_held(&mut turn)?,
            None => None,
        };
        let out = MessageOut {
            status,
            arrival: arrival_name.into(),
            context_note,
            phone,
            held,
            duplicate: false,
        };
        if let Some(key) = &input.key {
            keys::remember(&mut turn, KEYS, key, &out, now, retention)?;
        }
        turn.commit(storage).await?;
        rpc::alarm_at(storage, expiry).await?;
        Ok(json!(out))
    }

    /// Keep a message until the phone is known.
    async fn hold(
        &self,
        storage: &Storage,
        stored: Option<&Stored>,
        item: HeldItem,
        policy: &SessionPolicy,
        limits: Option<&ClientLimits>,
        now: i64,
    ) -> Result<Value, AppError> {
        let mut held: Held = storage.get(HELD).await?.unwrap_or_default();
        let fresh = stored.is_none() && held.items.is_empty();
        if fresh && !self.within(edge::RL_NEW_SESSION, limits).await {
            return Ok(refused("new_sessions", 60_000));
        }
        if !session::hold(&mut held.items, item, policy) {
            return Ok(json!({"awaiting_phone": true, "held": false, "count": held.items.len()}));
        }
        held.since.get_or_insert(now);
        let count = held.items.len();
        storage.put(HELD, &held).await?;
        let status = match stored {
            Some(s) => s.session.status(now, &s.policy),
            None => {
                // The retention clock for a session that never got a phone.
                let keep = settings::load(&self.env)?
                    .config
                    .retention
                    .session_after_expiry_ms;
                rpc::wake_by(
                    storage,
                    now.saturating_add(policy.idle_ms).saturating_add(keep),
                )
                .await?;
                let provisional = SessionState {
                    conversation: 1,
                    last_activity_ms: now,
                    expired: false,
                    buffer: Vec::new(),
                };
                provisional.status(now, policy)
            }
        };
        Ok(json!({"awaiting_phone": true, "held": true, "count": count, "status": status}))
    }
}

/// The first answer to a message sent again under the same key (with the session's
/// status as it is now).
fn repeat(
    turn: &Turn,
    stored: Option<&Stored>,
    key: Option<&str>,
    now: i64,
    retention: i64,
) -> Result<Option<Value>, AppError> {
    let Some(key) = key else {
        return Ok(None);
    };
    let Some(mut first) = keys::find::<MessageOut>(turn, KEYS, key, now, retention)? else {
        return Ok(None);
    };
    first.duplicate = true;
    if let Some(s) = stored {
        first.status = s.session.status(now, &s.policy);
    }
    Ok(Some(json!(first)))
}

/// The session's phone: its own, or one Chatwoot told it before the session began.
fn known_phone(turn: &Turn, stored: Option<&Stored>) -> Result<Option<String>, AppError> {
    let remembered: Option<Option<String>> = turn.get(KNOWN_PHONE)?;
    Ok(stored
        .and_then(|s| s.phone.clone())
        .or(remembered.flatten()))
}

/// Take one message from the session's own bucket (`Err`: wait this long).
fn take_from_bucket(turn: &mut Turn, limit: &Limit, now: i64) -> Result<Result<(), i64>, AppError> {
    let mut bucket = turn
        .get::<Bucket>(BUCKET)?
        .unwrap_or_else(|| Bucket::full(limit, now));
    let taken = bucket.take(limit, now);
    turn.put(BUCKET, &bucket)?;
    Ok(taken)
}

/// Move held messages into a batch being released (kept until acknowledged: a batch not
/// acknowledged is released again with the next message, under the same id, so the
/// phone's idempotency key queues it once).
fn release_held(turn: &mut Turn) -> Result<Option<HeldBatch>, AppError> {
    let mut held: Held = turn.get(HELD)?.unwrap_or_default();
    if held.releasing.is_some() {
        // Released before and not yet acknowledged: the same batch again (queued under
        // its id, so the phone object takes it once).
        return Ok(held.releasing);
    }
    if held.items.is_empty() {
        return Ok(None);
    }
    let batch = HeldBatch {
        id: rpc::new_id("held"),
        items: std::mem::take(&mut held.items),
    };
    held.releasing = Some(batch.clone());
    held.since = None;
    turn.put(HELD, &held)?;
    Ok(Some(batch))
}
