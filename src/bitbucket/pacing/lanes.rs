//! Interactive work first: which class a request belongs to, and a gate
//! (a semaphore with two classes of waiters) that serves interactive
//! waiters before sweep ones without ever starving the sweep, and sweep
//! waiters round-robin between the providers sweeping.
//!
//! The class travels as a task-local rather than as an argument: it is a
//! property of the work (a scheduled or refreshed source run) and not of
//! any one request, and an argument would have to pass through every
//! client and reader between the scheduler and the pacer. Everything not
//! inside [`sweep`] — webhook reads, entity refreshes, registrations,
//! validation — is interactive, so new single-repository paths are served
//! first without anyone remembering to say so.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};

tokio::task_local! {
    static CLASS: Class;
}

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Single-repository work someone waits for: served first.
    Interactive,
    /// A whole source run: takes what interactive work leaves.
    Sweep,
}

/// A request's lane and, for sweeps, the provider it sweeps for: sweep
/// places go round-robin between providers, so one provider's big sweep
/// cannot starve another's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Class {
    lane: Lane,
    provider: Arc<str>,
}

impl Class {
    pub(crate) fn new(lane: Lane, provider: &str) -> Self {
        Self {
            lane,
            provider: Arc::from(provider),
        }
    }

    /// The calling task's class: interactive outside [`sweep`].
    pub(crate) fn current() -> Self {
        CLASS
            .try_with(Clone::clone)
            .unwrap_or_else(|_| Self::new(Lane::Interactive, ""))
    }

    pub(crate) fn lane(&self) -> Lane {
        self.lane
    }
}

/// Runs `work` (a source run of `provider`) with its requests in the sweep
/// class. The class follows the future, not spawned tasks.
pub(crate) async fn sweep<F: Future>(provider: &str, work: F) -> F::Output {
    CLASS.scope(Class::new(Lane::Sweep, provider), work).await
}

/// While sweep waiters could go, interactive waiters take at most this
/// many grants in a row: a flood of interactive work slows a sweep to a
/// quarter, never to nothing.
const INTERACTIVE_STREAK: u32 = 3;

/// A counting gate: `limit` holders at most, `reserve` of them that sweep
/// work cannot take, waiters served interactive first (bounded by
/// [`INTERACTIVE_STREAK`]), FIFO within the interactive class and
/// round-robin between providers (FIFO within one) in the sweep class.
#[derive(Debug)]
pub(crate) struct Gate {
    state: Mutex<GateState>,
    /// Wakes sweep holders that yield to interactive waiters (see
    /// [`Gate::interactive_waiting`]).
    interactive_queued: Notify,
}

#[derive(Debug)]
struct GateState {
    limit: usize,
    reserve: usize,
    held: usize,
    interactive: VecDeque<Waiting>,
    /// One queue per provider with sweep waiters; the front one is served
    /// next and then goes to the back.
    sweeps: VecDeque<ProviderQueue>,
    /// Interactive grants in a row while a sweep waiter could have gone.
    streak: u32,
    next_id: u64,
}

#[derive(Debug)]
struct ProviderQueue {
    provider: Arc<str>,
    waiting: VecDeque<Waiting>,
}

#[derive(Debug)]
struct Waiting {
    id: u64,
    grant: oneshot::Sender<()>,
}

/// One place in a [`Gate`]; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Held {
    gate: Arc<Gate>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.gate.release();
    }
}

/// Removes a waiter that gave up (its request was cancelled), or gives
/// back the place it was granted meanwhile.
struct Waiter<'a> {
    gate: &'a Arc<Gate>,
    id: u64,
    granted: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let Some(mut granted) = self.granted.take() else {
            return;
        };
        if self.gate.state.lock().remove(self.id) {
            return;
        }
        // Not queued any more: the grant was sent.
        if granted.try_recv().is_ok() {
            self.gate.release();
        }
    }
}

