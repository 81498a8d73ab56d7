//! Starting an activity, alone or in a batch: validation, idempotency by
//! activity id, the durable insert (one transaction for a whole batch), then
//! the backlog.
//!
//! A new run whose input memory holds (see `held.rs`) joins its queue's
//! backlog as soon as its row is queued for writing, not once the row has
//! committed: its first attempt runs while the commit goes on, and a short
//! attempt's end joins the same transaction or the next. Order is kept by
//! the writer: every write about a run is queued after its row's. A start
//! is still answered only once its row has committed. If the row cannot be
//! written, the start is refused and the run forgotten: a running attempt
//! is stopped, an ending it queued finds no row and writes, counts and
//! shows nothing, and an attempt that already ran ran for a start nobody
//! was told of, which
//! at-least-once execution allows (a client that starts it again runs it
//! again). A start naming a run whose row is still being written by
//! another waits for that write and answers as it ended (`row_write.rs`).

use super::activity::{self, Activity};
use super::bounds;
use super::options::{ActivityOptions, IdReusePolicy};
use super::row_write::RowWrite;
use super::tenant::Tenant;
use super::timers::TimerEvent;
use super::{Service, ServiceError};
use crate::payload::Payload;
use crate::queue::{gate, Task};
use crate::store::activities::{self as rows, ActivityFixed, ActivityProgress, Closed, RunState};
use crate::store::{Queued, StoreError};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A request to start an activity.
#[derive(Clone, Debug)]
pub struct StartRequest {
    /// Idempotency key; generated when absent.
    pub activity_id: Option<String>,
    /// Activity type.
    pub activity_type: String,
    /// Task queue.
    pub task_queue: String,
    /// Arguments.
    pub input: Vec<Payload>,
    /// Timeouts, retry policy, id reuse.
    pub options: ActivityOptions,
}

/// The answer to a start.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Started {
    /// True when this request created the run; false when an existing run
    /// with the same id was returned.
    pub created: bool,
    /// The run.
    pub activity: ActivityRef,
}

/// What a start answers about the run: enough to address it, cheap to
/// build (a start is on the hot path; describe has the rest).
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ActivityRef {
    /// Namespace.
    pub namespace: String,
    /// Activity id.
    pub activity_id: String,
    /// Run id.
    pub run_id: i64,
    /// Activity type.
    pub activity_type: String,
    /// Task queue.
    pub task_queue: String,
    /// State.
    pub state: String,
    /// Current or last attempt.
    pub attempt: u32,
    /// First scheduled (ms since the Unix epoch).
    pub scheduled_ms: u64,
}

impl ActivityRef {
    fn of(f: &ActivityFixed, p: &ActivityProgress) -> Self {
        Self {
            namespace: f.namespace.clone(),
            activity_id: f.activity_id.clone(),
            run_id: f.run_id,
            activity_type: f.activity_type.clone(),
            task_queue: f.task_queue.clone(),
            state: p.state.as_str().to_owned(),
            attempt: p.attempt,
            scheduled_ms: f.scheduled_ms,
        }
    }
}

/// A generated activity id: the start's time (ms, 48 bits) then 80 random
/// bits, as 32 hex digits. Time first, so that ids made one after another
/// sort together: each start's entry in the id index lands on the page the
/// last ones did, and a group commit of many starts writes a few index
/// pages rather than one per start. The random bits keep ids unguessable
/// and two starts in one millisecond apart.
fn new_id(now_ms: u64) -> String {
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&now_ms.to_be_bytes()[2..]);
    crate::random::fill(&mut b[6..]);
    hex::encode(b)
}

/// A start that passed its checks: the existing run it names (committed,
/// or of the same write), one whose row another write still holds, or a new
/// run reserved in memory whose row is still to be written.
enum Prepared {
    Existing(Started),
    Unsettled(Arc<RowWrite>, Started),
    New(Reserved),
}

/// A new run held in memory (open, indexed by id) until its row commits;
/// undone by [`Service::release`] if the write fails.
struct Reserved {
    fixed: Arc<ActivityFixed>,
    progress: ActivityProgress,
    /// The row's options and input JSON, written once and then dropped:
    /// memory keeps neither.
    options: Arc<str>,
    input: Arc<str>,
    /// Memory holds the input: the first attempt needs no row to read it
    /// from, and may run before the row commits.
    held: bool,
}

