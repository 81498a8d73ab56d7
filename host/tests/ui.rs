//! The dashboard at `/ui` over plain HTTP against the real server: pages
//! render, the token stays in an `HttpOnly`, `SameSite=Strict` cookie and
//! out of every URL and page, a namespace token sees only its namespace,
//! and a POST without the session's CSRF field or from another origin is
//! refused.

mod common;

use common::tenants::{auth_server, new_tenant, As, ADMIN};
use reqwest::blocking::{Client, Response};
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use serde_json::json;

fn http() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn header(r: &Response, name: reqwest::header::HeaderName) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Logs in with `token`; returns the `Cookie` header to send.
fn log_in(base: &str, token: &str) -> String {
    let r = http()
        .post(format!("{base}/ui/login"))
        .form(&[("token", token)])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = header(&r, LOCATION);
    assert_eq!(location, "/ui/activities");
    let cookie = header(&r, SET_COOKIE);
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    cookie.split(';').next().unwrap_or("").to_owned()
}

fn page(base: &str, cookie: &str, path: &str) -> (u16, String) {
    let r = http()
        .get(format!("{base}{path}"))
        .header(COOKIE, cookie)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap_or_default())
}

/// The CSRF field of a page's forms.
fn csrf(body: &str) -> String {
    let at = body.find("name=csrf value=\"").expect("a form") + "name=csrf value=\"".len();
    body[at..].split('"').next().unwrap_or("").to_owned()
}

