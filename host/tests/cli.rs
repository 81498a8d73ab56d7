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
