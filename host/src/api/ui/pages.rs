//! The dashboard's HTML, written out by hand: one function per page, every
//! value from a tenant or a guest escaped by [`esc`].

use super::{ListFilter, Session};
use crate::api::auth::Principal;
use crate::service::tenant::NamespaceView;
use crate::service::QueueView;
use crate::service::{ActivityPage, ActivityView};
use std::fmt::Write as _;

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn enc(s: &str) -> String {
    urlencoding::encode(s).into_owned()
}

/// Where an activity's page is.
pub(crate) fn activity_href(ns: &str, id: &str) -> String {
    format!("/ui/namespaces/{}/activities/{}", enc(ns), enc(id))
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222}\
header{background:#1d3557;color:#fff;padding:.5em 1em;display:flex;gap:1.5em;align-items:center}\
header a{color:#fff}main{padding:1em;max-width:1200px}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}\
pre{background:#f4f4f4;padding:.5em;overflow:auto;max-height:20em;white-space:pre-wrap}\
.failed,.timed_out{color:#b00020}.completed{color:#1b7f3a}form.inline{display:inline}\
fieldset{border:1px solid #ccc;margin:.5em 0}";

/// Live pages: every 2 s the page is fetched again and its `<main>` swapped
/// in, until someone changes a field of one of its forms (what they typed
/// or chose must stay); without JavaScript, a reload every 3 s instead.
const LIVE: &str = "<noscript><meta http-equiv=refresh content=3></noscript><script>\
let edited=false;addEventListener('input',()=>{edited=true},true);\
setInterval(async()=>{if(edited)return;\
try{const r=await fetch(location.href,{credentials:'same-origin'});if(!r.ok||edited)return;\
const m=new DOMParser().parseFromString(await r.text(),'text/html').querySelector('main');\
if(m&&!edited)document.querySelector('main').replaceWith(m)}catch(e){}},2000)</script>";

fn layout(s: Option<&Session>, title: &str, refresh: bool, body: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">{}\
         <title>{} · Wharf</title><style>{STYLE}</style></head><body><header><strong>Wharf</strong>",
        if refresh { LIVE } else { "" },
        esc(title)
    );
    if let Some(s) = s {
        let _ = write!(
            out,
            "<a href=\"/ui/activities?ns={ns}\">Activities</a>\
             <a href=\"/ui/activities?ns={ns}&amp;state=retrying\">Retrying</a>\
             <a href=\"/ui/task-queues?ns={ns}\">Task queues</a>\
             <a href=\"/ui/modules?ns={ns}\">Modules</a>\
             <a href=\"/ui/namespaces\">Namespaces</a>\
             <span>{who}</span>\
             <form class=inline method=post action=\"/ui/logout\"><input type=hidden name=csrf value=\"{csrf}\">\
             <button>Log out</button></form>",
            ns = enc(s.home()),
            who = match &s.principal {
                Principal::Admin => "admin".to_owned(),
                Principal::Tenant(ns) => format!("namespace {}", esc(ns)),
            },
            csrf = s.csrf,
        );
    }
    let _ = write!(
        out,
        "</header><main><h1>{}</h1>{body}</main></body></html>",
        esc(title)
    );
    out
}

/// A page that only says something.
pub(crate) fn message(title: &str, text: &str) -> String {
    layout(
        None,
        title,
        false,
        &format!("<p>{}</p><p><a href=\"/ui\">Back</a></p>", esc(text)),
    )
}

/// The token login form.
pub(crate) fn login(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=failed>{}</p>", esc(e)))
        .unwrap_or_default();
    layout(
        None,
        "Log in",
        false,
        &format!(
            "{error}<form method=post action=\"/ui/login\"><label>Token (admin or namespace) \
             <input type=password name=token autocomplete=off required></label> \
             <button>Log in</button></form>"
        ),
    )
}

fn time(ms: Option<u64>) -> String {
    ms.map(|ms| {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        humantime::format_rfc3339_millis(t).to_string()
    })
    .unwrap_or_default()
}

/// The activities list with its filters.
pub(crate) fn activities(s: &Session, ns: &str, f: &ListFilter, page: &ActivityPage) -> String {
    let list = &page.activities;
    let opt = |o: &Option<String>| esc(o.as_deref().unwrap_or(""));
    let mut body = format!(
        "<form method=get action=\"/ui/activities\"><input type=hidden name=ns value=\"{}\">\
         <label>State <select name=state>",
        esc(ns)
    );
    let states = ["", crate::api::activities::RETRYING]
        .into_iter()
        .chain(crate::api::activities::STATES);
    for st in states {
        let sel = if f.state.as_deref().unwrap_or("") == st {
            " selected"
        } else {
            ""
        };
        let _ = write!(body, "<option value=\"{st}\"{sel}>{st}</option>");
    }
    let _ = write!(
        body,
        "</select></label> <label>Type <input name=type value=\"{}\"></label> \
         <label>Task queue <input name=task_queue value=\"{}\"></label> \
         <label>Id starts with <input name=id_prefix value=\"{}\"></label> <label>Scheduled <select name=since>\
         <option value=\"\">any time</option>",
        opt(&f.activity_type),
        opt(&f.task_queue),
        opt(&f.id_prefix),
    );
    for (value, label, _) in super::SINCE {
        let sel = if f.since.as_deref() == Some(value) {
            " selected"
        } else {
            ""
        };
        let _ = write!(body, "<option value={value}{sel}>{label}</option>");
    }
    let _ = write!(
        body,
        "</select></label> <button>Filter</button></form>\
         <p>Namespace {} · newest first · <span id=count>{}</span> shown{}</p>\
         <table><tr><th>Activity</th><th>Type</th><th>Task queue</th><th>State</th><th>Attempt</th>\
         <th>Scheduled</th><th>Last failure</th></tr>",
        esc(ns),
        list.len(),
        if page.truncated {
            " · <span id=truncated>more match than one page carries (16 MiB of payloads): \
             narrow the filter</span>"
        } else {
            ""
        }
    );
    for a in list {
        let _ = write!(
            body,
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td><a href=\"/ui/namespaces/{}/task-queues/{}\">{}</a></td>\
             <td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            activity_href(ns, &a.activity_id),
            esc(&a.activity_id),
            esc(&a.activity_type),
            enc(ns),
            enc(&a.task_queue),
            esc(&a.task_queue),
            esc(&a.state),
            esc(&a.state),
            a.attempt,
            time(Some(a.scheduled_ms)),
            a.last_failure
                .as_ref()
                .map(|f| format!("{}: {}", esc(&f.error_type), esc(&f.message)))
                .unwrap_or_default(),
        );
    }
    body.push_str("</table>");
    let limit = f.limit.unwrap_or(50).clamp(1, 500);
    if list.len() as u32 >= limit {
        let _ = write!(
            body,
            "<p><a href=\"/ui/activities?ns={}&amp;state={}&amp;type={}&amp;task_queue={}&amp;id_prefix={}&amp;since={}&amp;limit={}\">Show more</a></p>",
            enc(ns),
            enc(f.state.as_deref().unwrap_or("")),
            enc(f.activity_type.as_deref().unwrap_or("")),
            enc(f.task_queue.as_deref().unwrap_or("")),
            enc(f.id_prefix.as_deref().unwrap_or("")),
            enc(f.since.as_deref().unwrap_or("")),
            limit.saturating_mul(2).min(500)
        );
    }
    layout(Some(s), "Activities", true, &body)
}

fn json(v: &impl serde::Serialize) -> String {
    esc(&serde_json::to_string_pretty(v).unwrap_or_default())
}

/// One activity: what it was given, where it is, every attempt, actions.
pub(crate) fn activity(s: &Session, a: &ActivityView) -> String {
    let open = a.closed_ms.is_none();
    let mut body = format!(
        "<table><tr><th>Namespace</th><td>{}</td></tr><tr><th>Type</th><td>{}</td></tr>\
         <tr><th>Task queue</th><td>{}</td></tr><tr><th>State</th><td id=state class=\"{}\">{}{}</td></tr>\
         <tr><th>Attempt</th><td>{}</td></tr><tr><th>Scheduled</th><td>{}</td></tr>\
         <tr><th>Current attempt due</th><td>{}</td></tr><tr><th>Closed</th><td>{}</td></tr></table>",
        esc(&a.namespace),
        esc(&a.activity_type),
        esc(&a.task_queue),
        esc(&a.state),
        esc(&a.state),
        if a.cancel_requested {
            " (cancellation requested)"
        } else {
            ""
        },
        a.attempt,
        time(Some(a.scheduled_ms)),
        time(Some(a.attempt_scheduled_ms)),
        time(a.closed_ms),
    );
    let _ = write!(
        body,
        "<h2>Heartbeat details</h2><pre id=heartbeat>{}</pre>\
         <h2>Input</h2><pre>{}</pre><h2>Timeouts and retry policy</h2><pre>{}</pre>",
        json(&a.heartbeat_details),
        json(&a.input),
        json(&a.options)
    );
    if let Some(r) = &a.result {
        let _ = write!(body, "<h2>Result</h2><pre>{}</pre>", json(r));
    }
    if let Some(f) = &a.last_failure {
        let _ = write!(body, "<h2>Failure</h2><pre>{}</pre>", json(f));
    }
    body.push_str(
        "<h2>Attempts</h2><table id=attempts><tr><th>#</th><th>Started</th><th>Ended</th><th>Took</th><th>Outcome</th>\
         <th>Failure</th><th>Module</th><th>Log tail</th></tr>",
    );
    for t in a.attempts.iter().flatten() {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            t.attempt,
            time(Some(t.started_ms)),
            time(t.ended_ms),
            t.ended_ms
                .map(|e| format!("{} ms", e.saturating_sub(t.started_ms)))
                .unwrap_or_default(),
            esc(t.outcome.as_deref().unwrap_or("")),
            esc(t.outcome.as_deref().unwrap_or("")),
            match (&t.failure_type, &t.failure_message) {
                (Some(ty), m) => format!("{}: {}", esc(ty), esc(m.as_deref().unwrap_or(""))),
                _ => String::new(),
            },
            esc(t.module.as_deref().unwrap_or("")),
            esc(t.log_tail.as_deref().unwrap_or("")),
        );
    }
    body.push_str("</table>");
    if open {
        let href = activity_href(&a.namespace, &a.activity_id);
        let form = |action: &str, label: &str, extra: &str| {
            format!(
                "<form class=inline method=post action=\"{href}/{action}\" \
                 onsubmit=\"return confirm('{label} activity {id}?')\">\
                 <input type=hidden name=csrf value=\"{csrf}\">{extra}<button>{label}</button></form> ",
                id = esc(&a.activity_id.replace(['\'', '\\'], "")),
                csrf = s.csrf,
            )
        };
        let _ = write!(
            body,
            "<h2>Actions</h2><fieldset>{}{}{}</fieldset>",
            form("cancel", "Cancel", ""),
            form("run-now", "Run now", ""),
            form(
                "fail",
                "Fail",
                "<input name=reason placeholder=\"reason\" required maxlength=4000> "
            ),
        );
    }
    layout(Some(s), &format!("Activity {}", a.activity_id), open, &body)
}

/// Bars of `values` (oldest first) as an inline SVG, with `unit` per bar
/// in its title.
fn bars(values: &[u64], unit: &str) -> String {
    let (w, h) = (600u64, 80u64);
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let n = values.len().max(1) as u64;
    let bw = w / n;
    let mut out = format!(
        "<svg class=chart width={w} height={} viewBox=\"0 0 {w} {}\" role=img>\
         <title>peak {max} per {unit}</title><line x1=0 y1={h} x2={w} y2={h} stroke=\"#999\"/>",
        h + 14,
        h + 14
    );
    for (i, v) in values.iter().enumerate() {
        let bh = v.saturating_mul(h) / max;
        let _ = write!(
            out,
            "<rect x={} y={} width={} height={bh} fill=\"#1b3a5c\"><title>{v}</title></rect>",
            i as u64 * bw,
            h - bh,
            bw.saturating_sub(1).max(1),
        );
    }
    let _ = write!(
        out,
        "<text x=0 y={} font-size=11>peak {max} per {unit}</text></svg>",
        h + 12
    );
    out
}

/// A task queue: deployment, slots, backlog by priority and fairness key,
/// rates, limits, what goes next, throughput over the last minute and hour.
pub(crate) fn queue(s: &Session, q: &QueueView) -> String {
    let st = &q.stats;
    let rate = match st.rate_limit.rate {
        None => "unlimited".to_owned(),
        Some(0.0) => "paused".to_owned(),
        Some(r) => format!("{r}/s, burst {}", st.rate_limit.burst),
    };
    let mut body = format!(
        "<p><a href=\"/ui/activities?ns={ns}&amp;task_queue={qn}\">Its activities</a></p>\
         <table><tr><th>Deployment</th><td>{dep}{rollout}</td></tr>\
         <tr><th>Module load</th><td>{load}</td></tr>\
         <tr><th>Running / slots</th><td id=running>{} / {}</td></tr>\
         <tr><th>Backlog</th><td id=backlog>{} (oldest {} ms)</td></tr>\
         <tr><th>In backoff</th><td>{}</td></tr><tr><th>Awaiting completion</th><td>{}</td></tr>\
         <tr><th>Waiting on concurrency limits</th><td>{}</td></tr>\
         <tr><th>Rate limit</th><td>{}</td></tr>\
         <tr><th>Per second (last minute)</th><td>dispatched {:.1}, completed {:.1}, failed {:.1}</td></tr></table>",
        st.running,
        st.slots,
        st.backlog,
        st.backlog_oldest_age_ms,
        q.in_backoff,
        q.awaiting_async,
        st.waiting_on_limits,
        esc(&rate),
        st.dispatched_per_second,
        st.completed_per_second,
        st.failed_per_second,
        ns = enc(&q.namespace),
        qn = enc(&q.name),
        dep = esc(q.deployment.as_deref().unwrap_or("none")),
        load = q
            .module_load
            .as_ref()
            .map(|l| format!("{:?} in {:.1} ms", l.source, l.ms))
            .unwrap_or_default(),
        rollout = q
            .rollout
            .as_ref()
            .map(|r| format!(", rolling out {} to {}%", esc(&r.module), r.percent))
            .unwrap_or_default(),
    );
    let _ = write!(
        body,
        "<h2>Finished attempts</h2><p>Last minute, per second</p>{}<p>Last hour, per minute</p>{}",
        bars(&st.finished_last_minute, "second"),
        bars(&st.finished_last_hour, "minute"),
    );
    body.push_str(
        "<h2>Backlog by priority</h2><table><tr><th>Priority</th><th>Waiting</th>\
         <th>Oldest (ms)</th><th>By fairness key (weight)</th></tr>",
    );
    for p in &st.backlog_by_priority {
        let keys = p
            .fairness_keys
            .iter()
            .map(|k| {
                let key = if k.key.is_empty() { "(none)" } else { &k.key };
                format!("{}: {} ({})", esc(key), k.count, k.weight)
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{keys}</td></tr>",
            p.priority, p.count, p.oldest_age_ms
        );
    }
    body.push_str("</table>");
    if !q.concurrency_limits.is_empty() {
        body.push_str(
            "<h2>Concurrency limits</h2><table><tr><th>Limit</th><th>At most</th>\
             <th>Running</th><th>Waiting</th></tr>",
        );
        for g in &q.concurrency_limits {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&g.key),
                g.max_concurrent.map(|m| m.to_string()).unwrap_or_default(),
                g.running,
                g.waiting
            );
        }
        body.push_str("</table>");
    }
    body.push_str("<h2>Next to go</h2><ol id=next>");
    for id in &q.next_activities {
        let _ = write!(
            body,
            "<li><a href=\"{}\">{}</a></li>",
            activity_href(&q.namespace, id),
            esc(id)
        );
    }
    body.push_str("</ol>");
    layout(Some(s), &format!("Task queue {}", q.name), true, &body)
}

/// A namespace's task queues in use, largest backlog first.
pub(crate) fn queues(s: &Session, ns: &str, list: &[(String, String, usize, u64)]) -> String {
    let mut sorted: Vec<_> = list.iter().collect();
    sorted.sort_by(|a, b| b.2.cmp(&a.2).then(a.1.cmp(&b.1)));
    let mut body = format!(
        "<p>Namespace {}</p><table><tr><th>Task queue</th><th>Backlog</th><th>Oldest waiting</th></tr>",
        esc(ns)
    );
    for (_, q, len, age_ms) in sorted {
        let _ = write!(
            body,
            "<tr><td><a href=\"/ui/namespaces/{}/task-queues/{}\">{}</a></td><td>{len}</td><td>{:.1} s</td></tr>",
            enc(ns),
            enc(q),
            esc(q),
            *age_ms as f64 / 1000.0
        );
    }
    body.push_str("</table>");
    layout(Some(s), "Task queues", true, &body)
}

/// A namespace's modules, every version.
pub(crate) fn modules(
    s: &Session,
    ns: &str,
    list: &[crate::store::modules::ModuleRecord],
    loads: &[Option<crate::service::ModuleLoad>],
    deployed: &[crate::store::flow::DeploymentRow],
) -> String {
    let mut body = format!(
        "<p>Namespace {}. Deploying a version to a queue switches the queue to it at once \
         (an earlier version: a rollback).</p><table><tr><th>Module</th><th>Version</th>\
         <th>Activity types</th><th>Size</th><th>SHA-256</th><th>Uploaded</th>\
         <th>Loaded in this process</th><th>Serves</th>\
         <th>Deploy</th></tr>",
        esc(ns)
    );
    for (i, m) in list.iter().enumerate() {
        let load = loads
            .get(i)
            .and_then(|l| l.as_ref())
            .map(|l| format!("{:?} in {:.1} ms", l.source, l.ms))
            .unwrap_or_default();
        let serves = deployed
            .iter()
            .filter_map(|d| {
                let q = format!(
                    "<a href=\"/ui/namespaces/{}/task-queues/{}\">{}</a>",
                    enc(ns),
                    enc(&d.task_queue),
                    esc(&d.task_queue)
                );
                if d.module_name != m.name {
                    None
                } else if d.module_version == m.version {
                    Some(q)
                } else if d.ramp_version == Some(m.version) {
                    Some(format!("{q} ({}%)", d.ramp_percent.unwrap_or(0)))
                } else {
                    None
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            body,
            "<tr><td>{name}</td><td>{v}</td><td>{}</td><td>{} bytes</td><td><code title=\"{sha}\">{}</code></td>\
             <td>{}</td><td>{load}</td><td>{serves}</td><td><form class=inline method=post \
             action=\"/ui/namespaces/{}/modules/{}/{v}/deploy\" \
             onsubmit=\"return confirm('Deploy {js}@{v} to task queue '+this.queue.value+'?')\">\
             <input type=hidden name=csrf value=\"{csrf}\"><input name=queue placeholder=\"task queue\" \
             required maxlength=1000 size=12> <button>Deploy</button></form></td></tr>",
            esc(&m.activity_types.join(", ")),
            m.size,
            esc(m.sha256.get(..12).unwrap_or(&m.sha256)),
            time(Some(m.created_ms)),
            enc(ns),
            enc(&m.name),
            name = esc(&m.name),
            v = m.version,
            js = esc(&m.name.replace(['\'', '\\'], "")),
            sha = esc(&m.sha256),
            csrf = s.csrf,
        );
    }
    body.push_str("</table>");
    layout(Some(s), "Modules", false, &body)
}

/// Namespaces the visitor may see, with usage, egress counters and quotas.
pub(crate) fn namespaces(s: &Session, list: &[NamespaceView]) -> String {
    let mut body = String::from(
        "<table><tr><th>Namespace</th><th>Open activities</th><th>Running attempts</th>\
         <th>Stored payloads</th><th>Attempts</th><th>Guest CPU</th><th>Starts rate-limited</th>\
         <th>Outbound HTTP (refused)</th><th>Quotas</th></tr>",
    );
    for n in list {
        let u = &n.usage;
        let _ = write!(
            body,
            "<tr><td><a href=\"/ui/activities?ns={}\">{}</a></td><td>{}</td><td>{}</td>\
             <td>{} bytes</td><td>{}</td><td>{:.3} s</td><td>{}</td><td>{} ({})</td>\
             <td><pre>{}</pre></td></tr>",
            enc(&n.name),
            esc(&n.name),
            n.open_activities,
            n.running_attempts,
            n.stored_bytes,
            u.attempts,
            u.guest_cpu_seconds,
            u.starts_rate_limited,
            u.egress_requests,
            u.egress_denied,
            json(&n.quotas)
        );
    }
    body.push_str("</table>");
    layout(Some(s), "Namespaces", false, &body)
}
