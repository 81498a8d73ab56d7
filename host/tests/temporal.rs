//! `wharf worker --temporal` against a real Temporal dev server, with real
//! Python SDK workflows (`temporal/workflows.py`) calling the Rust example
//! components: what is particular to the bridge (payload encodings, the
//! heartbeat journal, timeouts, traps, routing, async completion, the
//! outbox, shutdown). Results, retries, typed errors, heartbeat resume and
//! cancellation are checked for Rust, JavaScript and Python alike in the
//! Temporal-mode cases of `polyglot.rs`.
//!
//! The server, worker and driver harness is `common::temporal`. The
//! scenarios of the shared worker run once, in one Python process, and
//! each test below asserts on one of them; the outbox and shutdown tests
//! have their own server or worker. The groups run one at a time.

mod common;

use anyhow::Result;
use common::rust_example;
use common::temporal::{driver, last_json_line, TemporalServer, WharfWorker};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// One group of scenarios at a time: each starts servers and workers, and
/// timings mean little on two busy cores.
fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts `wharf worker` serving the Rust examples on `task_queue`:
/// `greet` from the registry of its data dir (uploaded there first as
/// `greeter`), the others from their files.
fn rust_worker(
    server: &TemporalServer,
    dir: &Path,
    task_queue: &str,
    extra: &[&str],
) -> Result<WharfWorker> {
    let data_dir = dir.join(format!("{task_queue}-data"));
    upload(&data_dir, "greeter", &rust_example("greet"))?;
    let mut modules = vec![PathBuf::from("greeter@1")];
    modules.extend(["flaky", "wordcount", "adversary"].map(rust_example));
    WharfWorker::start(server, dir, task_queue, &data_dir, modules, extra)
}

