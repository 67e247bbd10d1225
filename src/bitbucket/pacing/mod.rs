//! Client-side pacing for one Bitbucket integration: an optional configured
//! rate (a hard ceiling), a cap on concurrent requests, and a pace learnt
//! from the server's token bucket.
//!
//! Nothing is paced until the first 429. From then on the [`Estimator`]
//! works out the bucket's refill rate (and roughly its size) from what
//! Bitbucket accepted between 429s, and the pace sits just under it, probing
//! upward slowly. `X-RateLimit-*` headers, when a server sends them, give the
//! answer directly. Sweeps wait out the latest `Retry-After`; interactive
//! work waits only for the next token of a bucket whose refill is known.
//!
//! - `estimator.rs`: the pure state machine (429s and headers in, a pace out).
//! - `headers.rs`: what an answer's headers say about the limit.
//! - `pacer.rs`: what every request waits for, driven by the estimator.
//! - `lanes.rs`: interactive work ahead of sweeps, for places and the pace.
//! - `concurrency.rs`: how many requests may be in flight (adaptive).

mod concurrency;
mod estimator;
mod headers;
mod lanes;
mod pacer;

pub(crate) use lanes::{Lane, sweep};

pub(crate) use headers::retry_after;
pub(crate) use pacer::{PaceView, Pacer};
