//! The `wharf` client commands against a real server: every answer is read
//! into the API's own types (an answer the CLI cannot read fails the
//! command), the text forms show what matters, and `--json` prints the
//! server's JSON as it came.

mod common;

use serde_json::Value;

fn cli(s: &common::Server, args: &[&str]) -> String {
    common::cli(&s.base, args)
}

fn cli_json(s: &common::Server, args: &[&str]) -> Value {
    let text = cli(s, &[args, &["--json"]].concat());
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {text}"))
}

#[test]
fn client_commands_read_every_answer_and_json_is_the_servers() {
    let dir = common::data_dir_sharing_artifacts();
    let s = common::Server::start(dir.path(), &[]);
    let greet = common::rust_example("greet");
    let greet = greet.to_str().unwrap();

    let text = cli(&s, &["module", "upload", greet, "--name", "greet"]);
    assert!(text.contains("uploaded greet@1"), "{text}");
    let text = cli(&s, &["module", "list"]);
    assert!(text.starts_with("NAME") && text.contains("greet"), "{text}");
    assert_eq!(cli_json(&s, &["module", "list"]), s.get("modules").1);

    let text = cli(&s, &["deploy", "--task-queue", "q", "--module", "greet@1"]);
    assert!(text.contains("task queue q now runs greet@1"), "{text}");
    let text = cli(
        &s,
        &[
            "activity",
            "start",
            "--type",
            "greet",
            "--task-queue",
            "q",
            "--id",
            "a1",
            "--input",
            "\"Ada\"",
            "--start-to-close",
            "20s",
            "--max-attempts",
            "2",
            "--priority",
            "2",
            "--wait",
        ],
    );
    assert!(text.contains("Ada"), "{text}");
    let text = cli(&s, &["activity", "describe", "a1"]);
    assert!(
        text.contains("activity:   a1") && text.contains("state:      completed"),
        "{text}"
    );
    let described = cli_json(&s, &["activity", "describe", "a1"]);
    assert_eq!(described, s.get("activities/a1").1);
    assert_eq!(described["options"]["priority"], 2, "{described}");
    assert_eq!(
        described["options"]["retry_policy"]["maximum_attempts"], 2,
        "{described}"
    );
    let text = cli(&s, &["activity", "list"]);
    assert!(
        text.starts_with("ID") && text.contains("completed"),
        "{text}"
    );
    let text = cli(&s, &["activity", "result", "a1"]);
    assert!(text.contains("Ada"), "{text}");

    let text = cli(&s, &["queue", "describe", "q"]);
    assert!(
        text.contains("deployment:  greet@1") && text.contains("rate limit:  none"),
        "{text}"
    );
    let text = cli(&s, &["queue", "config", "q", "--rate", "5"]);
    assert!(text.contains("queue q: 5 tasks/s"), "{text}");
    let text = cli(&s, &["queue", "config", "q", "--clear"]);
    assert!(text.contains("queue q: no rate limit"), "{text}");
    cli(&s, &["limit", "set", "type:greet", "3"]);
    let text = cli(&s, &["limit", "list"]);
    assert!(text.contains("type:greet") && text.contains('3'), "{text}");
    assert_eq!(
        cli_json(&s, &["limit", "list"]),
        s.get("concurrency-limits").1
    );

    let text = cli(&s, &["namespace", "list"]);
    assert!(
        text.starts_with("NAME") && text.contains("default"),
        "{text}"
    );
    let text = cli(&s, &["namespace", "token", "create", "default"]);
    let id = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"))
        .to_owned();
    let text = cli(&s, &["namespace", "token", "list", "default"]);
    assert!(text.contains(&id), "{text}");
    let text = cli(&s, &["namespace", "token", "revoke", "default", &id]);
    assert!(text.contains(&format!("revoked token {id}")), "{text}");

    // An error answer becomes the server's message.
    let out = common::wharf()
        .args(["activity", "describe", "nobody", "--server", &s.base])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not found") && err.contains("404"), "{err}");
}

#[test]
fn a_reader_that_goes_away_ends_the_command_without_a_panic() {
    use std::os::unix::process::ExitStatusExt as _;
    let dir = common::data_dir_sharing_artifacts();
    let s = common::Server::start(dir.path(), &[]);
    // `wharf module list | head -0`: the reading end is closed before the
    // command has its answer to print.
    let mut child = common::wharf()
        .args(["module", "list", "--server", &s.base])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("wharf runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wharf ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        out.status
    );
}

