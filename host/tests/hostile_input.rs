//! Hostile and broken input against the real `wharf serve`: values out of
//! range refused with a 400 naming the field and its range, a restart that
//! survives whatever is stored, a full disk answered 507 with nothing
//! changed and writes resuming once space is freed, namespace quotas on
//! external completions and on stored payload bytes, parked activities
//! costing memory independent of their input, describe of unknown queues
//! creating nothing, identifier limits, and errors that say what is
//! accepted.

mod common;

use common::Server;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

fn server(dir: &Path) -> Server {
    Server::start(dir, &[])
}

fn message(e: &Value) -> String {
    e["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Asserts a 400 whose message names `field` and contains `also`.
fn refused(answer: (u16, Value), field: &str, also: &str) {
    let (status, e) = answer;
    assert_eq!(status, 400, "{field}: {e}");
    assert_eq!(e["error"]["code"], "invalid_argument", "{e}");
    let m = message(&e);
    assert!(m.contains(field) && m.contains(also), "{field}/{also}: {m}");
}

fn healthy(s: &Server) {
    let text = reqwest::blocking::get(format!("{}/healthz", s.base))
        .and_then(|r| r.text())
        .unwrap_or_default();
    assert_eq!(text.trim(), "ok");
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn greet(s: &Server, id: &str, queue: &str, extra: Value) -> (u16, Value) {
    let mut body = json!({
        "activity_id": id, "activity_type": "greet", "task_queue": queue,
        "input": ["Ada"], "start_to_close_timeout": "10s"
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    s.post("activities", &body)
}

#[test]
fn huge_schedule_to_close_is_refused_and_a_restart_comes_up() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    s.deploy_example("greet", "q", 10);

    // Each of these once panicked a runtime thread or the next start.
    let range = "1 ms to 10 years";
    refused(
        greet(
            &s,
            "h1",
            "q",
            json!({"schedule_to_close_timeout": "10000000000000000000s"}),
        ),
        "schedule_to_close_timeout",
        range,
    );
    refused(
        greet(
            &s,
            "h2",
            "q",
            json!({"start_to_close_timeout": 18446744073709551615u64}),
        ),
        "start_to_close_timeout",
        range,
    );
    refused(
        greet(&s, "h3", "q", json!({"heartbeat_timeout": "3651days"})),
        "heartbeat_timeout",
        range,
    );
    refused(
        greet(&s, "h4", "q", json!({"schedule_to_start_timeout": "0s"})),
        "schedule_to_start_timeout",
        range,
    );
    refused(
        greet(
            &s,
            "h5",
            "q",
            json!({"retry_policy": {"backoff_coefficient": 1e308}}),
        ),
        "retry_policy.backoff_coefficient",
        "1 to 100",
    );
    refused(
        greet(
            &s,
            "h6",
            "q",
            json!({"retry_policy": {"maximum_interval": "4000days"}}),
        ),
        "retry_policy.maximum_interval",
        range,
    );
    refused(
        greet(&s, "h7", "q", json!({"fairness_weight": 1e30})),
        "fairness_weight",
        "0.001 to 1000",
    );
    refused(
        greet(&s, "h8", "q", json!({"priority": 9})),
        "priority",
        "1 (highest) to 5 (lowest)",
    );
    refused(
        s.put("task-queues/q", &json!({"rate": 1e-300})),
        "rate",
        "0.001 to 1000000",
    );
    refused(
        s.put("task-queues/q", &json!({"rate": 5, "burst": 1e300})),
        "burst",
        "1 to 1000000",
    );
    refused(
        s.send(
            reqwest::blocking::Client::new()
                .patch(s.ns_url("default", ""))
                .json(&json!({"max_starts_per_second": 1e-300})),
        ),
        "max_starts_per_second",
        "0.001 to 1000000",
    );
    refused(
        s.put(
            "task-queues/q/deployment",
            &json!({"module": "greet", "max_concurrent": 0}),
        ),
        "max_concurrent",
        "1 to 1000000",
    );
    refused(
        s.post(
            "activities/fail",
            &json!({"activity_id": "h1", "error": {"message": "m", "next_retry_delay": "10000000000000000000s"}}),
        ),
        "next_retry_delay",
        range,
    );

    // The longest accepted durations run, and their timers do not overflow.
    let (status, e) = greet(
        &s,
        "longest",
        "q",
        json!({"schedule_to_close_timeout": "3650days", "start_to_close_timeout": "3650days",
               "schedule_to_start_timeout": "3650days", "heartbeat_timeout": "3650days",
               "retry_policy": {"initial_interval": "3650days", "backoff_coefficient": 100}}),
    );
    assert_eq!(status, 201, "{e}");
    // Waits far in the future: in backoff for ten years, then restarted.
    let (status, e) = s.post(
        "activities",
        &json!({"activity_id": "far", "activity_type": "nope", "task_queue": "nobody",
                "schedule_to_close_timeout": "3650days"}),
    );
    assert_eq!(status, 201, "{e}");
    assert_eq!(
        s.wait_closed("longest", Duration::from_secs(30))["state"],
        "completed"
    );
    healthy(&s);
    s.kill();

    let s = server(dir.path());
    healthy(&s);
    let (_, far) = s.get("activities/far");
    assert_eq!(far["state"], "scheduled", "{far}");
    assert_eq!(greet(&s, "after", "q", json!({})).0, 201);
    assert_eq!(
        s.wait_closed("after", Duration::from_secs(30))["state"],
        "completed"
    );
}

#[test]
fn stored_rows_out_of_range_or_unreadable_are_failed_and_the_server_comes_up() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    s.upload("greet", &common::rust_example("greet"));
    for id in ["garbage", "range", "state", "unreadable", "far", "good"] {
        assert_eq!(greet(&s, id, "later", json!({})).0, 201);
    }
    s.kill();

    // An older version, a bug or a hand edit left these behind.
    let db = rusqlite::Connection::open(dir.path().join("wharf.db")).unwrap();
    let set = |id: &str, sql: &str| {
        let n = db
            .execute(
                &format!("UPDATE activities SET {sql} WHERE activity_id = ?1"),
                [id],
            )
            .unwrap();
        assert_eq!(n, 1, "{id}");
    };
    set("garbage", "options = 'not json at all'");
    set(
        "range",
        r#"options = '{"schedule_to_close_timeout":"10000000000000000000s"}'"#,
    );
    set("state", "state = 'dancing'");
    set("unreadable", "attempt = 'many'");
    set("far", "attempt_scheduled_ms = 9223372036854775807");
    drop(db);

    let s = server(dir.path());
    healthy(&s);
    for id in ["garbage", "range", "state", "unreadable"] {
        let (status, a) = s.get(&format!("activities/{id}"));
        assert_eq!(status, 200, "{id}: {a}");
        assert_eq!(a["state"], "failed", "{id}: {a}");
        assert_eq!(
            a["last_failure"]["type"], "WharfStoredStateInvalid",
            "{id}: {a}"
        );
        assert!(!a["last_failure"]["message"]
            .as_str()
            .unwrap_or("")
            .is_empty());
    }
    let (_, range) = s.get("activities/range");
    assert!(
        range["last_failure"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("schedule_to_close_timeout"),
        "{range}"
    );
    // Valid rows run as before once the queue is served.
    s.deploy("greet", "later", 10);
    assert_eq!(
        s.wait_closed("good", Duration::from_secs(30))["state"],
        "completed"
    );
    assert_eq!(s.get("activities/far").1["state"], "scheduled");
    assert_eq!(greet(&s, "new", "later", json!({})).0, 201);
    assert_eq!(
        s.wait_closed("new", Duration::from_secs(30))["state"],
        "completed"
    );
    s.kill();

    // And the failures are durable.
    let s = server(dir.path());
    assert_eq!(s.get("activities/garbage").1["state"], "failed");
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs ({}); a full disk needs root",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs(dir))
    }

    /// Writes a file until the file system is full.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![7u8; 64 << 10];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

/// What `/healthz` answers: (status, first line).
fn health(s: &Server) -> (u16, String) {
    let r = reqwest::blocking::get(format!("{}/healthz", s.base)).unwrap();
    let status = r.status().as_u16();
    (status, r.text().unwrap_or_default().trim().to_owned())
}

#[test]
fn a_full_disk_answers_507_changes_nothing_and_writes_resume_once_space_is_freed() {
    let Some(fs) = Tmpfs::mount("48m") else {
        return;
    };
    let data = fs.0.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let s = server(&data);
    s.deploy_example("adversary", "q", 10);
    s.start_activity(json!({
        "activity_id": "later", "activity_type": "async-complete", "task_queue": "q",
        "start_to_close_timeout": "120s"
    }));
    wait_for("awaiting async", || {
        (s.get("activities/later").1["awaiting_async"] == json!(true)).then_some(())
    });
    // An attempt that ends while the disk is full, with a result too large
    // for what SQLite has room for: written, as attempt 1's, once there is
    // room (not run again).
    let sleep_ms = 6_000;
    s.start_activity(json!({
        "activity_id": "ends-while-full", "activity_type": "sleep", "task_queue": "q",
        "start_to_close_timeout": "120s", "input": [{"ms": sleep_ms, "pad_bytes": 1_500_000}]
    }));
    wait_for("sleeping", || {
        (s.get("activities/ends-while-full").1["state"] == json!("started")).then_some(())
    });
    let sleeping_since = std::time::Instant::now();

    let filler = fs.fill();
    // Larger than anything SQLite has room for in its files already.
    let big = "r".repeat(1_500_000);
    let (status, e) = s.post(
        "activities/complete",
        &json!({"activity_id": "later", "result": big}),
    );
    assert_eq!(status, 507, "{e}");
    assert_eq!(e["error"]["code"], "storage_full", "{e}");
    let (status, e) = s.post(
        "activities/heartbeat",
        &json!({"activity_id": "later", "details": ["h".repeat(900_000)]}),
    );
    assert_eq!(status, 507, "{e}");
    let start = json!({"activity_id": "unwritten", "activity_type": "async-complete",
        "task_queue": "q", "start_to_close_timeout": "10s", "input": [big]});
    let (status, e) = s.post("activities", &start);
    assert_eq!(status, 507, "{e}");
    assert_eq!(e["error"]["code"], "storage_full", "{e}");
    let (status, text) = health(&s);
    assert_eq!(status, 503, "{text}");
    assert!(text.starts_with("degraded: storage_full"), "{text}");
    // An upload whose component and artifact have no room: the same 507,
    // and not remembered as a refused module. (After the health check: a
    // background write that finds room in the file clears the degraded
    // state, and the upload takes long enough for one.)
    let greet = std::fs::read(common::rust_example("greet")).unwrap();
    let upload = || {
        s.send(
            reqwest::blocking::Client::new()
                .post(s.ns_url("default", "modules?name=greet"))
                .body(greet.clone()),
        )
    };
    let (status, e) = upload();
    assert_eq!(status, 507, "{e}");
    assert_eq!(e["error"]["code"], "storage_full", "{e}");
    // Nothing moved: the activity still awaits its completion, the refused
    // start left no activity.
    let (_, a) = s.get("activities/later");
    assert_eq!(
        (&a["state"], &a["awaiting_async"]),
        (&json!("started"), &json!(true)),
        "{a}"
    );
    assert_eq!(a["heartbeat_details"], json!([]), "{a}");
    assert_eq!(s.get("activities/unwritten").0, 404);
    // The guest has to have ended (nothing outside it shows that before
    // the write); its end is not written, so the activity reads as before.
    std::thread::sleep(
        (Duration::from_millis(sleep_ms) + Duration::from_secs(2))
            .saturating_sub(sleeping_since.elapsed()),
    );
    let (_, a) = s.get("activities/ends-while-full");
    assert_eq!(
        (&a["state"], &a["attempt"]),
        (&json!("started"), &json!(1)),
        "{a}"
    );

    // Space freed: the same server writes again, no restart.
    std::fs::remove_file(filler).unwrap();
    let (status, e) = s.post("activities", &start);
    assert_eq!(status, 201, "{e}");
    assert_eq!(health(&s), (200, "ok".to_owned()));
    let (status, e) = upload();
    assert_eq!(status, 201, "{e}");
    let (status, e) = s.post(
        "activities/complete",
        &json!({"activity_id": "later", "result": "done"}),
    );
    assert_eq!(status, 200, "{e}");
    assert_eq!(
        s.wait_closed("later", Duration::from_secs(10))["result"],
        "done"
    );
    let a = s.wait_closed("ends-while-full", Duration::from_secs(30));
    assert_eq!(
        (&a["state"], &a["attempt"]),
        (&json!("completed"), &json!(1)),
        "{a}"
    );
    assert_eq!(a["result"]["pad"].as_str().map(str::len), Some(1_500_000));
    s.kill();
    let s = server(&data);
    let (_, a) = s.get("activities/later");
    assert_eq!(
        (&a["state"], &a["result"]),
        (&json!("completed"), &json!("done")),
        "{a}"
    );
    assert_eq!(s.get("activities/unwritten").0, 200);
    s.kill();
}

/// A start with a small input has its first attempt dispatched before its
/// row commits. If the database then refuses the row, the start is
/// answered 503 and leaves nothing: no activity, no attempt running on,
/// and the same start succeeds and runs once rows are taken again.
#[test]
fn a_start_whose_row_is_refused_leaves_no_activity_and_no_attempt_running() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    s.deploy_example("adversary", "q", 10);
    // The refusal takes a while (some 100 ms of work in the trigger): the
    // attempt dispatched meanwhile is running when it comes.
    let db = slow_insert_of(dir.path(), "doomed", 1, "SELECT RAISE(ABORT, 'refused')");
    let start = json!({"activity_id": "doomed", "activity_type": "sleep", "task_queue": "q",
        "start_to_close_timeout": "300s", "input": [{"ms": 120_000}]});
    for _ in 0..5 {
        let (status, e) = s.post("activities", &start);
        assert_eq!(status, 503, "{e}");
        assert_eq!(e["error"]["code"], "unavailable", "{e}");
        assert_eq!(s.get("activities/doomed").0, 404);
    }
    // A quick attempt (an echo) may end while the trigger works, before
    // the refusal: nothing of it is counted or kept either.
    let mut quick = start.clone();
    quick["activity_type"] = json!("echo");
    for _ in 0..5 {
        let (status, e) = s.post("activities", &quick);
        assert_eq!(status, 503, "{e}");
    }
    // A stopped attempt ends at once, not after the 120 s it would sleep
    // (the wait gives up after 30 s).
    wait_for("no attempt running", || {
        let (_, q) = s.get("task-queues/q");
        (q["running"] == 0 && q["backlog"] == 0).then_some(())
    });
    let (_, list) = s.get("activities");
    assert_eq!(list["activities"], json!([]), "{list}");
    assert_eq!(gauge(&s, "wharf_activities_completed_total"), Some(0));
    assert_eq!(gauge(&s, "wharf_activities_started_total"), Some(0));

    db.execute_batch("DROP TRIGGER slow_doomed").unwrap();
    let mut short = start.clone();
    short["input"] = json!([{"ms": 10}]);
    let (status, e) = s.post("activities", &short);
    assert_eq!(status, 201, "{e}");
    completes_on_first_attempt(&s, "doomed");
    s.kill();
}

/// A second start of an activity whose first start's row is still being
/// written waits for that write: refused as the first is when the row is
/// refused, and answered "existing" only once the row has committed.
#[test]
fn a_start_of_an_id_whose_row_is_being_written_waits_for_that_write() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    s.deploy_example("adversary", "q", 10);
    // A small input: the first attempt is dispatched while the row is being
    // written, and its second of sleep shows the run is in memory.
    let start = json!({"activity_id": "twice", "activity_type": "sleep", "task_queue": "q",
        "start_to_close_timeout": "30s", "input": [{"ms": 1000}]});
    let running = || s.get("task-queues/q").1["running"].as_u64();
    // Two starts, the second while the first's row is in the writer (about
    // a second of work in the trigger).
    let both = |second: &dyn Fn() -> (u16, Value)| {
        wait_for("no attempt running", || {
            (running() == Some(0)).then_some(())
        });
        std::thread::scope(|scope| {
            let first = scope.spawn(|| s.post("activities", &start));
            wait_for("the first start's attempt", || {
                (running() == Some(1)).then_some(())
            });
            let second = second();
            let rows: i64 = rusqlite::Connection::open(dir.path().join("wharf.db"))
                .unwrap()
                .query_row(
                    "SELECT count(*) FROM activities WHERE activity_id = 'twice'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            (first.join().unwrap(), second, rows)
        })
    };

    let db = slow_insert_of(dir.path(), "twice", 8, "SELECT RAISE(ABORT, 'refused')");
    let alone = || s.post("activities", &start);
    let ((first, e1), (second, e2), _) = both(&alone);
    assert_eq!(first, 503, "{e1}");
    assert_eq!(
        second, 503,
        "the second start was answered before the write failed: {e2}"
    );
    assert_eq!(s.get("activities/twice").0, 404);

    // The same in a batch: that start is refused, the batch's other one
    // created.
    let mut other = start.clone();
    other["activity_id"] = json!("other");
    let batch = json!({"starts": [start.clone(), other]});
    let ((first, e1), (status, r), _) = both(&|| s.post("activities:batch", &batch));
    assert_eq!((first, status), (503, 200), "{e1} {r}");
    let results = &r["results"];
    assert_eq!(
        (&results[0]["outcome"], &results[0]["status"]),
        (&json!("error"), &json!(503)),
        "{r}"
    );
    assert_eq!(results[1]["outcome"], "created", "{r}");
    assert_eq!(s.get("activities/twice").0, 404);

    db.execute_batch("DROP TRIGGER slow_twice").unwrap();
    let _db = slow_insert_of(dir.path(), "twice", 8, "SELECT 1");
    let ((first, e1), (second, e2), rows) = both(&alone);
    assert_eq!((first, &e1["created"]), (201, &json!(true)), "{e1}");
    assert_eq!((second, &e2["created"]), (200, &json!(false)), "{e2}");
    assert_eq!(
        rows, 1,
        "the second start was answered before the row committed"
    );
    completes_on_first_attempt(&s, "twice");
    s.kill();
}

/// Slows the insert of activity `id`'s row by `pieces` times some 100 ms
/// of work (40 MB at most at once), then runs `then` (a trigger's
/// statement) on it; the connection that set this up is returned.
fn slow_insert_of(dir: &Path, id: &str, pieces: usize, then: &str) -> rusqlite::Connection {
    let db = rusqlite::Connection::open(dir.join("wharf.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let piece = "length(replace(hex(zeroblob(20000000)), '00', 'x'))";
    let work = vec![piece; pieces].join(" + ");
    db.execute_batch(&format!(
        "CREATE TRIGGER slow_{id} BEFORE INSERT ON activities \
         WHEN NEW.activity_id = '{id}' BEGIN {then} WHERE {work} > 0; END"
    ))
    .unwrap();
    db
}

/// Waits for activity `id` to close, and checks it completed on attempt 1.
fn completes_on_first_attempt(s: &Server, id: &str) {
    let a = s.wait_closed(id, Duration::from_secs(30));
    assert_eq!(
        (&a["state"], &a["attempt"]),
        (&json!("completed"), &json!(1)),
        "{a}"
    );
}

/// A client that gives up while its start's row is being written changes
/// nothing of the start: the row commits, and the activity runs (its input
/// is over the 1 KiB kept in memory, so the run is queued only once the
/// row has committed).
#[test]
fn a_start_whose_client_leaves_before_the_commit_still_runs() {
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    s.deploy_example("adversary", "q", 10);
    // About a second of work in the trigger, and nothing else.
    let _db = slow_insert_of(dir.path(), "left", 8, "SELECT 1");
    let body = json!({"activity_id": "left", "activity_type": "echo", "task_queue": "q",
        "start_to_close_timeout": "30s", "input": ["x".repeat(5000)]})
    .to_string();
    let mut client = post_and_keep(&s, "/api/v1/namespaces/default/activities", &body);
    // The client leaves once the row's write is under way (the server's
    // writer holds the database's write lock, on an otherwise idle
    // server), not after a fixed time a loaded machine may not keep.
    let probe = rusqlite::Connection::open(dir.path().join("wharf.db")).unwrap();
    probe.busy_timeout(Duration::ZERO).unwrap();
    wait_for("the start's write to be under way", || {
        let busy = probe.execute_batch("BEGIN IMMEDIATE; ROLLBACK").is_err();
        busy.then_some(())
    });
    client.set_nonblocking(true).unwrap();
    let mut answer = [0u8; 1];
    let unanswered = client.read(&mut answer);
    assert!(
        unanswered.is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "the start was answered before its client left"
    );
    drop(client);
    // The activity is known once its row has committed (its trigger's work
    // takes longer on a loaded machine).
    wait_for("the start to commit", || {
        (s.get("activities/left").0 == 200).then_some(())
    });
    completes_on_first_attempt(&s, "left");
    s.kill();
}

#[test]
fn external_completions_obey_the_namespace_payload_quotas() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    s.deploy_example("adversary", "q", 10);
    let (status, e) = s.send(
        reqwest::blocking::Client::new()
            .patch(s.ns_url("default", ""))
            .json(&json!({"max_payload_bytes": 1000, "max_heartbeat_bytes": 500})),
    );
    assert_eq!(status, 200, "{e}");
    s.start_activity(json!({
        "activity_id": "ext", "activity_type": "async-complete", "task_queue": "q",
        "start_to_close_timeout": "60s"
    }));
    wait_for("awaiting async", || {
        (s.get("activities/ext").1["awaiting_async"] == json!(true)).then_some(())
    });
    let (status, e) = s.post(
        "activities/heartbeat",
        &json!({"activity_id": "ext", "details": ["h".repeat(600)]}),
    );
    assert_eq!(status, 413, "{e}");
    assert!(message(&e).contains("500 bytes"), "{e}");
    let (status, e) = s.post(
        "activities/complete",
        &json!({"activity_id": "ext", "result": "r".repeat(2000)}),
    );
    assert_eq!(status, 413, "{e}");
    assert!(message(&e).contains("1000 bytes"), "{e}");
    let (status, e) = s.post(
        "activities/fail",
        &json!({"activity_id": "ext", "error": {"message": "m", "details": ["d".repeat(2000)]}}),
    );
    assert_eq!(status, 413, "{e}");
    let (status, e) = s.post(
        "activities/heartbeat",
        &json!({"activity_id": "ext", "details": ["small"]}),
    );
    assert_eq!(status, 200, "{e}");
    let (status, e) = s.post(
        "activities/complete",
        &json!({"activity_id": "ext", "result": "fits"}),
    );
    assert_eq!(status, 200, "{e}");
    assert_eq!(
        s.wait_closed("ext", Duration::from_secs(10))["result"],
        "fits"
    );
}

fn rss_kib(pid: u32) -> u64 {
    wharf::bench::harness::rss_bytes(pid).unwrap_or(0) / 1024
}

/// Starts `n` activities with ids `{prefix}{i}` and `input` on a queue
/// nothing serves, so they stay open.
fn park(s: &Server, prefix: &str, n: usize, input: &Value) {
    for i in 0..n {
        let (status, e) = s.post(
            "activities",
            &json!({"activity_id": format!("{prefix}{i}"), "activity_type": "greet",
                    "task_queue": "nobody", "start_to_close_timeout": "1h", "input": input}),
        );
        assert_eq!(status, 201, "{e}");
    }
}

/// Open activities keep their payloads in SQLite, not in memory: 50 of
/// them with a 1 MB input grow the server by far less than 50 MB (kept in
/// memory, input and its encoding took over 2 MB each), and a restart
/// recovers them without loading their inputs.
#[test]
fn parked_activities_with_large_inputs_cost_the_server_little_memory() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--sync", "normal"]);
    let input = json!(["p".repeat(1_000_000)]);
    // Warm up the allocator and the connection pool, then measure.
    park(&s, "warm", 5, &input);
    let before = rss_kib(s.child.id());
    park(&s, "big", 50, &input);
    let grown = rss_kib(s.child.id()).saturating_sub(before);
    assert!(
        grown < 20 * 1024,
        "memory grew {grown} KiB for 50 parked activities of 1 MB"
    );
    // The input is all there for whoever asks.
    let (_, a) = s.get("activities/big7");
    assert_eq!(
        a["input"][0].as_str().map(str::len),
        Some(1_000_000),
        "state {}",
        a["state"]
    );
    s.kill();

    let s = Server::start(dir.path(), &["--sync", "normal"]);
    let recovered = rss_kib(s.child.id());
    assert!(
        recovered < before + 20 * 1024,
        "a restart with 55 open 1 MB activities takes {recovered} KiB (the first server {before} KiB)"
    );
    let (_, n) = s.send(reqwest::blocking::Client::new().get(s.ns_url("default", "")));
    assert_eq!(n["namespace"]["open_activities"], 55, "{n}");
    healthy(&s);
}

/// The namespace's `max_stored_bytes` counts the payloads of its open
/// activities as stored (input and heartbeat details): a start beyond it is
/// refused with 507 and leaves nothing; closing frees its share; a restart
/// counts the same.
#[test]
fn the_stored_bytes_quota_refuses_starts_beyond_it_and_frees_what_closes() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    s.deploy_example("adversary", "q", 10);
    let namespace = |s: &Server| {
        let (status, n) = s.send(reqwest::blocking::Client::new().get(s.ns_url("default", "")));
        assert_eq!(status, 200, "{n}");
        n["namespace"].clone()
    };
    let stored = |s: &Server| namespace(s)["stored_bytes"].as_u64().unwrap_or(u64::MAX);
    assert_eq!(namespace(&s)["quotas"]["max_stored_bytes"], 1u64 << 30);
    let (status, e) = s.send(
        reqwest::blocking::Client::new()
            .patch(s.ns_url("default", ""))
            .json(&json!({"max_stored_bytes": 6000})),
    );
    assert_eq!(status, 200, "{e}");
    refused(
        s.send(
            reqwest::blocking::Client::new()
                .patch(s.ns_url("default", ""))
                .json(&json!({"max_stored_bytes": 10})),
        ),
        "max_stored_bytes",
        "1 KiB",
    );
    assert_eq!(stored(&s), 0);

    let input = json!(["i".repeat(1000)]);
    park(&s, "a", 2, &input);
    let two = stored(&s);
    assert!((2000..5000).contains(&two), "two 1000-byte inputs: {two}");
    let (status, e) = s.post(
        "activities",
        &json!({"activity_id": "over", "activity_type": "greet", "task_queue": "nobody",
                "start_to_close_timeout": "1h", "input": ["i".repeat(3000)]}),
    );
    assert_eq!(status, 507, "{e}");
    assert_eq!(e["error"]["code"], "stored_bytes_quota_exceeded", "{e}");
    assert!(message(&e).contains("max_stored_bytes"), "{e}");
    assert_eq!(s.get("activities/over").0, 404);
    assert_eq!(stored(&s), two, "a refused start counts nothing");

    // Heartbeat details count while the activity is open.
    s.start_activity(json!({
        "activity_id": "async", "activity_type": "async-complete", "task_queue": "q",
        "start_to_close_timeout": "60s"
    }));
    wait_for("awaiting async", || {
        (s.get("activities/async").1["awaiting_async"] == json!(true)).then_some(())
    });
    let (status, e) = s.post(
        "activities/heartbeat",
        &json!({"activity_id": "async", "details": ["h".repeat(500)]}),
    );
    assert_eq!(status, 200, "{e}");
    let with_details = stored(&s);
    assert!(with_details > two + 500, "{with_details} after {two}");
    s.kill();

    // A restart counts the same from what is stored.
    let s = server(dir.path());
    assert_eq!(stored(&s), with_details);
    let (status, e) = s.post(
        "activities/complete",
        &json!({"activity_id": "async", "result": "done"}),
    );
    assert_eq!(status, 200, "{e}");
    assert_eq!(stored(&s), two);
    let (status, e) = s.post("activities/a0/cancel", &json!({}));
    assert_eq!(status, 200, "{e}");
    assert_eq!(stored(&s), two / 2);
    let (status, e) = s.post(
        "activities",
        &json!({"activity_id": "over", "activity_type": "greet", "task_queue": "nobody",
                "start_to_close_timeout": "1h", "input": ["i".repeat(3000)]}),
    );
    assert_eq!(status, 201, "once an activity closed there is room: {e}");
}

#[test]
fn describing_unknown_queues_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    // As in Temporal, a queue nobody used is there, and empty.
    let (status, q) = s.get("task-queues/never-used");
    assert_eq!(status, 200, "{q}");
    assert_eq!(
        (&q["backlog"], &q["running"]),
        (&json!(0), &json!(0)),
        "{q}"
    );
    assert_eq!(q["deployment"], Value::Null);

    let pid = s.child.id();
    let client = reqwest::blocking::Client::new();
    let describe_many = |from: usize| {
        for i in from..from + 4000 {
            let name = format!("{i:0>990}");
            let r = client
                .get(s.url(&format!("task-queues/{name}")))
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
        }
    };
    // Warm up the allocator and the connection pool, then measure.
    describe_many(0);
    let before = rss_kib(pid);
    describe_many(10_000);
    describe_many(20_000);
    let grown = rss_kib(pid).saturating_sub(before);
    // Keeping state for each name would cost several KiB apiece (~8000 of
    // them: tens of MiB); describing must not grow with the names asked.
    assert!(
        grown < 8 * 1024,
        "memory grew {grown} KiB over 8000 describes"
    );
    healthy(&s);
}

#[test]
fn identifiers_over_1000_bytes_and_control_characters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    s.deploy_example("greet", "q", 10);
    let long = "i".repeat(1001);
    refused(
        greet(&s, &long, "q", json!({})),
        "activity_id",
        "1 to 1000 bytes",
    );
    refused(
        greet(&s, "x", &long, json!({})),
        "task_queue",
        "1 to 1000 bytes",
    );
    refused(
        greet(&s, "x", "q", json!({"activity_type": long.clone()})),
        "activity_type",
        "1 to 1000 bytes",
    );
    refused(
        greet(&s, "x", "q", json!({"activity_type": ""})),
        "activity_type",
        "empty",
    );
    refused(
        greet(&s, "bell\u{7}", "q", json!({})),
        "activity_id",
        "control characters",
    );
    refused(
        greet(&s, "x", "q", json!({"fairness_key": "k".repeat(257)})),
        "fairness_key",
        "1 to 256 bytes",
    );
    refused(
        greet(&s, "x", "q", json!({"concurrency_key": ""})),
        "concurrency_key",
        "empty",
    );
    refused(
        greet(
            &s,
            "x",
            "q",
            json!({"retry_policy": {"non_retryable_error_types": vec!["E"; 101]}}),
        ),
        "non_retryable_error_types",
        "at most 100",
    );
    refused(
        greet(&s, "x", "q", json!({"input": vec![1; 101]})),
        "input",
        "at most 100",
    );
    refused(
        s.get(&format!("task-queues/{long}")),
        "task_queue",
        "1 to 1000 bytes",
    );
    refused(
        s.post(
            "activities/complete",
            &json!({"activity_id": long, "result": 1}),
        ),
        "activity_id",
        "1 to 1000 bytes",
    );
    refused(
        s.put(
            "concurrency-limits",
            &json!({"key": format!("key:{long}"), "max_concurrent": 1}),
        ),
        "key",
        "1 to 1000 bytes",
    );
    // At the limit is fine.
    let id = "i".repeat(1000);
    assert_eq!(greet(&s, &id, "q", json!({})).0, 201);
    assert_eq!(
        s.wait_closed(&id, Duration::from_secs(30))["state"],
        "completed"
    );
}

