//! `TextBreaker`: one per country calling code (`cc:44`) — the circuit breaker on
//! automatic texts (see `gateway_core::texts`). When automatic texts to one country
//! spike above the configured rate it opens: no automatic text to that code until it
//! closes, one alert to `webhooks.alert_url` per trip, and counters in the operations
//! shards. Only texts reach it (the send path, behind the acknowledgement), never a
//! chat: it is a per-country object, not a global one.

use gateway_core::texts::{Breaker, BreakerPolicy, BreakerVerdict};
use serde::Deserialize;
use serde_json::{json, Value};
use worker::{durable_object, DurableObject, Env, Request, Response, State};

use crate::error::AppError;
use crate::events;
use crate::ops;
use crate::rpc::{self, now_ms, Ctx};
use crate::settings;

pub const BINDING: &str = "TEXT_BREAKER";

/// The object of a calling code.
pub fn name(calling_code: u16) -> String {
    format!("cc:{calling_code}")
}

#[derive(Debug, Deserialize)]
struct TakeIn {
    policy: BreakerPolicy,
    calling_code: u16,
}

// State and Env have no Debug.
#[allow(missing_debug_implementations)]
#[durable_object]
pub struct TextBreaker {
    state: State,
    env: Env,
}

impl DurableObject for TextBreaker {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        rpc::serve(req, |op, body| async move { self.handle(&op, body).await }).await
    }

    async fn alarm(&self) -> worker::Result<Response> {
        // Idle: nothing open and the window is over. Forget the state.
        let storage = self.state.storage();
        let state: Option<Breaker> = storage.get("breaker").await?;
        let policy: Option<BreakerPolicy> = storage.get("policy").await?;
        match (state, policy) {
            (Some(b), Some(p)) if b.idle_after_ms(&p) > now_ms() => {
                rpc::alarm_at(&storage, b.idle_after_ms(&p)).await?;
            }
            _ => storage.delete_all().await?,
        }
        Response::ok("")
    }
}

impl TextBreaker {
    async fn handle(&self, op: &str, body: Value) -> Result<Value, AppError> {
        let storage = self.state.storage();
        match op {
            "take" => {
                let input: TakeIn = rpc::args(body)?;
                let now = now_ms();
                let mut breaker: Breaker = storage.get("breaker").await?.unwrap_or_default();
                let verdict = breaker.take(&input.policy, now);
                storage.put("breaker", &breaker).await?;
                storage.put("policy", input.policy).await?;
                rpc::alarm_at(&storage, breaker.idle_after_ms(&input.policy)).await?;
                if let BreakerVerdict::Tripped { until_ms } = verdict {
                    self.tripped(input.calling_code, until_ms, &breaker, &input.policy)
                        .await;
                }
                if !matches!(verdict, BreakerVerdict::Allowed) {
                    self.count(input.calling_code, "auto_text_breaker_refused")
                        .await;
                }
                Ok(json!(verdict))
            }
            "status" => Ok(json!({"breaker": storage.get::<Breaker>("breaker").await?})),
            _ => Err(AppError::NotFound("no such operation")),
        }
    }

    async fn count(&self, code: u16, counter: &str) {
        let ctx = Ctx::new(self.env.clone());
        let counted = match settings::load(&ctx) {
            Ok(settings) => ops::count(&ctx, &settings, &name(code), counter, 1).await,
            Err(e) => Err(e),
        };
        if let Err(e) = counted {
            worker::console_error!(
                "{}",
                json!({"level": "warn", "event": "breaker_count_failed", "error": e.to_string()})
            );
        }
    }

    /// The breaker opened: count it, log it, alert the merchant (once per trip).
    async fn tripped(&self, code: u16, until_ms: i64, breaker: &Breaker, policy: &BreakerPolicy) {
        self.count(code, "auto_text_breaker_tripped").await;
        self.count(code, &format!("auto_text_breaker_tripped:+{code}"))
            .await;
        let what = format!(
            ":no_entry: Automatic texts to +{code} paused: more than {} in {} s (a possible SMS-pumping attack). They resume at {until_ms} unless it keeps up; chats are still delivered to the inbox.",
            policy.max_per_window,
            policy.window_ms / 1000
        );
        worker::console_error!(
            "{}",
            json!({"level": "error", "event": "auto_text_breaker_tripped", "calling_code": code,
                   "until_ms": until_ms, "trips": breaker.trips})
        );
        let ctx = Ctx::new(self.env.clone());
        let Ok(settings) = settings::load(&ctx) else {
            return;
        };
        if let Some(url) = &settings.config.webhooks.alert_url {
            let payload = json!({"text": what, "event": "auto_text_breaker_tripped",
                                 "calling_code": code, "until_ms": until_ms, "trips": breaker.trips});
            if let Err(e) = events::post_hook(url, &payload).await {
                worker::console_error!(
                    "{}",
                    json!({"level": "error", "event": "alert_failed", "error": e.to_string()})
                );
            }
        }
    }
}
