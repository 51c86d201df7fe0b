//! `ReviewSchedule`: one per E.164 phone — its review requests, cooldown and invites
//! (`gateway_core::review::schedule`), fired by alarms. The object serializes everything
//! for a phone, so two concurrent triggers cannot both pass the cooldown (F7), and the
//! state it persists before calling Podium means a repeated alarm never sends twice.

use gateway_core::delivery::{self, Attempt, Next};
use gateway_core::phone;
use gateway_core::review::candidate::{self, Candidate};
use gateway_core::review::config::Timing;
use gateway_core::review::schedule::{Fire, OrderCheck, PhoneReviews, Reason, RequestState};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{durable_object, DurableObject, Env, Method, Request, Response, State};

use crate::error::AppError;
use crate::events;
use crate::objects::{ledger, optout};
use crate::podium::{self, Body, NoReply};
use crate::rpc::{self, now_ms};
use crate::settings::{self, Settings};

pub const BINDING: &str = "REVIEWS";

#[derive(Debug, Serialize, Deserialize)]
pub struct ScheduleIn {
    pub id: String,
    pub candidate: Candidate,
    pub timing: Timing,
}

// State and Env have no Debug.
#[allow(missing_debug_implementations)]
#[durable_object]
pub struct ReviewSchedule {
    state: State,
    env: Env,
}

impl DurableObject for ReviewSchedule {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        rpc::serve(req, |op, body| async move { self.handle(&op, body).await }).await
    }

    async fn alarm(&self) -> worker::Result<Response> {
        if let Err(e) = self.run().await {
            worker::console_error!(
                "{}",
                json!({"level": "error", "reviews_alarm": e.to_string()})
            );
            rpc::alarm_at(&self.state.storage(), now_ms() + 30_000).await?;
        }
        Response::ok("")
    }
}

/// A line in the Ledger's event log for operators (`GET /admin/reviews`).
async fn log_event(env: &Env, kind: &str, phone: &str, request: &Value) -> Result<(), AppError> {
    let record = ledger::EventRecord {
        id: rpc::new_id("ev"),
        kind: format!("review.{kind}"),
        at_ms: now_ms(),
        data: json!({"phone": phone, "request": request}),
    };
    rpc::call::<_, Value>(env, ledger::BINDING, ledger::NAME, "event.add", &record).await?;
    Ok(())
}

async fn index(env: &Env, op: &str, name: &str, value: Value) -> Result<Value, AppError> {
    rpc::call(
        env,
        ledger::BINDING,
        ledger::NAME,
        op,
        &json!({"name": name, "value": value}),
    )
    .await
}

impl ReviewSchedule {
    async fn load(&self) -> Result<PhoneReviews, AppError> {
        Ok(self
            .state
            .storage()
            .get("reviews")
            .await?
            .unwrap_or_default())
    }

    async fn save(&self, reviews: &PhoneReviews) -> Result<(), AppError> {
        let storage = self.state.storage();
        storage.put("reviews", reviews).await?;
        match reviews.next_wake() {
            Some(at) => rpc::alarm_at(&storage, at.max(now_ms())).await?,
            None => storage.delete_alarm().await?,
        }
        Ok(())
    }

    async fn opted_out(&self, phone: &str) -> Result<bool, AppError> {
        let record: Value = rpc::call(&self.env, optout::BINDING, phone, "get", &json!({})).await?;
        Ok(record
            .get("opted_out")
            .and_then(Value::as_bool)
            .unwrap_or(false))
    }