/// What the worker keeps in its database.
impl WharfWorker {
    /// The heartbeat journal: (activity type, attempt, final, heartbeats,
    /// details decoded as JSON), by activity type and attempt.
    fn journal(&self) -> Result<Vec<Value>> {
        let conn = rusqlite::Connection::open_with_flags(
            self.data_dir.join("wharf.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let mut stmt = conn.prepare(
            "SELECT activity_type, attempt, final, heartbeats, details FROM temporal_heartbeats \
             ORDER BY activity_type, attempt",
        )?;
        let rows = stmt.query_map([], |r| {
            let details: String = r.get(4)?;
            let payloads: Vec<wharf::payload::Payload> =
                serde_json::from_str(&details).unwrap_or_default();
            Ok(json!({
                "activity_type": r.get::<_, String>(0)?,
                "attempt": r.get::<_, u32>(1)?,
                "final": r.get::<_, bool>(2)?,
                "heartbeats": r.get::<_, i64>(3)?,
                "details": payloads.iter().map(|p| p.to_json()).collect::<Vec<_>>(),
            }))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Rows in the worker's result outbox.
    fn outbox_rows(&self) -> Result<i64> {
        let conn = rusqlite::Connection::open_with_flags(
            self.data_dir.join("wharf.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        Ok(conn.query_row("SELECT COUNT(*) FROM temporal_outbox", [], |r| r.get(0))?)
    }
}

/// Uploads a component to the registry of `data_dir` under `name`, as
/// `wharf module upload` does.
fn upload(data_dir: &Path, name: &str, file: &Path) -> Result<()> {
    use wharf::engine::{Engine, EngineConfig};
    use wharf::registry::Registry;
    use wharf::store::{Db, Durability};
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let db = Db::open(data_dir, Durability::Normal)?;
        let registry = Registry::new(Engine::new(&EngineConfig::default())?, data_dir);
        registry
            .upload(
                &db,
                "default",
                name,
                std::fs::read(file)?,
                &Default::default(),
            )
            .await?;
        anyhow::Ok(())
    })
}

/// `python3 workflows.py MODE` against `server`, for the worker's queue.
fn driver_for(server: &TemporalServer, worker: &WharfWorker, mode: &str) -> Command {
    let mut cmd = driver(server, mode);
    cmd.args([
        "--task-queue",
        worker.ready["task_queue"].as_str().unwrap_or(""),
    ])
    .arg("--worker-log")
    .arg(&worker.log);
    cmd
}

/// The shared server and worker, and the outcome of every scenario of
/// `workflows.py all`.
struct Scenarios {
    results: Value,
    worker_log: String,
    ready: Value,
    journal: Vec<Value>,
}

fn scenarios() -> &'static Scenarios {
    static S: OnceLock<Scenarios> = OnceLock::new();
    S.get_or_init(|| {
        let _guard = exclusive();
        let run = || -> Result<Scenarios> {
            let dir = tempfile::tempdir()?;
            let server = TemporalServer::start(dir.path())?;
            let worker = rust_worker(
                &server,
                dir.path(),
                "wharf-tests",
                &["--cancel-grace", "1s", "--memory-limit", "64MiB"],
            )?;
            let started = Instant::now();
            let out = driver_for(&server, &worker, "all").output()?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            anyhow::ensure!(out.status.success(), "driver failed: {stdout}");
            let results = last_json_line(&stdout)?;
            eprintln!("scenarios ran in {:?}", started.elapsed());
            Ok(Scenarios {
                results,
                worker_log: worker.log(),
                ready: worker.ready.clone(),
                journal: worker.journal()?,
            })
        };
        run().unwrap_or_else(|e| panic!("{e:#}"))
    })
}

fn scenario(name: &str) -> &'static Value {
    let r = &scenarios().results[name];
    assert!(
        r.get("exception").is_none(),
        "scenario {name} raised: {r}\nworker log:\n{}",
        scenarios().worker_log
    );
    r
}

#[test]
fn result_equals_with_typed_json_arguments() {
    assert_eq!(scenario("greet")["ok"], json!("Hello, Ada!"));
    // Ints, floats, strings, objects, None and bytes pass through as the
    // Python SDK encoded them (bytes as binary/plain).
    assert_eq!(
        scenario("echo")["ok"],
        json!([1, 2.5, "two", {"three": [3, null, true]}, null, [0, 255, 114, 97, 119]])
    );
}

#[test]
fn heartbeats_are_journaled_locally_with_the_last_details_final() {
    let wordcount: Vec<&Value> = scenarios()
        .journal
        .iter()
        .filter(|r| r["activity_type"] == "wordcount")
        .collect();
    assert_eq!(
        wordcount,
        [
            &json!({"activity_type": "wordcount", "attempt": 1, "final": true, "heartbeats": 2,
                    "details": [{"next": 2, "words": 5}]}),
            &json!({"activity_type": "wordcount", "attempt": 2, "final": true, "heartbeats": 2,
                    "details": [{"next": 4, "words": 10}]}),
        ],
        "{:#?}",
        scenarios().journal
    );
}

#[test]
fn cancelling_a_heartbeating_activity_ends_it_cancelled() {
    let e = &scenario("cancel")["error"];
    assert_eq!(e["cause"], "CancelledError", "{e}");
    // The guest saw the request in a heartbeat reply and returned at once.
    let log = &scenarios().worker_log;
    assert!(log.contains("cancellation requested"), "{log}");
}

#[test]
fn a_guest_ignoring_cancellation_is_stopped() {
    let e = &scenario("cancel_ignored")["error"];
    assert_eq!(e["cause"], "CancelledError", "{e}");
    // Cancelled after 1 s, stopped 1 s (the grace) after the request
    // arrived; nowhere near the 30 s the guest wanted to sleep.
    let elapsed = scenario("cancel_ignored")["elapsed_s"]
        .as_f64()
        .unwrap_or(99.0);
    assert!(elapsed < 15.0, "took {elapsed} s");
}

#[test]
fn a_looping_guest_is_stopped_and_the_server_records_start_to_close() {
    let e = &scenario("timeout")["error"];
    assert_eq!(e["cause"], "TimeoutError", "{e}");
    assert_eq!(e["timeout_type"], "START_TO_CLOSE");
    let log = &scenarios().worker_log;
    assert!(
        log.lines()
            .any(|l| l.contains("activity_type=loop") && l.contains("outcome=timed_out")),
        "the host did not stop the loop:\n{log}"
    );
}

#[test]
fn async_completion_by_task_token_from_the_python_client() {
    let r = scenario("async_completion");
    assert_eq!(r["ok"], json!({"completed": "by token"}), "{r}");
    assert!(r["token_bytes"].as_u64().unwrap_or(0) > 0);
}

#[test]
fn a_trap_shows_its_error_type_in_the_workflow() {
    let e = &scenario("trap")["error"];
    assert_eq!(e["type"], "WasmTrap", "{e}");
    assert_eq!(e["non_retryable"], false);
    let message = e["message"].as_str().unwrap_or("");
    assert!(
        message.contains("adversary panicked on purpose"),
        "{message}"
    );
}

#[test]
fn a_memory_bomb_is_a_typed_failure() {
    let e = &scenario("memory")["error"];
    assert_eq!(e["type"], "WasmMemoryLimitExceeded", "{e}");
}

#[test]
fn an_unknown_activity_type_fails_with_a_clear_type() {
    let e = &scenario("unknown_type")["error"];
    assert_eq!(e["type"], "ActivityTypeNotFound", "{e}");
    let message = e["message"].as_str().unwrap_or("");
    assert!(
        message.contains("no-such-type") && message.contains("greet"),
        "{message}"
    );
}

#[test]
fn activity_info_and_routing_to_the_worker_queue() {
    let r = scenario("route");
    let (first, then) = (&r["ok"], &r["then"]);
    let ready = &scenarios().ready;
    let own = ready["worker_task_queue"].as_str().unwrap_or("");
    assert!(own.starts_with("wharf-"), "{ready}");
    assert_eq!(first["task_queue"], "wharf-tests");
    assert_eq!(first["worker_task_queue"], own);
    assert_eq!(then["task_queue"], own, "routed to this process's queue");
    for info in [first, then] {
        assert_eq!(info["namespace"], "default");
        assert_eq!(info["activity_type"], "info");
        assert_eq!(info["attempt"], 1);
        assert_eq!(info["workflow_type"], "RunActivity");
        assert_eq!(info["workflow_id"], r["workflow_id"]);
        assert_eq!(info["heartbeat_timeout_ms"], 5000);
        assert!(info["task_token"].as_str().is_some_and(|t| !t.is_empty()));
        let (started, deadline) = (
            info["started_ms"].as_u64().unwrap_or(0),
            info["deadline_ms"].as_u64().unwrap_or(0),
        );
        assert_eq!(deadline, started + 30_000, "start-to-close of 30 s: {info}");
        assert!(info["scheduled_ms"].as_u64().unwrap_or(0) <= started);
    }
}

#[test]
fn outbox_redelivers_a_result_after_the_server_comes_back() {
    let _guard = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let mut server = TemporalServer::start(dir.path()).unwrap();
    // Uncompressed gRPC here; the scenarios' worker uses the default gzip.
    let worker = rust_worker(
        &server,
        dir.path(),
        "wharf-outbox",
        &["--grpc-compression", "none"],
    )
    .unwrap();
    let mut py = driver_for(&server, &worker, "outbox")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(py.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "started", "{line}");

    // The server dies while the 4 s activity runs; the result is computed
    // with no server to take it, and waits in the outbox.
    server.kill();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !worker.log().contains("report not delivered, will re-send") {
        assert!(
            Instant::now() < deadline,
            "no failed delivery:\n{}",
            worker.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(worker.outbox_rows().unwrap(), 1, "queued for re-delivery");

    server.restart().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = py.wait().unwrap();
    assert!(status.success(), "driver failed: {rest}\n{}", worker.log());
    let result = last_json_line(&rest).unwrap();
    assert_eq!(result["ok"]["slept_ms"], 4000, "{result}");
    assert_eq!(worker.outbox_rows().unwrap(), 0, "delivered and removed");
    assert!(
        worker.log().contains("re-delivered a report"),
        "{}",
        worker.log()
    );
}

#[test]
fn graceful_shutdown_lets_short_attempts_finish_and_fails_long_ones_retryably() {
    let _guard = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let server = TemporalServer::start(dir.path()).unwrap();
    let mut worker = rust_worker(
        &server,
        dir.path(),
        "wharf-shutdown",
        &["--shutdown-grace", "3s", "--cancel-grace", "1s"],
    )
    .unwrap();
    let mut py = driver_for(&server, &worker, "shutdown")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(py.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "started", "{line}");

    let stopping = Instant::now();
    worker.terminate().unwrap();
    let status = worker.child.wait().unwrap();
    let took = stopping.elapsed();
    let mut stopped = String::new();
    std::io::Read::read_to_string(&mut worker.stdout, &mut stopped).unwrap();
    assert!(status.success(), "worker exit: {status}\n{}", worker.log());
    let summary = last_json_line(&stopped).unwrap();
    assert_eq!(summary["event"], "stopped", "{summary}");
    assert_eq!(summary["summary"]["attempts"], 2, "{summary}");
    assert_eq!(summary["summary"]["queued"], 0, "{summary}");
    assert!(took < Duration::from_secs(20), "shutdown took {took:?}");

    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(py.wait().unwrap().success(), "driver failed: {rest}");
    let result = last_json_line(&rest).unwrap();
    assert_eq!(result["short"]["ok"]["slept_ms"], 1500, "{result}");
    let e = &result["long"]["error"];
    assert_eq!(e["type"], "WorkerShutdown", "{result}");
    assert_eq!(e["non_retryable"], false);
}
