//! Attempt endings whose write failed (a full disk, a failing device), kept
//! in memory to be written again with the outcome the attempt reported.
//!
//! An attempt's end is the host's own transition: nobody waits for its
//! write to answer. When the write fails, [`super::commit`] puts memory back
//! as SQLite has it (the attempt still started) and keeps the rows it could
//! not write here; the retry timer writes them again, until the disk has
//! room, instead of recording the attempt as lost and running it again.
//! Nothing was acknowledged meanwhile: a restart before the write succeeds
//! finds the attempt started and treats it as lost, as it would any attempt
//! cut short.
//!
//! Bounded: past [`MAX_BYTES`] of payloads or [`MAX_ENDS`] endings, an
//! ending is not kept and its attempt is recorded as lost when the disk has
//! room again (activities run at least once).

use super::decide::After;
use crate::store::activities::{ActivityProgress, AttemptRow};
use std::collections::HashMap;

/// Payload bytes kept at most, over all endings.
const MAX_BYTES: u64 = 64 << 20;
/// Endings kept at most.
const MAX_ENDS: usize = 10_000;

/// What an attempt's ending writes, and what follows once it is written.
pub(super) struct KeptEnd {
    pub(super) attempt: u32,
    pub(super) progress: ActivityProgress,
    pub(super) attempt_row: Option<AttemptRow>,
    pub(super) after: After,
    bytes: u64,
}

#[derive(Default)]
pub(super) struct KeptEnds {
    by_run: HashMap<i64, KeptEnd>,
    bytes: u64,
}

impl KeptEnds {
    /// Keeps the ending of `attempt` of run `run_id`; `false` if there is no
    /// room for it (the attempt is then recorded as lost).
    pub(super) fn keep(
        &mut self,
        run_id: i64,
        attempt: u32,
        progress: ActivityProgress,
        attempt_row: Option<AttemptRow>,
        after: After,
    ) -> bool {
        let bytes = payload_bytes(&progress, attempt_row.as_ref());
        if self.by_run.len() >= MAX_ENDS || self.bytes.saturating_add(bytes) > MAX_BYTES {
            return false;
        }
        let end = KeptEnd {
            attempt,
            progress,
            attempt_row,
            after,
            bytes,
        };
        self.bytes += bytes;
        if let Some(old) = self.by_run.insert(run_id, end) {
            self.bytes = self.bytes.saturating_sub(old.bytes);
        }
        true
    }

    /// The kept ending of `attempt` of run `run_id`, if any, no longer kept.
    pub(super) fn take(&mut self, run_id: i64, attempt: u32) -> Option<KeptEnd> {
        if self.by_run.get(&run_id)?.attempt != attempt {
            return None;
        }
        let end = self.by_run.remove(&run_id)?;
        self.bytes = self.bytes.saturating_sub(end.bytes);
        Some(end)
    }
}

fn payload_bytes(p: &ActivityProgress, row: Option<&AttemptRow>) -> u64 {
    let len = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() as u64);
    let mut n = len(&p.heartbeat_details) + len(&p.last_failure) + len(&p.result);
    if let Some(r) = row {
        n += len(&r.failure_message) + len(&r.log_tail) + len(&r.heartbeat_details);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ending(result_bytes: usize) -> ActivityProgress {
        ActivityProgress {
            result: Some("x".repeat(result_bytes)),
            ..ActivityProgress::default()
        }
    }

    #[test]
    fn keeps_within_its_bounds_and_gives_back_only_the_same_attempt() {
        let mut kept = KeptEnds::default();
        let after = || After::Closed { dequeue: false };
        assert!(kept.keep(1, 3, ending(10), None, after()));
        assert!(kept.take(1, 2).is_none(), "another attempt's ending");
        let end = kept.take(1, 3).expect("kept");
        assert_eq!(end.progress.result.map(|r| r.len()), Some(10));
        assert!(kept.take(1, 3).is_none(), "taken once");
        assert_eq!(kept.bytes, 0);

        assert!(kept.keep(2, 1, ending(60 << 20), None, after()));
        assert!(
            !kept.keep(3, 1, ending(5 << 20), None, after()),
            "over the bytes"
        );
        assert!(kept.take(2, 1).is_some());
        assert!(
            kept.keep(3, 1, ending(5 << 20), None, after()),
            "room again"
        );
    }
}
