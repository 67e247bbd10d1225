//! Issue 30, fair and bounded CPU: health checks answered whatever the
//! connection count, the query pool's budget and fairness, the change
//! feed's full pages off the async workers and streamed, the status page
//! built per change. Each test asserts a generous bound that today's
//! failure misses by far.

mod changes;
mod connections;
mod liveness;
mod query_pool;
mod status_page;
mod streaming;
