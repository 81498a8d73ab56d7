//! Recovery at start: memory rebuilt from SQLite.
//!
//! Namespaces, deployments, limits and queue rates are loaded; every open
//! run is put back in memory with its timers, a scheduled one back in its
//! queue, and an attempt that was running when the last process died is
//! ended as `worker_lost` (and retried as the policy says). Open runs are
//! read in batches of [`BATCH`] and without their payloads (only their
//! sizes, for the namespaces' stored bytes), so recovery holds no more
//! than memory keeps afterwards. A run whose stored row cannot be read or
//! used (an unknown state, options that do not parse or are out of range)
//! is failed with [`STORED_STATE_INVALID`] and never enters memory: nothing
//! runs on guessed values; an input that is not a list of payloads fails
//! the run the same way when its attempt starts.

use super::activity::{self, Activity, Stored};
use super::bounds;
use super::decide::Ending;
use super::options::ActivityOptions;
use super::timers::TimerEvent;
use super::{tenant, ServiceError, Shared};
use crate::store::activities::{self as rows, ActivityProgress, OpenRun, RunState};
use crate::worker::Failure;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Failure type of an activity whose stored state could not be used after a
/// restart (options that do not parse or are out of range, an unknown
/// state); the activity is failed, not retried.
pub const STORED_STATE_INVALID: &str = "WharfStoredStateInvalid";

/// Attempts that were running when the last process died: (run id, attempt).
type Lost = Vec<(i64, u32)>;

/// Open runs read from SQLite at a time.
const BATCH: u32 = 1000;