impl Service {
    /// Starts an activity, or returns the existing run with the same id as
    /// the id reuse policy says. Answers once the start is durable.
    pub async fn start(&self, ns: &str, req: StartRequest) -> Result<Started, ServiceError> {
        let tenant = self.start_tenant(ns)?;
        let row = Arc::new(RowWrite::default());
        let r = match self.prepare(&tenant, ns, req, &row)? {
            Prepared::Existing(started) => return Ok(started),
            Prepared::Unsettled(other, started) => return self.once_written(&other, started).await,
            Prepared::New(r) => r,
        };
        self.write_new(tenant, row, vec![r])
            .finish()
            .await?
            .pop()
            .ok_or_else(unanswered)
    }

    /// Starts many activities: each is checked and answered as
    /// [`start`](Self::start) would answer it alone (an error of one does
    /// not stop the others), and every new run is written in one
    /// transaction before any is answered. A start whose id an earlier
    /// start of the same batch took answers that run as existing.
    ///
    /// An error for the whole batch (the namespace, shutdown) comes before
    /// anything is started.
    pub async fn start_batch(
        &self,
        ns: &str,
        reqs: Vec<Result<StartRequest, ServiceError>>,
    ) -> Result<Vec<Result<Started, ServiceError>>, ServiceError> {
        let tenant = self.start_tenant(ns)?;
        let row = Arc::new(RowWrite::default());
        let prepared: Vec<Result<Prepared, ServiceError>> = reqs
            .into_iter()
            .map(|r| r.and_then(|req| self.prepare(&tenant, ns, req, &row)))
            .collect();
        let mut answers = Vec::with_capacity(prepared.len());
        let mut runs = Vec::new();
        // Starts naming runs of other writes still pending, by answer.
        let mut unsettled = Vec::new();
        for p in prepared {
            match p {
                Ok(Prepared::New(r)) => {
                    answers.push(None);
                    runs.push(r);
                }
                Ok(Prepared::Existing(s)) => answers.push(Some(Ok(s))),
                Ok(Prepared::Unsettled(other, s)) => {
                    unsettled.push((answers.len(), other));
                    answers.push(Some(Ok(s)));
                }
                Err(e) => answers.push(Some(Err(e))),
            }
        }
        let ours: std::collections::HashSet<i64> = runs.iter().map(|r| r.fixed.run_id).collect();
        // This batch's rows are queued before it waits for any other write,
        // so two batches naming each other's runs never wait on each other.
        let written = if runs.is_empty() {
            Ok(Vec::new())
        } else {
            self.write_new(tenant, row, runs).finish().await
        };
        for (i, other) in unsettled {
            if !self.settled(&other).await {
                answers[i] = Some(Err(duplicate_refused()));
            }
        }
        match written {
            Ok(started) => {
                let mut started = started.into_iter();
                Ok(answers
                    .into_iter()
                    .map(|a| a.unwrap_or_else(|| started.next().ok_or_else(unanswered)))
                    .collect())
            }
            Err(e) => {
                // Nothing of the batch was written: every run it reserved is
                // undone, and so is an answer naming one of them.
                let message = e.to_string();
                let failed = || ServiceError::Store(StoreError::Commit(message.clone()));
                Ok(answers
                    .into_iter()
                    .map(|a| match a {
                        Some(Ok(s)) if !ours.contains(&s.activity.run_id) => Ok(s),
                        Some(Ok(_)) | None => Err(failed()),
                        Some(Err(e)) => Err(e),
                    })
                    .collect())
            }
        }
    }

    /// The namespace a start goes to, unless starts are refused there.
    fn start_tenant(&self, ns: &str) -> Result<Arc<Tenant>, ServiceError> {
        let tenant = self.shared.tenant(ns)?;
        if *self.shared.stopping.borrow() {
            return Err(ServiceError::ShuttingDown);
        }
        Ok(tenant)
    }

