//! Interactive work first: which class a request belongs to, and a gate
//! (a semaphore with two classes of waiters) that serves interactive
//! waiters before sweep ones without ever starving the sweep.
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
use tokio::sync::oneshot;

tokio::task_local! {
    static LANE: Lane;
}

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Single-repository work someone waits for: served first.
    Interactive,
    /// A whole source run: takes what interactive work leaves.
    Sweep,
}

impl Lane {
    /// The calling task's class: [`Lane::Sweep`] inside [`sweep`].
    pub(crate) fn current() -> Lane {
        LANE.try_with(|lane| *lane).unwrap_or(Lane::Interactive)
    }

    fn index(self) -> usize {
        match self {
            Lane::Interactive => 0,
            Lane::Sweep => 1,
        }
    }
}

/// Runs `work` (a source run) with its requests in the sweep class. The
/// class follows the future, not spawned tasks.
pub(crate) async fn sweep<F: Future>(work: F) -> F::Output {
    LANE.scope(Lane::Sweep, work).await
}

/// While sweep waiters could go, interactive waiters take at most this
/// many grants in a row: a flood of interactive work slows a sweep to a
/// quarter, never to nothing.
const INTERACTIVE_STREAK: u32 = 3;

/// A counting gate: `limit` holders at most, `reserve` of them that sweep
/// work cannot take, waiters served interactive first (bounded by
/// [`INTERACTIVE_STREAK`]), FIFO within a class.
#[derive(Debug)]
pub(crate) struct Gate {
    state: Mutex<GateState>,
}

#[derive(Debug)]
struct GateState {
    limit: usize,
    reserve: usize,
    held: usize,
    /// By [`Lane::index`].
    waiting: [VecDeque<Waiting>; 2],
    /// Interactive grants in a row while a sweep waiter could have gone.
    streak: u32,
    next_id: u64,
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
    lane: Lane,
    id: u64,
    granted: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let Some(mut granted) = self.granted.take() else {
            return;
        };
        {
            let mut state = self.gate.state.lock();
            let queue = &mut state.waiting[self.lane.index()];
            if let Some(at) = queue.iter().position(|w| w.id == self.id) {
                queue.remove(at);
                return;
            }
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
                waiting: Default::default(),
                streak: 0,
                next_id: 0,
            }),
        })
    }

    /// Waits for a place for `lane`'s work.
    pub(crate) async fn enter(self: &Arc<Self>, lane: Lane) -> Held {
        let (id, granted) = {
            let mut state = self.state.lock();
            if state.may_enter(lane) {
                state.held += 1;
                return Held {
                    gate: Arc::clone(self),
                };
            }
            let (grant, granted) = oneshot::channel();
            let id = state.next_id;
            state.next_id += 1;
            state.waiting[lane.index()].push_back(Waiting { id, grant });
            (id, granted)
        };
        let mut waiter = Waiter {
            gate: self,
            lane,
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
        state.held + state.reserve >= state.limit || state.waiting.iter().any(|w| !w.is_empty())
    }

    fn release(&self) {
        let mut state = self.state.lock();
        state.held = state.held.saturating_sub(1);
        state.grant();
    }
}

impl GateState {
    fn may_enter(&self, lane: Lane) -> bool {
        match lane {
            Lane::Interactive => self.waiting[0].is_empty() && self.held < self.limit,
            Lane::Sweep => {
                self.waiting.iter().all(VecDeque::is_empty) && self.held + self.reserve < self.limit
            }
        }
    }

    /// Hands free places to waiters, interactive first. Waking a waiter
    /// only schedules it, so this runs under the lock.
    fn grant(&mut self) {
        loop {
            let interactive = !self.waiting[0].is_empty() && self.held < self.limit;
            let sweep = !self.waiting[1].is_empty() && self.held + self.reserve < self.limit;
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
            let Some(next) = self.waiting[lane.index()].pop_front() else {
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

    #[tokio::test]
    async fn sweeps_leave_the_reserve_and_interactive_waiters_go_first() {
        let gate = Gate::new(3, 1);
        let a = gate.enter(Lane::Sweep).await;
        let _b = gate.enter(Lane::Sweep).await;
        // The third place is the reserve: a sweep waits, interactive work does not.
        let sweep = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { gate.enter(Lane::Sweep).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!sweep.is_finished());
        let first = gate.enter(Lane::Interactive).await;
        let interactive = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { gate.enter(Lane::Interactive).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // A place frees: the interactive waiter takes it, although the sweep waited longer.
        drop(a);
        let second = tokio::time::timeout(Duration::from_secs(1), interactive)
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
        let mut holder = gate.enter(Lane::Interactive).await;
        let sweep = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { drop(gate.enter(Lane::Sweep).await) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut grants = 0;
        while !sweep.is_finished() {
            let next = tokio::spawn({
                let gate = Arc::clone(&gate);
                async move { gate.enter(Lane::Interactive).await }
            });
            tokio::time::sleep(Duration::from_millis(5)).await;
            drop(holder);
            holder = next.await.expect("task");
            grants += 1;
            assert!(grants <= INTERACTIVE_STREAK + 1, "sweep starved");
        }
    }

    #[tokio::test]
    async fn a_cancelled_waiter_gives_its_place_back() {
        let gate = Gate::new(1, 0);
        let held = gate.enter(Lane::Sweep).await;
        let waiting = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { drop(gate.enter(Lane::Interactive).await) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        waiting.abort();
        let _ = waiting.await;
        drop(held);
        assert_eq!(gate.held(), 0);
        let _again = tokio::time::timeout(Duration::from_secs(1), gate.enter(Lane::Sweep))
            .await
            .expect("the place is free");
    }

    #[tokio::test]
    async fn the_class_follows_the_sweep_future() {
        assert_eq!(Lane::current(), Lane::Interactive);
        assert_eq!(sweep(async { Lane::current() }).await, Lane::Sweep);
    }
}
