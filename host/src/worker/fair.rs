//! Guest CPU shared between namespaces in proportion to their weights.
//!
//! Guests yield at every epoch tick (1 ms), so an attempt is a series of
//! short polls. Every poll of an attempt goes through [`CpuShares`]: at most
//! one poll per guest thread runs at once, and when more attempts are ready
//! than there are threads, the next poll goes to the waiting namespace with
//! the lowest *virtual time* (stride scheduling). A namespace's virtual time
//! advances by the CPU time its polls used (the thread's CPU clock around
//! each poll) divided by its `cpu_weight`, so over any window of a few
//! polls, namespaces that all want CPU get it in proportion to their
//! weights, and a namespace over its share waits while one under it runs.
//!
//! A poll runs until the guest's next epoch check. When an attempt of a
//! namespace finds every thread taken by polls of namespaces at or past its
//! virtual time, the running polls are asked to yield at once (the engine's
//! epoch is advanced, which guests notice within microseconds): a light
//! tenant's attempt then waits for a thread microseconds, not a tick, which
//! is what lets its throughput hold beside a tenant whose guests never stop.
//! The same is asked when an attempt begins while every thread is taken, so
//! that its first poll does not wait a tick for a thread to look for new
//! work. At most one such request is outstanding; the next poll to end
//! answers it.
//!
//! A namespace that stops wanting CPU saves up no credit: one new to the
//! scheduler (nothing under way) starts at the current virtual time, and
//! one whose attempts waited on something else (a host call) for a while
//! is owed at most one window (100 ms of CPU) when it wants CPU again. A
//! light tenant's short attempts therefore start within one tick of being
//! ready, whatever a heavy tenant's long attempts are doing.
//!
//! Attempts without a tenant (the Temporal worker, `wharf run`, benchmarks)
//! all share their attempt's namespace name, so they form one group.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Virtual time per nanosecond of CPU at weight 1; keeps the division by
/// the weight (at most 1000) exact enough.
const SCALE: u128 = 1_000;

/// The most CPU time a namespace that wanted none for a while may be owed
/// when it wants some again: the window over which shares hold.
const WINDOW: Duration = Duration::from_millis(100);

/// The polls that may run at once and who waits for one. Cheap to share.
pub(super) struct CpuShares {
    state: Mutex<State>,
    /// Makes the running polls yield soon (advances the engine's epoch).
    preempt: Box<dyn Fn() + Send + Sync>,
}

#[derive(Default)]
struct State {
    /// Polls that may run at once: one per guest thread.
    capacity: usize,
    /// Polls running now, or granted and about to run.
    polling: usize,
    /// Namespaces with attempts under way.
    namespaces: HashMap<Arc<str>, Share>,
    /// The running polls were asked to yield and none has ended since.
    preempting: bool,
}

#[derive(Default)]
struct Share {
    vtime: u128,
    weight: u32,
    /// Attempts of this namespace under way (polling, waiting, or waiting
    /// for something else, such as a host call).
    live: usize,
    /// Polls of this namespace running or granted.
    polling: usize,
    waiting: VecDeque<(Arc<Ticket>, Waker)>,
}

impl Share {
    fn wants_cpu(&self) -> bool {
        self.polling > 0 || !self.waiting.is_empty()
    }
}

/// One attempt's place in the queue; `granted` once a poll was given to it.
#[derive(Default)]
struct Ticket {
    granted: AtomicBool,
}

impl CpuShares {
    /// `capacity` polls at once (the guest threads); `preempt` makes the
    /// running polls yield soon.
    pub(super) fn new(capacity: usize, preempt: impl Fn() + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                capacity: capacity.max(1),
                ..State::default()
            }),
            preempt: Box::new(preempt),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state under the lock; if `f` says the running polls
    /// should yield, asks them to, after the lock is released.
    fn deciding<R>(&self, f: impl FnOnce(&mut State) -> (R, bool)) -> R {
        let (r, preempt) = f(&mut self.lock());
        if preempt {
            (self.preempt)();
        }
        r
    }

    /// `future` (one attempt of `namespace`), polled only when its
    /// namespace's turn comes, counting the CPU time its polls use.
    pub(super) fn run<F: Future>(
        self: &Arc<Self>,
        namespace: &str,
        weight: u32,
        future: F,
    ) -> Fair<F> {
        let namespace: Arc<str> = namespace.into();
        // The attempt's first poll waits for a guest thread to finish its
        // current poll before it can even queue here: ask them to finish now.
        self.deciding(|st| {
            st.register(&namespace, weight);
            ((), st.polling >= st.capacity && st.preempt_for(&namespace))
        });
        Fair {
            inner: Box::pin(future),
            shares: self.clone(),
            namespace,
            weight: weight.max(1),
            ticket: Arc::default(),
            queued: false,
            relay: Arc::default(),
            cpu: Duration::ZERO,
            released: false,
        }
    }
}