    async fn handle(&self, op: &str, body: Value) -> Result<Value, AppError> {
        let now = now_ms();
        match op {
            "schedule" => {
                let input: ScheduleIn = rpc::args(body)?;
                let phone = input.candidate.phone.clone();
                self.state.storage().put("phone", &phone).await?;
                let opted_out = self.opted_out(&phone).await?;
                let mut reviews = self.load().await?;
                let request =
                    reviews.schedule(&input.id, input.candidate, input.timing, opted_out, now);
                self.save(&reviews).await?;
                let view = json!(request);
                if request.state == RequestState::Scheduled {
                    index(&self.env, "index.put", &format!("scheduled:{}", request.id),
                          json!({"id": request.id, "phone": phone, "fire_at_ms": request.fire_at_ms, "order_id": request.candidate.order_id})).await?;
                    log_event(&self.env, "scheduled", &phone, &view).await?;
                } else {
                    log_event(&self.env, "skipped", &phone, &view).await?;
                }
                Ok(view)
            }
            "status" => {
                let reviews = self.load().await?;
                let last = reviews
                    .last_invite()
                    .map(|(r, i)| json!({"request_id": r.id, "invite": i, "platform": r.platform}));
                Ok(json!({
                    "cooldown_until_ms": reviews.cooldown_until_ms,
                    "cooldown_remaining_ms": reviews.cooldown_remaining(now),
                    "scheduled": reviews.requests.iter().filter(|r| r.state.is_open()).collect::<Vec<_>>(),
                    "last_invite": last,
                    "flag": reviews.flag,
                    "requests": reviews.requests,
                }))
            }
            "cancel" => {
                let id = body.get("id").and_then(Value::as_str).unwrap_or_default();
                let mut reviews = self.load().await?;
                if let Err(refused) = reviews.cancel(id, now) {
                    return Ok(json!({"refused": refused}));
                }
                self.save(&reviews).await?;
                let phone: String = self.state.storage().get("phone").await?.unwrap_or_default();
                self.finished(&reviews, &phone, id, "cancelled").await?;
                Ok(json!({"cancelled": id}))
            }
            "invite_status" => {
                let uid = body.get("uid").and_then(Value::as_str).unwrap_or_default();
                let status = body
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let mut reviews = self.load().await?;
                let changed = reviews.invite_status(uid, status, now);
                self.save(&reviews).await?;
                if let Some(id) = &changed {
                    let phone: String =
                        self.state.storage().get("phone").await?.unwrap_or_default();
                    let kind = match status.to_ascii_lowercase().as_str() {
                        "failed" => "failed",
                        "delivered" => "delivered",
                        _ => "status",
                    };
                    log_event(&self.env, kind, &phone, &json!(reviews.get(id))).await?;
                }
                Ok(json!({"changed": changed}))
            }
            "link_review" => {
                let uid = body
                    .get("invite_uid")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let review = body
                    .get("review_uid")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let mut reviews = self.load().await?;
                let linked = reviews.link_review(uid, review);
                self.save(&reviews).await?;
                Ok(json!({"linked": linked}))
            }
            _ => Err(AppError::NotFound("no such operation")),
        }
    }

    /// The alarm: fire what is due, read invites past their deadline.
    async fn run(&self) -> Result<(), AppError> {
        let settings = settings::load(&self.env)?;
        let phone: String = self.state.storage().get("phone").await?.unwrap_or_default();
        let now = now_ms();
        let due = self.load().await?.due(now);
        for id in due {
            self.fire(&settings, &phone, &id).await?;
        }
        let checks = self.load().await?.due_checks(now_ms());
        for uid in checks {
            self.check_invite(&settings, &phone, &uid).await?;
        }
        // Re-arm from whatever is left.
        let reviews = self.load().await?;
        self.save(&reviews).await
    }