#[test]
fn errors_say_what_is_wrong_and_what_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    let (status, e) = greet(&s, "x", "q", json!({"start_to_close_timeout": -1}));
    assert_eq!(status, 400, "{e}");
    let m = message(&e);
    assert!(
        m.contains("start_to_close_timeout: -1 is not a duration")
            && m.contains("\"10s\"")
            && m.contains("whole number of milliseconds")
            && m.contains("1 ms to 10 years"),
        "{m}"
    );
    assert!(!m.contains("untagged"), "{m}");
    refused(
        greet(&s, "x", "q", json!({"start_to_close_timeout": "soon"})),
        "start_to_close_timeout: \"soon\" is not a duration",
        "10s",
    );
    refused(
        greet(
            &s,
            "x",
            "q",
            json!({"retry_policy": {"initial_interval": true}}),
        ),
        "retry_policy.initial_interval",
        "milliseconds",
    );
    refused(
        greet(
            &s,
            "x",
            "q",
            json!({"retry_policy": {"maximum_attempts": -3}}),
        ),
        "retry_policy.maximum_attempts",
        "-3",
    );
    refused(
        s.post(
            "activities/fail",
            &json!({"activity_id": "x", "error": {"message": "m", "next_retry_delay": -5}}),
        ),
        "error.next_retry_delay",
        "not a duration",
    );
    // Queries too: JSON errors naming the parameter and its range.
    refused(s.get("activities/x/result?wait=5m"), "wait", "0 to 1m");
    refused(
        s.get("activities/x/result?wait=later"),
        "wait",
        "not a duration",
    );
}

