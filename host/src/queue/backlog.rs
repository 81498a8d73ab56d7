//! The backlog of a task queue: one level per priority, highest first; within
//! a level, one FIFO lane per fairness key, served in proportion to the keys'
//! weights.
//!
//! Lanes are served by stride scheduling: each lane has a *pass*, the lane
//! with the lowest pass goes next and its pass then grows by `1 / weight`, so
//! a key of weight 3 is served three times as often as a key of weight 1
//! while both have tasks. A lane that empties is forgotten; when its key
//! returns it starts at the level's current pass, so an idle key saves up no
//! credit to burst with. Tasks without a fairness key share one lane (the
//! empty key), which makes an unkeyed queue a plain FIFO per priority.

use super::Task;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

/// Priorities run from 1 (highest) to 5 (lowest); 3 is the default.
pub const PRIORITIES: usize = 5;

/// Pass units of one task at weight 1.
const STRIDE: f64 = (1u64 << 20) as f64;

/// Tasks waiting for a worker.
#[derive(Default)]
pub(super) struct Backlog {
    levels: [Level; PRIORITIES],
}

#[derive(Default, Clone)]
struct Level {
    lanes: HashMap<Arc<str>, Lane>,
    /// Lanes with tasks, by (pass, arrival of the lane).
    order: BTreeSet<(u64, u64, Arc<str>)>,
    /// The pass of the lane served last.
    now: u64,
    next_seq: u64,
    len: usize,
}

#[derive(Clone)]
struct Lane {
    tasks: VecDeque<Task>,
    pass: u64,
    seq: u64,
    weight: f32,
}

/// Backlog of one priority, for describe output.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PriorityBacklog {
    /// Priority, 1 (highest) to 5.
    pub priority: u8,
    /// Tasks waiting.
    pub count: usize,
    /// Age of the oldest of them, in ms.
    pub oldest_age_ms: u64,
    /// Waiting tasks per fairness key (the largest few), when any task of
    /// this priority has one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fairness_keys: Vec<KeyBacklog>,
}

/// Backlog of one fairness key within a priority.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct KeyBacklog {
    /// The key (empty for tasks started without one).
    pub key: String,
    /// Its weight.
    pub weight: f32,
    /// Tasks waiting.
    pub count: usize,
}

/// Fairness keys listed per priority in describe output.
const KEYS_SHOWN: usize = 10;

fn level(priority: u8) -> usize {
    (priority.clamp(1, PRIORITIES as u8) - 1) as usize
}

fn stride(weight: f32) -> u64 {
    (STRIDE / f64::from(weight.clamp(0.001, 1000.0))) as u64
}

impl Level {
    fn lane(&mut self, task: &Task) -> &mut Lane {
        let (now, seq) = (self.now, self.next_seq);
        let lane = self
            .lanes
            .entry(task.fairness_key.clone())
            .or_insert_with(|| {
                self.next_seq += 1;
                Lane {
                    tasks: VecDeque::new(),
                    pass: now,
                    seq,
                    weight: task.fairness_weight,
                }
            });
        // The latest weight given for a key is the one in force.
        lane.weight = task.fairness_weight;
        lane
    }

    fn push(&mut self, task: Task, front: bool) {
        let key = task.fairness_key.clone();
        let lane = self.lane(&task);
        let entry = lane.tasks.is_empty().then_some((lane.pass, lane.seq, key));
        if front {
            lane.tasks.push_front(task);
        } else {
            lane.tasks.push_back(task);
        }
        if let Some(entry) = entry {
            self.order.insert(entry);
        }
        self.len += 1;
    }

    fn pop(&mut self) -> Option<Task> {
        let (pass, seq, key) = self.order.pop_first()?;
        let lane = self.lanes.get_mut(&key)?;
        let task = lane.tasks.pop_front()?;
        self.len -= 1;
        self.now = pass;
        lane.pass = pass + stride(lane.weight);
        if lane.tasks.is_empty() {
            self.lanes.remove(&key);
        } else {
            self.order.insert((lane.pass, seq, key));
        }
        Some(task)
    }

    fn remove(&mut self, run_id: i64) {
        let mut emptied = Vec::new();
        for (key, lane) in &mut self.lanes {
            let before = lane.tasks.len();
            lane.tasks.retain(|t| t.run_id != run_id);
            self.len -= before - lane.tasks.len();
            if lane.tasks.is_empty() {
                emptied.push((lane.pass, lane.seq, key.clone()));
            }
        }
        for entry in emptied {
            self.order.remove(&entry);
            self.lanes.remove(&entry.2);
        }
    }

    fn oldest_age_ms(&self) -> u64 {
        self.lanes
            .values()
            .filter_map(|l| l.tasks.front())
            .map(|t| t.enqueued.elapsed().as_millis() as u64)
            .max()
            .unwrap_or(0)
    }
}

impl Backlog {
    pub(super) fn push(&mut self, task: Task) {
        self.levels[level(task.priority)].push(task, false);
    }

    /// Puts a task back where it would be served next within its lane.
    pub(super) fn push_front(&mut self, task: Task) {
        self.levels[level(task.priority)].push(task, true);
    }

