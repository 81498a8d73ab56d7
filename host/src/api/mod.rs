//! The HTTP JSON API (axum), under `/api/v1/namespaces/{ns}/`, plus
//! `/healthz`, `/metrics` and the dashboard at `/ui` (`ui/`).
//!
//! Handlers are thin: parse, call the service, shape the answer. They reach
//! the database and the registry only through the service, which holds the
//! rules (quotas, tokens, grants); what the API itself keeps is who may call
//! (`auth.rs`) and the limits of request bodies. Every error
//! is JSON `{"error": {"code", "message"}}` with the status that says what
//! was wrong; client input never produces a 500.

mod activities;
pub mod auth;
mod body;
mod drain;
mod error;
mod extract;
mod gate;
pub mod listen;
mod metrics;
mod modules;
mod namespaces;
pub mod openapi;
mod queues;
pub mod types;
mod ui;

pub use auth::Auth;
pub use body::{BodyBudget, BODY_IDLE_RANGE, BODY_MEMORY_RANGE};
pub use error::ApiError;
pub use gate::Gate;

use crate::service::Service;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Limits of request bodies.
#[derive(Clone, Copy, Debug)]
pub struct ApiLimits {
    /// Largest module upload.
    pub module_bytes: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            module_bytes: 100 << 20,
        }
    }
}

/// What every handler gets. Handlers take a clone per request, so it is one
/// reference count (not one per part) that the API threads pass around.
#[derive(Clone)]
pub(crate) struct AppState(Arc<AppParts>);

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

pub(crate) struct AppParts {
    pub(crate) service: Service,
    pub(crate) limits: ApiLimits,
    pub(crate) auth: Arc<Auth>,
    /// Memory of request bodies, shared by every request.
    pub(crate) bodies: Arc<BodyBudget>,
}

/// Every operation behind authentication. Each `routes!` call mounts the
/// handlers of one path and adds their `#[utoipa::path]` description to
/// the document, so a route cannot exist without being documented.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(healthz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(namespaces::create, namespaces::list))
        .routes(routes!(
            namespaces::describe,
            namespaces::update,
            namespaces::delete
        ))
        .routes(routes!(namespaces::create_token, namespaces::list_tokens))
        .routes(routes!(namespaces::revoke_token))
        .routes(routes!(namespaces::list_config))
        .routes(routes!(namespaces::set_config, namespaces::delete_config))
        .routes(routes!(modules::upload, modules::list))
        .routes(routes!(modules::delete))
        .routes(routes!(queues::describe, queues::config))
        .routes(routes!(queues::deploy))
        .routes(routes!(queues::rollback))
        .routes(routes!(queues::limits, queues::set_limit))
        .routes(routes!(activities::start, activities::list))
        .routes(routes!(activities::start_batch))
        .routes(routes!(activities::complete))
        .routes(routes!(activities::fail))
        .routes(routes!(activities::heartbeat))
        .routes(routes!(activities::describe))
        .routes(routes!(activities::result))
        .routes(routes!(activities::cancel))
        .routes(routes!(activities::run_now))
        .routes(routes!(activities::fail_by_hand))
}

/// Operations open to anyone: the document itself.
fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi::serve))
}

/// The OpenAPI document of every operation the router serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().merge(public_routes()).into_openapi();
    openapi::finish(&mut doc);
    doc
}

/// Builds the router over a running service, behind its gate (who may
/// call, `gate.rs`).
pub fn router(
    service: Service,
    limits: ApiLimits,
    auth: Arc<Auth>,
    bodies: Arc<BodyBudget>,
) -> Gate {
    let state = AppState(Arc::new(AppParts {
        service,
        limits,
        auth: auth.clone(),
        bodies,
    }));
    let (router, _) = routes()
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        // Bodies are read by our own extractor, which applies its own limits.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .merge(public_routes())
        .split_for_parts();
    let router = router
        .merge(ui::routes())
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .with_state(state);
    Gate::new(router, auth)
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "host",
    security(()),
    responses(
        (status = 200, description = "The server is up", content_type = "text/plain", body = String),
        (status = 503, description = "The server is up but degraded: the database cannot write (the disk is full); reads still answer", content_type = "text/plain", body = String),
    ),
)]
async fn healthz(
    axum::extract::State(app): axum::extract::State<AppState>,
) -> (axum::http::StatusCode, &'static str) {
    if app.service.storage_full() {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "degraded: storage_full (the disk is full; writes are refused until there is room)\n",
        )
    } else {
        (axum::http::StatusCode::OK, "ok\n")
    }
}
