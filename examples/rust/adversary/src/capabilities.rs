//! Activities that reach for capabilities a tenant is not granted by default:
//! files, environment, sockets, outbound HTTP. Each reports whether it was
//! denied instead of failing, so tests can assert on the outcome.

use serde::Deserialize;
use serde_json::{json, Value};
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wharf_guest::ActivityError;

#[derive(Deserialize)]
pub struct ReadFile {
    #[serde(default = "default_path")]
    path: String,
}

fn default_path() -> String {
    "/etc/passwd".to_owned()
}

/// `read-file`, optional arg `{"path": string = "/etc/passwd"}`:
/// `{"denied": false, "bytes": n}` or `{"denied": true, "error": ...}`.
pub fn read_file(args: Option<ReadFile>) -> Result<Value, ActivityError> {
    let path = args.map_or_else(default_path, |a| a.path);
    Ok(match std::fs::read_to_string(&path) {
        Ok(text) => json!({ "denied": false, "bytes": text.len() }),
        Err(e) => json!({ "denied": true, "error": e.to_string() }),
    })
}

/// `read-env`: `{"vars": [names of environment variables], "args": [args]}`.
pub fn read_env() -> Result<Value, ActivityError> {
    let vars: Vec<String> = std::env::vars_os()
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .collect();
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    Ok(json!({ "vars": vars, "args": args }))
}

#[derive(Deserialize)]
pub struct Connect {
    addr: String,
}

/// `connect`, arg `{"addr": "127.0.0.1:PORT"}`: opens a TCP connection;
/// `{"denied": false}` or `{"denied": true, "error": ...}`.
pub fn connect(args: Connect) -> Result<Value, ActivityError> {
    Ok(match std::net::TcpStream::connect(&args.addr) {
        Ok(_) => json!({ "denied": false }),
        Err(e) => json!({ "denied": true, "error": e.to_string() }),
    })
}

#[derive(Deserialize)]
pub struct HttpGet {
    url: String,
}

/// `http-get`, arg `{"url": "http(s)://host[:port]/path"}`: one GET through
/// `wasi:http/outgoing-handler`; `{"denied": false, "status": u16}`, or
/// `{"denied": true, "error": "<ErrorCode as Debug>"}` when the host refuses
/// or the request fails.
pub fn http_get(args: HttpGet) -> Result<Value, ActivityError> {
    let (scheme, authority, path) = split_url(&args.url).ok_or_else(|| {
        ActivityError::non_retryable(format!("not an http(s) URL: {:?}", args.url))
            .with_type("InvalidArgument")
    })?;
    let invalid = |what: &str| {
        ActivityError::non_retryable(format!("invalid {what} in {:?}", args.url))
            .with_type("InvalidArgument")
    };
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_method(&Method::Get)
        .map_err(|()| invalid("method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| invalid("authority"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| invalid("path"))?;
    let body = request.body().map_err(|()| invalid("body"))?;

    let response = match outgoing_handler::handle(request, None) {
        Ok(response) => response,
        Err(code) => return Ok(denied(code)),
    };
    if let Err(e) = OutgoingBody::finish(body, None) {
        return Ok(denied(e));
    }
    let ready = response.subscribe();
    ready.block();
    Ok(match response.get() {
        Some(Ok(Ok(incoming))) => json!({ "denied": false, "status": incoming.status() }),
        Some(Ok(Err(code))) => denied(code),
        Some(Err(())) | None => json!({ "denied": true, "error": "no response" }),
    })
}

fn denied(error: impl std::fmt::Debug) -> Value {
    json!({ "denied": true, "error": format!("{error:?}") })
}

/// Splits `scheme://authority/path?query` into its parts (path defaults to `/`).
fn split_url(url: &str) -> Option<(Scheme, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return None,
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], &rest[i..]),
        Some(_) => return None,
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return None;
    }
    Some((scheme, authority, path))
}
