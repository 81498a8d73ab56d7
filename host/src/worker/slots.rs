//! The host's attempt slots, shared fairly between namespaces.
//!
//! Each namespace has its own queues and its own concurrency quota, but the
//! attempts of all namespaces run on one host with one instance pool. When
//! more attempts are ready than the host runs at once, the free slots go
//! round-robin over the namespaces that are waiting, one slot each in turn:
//! a tenant with a huge backlog waits behind every other waiting tenant's
//! next attempt, never the other way round.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// Slots of the host. Cheap to share.
pub(super) struct HostSlots {
    inner: Mutex<Inner>,
}

struct Inner {
    free: usize,
    capacity: usize,
    waiting: HashMap<Arc<str>, VecDeque<oneshot::Sender<HostSlot>>>,
    /// Namespaces with waiters, in the order their turn comes.
    turn: VecDeque<Arc<str>>,
}

/// One of the host's attempt slots, held for as long as the attempt runs;
/// handed to the next waiter when dropped.
pub struct HostSlot {
    slots: Option<Arc<HostSlots>>,
}

impl Drop for HostSlot {
    fn drop(&mut self) {
        if let Some(slots) = self.slots.take() {
            slots.release();
        }
    }
}

impl HostSlots {
    /// `capacity` attempts at once.
    pub(super) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                free: capacity,
                capacity,
                waiting: HashMap::new(),
                turn: VecDeque::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a slot for an attempt of `namespace`.
    pub(super) async fn acquire(self: &Arc<Self>, namespace: &str) -> HostSlot {
        let rx = {
            let mut g = self.lock();
            if g.free > 0 && g.turn.is_empty() {
                g.free -= 1;
                return HostSlot {
                    slots: Some(self.clone()),
                };
            }
            let (tx, rx) = oneshot::channel();
            let ns: Arc<str> = namespace.into();
            let queue = g.waiting.entry(ns.clone()).or_default();
            let first = queue.is_empty();
            queue.push_back(tx);
            if first {
                g.turn.push_back(ns);
            }
            rx
        };
        // The sender side is dropped only with the slot it would have sent
        // (which then passes on), so a closed channel means shutdown.
        rx.await.unwrap_or(HostSlot { slots: None })
    }

    /// Gives a freed slot to the waiter whose turn it is, else keeps it.
    fn release(self: &Arc<Self>) {
        let mut g = self.lock();
        while let Some(ns) = g.turn.pop_front() {
            let Some(queue) = g.waiting.get_mut(&ns) else {
                continue;
            };
            let next = queue.pop_front();
            let more = !queue.is_empty();
            if more {
                g.turn.push_back(ns.clone());
            } else {
                g.waiting.remove(&ns);
            }
            if let Some(tx) = next {
                let slot = HostSlot {
                    slots: Some(self.clone()),
                };
                drop(g);
                // A waiter that gave up returns the slot unsent; dropping it
                // releases again, to the next waiter.
                let _ = tx.send(slot);
                return;
            }
        }
        g.free = (g.free + 1).min(g.capacity);
    }

    /// Slots in use, capacity and attempts waiting, for metrics.
    pub(super) fn usage(&self) -> (usize, usize, usize) {
        let g = self.lock();
        let waiting = g.waiting.values().map(VecDeque::len).sum();
        (g.capacity - g.free, g.capacity, waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn freed_slots_go_round_robin_over_waiting_namespaces() {
        let slots = HostSlots::new(1);
        let first = slots.acquire("a").await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // A's backlog queues first, then B's single attempt.
        for (i, ns) in ["a", "a", "a", "b"].into_iter().enumerate() {
            let (slots, order) = (slots.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = slots.acquire(ns).await;
                order.lock().unwrap().push(format!("{ns}{i}"));
            }));
            tokio::task::yield_now().await;
        }
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["a0", "b3", "a1", "a2"]);
        assert_eq!(slots.usage(), (0, 1, 0));
    }
}
