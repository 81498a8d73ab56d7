//! The HTTP JSON API (axum), under `/api/v1/namespaces/{ns}/`, plus
//! `/healthz` and `/metrics`.
//!
//! Handlers are thin: parse, call the service, shape the answer. Every error
//! is JSON `{"error": {"code", "message"}}` with the status that says what
//! was wrong; client input never produces a 500.

mod activities;
pub mod auth;
mod body;
mod error;
mod modules;
mod namespaces;
mod queues;

pub use auth::Auth;
pub use error::ApiError;

use crate::metrics;
use crate::service::tenant::UsageView;
use crate::service::Service;
use axum::extract::State;
use axum::routing::{delete, get, post, put};
use axum::Router;
use std::sync::atomic::Ordering;
use std::sync::Arc;

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

/// Builds the router over a running service.
pub fn router(service: Service, limits: ApiLimits, auth: Arc<Auth>) -> Router {
    let ns = "/api/v1/namespaces/{ns}";
    let state = AppState {
        service,
        limits,
        auth,
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route(
            "/api/v1/namespaces",
            post(namespaces::create).get(namespaces::list),
        )
        .route(
            ns,
            get(namespaces::describe)
                .patch(namespaces::update)
                .delete(namespaces::delete),
        )
        .route(
            &format!("{ns}/tokens"),
            post(namespaces::create_token).get(namespaces::list_tokens),
        )
        .route(
            &format!("{ns}/tokens/{{id}}"),
            delete(namespaces::revoke_token),
        )
        .route(&format!("{ns}/config"), get(namespaces::list_config))
        .route(
            &format!("{ns}/config/{{key}}"),
            put(namespaces::set_config).delete(namespaces::delete_config),
        )
        .route(
            &format!("{ns}/modules"),
            post(modules::upload).get(modules::list),
        )
        .route(
            &format!("{ns}/task-queues/{{queue}}"),
            get(queues::describe).put(queues::config),
        )
        .route(
            &format!("{ns}/task-queues/{{queue}}/deployment"),
            put(queues::deploy),
        )
        .route(
            &format!("{ns}/task-queues/{{queue}}/rollback"),
            post(queues::rollback),
        )
        .route(
            &format!("{ns}/concurrency-limits"),
            get(queues::limits).put(queues::set_limit),
        )
        .route(
            &format!("{ns}/activities"),
            post(activities::start).get(activities::list),
        )
        .route(
            &format!("{ns}/activities/complete"),
            post(activities::complete),
        )
        .route(&format!("{ns}/activities/fail"), post(activities::fail))
        .route(
            &format!("{ns}/activities/heartbeat"),
            post(activities::heartbeat),
        )
        .route(
            &format!("{ns}/activities/{{id}}"),
            get(activities::describe),
        )
        .route(
            &format!("{ns}/activities/{{id}}/result"),
            get(activities::result),
        )
        .route(
            &format!("{ns}/activities/{{id}}/cancel"),
            post(activities::cancel),
        )
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        // Bodies are read by our own extractor, which applies its own limits.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        .with_state(state)
}

/// Reads one counter of a namespace's usage.
type UsageField = fn(&UsageView) -> u64;

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
    c.schedule_to_start.render(
        &mut out,
        "wharf_schedule_to_start_seconds",
        "Time from entering the backlog to a worker taking the task.",
    );
    out
}