#[test]
fn the_dashboard_keeps_the_token_in_a_cookie_a_tenant_to_its_namespace_and_forms_to_this_site() {
    let (s, _d) = auth_server(&[]);
    let admin = As::new(&s, ADMIN);
    let shop = new_tenant(&admin, "shop", json!({}));
    new_tenant(&admin, "bank", json!({}));
    // On queues nobody serves: they wait, open.
    for (ns, id) in [
        ("shop", "order-1"),
        ("shop", "order-2"),
        ("bank", "transfer-1"),
    ] {
        let (status, e) = admin.post(
            &format!("/{ns}/activities"),
            json!({"activity_id": id, "activity_type": "t", "task_queue": "q",
                   "start_to_close_timeout": "5s", "input": [{"item": "<script>x</script>"}]}),
        );
        assert_eq!(status, 201, "{e}");
    }
    let base = &s.base;

    let r = http().get(format!("{base}/ui/activities")).send().unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, LOCATION), "/ui/login");
    let (status, body) = page(base, "", "/ui/login");
    assert!(status == 200 && body.contains("type=password"), "{body}");
    let r = http()
        .post(format!("{base}/ui/login"))
        .form(&[("token", "not-a-token")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);

    let cookie = log_in(base, &shop);
    let (status, body) = page(base, &cookie, "/ui/activities");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("order-1") && body.contains("order-2"),
        "{body}"
    );
    assert!(
        !body.contains("transfer-1") && !body.contains(&shop),
        "{body}"
    );
    for path in [
        "/ui/activities?ns=bank",
        "/ui/namespaces/bank/activities/transfer-1",
        "/ui/namespaces/bank/task-queues/q",
    ] {
        assert_eq!(page(base, &cookie, path).0, 404, "{path}");
    }
    let (_, body) = page(base, &cookie, "/ui/namespaces");
    assert!(body.contains("shop") && !body.contains(">bank<"), "{body}");
    assert_eq!(
        page(base, &cookie, "/ui/namespaces/shop/task-queues/q").0,
        200
    );
    let (status, body) = page(base, &cookie, "/ui/task-queues");
    // Both waiting activities are in the queue's backlog.
    assert!(
        status == 200 && body.contains(">q</a></td><td>2</td>"),
        "{body}"
    );
    let (status, e) = As::new(&s, &shop).upload("shop", "greet");
    assert_eq!(status, 201, "{e}");
    let (status, body) = page(base, &cookie, "/ui/modules");
    assert!(
        status == 200 && body.contains("<td>greet</td><td>1</td>"),
        "{body}"
    );
    for path in ["/ui/task-queues?ns=bank", "/ui/modules?ns=bank"] {
        assert_eq!(page(base, &cookie, path).0, 404, "{path}");
    }

    let (status, body) = page(base, &cookie, "/ui/namespaces/shop/activities/order-1");
    assert_eq!(status, 200, "{body}");
    for shown in [
        "Attempts",
        "Timeouts and retry policy",
        "start_to_close_timeout",
        "Run now",
    ] {
        assert!(body.contains(shown), "{shown}: {body}");
    }
    assert!(
        !body.contains("<script>x") && body.contains("&lt;script&gt;x"),
        "{body}"
    );
    let field = csrf(&body);
    let fail = |form: &[(&str, &str)], origin: Option<&str>| {
        let mut r = http()
            .post(format!("{base}/ui/namespaces/shop/activities/order-1/fail"))
            .header(COOKIE, &cookie)
            .form(form);
        if let Some(o) = origin {
            r = r.header(ORIGIN, o);
        }
        let r = r.send().unwrap();
        (r.status().as_u16(), header(&r, LOCATION))
    };
    assert_eq!(fail(&[("reason", "forged")], None).0, 403);
    assert_eq!(fail(&[("reason", "x"), ("csrf", "0000")], None).0, 403);
    assert_eq!(
        fail(
            &[("reason", "x"), ("csrf", &field)],
            Some("http://evil.example")
        )
        .0,
        403
    );
    let (_, a) = admin.get("/shop/activities/order-1");
    assert_eq!(a["state"], "scheduled", "{a}");
    let same_site = base.clone();
    let (status, to) = fail(
        &[("reason", "sold out"), ("csrf", &field)],
        Some(&same_site),
    );
    assert_eq!(
        (status, to.as_str()),
        (303, "/ui/namespaces/shop/activities/order-1")
    );
    let (_, a) = admin.get("/shop/activities/order-1");
    assert_eq!(a["state"], "failed", "{a}");
    assert_eq!(a["last_failure"]["type"], "FailedByOperator", "{a}");
    assert_eq!(a["last_failure"]["message"], "sold out", "{a}");
    // A tenant's session cannot act on another namespace.
    let r = http()
        .post(format!(
            "{base}/ui/namespaces/bank/activities/transfer-1/cancel"
        ))
        .header(COOKIE, &cookie)
        .form(&[("csrf", field.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    // Run now on an activity that is not in a backoff is refused as by the API.
    let r = http()
        .post(format!(
            "{base}/ui/namespaces/shop/activities/order-2/run-now"
        ))
        .header(COOKIE, &cookie)
        .form(&[("csrf", field.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 409);
    // A form field is checked as the API would check it: a 2 000-byte task
    // queue name is refused and nothing is deployed; so is an id prefix
    // with a control character.
    let long = "q".repeat(2000);
    let r = http()
        .post(format!("{base}/ui/namespaces/shop/modules/greet/1/deploy"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", field.as_str()), ("queue", long.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap_or_default().contains("task_queue"));
    let (_, body) = page(base, &cookie, "/ui/modules");
    assert!(!body.contains(&long[..100]), "{body}");
    let (status, body) = page(base, &cookie, "/ui/activities?id_prefix=a%01b");
    assert!(
        status == 400 && body.contains("id_prefix"),
        "{status}: {body}"
    );

    let admin_cookie = log_in(base, ADMIN);
    let (_, body) = page(base, &admin_cookie, "/ui/namespaces");
    assert!(body.contains(">bank<") && body.contains(">shop<"), "{body}");
    let (status, body) = page(base, &admin_cookie, "/ui/activities?ns=shop&state=failed");
    assert_eq!(status, 200);
    assert!(
        body.contains("order-1") && !body.contains("order-2"),
        "{body}"
    );
    // Another session's field does not pass.
    assert_ne!(csrf(&body), field);

    let r = http()
        .post(format!("{base}/ui/logout"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", field.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(header(&r, SET_COOKIE).contains("Max-Age=0"));
}