/// Quotas of 0 would fail every attempt, start or upload of the namespace;
/// they are refused, and a refused rate is shown as a reader would write it.
#[test]
fn zero_quotas_are_refused_and_numbers_are_shown_short() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    let patch = |body: Value| {
        s.send(
            reqwest::blocking::Client::new()
                .patch(s.ns_url("default", ""))
                .json(&body),
        )
    };
    for field in [
        "fuel_per_attempt",
        "max_module_bytes",
        "max_modules",
        "max_payload_bytes",
        "max_heartbeat_bytes",
        "max_open_activities",
    ] {
        refused(patch(json!({ field: 0 })), field, "at least 1");
    }
    refused(
        patch(json!({"max_starts_per_second": 1e-300})),
        "max_starts_per_second",
        "is 1e-300;",
    );
    healthy(&s);
}

/// A gauge's value on the server's `/metrics`.
fn gauge(s: &Server, name: &str) -> Option<u64> {
    let text = reqwest::blocking::get(format!("{}/metrics", s.base))
        .and_then(|r| r.text())
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Bytes of request bodies the server holds now.
fn body_bytes_held(s: &Server) -> Option<u64> {
    gauge(s, "wharf_request_body_bytes")
}

/// An answer read off a raw connection (60 s at most): its head, and as
/// much of its body as its `content-length` says.
fn read_answer(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read as _;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let complete = |a: &[u8]| {
        let Some(end) = a.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        let head = String::from_utf8_lossy(&a[..end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        a.len() >= end + 4 + length
    };
    while !complete(&answer) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// A module upload, framed by `framing` (a length or chunked), that sends
/// `prefix` and `bytes` bytes of its body and then nothing more.
fn stalled_upload(s: &Server, framing: &str, prefix: &str, bytes: usize) -> std::net::TcpStream {
    use std::io::Write as _;
    let addr = s.base.trim_start_matches("http://");
    let mut slow = std::net::TcpStream::connect(addr).unwrap();
    write!(
        slow,
        "POST /api/v1/namespaces/default/modules?name=slow HTTP/1.1\r\nhost: 127.0.0.1\r\n\
         content-type: application/octet-stream\r\n{framing}\r\n\r\n{prefix}"
    )
    .unwrap();
    slow.write_all(&vec![b'x'; bytes]).unwrap();
    slow.flush().unwrap();
    slow
}

/// Many large bodies at once cannot take the host's memory: they share
/// `--max-body-memory`. A body that finds it spent gets a 503 with
/// `Retry-After`, one that could never fit a 413 naming it, and the bytes
/// of a body come back once its request is over.
#[test]
fn request_bodies_share_one_memory_budget_and_give_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--max-body-memory", "1MiB"]);

    // An upload without a declared length (chunked) that stops after
    // 700 000 bytes: it holds what it sent.
    let slow = stalled_upload(
        &s,
        "transfer-encoding: chunked",
        &format!("{:x}\r\n", 700_000),
        700_000,
    );
    wait_for("the partial upload is held", || {
        body_bytes_held(&s).filter(|b| *b >= 700_000)
    });

    // A start whose 400 000 declared bytes do not fit beside it.
    let big = json!({
        "activity_type": "greet", "task_queue": "q",
        "input": ["y".repeat(400_000)], "start_to_close_timeout": "10s"
    });
    let resp = reqwest::blocking::Client::new()
        .post(s.url("activities"))
        .json(&big)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let e: Value = resp.json().unwrap();
    assert_eq!(e["error"]["code"], "bodies_memory_full", "{e}");
    assert!(message(&e).contains("--max-body-memory"), "{e}");

    // A body declared larger than the whole budget is refused as too large,
    // from its declared length: nothing of it is sent, so the answer cannot
    // race the client's writing of a body the server will not read.
    let (written, status, e) = raw_post(&s, "/api/v1/namespaces/default/activities", 2 << 20, 0);
    written.unwrap();
    assert_eq!(status, 413, "{e}");
    assert!(message(&e).contains("--max-body-memory"), "{e}");

    // The stalled upload's bytes come back when its client goes away, and
    // the same start then fits.
    drop(slow);
    wait_for("the budget is given back", || {
        body_bytes_held(&s).filter(|b| *b == 0)
    });
    let (status, e) = s.post("activities", &big);
    assert_eq!(status, 201, "{e}");
    healthy(&s);
}

/// Sends a whole JSON POST over a raw connection and returns the
/// connection unread, for a test to leave when it chooses.
fn post_and_keep(s: &Server, path: &str, body: &str) -> std::net::TcpStream {
    use std::io::Write as _;
    let mut conn = std::net::TcpStream::connect(s.base.trim_start_matches("http://")).unwrap();
    write!(
        conn,
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    conn
}

/// A POST over a raw connection declaring a body of `declared` bytes, of
/// which it sends `sent` before reading (all of it, as clients without
/// `Expect: 100-continue` do, or only the head); whether what it sent could
/// be written, and the answer's status and JSON.
fn raw_post(
    s: &Server,
    path: &str,
    declared: usize,
    sent: usize,
) -> (std::io::Result<()>, u16, Value) {
    use std::io::Write as _;
    let mut conn = std::net::TcpStream::connect(s.base.trim_start_matches("http://")).unwrap();
    let written = write!(
        conn,
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\
         content-type: application/json\r\ncontent-length: {declared}\r\n\r\n"
    )
    .and_then(|()| conn.write_all(&vec![b' '; sent]))
    .and_then(|()| conn.flush());
    let answer = read_answer(&mut conn);
    let status: u16 = answer.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let e: Value = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::String(answer.clone()));
    (written, status, e)
}

/// A request answered before its body is read (too large for the body
/// memory, or no such endpoint) still has its body read and thrown away,
/// so a client that sends the whole body first reads the answer instead of
/// a broken pipe; none of it is held.
#[test]
fn a_refused_body_sent_in_full_still_gets_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--max-body-memory", "1MiB"]);
    for _ in 0..3 {
        let (written, status, e) = raw_post(
            &s,
            "/api/v1/namespaces/default/activities",
            8 << 20,
            8 << 20,
        );
        assert!(
            written.is_ok(),
            "the server stopped reading the refused body: {written:?}"
        );
        assert_eq!(status, 413, "{e}");
        assert!(message(&e).contains("--max-body-memory"), "{e}");

        let (written, status, e) = raw_post(&s, "/api/v1/no/such/endpoint", 8 << 20, 8 << 20);
        assert!(
            written.is_ok(),
            "the server stopped reading the refused body: {written:?}"
        );
        assert_eq!(status, 404, "{e}");
    }
    assert_eq!(body_bytes_held(&s), Some(0));
    healthy(&s);
}

/// A body that stops arriving is cut off with a 408 once
/// `--body-idle-timeout` passes, and its bytes go back to the budget: a
/// sender that stalls cannot keep the memory.
#[test]
fn a_stalled_body_is_cut_off_and_its_memory_given_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--body-idle-timeout", "1s"]);
    let mut slow = stalled_upload(&s, "content-length: 900000", "", 300_000);
    let answer = read_answer(&mut slow);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    wait_for("the budget is given back", || {
        body_bytes_held(&s).filter(|b| *b == 0)
    });
    healthy(&s);
}

/// The number of task queues the server holds.
fn task_queues(s: &Server) -> Option<u64> {
    gauge(s, "wharf_task_queues")
}

/// Starts on ever new queue names cost memory only while their activities
/// are open: once closed, their queues are dropped, and a queue with a
/// deployment or a backlog is kept.
#[test]
fn queues_of_closed_activities_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    s.upload("greet", &common::rust_example("greet"));
    s.deploy("greet", "kept", 4);
    let (status, e) = greet(&s, "waits", "waiting", json!({}));
    assert_eq!(status, 201, "{e}");
    let starts: Vec<Value> = (0..300)
        .map(|i| {
            json!({"activity_type": "greet", "task_queue": format!("q-{i}"),
                   "schedule_to_close_timeout": "1ms"})
        })
        .collect();
    let (status, e) = s.post("activities:batch", &json!({ "starts": starts }));
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["created"], 300, "{e}");
    let queues = wait_for("the timed-out activities' queues are dropped", || {
        task_queues(&s).filter(|n| *n < 10)
    });
    // Left: the deployed queue (and the namespace's own queue it serves)
    // and the queue whose activity still waits.
    assert!(queues >= 2, "{queues}");
    let (status, q) = s.get("task-queues/kept");
    assert_eq!(status, 200, "{q}");
    assert_eq!(q["deployment"], "greet@1", "{q}");
    let (status, d) = s.get("activities/waits");
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["state"], "scheduled", "{d}");
    // A start to a dropped name makes its queue again and runs once it is
    // deployed.
    s.deploy("greet", "q-7", 1);
    let (status, e) = greet(&s, "again", "q-7", json!({}));
    assert_eq!(status, 201, "{e}");
    let closed = s.wait_closed("again", Duration::from_secs(30));
    assert_eq!(closed["state"], "completed", "{closed}");
}

