//! The change feed over server-sent events: `GET /api/realtime/{collection}`.
//!
//! One event per change, `id:` its commit sequence (`seq.i` for all but the last change of a
//! transaction with several), `event:` the operation and `data:` one JSON line
//! `{"seq", "op", "collection", "id", "doc"}`. `since=` or the standard `Last-Event-ID` header
//! resume after a position, exactly once; `snapshot=true` sends the current documents first
//! and then `ready`. A position the log no longer holds gets `reset`, never a gap. Frames use
//! LF line ends and ASCII only (non-ASCII is escaped in the JSON), which every SSE parser
//! reads alike.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::{ApiError, code_of, public_message};
use super::toolkit::{self, Caller, Params, blocking};
use super::urbackend::{UrBackend, list_filter};
use crate::data::feed::{Batch, FeedEvent, Since, Subscription};
use crate::error::{Error, Result};
use futures_core::Stream;

/// How long a stream may stay silent before a heartbeat (a comment, a `checkpoint`, a ping).
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(15);
/// The largest frame a WebSocket client may send.
pub(super) const MAX_FRAME: usize = 1 << 20;
/// A WebSocket that answered no ping for this long is closed.
pub(super) const PONG_DEADLINE: Duration = Duration::from_secs(45);
/// WebSocket close code for "the feed was reset: reconnect and read again".
pub(super) const CLOSE_RESET: u16 = 4409;
/// What the client waits before reconnecting, sent first (ms).
const RETRY_MS: u64 = 2000;
/// Parameters of the route that are not filters.
const FEED_PARAMS: &[&str] = &["since", "snapshot", "filter"];

/// Where a stream resumes: after batch `seq`, or inside it after its change `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    seq: u64,
    index: Option<usize>,
}

impl Position {
    /// `1042` or `1042.3`.
    fn parse(text: &str) -> Result<Position> {
        let invalid = || {
            Error::invalid(format!(
                "`{}` is not a feed position (a sequence number such as 1042, or 1042.3)",
                text.escape_debug()
            ))
        };
        let (seq, index) = match text.trim().split_once('.') {
            Some((seq, index)) => (seq, Some(index.parse().map_err(|_| invalid())?)),
            None => (text.trim(), None),
        };
        Ok(Position {
            seq: seq.parse().map_err(|_| invalid())?,
            index,
        })
    }

    /// Where the subscription starts: inside a transaction, at its start (its changes up to
    /// `index` are skipped when they arrive).
    fn since(self) -> Since {
        match self.index {
            None => Since::Seq(self.seq),
            Some(_) => Since::Seq(self.seq.saturating_sub(1)),
        }
    }
}

/// What a request asks for.
struct FeedRequest {
    filter: crate::data::query::Filter,
    since: Since,
    /// Changes of a transaction already delivered before a cut: `(seq, count)`.
    skip: Option<(u64, usize)>,
}

fn feed_request(params: &[(String, String)], headers: &HeaderMap) -> Result<FeedRequest> {
    let mut conditions: Vec<(String, String)> = params
        .iter()
        .filter(|(key, _)| !FEED_PARAMS.contains(&key.as_str()))
        .cloned()
        .collect();
    let mut since = Since::Now;
    let mut position = None;
    for (key, value) in params {
        match key.as_str() {
            "filter" => conditions.extend(
                axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
                    &format!("/?{value}")
                        .parse()
                        .map_err(|_| Error::invalid("`filter` is not a query string"))?,
                )
                .map_err(|_| Error::invalid("`filter` is not a query string"))?
                .0,
            ),
            "snapshot" => match value.as_str() {
                "true" | "1" => since = Since::Snapshot,
                "false" | "0" => {}
                _ => return Err(Error::invalid("`snapshot` must be true or false")),
            },
            "since" => position = Some(Position::parse(value)?),
            _ => {}
        }
    }
    if let Some(last) = headers.get("last-event-id") {
        let last = last
            .to_str()
            .map_err(|_| Error::invalid("`Last-Event-ID` is not a feed position"))?;
        if !last.trim().is_empty() {
            position = Some(Position::parse(last)?);
        }
    }
    let mut skip = None;
    if let Some(position) = position {
        since = position.since();
        skip = position.index.map(|index| (position.seq, index + 1));
    }
    Ok(FeedRequest {
        filter: list_filter(&conditions)?,
        since,
        skip,
    })
}

/// `GET /api/realtime/{collection}`: subscribes the caller and streams its changes.
pub(super) async fn stream(
    caller: Caller<UrBackend>,
    Path(collection): Path<String>,
    Params(params): Params,
    headers: HeaderMap,
    stopping: Option<axum::Extension<toolkit::Stopping>>,
) -> std::result::Result<Response, ApiError> {
    let fail = |error| ApiError::new(error, super::error::Shape::UrBackend);
    let request = feed_request(&params, &headers).map_err(fail)?;
    let actor = caller.actor();
    let name = collection.clone();
    let filter = request.filter;
    let since = request.since;
    let subscription = blocking(move || actor.collection::<Value>(&name).subscribe(filter, since))
        .await
        .map_err(fail)?;
    let framing = Native {
        collection,
        skip: request.skip,
        acknowledged: 0,
    };
    Ok(event_stream(subscription, framing, stopping))
}

