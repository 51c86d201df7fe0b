//! Per-request metrics (F19) without a round trip to any one object: a data point per
//! request in Workers Analytics Engine (the `EVENTS` dataset: route, status, error code,
//! latency, object calls — sampled time series), and exact counts of refusals in an
//! operations shard chosen by the client, written after the answer. Accepted messages
//! and deliveries are counted by the phone objects that own them.

use worker::{AnalyticsEngineDataPointBuilder, Context, Env, Method};

use crate::rpc::Ctx;
use crate::{ops, settings, webhooks};

/// The Analytics Engine binding (`[[analytics_engine_datasets]]` in `wrangler.toml`).
pub const DATASET: &str = "EVENTS";

/// A route's name from a fixed list (never from the path: every made-up path would
/// otherwise make a new series or counter).
fn route_name(path: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["health"] => "health".into(),
        ["v1", "webchat", "messages"] => "webchat.messages".into(),
        ["v1", "webchat", "attachments"] => "webchat.attachments".into(),
        ["v1", "webchat", "validate"] => "webchat.validate".into(),
        ["v1", "webchat", "sessions", ..] => "webchat.session".into(),
        ["chat"] => "chat".into(),
        ["chat", "sessions", ..] => "chat.form".into(),
        ["webhooks", rest @ ..] => {
            format!("webhooks.{}", webhooks::counter_scheme(&rest.join("/")))
        }
        ["admin", ..] => "admin".into(),
        _ => "other".into(),
    }
}

/// Record one request (never blocks the answer).
#[allow(clippy::too_many_arguments)]
pub fn record(
    env: &Env,
    ctx: &Context,
    method: &Method,
    path: &str,
    status: u16,
    code: Option<&'static str>,
    ms: i64,
    object_calls: u32,
    client: &str,
) {
    let route = route_name(path);
    if let Ok(dataset) = env.analytics_engine(DATASET) {
        #[allow(clippy::cast_precision_loss)]
        let point = AnalyticsEngineDataPointBuilder::new()
            .indexes([route.as_str()])
            .blobs([route.as_str(), method.as_ref(), code.unwrap_or("")])
            .doubles([f64::from(status), ms as f64, f64::from(object_calls)])
            .build();
        let _ = dataset.write_data_point(&point);
    }
    let ingress = matches!(
        route.as_str(),
        "webchat.messages" | "chat" | "chat.form" | "webchat.attachments"
    );
    let counter = match (code, route.strip_prefix("webhooks.")) {
        (Some(code), Some(scheme)) => {
            let kind = if status >= 500 { "error" } else { "rejected" };
            Some(format!("webhook:{scheme}:{kind}:{code}"))
        }
        (Some(code), None) if ingress && *method == Method::Post => {
            Some(format!("rejected:{code}"))
        }
        _ => None,
    };
    if let Some(name) = counter {
        let calls = Ctx::new(env.clone());
        let client = client.to_owned();
        ctx.wait_until(async move {
            if let Ok(settings) = settings::load(&calls) {
                let _: Result<(), _> = ops::count(&calls, &settings, &client, &name, 1).await;
            }
        });
    }
}