/// A page of the activity list carries at most 16 MiB of payloads, however
/// large they are: it ends early and says so, newest first, and always
/// holds at least one activity.
#[test]
fn a_list_page_of_large_payloads_is_cut_short_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    let big = "z".repeat(1_900_000);
    for i in 0..12 {
        let (status, e) = s.post(
            "activities",
            &json!({"activity_id": format!("big-{i:02}"), "activity_type": "greet",
                    "task_queue": "nobody", "input": [big], "start_to_close_timeout": "10s"}),
        );
        assert_eq!(status, 201, "{e}");
    }
    let ids = |page: &Value| -> Vec<String> {
        page["activities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["activity_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, page) = s.get("activities?limit=100");
    assert_eq!(status, 200);
    assert_eq!(page["truncated"], true);
    let got = ids(&page);
    assert!(!got.is_empty() && got.len() < 12, "{got:?}");
    let newest: Vec<String> = (0..12).rev().map(|i| format!("big-{i:02}")).collect();
    assert_eq!(got, newest[..got.len()], "newest first");
    let (_, page) = s.get("activities?limit=3");
    assert_eq!(page["truncated"], false);
    assert_eq!(ids(&page), newest[..3]);
    // The dashboard says so too.
    let ui = reqwest::blocking::get(format!("{}/ui/activities?ns=default&limit=100", s.base))
        .and_then(|r| r.text())
        .unwrap();
    assert!(ui.contains("id=truncated"), "{ui}");
    healthy(&s);
}

