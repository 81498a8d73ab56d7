//! Driving a real `wharf serve` from outside, as the benchmarks and the
//! integration tests do: start it on a free port, upload and deploy a
//! module, start activities, read `/metrics`, and sum up samples as
//! percentiles.

use serde_json::{json, Value};
use std::ffi::OsStr;
use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What went wrong while driving a server.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The process could not be started or its output read.
    #[error("cannot start wharf serve: {0}")]
    Spawn(#[from] std::io::Error),
    /// The first line the server printed holds no address.
    #[error("wharf serve printed no address; its first line was {0:?}")]
    Startup(String),
    /// A request could not be sent or its answer read.
    #[error("request to the server failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The server refused a request.
    #[error("{what} failed ({status}): {body}")]
    Refused {
        /// The request.
        what: String,
        /// HTTP status.
        status: u16,
        /// Body of the answer.
        body: String,
    },
    /// A request could not be made (its URL or body).
    #[error("cannot make the request: {0}")]
    Request(String),
    /// `/metrics` lacks a figure that every server reports.
    #[error("no {0} in /metrics")]
    Metric(&'static str),
    /// The server did not get there in time.
    #[error("{0}")]
    Timeout(String),
}

/// Runs `program serve --listen 127.0.0.1:0 --data-dir DATA_DIR ARGS...`
/// (`program` is the `wharf` binary, with whatever environment and stderr
/// the caller set) and waits for the startup line that names the address.
/// Returns the process and its base URL (`http://127.0.0.1:PORT`); a
/// process that printed no address is killed.
pub fn spawn_serve(
    mut program: Command,
    data_dir: &Path,
    args: impl IntoIterator<Item = impl AsRef<OsStr>>,
) -> Result<(Child, String), HarnessError> {
    let mut child = program
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    let read = match child.stdout.take() {
        Some(out) => std::io::BufReader::new(out).read_line(&mut line),
        None => Ok(0),
    };
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next());
    match (read, addr) {
        (Ok(_), Some(addr)) => Ok((child, format!("http://{addr}"))),
        (read, _) => {
            let _ = child.kill();
            let _ = child.wait();
            read?;
            Err(HarnessError::Startup(line))
        }
    }
}

/// A `wharf serve` child process (see [`spawn_serve`]); killed when
/// dropped.
pub struct ServeProcess {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl ServeProcess {
    /// Starts the server as [`spawn_serve`] does.
    pub fn start(
        program: Command,
        data_dir: &Path,
        args: impl IntoIterator<Item = impl AsRef<OsStr>>,
    ) -> Result<Self, HarnessError> {
        let (child, base) = spawn_serve(program, data_dir, args)?;
        Ok(Self { child, base })
    }

