//! `ReviewSchedule`: one per E.164 phone — its review requests, cooldown and invites
//! (`gateway_core::review::schedule`), fired by alarms. The object serializes everything
//! for a phone, so two concurrent triggers cannot both pass the cooldown (F7), and the
//! state it persists before calling Podium means a repeated alarm never sends twice.
//!
//! It stays its own class beside the phone object: its alarms run on a schedule of days
//! (refund buffer, cooldowns, delivery deadlines) that has nothing to do with the chat
//! outbox, and its state carries over from deployed gateways unchanged. The invite
//! itself is sent *by the phone object* (`send_invite`), so the opt-out check is read
//! after every other network call (Shopify, token) and immediately before the POST,
//! inside the object that applies STOPs (F6, F12).

use gateway_core::delivery::{self, Attempt, Next};
use gateway_core::phone;
use gateway_core::review::candidate::{self, Candidate};
use gateway_core::review::config::Timing;
use gateway_core::review::schedule::{
    Fire, OrderCheck, PhoneReviews, Reason, RequestState, Verified,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{durable_object, DurableObject, Env, Method, Request, Response, State};

use crate::error::AppError;
use crate::events;
use crate::objects::phone as phone_object;
use crate::ops;
use crate::podium::{self, Body};
use crate::rpc::{self, now_ms, Ctx};
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
        let outcome = self.run().await;
        rpc::alarm_outcome(&self.state.storage(), "reviews_alarm", outcome, 30_000).await
    }
}

/// A line in the operations event log (`GET /admin/reviews`), in the phone's shard.
async fn log_event(
    ctx: &Ctx,
    settings: &Settings,
    kind: &str,
    phone: &str,
    request: &Value,
) -> Result<(), AppError> {
    ops::add_event(
        ctx,
        settings,
        phone,
        &format!("review.{kind}"),
        now_ms(),
        json!({"phone": phone, "request": request}),
    )
    .await
}

/// How long after an uncertain invite call its outcome is read. A call Podium itself
/// answered (a 500, a 401) is over: read after the retry policy's first step. A call
/// that may still be running — no answer in time, or a proxy's 502/504 in front of
/// Podium — may land later, so wait two of its timeouts before concluding there is no
/// invite.
fn verify_delay_ms(config: &gateway_core::config::GatewayConfig, may_still_run: bool) -> i64 {
    let settled = config.retry.base_ms.max(100);
    if may_still_run {
        i64::from(config.podium.timeout_ms)
            .saturating_mul(2)
            .max(settled)
    } else {
        settled
    }
}

impl ReviewSchedule {
    fn ctx(&self) -> Ctx {
        Ctx::new(self.env.clone())
    }

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

    /// The phone's one opt-out record (in the phone object).
    async fn opted_out(&self, phone: &str) -> Result<bool, AppError> {
        let record: Value = rpc::call(
            &self.ctx(),
            phone_object::BINDING,
            phone,
            "optout.get",
            &json!({"phone": phone}),
        )
        .await?;
        Ok(record
            .get("opted_out")
            .and_then(Value::as_bool)
            .unwrap_or(false))
    }

    async fn handle(&self, op: &str, body: Value) -> Result<Value, AppError> {
        let now = now_ms();
        let ctx = self.ctx();
        let settings = settings::load(&ctx)?;
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
                    // Listed while scheduled; kept no longer than the request could fire.
                    let expires = request
                        .fire_at_ms
                        .saturating_add(settings.config.retention.events_ms);
                    ops::index_put(&ctx, &settings, &format!("scheduled:{}", request.id),
                          json!({"id": request.id, "phone": phone, "fire_at_ms": request.fire_at_ms, "order_id": request.candidate.order_id}),
                          expires).await?;
                    log_event(&ctx, &settings, "scheduled", &phone, &view).await?;
                } else {
                    log_event(&ctx, &settings, "skipped", &phone, &view).await?;
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
                self.finished(&settings, &reviews, &phone, id, "cancelled")
                    .await?;
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
                    log_event(&ctx, &settings, kind, &phone, &json!(reviews.get(id))).await?;
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
        let ctx = self.ctx();
        let settings = settings::load(&ctx)?;
        let phone: String = self.state.storage().get("phone").await?.unwrap_or_default();
        let now = now_ms();
        let due = self.load().await?.due(now);
        for id in due {
            self.fire(&ctx, &settings, &phone, &id).await?;
        }
        let checks = self.load().await?.due_checks(now_ms());
        for uid in checks {
            self.check_invite(&ctx, &settings, &phone, &uid).await?;
        }
        // Re-arm from whatever is left.
        let reviews = self.load().await?;
        self.save(&reviews).await
    }

