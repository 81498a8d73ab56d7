//! The dashboard at `/ui`: server-rendered HTML over the same service calls
//! as the JSON API (no second data path), embedded in the binary, readable
//! without JavaScript (open activities refresh themselves every few
//! seconds; the actions' confirmations use a line of inline script).
//!
//! Who is looking: with an admin token configured, a login form takes a
//! token (admin or namespace) by POST and keeps it in an `HttpOnly`,
//! `SameSite=Strict` cookie scoped to `/ui`, so it never appears in a URL or
//! a log line; a namespace token sees its namespace only, anything else
//! answering 404 as the API does. In dev mode (no admin token) every
//! visitor is admin, as on the API. Every POST carries a form field derived
//! from the session's token and a per-process secret ([`csrf_of`]) and,
//! when the browser sends one, an `Origin` of this host: a page elsewhere
//! can neither read the field nor forge it.

mod pages;

use super::auth::Principal;
use super::AppState;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, HOST, LOCATION, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// The session cookie's name.
const COOKIE_NAME: &str = "wharf_ui_token";

/// The dashboard's routes, mounted at `/ui`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { see_other("/ui/activities") }))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/activities", get(activities))
        .route("/ui/namespaces/{ns}/activities/{id}", get(activity))
        .route("/ui/namespaces/{ns}/activities/{id}/{action}", post(act))
        .route("/ui/namespaces/{ns}/task-queues/{q}", get(queue))
        .route("/ui/task-queues", get(queues))
        .route("/ui/modules", get(modules))
        .route(
            "/ui/namespaces/{ns}/modules/{name}/{version}/deploy",
            post(deploy),
        )
        .route("/ui/namespaces", get(namespaces))
}

/// A per-process secret mixed into the CSRF field.
fn secret() -> &'static [u8; 32] {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    SECRET.get_or_init(|| {
        let mut b = [0u8; 32];
        crate::random::fill_secret(&mut b);
        b
    })
}

/// The CSRF field of a session: a hash of the process secret and its
/// token (empty in dev mode).
fn csrf_of(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(secret());
    h.update(token.as_bytes());
    hex::encode(h.finalize())
}

/// A visitor who may look.
pub(crate) struct Session {
    pub(crate) principal: Principal,
    pub(crate) csrf: String,
}

impl Session {
    /// Whether this visitor may see namespace `ns`.
    pub(crate) fn sees(&self, ns: &str) -> bool {
        match &self.principal {
            Principal::Admin => true,
            Principal::Tenant(own) => own == ns,
        }
    }

    /// The namespace shown when none is asked for.
    pub(crate) fn home(&self) -> &str {
        match &self.principal {
            Principal::Admin => "default",
            Principal::Tenant(own) => own,
        }
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='))
        .map(str::to_owned)
}

/// The visitor; `None` sends them to the login form.
/// The visitor of a page of namespace `ns`: else the answer to give (to
/// the login form, or 404 for a namespace they may not see).
fn viewer(app: &AppState, headers: &HeaderMap, ns: &str) -> Result<Session, Box<Response>> {
    let s = session(app, headers).ok_or_else(|| Box::new(see_other("/ui/login")))?;
    if s.sees(ns) {
        Ok(s)
    } else {
        Err(Box::new(not_found(ns)))
    }
}

/// As [`viewer`], for a form posted to a page of `ns`: also checks the
/// form's CSRF field and the request's origin.
fn poster(
    app: &AppState,
    headers: &HeaderMap,
    ns: &str,
    csrf: &str,
) -> Result<Session, Box<Response>> {
    let s = session(app, headers).ok_or_else(|| Box::new(see_other("/ui/login")))?;
    check_post(&s, headers, csrf).map_err(|why| Box::new(forbidden(why)))?;
    if s.sees(ns) {
        Ok(s)
    } else {
        Err(Box::new(not_found(ns)))
    }
}

fn session(app: &AppState, headers: &HeaderMap) -> Option<Session> {
    if !app.auth.enabled() {
        return Some(Session {
            principal: Principal::Admin,
            csrf: csrf_of(""),
        });
    }
    let token = cookie_token(headers)?;
    let principal = app.auth.principal_of_token(&token)?;
    Some(Session {
        principal,
        csrf: csrf_of(&token),
    })
}

/// Refuses a POST that does not carry the session's CSRF field, or whose
/// `Origin` is another host.
fn check_post(s: &Session, headers: &HeaderMap, csrf: &str) -> Result<(), &'static str> {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let same = origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority == host);
        if !same {
            return Err("the form was sent from another site");
        }
    }
    if csrf != s.csrf {
        return Err("the form's session check does not match; reload the page");
    }
    Ok(())
}