    async fn fire(&self, settings: &Settings, phone: &str, id: &str) -> Result<(), AppError> {
        let config = &settings.config;
        let opted_out = self.opted_out(phone).await?;
        let mut reviews = self.load().await?;
        let step = reviews.begin_fire(id, opted_out, now_ms());
        self.save(&reviews).await?;
        match step {
            Fire::Nothing => return Ok(()),
            Fire::Skipped { .. } => return self.finished(&reviews, phone, id, "skipped").await,
            Fire::Interrupted => {
                self.finished(&reviews, phone, id, "unknown").await?;
                return self.escalate(settings, phone, id, "a review invite send was interrupted; Podium may or may not have sent it (not re-sent)").await;
            }
            Fire::CheckOrder => {}
        }
        let Some(request) = reviews.get(id).cloned() else {
            return Ok(());
        };
        let check = if reviews.needs_order_check(id) {
            self.check_order(settings, &request.candidate).await
        } else {
            OrderCheck::NotApplicable
        };
        // Other calls (a new trigger, a cancel, an invite status) may have changed the
        // state while we waited: always re-read after a network call.
        let mut reviews = self.load().await?;
        if reviews.get(id).map(|r| r.state) != Some(RequestState::Scheduled) {
            return Ok(()); // cancelled meanwhile
        }
        let outcome = reviews.after_order(id, &check, config.reviews.recheck_retry_ms, now_ms());
        self.save(&reviews).await?;
        match outcome {
            Err(Some(_)) => return self.finished(&reviews, phone, id, "skipped").await,
            Err(None) => {
                worker::console_error!(
                    "{}",
                    json!({"level": "warn", "event": "review_order_check_unavailable", "request": id, "check": check})
                );
                return Ok(());
            }
            Ok(()) => {}
        }
        let (platform, why) = candidate::choose_platform(
            &config.reviews,
            config
                .reviews
                .default_platform(request.candidate.shop_domain.as_deref()),
            request.candidate.preference.as_deref(),
            &request.candidate.accounts,
        );
        let attempt = reviews.mark_sending(id, &platform, &why, now_ms());
        self.save(&reviews).await?;

        let mut invite = serde_json::Map::new();
        invite.insert("locationUid".into(), json!(request.candidate.location_uid));
        invite.insert("phoneNumber".into(), json!(request.candidate.phone));
        if let Some(name) = &request.candidate.customer_name {
            invite.insert("customerName".into(), json!(name));
        }
        if let Some(site) = config
            .reviews
            .platforms
            .iter()
            .find(|p| p.name == platform)
            .and_then(|p| p.review_site_uid.clone())
        {
            invite.insert("reviewSiteUid".into(), json!(site));
        }
        let invite = Value::Object(invite);
        let url = podium::url(&config.podium, "/v4/reviews/invites");
        let answer = podium::call_authorized(
            &self.env,
            &config.podium,
            Method::Post,
            &url,
            Body::Json(invite),
        )
        .await?;
        let mut reviews = self.load().await?;
        let now = now_ms();
        match answer {
            Ok(reply) if reply.is_success() => {
                let data = reply.body.get("data").unwrap_or(&reply.body);
                let uid = data
                    .get("uid")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_owned();
                let status = data
                    .get("deliveryStatus")
                    .and_then(Value::as_str)
                    .unwrap_or("pending")
                    .to_owned();
                reviews.sent(id, &uid, &status, now);
                self.save(&reviews).await?;
                index(
                    &self.env,
                    "index.put",
                    &format!("invite:{uid}"),
                    json!({"phone": phone, "request_id": id}),
                )
                .await?;
                self.finished(&reviews, phone, id, "sent").await
            }
            Ok(reply) => {
                let detail = reply.detail();
                match delivery::next(&config.retry, attempt, &reply.attempt(), now, rpc::random()) {
                    Next::RetryAt { at_ms, reason } => {
                        reviews.retry_at(id, at_ms, &reason, now);
                        self.save(&reviews).await
                    }
                    Next::DeadLetter { reason } if attempt >= config.retry.max_attempts => {
                        // Retried to the end of the policy: a person has to look.
                        reviews.refused(id, Reason::new("podium_failed", reason.clone()), now);
                        self.save(&reviews).await?;
                        self.finished(&reviews, phone, id, "failed").await?;
                        self.escalate(
                            settings,
                            phone,
                            id,
                            &format!("a review invite could not be sent: {reason}"),
                        )
                        .await
                    }
                    Next::Done | Next::DeadLetter { .. } => {
                        if detail.contains("opted_out") {
                            // Podium knows an opt-out we didn't: take it (F6).
                            rpc::call::<_, Value>(
                                &self.env,
                                optout::BINDING,
                                phone,
                                "podium",
                                &json!({"opted_out_at_ms": now, "observed_ms": now}),
                            )
                            .await?;
                        }
                        reviews.refused(
                            id,
                            Reason::new("podium_refused", format!("{} {detail}", reply.status)),
                            now,
                        );
                        self.save(&reviews).await?;
                        self.finished(&reviews, phone, id, "failed").await
                    }
                }
            }
            Err(NoReply::Wait(ms)) => {
                reviews.retry_at(
                    id,
                    now + ms.max(1_000),
                    "waiting for a Podium request slot",
                    now,
                );
                self.save(&reviews).await
            }
            Err(NoReply::Failed(attempt)) => {
                let detail = match &attempt {
                    Attempt::Timeout => "Podium did not answer in time".to_owned(),
                    other => format!("{other:?}"),
                };
                reviews.unknown(id, &detail, now);
                self.save(&reviews).await?;
                self.finished(&reviews, phone, id, "unknown").await?;
                self.escalate(
                    settings,
                    phone,
                    id,
                    &format!("a review invite may not have been sent: {detail} (not re-sent)"),
                )
                .await
            }
        }
    }

