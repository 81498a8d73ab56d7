//! The HTTP JSON API (axum), under `/api/v1/namespaces/{ns}/`, plus
//! `/healthz` and `/metrics`.
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
mod error;
mod extract;
mod modules;
mod namespaces;
pub mod openapi;
mod queues;
pub mod types;

pub use auth::Auth;
pub use error::ApiError;

use crate::metrics;
use crate::service::tenant::UsageView;
use crate::service::Service;
use axum::extract::State;
use axum::Router;
use std::sync::atomic::Ordering;
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

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) service: Service,
    pub(crate) limits: ApiLimits,
    pub(crate) auth: Arc<Auth>,
}

/// Every operation behind authentication. Each `routes!` call mounts the
/// handlers of one path and adds their `#[utoipa::path]` description to
/// the document, so a route cannot exist without being documented.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(healthz))
        .routes(routes!(metrics))
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
        .routes(routes!(queues::describe, queues::config))
        .routes(routes!(queues::deploy))
        .routes(routes!(queues::rollback))
        .routes(routes!(queues::limits, queues::set_limit))
        .routes(routes!(activities::start, activities::list))
        .routes(routes!(activities::complete))
        .routes(routes!(activities::fail))
        .routes(routes!(activities::heartbeat))
        .routes(routes!(activities::describe))
        .routes(routes!(activities::result))
        .routes(routes!(activities::cancel))
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

/// Builds the router over a running service.
pub fn router(service: Service, limits: ApiLimits, auth: Arc<Auth>) -> Router {
    let state = AppState {
        service,
        limits,
        auth,
    };
    let (router, _) = routes()
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        // Bodies are read by our own extractor, which applies its own limits.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        .merge(public_routes())
        .split_for_parts();
    router
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::dev_mode_host,
        ))
        .with_state(state)
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "host",
    security(()),
    responses((status = 200, description = "The server is up", content_type = "text/plain", body = String)),
)]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Reads one counter of a namespace's usage.
type UsageField = fn(&UsageView) -> u64;

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "host",
    responses((status = 200, description = "Counters, gauges and histograms in Prometheus text form", content_type = "text/plain", body = String)),
)]
async fn metrics(State(app): State<AppState>) -> String {
    let c = app.service.counters();
    let mut out = String::new();
    let counters = [
        (
            "wharf_activities_started_total",
            "Activities started.",
            &c.started,
        ),
        ("wharf_attempts_total", "Attempts run.", &c.attempts),
        (
            "wharf_activities_completed_total",
            "Activities completed.",
            &c.completed,
        ),
        (
            "wharf_activities_failed_total",
            "Activities failed.",
            &c.failed,
        ),
        (
            "wharf_activities_cancelled_total",
            "Activities cancelled.",
            &c.cancelled,
        ),
        (
            "wharf_activities_timed_out_total",
            "Activities timed out.",
            &c.timed_out,
        ),
    ];
    for (name, help, v) in counters {
        metrics::render_counter(&mut out, name, help, v.load(Ordering::Relaxed));
    }
    let (running, capacity, waiting) = app.service.host_slots();
    for (name, help, v) in [
        (
            "wharf_host_attempts_running",
            "Attempts holding a host slot.",
            running,
        ),
        (
            "wharf_host_attempt_slots",
            "Attempts the host runs at once.",
            capacity,
        ),
        (
            "wharf_host_attempts_waiting",
            "Attempts waiting for a host slot (namespaces take turns).",
            waiting,
        ),
    ] {
        metrics::render_gauge(&mut out, name, help, v as u64);
    }
    let namespaces = app.service.list_namespaces();
    let per_namespace: [(&str, &str, UsageField); 5] = [
        (
            "wharf_namespace_attempts_total",
            "Attempts run, by namespace.",
            |u| u.attempts,
        ),
        (
            "wharf_namespace_fuel_used_total",
            "Fuel (CPU) used by attempts, by namespace.",
            |u| u.fuel_used,
        ),
        (
            "wharf_namespace_starts_rate_limited_total",
            "Starts refused by the namespace's start rate.",
            |u| u.starts_rate_limited,
        ),
        (
            "wharf_namespace_egress_requests_total",
            "Outbound HTTP requests of attempts (refused ones included), by namespace.",
            |u| u.egress_requests,
        ),
        (
            "wharf_namespace_egress_denied_total",
            "Outbound HTTP requests the egress policy refused, by namespace.",
            |u| u.egress_denied,
        ),
    ];
    for (name, help, get) in per_namespace {
        let values: Vec<(&str, u64)> = namespaces
            .iter()
            .map(|n| (n.name.as_str(), get(&n.usage)))
            .collect();
        metrics::render_namespace_counter(&mut out, name, help, &values);
    }
    let cpu: Vec<(&str, f64)> = namespaces
        .iter()
        .map(|n| (n.name.as_str(), n.usage.guest_cpu_seconds))
        .collect();
    metrics::render_namespace_seconds(
        &mut out,
        "wharf_namespace_guest_cpu_seconds_total",
        "CPU time of the guest threads running attempts, by namespace.",
        &cpu,
    );
    c.schedule_to_start.render(
        &mut out,
        "wharf_schedule_to_start_seconds",
        "Time from entering the backlog to a worker taking the task.",
    );
    out
}
