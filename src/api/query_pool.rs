//! The query pool: turns on the cores kept for queries over the whole
//! catalog, handed out fairly among callers (start-time fair queuing).
//! Each caller (a known token's subject, else the client's address: see
//! [`super::caller`]) has its own queue and a tag, the time its
//! turns have taken, never behind the pool's virtual clock; a freed turn
//! goes to the waiting caller with the lowest tag. A client with many
//! heavy queries thus delays a light client by at most the turn in
//! progress, never by its backlog nor by other heavy clients' turns.
//! Each caller may queue only so much ([`PER_CALLER_QUEUE`]), and all
//! together [`TOTAL_QUEUE`]: past either, the request is refused (429).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Requests one caller may have waiting for a turn (a Backstage backend
/// sends all its users' queries from one address).
pub(crate) const PER_CALLER_QUEUE: usize = 64;
/// Requests all callers together may have waiting.
pub(crate) const TOTAL_QUEUE: usize = 512;
/// Callers whose tag is kept above the clock; past it all are forgotten,
/// which only makes them look new.
const REMEMBERED: usize = 4096;

pub(crate) use super::request::Caller;

/// Why a request got no turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    #[error(
        "this client already has {PER_CALLER_QUEUE} queries waiting for the query pool; wait for their answers before sending more"
    )]
    Caller,
    #[error(
        "the query pool has {TOTAL_QUEUE} queries waiting from all clients; retry in a few seconds"
    )]
    Overall,
}

pub(crate) struct QueryPool {
    state: Mutex<PoolState>,
}

struct PoolState {
    free: usize,
    waiting: HashMap<Caller, VecDeque<oneshot::Sender<Turn>>>,
    queued: usize,
    /// Each caller's tag: the clock when its last turn began plus the
    /// time its turns have taken since.
    tags: HashMap<Caller, Duration>,
    /// The tag of the latest turn given (never decreases).
    clock: Duration,
}

/// A turn in the pool, given back (to the next caller) on drop.
pub(crate) struct Turn {
    pool: Option<Arc<QueryPool>>,
    caller: Caller,
    started: Instant,
}

