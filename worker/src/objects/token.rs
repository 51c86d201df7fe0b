//! `PodiumToken`: the one holder of the Podium access token (F18). Refreshes happen one
//! at a time (`blockConcurrencyWhile` holds every other caller until the new token is
//! stored, so 100 callers with an expired token cause one refresh), and every Podium
//! call takes a slot from a token bucket that keeps the gateway under Podium's
//! 300 requests a minute. A delivery run asks once for the slots it expects to spend
//! (`gateway_core::ratelimit::Permits`), not once per call, and for a few spares that the
//! next runs in its isolate spend without asking; spares come only from above half the
//! burst, and no slot is spent more than 2 s after its grant.

use gateway_core::ratelimit::{Bucket, Limit, SPARE_PERMITS};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{durable_object, DurableObject, Env, Method, Request, Response, State, Storage};

use crate::error::AppError;
use crate::podium::{self, Body};
use crate::rpc::{self, now_ms};
use crate::settings;

pub const BINDING: &str = "PODIUM_TOKEN";
/// The single instance's name.
pub const NAME: &str = "podium";
/// A token this close to expiry is refreshed before use.
const EXPIRY_MARGIN_MS: i64 = 60_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Stored {
    access_token: Option<String>,
    expires_at_ms: i64,
    /// Set once Podium rotates the refresh token; otherwise the secret's is used.
    refresh_token: Option<String>,
    /// Which `PODIUM_REFRESH_TOKEN` secret the rotated token descends from (a hash):
    /// when the operator puts a new secret, it supersedes the stored token.
    #[serde(default)]
    refresh_source: Option<String>,
    refreshes: u64,
}

/// A short fingerprint of a secret (never the secret itself).
fn fingerprint(secret: &str) -> String {
    gateway_core::webhook::sha256_hex(&[b"podium-refresh-token", secret.as_bytes()])
        .chars()
        .take(16)
        .collect()
}

/// Request slots granted at once at most (one delivery run's worth: a new phone's
/// lookup, create, chat and confirmation, and a few more queued messages).
pub const MAX_PERMITS: u32 = 8;

/// What a caller gets: a token and how many request slots it may spend now, or how long
/// to wait for one.
#[derive(Debug, Serialize, Deserialize)]
pub struct Grant {
    pub access_token: Option<String>,
    pub wait_ms: i64,
    /// Slots granted (1 to the number asked for, at most [`MAX_PERMITS`], plus at most
    /// [`SPARE_PERMITS`] spares).
    #[serde(default = "one")]
    pub permits: u32,
}

fn one() -> u32 {
    1
}

/// A slot count from an `acquire` body: `absent` when not given, never above `max`.
fn slots_asked(body: &Value, name: &str, absent: u32, max: u32) -> u32 {
    body.get(name)
        .and_then(Value::as_u64)
        .map_or(absent, |n| u32::try_from(n).unwrap_or(max))
        .min(max)
}

// State and Env have no Debug.
#[allow(missing_debug_implementations)]
#[durable_object]
pub struct PodiumToken {
    state: State,
    env: Env,
}

impl DurableObject for PodiumToken {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        rpc::serve(req, |op, body| async move { self.handle(&op, body).await }).await
    }
}

impl PodiumToken {
    async fn handle(&self, op: &str, body: Value) -> Result<Value, AppError> {
        match op {
            "acquire" => {
                // How many slots the caller expects to spend in this run (at least one),
                // and spares for its isolate (given only from above half the burst).
                let want = slots_asked(&body, "want", 1, MAX_PERMITS).max(1);
                let spare = slots_asked(&body, "spare", 0, SPARE_PERMITS);
                Ok(json!(self.acquire(want, spare).await?))
            }
            "invalidate" => {
                let token: String =
                    rpc::args(body.get("access_token").cloned().unwrap_or_default())?;
                self.invalidate(&token).await?;
                Ok(json!({}))
            }
            "drain" => {
                // A 429 without Retry-After: empty the bucket so every phone slows down.
                let storage = self.state.storage();
                let mut bucket = self.bucket(&storage).await?;
                bucket.tokens = 0.0;
                bucket.updated_ms = now_ms();
                storage.put("bucket", bucket).await?;
                Ok(json!({}))
            }
            "status" => {
                let stored: Stored = self.state.storage().get("token").await?.unwrap_or_default();
                Ok(json!({
                    "has_token": stored.access_token.is_some(),
                    "expires_at_ms": stored.expires_at_ms,
                    "refreshes": stored.refreshes,
                    "refresh_token": if stored.refresh_token.is_some() { "rotated (stored)" } else { "from the PODIUM_REFRESH_TOKEN secret" },
                }))
            }
            // An operator resets the stored token: the next call refreshes with the
            // PODIUM_REFRESH_TOKEN secret as it is now.
            "reset" => {
                let storage = self.state.storage();
                let mut stored: Stored = storage.get("token").await?.unwrap_or_default();
                let had_rotated = stored.refresh_token.is_some();
                stored.access_token = None;
                stored.expires_at_ms = 0;
                stored.refresh_token = None;
                stored.refresh_source = None;
                storage.put("token", stored).await?;
                worker::console_log!(
                    "{}",
                    json!({"event": "podium_token_reset", "had_rotated": had_rotated})
                );
                Ok(json!({"reset": true, "dropped_rotated_refresh_token": had_rotated}))
            }
            _ => Err(AppError::NotFound("no such operation")),
        }
    }

