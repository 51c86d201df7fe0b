//! The gateway worker's router: every route group lives in its own module.

mod error;
mod validate;

use worker::{event, Context, Env, Request, Response, Result, RouteContext, Router};

/// Version of this build, reported by `/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    Router::new()
        .get("/health", health)
        .post_async("/v1/webchat/validate", |req, ctx| async move {
            error::respond(validate::handle(req, ctx).await)
        })
        .or_else_any_method("/*path", |_req, _ctx| {
            error::respond(Err(error::AppError::NotFound))
        })
        .run(req, env)
        .await
}

fn health(_req: Request, _ctx: RouteContext<()>) -> Result<Response> {
    Response::from_json(&serde_json::json!({
        "status": "ok",
        "service": "podium-gateway",
        "version": VERSION,
    }))
}