/// The text of `activity describe ID`, with each attempt's duration (the
/// column after the outcome) replaced by `<took>` so the text compares whole.
fn described(s: &common::Server, id: &str) -> String {
    cli(s, &["activity", "describe", id])
        .lines()
        .map(|l| match (l.starts_with("  #"), l.get(..30), l.get(40..)) {
            (true, Some(head), Some(tail)) => format!("{head}<took>    {tail}"),
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn describe_shows_the_non_retryable_flag_decoded_details_and_each_attempts_log() {
    let dir = common::data_dir_sharing_artifacts();
    let s = common::Server::start(dir.path(), &[]);
    s.upload(
        "flaky",
        &common::precompiled(&common::rust_example("flaky")),
    );
    s.deploy("flaky", "q", 2);
    s.start_activity(serde_json::json!({
        "activity_id": "r", "activity_type": "reject", "task_queue": "q",
        "input": [{"reason": "no stock"}], "start_to_close_timeout": "10s"
    }));
    s.start_activity(serde_json::json!({
        "activity_id": "f", "activity_type": "flaky", "task_queue": "q",
        "input": [{"succeed_on_attempt": 3}], "start_to_close_timeout": "10s",
        "retry_policy": {"initial_interval": "10ms", "maximum_attempts": 2}
    }));
    s.wait_closed("r", std::time::Duration::from_secs(30));
    s.wait_closed("f", std::time::Duration::from_secs(30));

    assert_eq!(
        described(&s, "r"),
        r#"activity:   r
type:       reject on queue q
state:      failed
attempt:    1
input:      [{"reason":"no stock"}]
failure:    InvalidOrder (non-retryable): order rejected: no stock
details:    {"reason":"no stock"}
attempts:
  #1   failed                 <took>     flaky@1 InvalidOrder order rejected: no stock
       | [WARN] rejecting: no stock"#
    );
    assert_eq!(
        described(&s, "f"),
        r#"activity:   f
type:       flaky on queue q
state:      failed
attempt:    2
input:      [{"succeed_on_attempt":3}]
failure:    FlakyError (retryable): attempt 2 failed
details:    {"attempt":2}
attempts:
  #1   failed                 <took>     flaky@1 FlakyError attempt 1 failed
       | [INFO] attempt 1 of 3: failing on purpose
  #2   failed                 <took>     flaky@1 FlakyError attempt 2 failed
       | [INFO] attempt 2 of 3: failing on purpose"#
    );

    // --json: the raw payloads as they came, and decoded beside them.
    let v = cli_json(&s, &["activity", "describe", "r"]);
    assert_eq!(
        v["last_failure_details"],
        serde_json::json!([{"reason": "no stock"}])
    );
    let raw = &v["last_failure"]["details"][0];
    assert_eq!(raw["metadata"]["encoding"], "anNvbi9wbGFpbg==", "{v}");
    assert_eq!(v["last_failure"]["non_retryable"], true, "{v}");
}

#[test]
fn activity_start_errors_name_the_flags() {
    let dir = common::data_dir_sharing_artifacts();
    let s = common::Server::start(dir.path(), &[]);
    let start = |extra: &[&str]| {
        let out = common::wharf()
            .args(["activity", "start", "--type", "t", "--task-queue", "q"])
            .args(extra)
            .args(["--server", &s.base])
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = start(&[]);
    assert!(
        err.contains("--start-to-close") && err.contains("--schedule-to-close"),
        "{err}"
    );
    let err = start(&["--start-to-close", "soon", "--max-attempts", "2"]);
    assert!(
        err.contains("--start-to-close") && !err.contains("start_to_close_timeout"),
        "{err}"
    );
    let err = start(&["--schedule-to-close", "10s", "--priority", "9"]);
    assert!(err.contains("--priority"), "{err}");
}

#[test]
fn module_delete_is_refused_while_deployed_and_removes_unshared_files() {
    // Its own artifact cache: this test watches files go.
    let dir = tempfile::tempdir().unwrap();
    let s = common::Server::start(dir.path(), &[]);
    let greet = common::rust_example("greet");
    let sha = s.upload("greet", &greet)["module"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    s.upload("greet-copy", &greet);
    s.upload("noop", &common::rust_example("noop"));
    s.deploy("greet", "q", 1);
    let files = || {
        ["artifacts", "components"]
            .iter()
            .flat_map(|d| std::fs::read_dir(dir.path().join(d)).unwrap().flatten())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&sha))
            .count()
    };
    assert!(files() >= 2, "artifact and component of greet");

    let out = common::wharf()
        .args(["module", "delete", "greet", "--server", &s.base])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("deployed to task queue(s) q") && err.contains("409"),
        "{err}"
    );
    let (status, _) =
        s.send(reqwest::blocking::Client::new().delete(s.url("modules/greet?version=1")));
    assert_eq!(status, 409);
    let (status, _) =
        s.send(reqwest::blocking::Client::new().delete(s.url("modules/greet?version=7")));
    assert_eq!(status, 404);
    let (status, e) = s.send(reqwest::blocking::Client::new().delete(s.url("modules/a%20b")));
    assert_eq!(status, 400, "{e}");

    s.deploy("noop", "q", 1);
    let text = cli(&s, &["module", "delete", "greet@1"]);
    assert_eq!(text.trim(), "deleted greet@1");
    assert!(files() >= 2, "greet-copy has the same content");
    let text = cli(&s, &["module", "delete", "greet-copy"]);
    assert_eq!(text.trim(), "deleted greet-copy@1");
    assert_eq!(files(), 0, "no module has greet's content any more");
    let names: Vec<String> = s.get("modules").1["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["noop"]);
    // Uploaded again, it is compiled again, under a new version number
    // (attempts and deployment history name versions), and runs.
    assert_eq!(s.upload("greet", &greet)["module"]["version"], 2);
    s.deploy("greet", "q", 1);
    let a = s.run_in_namespace("default", "greet", serde_json::json!("Ada"));
    assert_eq!(a["result"], "Hello, Ada!", "{a}");
}

#[test]
fn start_batch_reads_json_lines_and_names_each_refused_line() {
    let dir = common::data_dir_sharing_artifacts();
    let s = common::Server::start(dir.path(), &[]);
    s.deploy_example("greet", "q", 10);
    let lines = [
        r#"{"activity_id": "l1", "activity_type": "greet", "task_queue": "q", "start_to_close_timeout": "5s"}"#,
        "",
        "{not json",
        r#"{"activity_id": "l1", "activity_type": "greet", "task_queue": "q", "start_to_close_timeout": "5s"}"#,
        r#"{"activity_type": "greet", "task_queue": "q"}"#,
    ];
    let mut child = common::wharf()
        .args(["activity", "start", "--batch", "-", "--server", &s.base])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.join("\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("line 3: invalid JSON"), "{text}");
    assert!(
        text.contains("line 5: ") && text.contains("(invalid_argument)"),
        "{text}"
    );
    assert!(
        text.ends_with("1 started, 1 already existed, 2 refused\n"),
        "{text}"
    );
    s.wait_closed("l1", std::time::Duration::from_secs(10));
}

#[test]
fn bench_options_outside_their_ranges_are_refused_naming_the_option() {
    let huge = u64::MAX.to_string();
    for (bench, option, value) in [
        ("instantiate", "--attempts", huge.as_str()),
        ("instantiate", "--restarts", "0"),
        ("throughput", "--concurrency", huge.as_str()),
        ("throughput", "--idle", huge.as_str()),
        ("throughput", "--latency-run", "100000y"),
        ("throughput", "--sync", "full,normal,full,normal,full"),
        ("throughput", "--sync", "fast"),
        ("throughput", "--warm-up", huge.as_str()),
        ("soak", "--window", "0"),
    ] {
        let stderr = refused_naming(
            common::wharf().args(["bench", bench, option, value, "--module", "noop.wasm"]),
            option,
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn bench_throughput_runs_single_and_batched_starts_to_completion() {
    let noop = common::rust_example("noop");
    // 7 a request over 300: whole batches and a short last one. Three
    // starts with the most in flight allowed: a sender per start in flight
    // would open more sockets than a process may; those in the modes' other
    // order. Each after an untimed warm-up, whose no-ops the timed run must
    // not count as its own.
    for (batch, n, in_flight, modes) in [
        ("1", "200", "16", "full,normal"),
        ("7", "300", "16", "full,normal"),
        ("1", "3", "100000", "normal,full"),
    ] {
        let out = common::wharf()
            .args(["bench", "throughput", "--module"])
            .arg(&noop)
            .args(["-n", n, "--concurrency", in_flight, "--batch", batch])
            .args(["--slots", "8", "--idle", "5", "--latency-run", "100ms"])
            .args(["--sync", modes, "--warm-up", "10"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "batch {batch}: {stdout}\n{stderr}");
        let disk = stdout
            .lines()
            .find(|l| l.starts_with("disk: "))
            .unwrap_or_else(|| panic!("no disk line: {stdout}"));
        // A flush on a memory file system may print as 0.00 ms: the line
        // must carry both figures, in order.
        let figure = |name: &str| -> f64 {
            disk.split(&format!("{name} "))
                .nth(1)
                .and_then(|r| r.split("ms").next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {disk}"))
        };
        let (p50, p99) = (figure("p50"), figure("p99"));
        assert!((0.0..=p99).contains(&p50), "{disk}");
        let rows: Vec<&str> = stdout
            .lines()
            .filter(|l| l.starts_with("full ") || l.starts_with("normal "))
            .collect();
        let order: Vec<&str> = rows.iter().filter_map(|r| r.split(' ').next()).collect();
        assert_eq!(order.join(","), modes, "{stdout}");
        for sync in ["full", "normal"] {
            let row = rows
                .iter()
                .find(|l| l.starts_with(sync))
                .unwrap_or_else(|| panic!("no {sync} row: {stdout}"));
            let rate: f64 = row.split_whitespace().nth(1).unwrap().parse().unwrap();
            assert!(rate > 0.0, "{row}");
            let cpu = stdout
                .lines()
                .find(|l| l.starts_with(&format!("{sync}: CPU per activity: server")))
                .unwrap_or_else(|| panic!("no {sync} CPU line: {stdout}"));
            // A served process holds at least a few MiB resident.
            let peak: f64 = cpu
                .split("peak resident memory ")
                .nth(1)
                .and_then(|r| r.strip_suffix(" MiB"))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no peak memory in {cpu}"));
            assert!(peak > 1.0, "{cpu}");
        }
    }
}

/// Runs `command`, asserts that it is refused as a usage error (exit code
/// 2) naming `option`, and returns what it printed on stderr.
fn refused_naming(command: &mut std::process::Command, option: &str) -> String {
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{option}: {stderr}");
    assert!(stderr.contains(option), "{option}: {stderr}");
    stderr
}

#[test]
fn settings_outside_their_ranges_are_refused_naming_the_option() {
    let huge = u64::MAX.to_string();
    for (command, option, value, range) in [
        ("serve", "--max-body-memory", "512KiB", "1MiB to 1TiB"),
        ("serve", "--max-body-memory", "2000GiB", "1MiB to 1TiB"),
        ("serve", "--body-idle-timeout", "500ms", "1s to 1h"),
        ("serve", "--body-idle-timeout", "2h", "1s to 1h"),
        ("serve", "--payload-limit", "0", "1KiB to 256MiB"),
        ("serve", "--payload-limit", huge.as_str(), "1KiB to 256MiB"),
        ("serve", "--payload-limit", "99999999999GiB", "too large"),
        ("serve", "--memory-limit", "8GiB", "1MiB to 4GiB"),
        ("serve", "--cache-size", "17GiB", "0 to 16GiB"),
        ("serve", "--cancel-grace", "2h", "0s to 1h"),
        ("serve", "--shutdown-grace", "100000y", "0s to 1h"),
        ("serve", "--max-concurrent", "0", "1..=1000000"),
        ("serve", "--max-connections", "0", "1..=1000000"),
        ("serve", "--control-threads", "0", "1..=64"),
        ("worker", "--control-threads", "65", "1..=64"),
        (
            "worker",
            "--max-activities-per-second",
            "NaN",
            "0.001 to 1000000",
        ),
        (
            "worker",
            "--task-queue-activities-per-second",
            "0",
            "0.001 to 1000000",
        ),
        ("worker", "--payload-limit", "0", "1KiB to 256MiB"),
        ("run", "--memory-limit", "0", "1MiB to 4GiB"),
        ("run", "--start-to-close", "0s", "1ms"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let stderr = refused_naming(
            common::wharf()
                .args([command, option, value])
                .arg("--data-dir")
                .arg(dir.path()),
            option,
        );
        assert!(
            stderr.contains(range),
            "{command} {option} {value}: {stderr}"
        );
    }
}