impl Gate {
    pub(crate) fn new(limit: usize, reserve: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(GateState {
                limit: limit.max(1),
                reserve,
                held: 0,
                interactive: VecDeque::new(),
                sweeps: VecDeque::new(),
                streak: 0,
                next_id: 0,
            }),
            interactive_queued: Notify::new(),
        })
    }

    /// Waits for a place for `class`'s work.
    pub(crate) async fn enter(self: &Arc<Self>, class: &Class) -> Held {
        let (id, granted) = {
            let mut state = self.state.lock();
            if state.may_enter(class.lane) {
                state.held += 1;
                return Held {
                    gate: Arc::clone(self),
                };
            }
            let (grant, granted) = oneshot::channel();
            let id = state.next_id;
            state.next_id += 1;
            state.queue(class, Waiting { id, grant });
            (id, granted)
        };
        if class.lane == Lane::Interactive {
            self.interactive_queued.notify_waiters();
        }
        let mut waiter = Waiter {
            gate: self,
            id,
            granted: Some(granted),
        };
        if let Some(granted) = waiter.granted.as_mut() {
            // The sender lives in the queue until it grants: no error
            // short of the gate going away, which holds `self`.
            let _ = granted.await;
        }
        waiter.granted = None;
        Held {
            gate: Arc::clone(self),
        }
    }

    /// Resolves once an interactive waiter is queued that a released place
    /// would go to: a sweep holding a place it has not used yet (waiting
    /// on the pace) gives it up, so interactive work never waits behind it.
    pub(crate) async fn interactive_waiting(&self) {
        loop {
            // Registered before reading the state, so no arrival is missed.
            let queued = self.interactive_queued.notified();
            tokio::pin!(queued);
            queued.as_mut().enable();
            {
                let state = self.state.lock();
                if !state.interactive.is_empty() && state.streak < INTERACTIVE_STREAK {
                    return;
                }
            }
            queued.await;
        }
    }

    /// Changes the number of places (at least one); waiters go in at once
    /// when it grows.
    pub(crate) fn set_limit(&self, limit: usize, reserve: usize) {
        let mut state = self.state.lock();
        state.limit = limit.max(1);
        state.reserve = reserve;
        state.grant();
    }

    /// Places held now.
    pub(crate) fn held(&self) -> usize {
        self.state.lock().held
    }

    /// Sweep work cannot enter now (every place it may take is held, or
    /// someone waits): the limit, not the work, bounds what is in flight.
    pub(crate) fn is_full(&self) -> bool {
        let state = self.state.lock();
        state.held + state.reserve >= state.limit || state.has_waiters()
    }

    fn release(&self) {
        let mut state = self.state.lock();
        state.held = state.held.saturating_sub(1);
        state.grant();
    }
}

impl GateState {
    fn has_waiters(&self) -> bool {
        !self.interactive.is_empty() || !self.sweeps.is_empty()
    }

    fn may_enter(&self, lane: Lane) -> bool {
        match lane {
            Lane::Interactive => self.interactive.is_empty() && self.held < self.limit,
            Lane::Sweep => !self.has_waiters() && self.held + self.reserve < self.limit,
        }
    }

    fn queue(&mut self, class: &Class, waiting: Waiting) {
        if class.lane == Lane::Interactive {
            self.interactive.push_back(waiting);
            return;
        }
        match self
            .sweeps
            .iter_mut()
            .find(|q| q.provider == class.provider)
        {
            Some(queue) => queue.waiting.push_back(waiting),
            None => self.sweeps.push_back(ProviderQueue {
                provider: Arc::clone(&class.provider),
                waiting: VecDeque::from([waiting]),
            }),
        }
    }

    /// Takes waiter `id` out of its queue; false when it is not queued.
    fn remove(&mut self, id: u64) -> bool {
        if let Some(at) = self.interactive.iter().position(|w| w.id == id) {
            self.interactive.remove(at);
            return true;
        }
        for (index, queue) in self.sweeps.iter_mut().enumerate() {
            if let Some(at) = queue.waiting.iter().position(|w| w.id == id) {
                queue.waiting.remove(at);
                if queue.waiting.is_empty() {
                    self.sweeps.remove(index);
                }
                return true;
            }
        }
        false
    }

    /// The next sweep waiter: the front provider's first, that provider
    /// then going to the back.
    fn next_sweep(&mut self) -> Option<Waiting> {
        let mut queue = self.sweeps.pop_front()?;
        let next = queue.waiting.pop_front();
        if !queue.waiting.is_empty() {
            self.sweeps.push_back(queue);
        }
        next
    }

