//! Large answers written as they are produced: a blocking task renders
//! chunks into a bounded channel that the response body drains, so a
//! request holds a few chunks whatever the catalog size. Rendering takes
//! turns in the query pool chunk by chunk and gives its turn back while
//! the client reads, so a slow reader holds no core. A chunk's buffer
//! comes back to the renderer once written to the socket and is filled
//! again: a request allocates at most [`BUFFERS`] of them, never one per
//! chunk (fresh memory costs page faults at every chunk).

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use super::error::ApiError;
use super::query_pool::{Caller, QueryPool, Turn};
use super::state::{ApiState, Req, not_evaluated, take_turn};
use crate::catalog::budget::Budget;

/// Bytes rendered before they are handed to the client: large enough that
/// handing over (a channel send, a wake-up, a turn) is rare per byte.
const CHUNK: usize = 256 * 1024;
/// Chunks rendered ahead of the client.
const CHUNKS_AHEAD: usize = 2;
/// Buffers a request may have: those queued ahead, the one hyper writes
/// and the one being rendered.
const BUFFERS: usize = CHUNKS_AHEAD + 2;
/// A buffer grown past this by one large entity is not kept.
const KEPT_CAPACITY: usize = 2 * CHUNK;

/// Where an answer is written.
pub(crate) trait Sink {
    fn write(&mut self, text: &str) -> Result<(), Closed>;
}

/// The client went away: stop rendering.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Closed;

impl Sink for String {
    fn write(&mut self, text: &str) -> Result<(), Closed> {
        self.push_str(text);
        Ok(())
    }
}

/// What writes a streamed body.
pub(crate) type Render = Box<dyn FnOnce(&mut dyn Sink) -> Result<(), Closed> + Send>;

/// An evaluated answer still to be rendered: its headers, and what writes
/// its body.
pub(crate) struct Streamed {
    pub headers: HeaderMap,
    pub body: Render,
}

/// The headers of a JSON answer.
pub(crate) fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers
}

/// Evaluates `work` in a turn of the query pool within `backend.queryBudget`
/// (its errors are answered as usual), then streams the body it returns.
pub(crate) async fn evaluate_streamed(
    state: &ApiState,
    req: &Req,
    work: impl FnOnce(&Budget) -> Result<Streamed, ApiError> + Send + 'static,
) -> Result<Response, ApiError> {
    let turn = take_turn(state, req).await?;
    let (head_tx, head_rx) = oneshot::channel();
    let (tx, rx) = mpsc::channel::<Bytes>(CHUNKS_AHEAD);
    let (returned, spare) = std::sync::mpsc::sync_channel(BUFFERS);
    let chunks = Chunks {
        text: Vec::with_capacity(CHUNK),
        tx,
        returned,
        spare,
        pool: std::sync::Arc::clone(&state.evaluators),
        caller: req.caller.clone(),
        turn: Some(turn),
        runtime: Handle::current(),
    };
    let limits = state.query_budget;
    tokio::task::spawn_blocking(move || {
        let mut chunks = chunks;
        let streamed = work(&Budget::starting_now(limits));
        let body = match streamed {
            Ok(Streamed { headers, body }) => {
                if head_tx.send(Ok(headers)).is_err() {
                    return;
                }
                body
            }
            Err(err) => {
                let _ = head_tx.send(Err(err));
                return;
            }
        };
        // A client that left stops the rendering; nothing to report.
        if body(&mut chunks).is_ok() {
            let _ = chunks.flush(false);
        }
    });
    let headers = head_rx.await.map_err(|_| not_evaluated(req))??;
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.headers_mut() = headers;
    Ok(response)
}

/// The rendering side of a streamed answer.
struct Chunks {
    text: Vec<u8>,
    tx: mpsc::Sender<Bytes>,
    /// Where a written chunk gives its buffer back ...
    returned: std::sync::mpsc::SyncSender<Vec<u8>>,
    /// ... and where the renderer takes it again.
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    pool: std::sync::Arc<QueryPool>,
    caller: Caller,
    turn: Option<Turn>,
    runtime: Handle,
}

/// A chunk's buffer on loan to the response body, given back on drop.
struct Lent {
    text: Vec<u8>,
    back: std::sync::mpsc::SyncSender<Vec<u8>>,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.text
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if self.text.capacity() <= KEPT_CAPACITY {
            // Full or gone (the rendering ended): the buffer is freed.
            let _ = self.back.try_send(std::mem::take(&mut self.text));
        }
    }
}

impl Chunks {
    /// Hands the rendered text to the client, without holding a turn while
    /// it reads; takes a turn again when `more` is to be rendered.
    fn flush(&mut self, more: bool) -> Result<(), Closed> {
        let next = match self.spare.try_recv() {
            Ok(mut text) => {
                text.clear();
                text
            }
            Err(_) if more => Vec::with_capacity(CHUNK),
            Err(_) => Vec::new(),
        };
        let text = std::mem::replace(&mut self.text, next);
        self.turn = None;
        if !text.is_empty() {
            let lent = Lent {
                text,
                back: self.returned.clone(),
            };
            self.tx
                .blocking_send(Bytes::from_owner(lent))
                .map_err(|_| Closed)?;
        }
        if more {
            self.turn = Some(
                self.runtime
                    .block_on(self.pool.next_turn(self.caller.clone())),
            );
        }
        Ok(())
    }
}

impl Sink for Chunks {
    fn write(&mut self, text: &str) -> Result<(), Closed> {
        // Hand over what is rendered rather than grow the buffer (a copy).
        if self.text.len() + text.len() > self.text.capacity() && !self.text.is_empty() {
            self.flush(true)?;
        }
        self.text.extend_from_slice(text.as_bytes());
        if self.text.len() >= CHUNK {
            self.flush(true)?;
        }
        Ok(())
    }
}