impl Shared {
    /// Rebuilds memory from SQLite; see [`super::Service::open`].
    pub(super) async fn recover(self: &Arc<Self>) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let namespaces = self
            .db
            .namespaces()?
            .iter()
            .map(|row| (row.name.clone(), Arc::new(tenant::Tenant::new(row, now))))
            .collect();
        let max_run = self.db.max_run_id()?;
        {
            let mut st = self.lock();
            st.namespaces = namespaces;
            st.next_run_id = max_run + 1;
        }
        for row in self.db.deployments()? {
            match self.load_deployment(&row).await {
                Ok(d) => self.install_deployment(&row, d),
                Err(e) => tracing::error!(
                    queue = row.task_queue,
                    module = row.module_name,
                    "cannot restore deployment: {e}"
                ),
            }
        }
        for row in self.db.limits()? {
            self.restore_limit(&row);
        }
        for row in self.db.queue_rates()? {
            self.lock()
                .queue(&row.namespace, &row.task_queue, &self.clock)
                .set_rate(super::limits::rate_config(&row));
        }
        let mut lost = Vec::new();
        let mut after = 0;
        loop {
            let batch = self.db.open_activities(after, BATCH)?;
            for (run_id, why) in batch.unreadable {
                tracing::error!(run_id, "stored activity cannot be read; failing it: {why}");
                self.fail_stored(run_id, &why).await;
            }
            let mut usable = Vec::with_capacity(batch.readable.len());
            for run in batch.readable {
                match stored_options(&run.options, &run.progress) {
                    Ok(options) => usable.push((run, options)),
                    Err(why) => {
                        tracing::error!(
                            run_id = run.fixed.run_id,
                            namespace = run.fixed.namespace,
                            activity_id = run.fixed.activity_id,
                            "stored activity is invalid; failing it: {why}"
                        );
                        if self.fail_stored(run.fixed.run_id, &why).await {
                            self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            lost.extend(self.restore_open(usable));
            match batch.last {
                Some(last) => after = last,
                None => break,
            }
        }
        if !lost.is_empty() {
            tracing::info!(
                count = lost.len(),
                "retrying attempts interrupted by the last shutdown or crash"
            );
        }
        for (run_id, attempt) in lost {
            // A failed write is logged, and the attempt ended again later.
            let _ = self
                .end_attempt(run_id, attempt, Ending::WorkerLost, ())
                .await;
        }
        Ok(())
    }

    /// Fails a stored run that cannot be read or used, with the typed
    /// reason [`STORED_STATE_INVALID`]; a write that fails is reported and
    /// left for the next start. Whether it was written.
    async fn fail_stored(&self, run_id: i64, why: &str) -> bool {
        let failure = Failure {
            error_type: STORED_STATE_INVALID.into(),
            message: format!(
                "the stored state of this activity cannot be used ({why}); it was failed when the server started"
            ),
            non_retryable: true,
            ..Failure::default()
        };
        let failure = serde_json::to_string(&failure).unwrap_or_default();
        let now_ms = self.clock.now_ms();
        let closed = self
            .db
            .write(move |c| rows::fail_unreadable(c, run_id, &failure, now_ms))
            .await;
        if let Err(e) = &closed {
            tracing::error!(run_id, "cannot fail the invalid stored activity: {e}");
        }
        closed.is_ok()
    }

    /// Puts open runs loaded from SQLite back into memory, queues and
    /// timers. Returns the attempts that were running when the last process
    /// died.
    fn restore_open(self: &Arc<Self>, open: Vec<(OpenRun, ActivityOptions)>) -> Lost {
        let mut lost = Vec::new();
        let mut ready = Vec::new();
        let now = self.clock.read();
        {
            let mut st = self.lock();
            for (run, options) in open {
                let run_id = run.fixed.run_id;
                let stored = Stored {
                    input: run.input_bytes,
                    heartbeat: run.heartbeat_bytes,
                };
                let options = activity::shared_options(&mut st.last_options, options);
                let a = Activity::new(Arc::new(run.fixed), options, run.progress, stored, now.at);
                let attempt = a.progress.attempt;
                if let Some(d) = a.options.schedule_to_close_timeout {
                    self.timers.set(
                        bounds::later(now.instant_of(a.fixed.scheduled_ms), d),
                        TimerEvent::ScheduleToClose { run_id },
                    );
                }
                match &a.progress.state {
                    RunState::Scheduled => {
                        let scheduled = now.instant_of(a.progress.attempt_scheduled_ms);
                        if let Some(d) = a.options.schedule_to_start_timeout {
                            self.timers.set(
                                bounds::later(scheduled, d),
                                TimerEvent::ScheduleToStart { run_id, attempt },
                            );
                        }
                        if a.progress.attempt_scheduled_ms <= now.ms {
                            ready.push((run_id, attempt));
                        } else {
                            let due_ms = a.progress.attempt_scheduled_ms;
                            self.timers.set(
                                scheduled,
                                TimerEvent::Backoff {
                                    run_id,
                                    attempt,
                                    due_ms,
                                },
                            );
                        }
                    }
                    RunState::AwaitingAsync { task_token } => {
                        if let Some(t) = task_token {
                            st.tokens.insert(t.clone(), run_id);
                        }
                        let started = now.instant_of(a.progress.started_ms.unwrap_or(now.ms));
                        self.timers.set(
                            bounds::later(started, a.options.attempt_timeout()),
                            TimerEvent::AsyncStartToClose { run_id, attempt },
                        );
                        if let Some(hb) = a.options.heartbeat_timeout {
                            self.timers.set(
                                bounds::later(now.at, hb),
                                TimerEvent::Heartbeat { run_id, attempt },
                            );
                        }
                    }
                    // A closed state was refused by `stored_options`.
                    RunState::Started { .. } | RunState::Closed { .. } => {
                        lost.push((run_id, attempt));
                    }
                }
                if let Some(t) = st.namespaces.get(&a.fixed.namespace) {
                    t.open.fetch_add(1, Ordering::Relaxed);
                    t.stored_changed(0, a.stored.total());
                }
                st.by_id.insert(&a.fixed);
                st.note_open(&a.fixed);
                st.open.insert(run_id, Box::new(a));
            }
        }
        for (run_id, attempt) in ready {
            // `first` is false: schedule-to-close timers were set above.
            self.schedule(run_id, attempt, false);
        }
        lost
    }
}

/// The options of a stored open run, or what is wrong with the stored run.
fn stored_options(options: &str, p: &ActivityProgress) -> Result<ActivityOptions, String> {
    if p.state.is_closed() {
        return Err(format!("state {:?} without a close time", p.state.as_str()));
    }
    ActivityOptions::parse(options).map_err(|e| format!("options: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_options_are_used_as_stored_or_the_run_is_refused() {
        let p = ActivityProgress::default();
        let ok = stored_options(r#"{"start_to_close_timeout":"7s"}"#, &p);
        assert_eq!(
            ok.map(|o| o.start_to_close_timeout),
            Ok(Some(std::time::Duration::from_secs(7)))
        );
        for options in [
            "not json",
            r#"{"schedule_to_close_timeout":"10000000000000000000s"}"#,
            r#"{"no_such_option":1}"#,
        ] {
            let why = stored_options(options, &p);
            assert!(why.is_err(), "{options}: {why:?}");
        }
        let closed = ActivityProgress {
            state: RunState::Closed {
                how: crate::store::activities::Closed::Failed,
                closed_ms: 1,
            },
            ..ActivityProgress::default()
        };
        assert!(stored_options("{}", &closed).is_err());
    }
}
