//! `wordcount`: a long-running activity that heartbeats its progress and
//! resumes from it after a failure.
//!
//! Activity type `wordcount` takes one argument
//! `{"items": [string...], "step_ms": u64 = 0, "fail_at": usize | null}` and
//! counts the whitespace-separated words of every item. After each item it
//! heartbeats `{"next": i + 1, "words": total}`, stops with "cancelled" if the
//! heartbeat reports a cancellation request, and sleeps `step_ms`. A later
//! attempt starts from the last heartbeat. With `fail_at: i`, the first
//! attempt fails (retryable, type `SimulatedCrash`) just before item `i`.
//!
//! Result: `{"words": total, "items": items.len(), "resumed_from": start,
//! "processed": items processed by this attempt}`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wharf_guest::{activity, ActivityError};

#[derive(Deserialize)]
struct Input {
    items: Vec<String>,
    #[serde(default)]
    step_ms: u64,
    #[serde(default)]
    fail_at: Option<usize>,
}

/// Heartbeat details: where the next attempt resumes.
#[derive(Serialize, Deserialize, Default)]
struct Progress {
    next: usize,
    words: u64,
}

#[derive(Serialize)]
struct Output {
    words: u64,
    items: usize,
    resumed_from: usize,
    processed: usize,
}

fn wordcount(input: Input) -> Result<Output, ActivityError> {
    let attempt = activity::info().attempt;
    let progress: Progress = activity::heartbeat_details().unwrap_or_default();
    let start = progress.next;
    let mut words = progress.words;
    let mut processed = 0;
    if start > 0 {
        wharf_guest::info!("attempt {attempt}: resuming at item {start} with {words} words");
    }
    for (i, item) in input.items.iter().enumerate().skip(start) {
        if input.fail_at == Some(i) && attempt == 1 {
            return Err(
                ActivityError::retryable(format!("simulated crash before item {i}"))
                    .with_type("SimulatedCrash"),
            );
        }
        words += item.split_whitespace().count() as u64;
        processed += 1;
        if activity::heartbeat(&Progress { next: i + 1, words }) {
            return Err(ActivityError::cancelled());
        }
        if input.step_ms > 0 {
            std::thread::sleep(Duration::from_millis(input.step_ms));
        }
    }
    Ok(Output {
        words,
        items: input.items.len(),
        resumed_from: start,
        processed,
    })
}

wharf_guest::export_activities!(wordcount);