    /// Checks a start and either finds the run it names or reserves a new
    /// one in memory, whose row `row` is to write.
    fn prepare(
        &self,
        tenant: &Tenant,
        ns: &str,
        req: StartRequest,
        row: &Arc<RowWrite>,
    ) -> Result<Prepared, ServiceError> {
        let s = &self.shared;
        req.options
            .validate()
            .map_err(ServiceError::InvalidArgument)?;
        let quotas = tenant.quotas();
        let payload_limit = s
            .cfg
            .payload_limit
            .min(bounds::size(quotas.max_payload_bytes));
        let checks = || {
            if let Some(id) = &req.activity_id {
                bounds::id("activity_id", id)?;
            }
            bounds::id("activity_type", &req.activity_type)?;
            bounds::id("task_queue", &req.task_queue)?;
            bounds::count("input", req.input.len(), bounds::MAX_INPUTS)
        };
        checks().map_err(ServiceError::InvalidArgument)?;
        for (i, p) in req.input.iter().enumerate() {
            if p.size() > payload_limit {
                return Err(ServiceError::PayloadTooLarge(format!(
                    "input {i} is {} bytes; the payload limit is {payload_limit} bytes",
                    p.size(),
                )));
            }
        }
        // Encoded once, here, outside the lock; memory keeps none of it.
        let input: Arc<str> = Arc::from(activity::payloads_json(&req.input));
        let input_bytes = input.len() as u64;
        drop(req.input);
        let options: Arc<str> = Arc::from(serde_json::to_string(&req.options).unwrap_or_default());
        let now = s.clock.read();
        tenant
            .take_start(now.at)
            .map_err(ServiceError::RateLimited)?;
        // A generated id has 80 random bits: no earlier run can have it.
        let generated = req.activity_id.is_none();
        let activity_id = req.activity_id.clone().unwrap_or_else(|| new_id(now.ms));

        let mut st = s.lock();
        if let Some(run_id) = st.by_id.get(ns, &activity_id) {
            if let Some(a) = st.open.get(&run_id) {
                let started = Started {
                    created: false,
                    activity: ActivityRef::of(&a.fixed, &a.progress),
                };
                return Ok(match &a.row {
                    Some(other) if !Arc::ptr_eq(other, row) && other.settled() != Some(true) => {
                        Prepared::Unsettled(other.clone(), started)
                    }
                    _ => Prepared::Existing(started),
                });
            }
        }
        let earlier = if generated {
            None
        } else {
            s.db.latest_run(ns, &activity_id)?
        };
        if let Some((f, p)) = earlier {
            let reuse = match req.options.id_reuse_policy {
                IdReusePolicy::RejectDuplicate => false,
                IdReusePolicy::AllowDuplicate => true,
                IdReusePolicy::AllowDuplicateFailedOnly => {
                    p.state.closed() != Some(Closed::Completed)
                }
            };
            if !p.state.is_closed() || !reuse {
                return Ok(Prepared::Existing(Started {
                    created: false,
                    activity: ActivityRef::of(&f, &p),
                }));
            }
        }
        if tenant.open.load(Ordering::Relaxed) >= quotas.max_open_activities {
            return Err(ServiceError::QuotaExceeded(format!(
                "namespace {ns:?} has {} open activities, its quota",
                quotas.max_open_activities
            )));
        }
        let stored = tenant.stored.load(Ordering::Relaxed);
        if stored.saturating_add(input_bytes) > quotas.max_stored_bytes {
            return Err(ServiceError::StoredBytesExceeded(format!(
                "namespace {ns:?} stores {stored} bytes of payloads of open activities; \
                 this input ({input_bytes} bytes) would exceed its quota max_stored_bytes \
                 = {} bytes (raise it with `wharf namespace update {ns} --quota \
                 max_stored_bytes=...`, or wait for activities to close)",
                quotas.max_stored_bytes
            )));
        }
        tenant.open.fetch_add(1, Ordering::Relaxed);
        tenant.stored_changed(0, input_bytes);
        let run_id = st.next_run_id;
        st.next_run_id += 1;
        let fixed = Arc::new(ActivityFixed {
            run_id,
            namespace: ns.to_owned(),
            activity_id,
            activity_type: req.activity_type,
            task_queue: req.task_queue,
            scheduled_ms: now.ms,
        });
        let progress = ActivityProgress {
            state: RunState::Scheduled,
            attempt: 1,
            attempt_scheduled_ms: now.ms,
            ..ActivityProgress::default()
        };
        let shared = activity::shared_options(&mut st.last_options, req.options);
        let stored = activity::Stored {
            input: input_bytes,
            heartbeat: 0,
        };
        let mut a = Activity::new(fixed.clone(), shared, progress.clone(), stored, now.at);
        a.input = s.held.hold(&input);
        a.row = Some(row.clone());
        let held = a.input.is_some();
        st.open.insert(run_id, Box::new(a));
        st.by_id.insert(&fixed);
        st.note_open(&fixed);
        Ok(Prepared::New(Reserved {
            fixed,
            progress,
            options,
            input,
            held,
        }))
    }