    async fn fire(
        &self,
        ctx: &Ctx,
        settings: &Settings,
        phone: &str,
        id: &str,
    ) -> Result<(), AppError> {
        let config = &settings.config;
        let opted_out = self.opted_out(phone).await?;
        let mut reviews = self.load().await?;
        let step = reviews.begin_fire(id, opted_out, now_ms());
        self.save(&reviews).await?;
        match step {
            Fire::Nothing => return Ok(()),
            Fire::Skipped { .. } => {
                return self
                    .finished(settings, &reviews, phone, id, "skipped")
                    .await
            }
            Fire::Interrupted => {
                self.finished(settings, &reviews, phone, id, "unknown")
                    .await?;
                return self.escalate(settings, phone, id, "a review invite send was interrupted; Podium may or may not have sent it (not re-sent)").await;
            }
            Fire::Verify => return self.verify(ctx, settings, phone, id).await,
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
            Err(Some(_)) => {
                return self
                    .finished(settings, &reviews, phone, id, "skipped")
                    .await
            }
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
        // The phone object sends it: the opt-out is read there, after the Shopify check
        // and the token, immediately before the POST.
        let answer: Value = rpc::call(
            ctx,
            phone_object::BINDING,
            phone,
            "send_invite",
            &json!({"phone": phone, "invite": Value::Object(invite)}),
        )
        .await?;
        let mut reviews = self.load().await?;
        let now = now_ms();
        let outcome = answer
            .get("outcome")
            .and_then(Value::as_str)
            .unwrap_or("no_answer");
        let status = answer
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(0);
        match outcome {
            "reply" if (200..300).contains(&status) => {
                let body = answer.get("body").cloned().unwrap_or(Value::Null);
                let data = body.get("data").unwrap_or(&body);
                let uid = data
                    .get("uid")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_owned();
                let delivery = data
                    .get("deliveryStatus")
                    .and_then(Value::as_str)
                    .unwrap_or("pending")
                    .to_owned();
                reviews.sent(id, &uid, &delivery, now);
                self.save(&reviews).await?;
                self.index_invite(ctx, settings, &uid, phone, id).await?;
                self.finished(settings, &reviews, phone, id, "sent").await
            }
            "reply" if status == 429 || status == 408 || status == 425 => {
                // Throttled or too early: nothing was created. Retry per the policy.
                let retry_after_ms = answer.get("retry_after_ms").and_then(Value::as_i64);
                let detail = answer
                    .get("detail")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let attempt_answer = Attempt::Status {
                    status,
                    retry_after_ms,
                    detail,
                };
                match delivery::next(&config.retry, attempt, &attempt_answer, now, rpc::random()) {
                    Next::RetryAt { at_ms, reason } => {
                        reviews.retry_at(id, at_ms, &reason, now);
                        self.save(&reviews).await
                    }
                    Next::Done | Next::DeadLetter { .. } => {
                        self.give_up(
                            settings,
                            reviews,
                            phone,
                            id,
                            "Podium kept refusing the invite call (throttled)",
                        )
                        .await
                    }
                }
            }
            "reply" if status >= 500 || status == 401 || status == 403 => {
                // The invite may exist (a 5xx after Podium created it): read before
                // any retry, never re-POST blindly.
                let detail = answer
                    .get("detail")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let verify_at =
                    now.saturating_add(verify_delay_ms(config, matches!(status, 502 | 504)));
                let why = format!("Podium answered {status} {detail}");
                let log =
                    json!({"event": "review_invite_uncertain", "request": id, "status": status});
                self.uncertain(reviews, id, &why, verify_at, now, &log)
                    .await
            }
            "reply" => {
                let detail = answer
                    .get("detail")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if detail.contains("opted_out") {
                    // Podium knows an opt-out we didn't: take it (F6).
                    rpc::call::<_, Value>(
                        ctx,
                        phone_object::BINDING,
                        phone,
                        "optout.podium",
                        &json!({"phone": phone, "opted_out_at_ms": now, "observed_ms": now}),
                    )
                    .await?;
                }
                reviews.refused(
                    id,
                    Reason::new("podium_refused", format!("{status} {detail}")),
                    now,
                );
                self.save(&reviews).await?;
                self.finished(settings, &reviews, phone, id, "failed").await
            }
            "opted_out" => {
                // The STOP arrived while the order was being checked: nothing was sent.
                reviews.refused(
                    id,
                    Reason::new(
                        "opted_out",
                        "the phone opted out before the invite was sent",
                    ),
                    now,
                );
                if let Some(r) = reviews.requests.iter_mut().find(|r| r.id == id) {
                    r.state = RequestState::Skipped;
                }
                self.save(&reviews).await?;
                self.finished(settings, &reviews, phone, id, "skipped")
                    .await
            }
            "wait" => {
                let ms = answer
                    .get("wait_ms")
                    .and_then(Value::as_i64)
                    .unwrap_or(1_000);
                reviews.retry_at(
                    id,
                    now + ms.max(1_000),
                    "waiting for a Podium request slot",
                    now,
                );
                self.save(&reviews).await
            }
            _ => {
                // No answer (timeout, connection lost): Podium may have it. Verify first.
                let detail = answer
                    .get("detail")
                    .and_then(Value::as_str)
                    .unwrap_or("no answer");
                let verify_at = now.saturating_add(verify_delay_ms(config, true));
                let why = format!("no answer from Podium: {detail}");
                let log =
                    json!({"event": "review_invite_uncertain", "request": id, "no_answer": true});
                self.uncertain(reviews, id, &why, verify_at, now, &log)
                    .await
            }
        }
    }

    /// After an uncertain send: read Podium's invites for this phone and location; one
    /// created since the send began is ours. Only if none exists is it sent again.
    async fn verify(
        &self,
        ctx: &Ctx,
        settings: &Settings,
        phone: &str,
        id: &str,
    ) -> Result<(), AppError> {
        let config = &settings.config;
        let Some(request) = self.load().await?.get(id).cloned() else {
            return Ok(());
        };
        let started = request.send_started_ms.unwrap_or(request.updated_ms);
        let url = podium::url(
            &config.podium,
            &format!(
                "/v4/reviews/invites?phoneNumber={}&locationUid={}",
                podium::segment(phone),
                podium::segment(&request.candidate.location_uid)
            ),
        );
        let answer =
            podium::call_authorized(ctx, &config.podium, Method::Get, &url, Body::None).await?;
        let (read_ok, found) = match &answer {
            Ok(reply) if reply.is_success() => {
                let list = reply
                    .body
                    .get("data")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let ours = list.into_iter().find(|inv| {
                    let same_phone = inv.get("phoneNumber").and_then(Value::as_str) == Some(phone);
                    let created = inv
                        .get("createdAt")
                        .and_then(gateway_core::time::from_json_ms)
                        .unwrap_or(i64::MAX);
                    // A clock skew allowance: Podium's clock and ours may differ a little.
                    same_phone && created >= started.saturating_sub(120_000)
                });
                let found = ours.and_then(|inv| {
                    Some((
                        inv.get("uid")?.as_str()?.to_owned(),
                        inv.get("deliveryStatus")
                            .and_then(Value::as_str)
                            .unwrap_or("pending")
                            .to_owned(),
                    ))
                });
                (true, found)
            }
            _ => (false, None),
        };
        let now = now_ms();
        let retry_at = match delivery::next(
            &config.retry,
            request.attempts,
            &Attempt::Status {
                status: 503,
                retry_after_ms: None,
                detail: "no invite was created".into(),
            },
            now,
            rpc::random(),
        ) {
            Next::RetryAt { at_ms, .. } => Some(at_ms),
            _ => None,
        };
        let mut reviews = self.load().await?;
        let verdict = reviews.verified(
            id,
            read_ok,
            found.as_ref().map(|(u, s)| (u.as_str(), s.as_str())),
            retry_at,
            now.saturating_add(config.retry.base_ms.max(1_000).saturating_mul(4)),
            now,
        );
        self.save(&reviews).await?;
        worker::console_log!(
            "{}",
            json!({"event": "review_invite_verified", "request": id, "verdict": verdict})
        );
        match verdict {
            Verified::Found => {
                if let Some((uid, _)) = &found {
                    self.index_invite(ctx, settings, uid, phone, id).await?;
                }
                self.finished(settings, &reviews, phone, id, "sent").await
            }
            Verified::GaveUp => {
                self.finished(settings, &reviews, phone, id, "failed")
                    .await?;
                self.escalate(settings, phone, id, "a review invite could not be sent: Podium kept failing the call (none was created)").await
            }
            Verified::Unreadable => {
                self.finished(settings, &reviews, phone, id, "unknown")
                    .await?;
                self.escalate(settings, phone, id, "a review invite may or may not have been sent: Podium failed the call and its invites could not be read (not re-sent)").await
            }
            Verified::Retry | Verified::ReadLater | Verified::Nothing => Ok(()),
        }
    }

    /// The retry policy is used up: failed and escalated.
    async fn give_up(
        &self,
        settings: &Settings,
        mut reviews: PhoneReviews,
        phone: &str,
        id: &str,
        why: &str,
    ) -> Result<(), AppError> {
        reviews.refused(id, Reason::new("podium_failed", why), now_ms());
        self.save(&reviews).await?;
        self.finished(settings, &reviews, phone, id, "failed")
            .await?;
        self.escalate(
            settings,
            phone,
            id,
            &format!("a review invite could not be sent: {why}"),
        )
        .await
    }

    /// `invite:{uid}` → the phone, for invite webhooks that don't name it; kept as long
    /// as the event log keeps the request.
    async fn index_invite(
        &self,
        ctx: &Ctx,
        settings: &Settings,
        uid: &str,
        phone: &str,
        id: &str,
    ) -> Result<(), AppError> {
        let expires = now_ms().saturating_add(settings.config.retention.events_ms);
        ops::index_put(
            ctx,
            settings,
            &format!("invite:{uid}"),
            json!({"phone": phone, "request_id": id}),
            expires,
        )
        .await
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
        ctx: &Ctx,
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
            podium::call_authorized(ctx, &config.podium, Method::Get, &url, Body::None).await?;
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
                log_event(ctx, settings, kind, phone, &json!(reviews.get(&id))).await?;
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

    /// The invite call may have created an invite: hold the request `verifying` until
    /// `verify_at_ms`, when Podium's invites are read (never re-POSTed blindly); `log` is
    /// the line that says so.
    async fn uncertain(
        &self,
        mut reviews: PhoneReviews,
        id: &str,
        why: &str,
        verify_at_ms: i64,
        now: i64,
        log: &Value,
    ) -> Result<(), AppError> {
        reviews.uncertain(id, why, verify_at_ms, now);
        self.save(&reviews).await?;
        worker::console_log!("{log}");
        Ok(())
    }

    async fn finished(
        &self,
        settings: &Settings,
        reviews: &PhoneReviews,
        phone: &str,
        id: &str,
        kind: &str,
    ) -> Result<(), AppError> {
        let ctx = self.ctx();
        ops::index_delete(&ctx, settings, &format!("scheduled:{id}")).await?;
        log_event(&ctx, settings, kind, phone, &json!(reviews.get(id))).await
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
