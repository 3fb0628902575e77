//! ekoDB's realtime: the WebSocket `/api/ws` (Hello/Welcome, Subscribe, Unsubscribe,
//! MutationNotification) and the server-sent events of `/api/subscribe/{collection}`, as the
//! `ekodb_client` 0.32 Rust client and its Python binding speak them. Both carry larder's
//! change feed: the rules apply per subscriber at delivery (ekoDB sends every delete to every
//! filtered subscriber; larder only those the subscriber could see), and one transaction's
//! changes of one kind are one notification with all their ids.
//!
//! What the clients need of the server: the Welcome must come at once (the client waits 2 s
//! for it on every connect), it answers in JSON (so the connection stays on JSON text); no
//! notification goes out in the same burst as a Subscribe's ack (the Rust client registers its
//! channel only after reading the ack); and no unsolicited `Error` frame is ever sent (both
//! clients hand an `Error` without `messageId` to whichever request is pending). A reset of
//! the feed (the collection's rules changed, it was deleted) is told as `SchemaChanged`
//! followed by closing the socket; a revoked credential closes it (1008).
//!
//! The record routes over the socket (`FindAll`, `Insert`, `Query`, …) are refused with an
//! `Error` 501 echoing the request's `messageId`: the client's REST calls do the same work.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query as UrlQuery};
use axum::response::Response;
use futures_core::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, fail, record};
use crate::actor::Actor;
use crate::data::feed::{Batch, ChangeOp, FeedEvent, Since, Subscription};
use crate::data::query::Filter;
use crate::error::{Error, Result};
use crate::http::error::{public_message, status_of};
use crate::http::realtime::{
    CLOSE_RESET, Framing, HEARTBEAT, MAX_FRAME, PONG_DEADLINE, close, event_stream, frame, stopped,
    text,
};
use crate::http::toolkit::{Stopping, blocking};

/// Subscriptions one socket may hold.
const MAX_SUBSCRIPTIONS: usize = 100;

/// `GET /api/ws`: the credential is checked before the upgrade (a bad one is a 401 the client
/// reports as a WebSocket error).
pub(in crate::http) async fn socket(
    caller: Caller,
    upgrade: WebSocketUpgrade,
    stopping: Option<axum::Extension<Stopping>>,
) -> Response {
    let actor = caller.actor();
    let stopping = stopping.map(|axum::Extension(stopping)| stopping.0);
    upgrade
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| session(socket, actor, stopping))
}

/// One client frame: its type and, when it has one, its `messageId` and payload.
#[derive(Deserialize)]
struct Request {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "messageId", default)]
    message_id: Option<String>,
    #[serde(default)]
    payload: Value,
}

#[derive(Deserialize)]
struct SubscribePayload {
    collection: String,
    #[serde(default)]
    filter_field: Option<String>,
    #[serde(default)]
    filter_value: Option<Value>,
}

/// The filter of `filter_field`/`filter_value` (the value compared by the stored type, so
/// `"5"` matches 5).
fn filter_of(field: Option<String>, value: Option<Value>) -> Result<Filter> {
    match (field, value) {
        (None, None) => Ok(Filter::All),
        (Some(field), Some(value)) if !field.is_empty() => Ok(Filter::eq(field, value)),
        _ => Err(Error::invalid(
            "`filter_field` and `filter_value` go together",
        )),
    }
}

/// The socket's subscriptions, one per collection.
#[derive(Default)]
struct Subscriptions(Vec<(String, Subscription)>);

impl Subscriptions {
    /// The next event of any subscription (never, while there is none).
    fn next(&mut self) -> impl Future<Output = (usize, Option<Result<FeedEvent>>)> + '_ {
        std::future::poll_fn(move |cx| {
            for (index, (_, subscription)) in self.0.iter_mut().enumerate() {
                if let Poll::Ready(event) = Pin::new(subscription).poll_next(cx) {
                    return Poll::Ready((index, event));
                }
            }
            Poll::Pending
        })
    }
}

