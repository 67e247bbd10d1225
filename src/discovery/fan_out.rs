//! How many repository reads a provider has under way. Where nothing but
//! the integration's adaptive concurrency limit binds, a little more than
//! that limit, so the limit stays in use and keeps growing while latency
//! holds. While a pace binds (a learnt or configured rate, a
//! `Retry-After`), about what Bitbucket is working on: more reads would
//! only queue on the pace, interleaved, and a run cut short by its timeout
//! would have finished fewer repositories. The provider's `concurrency`,
//! when set, caps both.

use std::future::Future;
use std::task::Poll;

use futures::stream::{FusedStream, FuturesUnordered};
use futures::{Stream, StreamExt, stream};

use crate::bitbucket::PaceView;

/// Reads beyond those holding a request: a read also spends time between
/// requests and processing its file, and the adaptive limit only grows
/// while work waits for a place.
const HEADROOM: usize = 4;
/// While paced, never fewer than this (the limit allowing): the fixed
/// fan-out that kept fast buckets busy and rate-limited runs in order.
const PACED_FLOOR: usize = 8;

/// The reads to have under way now; `cap`: the provider's `concurrency`.
pub(super) fn width(pace: &PaceView, cap: Option<usize>) -> usize {
    let limit = pace.concurrency;
    let unpaced = limit + (limit / 2).max(HEADROOM);
    let paced = pace.blocked || pace.pace_per_second.is_some();
    let follow = if paced {
        (pace.in_flight.min(limit) + HEADROOM)
            .max(PACED_FLOOR)
            .min(unpaced)
    } else {
        unpaced
    };
    cap.map_or(follow, |cap| follow.min(cap)).max(1)
}

/// Runs the futures `source` yields, at most `width()` at a time (asked
/// again whenever one ends, so the fan-out follows it), yielding their
/// outputs as they end. Futures start in `source`'s order.
pub(super) fn fan_out<'a, S>(
    source: S,
    width: impl Fn() -> usize + Send + 'a,
) -> impl Stream<Item = <S::Item as Future>::Output> + Send + 'a
where
    S: Stream + Send + 'a,
    S::Item: Future + Send + 'a,
{
    let mut source = Box::pin(source.fuse());
    let mut under_way = FuturesUnordered::new();
    stream::poll_fn(move |cx| {
        let width = width().max(1);
        while under_way.len() < width {
            match source.as_mut().poll_next(cx) {
                Poll::Ready(Some(work)) => under_way.push(work),
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        match under_way.poll_next_unpin(cx) {
            Poll::Ready(Some(output)) => Poll::Ready(Some(output)),
            // Nothing under way: done once the source is, else it wakes us.
            Poll::Ready(None) if source.is_terminated() => Poll::Ready(None),
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn view(concurrency: usize, in_flight: usize, pace: Option<f64>, blocked: bool) -> PaceView {
        PaceView {
            pace_per_second: pace,
            answered: 0,
            rate_limited: 0,
            blocked,
            concurrency,
            in_flight,
            share: None,
            ceiling_per_second: None,
            refill_per_second: None,
            used_per_second: 0.0,
        }
    }

    #[test]
    fn unpaced_it_follows_the_limit_with_room_to_grow() {
        assert_eq!(width(&view(8, 0, None, false), None), 12);
        assert_eq!(width(&view(64, 63, None, false), None), 96);
        assert_eq!(width(&view(2, 2, None, false), None), 6);
    }

    #[test]
    fn paced_it_follows_what_bitbucket_is_working_on() {
        // A limit grown before the bucket bound does not widen the fan-out.
        assert_eq!(width(&view(64, 1, Some(10.0), false), None), PACED_FLOOR);
        assert_eq!(width(&view(64, 0, None, true), None), PACED_FLOOR);
        assert_eq!(width(&view(64, 20, Some(500.0), false), None), 24);
        // Never wider than unpaced.
        assert_eq!(width(&view(2, 2, Some(10.0), false), None), 6);
    }

    #[test]
    fn the_providers_concurrency_caps_it() {
        assert_eq!(width(&view(64, 0, None, false), Some(16)), 16);
        assert_eq!(width(&view(8, 0, Some(1.0), false), Some(3)), 3);
        assert_eq!(width(&view(8, 0, None, false), Some(64)), 12);
    }

    #[tokio::test]
    async fn never_more_under_way_than_the_width_asked_when_each_starts() {
        let width = Arc::new(AtomicUsize::new(3));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let work = stream::iter(0..40).map(|i| {
            let (running, most) = (Arc::clone(&running), Arc::clone(&most));
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                running.fetch_sub(1, Ordering::SeqCst);
                i
            }
        });
        let asked = Arc::clone(&width);
        let outputs = fan_out(work, move || asked.load(Ordering::SeqCst));
        futures::pin_mut!(outputs);
        let mut seen = Vec::new();
        while let Some(i) = outputs.next().await {
            seen.push(i);
            if seen.len() == 20 {
                assert!(most.load(Ordering::SeqCst) <= 3);
                width.store(7, Ordering::SeqCst);
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
        assert!(most.load(Ordering::SeqCst) > 3, "the fan-out grew");
        assert!(most.load(Ordering::SeqCst) <= 7);
    }
}
