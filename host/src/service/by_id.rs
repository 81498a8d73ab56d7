//! Open runs by (namespace, activity id), without copies of either.
//!
//! Every open run is in this index (starting is idempotent by id), so its
//! cost is paid per open activity. Each entry is the run's shared
//! [`ActivityFixed`], which already holds both strings and the run id:
//! looked up by a pair of `&str` through [`IdPair`], hashed and compared the
//! same way on both sides.

use crate::store::activities::ActivityFixed;
use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A (namespace, activity id) pair, stored or looked up.
trait IdPair {
    fn pair(&self) -> (&str, &str);
}

impl IdPair for (&str, &str) {
    fn pair(&self) -> (&str, &str) {
        *self
    }
}

impl Hash for dyn IdPair + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.pair().hash(state);
    }
}

impl PartialEq for dyn IdPair + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.pair() == other.pair()
    }
}

impl Eq for dyn IdPair + '_ {}

struct Entry(Arc<ActivityFixed>);

impl IdPair for Entry {
    fn pair(&self) -> (&str, &str) {
        (&self.0.namespace, &self.0.activity_id)
    }
}

impl Hash for Entry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn IdPair).hash(state);
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.pair() == other.pair()
    }
}

impl Eq for Entry {}

impl<'a> Borrow<dyn IdPair + 'a> for Entry {
    fn borrow(&self) -> &(dyn IdPair + 'a) {
        self
    }
}

#[derive(Default)]
pub(super) struct ById(HashSet<Entry>);

impl ById {
    /// The open run of `activity_id` in `ns`.
    pub(super) fn get(&self, ns: &str, activity_id: &str) -> Option<i64> {
        self.0
            .get(&(ns, activity_id) as &dyn IdPair)
            .map(|e| e.0.run_id)
    }

    /// Indexes a run, in place of any earlier run of its id.
    pub(super) fn insert(&mut self, fixed: &Arc<ActivityFixed>) {
        self.0.replace(Entry(fixed.clone()));
    }

    /// Removes the entry of run `run_id`, if it is the one indexed for its id.
    pub(super) fn remove_run(&mut self, fixed: &ActivityFixed) {
        let key = (fixed.namespace.as_str(), fixed.activity_id.as_str());
        if self.get(key.0, key.1) == Some(fixed.run_id) {
            self.0.remove(&key as &dyn IdPair);
        }
    }

    /// Removes every run of namespace `ns`.
    pub(super) fn remove_namespace(&mut self, ns: &str) {
        self.0.retain(|e| e.0.namespace != ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(run_id: i64, ns: &str, id: &str) -> Arc<ActivityFixed> {
        Arc::new(ActivityFixed {
            run_id,
            namespace: ns.into(),
            activity_id: id.into(),
            activity_type: "t".into(),
            task_queue: "q".into(),
            scheduled_ms: 0,
        })
    }

    #[test]
    fn finds_runs_by_namespace_and_id_and_removes_only_the_indexed_run() {
        let mut by_id = ById::default();
        let (a, b, c) = (run(1, "ns", "x"), run(2, "other", "x"), run(3, "ns", "x"));
        by_id.insert(&a);
        by_id.insert(&b);
        assert_eq!(by_id.get("ns", "x"), Some(1));
        assert_eq!(by_id.get("other", "x"), Some(2));
        assert_eq!(by_id.get("ns", "y"), None);
        // The split between namespace and id is part of the key.
        assert_eq!(by_id.get("n", "sx"), None);

        by_id.insert(&c);
        assert_eq!(by_id.get("ns", "x"), Some(3));
        by_id.remove_run(&a);
        assert_eq!(by_id.get("ns", "x"), Some(3), "run 1 is no longer indexed");
        by_id.remove_run(&c);
        assert_eq!(by_id.get("ns", "x"), None);
        by_id.remove_namespace("other");
        assert_eq!(by_id.get("other", "x"), None);
    }
}