async fn session(
    mut socket: WebSocket,
    actor: Actor,
    mut stopping: Option<tokio::sync::watch::Receiver<bool>>,
) {
    let mut subscriptions = Subscriptions::default();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    let mut answered = Instant::now();
    loop {
        let outgoing: Vec<Message> = tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => request(&actor, &mut subscriptions, &text).await,
                Some(Ok(Message::Binary(_))) => vec![error_frame(
                    None,
                    &Error::invalid("frames are JSON text on this connection"),
                )],
                Some(Ok(Message::Pong(_))) => {
                    answered = Instant::now();
                    Vec::new()
                }
                Some(Ok(Message::Ping(_))) => Vec::new(), // answered by the socket itself
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
            },
            (index, event) = subscriptions.next() => {
                let collection = subscriptions.0[index].0.clone();
                match event {
                    Some(Ok(FeedEvent::Batch(batch))) => notifications(&collection, batch),
                    Some(Ok(FeedEvent::Reset { seq, .. })) => {
                        let changed = schema_changed(&collection, seq);
                        let _ = socket.send(changed).await;
                        close(&mut socket, CLOSE_RESET, "the change feed was reset; subscribe again").await;
                        return;
                    }
                    Some(Ok(_)) => Vec::new(),
                    Some(Err(error)) => {
                        close(&mut socket, 1008, &public_message(&error)).await;
                        return;
                    }
                    None => {
                        subscriptions.0.remove(index);
                        Vec::new()
                    }
                }
            }
            _ = ping.tick() => {
                if answered.elapsed() > PONG_DEADLINE {
                    return;
                }
                vec![Message::Ping(Default::default())]
            }
            () = stopped(&mut stopping) => {
                close(&mut socket, 1001, "the server is stopping").await;
                return;
            }
        };
        for message in outgoing {
            if socket.send(message).await.is_err() {
                return;
            }
        }
    }
}

fn error_frame(message_id: Option<&str>, error: &Error) -> Message {
    let mut frame = json!({
        "type": "Error",
        "code": status_of(error.kind()).as_u16(),
        "message": public_message(error),
    });
    if let Some(id) = message_id {
        frame["messageId"] = json!(id);
    }
    text(frame)
}

fn success(message_id: Option<&str>, data: Value) -> Message {
    let mut frame = json!({"type": "Success", "payload": {"data": data}});
    if let Some(id) = message_id {
        frame["messageId"] = json!(id);
        frame["payload"]["messageId"] = json!(id);
    }
    text(frame)
}

/// Answers one client frame.
async fn request(actor: &Actor, subscriptions: &mut Subscriptions, frame: &str) -> Vec<Message> {
    let request: Request = match serde_json::from_str(frame) {
        Ok(request) => request,
        Err(_) => {
            return vec![error_frame(
                None,
                &Error::invalid("a frame is a JSON object with a `type`"),
            )];
        }
    };
    let id = request.message_id.as_deref();
    match request.kind.as_str() {
        "Hello" => vec![text_frame_welcome()],
        "Subscribe" => match subscribe(actor, subscriptions, request.payload).await {
            Ok(data) => vec![success(id, data)],
            Err(error) => vec![error_frame(id, &error)],
        },
        "Unsubscribe" => {
            let collection = request
                .payload
                .get("collection")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            subscriptions.0.retain(|(name, _)| *name != collection);
            vec![success(
                id,
                json!({"unsubscribed": true, "collection": collection}),
            )]
        }
        "ChatSend" => {
            // Routed by chat id, not by message id.
            let chat_id = request
                .payload
                .get("chat_id")
                .cloned()
                .unwrap_or(Value::Null);
            vec![text(json!({
                "type": "ChatStreamError",
                "payload": {"chat_id": chat_id, "error": "chat is not supported by larder"},
            }))]
        }
        other => vec![error_frame(
            id,
            &Error::unsupported(format!(
                "`{}` over the WebSocket is not supported by larder; use the REST routes",
                other.escape_debug()
            )),
        )],
    }
}

fn text_frame_welcome() -> Message {
    text(json!({"type": "Welcome", "payload": {"format": "json"}}))
}

/// Subscribes (or re-subscribes) the socket to a collection; the ack's data.
async fn subscribe(
    actor: &Actor,
    subscriptions: &mut Subscriptions,
    payload: Value,
) -> Result<Value> {
    let payload: SubscribePayload = serde_json::from_value(payload)
        .map_err(|_| Error::invalid("Subscribe needs a `collection`"))?;
    let filter = filter_of(payload.filter_field, payload.filter_value)?;
    let replaces = subscriptions
        .0
        .iter()
        .position(|(name, _)| *name == payload.collection);
    if replaces.is_none() && subscriptions.0.len() >= MAX_SUBSCRIPTIONS {
        return Err(Error::invalid(format!(
            "at most {MAX_SUBSCRIPTIONS} subscriptions per connection"
        )));
    }
    let (actor, name) = (actor.clone(), payload.collection.clone());
    let subscription = blocking(move || {
        actor
            .collection::<Value>(&name)
            .subscribe(filter, Since::Now)
    })
    .await?;
    let seq = subscription.cursor();
    let subscription_id = format!("sub_{}", crate::store::ids::random_hex(8)?);
    match replaces {
        Some(index) => subscriptions.0[index].1 = subscription,
        None => subscriptions
            .0
            .push((payload.collection.clone(), subscription)),
    }
    Ok(json!({
        "subscribed": true,
        "collection": payload.collection,
        "subscription_id": subscription_id,
        "seq": seq,
    }))
}

