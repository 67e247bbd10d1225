//! Large answers written as they are produced: a blocking task renders
//! chunks into a bounded channel that the response body drains, so a
//! request holds a few chunks whatever the catalog size. Rendering takes
//! turns in the query pool chunk by chunk and gives its turn back while
//! the client reads, so a slow reader holds no core.

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

/// Bytes rendered before they are handed to the client.
const CHUNK: usize = 64 * 1024;
/// Chunks rendered ahead of the client.
const CHUNKS_AHEAD: usize = 2;

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
    let chunks = Chunks {
        text: String::new(),
        tx,
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
    text: String,
    tx: mpsc::Sender<Bytes>,
    pool: std::sync::Arc<QueryPool>,
    caller: Caller,
    turn: Option<Turn>,
    runtime: Handle,
}

impl Chunks {
    /// Hands the rendered text to the client, without holding a turn while
    /// it reads; takes a turn again when `more` is to be rendered.
    fn flush(&mut self, more: bool) -> Result<(), Closed> {
        let text = std::mem::take(&mut self.text);
        self.turn = None;
        if !text.is_empty() {
            self.tx
                .blocking_send(Bytes::from(text))
                .map_err(|_| Closed)?;
        }
        if more {
            self.turn = Some(
                self.runtime
                    .block_on(self.pool.next_turn(self.caller.clone())),
            );
            self.text.reserve(CHUNK);
        }
        Ok(())
    }
}

impl Sink for Chunks {
    fn write(&mut self, text: &str) -> Result<(), Closed> {
        self.text.push_str(text);
        if self.text.len() >= CHUNK {
            self.flush(true)?;
        }
        Ok(())
    }
}
