//! The same behaviour from Rust, JavaScript and Python activities: one table
//! of cases, each run against the example components of all three languages
//! (`examples/{rust,js,python}`), through `wharf run`, through `wharf serve`
//! and through `wharf worker --temporal` with a real Temporal dev server.
//!
//! A case is a function of the language; `polyglot_cases!` makes a test of
//! each case for each language, so `cargo test --test polyglot js::` runs the
//! JavaScript ones and a failure names its language. The Rust examples are
//! the reference: every language must give the same results and errors.
//!
//! A JS or Python component takes seconds to compile, so each is compiled
//! once into the shared data directory (`common::precompiled`) and the
//! servers here share that artifact cache; only the upload-and-restart test,
//! which watches compilation happen, starts from nothing. The Temporal cases
//! share one dev server and one worker per language: their workflows all
//! run at once, the first time a case asks for its outcome.

mod common;

use common::temporal::{driver, last_json_line, TemporalServer, WharfWorker};
use common::{data_dir_sharing_artifacts, precompiled, run, wharf, Lang, Run, Server};
use serde_json::{json, Value};
use std::io::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Instantiates every case once per language, in modules `rust`, `js` and
/// `python`.
macro_rules! polyglot_cases {
    ($($case:ident),* $(,)?) => {
        polyglot_cases!(@lang rust, Rust, $($case),*);
        polyglot_cases!(@lang js, Js, $($case),*);
        polyglot_cases!(@lang python, Python, $($case),*);
    };
    (@lang $module:ident, $lang:ident, $($case:ident),*) => {
        mod $module {
            $(
                #[test]
                fn $case() {
                    super::$case(super::Lang::$lang)
                }
            )*
        }
    };
}

polyglot_cases! {
    greet_returns_its_greeting,
    a_malformed_argument_fails_non_retryably,
    a_second_load_maps_the_artifact,
    flaky_fails_retryably_until_its_attempt,
    reject_is_non_retryable_with_type_and_details,
    fail_typed_fails_retryably_with_the_given_type,
    wordcount_resumes_from_heartbeat_details,
    wordcount_crash_keeps_the_last_heartbeat,
    cancellation_is_seen_by_a_heartbeating_activity,
    files_are_not_readable,
    the_environment_is_empty,
    the_network_is_unreachable,
    an_allowed_host_answers_over_wasi_http,
    granted_config_is_read_through_the_kit,
    an_ungranted_config_variable_is_denied,
    the_service_retries_flaky_until_it_succeeds,
    the_service_resumes_wordcount_after_a_failed_attempt,
    no_attempt_sees_state_of_an_earlier_one,
    the_process_cache_outlives_the_attempt_that_wrote_it,
    temporal_mode_result_equals,
    temporal_mode_retries_flaky_until_it_succeeds,
    temporal_mode_reject_is_non_retryable_with_type_and_details,
    temporal_mode_resumes_wordcount_from_heartbeat_details,
    temporal_mode_cancellation_is_seen,
    temporal_mode_no_attempt_sees_state_of_an_earlier_one,
}

// ---- `wharf run`