/// A connection that sends no request is closed after the header read
/// timeout (30 s), so idle connections cannot use up the server's file
/// descriptors; and at most `--max-connections` are served at once, the
/// next one being served as soon as one closes.
#[test]
fn idle_connections_are_closed_and_their_number_is_bounded() {
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--max-connections", "2"]);
    let addr = s.base.trim_start_matches("http://").to_owned();
    let idle: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();

    // Both slots are taken: a third client is not answered...
    let (tx, rx) = std::sync::mpsc::channel();
    let base = s.base.clone();
    std::thread::spawn(move || {
        let status = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap()
            .get(format!("{base}/healthz"))
            .send()
            .map(|r| r.status().as_u16());
        let _ = tx.send(status);
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(2)).is_err(),
        "served beyond --max-connections"
    );
    // ...until one of them closes.
    let mut idle = idle.into_iter();
    drop(idle.next());
    let status = rx.recv_timeout(Duration::from_secs(60)).unwrap().unwrap();
    assert_eq!(status, 200);

    // The other, which never sent a request, is closed by the server.
    let mut quiet = idle.next().unwrap();
    quiet
        .set_read_timeout(Some(Duration::from_secs(300)))
        .unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 64];
    let n = quiet.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the server answered an empty connection");
    assert!(
        t.elapsed() < Duration::from_secs(300),
        "an idle connection stayed open"
    );
    healthy(&s);
}

