//! The spans of a written transition, for `wharf serve --otlp-endpoint`
//! ([`crate::otlp`]): once a new run's row is written, a `start` span (the
//! start request from accepted to written); once an attempt's end is
//! written, a span for the attempt with its parts (dispatch: due to
//! started; instantiate; run: instance ready to outcome; commit: outcome to
//! written); once a run closes, a span for the activity, from first
//! scheduled to closed, parent of the others.

use super::Shared;
use crate::otlp::{Attr, RunTrace, Span};
use crate::store::activities::{ActivityFixed, ActivityProgress, AttemptRow, Closed};

impl Shared {
    /// Emits the `start` span of a run whose row was just written.
    pub(super) fn trace_start(&self, f: &ActivityFixed) {
        let Some(traces) = &self.cfg.traces else {
            return;
        };
        traces.emit(Span {
            trace: RunTrace::of(&f.namespace, f.run_id, f.scheduled_ms),
            what: "start".into(),
            parent: Some("activity".into()),
            name: "start".into(),
            start_ms: f.scheduled_ms,
            end_ms: self.clock.now_ms(),
            attributes: vec![
                ("wharf.activity_id", Attr::Str(f.activity_id.clone())),
                ("wharf.task_queue", Attr::Str(f.task_queue.clone())),
            ],
            error: false,
        });
    }

    /// Emits the spans of a transition of run `run_id` just written:
    /// `progress` and `row` as written, `before` the progress it replaced.
    pub(super) fn trace_written(
        &self,
        run_id: i64,
        progress: &ActivityProgress,
        row: Option<&AttemptRow>,
        before: Option<&ActivityProgress>,
    ) {
        let Some(traces) = &self.cfg.traces else {
            return;
        };
        let Some(f) = self.lock().open.get(&run_id).map(|a| a.fixed.clone()) else {
            return;
        };
        let trace = RunTrace::of(&f.namespace, run_id, f.scheduled_ms);
        let run_attrs = || {
            vec![
                ("wharf.namespace", Attr::Str(f.namespace.clone())),
                ("wharf.activity_id", Attr::Str(f.activity_id.clone())),
                ("wharf.activity_type", Attr::Str(f.activity_type.clone())),
                ("wharf.task_queue", Attr::Str(f.task_queue.clone())),
                ("wharf.run_id", Attr::Int(run_id)),
            ]
        };
        let span =
            |what: String, parent: Option<String>, name: &str, start_ms: u64, end_ms: u64| Span {
                trace,
                what,
                parent,
                name: name.to_owned(),
                start_ms,
                end_ms,
                attributes: Vec::new(),
                error: false,
            };
        if let (Some(row), Some(ended)) = (row, row.and_then(|r| r.ended_ms)) {
            let me = format!("attempt/{}", row.attempt);
            let started = row.started_ms;
            let mut attempt = span(
                me.clone(),
                Some("activity".into()),
                "attempt",
                started,
                ended,
            );
            attempt.attributes = run_attrs();
            attempt
                .attributes
                .push(("wharf.attempt", Attr::Int(i64::from(row.attempt))));
            for (key, value) in [
                ("wharf.outcome", &row.outcome),
                ("wharf.module", &row.module),
                ("wharf.failure_type", &row.failure_type),
            ] {
                if let Some(v) = value {
                    attempt.attributes.push((key, Attr::Str(v.clone())));
                }
            }
            attempt.error = row.outcome.as_deref() != Some("completed");
            traces.emit(attempt);
            let part = |what: &str, start_ms: u64, end_ms: u64| {
                span(
                    format!("{me}/{what}"),
                    Some(me.clone()),
                    what,
                    start_ms,
                    end_ms,
                )
            };
            if let Some(due) = before.map(|p| p.attempt_scheduled_ms) {
                traces.emit(part("dispatch", due.min(started), started));
            }
            let ready = started
                .saturating_add(row.instantiate_us.unwrap_or(0) / 1000)
                .min(ended);
            if row.instantiate_us.is_some() {
                traces.emit(part("instantiate", started, ready));
            }
            traces.emit(part("run", ready, ended));
            traces.emit(part("commit", ended, self.clock.now_ms().max(ended)));
        }
        if let (Some(how), Some(closed_ms)) = (progress.state.closed(), progress.state.closed_ms())
        {
            let mut activity = span(
                "activity".into(),
                None,
                "activity",
                f.scheduled_ms,
                closed_ms,
            );
            activity.attributes = run_attrs();
            activity
                .attributes
                .push(("wharf.state", Attr::Str(how.as_str().to_owned())));
            activity
                .attributes
                .push(("wharf.attempts", Attr::Int(i64::from(progress.attempt))));
            activity.error = how != Closed::Completed;
            traces.emit(activity);
        }
    }
}
