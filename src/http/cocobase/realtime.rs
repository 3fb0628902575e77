//! Cocobase's realtime: the WebSocket `/realtime/collections/{name}` of the JS SDK's
//! `db.realtime.collection(name, filters)` (npm `cocobase` 1.6.0), on larder's change feed.
//!
//! The SDK sends one first frame, `{"api_key", "filters"?}`, and never a user token: as on
//! hosted Cocobase, a secret key watches everything and a publishable key is the anonymous
//! project client (only collections anyone may list). larder also reads an optional `"token"`
//! (a user's access token) so owner rules can apply, and `"since"` (a sequence number) to
//! resume. Errors are the hosted service's frames, then close code 1008.
//!
//! Unlike hosted Cocobase, deletes respect the filter and the rules (a watcher hears only of
//! documents it could see), a document that stops matching arrives as a `delete`, and events
//! never carry the collection's webhook URL or permissions. A reset of the feed sends
//! `{"event": "reset"}` and closes with 4409: the SDK reconnects and fires `onReconnect`, its
//! hook for reloading.

use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{document_view, query_of};
use crate::access::auth::Credentials;
use crate::data::feed::{Batch, ChangeOp, FeedEvent, Since, Subscription};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::http::realtime::{
    CLOSE_RESET, HEARTBEAT, MAX_FRAME, PONG_DEADLINE, close, stopped, text,
};
use crate::http::toolkit::{AppState, Stopping, blocking};

/// How long the first frame may take.
const FIRST_FRAME: Duration = Duration::from_secs(10);
/// The close code of every refusal (policy violation), as hosted Cocobase sends.
const REFUSED: u16 = 1008;

/// The first frame.
#[derive(Deserialize)]
struct Hello {
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    filters: Option<Map<String, Value>>,
    /// larder's extension: a user's access token, so owner rules apply.
    #[serde(default)]
    token: Option<String>,
    /// larder's extension: resume after this sequence number.
    #[serde(default)]
    since: Option<u64>,
}

/// `GET /realtime/collections/{name}`.
pub(in crate::http) async fn watch(
    State(state): State<AppState>,
    Path(name): Path<String>,
    upgrade: WebSocketUpgrade,
    stopping: Option<axum::Extension<Stopping>>,
) -> Response {
    let stopping = stopping.map(|axum::Extension(stopping)| stopping.0);
    upgrade
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| session(socket, state.db, name, stopping))
}

/// `/realtime/broadcast` and `/realtime/rooms/{id}`: messaging, not a change feed, and not
/// offered; told on the socket, as the SDK reads errors there.
pub(in crate::http) async fn messaging(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(|mut socket| async move {
        let _ = socket
            .send(text(
                json!({"error": "broadcast and rooms are not supported"}),
            ))
            .await;
        close(&mut socket, REFUSED, "not supported").await;
    })
}

/// `GET /realtime/rooms`: the room list of a feature larder does not offer.
pub(in crate::http) async fn rooms() -> std::result::Result<Response, crate::http::ApiError> {
    Err(super::fail(Error::unsupported(
        "realtime rooms are not supported by larder",
    )))
}

/// Ends a session with one of the hosted service's error frames.
async fn refuse(socket: &mut WebSocket, frame: Value) {
    let _ = socket.send(text(frame)).await;
    close(socket, REFUSED, "refused").await;
}

async fn session(
    mut socket: WebSocket,
    db: Db,
    name: String,
    mut stopping: Option<tokio::sync::watch::Receiver<bool>>,
) {
    let first = match tokio::time::timeout(FIRST_FRAME, socket.recv()).await {
        Err(_) => return refuse(&mut socket, json!({"error": "Authentication timeout"})).await,
        Ok(Some(Ok(Message::Text(text)))) => text,
        Ok(_) => return,
    };
    let Ok(hello) = serde_json::from_str::<Hello>(&first) else {
        return refuse(&mut socket, json!({"error": "API key is required"})).await;
    };
    let Some(api_key) = hello.api_key.filter(|key| !key.is_empty()) else {
        return refuse(&mut socket, json!({"error": "API key is required"})).await;
    };
    let credentials = Credentials {
        api_key: Some(&api_key),
        bearer: hello.token.as_deref(),
    };
    let Ok(principal) = db.authenticate_request(credentials) else {
        let frame = json!({"error": "Invalid API key", "error_detail": "Project not found"});
        return refuse(&mut socket, frame).await;
    };
    let filters = hello.filters.clone();
    let filter = match filter_of(filters.as_ref()) {
        Ok(filter) => filter,
        Err(error) => return refuse(&mut socket, json!({"error": error.to_string()})).await,
    };
    let since = hello.since.map_or(Since::Now, Since::Seq);
    let (actor, collection) = (db.acting_as(principal), name.clone());
    let opened = blocking(move || {
        let subscription = actor
            .collection::<Value>(&collection)
            .subscribe(filter, since)?;
        let created = db.collections().info(&collection)?.created_at;
        Ok((subscription, created))
    })
    .await;
    let Ok((mut subscription, created)) = opened else {
        let frame = json!({"error": "Collection not found or access denied"});
        return refuse(&mut socket, frame).await;
    };
    let mut connected = json!({
        "event": "connected",
        "collection_id": name,
        "seq": subscription.cursor(),
    });
    if let Some(filters) = filters {
        connected["filters"] = Value::Object(filters);
    }
    if socket.send(text(connected)).await.is_err() {
        return;
    }
    feed(
        &mut socket,
        &mut subscription,
        &name,
        &created,
        &mut stopping,
    )
    .await;
}

