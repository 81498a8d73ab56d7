//! Task queue endpoints: describe, rate, deployment and rollback; and the
//! namespace's concurrency limits.

use super::{body, ApiError, AppState};
use crate::service::{bounds, DeployRequest};
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

pub(super) async fn describe(
    State(app): State<AppState>,
    Path((ns, queue)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    bounds::id("task_queue", &queue).map_err(ApiError::bad_request)?;
    Ok(Json(json!(app.service.describe_queue(&ns, &queue)?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    module: String,
    version: Option<u32>,
    max_concurrent: Option<u32>,
    /// Percent of activities the version takes during a rollout.
    ramp_percent: Option<u8>,
}

pub(super) async fn deploy(
    State(app): State<AppState>,
    Path((ns, queue)): Path<(String, String)>,
    req: Body,
) -> Result<Json<Value>, ApiError> {
    let b: DeployBody = body::json(req, 64 << 10).await?;
    let check = || {
        bounds::id("task_queue", &queue)?;
        bounds::id("module", &b.module)?;
        match b.max_concurrent {
            Some(n) => bounds::concurrent("max_concurrent", n),
            None => Ok(()),
        }
    };
    check().map_err(ApiError::bad_request)?;
    let req = DeployRequest {
        module: b.module,
        version: b.version,
        max_concurrent: b.max_concurrent,
        ramp_percent: b.ramp_percent,
    };
    let row = app.service.deploy(&ns, &queue, req).await?;
    Ok(Json(json!({ "deployment": row })))
}

pub(super) async fn rollback(
    State(app): State<AppState>,
    Path((ns, queue)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let row = app.service.rollback(&ns, &queue).await?;
    Ok(Json(json!({ "deployment": row })))
}

pub(super) async fn limits(
    State(app): State<AppState>,
    Path(ns): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "limits": app.service.limits(&ns)? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitBody {
    /// `type:T`, `key:K` or `queue:Q/type:T`.
    key: String,
    /// Most attempts at once; null removes the limit.
    max_concurrent: Option<u32>,
}

pub(super) async fn set_limit(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    principal: Option<Extension<super::auth::Principal>>,
    req: Body,
) -> Result<Json<Value>, ApiError> {
    let b: LimitBody = body::json(req, 64 << 10).await?;
    let check = || {
        bounds::id("key", &b.key)?;
        match b.max_concurrent {
            Some(n) => bounds::concurrent("max_concurrent", n),
            None => Ok(()),
        }
    };
    check().map_err(ApiError::bad_request)?;
    let row = app
        .service
        .set_limit(&ns, &b.key, b.max_concurrent, &who(principal))
        .await?;
    Ok(Json(json!({ "limit": row })))
}

/// Who made a change, for describe output.
fn who(principal: Option<Extension<super::auth::Principal>>) -> String {
    match principal {
        Some(Extension(super::auth::Principal::Tenant(ns))) => format!("a token of namespace {ns}"),
        _ => "admin".to_owned(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigBody {
    /// Tasks/s; 0 pauses; null clears.
    rate: Option<f64>,
    burst: Option<f64>,
}

pub(super) async fn config(
    State(app): State<AppState>,
    Path((ns, queue)): Path<(String, String)>,
    principal: Option<Extension<super::auth::Principal>>,
    req: Body,
) -> Result<Json<Value>, ApiError> {
    let b: ConfigBody = body::json(req, 64 << 10).await?;
    let rate = app
        .service
        .set_queue_rate(&ns, &queue, b.rate, b.burst, &who(principal))
        .await?;
    Ok(Json(json!({ "rate_limit": rate })))
}
