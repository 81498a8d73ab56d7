//! Activities that reach for capabilities a tenant is not granted by default:
//! files, environment, sockets, outbound HTTP, configuration variables. Each
//! reports whether it was denied instead of failing, so tests can assert on
//! the outcome.

use serde::Deserialize;
use serde_json::{json, Value};
use wasi::http::outgoing_handler;
use wasi::http::types::{
    http_error_code, Fields, IncomingBody, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    Scheme,
};
use wasi::io::streams::StreamError;
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

#[derive(Deserialize)]
pub struct WriteFile {
    #[serde(default = "default_write_path")]
    path: String,
}

fn default_write_path() -> String {
    "/tmp/wharf-adversary-was-here".to_owned()
}

/// `write-file`, optional arg `{"path": string = "/tmp/wharf-adversary-was-here"}`:
/// creates the file with a few bytes; `{"denied": false}` or
/// `{"denied": true, "error": ...}`.
pub fn write_file(args: Option<WriteFile>) -> Result<Value, ActivityError> {
    let path = args.map_or_else(default_write_path, |a| a.path);
    Ok(match std::fs::write(&path, b"adversary") {
        Ok(()) => json!({ "denied": false }),
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
    #[serde(default)]
    follow: u32,
    #[serde(default)]
    post_bytes: Option<u64>,
}

/// `http-get`, arg `{"url": "http(s)://host[:port]/path", "follow": u32 = 0,
/// "post_bytes": u64 | null}`: GETs (or, with `post_bytes`, first POSTs that
/// many bytes) through `wasi:http/outgoing-handler` and reads the body, following
/// up to `follow` redirects itself (each hop a new `handle` call, as a
/// guest's HTTP client does). Returns the last hop:
/// `{"denied": false, "status": u16, "body_bytes": n, "url": ..., "hops": [...]}`
/// with `"body_error": "<ErrorCode as Debug>"` if the body stopped early, or
/// `{"denied": true, "error": "<ErrorCode as Debug>", "url": ..., "hops": [...]}`
/// when the host refused or the request failed. `hops` lists every request
/// as `{"url", "status"}` or `{"url", "error"}`.
pub fn http_get(args: HttpGet) -> Result<Value, ActivityError> {
    let mut url = args.url;
    let mut hops = Vec::new();
    let mut post = args.post_bytes;
    loop {
        // Only the first request posts; a redirect is followed with a GET.
        let mut result = get_once(&url, post.take())?;
        let hop = match result.get("status") {
            Some(status) => json!({ "url": url, "status": status }),
            None => json!({ "url": url, "error": result["error"] }),
        };
        hops.push(hop);
        let location = result
            .get_mut("location")
            .map(Value::take)
            .and_then(|l| l.as_str().map(str::to_owned));
        if let Some(obj) = result.as_object_mut() {
            obj.remove("location");
        }
        match location {
            Some(next) if hops.len() <= args.follow as usize => url = resolve(&url, &next),
            _ => {
                result["url"] = json!(url);
                result["hops"] = json!(hops);
                return Ok(result);
            }
        }
    }
}

/// One GET of `url` (a POST of `post` bytes if given), its response body
/// read to the end (or to its error).
fn get_once(url: &str, post: Option<u64>) -> Result<Value, ActivityError> {
    let (scheme, authority, path) = split_url(url).ok_or_else(|| {
        ActivityError::non_retryable(format!("not an http(s) URL: {url:?}"))
            .with_type("InvalidArgument")
    })?;
    let invalid = |what: &str| {
        ActivityError::non_retryable(format!("invalid {what} in {url:?}"))
            .with_type("InvalidArgument")
    };
    let request = OutgoingRequest::new(Fields::new());
    let method = if post.is_some() {
        Method::Post
    } else {
        Method::Get
    };
    request
        .set_method(&method)
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
    if let Some(n) = post {
        let stream = body.write().map_err(|()| invalid("body"))?;
        let chunk = [b'p'; 4096];
        let mut left = n;
        while left > 0 {
            let len = left.min(chunk.len() as u64) as usize;
            // A refused body ends the writes; the response says why.
            if stream.blocking_write_and_flush(&chunk[..len]).is_err() {
                break;
            }
            left -= len as u64;
        }
    }
    if let Err(e) = OutgoingBody::finish(body, None) {
        return Ok(denied(e));
    }
    let ready = response.subscribe();
    ready.block();
    let incoming = match response.get() {
        Some(Ok(Ok(incoming))) => incoming,
        Some(Ok(Err(code))) => return Ok(denied(code)),
        Some(Err(())) | None => return Ok(json!({ "denied": true, "error": "no response" })),
    };
    let status = incoming.status();
    let mut out = json!({ "denied": false, "status": status });
    if (300..400).contains(&status) {
        if let Some(l) = incoming.headers().get("location").first() {
            out["location"] = json!(String::from_utf8_lossy(l));
        }
    }
    let (bytes, error) = read_body(&incoming);
    out["body_bytes"] = json!(bytes);
    if let Some(e) = error {
        out["body_error"] = json!(e);
    }
    Ok(out)
}

/// Reads a response body to its end: bytes read and the error that
/// stopped it early, if any.
fn read_body(incoming: &IncomingResponse) -> (u64, Option<String>) {
    let Ok(body) = incoming.consume() else {
        return (0, Some("body already consumed".into()));
    };
    let Ok(stream) = body.stream() else {
        return (0, Some("no body stream".into()));
    };
    let mut bytes = 0u64;
    let error = loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => bytes += chunk.len() as u64,
            Err(StreamError::Closed) => break None,
            Err(StreamError::LastOperationFailed(e)) => {
                break Some(match http_error_code(&e) {
                    Some(code) => format!("{code:?}"),
                    None => e.to_debug_string(),
                })
            }
        }
    };
    drop(stream);
    IncomingBody::finish(body);
    (bytes, error)
}

/// Where a redirect's `Location` points, relative to `base`.
fn resolve(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_owned();
    }
    let Some((scheme, rest)) = base.split_once("://") else {
        return location.to_owned();
    };
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    if let Some(path) = location.strip_prefix('/') {
        format!("{scheme}://{authority}/{path}")
    } else {
        format!("{scheme}://{authority}/{location}")
    }
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

#[derive(Deserialize)]
pub struct ConfigGet {
    key: String,
}

/// `config-get`, arg `{"key": string}`: reads a configuration variable;
/// `{"denied": false, "value": string | null, "granted": [keys]}` or
/// `{"denied": true, "error": ...}` when it is not granted to this module.
pub fn config_get(args: ConfigGet) -> Result<Value, ActivityError> {
    Ok(match wharf_guest::config::get(&args.key) {
        Ok(value) => json!({
            "denied": false,
            "value": value,
            "granted": wharf_guest::config::granted_keys(),
        }),
        Err(e) => json!({ "denied": true, "error": e.to_string() }),
    })
}