impl State {
    /// The virtual time of the namespaces that want CPU now (the lowest),
    /// leaving out `except`.
    fn now(&self, except: &Arc<str>) -> Option<u128> {
        self.namespaces
            .iter()
            .filter(|(ns, s)| *ns != except && s.wants_cpu())
            .map(|(_, s)| s.vtime)
            .min()
    }

    /// An attempt of `ns` begins. A namespace new to the scheduler starts
    /// at the current virtual time: it saves no credit while it has none.
    fn register(&mut self, ns: &Arc<str>, weight: u32) {
        let start = self
            .now(ns)
            .or_else(|| self.namespaces.values().map(|s| s.vtime).min())
            .unwrap_or(0);
        let share = self.namespaces.entry(ns.clone()).or_insert_with(|| Share {
            vtime: start,
            ..Share::default()
        });
        share.live += 1;
        share.weight = weight.max(1);
    }

    /// `ns` wants CPU after wanting none: it may be owed at most one
    /// [`WINDOW`] of CPU behind the others.
    fn wake(&mut self, ns: &Arc<str>) {
        let Some(now) = self.now(ns) else { return };
        if let Some(share) = self.namespaces.get_mut(ns) {
            if !share.wants_cpu() {
                let owed = WINDOW.as_nanos() * SCALE / u128::from(share.weight.max(1));
                share.vtime = share.vtime.max(now.saturating_sub(owed));
            }
        }
    }

    /// Whether the attempt holding `ticket` may poll now; if not, it waits
    /// in its namespace's queue and `waker` is woken when it may.
    fn enter(
        &mut self,
        ns: &Arc<str>,
        ticket: &Arc<Ticket>,
        queued: &mut bool,
        waker: &Waker,
    ) -> bool {
        if ticket.granted.swap(false, Ordering::AcqRel) {
            *queued = false;
            return true;
        }
        if *queued {
            if let Some(entry) = self
                .namespaces
                .get_mut(ns)
                .and_then(|s| s.waiting.iter_mut().find(|(t, _)| Arc::ptr_eq(t, ticket)))
            {
                if !entry.1.will_wake(waker) {
                    entry.1 = waker.clone();
                }
                return false;
            }
            // Not queued after all (cannot happen): take the normal path.
            *queued = false;
        }
        self.wake(ns);
        let Some(share) = self.namespaces.get_mut(ns) else {
            // Not registered (cannot happen): run it rather than lose it.
            return true;
        };
        // A free thread: waiters are granted as soon as a thread frees, so
        // a free thread means nobody waits.
        if self.polling < self.capacity {
            self.polling += 1;
            share.polling += 1;
            return true;
        }
        share.waiting.push_back((ticket.clone(), waker.clone()));
        *queued = true;
        false
    }

    /// Whether the running polls should be asked to yield for `ns`, whose
    /// attempt just began or queued: some running poll belongs to another
    /// namespace at or past `ns`'s virtual time, and no request is
    /// outstanding. Marks the request as made.
    fn preempt_for(&mut self, ns: &Arc<str>) -> bool {
        if self.preempting {
            return false;
        }
        let Some(mine) = self.namespaces.get(ns).map(|s| s.vtime) else {
            return false;
        };
        self.preempting = self
            .namespaces
            .iter()
            .any(|(n, s)| n != ns && s.polling > 0 && s.vtime >= mine);
        self.preempting
    }

    /// A poll of `ns` ended having used `cpu` at `weight`: charge it, free
    /// its thread and give it to whoever is next. Returns the wakers of the
    /// attempts granted a poll, to be woken outside the lock.
    fn leave(&mut self, ns: &Arc<str>, cpu: Duration, weight: u32) -> Vec<Waker> {
        self.leave_ready(ns, cpu, weight, None)
    }

    /// [`Self::leave`] for a poll that ended ready to go on (`again`: its
    /// ticket and task, it yielded): it queues for its next poll before the
    /// thread is given to whoever is next, so that the choice is made
    /// between every attempt that is ready.
    fn leave_ready(
        &mut self,
        ns: &Arc<str>,
        cpu: Duration,
        weight: u32,
        again: Option<(Arc<Ticket>, Waker)>,
    ) -> Vec<Waker> {
        self.polling = self.polling.saturating_sub(1);
        self.preempting = false;
        if let Some(share) = self.namespaces.get_mut(ns) {
            share.polling = share.polling.saturating_sub(1);
            let step = cpu.as_nanos().saturating_mul(SCALE) / u128::from(weight.max(1));
            share.vtime = share.vtime.saturating_add(step);
            if let Some(entry) = again {
                share.waiting.push_back(entry);
            }
        }
        self.grant()
    }