/// One `MutationNotification` per run of changes of one kind in the batch, in order.
fn notifications(collection: &str, batch: Batch) -> Vec<Message> {
    runs(collection, &batch)
        .into_iter()
        .map(|payload| text(json!({"type": "MutationNotification", "payload": payload})))
        .collect()
}

/// The batch as ekoDB notification payloads: consecutive changes of one kind together, their
/// records as the REST routes show them (one object, or an array for several).
fn runs(collection: &str, batch: &Batch) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut current: Option<(ChangeOp, Vec<&str>, Vec<Value>)> = None;
    let flush = |out: &mut Vec<Value>, run: Option<(ChangeOp, Vec<&str>, Vec<Value>)>| {
        let Some((op, ids, mut records)) = run else {
            return;
        };
        let mut payload = json!({
            "collection": collection,
            "event": op.as_str(),
            "record_ids": ids,
            "timestamp": batch.committed_at,
            "seq": batch.seq,
        });
        if op != ChangeOp::Delete {
            payload["records"] = if records.len() == 1 {
                records.pop().unwrap_or(Value::Null)
            } else {
                Value::Array(records)
            };
        }
        out.push(payload);
    };
    for change in &batch.changes {
        if current.as_ref().is_some_and(|(op, _, _)| *op != change.op) {
            flush(&mut out, current.take());
        }
        let run = current.get_or_insert_with(|| (change.op, Vec::new(), Vec::new()));
        run.1.push(&change.id);
        if let Some(doc) = &change.doc {
            run.2.push(record(doc, &[], &[]));
        }
    }
    flush(&mut out, current);
    out
}

fn schema_changed(collection: &str, seq: u64) -> Message {
    text(json!({
        "type": "SchemaChanged",
        "payload": {"collection": collection, "version": seq, "primary_key_alias": "id"},
    }))
}

/// The query of `/api/subscribe/{collection}`.
#[derive(Deserialize)]
pub(in crate::http) struct SubscribeQuery {
    #[serde(default)]
    filter_field: Option<String>,
    #[serde(default)]
    filter_value: Option<String>,
}

/// `GET /api/subscribe/{collection}`: the same notifications as server-sent events.
pub(in crate::http) async fn events(
    caller: Caller,
    Path(collection): Path<String>,
    UrlQuery(query): UrlQuery<SubscribeQuery>,
    stopping: Option<axum::Extension<Stopping>>,
) -> std::result::Result<Response, crate::http::ApiError> {
    let filter =
        filter_of(query.filter_field, query.filter_value.map(Value::String)).map_err(fail)?;
    let (actor, name) = (caller.actor(), collection.clone());
    let subscription = blocking(move || {
        actor
            .collection::<Value>(&name)
            .subscribe(filter, Since::Now)
    })
    .await
    .map_err(fail)?;
    Ok(event_stream(
        subscription,
        EkoFraming { collection },
        stopping,
    ))
}

/// ekoDB's server-sent events: `subscribed`, `mutation` (id: the sequence number), `heartbeat`,
/// `schema_changed` and `error`.
struct EkoFraming {
    collection: String,
}

impl Framing for EkoFraming {
    fn opened(&mut self, out: &mut String, subscription: &Subscription) {
        let data = json!({"collection": self.collection, "seq": subscription.cursor()});
        frame(out, None, "subscribed", &data);
    }

    fn event(&mut self, out: &mut String, event: FeedEvent) -> bool {
        match event {
            FeedEvent::Batch(batch) => {
                let payloads = runs(&self.collection, &batch);
                let last = payloads.len().saturating_sub(1);
                for (index, payload) in payloads.into_iter().enumerate() {
                    let id = (index == last).then(|| batch.seq.to_string());
                    frame(out, id.as_deref(), "mutation", &payload);
                }
                false
            }
            FeedEvent::Reset { seq, .. } => {
                let data = json!({"collection": self.collection, "version": seq, "primary_key_alias": "id"});
                frame(out, None, "schema_changed", &data);
                true
            }
            _ => false,
        }
    }

    fn error(&mut self, out: &mut String, error: &Error) {
        let data =
            json!({"code": status_of(error.kind()).as_u16(), "message": public_message(error)});
        frame(out, None, "error", &data);
    }

    fn heartbeat(&mut self, out: &mut String, cursor: u64) {
        frame(out, None, "heartbeat", &json!({"seq": cursor}));
    }
}