/// Moves the subscription's changes to the socket until either ends.
async fn feed(
    socket: &mut WebSocket,
    subscription: &mut Subscription,
    name: &str,
    created: &str,
    stopping: &mut Option<tokio::sync::watch::Receiver<bool>>,
) {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    let mut answered = Instant::now();
    loop {
        let outgoing: Vec<Message> = tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text_frame))) => pong(&text_frame).into_iter().collect(),
                Some(Ok(Message::Pong(_))) => {
                    answered = Instant::now();
                    Vec::new()
                }
                Some(Ok(Message::Binary(_) | Message::Ping(_))) => Vec::new(),
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            },
            event = subscription.recv() => match event {
                Some(Ok(FeedEvent::Batch(batch))) => events(name, created, batch),
                Some(Ok(FeedEvent::Reset { reason, seq, .. })) => {
                    let reset = json!({"event": "reset", "reason": reason.as_str(), "seq": seq});
                    let _ = socket.send(text(reset)).await;
                    close(socket, CLOSE_RESET, "the change feed was reset; reconnect").await;
                    return;
                }
                Some(Ok(_)) => Vec::new(),
                Some(Err(error)) => {
                    let message = crate::http::error::public_message(&error);
                    let _ = socket.send(text(json!({"error": message}))).await;
                    close(socket, REFUSED, "unauthenticated").await;
                    return;
                }
                None => return,
            },
            _ = ping.tick() => {
                if answered.elapsed() > PONG_DEADLINE {
                    return;
                }
                vec![Message::Ping(Default::default())]
            }
            () = stopped(stopping) => {
                close(socket, 1001, "the server is stopping").await;
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

/// The answer to a keepalive: the SDK's `{"type":"ping"}` and the hosted socket's raw `ping`.
fn pong(frame: &str) -> Option<Message> {
    if frame.trim() == "ping" {
        return Some(text(json!({"event": "pong"})));
    }
    let value: Value = serde_json::from_str(frame).ok()?;
    (value.get("type").and_then(Value::as_str) == Some("ping"))
        .then(|| text(json!({"type": "pong"})))
}

/// The filters of the first frame: the REST query grammar (`status`, `priority_gte`, …), with
/// JSON values compared by the stored type.
fn filter_of(filters: Option<&Map<String, Value>>) -> Result<crate::data::query::Filter> {
    let Some(filters) = filters else {
        return Ok(crate::data::query::Filter::All);
    };
    let params: Vec<(String, String)> = filters
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Value::String(text) => text.clone(),
                Value::Array(items) => items
                    .iter()
                    .map(|item| match item {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            (key.clone(), value)
        })
        .collect();
    if params.iter().any(|(key, _)| {
        matches!(
            key.as_str(),
            "limit" | "offset" | "sort" | "order" | "sort_by" | "sort_order"
        )
    }) {
        return Err(Error::invalid("filters take conditions only"));
    }
    Ok(query_of(&params)?.filter)
}

/// One event per change, as the SDK's watcher reads them.
fn events(name: &str, created: &str, batch: Batch) -> Vec<Message> {
    batch
        .changes
        .into_iter()
        .map(|change| {
            let event = match change.op {
                ChangeOp::Insert => "create",
                ChangeOp::Update => "update",
                ChangeOp::Delete => "delete",
            };
            let data = match change.doc {
                Some(doc) => document_view(name, created, doc),
                None => json!({"id": change.id}),
            };
            let mut frame = json!({
                "event": event,
                "collection_id": name,
                "data": data,
                "document": data,
                "seq": batch.seq,
            });
            if change.op == ChangeOp::Update
                && let Some(prev) = change.prev
            {
                frame["old_data"] = document_view(name, created, prev)["data"].clone();
            }
            text(frame)
        })
        .collect()
}
