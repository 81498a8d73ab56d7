//! The activity API from outside the attempt: complete, fail or heartbeat
//! an attempt by its task token or by activity id (asynchronous
//! completion); and an operator's actions on an activity: request
//! cancellation, run the next attempt now instead of after its backoff,
//! fail it by hand.
//!
//! Requests are checked here (namespace, sizes, that an attempt is in
//! progress) and become events for [`super::decide`], carried out by
//! [`Shared::transition`](super::Shared::transition); a caller is answered
//! once the transition is written, and told (503) if it cannot be.

use super::activity::{payloads_json, Activity};
use super::bounds;
use super::decide::{in_backoff, Ending, Event};
use super::{ActivityView, Service, ServiceError, Shared};
use crate::payload::Payload;
use crate::store::activities as rows;
use crate::worker::Failure;

/// The failure type of an activity failed by hand when none is given.
const FAILED_BY_OPERATOR: &str = "FailedByOperator";

/// How an activity is finished from outside, by task token or id.
#[derive(Clone, Debug)]
pub enum Completion {
    /// Completed with a result.
    Completed(Payload),
    /// The attempt failed; the retry policy applies.
    Failed(Failure),
    /// Cancelled (after a cancellation request).
    Cancelled,
}

/// Where an external completion or heartbeat is addressed.
#[derive(Clone, Debug)]
pub enum Target {
    /// The task token of the attempt.
    Token(String),
    /// The activity id (its current attempt).
    Id(String),
}

impl Service {
    fn resolve(&self, ns: &str, target: &Target) -> Result<(i64, u32), ServiceError> {
        let s = &self.shared;
        s.check_namespace(ns)?;
        let st = s.lock();
        let run_id = match target {
            Target::Token(t) => *st.tokens.get(t).ok_or(ServiceError::TokenNotFound)?,
            Target::Id(id) => match st.by_id.get(ns, id) {
                Some(r) => r,
                None => {
                    drop(st);
                    return Err(not_open(s, ns, id));
                }
            },
        };
        let a = st.open.get(&run_id).ok_or(ServiceError::TokenNotFound)?;
        if a.fixed.namespace != ns {
            // A token of another namespace is indistinguishable from none.
            return Err(ServiceError::TokenNotFound);
        }
        if a.is_closed() {
            return Err(ServiceError::Conflict(format!(
                "activity {:?} is already closed ({})",
                a.fixed.activity_id,
                a.progress.state.as_str()
            )));
        }
        if !a.progress.state.is_started() {
            return Err(ServiceError::Conflict(format!(
                "activity {:?} has no attempt in progress (it is {})",
                a.fixed.activity_id,
                a.progress.state.as_str()
            )));
        }
        Ok((run_id, a.progress.attempt))
    }

    /// Completes, fails or cancels the current attempt from outside.
    pub async fn complete(
        &self,
        ns: &str,
        target: Target,
        completion: Completion,
    ) -> Result<ActivityView, ServiceError> {
        let tenant = self.shared.tenant(ns)?;
        let limit =
            (self.shared.cfg.payload_limit).min(bounds::size(tenant.quotas().max_payload_bytes));
        let size = match &completion {
            Completion::Completed(p) => p.size(),
            Completion::Failed(f) => crate::payload::total_size(&f.details),
            Completion::Cancelled => 0,
        };
        if size > limit {
            return Err(ServiceError::PayloadTooLarge(format!(
                "the payload is {size} bytes; the limit is {limit} bytes"
            )));
        }
        let (run_id, attempt) = self.resolve(ns, &target)?;
        self.to_the_end(move |s| async move {
            let ending = Ending::External(completion);
            Ok(s.shared.end_attempt(run_id, attempt, ending, ()).await?)
        })
        .await?;
        self.describe_run(run_id)
    }

    /// Heartbeats the current attempt from outside; returns whether
    /// cancellation was requested. Answers once the details are written
    /// (unlike a guest's heartbeats, which are throttled): the caller is
    /// told they are kept.
    pub async fn heartbeat(
        &self,
        ns: &str,
        target: Target,
        details: Vec<Payload>,
    ) -> Result<bool, ServiceError> {
        let tenant = self.shared.tenant(ns)?;
        let limit =
            (self.shared.cfg.payload_limit).min(bounds::size(tenant.quotas().max_heartbeat_bytes));
        let size = crate::payload::total_size(&details);
        if size > limit {
            return Err(ServiceError::PayloadTooLarge(format!(
                "heartbeat details are {size} bytes; the limit is {limit} bytes"
            )));
        }
        let (run_id, attempt) = self.resolve(ns, &target)?;
        self.to_the_end(
            move |s| async move { s.heartbeat_resolved(run_id, attempt, details).await },
        )
        .await
    }

    /// [`heartbeat`](Self::heartbeat) of attempt `attempt` of `run_id`.
    async fn heartbeat_resolved(
        &self,
        run_id: i64,
        attempt: u32,
        details: Vec<Payload>,
    ) -> Result<bool, ServiceError> {
        let json = payloads_json(&details);
        let bytes = json.len() as u64;
        let now = self.shared.clock.read();
        let at = now.ms;
        self.shared
            .db
            .write_unguarded(move |c| rows::save_heartbeat(c, run_id, &json, at))
            .await?;
        let mut st = self.shared.lock();
        let Some(a) = st.open.get_mut(&run_id) else {
            return Ok(false);
        };
        let cancel_requested = a.progress.cancel_requested;
        if a.progress.attempt == attempt && a.progress.state.is_started() {
            a.last_alive = now.at;
            // An attempt running here reports its own details when it
            // ends: these are the latest until it heartbeats again. One
            // awaiting completion has them in SQLite only.
            a.heartbeat = if a.running.is_some() {
                details
            } else {
                Vec::new()
            };
            a.heartbeat_written = Some(now.at);
            a.progress.heartbeat_ms = Some(at);
        }
        st.heartbeat_stored(run_id, bytes);
        Ok(cancel_requested)
    }

