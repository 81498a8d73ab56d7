//! Shared helpers of the integration tests: the real `wharf` binary and the
//! real example components, built once per test binary. A `wharf serve` is
//! started, and modules uploaded and deployed, by the same harness as the
//! benchmarks' (`wharf::bench::harness`).

#![allow(dead_code)]

pub mod temporal;

use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;
use wharf::bench::harness::{spawn_serve, HarnessError, Namespace};

pub mod origin;
pub mod tenants;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `wharf` binary under test.
pub fn wharf() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wharf"));
    c.env("WHARF_LOG", "warn");
    c
}

/// Runs a `wharf` client command against the server at `base`; panics
/// unless it succeeds. Returns what it printed.
pub fn cli(base: &str, args: &[&str]) -> String {
    let out = wharf()
        .args(args)
        .args(["--server", base])
        .output()
        .expect("wharf runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Path of a built Rust example component, building the examples once.
pub fn rust_example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo().join("examples/rust");
        let status = Command::new("cargo")
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(root.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", root.join("target"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the Rust examples failed");
    });
    let path = repo().join(format!(
        "examples/rust/target/wasm32-wasip2/release/{name}.wasm"
    ));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A language activities are written in; every example exists in each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Js,
    Python,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::Rust, Lang::Js, Lang::Python];

    /// Directory name under `examples/` and `build/examples/`.
    pub fn dir(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Js => "js",
            Lang::Python => "python",
        }
    }

    /// Path of the built example component `name` in this language.
    pub fn example(self, name: &str) -> PathBuf {
        match self {
            Lang::Rust => rust_example(name),
            Lang::Js | Lang::Python => polyglot_example(self, name),
        }
    }
}