    fn limit(&self) -> Result<Limit, AppError> {
        let config = &settings::load(&self.env)?.config;
        let per_minute = config.podium.requests_per_minute;
        Ok(Limit {
            burst: (per_minute / 10).clamp(1, 30),
            per_minute,
        })
    }

    async fn bucket(&self, storage: &Storage) -> Result<Bucket, AppError> {
        let limit = self.limit()?;
        Ok(storage
            .get::<Bucket>("bucket")
            .await?
            .unwrap_or_else(|| Bucket::full(&limit, now_ms())))
    }

    async fn acquire(&self, want: u32, spare: u32) -> Result<Grant, AppError> {
        let storage = self.state.storage();
        let now = now_ms();
        let limit = self.limit()?;
        let mut bucket = self.bucket(&storage).await?;
        let taken = bucket.take_with_spare(&limit, now, want, spare);
        storage.put("bucket", bucket).await?;
        let permits = match taken {
            Ok(permits) => permits,
            Err(wait_ms) => {
                return Ok(Grant {
                    access_token: None,
                    wait_ms,
                    permits: 0,
                })
            }
        };
        let stored: Stored = storage.get("token").await?.unwrap_or_default();
        if let Some(token) = stored
            .access_token
            .filter(|_| stored.expires_at_ms - EXPIRY_MARGIN_MS > now)
        {
            return Ok(Grant {
                access_token: Some(token),
                wait_ms: 0,
                permits,
            });
        }
        // Single flight: no other event reaches this object until the refresh is stored;
        // queued callers then find the fresh token above.
        let env = self.env.clone();
        let storage = self.state.storage();
        let token = self
            .state
            .block_concurrency_while(async move { Ok(refresh_if_needed(&env, &storage).await) })
            .await??;
        Ok(Grant {
            access_token: Some(token),
            wait_ms: 0,
            permits,
        })
    }

    async fn invalidate(&self, token: &str) -> Result<(), AppError> {
        let storage = self.state.storage();
        let mut stored: Stored = storage.get("token").await?.unwrap_or_default();
        if stored.access_token.as_deref() == Some(token) {
            stored.access_token = None;
            stored.expires_at_ms = 0;
            storage.put("token", stored).await?;
        }
        Ok(())
    }
}

/// Runs with every other event held back. Errors are returned as values: an `Err` from
/// the gate itself would reset the object.
async fn refresh_if_needed(env: &Env, storage: &Storage) -> Result<String, AppError> {
    let mut stored: Stored = storage.get("token").await?.unwrap_or_default();
    let now = now_ms();
    if let Some(token) = stored
        .access_token
        .clone()
        .filter(|_| stored.expires_at_ms - EXPIRY_MARGIN_MS > now)
    {
        return Ok(token);
    }
    let settings = settings::load(env)?;
    let credentials = settings::podium_credentials(env)?;
    let secret_source = fingerprint(&credentials.refresh_token);
    let refresh_token = match (&stored.refresh_token, &stored.refresh_source) {
        (Some(rotated), Some(source)) if *source == secret_source => rotated.clone(),
        // Stored before sources were kept: it descends from the secret in use.
        (Some(rotated), None) => {
            stored.refresh_source = Some(secret_source.clone());
            rotated.clone()
        }
        (Some(_), Some(_)) => {
            // The operator put a new PODIUM_REFRESH_TOKEN: it supersedes the stored one.
            worker::console_log!(
                "{}",
                json!({"event": "podium_refresh_token_superseded", "reason": "a new PODIUM_REFRESH_TOKEN secret"})
            );
            stored.refresh_token = None;
            stored.refresh_source = None;
            credentials.refresh_token.clone()
        }
        (None, _) => credentials.refresh_token.clone(),
    };
    let body = json!({
        "client_id": credentials.client_id,
        "client_secret": credentials.client_secret,
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
    });
    let config = &settings.config.podium;
    let reply = podium::call(
        config,
        None,
        Method::Post,
        &config.token_url,
        Body::Json(body),
    )
    .await
    .map_err(|e| AppError::Internal(format!("token refresh failed: {e:?}")))?;
    if !reply.is_success() {
        return Err(AppError::Internal(format!(
            "token refresh refused: {} {}",
            reply.status,
            reply.detail()
        )));
    }
    let access_token = reply
        .body
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| AppError::Internal("token response without access_token".into()))?
        .to_owned();
    let expires_in = reply
        .body
        .get("expires_in")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    if let Some(rotated) = reply.body.get("refresh_token").and_then(Value::as_str) {
        if rotated != refresh_token {
            stored.refresh_token = Some(rotated.to_owned());
            stored.refresh_source = Some(secret_source);
        }
    }
    stored.access_token = Some(access_token.clone());
    stored.expires_at_ms = now.saturating_add(expires_in.saturating_mul(1000));
    stored.refreshes += 1;
    storage.put("token", stored).await?;
    worker::console_log!(
        "{}",
        json!({"event": "podium_token_refreshed", "expires_in": expires_in})
    );
    Ok(access_token)
}