    /// Requests to namespace `ns` through `http`, with `token` if the
    /// server needs one.
    pub fn namespace(&self, http: &reqwest::Client, ns: &str, token: Option<&str>) -> Namespace {
        let url = format!("{}/api/v1/namespaces/{ns}", self.base);
        Namespace::new(http.clone(), &url, token)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Adds the bearer token, if the server needs one.
fn auth(r: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(t) => r.bearer_auth(t),
        None => r,
    }
}

/// Sends `r`; its JSON body (`null` if none), or [`HarnessError::Refused`]
/// unless the status is a success.
pub async fn expect_success(r: reqwest::RequestBuilder, what: &str) -> Result<Value, HarnessError> {
    let body = answer(r, what).await?;
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Sends `r`; the answer's body, read to its end (which keeps the
/// connection for the next request), or [`HarnessError::Refused`] unless
/// the status is a success.
async fn answer(r: reqwest::RequestBuilder, what: &str) -> Result<bytes::Bytes, HarnessError> {
    let resp = r.send().await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    successful(what, status.as_u16(), body)
}

/// `body`, or [`HarnessError::Refused`] unless `status` is a success.
pub(super) fn successful(
    what: &str,
    status: u16,
    body: bytes::Bytes,
) -> Result<bytes::Bytes, HarnessError> {
    if !(200..300).contains(&status) {
        return Err(HarnessError::Refused {
            what: what.to_owned(),
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    Ok(body)
}

/// The answer to a batch of starts: refused unless every start was
/// created or existed.
pub(super) fn all_started(answer: &[u8]) -> Result<(), HarnessError> {
    let answer: Value = serde_json::from_slice(answer).unwrap_or(Value::Null);
    if answer["failed"] != json!(0) {
        return Err(HarnessError::Refused {
            what: "batch start".into(),
            status: 200,
            body: answer.to_string(),
        });
    }
    Ok(())
}

/// A request made once, sent many times ([`Namespace::prepare`]).
#[derive(Clone, Debug)]
pub struct Prepared {
    url: reqwest::Url,
    body: bytes::Bytes,
}

impl Prepared {
    /// Where it goes.
    pub(super) fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// Its JSON body.
    pub(super) fn body(&self) -> &bytes::Bytes {
        &self.body
    }
}

/// Requests to one namespace of a server, with its token if the server
/// needs one. Cheap to clone.
#[derive(Clone)]
pub struct Namespace {
    http: reqwest::Client,
    url: Arc<str>,
    token: Option<Arc<str>>,
}

impl Namespace {
    /// The namespace at `url` (`.../api/v1/namespaces/NS`).
    pub fn new(http: reqwest::Client, url: &str, token: Option<&str>) -> Self {
        Self {
            http,
            url: url.into(),
            token: token.map(Arc::from),
        }
    }

    /// A POST of `body` to `path` under the namespace, made once to be sent
    /// many times: the load of the benchmarks, whose client shares the
    /// machine with the server and should take as little of it as it can.
    pub fn prepare(&self, path: &str, body: &Value) -> Result<Prepared, HarnessError> {
        let url = format!("{}/{path}", self.url);
        Ok(Prepared {
            url: reqwest::Url::parse(&url)
                .map_err(|e| HarnessError::Request(format!("{url}: {e}")))?,
            body: serde_json::to_vec(body)
                .map_err(|e| HarnessError::Request(e.to_string()))?
                .into(),
        })
    }

    /// Sends a prepared POST; as [`answer`].
    pub async fn send(&self, p: &Prepared, what: &str) -> Result<bytes::Bytes, HarnessError> {
        let r = self
            .http
            .post(p.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(p.body.clone());
        answer(auth(r, self.token.as_deref()), what).await
    }

    /// The bearer token sent with each request, if any.
    pub(super) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A request to `path` under the namespace (`""`: the namespace).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = match path {
            "" => self.url.to_string(),
            _ => format!("{}/{path}", self.url),
        };
        auth(self.http.request(method, url), self.token.as_deref())
    }

    /// Uploads `wasm` as module `module`; the answer's body.
    pub async fn upload(&self, wasm: &[u8], module: &str) -> Result<Value, HarnessError> {
        let r = self.request(reqwest::Method::POST, &format!("modules?name={module}"));
        expect_success(r.body(wasm.to_vec()), "upload").await
    }

    /// Deploys the latest version of `module` to `queue` with `slots`
    /// worker slots.
    pub async fn deploy(&self, module: &str, queue: &str, slots: u32) -> Result<(), HarnessError> {
        let path = format!("task-queues/{queue}/deployment");
        let r = self.request(reqwest::Method::PUT, &path);
        let body = json!({"module": module, "max_concurrent": slots});
        expect_success(r.json(&body), "deploy").await.map(drop)
    }

    /// [`Self::upload`], then [`Self::deploy`].
    pub async fn upload_and_deploy(
        &self,
        wasm: &[u8],
        module: &str,
        queue: &str,
        slots: u32,
    ) -> Result<(), HarnessError> {
        self.upload(wasm, module).await?;
        self.deploy(module, queue, slots).await
    }

    /// Starts an activity.
    pub async fn start(&self, body: &Value) -> Result<(), HarnessError> {
        self.send_start(&self.prepare("activities", body)?).await
    }

    /// A start prepared with [`Self::prepare`] (`activities`).
    pub async fn send_start(&self, start: &Prepared) -> Result<(), HarnessError> {
        self.send(start, "start").await.map(drop)
    }
}

/// The server's `/metrics` text.
pub async fn scrape(
    http: &reqwest::Client,
    base: &str,
    token: Option<&str>,
) -> Result<String, HarnessError> {
    Ok(auth(http.get(format!("{base}/metrics")), token)
        .send()
        .await?
        .text()
        .await?)
}

/// Activities completed on the whole server so far.
pub async fn completed(
    http: &reqwest::Client,
    base: &str,
    token: Option<&str>,
) -> Result<u64, HarnessError> {
    scrape(http, base, token)
        .await?
        .lines()
        .find_map(|l| l.strip_prefix("wharf_activities_completed_total "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or(HarnessError::Metric("wharf_activities_completed_total"))
}

/// Waits until the server has completed `n` activities in all (at most
/// ten minutes), polling every `every`.
pub async fn wait_completed(
    http: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    n: u64,
    every: Duration,
) -> Result<(), HarnessError> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = completed(http, base, token).await?;
        if done >= n {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(HarnessError::Timeout(format!(
                "only {done} of {n} activities completed"
            )));
        }
        tokio::time::sleep(every).await;
    }
}

/// Resident memory of a process (`VmRSS`) in bytes, from /proc (Linux).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmRSS:")
}

/// The most resident memory a process has had (`VmHWM`) in bytes, from
/// /proc (Linux).
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmHWM:")
}

/// A memory figure of `/proc/{pid}/status` (given in KiB there), in bytes.
fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib.saturating_mul(1024))
}

/// User + system CPU time of a process so far, from /proc (Linux).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(parse_stat(&stat)?.1)
}

/// The command name and user + system CPU seconds of a `/proc/.../stat`.
fn parse_stat(stat: &str) -> Option<(&str, f64)> {
    // The command name is in parentheses and may hold spaces or ')'.
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let f: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some((stat.get(open + 1..close)?, ticks / 100.0))
}

/// CPU time (user + system, seconds) of a process's live threads, summed
/// by thread name, from /proc (Linux). A thread that has exited is in
/// [`cpu_seconds`] but not here.
pub fn cpu_seconds_by_thread(pid: u32) -> std::collections::BTreeMap<String, f64> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        if let Some((name, seconds)) = parse_stat(&stat) {
            *by_name.entry(name.to_owned()).or_insert(0.0) += seconds;
        }
    }
    by_name
}

