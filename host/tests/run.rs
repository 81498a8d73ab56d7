//! `wharf run` end to end: the real binary, the real example components, and
//! every outcome kind the engine can give.

mod common;

use common::{run, run_in, run_refused, rust_example};
use serde_json::json;
use std::time::Duration;

#[test]
fn greet_returns_its_greeting() {
    let r = run(&rust_example("greet"), "greet", &["--input", r#""Ada""#]);
    assert_eq!(r.outcome(), "completed", "{}", r.json);
    assert_eq!(r.json["result"], json!("Hello, Ada!"));
    assert_eq!(r.code(), Some(0));
    assert_eq!(r.json["module"]["activity_types"], json!(["greet"]));
}

#[test]
fn flaky_fails_retryably_until_its_attempt() {
    let m = rust_example("flaky");
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

    let r = run(&m, "flaky", &["--input", input, "--attempt", "3"]);
    assert_eq!(r.outcome(), "completed", "{}", r.json);
    assert_eq!(r.json["result"], json!({"attempt": 3}));
}

#[test]
fn reject_is_non_retryable_with_type_and_details() {
    let r = run(
        &rust_example("flaky"),
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

#[test]
fn wordcount_resumes_from_heartbeat_details() {
    let m = rust_example("wordcount");
    let input = r#"{"items": ["a b", "c d e", "f", "g h i j"]}"#;
    let fresh = run(&m, "wordcount", &["--input", input]);
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
            input,
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
}

/// An input longer than one command-line argument may be (128 KiB on
/// Linux) is read from a file with `--input @FILE`; a file that cannot be
/// read, holds no JSON or is longer than any payload may be, is refused
/// naming the flag and the file, and so is standard input (`@-`) that holds
/// no JSON.
#[test]
fn an_input_too_long_for_the_command_line_is_read_from_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let line = "the quick brown fox jumps over the lazy dog ".repeat(400);
    let items: Vec<String> = (0..20).map(|i| format!("{line}item{i}")).collect();
    let words: usize = items.iter().map(|s| s.split_whitespace().count()).sum();
    let file = dir.path().join("input.json");
    std::fs::write(&file, json!({ "items": items }).to_string()).expect("write input");
    assert!(std::fs::metadata(&file).expect("input").len() > 300 << 10);
    let at_file = format!("@{}", file.display());

    let r = run(
        &rust_example("wordcount"),
        "wordcount",
        &["--input", &at_file],
    );
    assert_eq!(r.outcome(), "completed", "{}", r.json);
    assert_eq!(r.json["result"]["words"], json!(words));
    assert_eq!(r.json["result"]["items"], json!(20));

    let missing = dir.path().join("missing.json");
    std::fs::write(dir.path().join("not-json.txt"), "words, not JSON").expect("write");
    for (path, says) in [
        (missing, "cannot read"),
        (dir.path().join("not-json.txt"), "not JSON"),
        // Endless: read only as far as a payload may be long.
        (std::path::PathBuf::from("/dev/zero"), "more than 256 MiB"),
    ] {
        let flag = format!("@{}", path.display());
        let (code, err) = run_refused(&rust_example("wordcount"), "wordcount", &["--input", &flag]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains(&format!("--input {flag}")) && err.contains(says),
            "{err}"
        );
    }
    // `@-` reads standard input (empty here).
    let (code, err) = run_refused(&rust_example("wordcount"), "wordcount", &["--input", "@-"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--input @-: standard input is not JSON"),
        "{err}"
    );
}

#[test]
fn wordcount_crash_keeps_the_last_heartbeat() {
    let input = r#"{"items": ["a b", "c d e", "f"], "fail_at": 2}"#;
    let r = run(&rust_example("wordcount"), "wordcount", &["--input", input]);
    assert_eq!(r.outcome(), "failed", "{}", r.json);
    assert_eq!(r.json["error"]["type"], "SimulatedCrash");
    assert_eq!(r.json["error"]["non_retryable"], false);
    assert_eq!(
        r.json["last_heartbeat_details"],
        json!([{"next": 2, "words": 5}])
    );
}

#[test]
fn cancellation_is_seen_by_a_heartbeating_activity() {
    let input = r#"{"items": ["a", "b", "c", "d", "e", "f", "g", "h"], "step_ms": 100}"#;
    let r = run(
        &rust_example("wordcount"),
        "wordcount",
        &["--input", input, "--cancel-after", "250ms"],
    );
    assert_eq!(r.outcome(), "cancelled", "{}", r.json);
    let hb = r.json["heartbeats"].as_u64().unwrap();
    assert!((2..8).contains(&hb), "stopped after {hb} heartbeats");
}

#[test]
fn an_activity_ignoring_cancellation_is_stopped_after_the_grace_period() {
    let input = r#"{"ms": 5000, "heartbeat_every_ms": 50, "ignore_cancel": true}"#;
    let r = run(
        &rust_example("adversary"),
        "sleep",
        &[
            "--input",
            input,
            "--cancel-after",
            "200ms",
            "--cancel-grace",
            "300ms",
        ],
    );
    assert_eq!(r.outcome(), "cancelled", "{}", r.json);
    // Stopped after cancel-after + grace (500 ms), not at the request
    // (200 ms) nor at the end of its sleep. Both are timed from just before
    // the attempt's store exists, which a busy machine may create a few
    // milliseconds later: the lower bound leaves room for that.
    let took = Duration::from_micros(r.json["duration_us"].as_u64().unwrap());
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(4000),
        "{took:?}"
    );
}

#[test]
fn async_completion_is_reported() {
    let r = run(&rust_example("adversary"), "async-complete", &[]);
    assert_eq!(r.outcome(), "will_complete_async", "{}", r.json);
}

#[test]
fn info_describes_the_attempt() {
    let r = run(
        &rust_example("adversary"),
        "info",
        &["--attempt", "4", "--heartbeat-details", r#"{"k": 1}"#],
    );
    assert_eq!(r.outcome(), "completed", "{}", r.json);
    let info = &r.json["result"];
    assert_eq!(info["attempt"], 4);
    assert_eq!(info["activity_type"], "info");
    assert_eq!(info["heartbeat_details"], json!([{"k": 1}]));
}

// ---- adversarial guests: each ends with its typed outcome, within its limit

#[test]
fn an_infinite_loop_is_stopped_at_its_deadline() {
    let r = run(
        &rust_example("adversary"),
        "loop",
        &["--start-to-close", "1s"],
    );
    assert_eq!(r.outcome(), "timed_out", "{}", r.json);
    assert_eq!(r.code(), Some(1));
    let took = Duration::from_micros(r.json["duration_us"].as_u64().unwrap());
    assert!(
        took >= Duration::from_millis(1000) && took <= Duration::from_millis(1100),
        "stopped after {took:?}"
    );
}

#[test]
fn a_fuel_budget_stops_a_loop() {
    let r = run(&rust_example("adversary"), "loop", &["--fuel", "5000000"]);
    assert_eq!(r.outcome(), "fuel_exhausted", "{}", r.json);
}

#[test]
fn a_memory_bomb_hits_the_limit() {
    let r = run(
        &rust_example("adversary"),
        "memory-bomb",
        &["--memory-limit", "64MiB"],
    );
    assert_eq!(r.outcome(), "memory_limit_exceeded", "{}", r.json);
    assert_eq!(r.json["raw"]["limit"], 64 << 20);
    let peak = r.json["memory_peak"].as_u64().unwrap();
    assert!(peak <= 64 << 20 && peak > 32 << 20, "peak {peak}");
}

#[test]
fn deep_recursion_traps_with_stack_overflow() {
    let r = run(&rust_example("adversary"), "recurse", &[]);
    assert_eq!(r.outcome(), "trapped", "{}", r.json);
    // Rust guests keep large frames on a shadow stack in linear memory, which
    // runs out before wasm's own call stack: both end as a trap.
    let msg = r.json["raw"]["message"].as_str().unwrap();
    assert!(
        msg.contains("stack overflow") || msg.contains("out of bounds memory access"),
        "{msg}"
    );
}

#[test]
fn a_panic_traps_and_its_message_is_in_the_log() {
    let r = run(&rust_example("adversary"), "panic", &[]);
    assert_eq!(r.outcome(), "trapped", "{}", r.json);
    assert!(r.json["log"]
        .as_str()
        .unwrap()
        .contains("adversary panicked on purpose"));
}

#[test]
fn a_stdout_flood_is_truncated_and_stopped() {
    let r = run(
        &rust_example("adversary"),
        "stdout-flood",
        &["--start-to-close", "1s"],
    );
    assert_eq!(r.outcome(), "timed_out", "{}", r.json);
    let log = r.json["log"].as_str().unwrap();
    assert!(log.len() < 65 * 1024, "log of {} bytes", log.len());
    assert!(
        log.contains("[wharf] log truncated"),
        "{}",
        &log[log.len() - 200..]
    );
}

#[test]
fn a_huge_result_is_refused() {
    let r = run(
        &rust_example("adversary"),
        "huge-result",
        &["--input", r#"{"mib": 8}"#],
    );
    assert_eq!(r.outcome(), "output_too_large", "{}", r.json);
    assert_eq!(r.json["raw"]["what"], "result");
}

#[test]
fn oversized_heartbeat_details_are_refused() {
    let r = run(
        &rust_example("adversary"),
        "big-heartbeat",
        &["--input", r#"{"mib": 4}"#],
    );
    assert_eq!(r.outcome(), "output_too_large", "{}", r.json);
    assert_eq!(r.json["raw"]["what"], "heartbeat details");
}

#[test]
fn a_heartbeat_flood_completes() {
    let r = run(
        &rust_example("adversary"),
        "heartbeat-flood",
        &["--input", r#"{"count": 200000}"#],
    );
    assert_eq!(r.outcome(), "completed", "{}", r.json);
    assert_eq!(r.json["heartbeats"], 200000);
    assert_eq!(r.json["last_heartbeat_details"], json!([{"i": 199999}]));
}

#[test]
fn files_are_not_readable() {
    let r = run(
        &rust_example("adversary"),
        "read-file",
        &["--input", r#"{"path": "/etc/passwd"}"#],
    );
    assert_eq!(r.outcome(), "completed", "{}", r.json);
    assert_eq!(r.json["result"]["denied"], true, "{}", r.json);
}

#[test]
fn environment_and_args_are_empty() {
    let r = run(&rust_example("adversary"), "read-env", &[]);
    assert_eq!(r.outcome(), "completed", "{}", r.json);
    assert_eq!(r.json["result"]["vars"], json!([]));
}

#[test]
fn sockets_are_denied() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let input = json!({"addr": addr}).to_string();
    let r = run(&rust_example("adversary"), "connect", &["--input", &input]);
    assert_eq!(r.outcome(), "completed", "{}", r.json);
    assert_eq!(r.json["result"]["denied"], true, "{}", r.json);
}

#[test]
fn outbound_http_is_denied_with_a_clear_error() {
    let input = r#"{"url": "http://127.0.0.1:9/"}"#;
    let r = run(&rust_example("adversary"), "http-get", &["--input", input]);
    assert_eq!(r.outcome(), "completed", "{}", r.json);
    assert_eq!(r.json["result"]["denied"], true, "{}", r.json);
    assert!(
        r.json["result"]["error"]
            .as_str()
            .unwrap()
            .contains("HttpRequestDenied"),
        "{}",
        r.json
    );
    assert!(r.json["log"]
        .as_str()
        .unwrap()
        .contains("outbound HTTP GET http://127.0.0.1:9/ denied"));
}

// ---- the registry

#[test]
fn random_bytes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.wasm");
    std::fs::write(&path, b"this is not wasm at all").unwrap();
    let (code, err) = run_refused(&path, "x", &[]);
    assert_eq!(code, 2);
    assert!(err.contains("not a WebAssembly component"), "{err}");
}

#[test]
fn a_core_module_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("core.wasm");
    // The smallest valid core module: magic and version 1.
    std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
    let (code, err) = run_refused(&path, "x", &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("core WebAssembly module, not a component"),
        "{err}"
    );
}

#[test]
fn a_component_of_another_world_is_refused() {
    let (code, err) = run_refused(&rust_example("not-an-activity"), "x", &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("does not export wharf:activity/activities@0.1.0"),
        "{err}"
    );
    assert!(err.contains("wasi:cli/run"), "{err}");
}

#[test]
fn an_unknown_activity_type_is_refused_naming_the_known_ones() {
    let (code, err) = run_refused(&rust_example("greet"), "grete", &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains(r#"no activity type "grete"; it exports: greet"#),
        "{err}"
    );
}

#[test]
fn a_second_load_uses_the_artifact_and_a_truncated_or_altered_one_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let m = rust_example("greet");
    let args = ["--input", r#""Bo""#];
    let first = run_in(dir.path(), &m, "greet", &args);
    assert_eq!(first.json["module"]["source"], "compiled");
    let second = run_in(dir.path(), &m, "greet", &args);
    assert_eq!(second.json["module"]["source"], "artifact");
    assert_eq!(second.json["result"], "Hello, Bo!");

    let artifact = std::fs::read_dir(dir.path().join("artifacts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("an artifact was written");
    let len = std::fs::metadata(&artifact).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&artifact)
        .unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let third = run_in(dir.path(), &m, "greet", &args);
    assert_eq!(third.json["module"]["source"], "compiled", "{}", third.json);
    assert_eq!(third.json["result"], "Hello, Bo!");

    // One byte changed at the same length: what a size check would miss.
    let fourth = run_in(dir.path(), &m, "greet", &args);
    assert_eq!(
        fourth.json["module"]["source"], "artifact",
        "{}",
        fourth.json
    );
    let mut bytes = std::fs::read(&artifact).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&artifact, &bytes).unwrap();
    let fifth = run_in(dir.path(), &m, "greet", &args);
    assert_eq!(fifth.json["module"]["source"], "compiled", "{}", fifth.json);
    assert_eq!(fifth.json["result"], "Hello, Bo!");
}

#[test]
fn run_caches_artifacts_in_the_users_cache_directory_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let (cwd, home, xdg) = (
        tmp.path().join("project"),
        tmp.path().join("home"),
        tmp.path().join("xdg"),
    );
    std::fs::create_dir_all(&cwd).unwrap();
    let greet = rust_example("greet");
    let run = |xdg_cache_home: Option<&std::path::Path>| {
        let mut c = common::wharf();
        c.current_dir(&cwd)
            .env("HOME", &home)
            .env_remove("WHARF_DATA_DIR")
            .env_remove("XDG_CACHE_HOME");
        if let Some(x) = xdg_cache_home {
            c.env("XDG_CACHE_HOME", x);
        }
        let out = c
            .arg("run")
            .arg(&greet)
            .args(["greet", "--input", r#""Ada""#])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    let artifacts =
        |dir: std::path::PathBuf| std::fs::read_dir(dir.join("artifacts")).map_or(0, |d| d.count());
    run(None);
    assert!(artifacts(home.join(".cache/wharf")) > 0);
    run(Some(&xdg));
    assert!(artifacts(xdg.join("wharf")) > 0);
    assert_eq!(
        std::fs::read_dir(&cwd).unwrap().count(),
        0,
        "nothing written where wharf run was started"
    );
}
