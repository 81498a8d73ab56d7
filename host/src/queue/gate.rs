//! Concurrency limits that span queues: "at most 5 `charge-card` attempts at
//! once on this host", "at most 2 for customer 42", "at most 3 `resize`
//! attempts on queue `media`".
//!
//! Every task names the gates it passes (its [`GateKey`]s, derived from its
//! namespace, queue, activity type and optional concurrency key). A
//! dispatcher admits a task only when every gate with a limit has room; a
//! task that meets a full gate is parked at that gate, off its queue's
//! backlog, so the tasks behind it are not held up. When an attempt ends its
//! places are given back and as many parked tasks as now fit return to the
//! front of their queues. Running counts are kept for every gate, limited or
//! not, so a limit set while attempts run counts them at once.

use super::{Task, TaskQueue};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// What a concurrency limit counts, within one namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Attempts of one activity type, on every queue.
    Type(Arc<str>),
    /// Attempts of activities started with this concurrency key.
    Key(Arc<str>),
    /// Attempts of one activity type on one queue.
    QueueType(Arc<str>, Arc<str>),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Type(t) => write!(f, "type:{t}"),
            Scope::Key(k) => write!(f, "key:{k}"),
            Scope::QueueType(q, t) => write!(f, "queue:{q}/type:{t}"),
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    /// Parses `type:NAME`, `key:KEY` or `queue:QUEUE/type:NAME`.
    fn from_str(s: &str) -> Result<Self, String> {
        let nonempty = |v: &str, what: &str| {
            if v.is_empty() {
                Err(format!("{what} in {s:?} is empty"))
            } else {
                Ok(Arc::<str>::from(v))
            }
        };
        if let Some(rest) = s.strip_prefix("queue:") {
            let (q, t) = rest
                .rsplit_once("/type:")
                .ok_or_else(|| format!("{s:?}: expected queue:QUEUE/type:ACTIVITY_TYPE"))?;
            return Ok(Scope::QueueType(
                nonempty(q, "queue")?,
                nonempty(t, "type")?,
            ));
        }
        if let Some(t) = s.strip_prefix("type:") {
            return Ok(Scope::Type(nonempty(t, "activity type")?));
        }
        if let Some(k) = s.strip_prefix("key:") {
            return Ok(Scope::Key(nonempty(k, "key")?));
        }
        Err(format!(
            "{s:?} is not a limit key: use type:ACTIVITY_TYPE, key:CONCURRENCY_KEY or queue:QUEUE/type:ACTIVITY_TYPE"
        ))
    }
}

/// One gate: a scope in a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GateKey {
    /// Namespace it belongs to.
    pub namespace: Arc<str>,
    /// What it counts.
    pub scope: Scope,
}

/// The gates a task passes, computed once when it is scheduled.
pub fn gates_of(
    namespace: &str,
    queue: &str,
    activity_type: &str,
    concurrency_key: Option<&str>,
) -> Arc<[GateKey]> {
    let ns: Arc<str> = namespace.into();
    let ty: Arc<str> = activity_type.into();
    let mut keys = vec![
        GateKey {
            namespace: ns.clone(),
            scope: Scope::Type(ty.clone()),
        },
        GateKey {
            namespace: ns.clone(),
            scope: Scope::QueueType(queue.into(), ty),
        },
    ];
    if let Some(k) = concurrency_key {
        keys.push(GateKey {
            namespace: ns,
            scope: Scope::Key(k.into()),
        });
    }
    keys.into()
}

#[derive(Default)]
struct Gate {
    limit: Option<u32>,
    running: u32,
    parked: VecDeque<(Weak<TaskQueue>, Task)>,
}

impl Gate {
    fn has_room(&self) -> bool {
        self.limit.is_none_or(|l| self.running < l)
    }

    fn is_idle(&self) -> bool {
        self.limit.is_none() && self.running == 0 && self.parked.is_empty()
    }
}

/// State of one limited gate, for describe output.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct GateView {
    /// `type:...`, `key:...` or `queue:.../type:...`.
    pub key: String,
    /// Most attempts at once.
    pub max_concurrent: Option<u32>,
    /// Attempts holding a place now.
    pub running: u32,
    /// Tasks parked until a place frees.
    pub waiting: usize,
}

/// All gates of the host.
#[derive(Default)]
pub struct Gates {
    inner: Mutex<HashMap<GateKey, Gate>>,
}

/// Places held in every gate of one attempt; given back when dropped.
pub struct GatePass {
    gates: Arc<Gates>,
    keys: Arc<[GateKey]>,
}

