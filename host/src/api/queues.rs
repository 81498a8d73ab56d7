//! Task queue endpoints: describe and deployment.

use super::{body, ApiError, AppState};
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

pub(super) async fn describe(
    State(app): State<AppState>,
    Path((ns, queue)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(app.service.describe_queue(&ns, &queue)?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    module: String,
    version: Option<u32>,
    max_concurrent: Option<u32>,
}

pub(super) async fn deploy(
    State(app): State<AppState>,
    Path((ns, queue)): Path<(String, String)>,
    req: Body,
) -> Result<Json<Value>, ApiError> {
    let b: DeployBody = body::json(req, 64 << 10).await?;
    let row = app
        .service
        .deploy(&ns, &queue, &b.module, b.version, b.max_concurrent)
        .await?;
    Ok(Json(json!({ "deployment": row })))
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
    let who = match principal {
        Some(Extension(super::auth::Principal::Tenant(ns))) => format!("a token of namespace {ns}"),
        _ => "admin".to_owned(),
    };
    let rate = app
        .service
        .set_queue_rate(&ns, &queue, b.rate, b.burst, &who)
        .await?;
    Ok(Json(json!({ "rate_limit": rate })))
}