    /// Grants free polls to the waiting namespaces with the lowest virtual
    /// times.
    fn grant(&mut self) -> Vec<Waker> {
        let mut woken = Vec::new();
        while self.polling < self.capacity {
            let next = self
                .namespaces
                .values_mut()
                .filter(|s| !s.waiting.is_empty())
                .min_by_key(|s| s.vtime);
            let Some(share) = next else { break };
            let Some((ticket, waker)) = share.waiting.pop_front() else {
                break;
            };
            ticket.granted.store(true, Ordering::Release);
            share.polling += 1;
            self.polling += 1;
            woken.push(waker);
        }
        woken
    }

    /// An attempt of `ns` holding `ticket` went away (it ended, or was
    /// dropped): give back a poll it was granted and never used, leave the
    /// queue, and forget the namespace when it has nothing under way.
    fn abandon(&mut self, ns: &Arc<str>, ticket: &Arc<Ticket>, queued: bool) -> Vec<Waker> {
        let mut woken = Vec::new();
        if ticket.granted.swap(false, Ordering::AcqRel) {
            woken = self.leave(ns, Duration::ZERO, 1);
        } else if queued {
            if let Some(share) = self.namespaces.get_mut(ns) {
                share.waiting.retain(|(t, _)| !Arc::ptr_eq(t, ticket));
            }
        }
        self.release(ns);
        woken
    }

    /// An attempt of `ns` is gone: forgets the namespace once it has none
    /// left and wants no CPU.
    fn release(&mut self, ns: &Arc<str>) {
        if let Some(share) = self.namespaces.get_mut(ns) {
            share.live = share.live.saturating_sub(1);
            if share.live == 0 && !share.wants_cpu() {
                self.namespaces.remove(ns);
            }
        }
    }
}

/// An attempt's future under [`CpuShares`]; yields its output and the CPU
/// time its polls used.
pub(super) struct Fair<F> {
    inner: Pin<Box<F>>,
    shares: Arc<CpuShares>,
    namespace: Arc<str>,
    weight: u32,
    ticket: Arc<Ticket>,
    queued: bool,
    relay: Arc<Relay>,
    cpu: Duration,
    /// Its end is accounted for (it returned): dropping it takes no lock.
    released: bool,
}

/// The waker the attempt itself is polled with. A wake while it is being
/// polled (a yield at an epoch tick) means it is ready again: it then
/// queues for its turn instead of waking its task, so the next poll goes to
/// whichever namespace is due. Any other wake (a timer, a host call's
/// answer) wakes the task.
#[derive(Default)]
struct Relay {
    task: Mutex<Option<Waker>>,
    polling: AtomicBool,
    woke: AtomicBool,
}

impl Relay {
    fn wake_task(&self) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = task.as_ref() {
            w.wake_by_ref();
        }
    }
}

impl std::task::Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.polling.load(Ordering::SeqCst) {
            self.woke.store(true, Ordering::SeqCst);
            // The poll may have ended meanwhile without seeing the flag: a
            // spare wake of the task is harmless, a lost one is not.
            if self.polling.load(Ordering::SeqCst) {
                return;
            }
        }
        self.wake_task();
    }
}

impl<F: Future> Future for Fair<F> {
    type Output = (F::Output, Duration);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        {
            let mut task = this.relay.task.lock().unwrap_or_else(|e| e.into_inner());
            if !task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        let admitted = this.shares.deciding(|st| {
            let admitted = st.enter(&this.namespace, &this.ticket, &mut this.queued, cx.waker());
            (admitted, !admitted && st.preempt_for(&this.namespace))
        });
        if !admitted {
            return Poll::Pending;
        }
        let relay_waker = Waker::from(this.relay.clone());
        let mut inner_cx = Context::from_waker(&relay_waker);
        this.relay.woke.store(false, Ordering::SeqCst);
        this.relay.polling.store(true, Ordering::SeqCst);
        let t0 = thread_cpu();
        let r = this.inner.as_mut().poll(&mut inner_cx);
        let used = thread_cpu().saturating_sub(t0);
        this.relay.polling.store(false, Ordering::SeqCst);
        let again = r.is_pending() && this.relay.woke.swap(false, Ordering::SeqCst);
        this.cpu = this.cpu.saturating_add(used);
        let requeue = again.then(|| (this.ticket.clone(), cx.waker().clone()));
        this.queued = again;
        let woken = {
            let mut st = this.shares.lock();
            let woken = st.leave_ready(&this.namespace, used, this.weight, requeue);
            // A returned attempt is neither granted nor queued: its end is
            // released in this same turn of the lock, not again on drop.
            if r.is_ready() {
                st.release(&this.namespace);
                this.released = true;
            }
            woken
        };
        woken.into_iter().for_each(Waker::wake);
        r.map(|out| (out, this.cpu))
    }
}