fn forbidden(why: &str) -> Response {
    html(StatusCode::FORBIDDEN, pages::message("Refused", why))
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_owned())]).into_response()
}

/// An HTML answer, never cached (it may show a tenant's data).
fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn login_form() -> Response {
    html(StatusCode::OK, pages::login(None))
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(app): State<AppState>, Form(f): Form<LoginForm>) -> Response {
    let token = f.token.trim();
    if !app.auth.enabled() {
        return see_other("/ui/activities");
    }
    if app.auth.principal_of_token(token).is_none() {
        return html(
            StatusCode::UNAUTHORIZED,
            pages::login(Some("invalid or revoked token")),
        );
    }
    // A token is hex or base64url: nothing a cookie value cannot hold.
    if !token
        .chars()
        .all(|c| c.is_ascii_graphic() && !matches!(c, ';' | ',' | '"' | '\\'))
    {
        return html(
            StatusCode::UNAUTHORIZED,
            pages::login(Some("invalid or revoked token")),
        );
    }
    let cookie = format!("{COOKIE_NAME}={token}; HttpOnly; SameSite=Strict; Path=/ui");
    let mut r = see_other("/ui/activities");
    if let Ok(v) = cookie.parse() {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: Option<String>,
    /// The task queue to deploy a module version to.
    #[serde(default)]
    queue: Option<String>,
}

async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let Some(s) = session(&app, &headers) else {
        return see_other("/ui/login");
    };
    if let Err(why) = check_post(&s, &headers, &f.csrf) {
        return forbidden(why);
    }
    let mut r = see_other("/ui/login");
    let gone = format!("{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=0");
    if let Ok(v) = gone.parse() {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r
}

/// Filters of the activities page.
#[derive(Deserialize, Default)]
pub(crate) struct ListFilter {
    pub(crate) ns: Option<String>,
    pub(crate) state: Option<String>,
    #[serde(rename = "type")]
    pub(crate) activity_type: Option<String>,
    pub(crate) task_queue: Option<String>,
    pub(crate) id_prefix: Option<String>,
    /// Scheduled within this much of now (`5m`, `1h`, `24h`, `7d`).
    pub(crate) since: Option<String>,
    pub(crate) limit: Option<u32>,
}

/// The time ranges the activities page offers, by their `since` value.
pub(crate) const SINCE: [(&str, &str, u64); 4] = [
    ("5m", "last 5 minutes", 5 * 60_000),
    ("1h", "last hour", 3_600_000),
    ("24h", "last 24 hours", 86_400_000),
    ("7d", "last 7 days", 7 * 86_400_000),
];

async fn activities(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(f): Query<ListFilter>,
) -> Response {
    let Some(s) = session(&app, &headers) else {
        return see_other("/ui/login");
    };
    let ns =
        f.ns.clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| s.home().to_owned());
    if !s.sees(&ns) {
        return not_found(&ns);
    }
    let nonempty = |o: &Option<String>| o.clone().filter(|v| !v.is_empty());
    let state = nonempty(&f.state);
    let retrying = state.as_deref() == Some(super::activities::RETRYING);
    let filter = crate::store::activities::ActivityFilter {
        state: state.filter(|_| !retrying),
        retrying,
        activity_type: nonempty(&f.activity_type),
        task_queue: nonempty(&f.task_queue),
        id_prefix: nonempty(&f.id_prefix),
        scheduled_after_ms: SINCE
            .iter()
            .find(|(v, _, _)| f.since.as_deref() == Some(*v))
            .map(|(_, _, ms)| app.service.now_ms().saturating_sub(*ms)),
        scheduled_before_ms: None,
        limit: f.limit.unwrap_or(50).clamp(1, 500),
    };
    shown(app.service.list(&ns, &filter), |page| {
        pages::activities(&s, &ns, &f, &page)
    })
}

async fn activity(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((ns, id)): Path<(String, String)>,
) -> Response {
    let s = match viewer(&app, &headers, &ns) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    shown(app.service.describe(&ns, &id), |a| pages::activity(&s, &a))
}