    /// Hands free places to waiters, interactive first. Waking a waiter
    /// only schedules it, so this runs under the lock.
    fn grant(&mut self) {
        loop {
            let interactive = !self.interactive.is_empty() && self.held < self.limit;
            let sweep = !self.sweeps.is_empty() && self.held + self.reserve < self.limit;
            let lane = match (interactive, sweep) {
                (true, true) if self.streak >= INTERACTIVE_STREAK => Lane::Sweep,
                (true, _) => Lane::Interactive,
                (false, true) => Lane::Sweep,
                (false, false) => return,
            };
            match lane {
                Lane::Interactive if sweep => self.streak += 1,
                Lane::Interactive => {}
                Lane::Sweep => self.streak = 0,
            }
            let next = match lane {
                Lane::Interactive => self.interactive.pop_front(),
                Lane::Sweep => self.next_sweep(),
            };
            let Some(next) = next else {
                return;
            };
            // A waiter dropped since (its Drop is waiting for our lock)
            // takes nothing.
            if next.grant.send(()).is_ok() {
                self.held += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn interactive() -> Class {
        Class::new(Lane::Interactive, "")
    }

    fn sweep_of(provider: &str) -> Class {
        Class::new(Lane::Sweep, provider)
    }

    #[tokio::test]
    async fn sweeps_leave_the_reserve_and_interactive_waiters_go_first() {
        let gate = Gate::new(3, 1);
        let a = gate.enter(&sweep_of("a")).await;
        let _b = gate.enter(&sweep_of("a")).await;
        // The third place is the reserve: a sweep waits, interactive work does not.
        let sweep = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { gate.enter(&sweep_of("a")).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!sweep.is_finished());
        let first = gate.enter(&interactive()).await;
        let queued = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { gate.enter(&interactive()).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // A place frees: the interactive waiter takes it, although the sweep waited longer.
        drop(a);
        let second = tokio::time::timeout(Duration::from_secs(1), queued)
            .await
            .expect("interactive served")
            .expect("task");
        assert!(!sweep.is_finished());
        drop(first);
        assert_eq!(gate.held(), 2);
        drop(second);
        tokio::time::timeout(Duration::from_secs(1), sweep)
            .await
            .expect("sweep served")
            .expect("task");
    }

    #[tokio::test]
    async fn interactive_work_cannot_starve_a_sweep() {
        let gate = Gate::new(1, 0);
        let mut holder = gate.enter(&interactive()).await;
        let sweep = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { drop(gate.enter(&sweep_of("a")).await) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut grants = 0;
        while !sweep.is_finished() {
            let next = tokio::spawn({
                let gate = Arc::clone(&gate);
                async move { gate.enter(&interactive()).await }
            });
            tokio::time::sleep(Duration::from_millis(5)).await;
            drop(holder);
            holder = next.await.expect("task");
            grants += 1;
            assert!(grants <= INTERACTIVE_STREAK + 1, "sweep starved");
        }
    }

    /// Provider `big` queues 6 waiters before `small` queues 2: the places
    /// alternate between them, not first come first served.
    #[tokio::test]
    async fn sweep_places_go_round_robin_between_providers() {
        let gate = Gate::new(1, 0);
        let holder = gate.enter(&sweep_of("big")).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for provider in ["big"; 6].into_iter().chain(["small"; 2]) {
            let (gate, order) = (Arc::clone(&gate), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let _held = gate.enter(&sweep_of(provider)).await;
                order.lock().push(provider);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(holder);
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(1), task)
                .await
                .expect("served")
                .expect("task");
        }
        let order = order.lock().clone();
        assert_eq!(
            order,
            ["big", "small", "big", "small", "big", "big", "big", "big"],
            "{order:?}"
        );
    }

    #[tokio::test]
    async fn a_queued_interactive_waiter_is_announced_to_sweep_holders() {
        let gate = Gate::new(1, 0);
        let _sweep = gate.enter(&sweep_of("a")).await;
        let announced = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { gate.interactive_waiting().await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!announced.is_finished(), "no interactive waiter yet");
        let _waiting = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { drop(gate.enter(&interactive()).await) }
        });
        tokio::time::timeout(Duration::from_secs(1), announced)
            .await
            .expect("announced")
            .expect("task");
    }

    #[tokio::test]
    async fn a_cancelled_waiter_gives_its_place_back() {
        let gate = Gate::new(1, 0);
        let held = gate.enter(&sweep_of("a")).await;
        let waiting = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { drop(gate.enter(&interactive()).await) }
        });
        let cancelled_sweep = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { drop(gate.enter(&sweep_of("b")).await) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        waiting.abort();
        cancelled_sweep.abort();
        let _ = waiting.await;
        let _ = cancelled_sweep.await;
        drop(held);
        assert_eq!(gate.held(), 0);
        assert!(
            !gate.is_full(),
            "the cancelled waiters left no queue behind"
        );
        let _again = tokio::time::timeout(Duration::from_secs(1), gate.enter(&sweep_of("a")))
            .await
            .expect("the place is free");
    }

    #[tokio::test]
    async fn the_class_follows_the_sweep_future() {
        assert_eq!(Class::current().lane(), Lane::Interactive);
        assert_eq!(
            sweep("p", async { Class::current().lane() }).await,
            Lane::Sweep
        );
        assert_eq!(sweep("p", async { Class::current() }).await, sweep_of("p"));
    }
}