fn greet_returns_its_greeting(l: Lang) {
    let r = run(&l.example("greet"), "greet", &["--input", r#""Zoë 🚢""#]);
    assert_eq!(r.outcome(), "completed", "{}", r.json);
    assert_eq!(r.code(), Some(0));
    assert_eq!(r.json["result"], json!("Hello, Zoë 🚢!"));
}

#[test]
fn greet_is_the_same_in_every_language() {
    let results: Vec<Value> = Lang::ALL
        .iter()
        .map(|l| run(&l.example("greet"), "greet", &["--input", r#""Ada""#]).json["result"].clone())
        .collect();
    assert_eq!(
        results,
        [
            json!("Hello, Ada!"),
            json!("Hello, Ada!"),
            json!("Hello, Ada!")
        ]
    );
}

fn a_malformed_argument_fails_non_retryably(l: Lang) {
    let r = run(&l.example("greet"), "greet", &["--input", "42"]);
    assert_eq!(r.outcome(), "failed", "{}", r.json);
    assert_eq!(r.json["error"]["type"], "InvalidArgument", "{}", r.json);
    assert_eq!(r.json["error"]["non_retryable"], true);
}

fn a_second_load_maps_the_artifact(l: Lang) {
    // `run` compiled the module once already (`precompiled`); every later
    // process maps the artifact.
    let r = run(&l.example("greet"), "greet", &["--input", r#""Bo""#]);
    assert_eq!(
        r.json["module"]["source"], "artifact",
        "{}",
        r.json["module"]
    );
    assert_eq!(r.json["result"], "Hello, Bo!");
}

fn flaky_fails_retryably_until_its_attempt(l: Lang) {
    let m = l.example("flaky");
    let input = r#"{"succeed_on_attempt": 3, "retry_delay_ms": 250}"#;
    let r = run(&m, "flaky", &["--input", input, "--attempt", "2"]);
    assert_eq!(r.outcome(), "failed", "{}", r.json);
    assert_eq!(r.code(), Some(1));
    let e = &r.json["error"];
    assert_eq!(e["type"], "FlakyError");
    assert_eq!(e["non_retryable"], false);
    assert_eq!(e["message"], "attempt 2 failed");
    assert_eq!(e["details"], json!([{"attempt": 2}]));
    assert_eq!(e["next_retry_delay_ms"], 250);

    // Without a delay, the retry policy decides.
    let r = run(&m, "flaky", &["--input", r#"{"succeed_on_attempt": 3}"#]);
    assert_eq!(
        r.json["error"]["next_retry_delay_ms"],
        Value::Null,
        "{}",
        r.json
    );

    let r = run(&m, "flaky", &["--input", input, "--attempt", "3"]);
    assert_eq!(r.outcome(), "completed", "{}", r.json);
    assert_eq!(r.json["result"], json!({"attempt": 3}));
}

fn reject_is_non_retryable_with_type_and_details(l: Lang) {
    let r = run(
        &l.example("flaky"),
        "reject",
        &["--input", r#"{"reason": "no stock"}"#],
    );
    assert_eq!(r.outcome(), "failed", "{}", r.json);
    let e = &r.json["error"];
    assert_eq!(e["type"], "InvalidOrder");
    assert_eq!(e["non_retryable"], true);
    assert_eq!(e["message"], "order rejected: no stock");
    assert_eq!(e["details"], json!([{"reason": "no stock"}]));
}

fn fail_typed_fails_retryably_with_the_given_type(l: Lang) {
    let r = run(
        &l.example("flaky"),
        "fail-typed",
        &["--input", r#"{"error_type": "Transient"}"#],
    );
    assert_eq!(r.outcome(), "failed", "{}", r.json);
    let e = &r.json["error"];
    assert_eq!(e["type"], "Transient");
    assert_eq!(e["non_retryable"], false);
    assert_eq!(e["message"], "failed with Transient");
}

const ITEMS: &str = r#"{"items": ["a b", "c d e", "f", "g h i j"]}"#;

fn wordcount_resumes_from_heartbeat_details(l: Lang) {
    let m = l.example("wordcount");
    let fresh = run(&m, "wordcount", &["--input", ITEMS]);
    assert_eq!(fresh.outcome(), "completed", "{}", fresh.json);
    assert_eq!(
        fresh.json["result"],
        json!({"words": 10, "items": 4, "resumed_from": 0, "processed": 4})
    );
    assert_eq!(fresh.json["heartbeats"], 4);
    assert_eq!(
        fresh.json["last_heartbeat_details"],
        json!([{"next": 4, "words": 10}])
    );

    // Items 0 and 1 are done (5 words): only 2 and 3 are processed again.
    let resumed = run(
        &m,
        "wordcount",
        &[
            "--input",
            ITEMS,
            "--heartbeat-details",
            r#"{"next": 2, "words": 5}"#,
            "--attempt",
            "2",
        ],
    );
    assert_eq!(
        resumed.json["result"],
        json!({"words": 10, "items": 4, "resumed_from": 2, "processed": 2}),
        "{}",
        resumed.json
    );
    assert_eq!(resumed.json["heartbeats"], 2);
}

fn wordcount_crash_keeps_the_last_heartbeat(l: Lang) {
    let input = r#"{"items": ["a b", "c d e", "f"], "fail_at": 2}"#;
    let r = run(&l.example("wordcount"), "wordcount", &["--input", input]);
    assert_eq!(r.outcome(), "failed", "{}", r.json);
    assert_eq!(r.json["error"]["type"], "SimulatedCrash");
    assert_eq!(r.json["error"]["message"], "simulated crash before item 2");
    assert_eq!(r.json["error"]["non_retryable"], false);
    assert_eq!(
        r.json["last_heartbeat_details"],
        json!([{"next": 2, "words": 5}])
    );
}

fn cancellation_is_seen_by_a_heartbeating_activity(l: Lang) {
    let input = r#"{"items": ["a", "b", "c", "d", "e", "f", "g", "h"], "step_ms": 100}"#;
    let r = run(
        &l.example("wordcount"),
        "wordcount",
        &[
            "--input",
            input,
            "--cancel-after",
            "250ms",
            "--cancel-grace",
            "10s",
        ],
    );
    // Seen, not enforced: the grace period (10 s) is far from over.
    assert_eq!(r.outcome(), "cancelled", "{}", r.json);
    let hb = r.json["heartbeats"].as_u64().unwrap_or(0);
    assert!((2..8).contains(&hb), "stopped after {hb} heartbeats");
    let took = Duration::from_micros(r.json["duration_us"].as_u64().unwrap_or(0));
    assert!(took < Duration::from_secs(5), "{took:?}");
}

// ---- the sandbox grants nothing, whatever the runtime

/// Runs the capability probe of each language: the Rust adversary fixture's
/// own activity type, or the `probe` type of the JS and Python greet examples.
fn probe(l: Lang, what: &str, input: Value) -> Run {
    let (module, ty, input) = match (l, what) {
        (Lang::Rust, "file") => ("adversary", "read-file", input),
        (Lang::Rust, "env") => ("adversary", "read-env", input),
        (Lang::Rust, "net") => ("adversary", "connect", input),
        (_, _) => {
            let mut input = input;
            input["what"] = json!(what);
            ("greet", "probe", input)
        }
    };
    let r = run(&l.example(module), ty, &["--input", &input.to_string()]);
    assert_eq!(r.outcome(), "completed", "{}", r.json);
    r
}

fn files_are_not_readable(l: Lang) {
    let r = probe(l, "file", json!({"path": "/etc/passwd"}));
    assert_eq!(r.json["result"]["denied"], true, "{}", r.json);
}

fn the_environment_is_empty(l: Lang) {
    let r = probe(l, "env", json!({}));
    match l {
        Lang::Rust => assert_eq!(r.json["result"], json!({"vars": [], "args": []})),
        Lang::Js | Lang::Python => assert_eq!(r.json["result"]["denied"], true, "{}", r.json),
    }
}

// ---- what the JS engine lacks (guest-sdk/js/README.md, "What the engine lacks")

/// Each gap the JS kit documents, as the built engine gives it: when a
/// componentize-js upgrade closes one, this fails until the README, the
/// kit's build check (`guest-sdk/js/gaps.mjs`) and this pin are updated.
#[test]
fn js_engine_gaps_are_pinned() {
    let r = probe(Lang::Js, "engine", json!({}));
    let e = &r.json["result"];
    assert_eq!(e["normalize"], "undefined", "{e}");
    assert_eq!(e["intl"], "undefined", "{e}");
    assert_eq!(
        e["property_escapes"]["error"], "SyntaxError: invalid property name in regular expression",
        "{e}"
    );
    // Locale-sensitive methods run, ignoring the locale.
    assert_eq!(e["turkish_upper_i"], "I", "{e}");
    assert_eq!(e["number_en_us"], "1234.5", "{e}");
    for missing in ["shared_array_buffer", "atomics", "webassembly"] {
        assert_eq!(e[missing], "undefined", "{missing}: {e}");
    }
}

/// A regular expression literal with a Unicode property escape cannot be
/// built: the kit stops before componentize-js runs, naming the file, the
/// line and the gap, without a stack trace.
#[test]
fn the_js_kit_refuses_a_property_escape_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("lib")).expect("lib");
    std::fs::write(
        dir.path().join("activities.js"),
        "import { slug } from './lib/slug.js';\n\
         export const activities = { slugify: (s) => slug(s) };\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("lib/slug.js"),
        "// Letters and digits stay.\n\
         export function slug(s) {\n  return s.replace(/[^\\p{L}\\p{N}]+/gu, '-');\n}\n",
    )
    .expect("write");
    let out = std::process::Command::new(common::repo().join("scripts/build-js"))
        .arg(dir.path())
        .arg("-o")
        .arg(dir.path().join("out.wasm"))
        .output()
        .expect("scripts/build-js runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let file = dir.path().join("lib/slug.js");
    assert!(
        err.contains(&format!(
            "error: {}:3: Unicode property escapes",
            file.display()
        )),
        "{err}"
    );
    assert!(!err.contains("    at "), "a stack trace: {err}");
    assert!(!dir.path().join("out.wasm").exists());
}

/// With the host (and loopback) allowed, a request goes through the host's
/// policy-checked `wasi:http` and the answer comes back: the Rust fixture's
/// `http-get`, JS `fetch()` (the `--http` build); Python has no HTTP API.
fn an_allowed_host_answers_over_wasi_http(l: Lang) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    let (module, ty, input) = match l {
        Lang::Rust => (
            "adversary",
            "http-get",
            json!({"url": format!("http://{addr}/")}),
        ),
        Lang::Js => ("greet-http", "probe", json!({"what": "net", "addr": addr})),
        Lang::Python => return,
    };
    let allow = format!("http://{addr}");
    let r = run(
        &l.example(module),
        ty,
        &[
            "--input",
            &input.to_string(),
            "--allow-host",
            &allow,
            "--allow-private",
            "127.0.0.1",
        ],
    );
    assert_eq!(r.json["result"]["denied"], false, "{}", r.json);
    assert_eq!(r.json["result"]["status"], 200, "{}", r.json);
    let log = r.json["log"].as_str().unwrap_or("");
    // The JS probe does not read the body; its line says so.
    assert!(
        log.contains(&format!("outbound HTTP GET http://{addr}/ -> 200 (")),
        "{log}"
    );
}

/// A configuration variable granted on the command line is read through
/// each kit's `config` API (never the environment); an unset one is null.
fn granted_config_is_read_through_the_kit(l: Lang) {
    let read = |key: &str| {
        let (module, ty, input) = match l {
            Lang::Rust => ("adversary", "config-get", json!({"key": key})),
            _ => ("greet", "probe", json!({"what": "config", "key": key})),
        };
        let r = run(
            &l.example(module),
            ty,
            &[
                "--input",
                &input.to_string(),
                "--config",
                "API_KEY=s3cret value",
            ],
        );
        assert_eq!(r.outcome(), "completed", "{}", r.json);
        r.json["result"]["value"].clone()
    };
    assert_eq!(read("API_KEY"), json!("s3cret value"));
    assert_eq!(read("MISSING"), Value::Null);
}

/// A local listener the guests try to reach; nothing may ever connect.
struct Target {
    listener: TcpListener,
    addr: String,
}

impl Target {
    fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr").to_string();
        Self { listener, addr }
    }

    fn assert_untouched(&self) {
        match self.listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("a guest reached {}: {other:?}", self.addr),
        }
    }
}

/// Every way a runtime has to the network: TCP sockets and `wasi:http` for
/// Rust; `fetch()` for JS (through the host's `wasi:http` in a module built
/// with `--http`; the default build has no network API at all); Python's
/// `socket` (absent from componentize-py's runtime, so the probe finds no API).
fn the_network_is_unreachable(l: Lang) {
    let target = Target::new();
    let r = probe(l, "net", json!({"addr": target.addr}));
    assert_eq!(r.json["result"]["denied"], true, "{}", r.json);

    let url = format!("http://{}/", target.addr);
    let http = match l {
        Lang::Rust => Some(run(
            &l.example("adversary"),
            "http-get",
            &["--input", &json!({"url": url}).to_string()],
        )),
        Lang::Js => Some(run(
            &l.example("greet-http"),
            "probe",
            &[
                "--input",
                &json!({"what": "net", "addr": target.addr}).to_string(),
            ],
        )),
        Lang::Python => None,
    };
    if let Some(r) = http {
        assert_eq!(r.json["result"]["denied"], true, "{}", r.json);
        let log = r.json["log"].as_str().unwrap_or("");
        assert!(
            log.contains(&format!("outbound HTTP GET {url} denied")),
            "{log}"
        );
    }
    target.assert_untouched();
}

// ---- through `wharf serve`

/// A server whose artifact cache is the shared one, with `examples`
/// uploaded (compiled at most once per test run) and each deployed to the
/// queue of its name.
fn server_with(l: Lang, examples: &[&str]) -> (Server, tempfile::TempDir) {
    let dir = data_dir_sharing_artifacts();
    let s = Server::start(dir.path(), &[]);
    for name in examples {
        s.upload(name, &precompiled(&l.example(name)));
        s.deploy(name, name, 10);
    }
    (s, dir)
}

fn outcomes(a: &Value) -> Vec<&str> {
    a["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| x["outcome"].as_str().unwrap_or(""))
        .collect()
}

/// A namespace variable not granted to the module is denied: the kits raise
/// a non-retryable `ConfigDenied` failure; the Rust fixture reports the
/// denial as its result. The value appears nowhere.
fn an_ungranted_config_variable_is_denied(l: Lang) {
    let (module, ty, input) = match l {
        Lang::Rust => ("adversary", "config-get", json!({"key": "SECRET"})),
        _ => ("greet", "probe", json!({"what": "config", "key": "SECRET"})),
    };
    let (s, _dir) = server_with(l, &[module]);
    let (status, b) = s.put(
        "config/SECRET",
        &json!({"value": "hidden-value", "grants": ["another-module"]}),
    );
    assert_eq!(status, 200, "{b}");
    s.start_activity(json!({
        "activity_id": "c", "activity_type": ty, "task_queue": module,
        "input": [input], "start_to_close_timeout": "10s"
    }));
    let a = s.wait_closed("c", Duration::from_secs(30));
    assert!(!a.to_string().contains("hidden-value"), "{a}");
    let log = a["attempts"][0]["log_tail"].as_str().unwrap_or("");
    assert!(
        log.contains("[wharf] config \"SECRET\" denied: not granted to this module"),
        "{log}"
    );
    match l {
        Lang::Rust => assert_eq!(a["result"]["denied"], true, "{a}"),
        _ => {
            assert_eq!(a["state"], "failed", "{a}");
            assert_eq!(a["last_failure"]["type"], "ConfigDenied", "{a}");
            assert_eq!(a["last_failure"]["non_retryable"], true, "{a}");
        }
    }
}

fn the_service_retries_flaky_until_it_succeeds(l: Lang) {
    let (s, _dir) = server_with(l, &["flaky"]);
    s.start_activity(json!({
        "activity_id": "f", "activity_type": "flaky", "task_queue": "flaky",
        "input": [{"succeed_on_attempt": 3}], "start_to_close_timeout": "10s",
        "retry_policy": {"initial_interval": "50ms"}
    }));
    s.start_activity(json!({
        "activity_id": "r", "activity_type": "reject", "task_queue": "flaky",
        "input": [{"reason": "no stock"}], "start_to_close_timeout": "10s"
    }));
    let a = s.wait_closed("f", Duration::from_secs(30));
    assert_eq!(a["state"], "completed", "{a}");
    assert_eq!(a["attempt"], 3);
    assert_eq!(a["result"], json!({"attempt": 3}));
    assert_eq!(outcomes(&a), ["failed", "failed", "completed"]);
    assert_eq!(a["attempts"][1]["failure_type"], "FlakyError", "{a}");

    let r = s.wait_closed("r", Duration::from_secs(30));
    assert_eq!(
        (r["state"].as_str(), r["attempt"].as_u64()),
        (Some("failed"), Some(1)),
        "{r}"
    );
    assert_eq!(r["last_failure"]["type"], "InvalidOrder");
    assert_eq!(r["last_failure"]["non_retryable"], true);
}

fn the_service_resumes_wordcount_after_a_failed_attempt(l: Lang) {
    let (s, _dir) = server_with(l, &["wordcount"]);
    s.start_activity(json!({
        "activity_id": "wc", "activity_type": "wordcount", "task_queue": "wordcount",
        "input": [{"items": ["a b", "c d e", "f", "g h i j"], "fail_at": 2}],
        "start_to_close_timeout": "10s", "retry_policy": {"initial_interval": "50ms"}
    }));
    let a = s.wait_closed("wc", Duration::from_secs(30));
    assert_eq!(a["state"], "completed", "{a}");
    // Items 0 and 1 are not counted again.
    assert_eq!(
        a["result"],
        json!({"words": 10, "items": 4, "resumed_from": 2, "processed": 2})
    );
    assert_eq!(outcomes(&a), ["failed", "completed"]);
    assert_eq!(a["attempts"][0]["failure_type"], "SimulatedCrash");
    assert_eq!(
        a["attempts"][0]["heartbeat_details"],
        json!([{"next": 2, "words": 5}])
    );
}

/// `remember` and `recall` (in every `noop` example) go through the kit's
/// cache API: what one attempt stored, a later one on the same process reads.
fn the_process_cache_outlives_the_attempt_that_wrote_it(l: Lang) {
    let (s, _dir) = server_with(l, &["noop"]);
    let run = |id: &str, ty: &str, input: Value| {
        s.start_activity(json!({
            "activity_id": id, "activity_type": ty, "task_queue": "noop",
            "input": input, "start_to_close_timeout": "10s"
        }));
        let a = s.wait_closed(id, Duration::from_secs(30));
        assert_eq!(a["state"], "completed", "{a}");
        a["result"].clone()
    };
    assert_eq!(run("miss", "recall", json!(["k"])), Value::Null);
    run(
        "remember",
        "remember",
        json!(["k", {"n": [1, 2], "s": "ß"}]),
    );
    assert_eq!(
        run("hit", "recall", json!(["k"])),
        json!({"n": [1, 2], "s": "ß"})
    );
}

/// `count` (in every `noop` example) adds one to a module-level counter and
/// returns it: 1 unless an earlier attempt's instance was reused.
fn no_attempt_sees_state_of_an_earlier_one(l: Lang) {
    let (s, _dir) = server_with(l, &["noop"]);
    // One after the other on the same deployment.
    for i in 0..5 {
        let id = format!("count-{i}");
        s.start_activity(json!({
            "activity_id": id, "activity_type": "count", "task_queue": "noop",
            "input": [], "start_to_close_timeout": "10s"
        }));
        let a = s.wait_closed(&id, Duration::from_secs(30));
        assert_eq!(
            (&a["state"], &a["result"]),
            (&json!("completed"), &json!(1)),
            "{a}"
        );
    }
    // Retries of one activity: attempts 1 and 2 fail, each with the counter
    // it saw.
    s.start_activity(json!({
        "activity_id": "retried", "activity_type": "count", "task_queue": "noop",
        "input": [3], "start_to_close_timeout": "10s",
        "retry_policy": {"initial_interval": "50ms"}
    }));
    let a = s.wait_closed("retried", Duration::from_secs(30));
    assert_eq!(
        (&a["state"], &a["result"]),
        (&json!("completed"), &json!(1)),
        "{a}"
    );
    assert_eq!(outcomes(&a), ["failed", "failed", "completed"]);
    for (i, attempt) in a["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .take(2)
        .enumerate()
    {
        assert_eq!(attempt["failure_type"], "CountFailed", "{a}");
        assert_eq!(
            attempt["failure_message"],
            format!("attempt {} failed with count 1", i + 1),
            "{a}"
        );
    }
}

// ---- through `wharf worker --temporal`

/// What each language's worker is asked to run, as `RunActivity` workflows
/// (`temporal/workflows.py`); the cases below assert on the outcomes.
fn temporal_specs() -> Value {
    let many: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
    json!({
        "greet": {"activity": "greet", "args": ["Ada"]},
        "flaky": {"activity": "flaky", "args": [{"succeed_on_attempt": 3}]},
        "reject": {"activity": "reject", "args": [{"reason": "out of stock"}]},
        "wordcount": {
            "activity": "wordcount",
            "args": [{"items": ["a b", "c d e", "f", "g h i j"], "fail_at": 2}],
            "heartbeat_timeout_ms": 10000
        },
        // 10 s of work, cancelled after 1 s. Core sends heartbeats at most
        // every 0.8 x the heartbeat timeout, and the cancellation rides on
        // the reply to one, so a heartbeat late by a fifth of the timeout
        // times the attempt out instead. At 2 s (0.4 s of slack) that
        // happened once in a full test run, to all three languages at
        // once; at 5 s the slack is 1 s, and the request still arrives
        // about 4 s in.
        "cancel": {
            "activity": "wordcount",
            "args": [{"items": many, "step_ms": 100}],
            "heartbeat_timeout_ms": 5000,
            "cancel_after_ms": 1000
        },
        "count": {"activity": "count", "args": [3]},
        "count_gives_up": {"activity": "count", "args": [5], "retry": {"max_attempts": 2}},
    })
}

/// Outcomes of [`temporal_specs`] by `LANG/NAME`, and each worker's log.
struct TemporalOutcomes {
    results: Value,
    logs: Vec<String>,
}

/// Starts a dev server and a worker per language (queue `polyglot-LANG`,
/// serving that language's examples from the shared artifacts), runs every
/// spec for every language at once, and keeps the outcomes.
fn temporal_outcomes() -> anyhow::Result<TemporalOutcomes> {
    let dir = tempfile::tempdir()?;
    let server = TemporalServer::start(dir.path())?;
    let mut workers = Vec::new();
    let mut specs = serde_json::Map::new();
    for l in Lang::ALL {
        let queue = format!("polyglot-{}", l.dir());
        let modules = ["greet", "flaky", "wordcount", "noop"].map(|m| precompiled(&l.example(m)));
        let data = data_dir_sharing_artifacts();
        let worker = WharfWorker::start(&server, dir.path(), &queue, data.path(), modules, &[])?;
        workers.push((worker, data));
        for (name, spec) in temporal_specs().as_object().into_iter().flatten() {
            let mut spec = spec.clone();
            spec["task_queue"] = json!(queue);
            specs.insert(format!("{}/{name}", l.dir()), spec);
        }
    }
    let started = Instant::now();
    let mut py = driver(&server, "specs")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = py.stdin.take() {
        stdin.write_all(Value::Object(specs).to_string().as_bytes())?;
    }
    let out = py.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "driver failed: {stdout}");
    eprintln!("Temporal-mode workflows ran in {:?}", started.elapsed());
    Ok(TemporalOutcomes {
        results: last_json_line(&stdout)?,
        logs: workers.iter().map(|(w, _)| w.log()).collect(),
    })
}

/// [`temporal_outcomes`], once per test binary; a failure to set up is
/// kept too, so that the other cases report it instead of retrying it.
fn temporal_all() -> &'static TemporalOutcomes {
    static OUTCOMES: OnceLock<Result<TemporalOutcomes, String>> = OnceLock::new();
    let outcomes = OUTCOMES.get_or_init(|| temporal_outcomes().map_err(|e| format!("{e:#}")));
    outcomes.as_ref().unwrap_or_else(|e| panic!("{e}"))
}

/// The outcome of spec `name` for `l`: `{"ok": result}` or `{"error": ...}`.
fn temporal(l: Lang, name: &str) -> &'static Value {
    let r = &temporal_all().results[format!("{}/{name}", l.dir())];
    assert!(
        r.get("exception").is_none(),
        "{name} raised: {r}\nworker log:\n{}",
        temporal_log(l)
    );
    r
}

/// What the worker of `l` logged.
fn temporal_log(l: Lang) -> &'static str {
    let i = Lang::ALL.iter().position(|x| *x == l).unwrap_or(0);
    &temporal_all().logs[i]
}

fn temporal_mode_result_equals(l: Lang) {
    assert_eq!(temporal(l, "greet")["ok"], json!("Hello, Ada!"));
}

fn temporal_mode_retries_flaky_until_it_succeeds(l: Lang) {
    assert_eq!(temporal(l, "flaky")["ok"], json!({"attempt": 3}));
}

fn temporal_mode_reject_is_non_retryable_with_type_and_details(l: Lang) {
    let e = &temporal(l, "reject")["error"];
    assert_eq!(e["cause"], "ApplicationError", "{e}");
    assert_eq!(e["type"], "InvalidOrder");
    assert_eq!(e["non_retryable"], true);
    assert_eq!(e["details"], json!([{"reason": "out of stock"}]));
    assert_eq!(e["message"], "order rejected: out of stock");
    assert_eq!(e["retry_state"], "NON_RETRYABLE_FAILURE");
}

fn temporal_mode_resumes_wordcount_from_heartbeat_details(l: Lang) {
    // Attempt 1 heartbeats after items 0 and 1, then fails before item 2;
    // attempt 2 starts from the details the failure carried.
    assert_eq!(
        temporal(l, "wordcount")["ok"],
        json!({"words": 10, "items": 4, "resumed_from": 2, "processed": 2})
    );
}

fn temporal_mode_cancellation_is_seen(l: Lang) {
    let r = temporal(l, "cancel");
    assert_eq!(r["error"]["cause"], "CancelledError", "{r}");
    // Seen in a heartbeat reply: the guest returned long before its 10 s.
    let elapsed = r["elapsed_s"].as_f64().unwrap_or(99.0);
    assert!(elapsed < 8.0, "took {elapsed} s");
    let log = temporal_log(l);
    assert!(log.contains("cancellation requested"), "{log}");
}

fn temporal_mode_no_attempt_sees_state_of_an_earlier_one(l: Lang) {
    // Attempts 1 and 2 failed, attempt 3 counted from zero again.
    assert_eq!(temporal(l, "count")["ok"], json!(1));
    let e = &temporal(l, "count_gives_up")["error"];
    assert_eq!(e["type"], "CountFailed", "{e}");
    assert_eq!(e["message"], "attempt 2 failed with count 1");
    assert_eq!(e["details"], json!([{"count": 1}]));
}

// ---- upload once, restart without compiling

/// Artifact files and their modification times.
fn artifacts(dir: &std::path::Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("artifacts"))
        .expect("artifact dir")
        .flatten()
        .map(|e| {
            (
                e.path(),
                e.metadata().and_then(|m| m.modified()).expect("mtime"),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn an_upload_is_compiled_once_and_a_restart_maps_the_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let mut compile_ms = Vec::new();
    for l in Lang::ALL {
        let name = format!("greet-{}", l.dir());
        let file = l.example("greet");
        // Through the CLI, as a user would. Its output here is a pipe, so
        // no per-second progress line (a terminal gets one while a JS or
        // Python component compiles).
        let out = wharf()
            .args(["module", "upload"])
            .arg(&file)
            .args(["--name", &name, "--server", &s.base])
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains(&format!("uploaded {name}@1")), "{stdout}");
        assert!(stdout.contains("activity types: greet"), "{stdout}");
        if l != Lang::Rust {
            let mb = std::fs::metadata(&file).unwrap().len() as f64 / 1e6;
            assert!(
                (12.0..19.0).contains(&mb),
                "{} is {mb:.1} MB",
                file.display()
            );
            assert!(
                !stderr.contains("uploading and compiling"),
                "progress written to a pipe: {stderr:?}"
            );
        }
        s.deploy(&name, &name, 10);
        let (_, q) = s.get(&format!("task-queues/{name}"));
        assert_eq!(q["module_load"]["source"], "compiled", "{q}");
        compile_ms.push(q["module_load"]["ms"].as_f64().unwrap());
    }
    let before = artifacts(dir.path());
    assert_eq!(
        before.len(),
        6,
        "an artifact and its checksum per module: {before:?}"
    );
    s.kill();

    let restarted = Instant::now();
    let s = Server::start(dir.path(), &[]);
    let restart = restarted.elapsed();
    for (l, compiled_ms) in Lang::ALL.into_iter().zip(compile_ms) {
        let name = format!("greet-{}", l.dir());
        let (_, q) = s.get(&format!("task-queues/{name}"));
        assert_eq!(q["module_load"]["source"], "artifact", "{q}");
        let ms = q["module_load"]["ms"].as_f64().unwrap();
        if l != Lang::Rust {
            assert!(
                ms * 10.0 < compiled_ms,
                "{name}: mapped in {ms} ms, compiled in {compiled_ms} ms"
            );
        }
        s.start_activity(json!({
            "activity_id": name, "activity_type": "greet", "task_queue": name,
            "input": [l.dir()], "start_to_close_timeout": "10s"
        }));
        let a = s.wait_closed(&name, Duration::from_secs(10));
        assert_eq!(a["result"], format!("Hello, {}!", l.dir()), "{a}");
        // The restarted module's activity types are its record's: still
        // exactly what it exports.
        let typo = format!("{name}-typo");
        s.start_activity(json!({
            "activity_id": typo, "activity_type": "gret", "task_queue": name,
            "start_to_close_timeout": "10s"
        }));
        let a = s.wait_closed(&typo, Duration::from_secs(10));
        assert_eq!(a["last_failure"]["type"], "UnknownActivityType", "{a}");
        let message = a["last_failure"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("it exports: greet"), "{a}");
    }
    assert_eq!(
        artifacts(dir.path()),
        before,
        "the restart rewrote artifacts"
    );
    eprintln!("restart to ready with 3 deployments: {restart:?}");

    // What a user sees.
    let out = wharf()
        .args(["queue", "describe", "greet-python", "--server", &s.base])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("module load: artifact in "), "{text}");
}
