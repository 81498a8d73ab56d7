//! The backlog of a task queue: one FIFO per priority, highest first.

use super::Task;
use serde::Serialize;
use std::collections::VecDeque;

/// Priorities run from 1 (highest) to 5 (lowest); 3 is the default.
pub const PRIORITIES: usize = 5;

/// Tasks waiting for a worker.
#[derive(Default)]
pub(super) struct Backlog {
    levels: [VecDeque<Task>; PRIORITIES],
}

/// Backlog of one priority, for describe output.
#[derive(Debug, Serialize)]
pub struct PriorityBacklog {
    /// Priority, 1 (highest) to 5.
    pub priority: u8,
    /// Tasks waiting.
    pub count: usize,
    /// Age of the oldest of them, in ms.
    pub oldest_age_ms: u64,
}

fn level(priority: u8) -> usize {
    (priority.clamp(1, PRIORITIES as u8) - 1) as usize
}

impl Backlog {
    pub(super) fn push(&mut self, task: Task) {
        self.levels[level(task.priority)].push_back(task);
    }

    /// The oldest task of the highest priority that has any.
    pub(super) fn pop(&mut self) -> Option<Task> {
        self.levels.iter_mut().find_map(VecDeque::pop_front)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.levels.iter().all(VecDeque::is_empty)
    }

    pub(super) fn remove(&mut self, run_id: i64) {
        for l in &mut self.levels {
            l.retain(|t| t.run_id != run_id);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.levels.iter().map(VecDeque::len).sum()
    }

    /// Age of the oldest task of any priority.
    pub(super) fn oldest_age_ms(&self) -> u64 {
        self.levels
            .iter()
            .filter_map(|l| l.front())
            .map(|t| t.enqueued.elapsed().as_millis() as u64)
            .max()
            .unwrap_or(0)
    }

    /// Counts and ages per priority that has tasks.
    pub(super) fn by_priority(&self) -> Vec<PriorityBacklog> {
        self.levels
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.is_empty())
            .map(|(i, l)| PriorityBacklog {
                priority: i as u8 + 1,
                count: l.len(),
                oldest_age_ms: l
                    .front()
                    .map_or(0, |t| t.enqueued.elapsed().as_millis() as u64),
            })
            .collect()
    }
}
