//! Module endpoints: upload (raw component bytes) and list.

use super::{body, ApiError, AppState};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
pub(super) struct UploadQuery {
    name: Option<String>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

pub(super) async fn upload(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    Query(q): Query<UploadQuery>,
    req: Body,
) -> Result<Response, ApiError> {
    let quotas = app.service.tenant(&ns)?.quotas();
    let name = q
        .name
        .ok_or_else(|| ApiError::bad_request("the module name is required: ?name=NAME"))?;
    if !valid_name(&name) {
        return Err(ApiError::bad_request(
            "a module name is 1-100 characters of letters, digits, '-', '_' and '.'",
        ));
    }
    let modules = app
        .service
        .db()
        .module_count(&ns)
        .map_err(crate::service::ServiceError::from)?;
    let limit = app
        .limits
        .module_bytes
        .min(quotas.max_module_bytes as usize);
    let bytes = body::bytes(req, limit, "the module").await?;
    if modules >= quotas.max_modules {
        // Uploading content the namespace already has makes no new version,
        // so it is answered even at the quota (uploads are idempotent).
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let existing = app
            .service
            .db()
            .module_by_content(&ns, &name, &sha256)
            .map_err(crate::service::ServiceError::from)?;
        return match existing {
            Some(record) => Ok((
                StatusCode::OK,
                Json(json!({ "created": false, "module": record })),
            )
                .into_response()),
            None => Err(crate::service::ServiceError::QuotaExceeded(format!(
                "namespace {ns:?} already has {modules} module versions, its quota"
            ))
            .into()),
        };
    }
    // The module is checked (its activity types listed) under the
    // namespace's own quotas, not the host's defaults.
    let limits = crate::registry::UploadLimits {
        memory_bytes: usize::try_from(quotas.max_memory_per_attempt).unwrap_or(usize::MAX),
        fuel: quotas.fuel_per_attempt,
    };
    let (record, created) = app
        .service
        .registry()
        .upload(app.service.db(), &ns, &name, bytes.to_vec(), &limits)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({ "created": created, "module": record })),
    )
        .into_response())
}

pub(super) async fn list(
    State(app): State<AppState>,
    Path(ns): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    app.service.check_namespace(&ns)?;
    let modules = app
        .service
        .db()
        .list_modules(&ns)
        .map_err(crate::service::ServiceError::from)?;
    Ok(Json(json!({ "modules": modules })))
}