/// Path of a built JavaScript or Python example, `build/examples/LANG/NAME.wasm`.
/// Builds every example of the language once (`scripts/build-polyglot-examples
/// LANG`) when one is missing or older than its sources, the guest kit, the
/// WIT or the build scripts. `./scripts/test` builds them before the tests,
/// so this only rebuilds after an edit.
pub fn polyglot_example(lang: Lang, name: &str) -> PathBuf {
    static BUILT: [OnceLock<()>; 2] = [OnceLock::new(), OnceLock::new()];
    let root = repo();
    let out = root.join("build/examples").join(lang.dir());
    BUILT[(lang == Lang::Python) as usize].get_or_init(|| {
        if polyglot_examples_fresh(lang, &out) {
            return;
        }
        eprintln!("building the {} examples (stale or missing)", lang.dir());
        let status = Command::new(root.join("scripts/build-polyglot-examples"))
            .arg(lang.dir())
            .status()
            .expect("scripts/build-polyglot-examples runs");
        assert!(
            status.success(),
            "building the {} examples failed",
            lang.dir()
        );
    });
    let path = out.join(format!("{name}.wasm"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// True if every example of `lang` has a component newer than all its inputs.
fn polyglot_examples_fresh(lang: Lang, out: &Path) -> bool {
    let root = repo();
    let kit = root.join("guest-sdk").join(lang.dir());
    let inputs = [
        newest(&kit),
        newest(&root.join("wit")),
        newest(&root.join(format!("scripts/build-{}", lang.dir()))),
    ];
    let Ok(examples) = std::fs::read_dir(root.join("examples").join(lang.dir())) else {
        return false;
    };
    let mut outputs: Vec<(String, PathBuf)> = examples
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    if lang == Lang::Js {
        // greet built with fetch() enabled (see the build script).
        outputs.push(("greet-http".into(), root.join("examples/js/greet")));
    }
    !outputs.is_empty()
        && outputs.iter().all(|(name, sources)| {
            let built = out.join(format!("{name}.wasm"));
            let newest_input = newest(sources).max(inputs.iter().copied().max().flatten());
            match (modified(&built), newest_input) {
                (Some(b), Some(s)) => b >= s,
                _ => false,
            }
        })
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Newest modification time under `path`, skipping installed packages,
/// caches and the kits' own tests.
fn newest(path: &Path) -> Option<SystemTime> {
    let own = modified(path);
    if !path.is_dir() {
        return own;
    }
    let skip = ["node_modules", "__pycache__", "test", "tests"];
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| !skip.contains(&e.file_name().to_string_lossy().as_ref()))
        .filter_map(|e| newest(&e.path()))
        .chain(own)
        .max()
}

/// Loads (so compiles) `module` into the shared data dir's artifact cache
/// once. Tests run in parallel: without this, every test touching a large
/// JS or Python component first would compile it at the same time.
pub fn precompiled(module: &Path) -> PathBuf {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, Arc<OnceLock<()>>>>> = OnceLock::new();
    let cell = LOADED
        .get_or_init(Default::default)
        .lock()
        .expect("precompile map")
        .entry(module.to_owned())
        .or_default()
        .clone();
    cell.get_or_init(|| {
        // An activity type no module has: `wharf run` loads the module
        // (compiling it and writing its artifact), then refuses to run.
        let (code, err) = run_refused(module, "wharf-test-precompile", &[]);
        assert!(
            code == 2 && err.contains("has no activity type"),
            "loading {} failed ({code}): {err}",
            module.display()
        );
    });
    module.to_owned()
}

/// A fresh data directory for `wharf serve` whose artifact cache is the
/// shared one of the `wharf run` tests (artifacts are keyed by content and
/// engine configuration, so sharing is safe): uploading a component
/// [`precompiled`] already maps its artifact instead of compiling it again.
pub fn data_dir_sharing_artifacts() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let artifacts = shared_data_dir().join("artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    std::os::unix::fs::symlink(&artifacts, dir.path().join("artifacts")).expect("symlink");
    dir
}

/// A data directory shared by the tests of this binary, so each component
/// is compiled once; tests that watch compilation use their own.
pub fn shared_data_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wharf-run-data");
    std::fs::create_dir_all(&dir).expect("create data dir");
    dir
}

/// The result of one `wharf run --json`.
pub struct Run {
    pub output: Output,
    pub json: Value,
}

impl Run {
    pub fn outcome(&self) -> &str {
        self.json["outcome"].as_str().unwrap_or("<none>")
    }
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
}

/// Runs `wharf run --json MODULE TYPE ARGS...` with the shared data dir
/// (the module is compiled once, by [`precompiled`]).
pub fn run(module: &Path, activity_type: &str, args: &[&str]) -> Run {
    run_in(
        &shared_data_dir(),
        &precompiled(module),
        activity_type,
        args,
    )
}

/// Same as [`run`], with a given data directory.
pub fn run_in(data_dir: &Path, module: &Path, activity_type: &str, args: &[&str]) -> Run {
    let output = wharf()
        .arg("run")
        .arg(module)
        .arg(activity_type)
        .arg("--json")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("wharf runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "wharf run printed no JSON ({e}); status {:?}\nstdout: {stdout}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    Run { output, json }
}

/// Runs `wharf run` with `args` expecting it to refuse before running anything.
pub fn run_refused(module: &Path, activity_type: &str, args: &[&str]) -> (i32, String) {
    let output = wharf()
        .arg("run")
        .arg(module)
        .arg(activity_type)
        .arg("--data-dir")
        .arg(shared_data_dir())
        .args(args)
        .output()
        .expect("wharf runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A running `wharf serve` on a free port; killed when dropped.
pub struct Server {
    pub child: std::process::Child,
    pub base: String,
    pub data_dir: PathBuf,
    http: reqwest::blocking::Client,
    /// The default namespace through the benchmarks' harness, for what the
    /// tests do the same way (upload, deploy); `rt` runs its requests.
    default_ns: Namespace,
    rt: tokio::runtime::Runtime,
}

impl Server {
    /// Starts `wharf serve` on `data_dir` with extra arguments.
    pub fn start(data_dir: &Path, args: &[&str]) -> Server {
        let mut command = wharf();
        command.stderr(std::process::Stdio::inherit());
        let (child, base) = spawn_serve(command, data_dir, args)
            .unwrap_or_else(|e| panic!("wharf serve did not start: {e}"));
        let timeout = std::time::Duration::from_secs(90);
        let async_http = wharf::api::listen::client()
            .timeout(timeout)
            .build()
            .unwrap();
        Server {
            child,
            default_ns: Namespace::new(
                async_http,
                &format!("{base}/api/v1/namespaces/default"),
                None,
            ),
            base,
            data_dir: data_dir.to_owned(),
            http: reqwest::blocking::Client::builder()
                .pool_idle_timeout(wharf::api::listen::CLIENT_IDLE_TIMEOUT)
                .timeout(timeout)
                .build()
                .unwrap(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the harness"),
        }
    }

    /// Runs a request of the harness; panics with `what` unless it
    /// succeeded.
    fn harness<T>(
        &self,
        what: &str,
        request: impl std::future::Future<Output = Result<T, HarnessError>>,
    ) -> T {
        self.rt
            .block_on(request)
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// Full URL of a path under the default namespace.
    pub fn url(&self, path: &str) -> String {
        self.ns_url("default", path)
    }

    /// Full URL of a path under namespace `ns` (`""`: the namespace itself).
    pub fn ns_url(&self, ns: &str, path: &str) -> String {
        let path = if path.is_empty() {
            String::new()
        } else {
            format!("/{path}")
        };
        format!("{}/api/v1/namespaces/{ns}{path}", self.base)
    }

    /// Runs one activity of `activity_type` in namespace `ns` on queue `q`
    /// with one JSON argument; returns it described once closed (its
    /// result, attempts and their log tails).
    pub fn run_in_namespace(&self, ns: &str, activity_type: &str, input: Value) -> Value {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = format!(
            "t{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let (status, body) = self.send(self.http.post(self.ns_url(ns, "activities")).json(
            &serde_json::json!({"activity_id": id, "activity_type": activity_type, "task_queue": "q",
                   "input": [input], "start_to_close_timeout": "20s"}),
        ));
        assert_eq!(status, 201, "start in {ns}: {body}");
        let (status, r) = self.send(
            self.http
                .get(self.ns_url(ns, &format!("activities/{id}/result?wait=30s"))),
        );
        assert_eq!(r["closed"], Value::Bool(true), "{status} {r}");
        self.send(self.http.get(self.ns_url(ns, &format!("activities/{id}"))))
            .1
    }

    /// Sends a request; returns status and JSON body.
    pub fn send(&self, req: reqwest::blocking::RequestBuilder) -> (u16, Value) {
        let resp = req.send().expect("request succeeds");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(self.url(path)))
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.http.post(self.url(path)).json(body))
    }

    pub fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.http.put(self.url(path)).json(body))
    }

    /// Uploads a component; panics unless accepted.
    pub fn upload(&self, name: &str, file: &Path) -> Value {
        let bytes = std::fs::read(file).expect("component");
        self.harness(
            &format!("upload {name}"),
            self.default_ns.upload(&bytes, name),
        )
    }

    /// Uploads and deploys a Rust example to a queue.
    pub fn deploy_example(&self, example: &str, queue: &str, max_concurrent: u32) {
        self.upload(example, &rust_example(example));
        self.deploy(example, queue, max_concurrent);
    }

    /// Deploys the latest version of an uploaded module to a queue.
    pub fn deploy(&self, module: &str, queue: &str, max_concurrent: u32) {
        self.harness(
            &format!("deploy {module} to {queue}"),
            self.default_ns.deploy(module, queue, max_concurrent),
        );
    }

    /// Starts an activity; panics unless the start was accepted.
    pub fn start_activity(&self, body: Value) -> Value {
        let (status, resp) = self.post("activities", &body);
        assert!(status == 201 || status == 200, "start: {status} {resp}");
        resp["activity"].clone()
    }

    /// Waits for an activity to close and describes it.
    pub fn wait_closed(&self, id: &str, timeout: std::time::Duration) -> Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let (status, r) = self.get(&format!("activities/{id}/result?wait=5s"));
            assert_eq!(status, 200, "{r}");
            if r["closed"] == Value::Bool(true) {
                return self.get(&format!("activities/{id}")).1;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "activity {id} did not close: {r}"
            );
        }
    }

    /// Waits until the activity's description satisfies `ready` (a state
    /// a test needs before its next step), and returns it.
    pub fn wait_until(&self, id: &str, ready: impl Fn(&Value) -> bool) -> Value {
        wait_for(|| {
            let (_, a) = self.get(&format!("activities/{id}"));
            ready(&a).then_some(a)
        })
    }

    /// Kills the server at once (SIGKILL).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it returns something; fails the test after 30 s (a
/// loaded machine is slow, a broken server never gets there).
pub fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met in time"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Milliseconds between the starts of consecutive attempts of a described activity.
pub fn attempt_gaps(described: &Value) -> Vec<u64> {
    let starts: Vec<u64> = described["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["started_ms"].as_u64().expect("started_ms"))
        .collect();
    starts.windows(2).map(|w| w[1] - w[0]).collect()
}