    /// The next task: of the highest priority that has any, from the lane
    /// whose turn it is.
    pub(super) fn pop(&mut self) -> Option<Task> {
        self.levels.iter_mut().find_map(Level::pop)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.levels.iter().all(|l| l.len == 0)
    }

    pub(super) fn remove(&mut self, run_id: i64) {
        for l in &mut self.levels {
            l.remove(run_id);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.levels.iter().map(|l| l.len).sum()
    }

    /// Age of the oldest task of any priority.
    pub(super) fn oldest_age_ms(&self) -> u64 {
        self.levels
            .iter()
            .map(Level::oldest_age_ms)
            .max()
            .unwrap_or(0)
    }

    /// Counts, ages and fairness keys per priority that has tasks.
    pub(super) fn by_priority(&self) -> Vec<PriorityBacklog> {
        self.levels
            .iter()
            .enumerate()
            .filter(|(_, l)| l.len > 0)
            .map(|(i, l)| {
                let mut keys: Vec<KeyBacklog> = l
                    .lanes
                    .iter()
                    .map(|(k, lane)| KeyBacklog {
                        key: k.to_string(),
                        weight: lane.weight,
                        count: lane.tasks.len(),
                    })
                    .collect();
                if keys.len() == 1 && keys[0].key.is_empty() {
                    keys.clear();
                }
                keys.sort_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
                keys.truncate(KEYS_SHOWN);
                PriorityBacklog {
                    priority: i as u8 + 1,
                    count: l.len,
                    oldest_age_ms: l.oldest_age_ms(),
                    fairness_keys: keys,
                }
            })
            .collect()
    }

    /// Run ids of the next `n` tasks in the order they would be dispatched
    /// (limits and rates aside). Costs a copy of the lanes' heads, not of
    /// the backlog.
    pub(super) fn next_run_ids(&self, n: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(n);
        for l in &self.levels {
            if out.len() == n {
                break;
            }
            let mut order = l.order.clone();
            let mut taken: HashMap<Arc<str>, usize> = HashMap::new();
            while out.len() < n {
                let Some((pass, seq, key)) = order.pop_first() else {
                    break;
                };
                let Some(lane) = l.lanes.get(&key) else { break };
                let i = taken.entry(key.clone()).or_insert(0);
                let Some(t) = lane.tasks.get(*i) else {
                    continue;
                };
                out.push(t.run_id);
                *i += 1;
                if *i < lane.tasks.len() {
                    order.insert((pass + stride(lane.weight), seq, key));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn task(run_id: i64, priority: u8, key: &str, weight: f32) -> Task {
        Task {
            run_id,
            attempt: 1,
            enqueued: Instant::now(),
            priority,
            fairness_key: key.into(),
            fairness_weight: weight,
            gates: Arc::new([]),
        }
    }

    #[test]
    fn higher_priority_first_then_fifo() {
        let mut b = Backlog::default();
        b.push(task(1, 3, "", 1.0));
        b.push(task(2, 5, "", 1.0));
        b.push(task(3, 1, "", 1.0));
        b.push(task(4, 3, "", 1.0));
        let order: Vec<i64> = std::iter::from_fn(|| b.pop()).map(|t| t.run_id).collect();
        assert_eq!(order, [3, 1, 4, 2]);
        assert!(b.is_empty());
    }

    #[test]
    fn weights_share_a_level_in_proportion() {
        let mut b = Backlog::default();
        for i in 0..400 {
            b.push(task(i, 3, "a", 1.0));
            b.push(task(1000 + i, 3, "b", 3.0));
        }
        let first: Vec<i64> = (0..200).filter_map(|_| b.pop()).map(|t| t.run_id).collect();
        let a = first.iter().filter(|r| **r < 1000).count();
        assert!((45..=55).contains(&a), "a got {a} of 200");
    }

    #[test]
    fn a_burst_of_one_key_does_not_starve_another() {
        let mut b = Backlog::default();
        for i in 0..1000 {
            b.push(task(i, 3, "bulk", 1.0));
        }
        for _ in 0..10 {
            b.pop();
        }
        b.push(task(5000, 3, "small", 1.0));
        let next: Vec<i64> = (0..2).filter_map(|_| b.pop()).map(|t| t.run_id).collect();
        assert!(next.contains(&5000), "{next:?}");
    }

    #[test]
    fn next_run_ids_matches_pop_order_and_front_pushes_go_first() {
        let mut b = Backlog::default();
        for i in 0..6 {
            b.push(task(i, 3, if i % 2 == 0 { "x" } else { "y" }, 1.0));
        }
        b.push(task(99, 2, "", 1.0));
        b.push_front(task(98, 2, "", 1.0));
        let predicted = b.next_run_ids(5);
        let popped: Vec<i64> = (0..5).filter_map(|_| b.pop()).map(|t| t.run_id).collect();
        assert_eq!(predicted, popped);
        assert_eq!(&popped[..2], &[98, 99]);
        b.remove(4);
        assert_eq!(b.len(), 2);
    }
}
