//! Module endpoints: upload (raw component bytes) and list.

use super::extract::{Path, Query};
use super::types::{ErrorResponse, ModuleList, ModuleUploaded, NamespacePath};
use super::{body, ApiError, AppState};
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct UploadQuery {
    /// Module name (required): 1-100 letters, digits, `-`, `_` and `.`.
    #[param(required = true, max_length = 100)]
    name: Option<String>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{ns}/modules",
    tag = "modules",
    params(NamespacePath, UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The component, raw bytes"),
    responses(
        (status = 201, description = "A new version", body = ModuleUploaded),
        (status = 200, description = "The namespace already has this content under the name", body = ModuleUploaded),
        (status = 400, description = "Missing or invalid name", body = ErrorResponse),
        (status = 404, description = "No such namespace", body = ErrorResponse),
        (status = 413, description = "Larger than the namespace's or the host's module limit", body = ErrorResponse),
        (status = 422, description = "Not a component of the wharf:activity world", body = ErrorResponse),
        (status = 429, description = "The namespace's module quota is reached", body = ErrorResponse),
        (status = 503, description = "The server is shutting down", body = ErrorResponse),
    ),
)]
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
                Json(ModuleUploaded {
                    created: false,
                    module: record,
                }),
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
        Json(ModuleUploaded {
            created,
            module: record,
        }),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{ns}/modules",
    tag = "modules",
    params(NamespacePath),
    responses(
        (status = 200, description = "The namespace's module versions", body = ModuleList),
        (status = 404, description = "No such namespace", body = ErrorResponse),
    ),
)]
pub(super) async fn list(
    State(app): State<AppState>,
    Path(ns): Path<String>,
) -> Result<Json<ModuleList>, ApiError> {
    app.service.check_namespace(&ns)?;
    let modules = app
        .service
        .db()
        .list_modules(&ns)
        .map_err(crate::service::ServiceError::from)?;
    Ok(Json(ModuleList { modules }))
}
