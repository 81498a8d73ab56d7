//! Task queue endpoints: describe, rate, deployment and rollback; and the
//! namespace's concurrency limits.

use super::extract::Path;
use super::types::{
    DeployRequest as DeployBody, DeploymentResponse, ErrorResponse, LimitList, LimitResponse,
    NamespacePath, QueueConfigRequest as ConfigBody, QueuePath, RateLimitResponse,
    SetLimitRequest as LimitBody,
};
use super::{body, ApiError, AppState};
use crate::service::QueueView;
use crate::service::{bounds, DeployRequest};
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::Json;

#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{ns}/task-queues/{queue}",
    tag = "task-queues",
    params(QueuePath),
    responses(
        (status = 200, description = "Backlog, running attempts, rates, deployment", body = QueueView),
        (status = 400, description = "Invalid queue name", body = ErrorResponse),
        (status = 404, description = "No such namespace", body = ErrorResponse),
    ),
)]
pub(super) async fn describe(
    State(app): State<AppState>,
    Path((ns, queue)): Path<(String, String)>,
) -> Result<Json<QueueView>, ApiError> {
    bounds::id("task_queue", &queue).map_err(ApiError::bad_request)?;
    Ok(Json(app.service.describe_queue(&ns, &queue)?))
}

#[utoipa::path(
    put,
    path = "/api/v1/namespaces/{ns}/task-queues/{queue}/deployment",
    tag = "task-queues",
    params(QueuePath),
    request_body = DeployBody,
    responses(
        (status = 200, description = "The deployment now in force", body = DeploymentResponse),
        (status = 400, description = "Invalid request", body = ErrorResponse),
        (status = 404, description = "No such namespace or module version", body = ErrorResponse),
        (status = 409, description = "A rollout is in progress that this would not continue", body = ErrorResponse),
        (status = 413, description = "Request body too large", body = ErrorResponse),
        (status = 422, description = "The module cannot be loaded", body = ErrorResponse),
        (status = 503, description = "The server is shutting down, or holds its limit of request bodies in memory for other requests (code bodies_memory_full; retry after Retry-After)", body = ErrorResponse),
        (status = 408, description = "The body stopped arriving for the server's idle time (code body_stalled)", body = ErrorResponse),
    ),
)]
pub(super) async fn deploy(
    State(app): State<AppState>,
    Path((ns, queue)): Path<(String, String)>,
    req: Body,
) -> Result<Json<DeploymentResponse>, ApiError> {
    let b: DeployBody = body::json(&app.bodies, req, 64 << 10).await?;
    let req = DeployRequest {
        module: b.module,
        version: b.version,
        max_concurrent: b.max_concurrent,
        ramp_percent: b.ramp_percent,
    };
    let deployment = app.service.deploy(&ns, &queue, req).await?;
    Ok(Json(DeploymentResponse { deployment }))
}

#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{ns}/task-queues/{queue}/rollback",
    tag = "task-queues",
    params(QueuePath),
    responses(
        (status = 200, description = "The deployment restored", body = DeploymentResponse),
        (status = 400, description = "Invalid queue name", body = ErrorResponse),
        (status = 404, description = "No such namespace", body = ErrorResponse),
        (status = 409, description = "Nothing to roll back to", body = ErrorResponse),
        (status = 422, description = "The earlier module cannot be loaded", body = ErrorResponse),
        (status = 503, description = "The server is shutting down", body = ErrorResponse),
    ),
)]
pub(super) async fn rollback(
    State(app): State<AppState>,
    Path((ns, queue)): Path<(String, String)>,
) -> Result<Json<DeploymentResponse>, ApiError> {
    let deployment = app.service.rollback(&ns, &queue).await?;
    Ok(Json(DeploymentResponse { deployment }))
}

#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{ns}/concurrency-limits",
    tag = "task-queues",
    params(NamespacePath),
    responses(
        (status = 200, description = "The limits with their current use", body = LimitList),
        (status = 404, description = "No such namespace", body = ErrorResponse),
    ),
)]
pub(super) async fn limits(
    State(app): State<AppState>,
    Path(ns): Path<String>,
) -> Result<Json<LimitList>, ApiError> {
    Ok(Json(LimitList {
        limits: app.service.limits(&ns)?,
    }))
}

#[utoipa::path(
    put,
    path = "/api/v1/namespaces/{ns}/concurrency-limits",
    tag = "task-queues",
    params(NamespacePath),
    request_body = LimitBody,
    responses(
        (status = 200, description = "The limit as set (null once removed)", body = LimitResponse),
        (status = 400, description = "Invalid request", body = ErrorResponse),
        (status = 404, description = "No such namespace", body = ErrorResponse),
        (status = 413, description = "Request body too large", body = ErrorResponse),
        (status = 503, description = "The server is shutting down, or holds its limit of request bodies in memory for other requests (code bodies_memory_full; retry after Retry-After)", body = ErrorResponse),
        (status = 408, description = "The body stopped arriving for the server's idle time (code body_stalled)", body = ErrorResponse),
    ),
)]
pub(super) async fn set_limit(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    principal: Option<Extension<super::auth::Principal>>,
    req: Body,
) -> Result<Json<LimitResponse>, ApiError> {
    let b: LimitBody = body::json(&app.bodies, req, 64 << 10).await?;
    let check = || {
        bounds::id("key", &b.key)?;
        match b.max_concurrent {
            Some(n) => bounds::concurrent("max_concurrent", n),
            None => Ok(()),
        }
    };
    check().map_err(ApiError::bad_request)?;
    let limit = app
        .service
        .set_limit(&ns, &b.key, b.max_concurrent, &who(principal))
        .await?;
    Ok(Json(LimitResponse { limit }))
}

/// Who made a change, for describe output.
fn who(principal: Option<Extension<super::auth::Principal>>) -> String {
    match principal {
        Some(Extension(super::auth::Principal::Tenant(ns))) => format!("a token of namespace {ns}"),
        _ => "admin".to_owned(),
    }
}

#[utoipa::path(
    put,
    path = "/api/v1/namespaces/{ns}/task-queues/{queue}",
    tag = "task-queues",
    params(QueuePath),
    request_body = ConfigBody,
    responses(
        (status = 200, description = "The rate limit now in force", body = RateLimitResponse),
        (status = 400, description = "Invalid request", body = ErrorResponse),
        (status = 404, description = "No such namespace", body = ErrorResponse),
        (status = 413, description = "Request body too large", body = ErrorResponse),
        (status = 503, description = "The server is shutting down, or holds its limit of request bodies in memory for other requests (code bodies_memory_full; retry after Retry-After)", body = ErrorResponse),
        (status = 408, description = "The body stopped arriving for the server's idle time (code body_stalled)", body = ErrorResponse),
    ),
)]
pub(super) async fn config(
    State(app): State<AppState>,
    Path((ns, queue)): Path<(String, String)>,
    principal: Option<Extension<super::auth::Principal>>,
    req: Body,
) -> Result<Json<RateLimitResponse>, ApiError> {
    let b: ConfigBody = body::json(&app.bodies, req, 64 << 10).await?;
    let rate_limit = app
        .service
        .set_queue_rate(&ns, &queue, b.rate, b.burst, &who(principal))
        .await?;
    Ok(Json(RateLimitResponse { rate_limit }))
}