/// The `percent`th percentile of sorted samples, by nearest rank (the
/// smallest sample with at least `percent`% of them at or below it);
/// `None` for no samples.
pub fn percentile<T: Copy>(sorted: &[T], percent: u32) -> Option<T> {
    let rank = (sorted.len() * percent.min(100) as usize).div_ceil(100);
    sorted.get(rank.max(1) - 1).copied()
}

/// Reads cumulative bucket counts of histogram `name` from Prometheus text:
/// `(upper bound in seconds, count)`, +Inf as infinity.
pub fn parse_buckets(text: &str, name: &str) -> Vec<(f64, u64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// The bucket bound under which a fraction `q` of the observations fall,
/// from cumulative counts (`after - before` when two scrapes are given).
pub fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let want = (total as f64 * q).ceil() as u64;
    buckets.iter().find(|(_, c)| *c >= want).map(|(le, _)| *le)
}

/// Quantile `q` of histogram `name` over the observations made between two
/// scrapes of `/metrics`.
pub fn quantile_between(before: &str, after: &str, name: &str, q: f64) -> Option<f64> {
    let b = parse_buckets(before, name);
    let a = parse_buckets(after, name);
    let diff: Vec<(f64, u64)> = a
        .iter()
        .zip(b.iter().chain(std::iter::repeat(&(0.0, 0))))
        .map(|((le, x), (_, y))| (*le, x.saturating_sub(*y)))
        .collect();
    quantile(&diff, q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{encode, ActivityMetrics};
    use prometheus_client::registry::Registry;

    #[test]
    fn a_stat_line_gives_its_thread_name_and_cpu_seconds() {
        let line = "4242 (tokio) rt 1) S 1 4242 4242 0 -1 4194368 100 0 0 0 250 75 0 0 20 0";
        assert_eq!(parse_stat(line), Some(("tokio) rt 1", 3.25)));
        assert_eq!(parse_stat("4242 (cut) S 1 2"), None);
        let own = cpu_seconds_by_thread(std::process::id());
        assert!(!own.is_empty(), "this test's own threads are listed");
    }

    #[test]
    fn histograms_encode_and_read_back() {
        let m = ActivityMetrics::default();
        let f = m.figures("ns", "q", "t");
        for us in [40, 90, 90, 400, 4000] {
            m.task_taken(&f, us as f64 / 1e6);
        }
        let mut r = Registry::default();
        m.register(&mut r);
        let b = parse_buckets(&encode(&r), "wharf_schedule_to_start_seconds");
        assert_eq!(b[0], (0.00005, 1));
        assert_eq!(quantile(&b, 0.5), Some(0.0001));
        assert_eq!(quantile(&b, 0.99), Some(0.005));
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=200).collect();
        assert_eq!(percentile(&v, 50), Some(100));
        assert_eq!(percentile(&v, 99), Some(198));
        assert_eq!(percentile(&v, 100), Some(200));
        assert_eq!(percentile(&v, 0), Some(1));
        assert_eq!(percentile(&[7u64], 99), Some(7));
        assert_eq!(percentile::<u64>(&[], 50), None);
    }
}