    /// Requests cancellation. A waiting activity closes at once; a running
    /// attempt sees it on its next heartbeat and is stopped after the grace
    /// period if it does not end.
    pub async fn cancel(&self, ns: &str, activity_id: &str) -> Result<ActivityView, ServiceError> {
        let run_id = self.open_run(ns, activity_id, |_| Ok(()))?;
        // Already requested: decided as nothing to do.
        self.to_the_end(move |s| async move {
            Ok(s.shared.transition(run_id, Event::CancelRequested).await?)
        })
        .await?;
        self.describe_run(run_id)
    }

    /// Starts the next attempt of an activity waiting out its retry
    /// backoff now, instead of when the backoff ends. Refused (409) unless
    /// the activity is in a backoff.
    pub async fn run_now(&self, ns: &str, activity_id: &str) -> Result<ActivityView, ServiceError> {
        let now_ms = self.shared.clock.now_ms();
        let run_id = self.open_run(ns, activity_id, |a| {
            if in_backoff(a, now_ms) {
                return Ok(());
            }
            Err(ServiceError::Conflict(format!(
                "activity {activity_id:?} is not waiting out a retry backoff (it is {}, attempt {}); \
                 run now applies only between attempts",
                a.progress.state.as_str(),
                a.progress.attempt
            )))
        })?;
        self.to_the_end(
            move |s| async move { Ok(s.shared.transition(run_id, Event::RunNow).await?) },
        )
        .await?;
        self.describe_run(run_id)
    }

    /// Fails an open activity by hand: it closes as failed, non-retryably,
    /// with `reason` (1 to [`bounds::MAX_REASON_BYTES`] bytes) under
    /// `error_type` ([`FAILED_BY_OPERATOR`] if `None`), whatever its retry
    /// policy; an attempt in progress is stopped.
    pub async fn fail_by_hand(
        &self,
        ns: &str,
        activity_id: &str,
        reason: String,
        error_type: Option<String>,
    ) -> Result<ActivityView, ServiceError> {
        bounds::name("reason", &reason, bounds::MAX_REASON_BYTES)
            .map_err(ServiceError::InvalidArgument)?;
        if let Some(t) = &error_type {
            bounds::id("type", t).map_err(ServiceError::InvalidArgument)?;
        }
        let failure = Failure {
            error_type: error_type.unwrap_or_else(|| FAILED_BY_OPERATOR.into()),
            message: reason,
            non_retryable: true,
            ..Failure::default()
        };
        let run_id = self.open_run(ns, activity_id, |_| Ok(()))?;
        self.to_the_end(move |s| async move {
            Ok(s.shared
                .transition(run_id, Event::FailRequested(failure))
                .await?)
        })
        .await?;
        self.describe_run(run_id)
    }

    /// Runs a caller's change to its end on a task of its own. The request
    /// that asked for it may be dropped mid-way (its client hangs up): a
    /// change whose write committed must still be made visible in memory
    /// (the run closed, its waiters woken, its namespace's counts), or
    /// memory would stay behind SQLite until a restart.
    async fn to_the_end<T, F>(&self, change: impl FnOnce(Service) -> F) -> Result<T, ServiceError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, ServiceError>> + Send + 'static,
    {
        tokio::spawn(change(self.clone()))
            .await
            .unwrap_or_else(|e| {
                Err(ServiceError::Store(crate::store::StoreError::Commit(
                    format!("the change ended before it was carried out: {e}"),
                )))
            })
    }

    /// The open run of an activity, if `check` accepts it; 409 if the
    /// activity is closed, 404 if it never existed.
    fn open_run(
        &self,
        ns: &str,
        activity_id: &str,
        check: impl FnOnce(&Activity) -> Result<(), ServiceError>,
    ) -> Result<i64, ServiceError> {
        let s = &self.shared;
        s.check_namespace(ns)?;
        let st = s.lock();
        let Some(run_id) = st.by_id.get(ns, activity_id) else {
            drop(st);
            return Err(not_open(s, ns, activity_id));
        };
        let Some(a) = st.open.get(&run_id) else {
            return Err(ServiceError::ActivityNotFound(activity_id.to_owned()));
        };
        if a.is_closed() {
            return Err(ServiceError::Conflict(format!(
                "activity {activity_id:?} is already closed ({})",
                a.progress.state.as_str()
            )));
        }
        check(a)?;
        Ok(run_id)
    }
}

/// Why activity `id` has no open run: it closed, or it never existed.
fn not_open(s: &Shared, ns: &str, id: &str) -> ServiceError {
    match s.db.latest_run(ns, id) {
        Ok(Some((_, p))) => ServiceError::Conflict(format!(
            "activity {id:?} is already closed ({})",
            p.state.as_str()
        )),
        Ok(None) => ServiceError::ActivityNotFound(id.to_owned()),
        Err(e) => e.into(),
    }
}
