//! Local Podium sandbox: an HTTP server that behaves like the documented parts of the
//! Podium API, records everything it receives and can inject faults. It is the product's
//! embedded default upstream (no credentials needed) and the integration tests' double.
//!
//! [`router`] builds the axum app (drive it with `tower::ServiceExt::oneshot` in tests);
//! [`serve`] runs it on a listener until a shutdown future completes.

pub mod client;
pub mod config;
pub mod contacts;
pub mod control;
pub mod error;
pub mod gate;
pub mod invites;
pub mod locations;
pub mod messages;
pub mod oauth;
pub mod shopify;
pub mod state;
pub mod turnstile;
pub mod util;
pub mod webhooks;

use std::future::Future;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;

pub use state::{Sandbox, Seeds, Settings, Shared};

use crate::error::ApiError;

async fn route_not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
    .into_response()
}

/// The whole app: Podium routes, control routes, the gate middleware around all of them.
pub fn router(sb: Shared) -> Router {
    let podium = Router::new()
        .route("/oauth/token", post(oauth::token))
        .route("/v4/contacts", post(contacts::upsert))
        .route(
            "/v4/contacts/{identifier}",
            get(contacts::get).patch(contacts::patch),
        )
        .route("/v4/messages", post(messages::send))
        .route(
            "/v4/messages/attachment",
            // The handler enforces its own limits while streaming.
            post(messages::send_attachment).layer(DefaultBodyLimit::disable()),
        )
        .route("/v4/locations", get(locations::list))
        .route("/v4/locations/{uid}", get(locations::get))
        .route(
            "/v4/reviews/invites",
            post(invites::create).get(invites::search),
        )
        .route("/v4/reviews/invites/{uid}", get(invites::get))
        // `{id}.json`: the path parameter takes the whole segment; the handler strips it.
        .route(
            "/admin/api/{version}/orders/{file}",
            get(shopify::get_order),
        );
    let control = Router::new()
        .route("/_sandbox/health", get(control::health))
        // Cloudflare Turnstile's documented verification endpoint, for its test keys.
        .route("/turnstile/v0/siteverify", post(turnstile::siteverify))
        .route("/_sandbox/state", get(control::state))
        .route("/_sandbox/messages", get(control::messages))
        .route("/_sandbox/contacts", get(control::contacts))
        .route(
            "/_sandbox/faults",
            get(control::list_faults)
                .post(control::add_faults)
                .delete(control::clear_faults),
        )
        .route("/_sandbox/reset", post(control::reset))
        .route("/_sandbox/expire-tokens", post(control::expire_tokens))
        .route(
            "/_sandbox/refresh-tokens",
            post(control::mint_refresh_token),
        )
        .route("/_sandbox/contacts/{phone}/opt-out", post(control::opt_out))
        .route("/_sandbox/contacts/{phone}/opt-in", post(control::opt_in))
        .route(
            "/_sandbox/config",
            get(control::get_config).post(control::set_config),
        )
        .route("/_sandbox/invites", get(invites::list))
        .route("/_sandbox/invites/{uid}/status", post(invites::set_status))
        .route("/_sandbox/shopify/orders", get(shopify::list_orders))
        .route("/_sandbox/shopify/orders/{id}", put(shopify::put_order))
        .route(
            "/_sandbox/webhooks",
            get(webhooks::get_target)
                .put(webhooks::put_target)
                .delete(webhooks::delete_target),
        )
        .route("/_sandbox/webhooks/emit", post(webhooks::emit_route))
        .route("/_sandbox/alerts", post(control::alert))
        .route("/_sandbox/hooks/{name}", post(control::hook));
    podium
        .merge(control)
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(sb.clone(), gate::gate))
        .with_state(sb)
}

/// Serves `router(sb)` on `listener` until `shutdown` completes (in-flight requests are
/// then given a moment to finish by the caller's own timeout).
pub async fn serve(
    listener: tokio::net::TcpListener,
    sb: Shared,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(sb))
        .with_graceful_shutdown(shutdown)
        .await
}