/// A client of ours whose runtime sat still while the server closed its
/// idle connection (as the test harness's does between requests) must not
/// send its next request on that connection: it does not reuse one idle
/// longer than `CLIENT_IDLE_TIMEOUT`, well under the server's 30 s.
#[test]
fn a_client_idle_past_the_servers_keep_alive_is_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = wharf::api::listen::client().build().unwrap();
    let healthz = || {
        rt.block_on(async {
            http.get(format!("{}/healthz", s.base))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    assert_eq!(healthz().unwrap(), 200);
    // The runtime is not driven here, so the client cannot see the close.
    std::thread::sleep(wharf::api::listen::HEADER_READ_TIMEOUT + Duration::from_secs(5));
    let again = healthz();
    assert_eq!(
        again.as_ref().ok(),
        Some(&200),
        "a request after 35 s idle: {again:?}"
    );
}

/// Clients that send a completion and hang up at once change nothing
/// behind the server's back: every completion that was written is also
/// carried out in memory (the run closes, its namespace counts it as
/// closed, its result's waiters are answered), whatever the moment each
/// client left.
#[test]
fn completions_whose_clients_hang_up_are_carried_out_in_full_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    s.deploy_example("adversary", "q", 100);
    let n = 60;
    for i in 0..n {
        s.start_activity(json!({
            "activity_id": format!("h{i}"), "activity_type": "async-complete",
            "task_queue": "q", "start_to_close_timeout": "60s"
        }));
    }
    for i in 0..n {
        wait_for("awaiting completion", || {
            (s.get(&format!("activities/h{i}")).1["awaiting_async"] == json!(true)).then_some(())
        });
    }
    for i in 0..n {
        let body = json!({"activity_id": format!("h{i}"), "result": i}).to_string();
        drop(post_and_keep(
            &s,
            "/api/v1/namespaces/default/activities/complete",
            &body,
        ));
    }
    // What SQLite says is closed is what memory says is closed, once the
    // completions in flight have ended.
    wait_for("memory to agree with SQLite", || {
        let (_, list) = s.get("activities?state=completed&limit=1000");
        let written = list["activities"].as_array()?.len();
        let (_, ns) = s.get("");
        let open = ns["namespace"]["open_activities"].as_u64()? as usize;
        (written + open == n).then_some(())
    });
    // Each written one answers its result at once, as closed.
    let (_, list) = s.get("activities?state=completed&limit=1000");
    for a in list["activities"].as_array().unwrap() {
        let id = a["activity_id"].as_str().unwrap();
        let (status, r) = s.get(&format!("activities/{id}/result?wait=10s"));
        assert_eq!((status, &r["state"]), (200, &json!("completed")), "{r}");
    }
    healthy(&s);
}
