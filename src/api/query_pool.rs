//! The query pool: turns on the cores kept for queries over the whole
//! catalog, handed out fairly among callers. Each caller (its address)
//! has its own queue; a freed turn goes to the waiting caller served
//! least recently, so one client with many heavy queries delays another
//! client by at most the turn in progress, never by its whole backlog.
//! Each caller may queue only so much ([`PER_CALLER_QUEUE`]), and all
//! together [`TOTAL_QUEUE`]: past either, the request is refused (429).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// Requests one caller may have waiting for a turn (a Backstage backend
/// sends all its users' queries from one address).
pub(crate) const PER_CALLER_QUEUE: usize = 64;
/// Requests all callers together may have waiting.
pub(crate) const TOTAL_QUEUE: usize = 512;
/// Callers whose last turn is remembered (for "least recently served"):
/// past it the oldest are forgotten, which only makes them look new.
const REMEMBERED: usize = 4096;

/// Who a turn is for: the client's address (`None` when not known, e.g.
/// a request the leader replays for a follower).
pub(crate) type Caller = Option<IpAddr>;

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
    /// The turn number each caller was last served at.
    served: HashMap<Caller, u64>,
    turns: u64,
}

/// A turn in the pool, given back (to the next caller) on drop.
pub(crate) struct Turn {
    pool: Option<Arc<QueryPool>>,
}

impl QueryPool {
    /// A pool of `turns` concurrent evaluations.
    pub(crate) fn new(turns: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(PoolState {
                free: turns.max(1),
                waiting: HashMap::new(),
                queued: 0,
                served: HashMap::new(),
                turns: 0,
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
        match self.wait(caller, false).await {
            Ok(turn) => turn,
            Err(_) => Turn { pool: None },
        }
    }

    async fn wait(self: &Arc<Self>, caller: Caller, bounded: bool) -> Result<Turn, Refused> {
        let receiver = {
            let mut state = self.lock();
            if state.free > 0 {
                state.free -= 1;
                state.served_now(caller);
                return Ok(Turn {
                    pool: Some(Arc::clone(self)),
                });
            }
            let PoolState {
                waiting, queued, ..
            } = &mut *state;
            let queue = waiting.entry(caller).or_default();
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
        Ok(receiver.await.unwrap_or(Turn { pool: None }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands a freed turn to the waiting caller served least recently.
    fn release(self: &Arc<Self>) {
        let mut state = self.lock();
        loop {
            let next = state
                .waiting
                .keys()
                .min_by_key(|caller| state.served.get(*caller).copied().unwrap_or(0))
                .copied();
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
            let turn = Turn {
                pool: Some(Arc::clone(self)),
            };
            match sender.send(turn) {
                Ok(()) => {
                    state.served_now(caller);
                    return;
                }
                // The client left: disarm (we hold the lock) and try the next.
                Err(mut turn) => turn.pool = None,
            }
        }
    }
}

impl PoolState {
    fn served_now(&mut self, caller: Caller) {
        self.turns += 1;
        self.served.insert(caller, self.turns);
        if self.served.len() > REMEMBERED {
            let horizon = self.turns.saturating_sub(REMEMBERED as u64 / 2);
            self.served.retain(|_, turn| *turn >= horizon);
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn client(n: u8) -> Caller {
        Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)))
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