/// How one route writes the events of a subscription as server-sent events.
pub(super) trait Framing: Send + 'static {
    /// What opens the stream (after `retry:`).
    fn opened(&mut self, out: &mut String, subscription: &Subscription);
    /// Writes one event; true if the stream ends after it.
    fn event(&mut self, out: &mut String, event: FeedEvent) -> bool;
    /// Writes the end of the stream for an error.
    fn error(&mut self, out: &mut String, error: &Error);
    /// Writes a heartbeat after [`HEARTBEAT`] of silence; `cursor` is where the subscription
    /// has read to.
    fn heartbeat(&mut self, out: &mut String, cursor: u64);
}

/// The answer streaming `subscription` through `framing`. The body itself reads the
/// subscription when the connection can take more, so a stream costs no task and no queue of
/// its own, and a slow client only holds back its own stream: writers never wait.
pub(super) fn event_stream(
    subscription: Subscription,
    mut framing: impl Framing + Unpin,
    stopping: Option<axum::Extension<toolkit::Stopping>>,
) -> Response {
    let mut opening = format!("retry: {RETRY_MS}\n\n");
    framing.opened(&mut opening, &subscription);
    let stop: Option<Pin<Box<dyn Future<Output = ()> + Send>>> =
        stopping.map(|axum::Extension(toolkit::Stopping(mut stop))| {
            Box::pin(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            }) as Pin<Box<dyn Future<Output = ()> + Send>>
        });
    let body = EventBody {
        subscription,
        framing,
        opening: Some(opening),
        heartbeat: Box::pin(tokio::time::sleep(HEARTBEAT)),
        stop,
        done: false,
    };
    let mut response = Body::new(body).into_response();
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Resolves when the server stops (never without a server, as under a bare router).
pub(super) async fn stopped(stopping: &mut Option<tokio::sync::watch::Receiver<bool>>) {
    match stopping {
        Some(stop) => {
            let _ = stop.wait_for(|stopped| *stopped).await;
        }
        None => std::future::pending().await,
    }
}

/// The body of an event stream (see [`event_stream`]).
struct EventBody<F> {
    subscription: Subscription,
    framing: F,
    /// What opens the stream, until it is sent.
    opening: Option<String>,
    /// Fires after [`HEARTBEAT`] of silence.
    heartbeat: Pin<Box<tokio::time::Sleep>>,
    /// Fires when the server stops.
    stop: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// The stream has ended (a reset, an error): nothing more after what was sent.
    done: bool,
}

/// The most bytes of events one body frame gathers.
const FRAME_BYTES: usize = 64 * 1024;