async fn act(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((ns, id, action)): Path<(String, String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(answer) = poster(&app, &headers, &ns, &f.csrf) {
        return *answer;
    }
    let done = match action.as_str() {
        "cancel" => app.service.cancel(&ns, &id).await,
        "run-now" => app.service.run_now(&ns, &id).await,
        "fail" => {
            let reason = f.reason.unwrap_or_default();
            app.service.fail_by_hand(&ns, &id, reason, None).await
        }
        _ => {
            return html(
                StatusCode::NOT_FOUND,
                pages::message("Not found", "no such action"),
            )
        }
    };
    match done {
        Ok(_) => see_other(&pages::activity_href(&ns, &id)),
        Err(e) => error_page(e),
    }
}

async fn queue(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((ns, q)): Path<(String, String)>,
) -> Response {
    let s = match viewer(&app, &headers, &ns) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    shown(app.service.describe_queue(&ns, &q), |v| {
        pages::queue(&s, &v)
    })
}

/// `?ns=` of the pages of one namespace.
#[derive(Deserialize)]
struct NamespaceQuery {
    ns: Option<String>,
}

/// The namespace a page is about (the visitor's own when not given), if
/// the visitor may see it; else `Err` with the one asked for.
fn namespace_of(s: &Session, q: NamespaceQuery) -> Result<String, String> {
    let ns =
        q.ns.filter(|n| !n.is_empty())
            .unwrap_or_else(|| s.home().to_owned());
    if s.sees(&ns) {
        Ok(ns)
    } else {
        Err(ns)
    }
}

async fn queues(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NamespaceQuery>,
) -> Response {
    let Some(s) = session(&app, &headers) else {
        return see_other("/ui/login");
    };
    let ns = match namespace_of(&s, q) {
        Ok(ns) => ns,
        Err(ns) => return not_found(&ns),
    };
    let list: Vec<_> = app
        .service
        .queue_backlogs()
        .into_iter()
        .filter(|(n, ..)| *n == ns)
        .collect();
    html(StatusCode::OK, pages::queues(&s, &ns, &list))
}

async fn modules(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NamespaceQuery>,
) -> Response {
    let Some(s) = session(&app, &headers) else {
        return see_other("/ui/login");
    };
    let ns = match namespace_of(&s, q) {
        Ok(ns) => ns,
        Err(ns) => return not_found(&ns),
    };
    let listed = app
        .service
        .list_modules(&ns)
        .and_then(|m| Ok((m, app.service.list_deployments(&ns)?)));
    shown(listed, |(list, deployed)| {
        let loads: Vec<_> = list
            .iter()
            .map(|m| app.service.module_load(&m.sha256))
            .collect();
        pages::modules(&s, &ns, &list, &loads, &deployed)
    })
}

/// Deploys a module version to a task queue (an earlier version: a
/// rollback), then shows the queue.
async fn deploy(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((ns, name, version)): Path<(String, String, u32)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(answer) = poster(&app, &headers, &ns, &f.csrf) {
        return *answer;
    }
    let queue = f.queue.unwrap_or_default();
    let req = crate::service::DeployRequest {
        module: name,
        version: Some(version),
        max_concurrent: None,
        ramp_percent: None,
    };
    match app.service.deploy(&ns, &queue, req).await {
        Ok(_) => see_other(&format!(
            "/ui/namespaces/{}/task-queues/{}",
            pages::enc(&ns),
            pages::enc(&queue)
        )),
        Err(e) => error_page(e),
    }
}

async fn namespaces(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = session(&app, &headers) else {
        return see_other("/ui/login");
    };
    let list: Vec<_> = app
        .service
        .list_namespaces()
        .into_iter()
        .filter(|n| s.sees(&n.name))
        .collect();
    html(StatusCode::OK, pages::namespaces(&s, &list))
}

fn not_found(ns: &str) -> Response {
    html(
        StatusCode::NOT_FOUND,
        pages::message("Not found", &format!("namespace {ns:?} not found")),
    )
}

/// The page `render` makes of what the service answered, or its error.
fn shown<T>(
    answer: Result<T, crate::service::ServiceError>,
    render: impl FnOnce(T) -> String,
) -> Response {
    match answer {
        Ok(v) => html(StatusCode::OK, render(v)),
        Err(e) => error_page(e),
    }
}

/// A service error as a page with the status the API would answer.
fn error_page(e: crate::service::ServiceError) -> Response {
    let api = super::ApiError::from(e);
    html(api.status(), pages::message("Refused", api.message()))
}