    /// Queues the rows of reserved runs for writing, in one transaction,
    /// then dispatches the first attempts that can run without their row
    /// (see the module's comment).
    fn write_new(&self, tenant: Arc<Tenant>, row: Arc<RowWrite>, runs: Vec<Reserved>) -> Writing {
        let rows: Vec<_> = runs
            .iter()
            .map(|r| {
                let (f, p) = (r.fixed.clone(), r.progress.clone());
                (f, p, r.options.clone(), r.input.clone())
            })
            .collect();
        let written = self.shared.db.queue_unguarded_awaiting(
            move |c| {
                rows.iter()
                    .try_for_each(|(f, p, o, i)| rows::insert_activity(c, f, o, i, p))
            },
            row.ends.clone(),
        );
        for r in runs.iter().filter(|r| r.held) {
            self.shared.schedule(r.fixed.run_id, 1, true);
        }
        Writing {
            service: self.clone(),
            tenant,
            row,
            runs,
            written: Some(written),
        }
    }

    /// The answer to a start that named a run another write holds: the run,
    /// once that write has committed; an error if it failed (the run is
    /// gone, and starting again makes a new one).
    async fn once_written(
        &self,
        row: &RowWrite,
        started: Started,
    ) -> Result<Started, ServiceError> {
        if self.settled(row).await {
            Ok(started)
        } else {
            Err(duplicate_refused())
        }
    }

    /// Waits for a write of new rows to settle; whether it committed.
    async fn settled(&self, row: &RowWrite) -> bool {
        loop {
            let settled = self.shared.rows_settled.notified();
            tokio::pin!(settled);
            // Registered before the look below: a write settling between
            // the two still wakes it.
            settled.as_mut().enable();
            if let Some(committed) = row.settled() {
                return committed;
            }
            settled.await;
        }
    }

    /// Undoes a reservation whose row was not written. A run dispatched
    /// early may be queued, running, or ended in memory (an ending that
    /// found no row changes nothing else): it leaves its queue, and its
    /// attempt is stopped.
    fn release(&self, tenant: &Tenant, r: &Reserved) {
        let mut st = self.shared.lock();
        let Some(a) = st.open.remove(&r.fixed.run_id) else {
            return;
        };
        if let Some(running) = &a.running {
            running.stop.trigger();
        }
        st.by_id.remove_run(&r.fixed);
        st.forget_open(&r.fixed, r.fixed.run_id);
        tenant.open.fetch_sub(1, Ordering::Relaxed);
        tenant.stored_changed(a.stored.total(), 0);
        let key = (r.fixed.namespace.clone(), r.fixed.task_queue.clone());
        let queue = r.held.then(|| st.queues.get(&key).cloned()).flatten();
        drop(st);
        if let Some(q) = queue {
            q.remove(r.fixed.run_id);
        }
    }

    /// A reserved run whose row is committed: counted, queued (unless it
    /// was dispatched early), answered.
    fn scheduled(&self, r: Reserved) -> Started {
        let s = &self.shared;
        s.counters.started.fetch_add(1, Ordering::Relaxed);
        s.trace_start(&r.fixed);
        if !r.held {
            s.schedule(r.fixed.run_id, 1, true);
        }
        Started {
            created: true,
            activity: ActivityRef::of(&r.fixed, &r.progress),
        }
    }
}

/// The answer to a start naming a run whose row another start's write
/// failed to commit.
fn duplicate_refused() -> ServiceError {
    ServiceError::Store(StoreError::Commit(
        "a start of the same activity id was being written and its write failed; \
         nothing was started"
            .to_owned(),
    ))
}

