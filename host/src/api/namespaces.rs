//! Namespace administration: create, list, describe, update quotas and the
//! egress policy, delete; the namespace's tokens (created, listed, revoked)
//! and configuration variables (set, listed without values unless asked,
//! deleted).

use super::extract::{Path, Query};
use super::types::{
    ConfigList, ConfigPath, CreateNamespaceRequest as CreateBody, ErrorResponse, NamespaceDeleted,
    NamespaceList, NamespacePath, NamespaceResponse, SetVarRequest as SetVarBody, TokenCreated,
    TokenList, TokenPath, TokenRevoked, UpdateNamespaceRequest, VarDeleted, VarResponse,
};
use super::{body, ApiError, AppState};
use crate::engine::EgressPolicy;
use crate::service::tenant::Quotas;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

#[utoipa::path(
    post,
    path = "/api/v1/namespaces",
    tag = "namespaces",
    request_body = CreateBody,
    responses(
        (status = 201, description = "Created", body = NamespaceResponse),
        (status = 400, description = "Invalid name or quotas", body = ErrorResponse),
        (status = 409, description = "The namespace exists", body = ErrorResponse),
        (status = 413, description = "Request body too large", body = ErrorResponse),
        (status = 503, description = "The server is shutting down, or holds its limit of request bodies in memory for other requests (code bodies_memory_full; retry after Retry-After)", body = ErrorResponse),
        (status = 408, description = "The body stopped arriving for the server's idle time (code body_stalled)", body = ErrorResponse),
    ),
)]
pub(super) async fn create(State(app): State<AppState>, req: Body) -> Result<Response, ApiError> {
    let b: CreateBody = body::json(&app.bodies, req, 64 << 10).await?;
    let quotas: Quotas = match b.quotas {
        Some(q) => serde_json::from_value(q)
            .map_err(|e| ApiError::bad_request(format!("invalid quotas: {e}")))?,
        None => Quotas::default(),
    };
    let ns = app.service.create_namespace(&b.name, quotas).await?;
    Ok((
        StatusCode::CREATED,
        Json(NamespaceResponse { namespace: ns }),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/namespaces",
    tag = "namespaces",
    responses((status = 200, description = "Every namespace", body = NamespaceList)),
)]
pub(super) async fn list(State(app): State<AppState>) -> Json<NamespaceList> {
    Json(NamespaceList {
        namespaces: app.service.list_namespaces(),
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{ns}",
    tag = "namespaces",
    params(NamespacePath),
    responses(
        (status = 200, description = "Quotas, usage, egress policy, configuration names", body = NamespaceResponse),
        (status = 404, description = "No such namespace", body = ErrorResponse),
    ),
)]
pub(super) async fn describe(
    State(app): State<AppState>,
    Path(ns): Path<String>,
) -> Result<Json<NamespaceResponse>, ApiError> {
    Ok(Json(NamespaceResponse {
        namespace: app.service.describe_namespace(&ns)?,
    }))
}

#[utoipa::path(
    patch,
    path = "/api/v1/namespaces/{ns}",
    tag = "namespaces",
    params(NamespacePath),
    request_body = UpdateNamespaceRequest,
    responses(
        (status = 200, description = "The namespace as changed", body = NamespaceResponse),
        (status = 400, description = "Invalid quotas or egress policy", body = ErrorResponse),
        (status = 404, description = "No such namespace", body = ErrorResponse),
        (status = 413, description = "Request body too large", body = ErrorResponse),
        (status = 503, description = "The server is shutting down, or holds its limit of request bodies in memory for other requests (code bodies_memory_full; retry after Retry-After)", body = ErrorResponse),
        (status = 408, description = "The body stopped arriving for the server's idle time (code body_stalled)", body = ErrorResponse),
    ),
)]
pub(super) async fn update(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    req: Body,
) -> Result<Json<NamespaceResponse>, ApiError> {
    let b: Value = body::json(&app.bodies, req, 64 << 10).await?;
    // `{"quotas": {...}, "egress": {...}}`, either part optional; a bare
    // object is a quota patch.
    let (quotas, egress) = match b.as_object() {
        Some(o) if o.contains_key("quotas") || o.contains_key("egress") => {
            if let Some(k) = o.keys().find(|k| *k != "quotas" && *k != "egress") {
                return Err(ApiError::bad_request(format!(
                    "unknown field {k:?}: expected quotas and/or egress"
                )));
            }
            (o.get("quotas").cloned(), o.get("egress").cloned())
        }
        _ => (Some(b), None),
    };
    // Check the policy before changing anything.
    let egress: Option<EgressPolicy> = egress
        .map(|e| {
            serde_json::from_value(e)
                .map_err(|e| ApiError::bad_request(format!("invalid egress policy: {e}")))
        })
        .transpose()?;
    if let Some(p) = &egress {
        p.validate().map_err(ApiError::bad_request)?;
    }
    let mut view = None;
    if let Some(patch) = quotas {
        view = Some(app.service.update_quotas(&ns, patch).await?);
    }
    if let Some(policy) = egress {
        view = Some(app.service.set_egress(&ns, policy).await?);
    }
    let view = match view {
        Some(v) => v,
        None => app.service.describe_namespace(&ns)?,
    };
    Ok(Json(NamespaceResponse { namespace: view }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DeleteQuery {
    /// Delete even with open activities (they are dropped).
    #[serde(default)]
    force: bool,
}

#[utoipa::path(
    delete,
    path = "/api/v1/namespaces/{ns}",
    tag = "namespaces",
    params(NamespacePath, DeleteQuery),
    responses(
        (status = 200, description = "Deleted", body = NamespaceDeleted),
        (status = 400, description = "Invalid query", body = ErrorResponse),
        (status = 404, description = "No such namespace", body = ErrorResponse),
        (status = 409, description = "The namespace has open activities (use force)", body = ErrorResponse),
        (status = 503, description = "The server is shutting down", body = ErrorResponse),
    ),
)]
pub(super) async fn delete(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<NamespaceDeleted>, ApiError> {
    app.service.delete_namespace(&ns, q.force).await?;
    app.auth.remove(&ns, None);
    Ok(Json(NamespaceDeleted { deleted: ns }))
}

#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{ns}/tokens",
    tag = "namespaces",
    params(NamespacePath),
    responses(
        (status = 201, description = "A new token, shown once", body = TokenCreated),
        (status = 404, description = "No such namespace", body = ErrorResponse),
        (status = 503, description = "The server is shutting down", body = ErrorResponse),
    ),
)]
pub(super) async fn create_token(
    State(app): State<AppState>,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    let (row, token) = app.service.create_token(&ns).await?;
    app.auth.add(row.sha256, row.id.clone(), ns.clone());
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            id: row.id,
            namespace: ns,
            token,
            note: "the token is shown once; only its hash is kept".to_owned(),
        }),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{ns}/tokens",
    tag = "namespaces",
    params(NamespacePath),
    responses(
        (status = 200, description = "The namespace's tokens, without secrets", body = TokenList),
        (status = 404, description = "No such namespace", body = ErrorResponse),
    ),
)]
pub(super) async fn list_tokens(
    State(app): State<AppState>,
    Path(ns): Path<String>,
) -> Result<Json<TokenList>, ApiError> {
    Ok(Json(TokenList {
        tokens: app.service.list_tokens(&ns)?,
    }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/namespaces/{ns}/tokens/{id}",
    tag = "namespaces",
    params(TokenPath),
    responses(
        (status = 200, description = "Revoked", body = TokenRevoked),
        (status = 400, description = "Invalid token id", body = ErrorResponse),
        (status = 404, description = "No such namespace or live token", body = ErrorResponse),
        (status = 503, description = "The server is shutting down", body = ErrorResponse),
    ),
)]
pub(super) async fn revoke_token(
    State(app): State<AppState>,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<TokenRevoked>, ApiError> {
    if !app.service.revoke_token(&ns, &id).await? {
        return Err(ApiError::not_found(format!(
            "no live token {id:?} in namespace {ns:?}"
        )));
    }
    app.auth.remove(&ns, Some(&id));
    Ok(Json(TokenRevoked { revoked: id }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ConfigQuery {
    /// Show the values too.
    #[serde(default)]
    values: bool,
}

#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{ns}/config",
    tag = "namespaces",
    params(NamespacePath, ConfigQuery),
    responses(
        (status = 200, description = "Variables with their grants; values only when asked for", body = ConfigList),
        (status = 400, description = "Invalid query", body = ErrorResponse),
        (status = 404, description = "No such namespace", body = ErrorResponse),
    ),
)]
pub(super) async fn list_config(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    Query(q): Query<ConfigQuery>,
) -> Result<Json<ConfigList>, ApiError> {
    Ok(Json(ConfigList {
        config: app.service.list_vars(&ns, q.values)?,
    }))
}

#[utoipa::path(
    put,
    path = "/api/v1/namespaces/{ns}/config/{key}",
    tag = "namespaces",
    params(ConfigPath),
    request_body = SetVarBody,
    responses(
        (status = 200, description = "Set", body = VarResponse),
        (status = 400, description = "Invalid name, value or grants", body = ErrorResponse),
        (status = 404, description = "No such namespace", body = ErrorResponse),
        (status = 413, description = "Request body too large", body = ErrorResponse),
        (status = 503, description = "The server is shutting down, or holds its limit of request bodies in memory for other requests (code bodies_memory_full; retry after Retry-After)", body = ErrorResponse),
        (status = 408, description = "The body stopped arriving for the server's idle time (code body_stalled)", body = ErrorResponse),
    ),
)]
pub(super) async fn set_config(
    State(app): State<AppState>,
    Path((ns, key)): Path<(String, String)>,
    req: Body,
) -> Result<Json<VarResponse>, ApiError> {
    let b: SetVarBody = body::json(&app.bodies, req, 128 << 10).await?;
    let check = || {
        use crate::service::bounds;
        bounds::count("grants", b.grants.len(), bounds::MAX_GRANTS)?;
        b.grants.iter().try_for_each(|g| bounds::id("grants[]", g))
    };
    check().map_err(ApiError::bad_request)?;
    let variable = app.service.set_var(&ns, &key, b.value, b.grants).await?;
    Ok(Json(VarResponse { variable }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/namespaces/{ns}/config/{key}",
    tag = "namespaces",
    params(ConfigPath),
    responses(
        (status = 200, description = "Deleted", body = VarDeleted),
        (status = 400, description = "Invalid name", body = ErrorResponse),
        (status = 404, description = "No such namespace or variable", body = ErrorResponse),
        (status = 503, description = "The server is shutting down", body = ErrorResponse),
    ),
)]
pub(super) async fn delete_config(
    State(app): State<AppState>,
    Path((ns, key)): Path<(String, String)>,
) -> Result<Json<VarDeleted>, ApiError> {
    if !app.service.delete_var(&ns, &key).await? {
        return Err(ApiError::not_found(format!(
            "no variable {key:?} in namespace {ns:?}"
        )));
    }
    Ok(Json(VarDeleted { deleted: key }))
}