impl QueryPool {
    /// A pool of `turns` concurrent evaluations.
    pub(crate) fn new(turns: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(PoolState {
                free: turns.max(1),
                waiting: HashMap::new(),
                queued: 0,
                tags: HashMap::new(),
                clock: Duration::ZERO,
            }),
        })
    }

    /// One core fewer than the machine has (at least one), so health
    /// checks, by-name reads and discovery keep a core whatever the load.
    pub(crate) fn for_this_machine() -> Arc<Self> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self::new(cores.saturating_sub(1))
    }

    /// Waits for a turn for `caller`, within the queue bounds.
    pub(crate) async fn turn(self: &Arc<Self>, caller: Caller) -> Result<Turn, Refused> {
        self.wait(caller, true).await
    }

    /// Waits for a further turn of a request already admitted (the next
    /// chunk of a streamed answer): not refused, so an answer once begun
    /// always completes.
    pub(crate) async fn next_turn(self: &Arc<Self>, caller: Caller) -> Turn {
        // Unbounded waits are never refused.
        match self.wait(caller.clone(), false).await {
            Ok(turn) => turn,
            Err(_) => Turn::none(caller),
        }
    }

    async fn wait(self: &Arc<Self>, caller: Caller, bounded: bool) -> Result<Turn, Refused> {
        let receiver = {
            let mut state = self.lock();
            if state.free > 0 {
                state.free -= 1;
                state.begin(&caller);
                return Ok(Turn::of(self, caller));
            }
            let PoolState {
                waiting, queued, ..
            } = &mut *state;
            let queue = waiting.entry(caller.clone()).or_default();
            // Waiters whose client left hold no place.
            let before = queue.len();
            queue.retain(|w| !w.is_closed());
            *queued -= before - queue.len();
            if bounded && queue.len() >= PER_CALLER_QUEUE {
                return Err(Refused::Caller);
            }
            if bounded && *queued >= TOTAL_QUEUE {
                return Err(Refused::Overall);
            }
            let (sender, receiver) = oneshot::channel();
            queue.push_back(sender);
            *queued += 1;
            receiver
        };
        // The sender is only dropped with a turn sent or the pool gone.
        Ok(receiver.await.unwrap_or(Turn::none(caller)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Charges `caller` for `took` and hands the freed turn to the waiting
    /// caller with the lowest tag.
    fn release(self: &Arc<Self>, caller: &Caller, took: Duration) {
        let mut state = self.lock();
        let clock = state.clock;
        let tag = state.tags.entry(caller.clone()).or_insert(clock);
        *tag = tag.saturating_add(took);
        loop {
            let next = state
                .waiting
                .iter()
                // Equal tags: the shorter queue (a light caller) first.
                .min_by_key(|(caller, queue)| (state.tag(caller), queue.len()))
                .map(|(caller, _)| caller.clone());
            let Some(caller) = next else {
                state.free += 1;
                return;
            };
            let sender = match state.waiting.get_mut(&caller) {
                Some(queue) => {
                    let sender = queue.pop_front();
                    if queue.is_empty() {
                        state.waiting.remove(&caller);
                    }
                    sender
                }
                None => None,
            };
            let Some(sender) = sender else { continue };
            state.queued = state.queued.saturating_sub(1);
            match sender.send(Turn::of(self, caller.clone())) {
                Ok(()) => {
                    state.begin(&caller);
                    return;
                }
                // The client left: disarm (we hold the lock) and try the next.
                Err(mut turn) => turn.pool = None,
            }
        }
    }
}

impl PoolState {
    /// A caller's tag: an idle or new caller's is the clock.
    fn tag(&self, caller: &Caller) -> Duration {
        self.tags
            .get(caller)
            .copied()
            .unwrap_or_default()
            .max(self.clock)
    }

    /// `caller`'s turn begins: the clock moves to its tag.
    fn begin(&mut self, caller: &Caller) {
        let tag = self.tag(caller);
        self.clock = tag;
        self.tags.insert(caller.clone(), tag);
        if self.tags.len() > REMEMBERED {
            let clock = self.clock;
            self.tags.retain(|_, tag| *tag > clock);
            if self.tags.len() > REMEMBERED {
                self.tags.clear();
            }
        }
    }
}

impl Turn {
    fn of(pool: &Arc<QueryPool>, caller: Caller) -> Self {
        Self {
            pool: Some(Arc::clone(pool)),
            caller,
            started: Instant::now(),
        }
    }

    /// A turn that holds nothing (the pool is gone).
    fn none(caller: Caller) -> Self {
        Self {
            pool: None,
            caller,
            started: Instant::now(),
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.release(&self.caller, self.started.elapsed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn client(n: u8) -> Caller {
        Caller::Address(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)))
    }

    #[tokio::test]
    async fn a_new_caller_goes_before_a_busy_callers_backlog() {
        let pool = QueryPool::new(1);
        let order = Arc::new(Mutex::new(Vec::new()));
        let wait = |n: u8| {
            let (pool, order) = (Arc::clone(&pool), Arc::clone(&order));
            tokio::spawn(async move {
                let turn = pool.turn(client(n)).await?;
                order.lock().unwrap().push(n);
                drop(turn);
                Ok::<(), Refused>(())
            })
        };
        let running = pool.turn(client(1)).await.unwrap();
        let mut tasks: Vec<_> = (0..PER_CALLER_QUEUE).map(|_| wait(1)).collect();
        while pool.lock().queued < PER_CALLER_QUEUE {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.turn(client(1)).await.err(), Some(Refused::Caller));
        tasks.push(wait(2));
        while pool.lock().queued < PER_CALLER_QUEUE + 1 {
            tokio::task::yield_now().await;
        }
        drop(running);
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(order.lock().unwrap()[0], 2, "{:?}", order.lock().unwrap());
        assert_eq!(pool.lock().free, 1);
        assert_eq!(pool.lock().queued, 0);
    }

    #[tokio::test]
    async fn a_turn_given_to_a_client_that_left_goes_to_the_next() {
        let pool = QueryPool::new(1);
        let running = pool.turn(client(1)).await.unwrap();
        let gone = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move { pool.turn(client(2)).await.map(drop) })
        };
        while pool.lock().queued < 1 {
            tokio::task::yield_now().await;
        }
        gone.abort();
        let _ = gone.await;
        drop(running);
        let again = pool.turn(client(3)).await.unwrap();
        drop(again);
        assert_eq!(pool.lock().free, 1);
    }
}
