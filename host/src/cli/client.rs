//! The HTTP client the CLI's server commands share: where the server is,
//! which namespace, and turning error answers into readable errors.

use anyhow::Context as _;
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
            http: reqwest::Client::builder().build()?,
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

    /// Sends a request and reads the JSON answer; an error answer becomes an
    /// error with the server's message.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req
            .send()
            .await
            .context("cannot reach the wharf server (is `wharf serve` running? see --server)")?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let msg = body["error"]["message"].as_str().unwrap_or("no message");
        anyhow::bail!("{msg} (HTTP {status})")
    }

    /// GET a namespace path.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(self.url(path))).await
    }

    /// POST JSON to a namespace path.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    /// PUT JSON to a namespace path.
    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    /// PATCH JSON to a namespace path.
    pub async fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.patch(self.url(path)).json(body)).await
    }

    /// DELETE a namespace path.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.delete(self.url(path))).await
    }

    /// POST raw bytes to a namespace path.
    pub async fn post_bytes(&self, path: &str, bytes: Vec<u8>) -> anyhow::Result<Value> {
        self.send(self.http.post(self.url(path)).body(bytes)).await
    }
}

/// Prints JSON or the text form.
pub fn print(json: bool, value: &Value, text: impl FnOnce(&Value)) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        text(value);
    }
}

/// Parses a `--input`-style JSON argument.
pub fn parse_json(s: &str, flag: &str) -> anyhow::Result<Value> {
    serde_json::from_str(s)
        .with_context(|| format!("{flag} {s:?} is not JSON (a string needs quotes: '\"Ada\"')"))
}
