//! Reading activities and queues: describe, list, long-poll for a result.
//! A run is shown from SQLite, which has its payloads; an open one with
//! what memory knows on top (the attempt running now).

use super::activity::{self, ActivityView, AttemptView};
use super::{Service, ServiceError};
use crate::payload::Payload;
use crate::queue::{QueueStats, TaskQueue};
use crate::registry::{LoadSource, LoadedModule};
use crate::store::activities::ActivityFilter;
use crate::store::activities::{RunKey, RunState};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// A page of the activity list.
#[derive(Debug)]
pub struct ActivityPage {
    /// The activities, newest first.
    pub activities: Vec<ActivityView>,
    /// More activities matched than the page's payload bytes allow; it
    /// ends before them.
    pub truncated: bool,
}

/// A task queue as the API shows it.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct QueueView {
    /// Namespace.
    pub namespace: String,
    /// Queue name.
    pub name: String,
    /// Serving module, as `name@version`, if deployed.
    pub deployment: Option<String>,
    /// How this process made the serving module ready, if deployed: a
    /// restart should show `artifact` (mapped in milliseconds), not
    /// `compiled` (seconds for a large JS or Python component).
    pub module_load: Option<ModuleLoad>,
    /// A version being rolled out to a share of activities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// Activity ids of the next tasks to go, in dispatch order.
    pub next_activities: Vec<String>,
    /// Concurrency limits that apply to this queue's tasks: its own
    /// (`queue:Q/type:T`) and the namespace's (`type:T`, `key:K`).
    pub concurrency_limits: Vec<crate::queue::gate::GateView>,
    /// Backlog, running, slots, rates.
    #[serde(flatten)]
    pub stats: QueueStats,
    /// Activities waiting in backoff before their next attempt.
    pub in_backoff: usize,
    /// Attempts awaiting asynchronous completion.
    pub awaiting_async: usize,
}

/// A gradual rollout, for describe output.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Rollout {
    /// The version being rolled out, as `name@version`.
    pub module: String,
    /// Its share of activities, percent.
    pub percent: u8,
}

/// How a deployed module was loaded, for describe output.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ModuleLoad {
    /// Compiled, or mapped from the precompiled artifact.
    pub source: LoadSource,
    /// Milliseconds from the start of loading to ready (linked and its
    /// activity types listed).
    pub ms: f64,
}

impl ModuleLoad {
    pub(crate) fn of(m: &LoadedModule) -> Self {
        Self {
            source: m.source,
            ms: m.load_time.as_secs_f64() * 1000.0,
        }
    }
}

impl Service {
    /// Describes an activity (its newest run) with its attempt history.
    pub fn describe(&self, ns: &str, activity_id: &str) -> Result<ActivityView, ServiceError> {
        let s = &self.shared;
        s.check_namespace(ns)?;
        let open = s.lock().by_id.get(ns, activity_id);
        let run = match open {
            Some(run_id) => RunKey::Id(run_id),
            None => RunKey::Latest {
                namespace: ns,
                activity_id,
            },
        };
        self.describe_key(run, activity_id)
    }

    /// Waits up to `wait` for the activity to close, then describes it.
    pub async fn result(
        &self,
        ns: &str,
        activity_id: &str,
        wait: Duration,
    ) -> Result<ActivityView, ServiceError> {
        let s = &self.shared;
        s.check_namespace(ns)?;
        let closed = {
            let mut st = s.lock();
            let run_id = st.by_id.get(ns, activity_id);
            run_id
                .and_then(|r| st.open.get_mut(&r))
                .map(|a| (a.fixed.run_id, a.closed_notify()))
        };
        let Some((run_id, notify)) = closed else {
            return self.describe(ns, activity_id);
        };
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // Re-check: it may have closed before the waiter was registered.
        let still_open = s.lock().open.contains_key(&run_id);
        if still_open {
            let _ = tokio::time::timeout(wait, notified).await;
        }
        // The run waited for, even if a newer run of the id has started
        // since it closed: its result is what the caller waited for.
        self.describe_key(RunKey::Id(run_id), activity_id)
    }

    /// Lists activities, newest first, in one page of at most the filter's
    /// limit and [`MAX_LIST_BYTES`](crate::store::activities::MAX_LIST_BYTES)
    /// of payloads.
    pub fn list(&self, ns: &str, filter: &ActivityFilter) -> Result<ActivityPage, ServiceError> {
        self.check_namespace(ns)?;
        if let Some(p) = &filter.id_prefix {
            super::bounds::id("id_prefix", p).map_err(ServiceError::InvalidArgument)?;
        }
        let page = self.shared.db.list_activities(ns, filter)?;
        Ok(ActivityPage {
            activities: page
                .runs
                .iter()
                .map(|r| activity::view(r, &r.progress))
                .collect(),
            truncated: page.truncated,
        })
    }