impl<F: Framing + Unpin> http_body::Body for EventBody<F> {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<http_body::Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        let data = |text: String| Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(text)))));
        if let Some(opening) = this.opening.take() {
            return data(opening);
        }
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(stop) = &mut this.stop
            && stop.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(None);
        }
        // Everything ready now goes out in one write.
        let mut out = String::new();
        while out.len() < FRAME_BYTES {
            match Pin::new(&mut this.subscription).poll_next(cx) {
                Poll::Ready(Some(Ok(event))) => {
                    if this.framing.event(&mut out, event) {
                        this.done = true;
                        break;
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    this.framing.error(&mut out, &error);
                    this.done = true;
                    break;
                }
                Poll::Ready(None) => {
                    this.done = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if !out.is_empty() {
            this.heartbeat
                .as_mut()
                .reset(tokio::time::Instant::now() + HEARTBEAT);
            return data(out);
        }
        if this.done {
            return Poll::Ready(None);
        }
        if this.heartbeat.as_mut().poll(cx).is_ready() {
            this.framing.heartbeat(&mut out, this.subscription.cursor());
            this.heartbeat
                .as_mut()
                .reset(tokio::time::Instant::now() + HEARTBEAT);
            return data(out);
        }
        Poll::Pending
    }
}

/// The native route's events (see the module docs).
struct Native {
    collection: String,
    /// Changes of a transaction already delivered before a cut: `(seq, count)`.
    skip: Option<(u64, usize)>,
    /// The last position the client was given an `id:` for.
    acknowledged: u64,
}

impl Framing for Native {
    fn opened(&mut self, _: &mut String, subscription: &Subscription) {
        self.acknowledged = subscription.cursor();
    }

    fn event(&mut self, out: &mut String, event: FeedEvent) -> bool {
        let collection = self.collection.as_str();
        match event {
            FeedEvent::Snapshot { seq, docs } => {
                for doc in docs {
                    let id = doc.id.clone();
                    let data = json!({"seq": seq, "op": "insert", "collection": collection, "id": id, "doc": doc});
                    frame(out, None, "insert", &data);
                }
                false
            }
            FeedEvent::Ready { seq, epoch } => {
                self.acknowledged = seq;
                let data = json!({"seq": seq, "epoch": epoch.to_string()});
                frame(out, Some(&seq.to_string()), "ready", &data);
                false
            }
            FeedEvent::Batch(batch) => {
                self.acknowledged = batch.seq;
                batch_frames(out, collection, batch, self.skip.take());
                false
            }
            FeedEvent::Reset { reason, seq, epoch } => {
                let data =
                    json!({"seq": seq, "reason": reason.as_str(), "epoch": epoch.to_string()});
                frame(out, None, "reset", &data);
                true
            }
        }
    }

    fn error(&mut self, out: &mut String, error: &Error) {
        let data = json!({"error": code_of(error.kind()), "message": public_message(error)});
        frame(out, None, "error", &data);
    }

    fn heartbeat(&mut self, out: &mut String, cursor: u64) {
        if cursor > self.acknowledged {
            // The log moved past changes this subscriber may not see: keep its Last-Event-ID
            // up with it, so it never resumes from trimmed history.
            self.acknowledged = cursor;
            frame(
                out,
                Some(&cursor.to_string()),
                "checkpoint",
                &json!({"seq": cursor}),
            );
        } else {
            out.push_str(": keepalive\n\n");
        }
    }
}

/// One event per change of `batch`; `skip` drops the changes a client already had of a
/// transaction it was cut off inside.
fn batch_frames(out: &mut String, collection: &str, batch: Batch, skip: Option<(u64, usize)>) {
    let skip = match skip {
        Some((seq, count)) if seq == batch.seq => count,
        _ => 0,
    };
    let last = batch.changes.len().saturating_sub(1);
    for (index, change) in batch.changes.into_iter().enumerate().skip(skip) {
        let id = if index == last {
            batch.seq.to_string()
        } else {
            format!("{}.{index}", batch.seq)
        };
        if let Some(crate::data::feed::SharedJson { doc, prev }) = change.shared_json() {
            // Documents every such subscriber sees whole: their JSON is encoded once per
            // change and spliced in here.
            let strings = json!([collection, change.id]);
            let mut data = format!(
                "{{\"seq\":{},\"op\":\"{}\",\"collection\":{},\"id\":{},\"doc\":{}",
                batch.seq,
                change.op.as_str(),
                strings[0],
                strings[1],
                doc.as_deref().unwrap_or("null")
            );
            if let Some(prev) = prev {
                data.push_str(",\"prev\":");
                data.push_str(&prev);
            }
            data.push('}');
            frame_json(out, Some(&id), change.op.as_str(), &data);
            continue;
        }
        let mut data = json!({
            "seq": batch.seq,
            "op": change.op.as_str(),
            "collection": collection,
            "id": change.id,
            "doc": change.doc,
        });
        if let Some(prev) = change.prev {
            data["prev"] = json!(prev);
        }
        frame(out, Some(&id), change.op.as_str(), &data);
    }
}

/// Closes a WebSocket with `code` and a reason (cut to what a close frame holds).
pub(super) async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.chars().take(100).collect::<String>()),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// A JSON text frame.
pub(super) fn text(value: Value) -> Message {
    Message::Text(Utf8Bytes::from(value.to_string()))
}

/// Appends one event: LF line ends, the JSON on one line with non-ASCII escaped.
pub(super) fn frame(out: &mut String, id: Option<&str>, event: &str, data: &Value) {
    frame_json(out, id, event, &data.to_string());
}

/// [`frame`] for data already encoded as one line of JSON.
fn frame_json(out: &mut String, id: Option<&str>, event: &str, json: &str) {
    if let Some(id) = id {
        let _ = writeln!(out, "id: {id}");
    }
    let _ = writeln!(out, "event: {event}");
    out.push_str("data: ");
    if json.is_ascii() {
        out.push_str(json);
    } else {
        out.push_str(&crate::data::feed::ascii_json(json));
    }
    out.push_str("\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_ascii_with_lf_line_ends() {
        let mut out = String::new();
        frame(
            &mut out,
            Some("7"),
            "insert",
            &json!({"title": "café ☕ 𝄞", "line": "a\nb"}),
        );
        assert_eq!(
            out,
            "id: 7\nevent: insert\ndata: {\"line\":\"a\\nb\",\"title\":\"caf\\u00e9 \\u2615 \\ud834\\udd1e\"}\n\n"
        );
        let data = out.split("data: ").nth(1).unwrap().trim_end();
        let parsed: Value = serde_json::from_str(data).unwrap();
        assert_eq!(parsed["title"], "café ☕ 𝄞");
    }

    #[test]
    fn positions_parse_whole_and_inside_a_transaction() {
        assert_eq!(
            Position::parse("1042").unwrap(),
            Position {
                seq: 1042,
                index: None
            }
        );
        let inside = Position::parse("1042.3").unwrap();
        assert_eq!(inside.since(), Since::Seq(1041));
        for bad in ["", "x", "-1", "1.x", "1.2.3"] {
            assert!(Position::parse(bad).is_err(), "{bad}");
        }
    }
}
