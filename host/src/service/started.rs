//! Writing an attempt's start lazily. A claimed attempt is started in
//! memory at once, but its row says so only if the attempt is still running
//! at the next flush, up to [`DEFER`] later, and a guest thread has taken it
//! up (under load a claimed attempt may wait for one longer than that; it
//! is written at the first flush after it begins). An attempt that ends sooner
//! (a short activity's usual case) has its start folded into the write of
//! its end: one write per attempt instead of two, and one commit less
//! between a start and its result on an idle server.
//!
//! Crash semantics are those a start's write already had while it waited in
//! the group commit: a run whose row still says scheduled is queued again
//! at the next start with the same attempt number. Only the window is wider
//! (at most [`DEFER`]); an attempt running longer is recorded as started,
//! and a crash then counts it as a lost attempt.

use super::Shared;
use crate::store::activities as rows;
use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

/// Longest an attempt runs before its row says started.
pub(super) const DEFER: Duration = Duration::from_millis(20);

/// Starts the flushing task; it ends with the service.
pub(super) fn start(shared: Weak<Shared>) {
    tokio::spawn(async move {
        loop {
            let Some(s) = shared.upgrade() else { break };
            let due = s.started_due.clone();
            drop(s);
            // Asleep while no attempt waits to be written.
            due.notified().await;
            tokio::time::sleep(DEFER).await;
            let Some(s) = shared.upgrade() else { break };
            s.flush_started();
        }
    });
}

impl Shared {
    /// Notes that attempt `attempt` of `run_id` started and is not yet
    /// written; the caller holds the state's lock (`unwritten`).
    pub(super) fn defer_started(&self, unwritten: &mut Vec<(i64, u32)>, run_id: i64, attempt: u32) {
        if unwritten.is_empty() {
            self.started_due.notify_one();
        }
        unwritten.push((run_id, attempt));
    }

    /// Writes the start of every noted attempt that is still running. One
    /// still waiting for a guest thread has not begun: it stays noted for
    /// the next flush (a crash before it runs only queues it again).
    fn flush_started(&self) {
        let st = &mut *self.lock();
        let noted = std::mem::take(&mut st.unwritten_starts);
        let mut waiting = Vec::new();
        let mut running = Vec::new();
        for (run_id, attempt) in noted {
            let Some(a) = st.open.get(&run_id) else {
                continue;
            };
            let p = &a.progress;
            if p.attempt != attempt || !p.state.is_started() {
                continue;
            }
            match &a.running {
                Some(r) if !r.began.load(Ordering::Relaxed) => waiting.push((run_id, attempt)),
                _ => running.push((run_id, a.snapshot())),
            }
        }
        for (run_id, attempt) in waiting {
            self.defer_started(&mut st.unwritten_starts, run_id, attempt);
        }
        if running.is_empty() {
            return;
        }
        // Queued while the lock is held: a later transition of the same run
        // is written after this, so an older state never overwrites it.
        self.db.write_detached(move |c| {
            running
                .iter()
                .try_for_each(|(run_id, p)| rows::save_progress(c, *run_id, p).map(drop))
        });
    }
}