    /// Describes a task queue; a queue nobody used yet is simply empty (task
    /// queues exist by use), and describing it creates nothing.
    pub fn describe_queue(&self, ns: &str, name: &str) -> Result<QueueView, ServiceError> {
        let s = &self.shared;
        s.check_namespace(ns)?;
        let st = s.lock();
        let key = (ns.to_owned(), name.to_owned());
        let queue = match st.queues.get(&key) {
            Some(q) => q.clone(),
            None => Arc::new(TaskQueue::new(ns, name, st.gates.clone(), s.clock.clone())),
        };
        let (mut in_backoff, mut awaiting_async) = (0, 0);
        let now = s.clock.now_ms();
        let runs = st.open_by_queue.get(&key);
        for a in runs.into_iter().flatten().filter_map(|r| st.open.get(r)) {
            if a.progress.state == RunState::Scheduled && a.progress.attempt_scheduled_ms > now {
                in_backoff += 1;
            }
            if a.progress.state.awaiting_async() {
                awaiting_async += 1;
            }
        }
        let gates = st.gates.clone();
        drop(st);
        let stats = queue.stats();
        let concurrency_limits = gates.views_for_queue(ns, name);
        let next_activities = {
            let st = s.lock();
            stats
                .next_run_ids
                .iter()
                .filter_map(|r| st.open.get(r).map(|a| a.fixed.activity_id.clone()))
                .collect()
        };
        let deployment = queue.deployment();
        Ok(QueueView {
            rollout: deployment.as_ref().and_then(|d| {
                d.ramp.as_ref().map(|r| Rollout {
                    module: format!("{}@{}", d.name, r.version),
                    percent: r.percent,
                })
            }),
            next_activities,
            concurrency_limits,
            namespace: ns.to_owned(),
            name: name.to_owned(),
            deployment: deployment
                .as_ref()
                .map(|d| format!("{}@{}", d.name, d.version)),
            module_load: deployment.as_ref().map(|d| ModuleLoad::of(&d.module)),
            stats,
            in_backoff,
            awaiting_async,
        })
    }

    /// Describes a run by run id: as SQLite has it (with its payloads),
    /// and for an open run with what only memory knows on top (where it is
    /// now, the attempt running here and the details it reported).
    pub(super) fn describe_run(&self, run_id: i64) -> Result<ActivityView, ServiceError> {
        self.describe_key(RunKey::Id(run_id), &run_id.to_string())
    }

    /// Describes `run` as [`Self::describe_run`] does; `name` is what a
    /// not-found error names. The run and its attempts come from one read.
    fn describe_key(&self, run: RunKey<'_>, name: &str) -> Result<ActivityView, ServiceError> {
        let s = &self.shared;
        // Memory first: a run that closes in between is then shown as
        // SQLite has it, closed.
        let from_memory = match run {
            RunKey::Id(run_id) => s.lock().open.get(&run_id).map(|a| {
                let running = a.running.as_ref().map(|r| AttemptView {
                    attempt: a.progress.attempt,
                    started_ms: a.progress.started_ms.unwrap_or_default(),
                    ended_ms: None,
                    outcome: Some("running".into()),
                    failure_type: None,
                    failure_message: None,
                    log_tail: None,
                    heartbeat_details: a.heartbeat.iter().map(Payload::to_json).collect(),
                    module: Some(r.module.clone()),
                    guest_cpu_seconds: None,
                });
                (a.shown(), running)
            }),
            // Looked up by activity id once memory had no open run of it.
            RunKey::Latest { .. } => None,
        };
        let (stored, attempts) =
            s.db.run_with_attempts(run)?
                .ok_or_else(|| ServiceError::ActivityNotFound(name.to_owned()))?;
        if matches!(run, RunKey::Latest { .. }) && !stored.progress.state.is_closed() {
            // Started since memory was asked: shown as any open run is.
            return self.describe_key(RunKey::Id(stored.fixed.run_id), name);
        }
        let (progress, running) = match from_memory {
            Some((mut p, running)) if !stored.progress.state.is_closed() => {
                let on_disk = stored.progress.clone();
                p.heartbeat_details = p.heartbeat_details.or(on_disk.heartbeat_details);
                p.last_failure = on_disk.last_failure;
                p.result = on_disk.result;
                (p, running)
            }
            _ => (stored.progress.clone(), None),
        };
        let mut view = activity::view(&stored, &progress);
        let mut attempts: Vec<AttemptView> = attempts.into_iter().map(Into::into).collect();
        if let Some(mut r) = running {
            // Without details of its own, it shows those it was given.
            if r.heartbeat_details.is_empty() {
                r.heartbeat_details = view.heartbeat_details.clone();
            }
            if attempts.last().is_none_or(|l| l.attempt < r.attempt) {
                attempts.push(r);
            }
        }
        view.attempts = Some(attempts);
        Ok(view)
    }
}
