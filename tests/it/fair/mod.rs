//! Issue 30, fair and bounded CPU: health checks answered whatever the
//! connection count, the query pool's budget and fairness, the change
//! feed's full pages off the async workers, the status page built per
//! change. Each test asserts a generous bound that today's failure misses
//! by far.

mod changes;
mod connections;
mod status_page;