    /// The Shopify Admin API's view of the order now.
    async fn check_order(&self, settings: &Settings, c: &Candidate) -> OrderCheck {
        let Some(token) = settings::secret(&self.env, "SHOPIFY_ADMIN_TOKEN") else {
            worker::console_error!(
                "{}",
                json!({"level": "error", "event": "shopify_admin_token_missing"})
            );
            return OrderCheck::Unavailable {
                detail: "the SHOPIFY_ADMIN_TOKEN secret is not set".into(),
            };
        };
        let shop = c.shop_domain.as_deref().unwrap_or_default();
        let url = settings.config.reviews.order_url(shop, &c.order_id);
        let request = (|| {
            let headers = worker::Headers::new();
            headers.set("x-shopify-access-token", &token)?;
            headers.set("accept", "application/json")?;
            let mut init = worker::RequestInit::new();
            init.with_method(Method::Get).with_headers(headers);
            Request::new_with_init(&url, &init)
        })();
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                return OrderCheck::Unavailable {
                    detail: e.to_string(),
                }
            }
        };
        let mut response =
            match podium::send(request, settings.config.reviews.shopify.timeout_ms).await {
                Ok(r) => r,
                Err(attempt) => {
                    return OrderCheck::Unavailable {
                        detail: format!("{attempt:?}"),
                    }
                }
            };
        match response.status_code() {
            200 => {
                let body: Value = response.json().await.unwrap_or(Value::Null);
                let order = body.get("order").unwrap_or(&Value::Null);
                OrderCheck::Found {
                    financial_status: order
                        .get("financial_status")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    cancelled: order.get("cancelled_at").is_some_and(|v| !v.is_null()),
                }
            }
            404 => OrderCheck::NotFound,
            status => OrderCheck::Unavailable {
                detail: format!("Shopify answered {status}"),
            },
        }
    }

    /// Read an invite past its deadline; still unresolved → the alert URL (F9).
    async fn check_invite(
        &self,
        settings: &Settings,
        phone: &str,
        uid: &str,
    ) -> Result<(), AppError> {
        let config = &settings.config;
        let url = podium::url(
            &config.podium,
            &format!("/v4/reviews/invites/{}", podium::segment(uid)),
        );
        let answer =
            podium::call_authorized(&self.env, &config.podium, Method::Get, &url, Body::None)
                .await?;
        let status = match &answer {
            Ok(reply) if reply.is_success() => reply
                .body
                .pointer("/data/deliveryStatus")
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
        let mut reviews = self.load().await?;
        let now = now_ms();
        if let Some(status) = &status {
            if let Some(id) = reviews.invite_status(uid, status, now) {
                let kind = match status.as_str() {
                    "failed" => "failed",
                    "delivered" => "delivered",
                    _ => "status",
                };
                self.save(&reviews).await?;
                log_event(&self.env, kind, phone, &json!(reviews.get(&id))).await?;
            }
        }
        let resolved = matches!(status.as_deref(), Some("delivered" | "failed"));
        if !resolved {
            reviews.mark_escalated(uid);
            self.save(&reviews).await?;
            let request_id = reviews
                .requests
                .iter()
                .find(|r| r.invite.as_ref().is_some_and(|i| i.uid == uid))
                .map(|r| r.id.clone())
                .unwrap_or_default();
            self.escalate(
                settings,
                phone,
                &request_id,
                &format!(
                    "review invite {uid} is still {} after the delivery deadline",
                    status.as_deref().unwrap_or("unreadable")
                ),
            )
            .await?;
        }
        Ok(())
    }

    async fn finished(
        &self,
        reviews: &PhoneReviews,
        phone: &str,
        id: &str,
        kind: &str,
    ) -> Result<(), AppError> {
        index(
            &self.env,
            "index.delete",
            &format!("scheduled:{id}"),
            Value::Null,
        )
        .await?;
        log_event(&self.env, kind, phone, &json!(reviews.get(id))).await
    }

    async fn escalate(
        &self,
        settings: &Settings,
        phone: &str,
        id: &str,
        what: &str,
    ) -> Result<(), AppError> {
        let payload = json!({
            "text": format!(":warning: {what} — phone {}, request {id}", phone::mask(phone)),
            "request_id": id,
        });
        match &settings.config.webhooks.alert_url {
            Some(url) => {
                if let Err(e) = events::post_hook(url, &payload).await {
                    worker::console_error!(
                        "{}",
                        json!({"level": "error", "event": "alert_failed", "error": e.to_string()})
                    );
                }
            }
            None => worker::console_error!(
                "{}",
                json!({"level": "error", "event": "review_escalation", "what": what, "request": id})
            ),
        }
        Ok(())
    }
}