impl Drop for GatePass {
    fn drop(&mut self) {
        self.gates.release(&self.keys);
    }
}

impl Gates {
    fn lock(&self) -> MutexGuard<'_, HashMap<GateKey, Gate>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets (`Some`) or removes (`None`) the limit of a gate; parked tasks
    /// that now fit go back to their queues.
    pub fn set_limit(&self, key: GateKey, limit: Option<u32>) {
        let woken = {
            let mut g = self.lock();
            let gate = g.entry(key.clone()).or_default();
            gate.limit = limit;
            let woken = take_fitting(gate);
            if gate.is_idle() {
                g.remove(&key);
            }
            woken
        };
        requeue(woken);
    }

    /// Forgets every limit and parked task of a deleted namespace; gates
    /// with attempts still running go once those end.
    pub fn clear_namespace(&self, namespace: &str) {
        self.lock().retain(|k, gate| {
            if &*k.namespace != namespace {
                return true;
            }
            gate.limit = None;
            gate.parked.clear();
            !gate.is_idle()
        });
    }

    /// Takes a place in every gate of `task`, or parks the task at the
    /// first gate without room (`Err`).
    pub(super) fn admit(
        self: &Arc<Self>,
        queue: &Arc<TaskQueue>,
        task: Task,
    ) -> Result<(Task, GatePass), ()> {
        let keys = task.gates.clone();
        let mut g = self.lock();
        if let Some(full) = keys
            .iter()
            .find(|k| g.get(*k).is_some_and(|gate| !gate.has_room()))
        {
            if let Some(gate) = g.get_mut(full) {
                gate.parked.push_back((Arc::downgrade(queue), task));
            }
            return Err(());
        }
        for k in keys.iter() {
            g.entry(k.clone()).or_default().running += 1;
        }
        drop(g);
        Ok((
            task,
            GatePass {
                gates: self.clone(),
                keys,
            },
        ))
    }

    fn release(&self, keys: &[GateKey]) {
        let mut woken = Vec::new();
        {
            let mut g = self.lock();
            for k in keys {
                let Some(gate) = g.get_mut(k) else { continue };
                gate.running = gate.running.saturating_sub(1);
                woken.extend(take_fitting(gate));
                if gate.is_idle() {
                    g.remove(k);
                }
            }
        }
        requeue(woken);
    }

    /// The limited gates of a namespace, with their counts.
    pub fn views(&self, namespace: &str) -> Vec<GateView> {
        self.views_where(namespace, |_| true)
    }

    /// The limited gates of a namespace that apply to a queue's tasks.
    pub fn views_for_queue(&self, namespace: &str, queue: &str) -> Vec<GateView> {
        self.views_where(namespace, |s| match s {
            Scope::QueueType(q, _) => &**q == queue,
            Scope::Type(_) | Scope::Key(_) => true,
        })
    }

    fn views_where(&self, namespace: &str, keep: impl Fn(&Scope) -> bool) -> Vec<GateView> {
        let g = self.lock();
        let mut v: Vec<GateView> = g
            .iter()
            .filter(|(k, gate)| {
                &*k.namespace == namespace && gate.limit.is_some() && keep(&k.scope)
            })
            .map(|(k, gate)| GateView {
                key: k.scope.to_string(),
                max_concurrent: gate.limit,
                running: gate.running,
                waiting: gate.parked.len(),
            })
            .collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }
}

/// Parked tasks that the gate's free places allow to try again.
fn take_fitting(gate: &mut Gate) -> Vec<(Weak<TaskQueue>, Task)> {
    let room = match gate.limit {
        Some(l) => l.saturating_sub(gate.running) as usize,
        None => gate.parked.len(),
    };
    let n = room.min(gate.parked.len());
    gate.parked.drain(..n).collect()
}

/// Puts woken tasks back at the front of their queues (in their order).
/// Called with no gate lock held: a queue's backlog lock is taken before
/// the gates' in [`Gates::admit`].
fn requeue(woken: Vec<(Weak<TaskQueue>, Task)>) {
    for (queue, task) in woken.into_iter().rev() {
        if let Some(q) = queue.upgrade() {
            q.unpark(task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_text() {
        for s in [
            "type:charge-card",
            "key:customer-42",
            "queue:media/x/type:resize",
        ] {
            let scope: Scope = s.parse().unwrap();
            assert_eq!(scope.to_string(), s);
        }
        assert!("charge-card".parse::<Scope>().is_err());
        assert!("type:".parse::<Scope>().is_err());
        assert!("queue:q".parse::<Scope>().is_err());
    }
}
