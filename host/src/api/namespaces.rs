//! Namespace administration: create, list, describe, update quotas and the
//! egress policy, delete; the namespace's tokens (created, listed, revoked)
//! and configuration variables (set, listed without values unless asked,
//! deleted).

use super::auth::{hash, new_secret};
use super::{body, ApiError, AppState};
use crate::engine::EgressPolicy;
use crate::service::tenant::Quotas;
use crate::service::ServiceError;
use crate::store::tenancy::TokenRow;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    quotas: Option<Value>,
}

pub(super) async fn create(State(app): State<AppState>, req: Body) -> Result<Response, ApiError> {
    let b: CreateBody = body::json(req, 64 << 10).await?;
    let quotas: Quotas = match b.quotas {
        Some(q) => serde_json::from_value(q)
            .map_err(|e| ApiError::bad_request(format!("invalid quotas: {e}")))?,
        None => Quotas::default(),
    };
    let ns = app.service.create_namespace(&b.name, quotas).await?;
    Ok((StatusCode::CREATED, Json(json!({ "namespace": ns }))).into_response())
}

pub(super) async fn list(State(app): State<AppState>) -> Json<Value> {
    Json(json!({ "namespaces": app.service.list_namespaces() }))
}

pub(super) async fn describe(
    State(app): State<AppState>,
    Path(ns): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "namespace": app.service.describe_namespace(&ns)? }),
    ))
}

pub(super) async fn update(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    req: Body,
) -> Result<Json<Value>, ApiError> {
    let b: Value = body::json(req, 64 << 10).await?;
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
    Ok(Json(json!({ "namespace": view })))
}

#[derive(Deserialize)]
pub(super) struct DeleteQuery {
    #[serde(default)]
    force: bool,
}

pub(super) async fn delete(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<Value>, ApiError> {
    app.service.delete_namespace(&ns, q.force).await?;
    app.auth.remove(&ns, None);
    Ok(Json(json!({ "deleted": ns })))
}

pub(super) async fn create_token(
    State(app): State<AppState>,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    app.service.check_namespace(&ns)?;
    let id = new_secret("")[..12].to_owned();
    let token = new_secret("wharf_");
    let row = TokenRow {
        id: id.clone(),
        namespace: ns.clone(),
        sha256: hash(&token),
        created_ms: crate::now_ms(),
        revoked_ms: None,
    };
    app.service
        .db()
        .insert_token(row.clone())
        .await
        .map_err(ServiceError::from)?;
    app.auth.add(row.sha256, id.clone(), ns.clone());
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": id,
            "namespace": ns,
            "token": token,
            "note": "the token is shown once; only its hash is kept",
        })),
    )
        .into_response())
}

pub(super) async fn list_tokens(
    State(app): State<AppState>,
    Path(ns): Path<String>,
) -> Result<Json<Value>, ApiError> {
    app.service.check_namespace(&ns)?;
    let tokens: Vec<TokenRow> = app
        .service
        .db()
        .tokens()
        .map_err(ServiceError::from)?
        .into_iter()
        .filter(|t| t.namespace == ns)
        .collect();
    Ok(Json(json!({ "tokens": tokens })))
}

pub(super) async fn revoke_token(
    State(app): State<AppState>,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    app.service.check_namespace(&ns)?;
    if !app
        .service
        .db()
        .revoke_token(&ns, &id)
        .await
        .map_err(ServiceError::from)?
    {
        return Err(ApiError::not_found(format!(
            "no live token {id:?} in namespace {ns:?}"
        )));
    }
    app.auth.remove(&ns, Some(&id));
    Ok(Json(json!({ "revoked": id })))
}

#[derive(Deserialize)]
pub(super) struct ConfigQuery {
    /// Show the values too.
    #[serde(default)]
    values: bool,
}

pub(super) async fn list_config(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    Query(q): Query<ConfigQuery>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "config": app.service.list_vars(&ns, q.values)? }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetVarBody {
    value: String,
    /// Modules that may read the variable (`*`: all of the namespace's).
    #[serde(default)]
    grants: Vec<String>,
}

pub(super) async fn set_config(
    State(app): State<AppState>,
    Path((ns, key)): Path<(String, String)>,
    req: Body,
) -> Result<Json<Value>, ApiError> {
    let b: SetVarBody = body::json(req, 128 << 10).await?;
    let check = || {
        use crate::service::bounds;
        bounds::count("grants", b.grants.len(), bounds::MAX_GRANTS)?;
        b.grants.iter().try_for_each(|g| bounds::id("grants[]", g))
    };
    check().map_err(ApiError::bad_request)?;
    let var = app.service.set_var(&ns, &key, b.value, b.grants).await?;
    Ok(Json(json!({ "variable": var })))
}

pub(super) async fn delete_config(
    State(app): State<AppState>,
    Path((ns, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    if !app.service.delete_var(&ns, &key).await? {
        return Err(ApiError::not_found(format!(
            "no variable {key:?} in namespace {ns:?}"
        )));
    }
    Ok(Json(json!({ "deleted": key })))
}
