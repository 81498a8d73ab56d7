//! The dashboard in a real browser: headless Chromium driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`, which `./scripts/test`
//! installs). A tenant logs in, finds a retrying activity through the
//! filter, opens it and sees each attempt's failure, presses "run now" and
//! sees the next attempt start, watches heartbeat details change without a
//! reload, cancels an activity, and cannot see another namespace.
//!
//! With `WHARF_SCREENSHOTS=DIR` it also saves screenshots of the main pages
//! there (`scripts/screenshots` refreshes the README's).

mod common;

use common::tenants::{auth_server, new_tenant, As, ADMIN};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A chromedriver process and one browser session of it.
struct Browser {
    driver: Child,
    session: String,
    http: reqwest::blocking::Client,
}

impl Browser {
    fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver cannot start ({e}): install Debian's chromium and \
                     chromium-driver (./scripts/test does)"
                )
            });
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let ready = Instant::now() + Duration::from_secs(30);
        while http.get(format!("{base}/status")).send().is_err() {
            assert!(Instant::now() < ready, "chromedriver did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"]
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .and_then(|r| r.json())
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {r}"))
            .to_owned();
        Browser {
            driver,
            session: format!("{base}/session/{session}"),
            http,
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let v: Value = r.send().and_then(|r| r.json()).unwrap();
        v["value"].clone()
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body))
    }

    fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None)
    }

    fn go(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    fn url(&self) -> String {
        self.get("/url").as_str().unwrap_or("").to_owned()
    }

    /// The element `css` matches, waiting for it up to 20 s.
    fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.post("/element", json!({"using": "css selector", "value": css}));
            if let Some(id) = v.as_object().and_then(|o| o.values().next()) {
                if let Some(id) = id.as_str() {
                    return id.to_owned();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no element {css} on {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn click(&self, css: &str) {
        let el = self.find(css);
        self.post(&format!("/element/{el}/click"), json!({}));
    }

    fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.post(&format!("/element/{el}/value"), json!({ "text": text }));
    }

    fn text(&self, css: &str) -> String {
        let el = self.find(css);
        self.get(&format!("/element/{el}/text"))
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    fn script(&self, js: &str) -> Value {
        self.post("/execute/sync", json!({"script": js, "args": []}))
    }

    /// Accepts the confirmation dialog an action opens.
    fn accept(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.get("/alert/text").is_object() {
            assert!(Instant::now() < deadline, "no confirmation dialog");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.post("/alert/accept", json!({}));
    }

    /// Waits up to 30 s for the text of `css` to satisfy `ok`.
    fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let t = self.text(css);
            if ok(&t) {
                return t;
            }
            assert!(Instant::now() < deadline, "{css} on {}: {t}", self.url());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Saves a screenshot as `name`.png under `WHARF_SCREENSHOTS`, if set.
    fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("WHARF_SCREENSHOTS") else {
            return;
        };
        use base64::Engine;
        let png = self.get("/screenshot");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or(""))
            .unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            std::path::Path::new(&dir).join(format!("{name}.png")),
            bytes,
        )
        .unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.http.delete(&self.session).send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Debian's browser binary.
fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("/usr/bin/chromium")
}

#[test]
fn an_operator_finds_a_retrying_activity_runs_it_now_watches_heartbeats_and_cancels() {
    let (s, _d) = auth_server(&[]);
    let admin = As::new(&s, ADMIN);
    let shop = new_tenant(&admin, "shop", json!({}));
    new_tenant(&admin, "bank", json!({}));
    let tenant = As::new(&s, &shop);
    tenant.install("shop", "orders", "flaky");
    tenant.install("shop", "slow", "adversary");
    let start = |body: Value| {
        let (status, e) = tenant.post("/shop/activities", body);
        assert_eq!(status, 201, "{e}");
    };
    // Fails, then waits an hour for its next attempt: retrying.
    start(
        json!({"activity_id": "order-7", "activity_type": "flaky", "task_queue": "orders",
        "start_to_close_timeout": "30s",
        "input": [{"succeed_on_attempt": 5, "retry_delay_ms": 3_600_000}]}),
    );
    start(
        json!({"activity_id": "order-8", "activity_type": "flaky", "task_queue": "orders",
        "start_to_close_timeout": "30s", "input": [{"succeed_on_attempt": 1}]}),
    );
    // Heartbeats every 300 ms for a minute.
    start(
        json!({"activity_id": "pack-1", "activity_type": "sleep", "task_queue": "slow",
        "start_to_close_timeout": "120s", "heartbeat_timeout": "30s",
        "input": [{"ms": 60_000, "heartbeat_every_ms": 300}]}),
    );
    let (_, bank) = admin.post(
        "/bank/activities",
        json!({"activity_id": "transfer-1", "activity_type": "t", "task_queue": "q",
               "start_to_close_timeout": "5s"}),
    );
    assert_eq!(bank["created"], json!(true), "{bank}");
    common::wait_for(|| {
        let (_, a) = tenant.get("/shop/activities/order-7");
        (a["attempts"][0]["ended_ms"].is_u64() && a["state"] == "scheduled").then_some(())
    });

    let b = Browser::start();
    let base = &s.base;
    b.go(&format!("{base}/ui/activities"));
    assert!(b.url().ends_with("/ui/login"), "{}", b.url());
    b.type_into("input[name=token]", &shop);
    b.click("form[action='/ui/login'] button");
    b.wait_text("h1", |t| t == "Activities");
    b.screenshot("activities");

    // The retrying filter finds order-7 only.
    b.click("select[name=state] option[value=retrying]");
    b.click("main form button");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !b.url().contains("state=retrying") {
        assert!(Instant::now() < deadline, "not filtered: {}", b.url());
        std::thread::sleep(Duration::from_millis(100));
    }
    let table = b.wait_text("main table", |t| t.contains("order-7"));
    assert!(
        !table.contains("order-8") && !table.contains("pack-1"),
        "{table}"
    );
    b.click("a[href='/ui/namespaces/shop/activities/order-7']");
    b.wait_text("h1", |t| t == "Activity order-7");
    let attempts = b.text("#attempts");
    assert!(
        attempts.contains("FlakyError: attempt 1 failed"),
        "{attempts}"
    );
    b.screenshot("activity");

    // Run now: attempt 2 starts at once (and fails the same way).
    b.click("form[action$='/run-now'] button");
    b.accept();
    let attempts = b.wait_text("#attempts", |t| t.contains("attempt 2 failed"));
    assert!(attempts.contains("attempt 1 failed"), "{attempts}");

    // Heartbeat details change on the page without a reload.
    b.go(&format!("{base}/ui/namespaces/shop/activities/pack-1"));
    b.wait_text("#heartbeat", |t| t.contains("slept_ms"));
    b.script("window.notReloaded = true;");
    let first = b.text("#heartbeat");
    b.wait_text("#heartbeat", |t| t.contains("slept_ms") && t != first);
    assert_eq!(b.script("return window.notReloaded === true;"), json!(true));

    // Cancel it.
    b.click("form[action$='/cancel'] button");
    b.accept();
    b.wait_text("#state", |t| t.contains("cancel"));

    // The queue: deployment, slots, and its three finished attempts in the
    // last hour's chart.
    b.go(&format!("{base}/ui/namespaces/shop/task-queues/orders"));
    b.wait_text("h1", |t| t == "Task queue orders");
    let summary = b.text("main table");
    assert!(summary.contains("flaky@1"), "{summary}");
    let peak = b.script(
        "return [...document.querySelectorAll('svg.chart')].map(s => \
         [...s.querySelectorAll('rect')].reduce((n, r) => n + Number(r.textContent), 0));",
    );
    // All three in the last hour; the last minute has those of the last
    // 60 s (all of them, unless this machine is very slow).
    assert_eq!(
        peak[1],
        json!(3),
        "attempts in the last minute and hour: {peak}"
    );
    assert!(peak[0].as_u64() <= Some(3), "{peak}");
    b.screenshot("task-queue");

    // Deploy a second version to a new queue, then roll back to the first.
    let greet = std::fs::read(common::rust_example("greet")).unwrap();
    let (status, e) = tenant.upload_bytes("shop", "flaky", greet);
    assert_eq!(status, 201, "{e}");
    for version in [2, 1] {
        b.go(&format!("{base}/ui/modules"));
        let form = format!("form[action='/ui/namespaces/shop/modules/flaky/{version}/deploy']");
        b.type_into(&format!("{form} input[name=queue]"), "orders-next");
        b.click(&format!("{form} button"));
        b.accept();
        b.wait_text("h1", |t| t == "Task queue orders-next");
        let summary = b.text("main table");
        assert!(summary.contains(&format!("flaky@{version}")), "{summary}");
    }
    b.go(&format!("{base}/ui/modules"));
    let modules = b.wait_text("main table", |t| t.contains("orders-next"));
    assert!(modules.contains("orders"), "{modules}");
    b.screenshot("modules");

    // Another namespace's pages answer as if they did not exist.
    for path in [
        "/ui/namespaces/bank/activities/transfer-1",
        "/ui/activities?ns=bank",
    ] {
        b.go(&format!("{base}{path}"));
        let page = b.text("main");
        assert!(
            !page.contains("transfer-1") && page.contains("not found"),
            "{path}: {page}"
        );
    }
}
