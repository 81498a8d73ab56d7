//! Task queue endpoints: describe and deployment.

use super::{body, ApiError, AppState};
use axum::body::Body;
use axum::extract::{Path, State};
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
