//! Module endpoints: upload (raw component bytes), list and delete. The
//! quotas an upload is held to, and when a module may be deleted, are the
//! service's (`service/modules.rs`).

use super::extract::{Path, Query};
use super::types::{
    ErrorResponse, ModuleDeleted, ModuleList, ModulePath, ModuleUploaded, NamespacePath,
};
use super::{body, ApiError, AppState};
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct UploadQuery {
    /// Module name (required): 1-100 letters, digits, `-`, `_` and `.`.
    #[param(required = true, max_length = 100)]
    name: Option<String>,
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
        (status = 503, description = "The server is shutting down, or holds its limit of request bodies in memory for other requests (code bodies_memory_full; retry after Retry-After)", body = ErrorResponse),
        (status = 408, description = "The body stopped arriving for the server's idle time (code body_stalled)", body = ErrorResponse),
        (status = 507, description = "The server's disk is full (code storage_full); nothing was kept", body = ErrorResponse),
    ),
)]
pub(super) async fn upload(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    Query(q): Query<UploadQuery>,
    req: Body,
) -> Result<Response, ApiError> {
    // A missing namespace answers 404 before a missing name answers 400.
    app.service.check_namespace(&ns)?;
    let name = q
        .name
        .ok_or_else(|| ApiError::bad_request("the module name is required: ?name=NAME"))?;
    let upload = app
        .service
        .begin_upload(&ns, &name, app.limits.module_bytes)?;
    // Held (in the body budget) until the module is compiled and stored.
    let mut held = body::bytes(&app.bodies, req, upload.max_bytes(), "the module").await?;
    // Not a copy: the bytes were read into one buffer of their own.
    let bytes = Vec::from(std::mem::take(&mut held.bytes));
    let (record, created) = app.service.upload_module(upload, bytes).await?;
    drop(held);
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
    Ok(Json(ModuleList {
        modules: app.service.list_modules(&ns)?,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DeleteQuery {
    /// Only this version; every version of the name when absent.
    #[param(minimum = 1)]
    version: Option<u32>,
}

#[utoipa::path(
    delete,
    path = "/api/v1/namespaces/{ns}/modules/{name}",
    tag = "modules",
    params(ModulePath, DeleteQuery),
    responses(
        (status = 200, description = "Deleted; its files are removed once no module has the same content", body = ModuleDeleted),
        (status = 400, description = "Invalid module name or version", body = ErrorResponse),
        (status = 404, description = "No such namespace, module or version", body = ErrorResponse),
        (status = 409, description = "A task queue's deployment or rollout runs a version to delete", body = ErrorResponse),
        (status = 503, description = "The server is shutting down", body = ErrorResponse),
    ),
)]
pub(super) async fn delete(
    State(app): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<ModuleDeleted>, ApiError> {
    let versions = app.service.delete_module(&ns, &name, q.version).await?;
    Ok(Json(ModuleDeleted { name, versions }))
}