/// The answer for a new run [`Writing::finish`] did not give: it gives one
/// for each, so this is never used.
fn unanswered() -> ServiceError {
    ServiceError::Store(StoreError::WriterGone)
}

/// New runs whose rows are queued for writing. When the write ends they
/// are queued and counted if it committed, and undone if it failed, by
/// whoever holds this then: the request awaiting it, or a task of its own
/// if that request was dropped first (its client went away). A committed
/// run then never waits for a restart to be queued, and a refused one
/// never stays reserved.
struct Writing {
    service: Service,
    tenant: Arc<Tenant>,
    row: Arc<RowWrite>,
    runs: Vec<Reserved>,
    written: Option<Queued<()>>,
}

impl Writing {
    /// Waits for the write; the runs' answers, in order, or why it failed.
    async fn finish(mut self) -> Result<Vec<Started>, StoreError> {
        let outcome = match self.written.as_mut() {
            Some(written) => written.await,
            None => Ok(()),
        };
        self.written = None;
        self.settle(outcome)
    }

    fn settle(&mut self, outcome: Result<(), StoreError>) -> Result<Vec<Started>, StoreError> {
        let runs = std::mem::take(&mut self.runs);
        let answer = match outcome {
            Ok(()) => {
                self.row.settle(true);
                Ok(runs
                    .into_iter()
                    .map(|r| self.service.scheduled(r))
                    .collect())
            }
            Err(e) => {
                runs.iter()
                    .for_each(|r| self.service.release(&self.tenant, r));
                self.row.settle(false);
                Err(e)
            }
        };
        self.service.shared.rows_settled.notify_waiters();
        answer
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        let Some(written) = self.written.take() else {
            return;
        };
        let mut rest = Writing {
            service: self.service.clone(),
            tenant: self.tenant.clone(),
            row: self.row.clone(),
            runs: std::mem::take(&mut self.runs),
            written: None,
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let _ = rest.settle(written.await);
                });
            }
            Err(_) => tracing::error!("a start's write was abandoned outside the runtime"),
        }
    }
}

impl super::Shared {
    /// Puts attempt `attempt` of a scheduled run into its queue's backlog and
    /// arms its schedule-to-start timer (and, the first time, the
    /// schedule-to-close timer).
    pub(super) fn schedule(&self, run_id: i64, attempt: u32, first: bool) {
        let mut st = self.lock();
        let Some(a) = st.open.get(&run_id) else {
            return;
        };
        if a.progress.state != RunState::Scheduled || a.progress.attempt != attempt {
            return;
        }
        let (ns, q) = (a.fixed.namespace.clone(), a.fixed.task_queue.clone());
        let (sts, stc) = (
            a.options.schedule_to_start_timeout,
            a.options.schedule_to_close_timeout,
        );
        let scheduled_ms = a.fixed.scheduled_ms;
        let o = &a.options;
        let task = |enqueued| Task {
            run_id,
            attempt,
            enqueued,
            priority: o.priority,
            fairness_key: o.fairness_key.as_deref().unwrap_or("").into(),
            fairness_weight: o.fairness_weight,
            gates: gate::gates_of(
                &ns,
                &q,
                &a.fixed.activity_type,
                o.concurrency_key.as_deref(),
            ),
        };
        let now = self.clock.read();
        let task = task(now.at.into_std());
        let queue = st.queue(&ns, &q, &self.clock);
        drop(st);
        queue.push(task);
        if let Some(d) = sts {
            self.timers.set(
                bounds::later(now.at, d),
                TimerEvent::ScheduleToStart { run_id, attempt },
            );
        }
        if first {
            if let Some(d) = stc {
                self.timers.set(
                    bounds::later(now.instant_of(scheduled_ms), d),
                    TimerEvent::ScheduleToClose { run_id },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::new_id;

    #[test]
    fn generated_ids_sort_by_time_and_differ_within_a_millisecond() {
        let (a, b) = (new_id(1_700_000_000_000), new_id(1_700_000_000_000));
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a[..12], b[..12]);
        assert!(new_id(1_700_000_000_001) > a.max(b.clone()));
        assert!(new_id(u64::MAX) > new_id(1_700_000_000_001));
    }
}
