//! The HTTP client the CLI's server commands share: where the server is,
//! which namespace, and turning error answers into readable errors.
//!
//! Requests and answers are the API's own types (`api/types.rs`), the ones
//! the handlers serialise, so the CLI and the server cannot drift apart
//! unnoticed: an answer the CLI does not understand is an error that says
//! so, not an empty column.

use crate::api::types::ErrorResponse;
use anyhow::Context as _;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Options every client command takes.
#[derive(clap::Args, Clone)]
pub struct ClientArgs {
    /// The wharf server.
    #[arg(
        long,
        env = "WHARF_SERVER",
        default_value = "http://127.0.0.1:7070",
        global = true
    )]
    pub server: String,
    /// Namespace to act in.
    #[arg(
        long,
        env = "WHARF_NAMESPACE",
        default_value = "default",
        global = true
    )]
    pub namespace: String,
    /// Bearer token.
    #[arg(long, env = "WHARF_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A connection to one namespace of a server.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client for `args`' server and namespace.
    pub fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        Ok(Self {
            http: crate::api::listen::client().build()?,
            // An empty namespace addresses the namespace administration.
            base: format!(
                "{}/api/v1/namespaces{}{}",
                args.server.trim_end_matches('/'),
                if args.namespace.is_empty() { "" } else { "/" },
                urlencoding::encode(&args.namespace)
            ),
            token: args.token.clone(),
        })
    }

    /// `path` relative to the namespace, e.g. `activities`.
    pub fn url(&self, path: &str) -> String {
        if path.is_empty() {
            self.base.clone()
        } else {
            format!("{}/{path}", self.base)
        }
    }

    /// Sends a request and reads the answer as `T`, one of the API's own
    /// types; an error answer becomes an error with the server's message.
    pub async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> anyhow::Result<Reply<T>> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req
            .send()
            .await
            .context("cannot reach the wharf server (is `wharf serve` running? see --server)")?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .context("the connection to the wharf server broke")?;
        if !status.is_success() {
            let msg = serde_json::from_slice::<ErrorResponse>(&bytes)
                .map_or_else(|_| "no message".to_owned(), |e| e.error.message);
            anyhow::bail!("{msg} (HTTP {status})")
        }
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let body = T::deserialize(&json).with_context(|| {
            format!(
                "the server's answer is not what this wharf expects ({}); \
                 are the server and the CLI the same version?",
                std::any::type_name::<T>().rsplit("::").next().unwrap_or("")
            )
        })?;
        Ok(Reply { body, json })
    }

    /// GET a namespace path.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<Reply<T>> {
        self.send(self.http.get(self.url(path))).await
    }

    /// POST JSON to a namespace path.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<Reply<T>> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    /// PUT JSON to a namespace path.
    pub async fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<Reply<T>> {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    /// PATCH JSON to a namespace path.
    pub async fn patch<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<Reply<T>> {
        self.send(self.http.patch(self.url(path)).json(body)).await
    }

    /// DELETE a namespace path.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<Reply<T>> {
        self.send(self.http.delete(self.url(path))).await
    }

    /// POST raw bytes to a namespace path.
    pub async fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<Reply<T>> {
        self.send(self.http.post(self.url(path)).body(bytes)).await
    }
}

/// An answer of the server: its body as the API's type, and the JSON as it
/// came, which `--json` prints unchanged (a newer server's extra fields
/// included).
pub struct Reply<T> {
    /// The body.
    pub body: T,
    json: Value,
}

impl<T> Reply<T> {
    /// Prints the JSON as it came (`--json`) or the text form of the body.
    pub fn print(&self, json: bool, text: impl FnOnce(&T)) {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&self.json).unwrap_or_default()
            );
        } else {
            text(&self.body);
        }
    }
}

/// A value of an answer as the text forms print it: written as the server
/// writes it and read back, so objects list their keys as a parsed answer
/// does and numbers keep their short form (an `f32` weight of 0.1 is `0.1`).
pub fn json_text(v: &impl Serialize) -> String {
    serde_json::to_string(v)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .unwrap_or_default()
        .to_string()
}

/// Parses a `--input`-style JSON argument: the JSON itself, or `@FILE` to
/// read it from a file (`@-`: standard input), for values longer than a
/// command line holds (Linux takes at most 128 KiB in one argument). No JSON
/// text begins with `@`, so the two never mix up.
pub fn parse_json(s: &str, flag: &str) -> anyhow::Result<Value> {
    let Some(path) = s.strip_prefix('@') else {
        return serde_json::from_str(s).with_context(|| {
            format!("{flag} {s:?} is not JSON (a string needs quotes: '\"Ada\"')")
        });
    };
    let (text, what) = if path == "-" {
        let text = read_bounded(std::io::stdin())
            .with_context(|| format!("{flag} @-: cannot read standard input"))?;
        (text, "standard input")
    } else {
        let file = std::fs::File::open(path)
            .with_context(|| format!("{flag} @{path}: cannot read {path}"))?;
        let text =
            read_bounded(file).with_context(|| format!("{flag} @{path}: cannot read {path}"))?;
        (text, "the file")
    };
    serde_json::from_str(&text).with_context(|| format!("{flag} @{path}: {what} is not JSON"))
}

/// Reads all of `from` as text, refusing more than any payload may be
/// (a flag pointed at `/dev/zero` would otherwise read until memory ran out).
fn read_bounded(from: impl std::io::Read) -> anyhow::Result<String> {
    use std::io::Read;
    let limit = super::args::MAX_PAYLOAD_LIMIT;
    let mut text = String::new();
    from.take(limit as u64 + 1).read_to_string(&mut text)?;
    anyhow::ensure!(
        text.len() <= limit,
        "it holds more than {} MiB, more than any payload may be",
        limit >> 20
    );
    Ok(text)
}