impl<F> Drop for Fair<F> {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let woken = self
            .shares
            .lock()
            .abandon(&self.namespace, &self.ticket, self.queued);
        woken.into_iter().for_each(Waker::wake);
    }
}

/// CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waker() -> Waker {
        Waker::noop().clone()
    }

    fn ns(name: &str) -> Arc<str> {
        name.into()
    }

    /// A new attempt of `ns`: registered, and whether it may poll at once.
    fn attempt(s: &mut State, ns: &Arc<str>, weight: u32) -> (Arc<Ticket>, bool) {
        s.register(ns, weight);
        let t = Arc::<Ticket>::default();
        let now = s.enter(ns, &t, &mut false, &waker());
        (t, now)
    }

    fn one_thread() -> State {
        State {
            capacity: 1,
            ..State::default()
        }
    }

    /// Polls of `a` and `b` (1 ms each) over `rounds` on one thread, when
    /// both always have another attempt waiting.
    fn shares_over(rounds: usize, wa: u32, wb: u32) -> [usize; 2] {
        let names = [ns("a"), ns("b")];
        let weights = [wa, wb];
        let mut s = one_thread();
        assert!(attempt(&mut s, &names[0], wa).1);
        let mut running = 0;
        let mut waiting = [
            attempt(&mut s, &names[0], wa).0,
            attempt(&mut s, &names[1], wb).0,
        ];
        let mut count = [0; 2];
        for _ in 0..rounds {
            count[running] += 1;
            s.leave(&names[running], Duration::from_millis(1), weights[running]);
            let next = (0..2)
                .find(|&i| waiting[i].granted.load(Ordering::Acquire))
                .expect("a waiter is granted the free thread");
            assert!(s.enter(&names[next], &waiting[next], &mut true, &waker()));
            let (t, now) = attempt(&mut s, &names[next], weights[next]);
            assert!(!now);
            waiting[next] = t;
            running = next;
        }
        count
    }

    #[test]
    fn cpu_goes_in_proportion_to_weights() {
        assert_eq!(shares_over(400, 1, 1), [200, 200]);
        assert_eq!(shares_over(400, 1, 3), [100, 300]);
        assert_eq!(shares_over(500, 4, 1), [400, 100]);
    }

    #[test]
    fn a_namespace_new_to_the_host_saves_no_credit() {
        let (a, b) = (ns("a"), ns("b"));
        let mut s = one_thread();
        // A runs alone for a second of CPU.
        for _ in 0..1_000 {
            assert!(attempt(&mut s, &a, 1).1);
            s.leave(&a, Duration::from_millis(1), 1);
        }
        assert!(attempt(&mut s, &a, 1).1);
        // B arrives while A wants more: B goes first once, then they
        // alternate; B does not get a second of catching up.
        let (ta, _) = attempt(&mut s, &a, 1);
        let (tb, _) = attempt(&mut s, &b, 1);
        s.leave(&a, Duration::from_millis(1), 1);
        assert!(tb.granted.load(Ordering::Acquire), "B is under its share");
        assert!(s.enter(&b, &tb, &mut true, &waker()));
        let (_tb2, _) = attempt(&mut s, &b, 1);
        s.leave(&b, Duration::from_millis(2), 1);
        assert!(ta.granted.load(Ordering::Acquire), "B used its share");
    }

    #[test]
    fn a_namespace_that_waited_elsewhere_is_owed_one_window_at_most() {
        let (a, b) = (ns("a"), ns("b"));
        let mut s = one_thread();
        // B's attempt is under way but waits in a host call while A runs
        // for a second.
        s.register(&b, 1);
        for _ in 0..1_000 {
            assert!(attempt(&mut s, &a, 1).1);
            s.leave(&a, Duration::from_millis(1), 1);
        }
        assert!(attempt(&mut s, &a, 1).1);
        let (ta, _) = attempt(&mut s, &a, 1);
        let tb = Arc::<Ticket>::default();
        assert!(!s.enter(&b, &tb, &mut false, &waker()));
        // B is owed 100 ms: it runs 100 polls of 1 ms before A's next.
        let mut b_polls = 0;
        s.leave(&a, Duration::from_millis(1), 1);
        while tb.granted.load(Ordering::Acquire) {
            b_polls += 1;
            assert!(s.enter(&b, &tb, &mut true, &waker()));
            assert!(!s.enter(&b, &tb, &mut false, &waker()));
            s.leave(&b, Duration::from_millis(1), 1);
        }
        assert!(ta.granted.load(Ordering::Acquire));
        assert!((100..=102).contains(&b_polls), "{b_polls}");
    }

    #[test]
    fn a_light_namespace_goes_before_a_heavy_ones_queue() {
        let (a, b) = (ns("a"), ns("b"));
        let mut s = one_thread();
        assert!(attempt(&mut s, &a, 1).1);
        let heavy: Vec<Arc<Ticket>> = (0..100).map(|_| attempt(&mut s, &a, 1).0).collect();
        let (light, now) = attempt(&mut s, &b, 1);
        assert!(!now);
        s.leave(&a, Duration::from_millis(1), 1);
        assert!(light.granted.load(Ordering::Acquire));
        assert!(heavy.iter().all(|t| !t.granted.load(Ordering::Acquire)));
    }

    #[test]
    fn an_attempt_dropped_while_granted_passes_its_poll_on() {
        let (a, b) = (ns("a"), ns("b"));
        let mut s = one_thread();
        let (ta, _) = attempt(&mut s, &a, 1);
        let (tb, _) = attempt(&mut s, &b, 1);
        let (tb2, _) = attempt(&mut s, &b, 1);
        s.leave(&a, Duration::from_millis(1), 1);
        s.abandon(&a, &ta, false);
        assert!(tb.granted.load(Ordering::Acquire));
        s.abandon(&b, &tb, false);
        assert!(tb2.granted.load(Ordering::Acquire));
        s.abandon(&b, &tb2, false);
        assert_eq!(s.polling, 0);
        assert!(s.namespaces.is_empty(), "idle namespaces are forgotten");
    }

    #[test]
    fn an_attempt_behind_other_namespaces_polls_asks_them_to_yield_once() {
        let (a, b) = (ns("a"), ns("b"));
        let mut s = one_thread();
        assert!(attempt(&mut s, &a, 1).1);
        // A's second attempt waits its turn without disturbing A's poll.
        s.register(&a, 1);
        assert!(!s.preempt_for(&a), "not against its own namespace");
        // B arrives level with A: A's running poll is asked to yield, once.
        s.register(&b, 1);
        assert!(s.preempt_for(&b));
        assert!(!s.preempt_for(&b), "one request outstanding at a time");
        // The poll ends and A polls again: B may ask again.
        s.leave(&a, Duration::from_millis(1), 1);
        assert!(attempt(&mut s, &a, 1).1);
        assert!(s.preempt_for(&b));
        let mut s = one_thread();
        assert!(attempt(&mut s, &a, 1).1);
        s.register(&b, 1);
        s.namespaces.get_mut(&b).expect("registered").vtime += 1;
        assert!(
            !s.preempt_for(&b),
            "a namespace past the running one's share waits"
        );
    }

    #[tokio::test]
    async fn a_light_attempt_does_not_wait_out_a_heavy_poll() {
        let preempted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = preempted.clone();
        let shares = CpuShares::new(1, move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        // A poll of A is under way (granted, not yet ended).
        let heavy = shares.run("a", 1, std::future::pending::<()>());
        {
            let mut st = shares.lock();
            let t = Arc::<Ticket>::default();
            assert!(st.enter(&heavy.namespace, &t, &mut false, &waker()));
        }
        let _light = shares.run("b", 1, async {});
        assert_eq!(preempted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn attempts_measure_their_cpu_time() {
        let shares = CpuShares::new(1, || {});
        let (out, cpu) = shares
            .run("a", 1, async {
                let t = std::time::Instant::now();
                let mut x = 0u64;
                while t.elapsed() < Duration::from_millis(20) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
                x
            })
            .await;
        assert!(out > 0);
        assert!(cpu >= Duration::from_millis(5), "{cpu:?}");
        let s = shares.lock();
        assert_eq!(s.polling, 0);
        assert!(s.namespaces.is_empty());
    }

    #[tokio::test]
    async fn a_returned_attempt_is_released_once() {
        let shares = CpuShares::new(1, || {});
        let other = shares.run("a", 1, std::future::pending::<()>());
        shares.run("a", 1, async {}).await;
        assert_eq!(shares.lock().namespaces.get("a").map(|s| s.live), Some(1));
        drop(other);
        assert!(shares.lock().namespaces.is_empty());
    }
}
