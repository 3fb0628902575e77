//! The real ekoDB Rust client's realtime (`ekodb_client` 0.32.0) against larder: the
//! WebSocket (`connect_ws`, `subscribe`, `unsubscribe`) and the server-sent events
//! (`subscribe_sse`), fed by larder's change feed.

use std::future::Future;
use std::time::Duration;

use ekodb_client::websocket::MutationNotificationPayload;
use ekodb_client::{Client, Error, Record};
use larder::testing::TestServer;
use larder::{CollectionSpec, Grant, KeyKind, NewApiKey};
use tokio::sync::mpsc::Receiver;

async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("the test finished within a minute")
}

/// A server with an empty `orders` collection.
fn server_with_orders() -> TestServer {
    let server = TestServer::start().unwrap();
    server
        .db
        .collections()
        .create("orders", CollectionSpec::new())
        .unwrap();
    server
}

fn client(server: &TestServer, key: &str) -> Client {
    Client::builder()
        .base_url(server.url())
        .api_key(key)
        .timeout(Duration::from_secs(10))
        .should_retry(false)
        .build()
        .unwrap()
}

fn order(status: &str, n: i64) -> Record {
    let mut record = Record::new();
    record.insert("status", status);
    record.insert("n", n);
    record
}

async fn next(receiver: &mut Receiver<MutationNotificationPayload>) -> MutationNotificationPayload {
    tokio::time::timeout(Duration::from_secs(10), receiver.recv())
        .await
        .expect("a notification within 10 s")
        .expect("the subscription is open")
}

/// Nothing arrives for a moment (the absence of a notification).
async fn quiet(receiver: &mut Receiver<MutationNotificationPayload>) {
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(300), receiver.recv()).await
    {
        panic!("unexpected notification {extra:?}");
    }
}

fn id_of(record: &Record) -> String {
    record.get_string("id").unwrap().to_owned()
}

#[tokio::test]
async fn websocket_subscribers_receive_each_write_as_a_notification() {
    let server = server_with_orders();
    bounded(async {
        let client = client(&server, &server.admin_key);
        let ws = client.connect_ws().await.unwrap();
        let mut all = ws.subscribe("orders", None, None).await.unwrap();

        let stored = client
            .insert("orders", order("pending", 1), None)
            .await
            .unwrap();
        let id = id_of(&stored);
        let inserted = next(&mut all).await;
        assert_eq!(
            (inserted.collection.as_str(), inserted.event.as_str()),
            ("orders", "insert")
        );
        assert_eq!(inserted.record_ids, std::slice::from_ref(&id));
        let record = inserted.records.expect("the record comes along");
        assert_eq!(record["status"], "pending");
        assert_eq!(record["id"], id.as_str());

        client
            .update("orders", &id, order("shipped", 1), None)
            .await
            .unwrap();
        let updated = next(&mut all).await;
        assert_eq!(updated.event, "update");
        assert_eq!(updated.records.unwrap()["status"], "shipped");

        client.delete("orders", &id, None).await.unwrap();
        let deleted = next(&mut all).await;
        assert_eq!(
            (deleted.event.as_str(), deleted.record_ids),
            ("delete", vec![id])
        );
        assert!(deleted.records.is_none());

        // One transaction of three inserts is one notification with three ids.
        let batch = client
            .batch_insert(
                "orders",
                vec![order("a", 1), order("b", 2), order("c", 3)],
                None,
            )
            .await
            .unwrap();
        let together = next(&mut all).await;
        assert_eq!(together.record_ids.len(), 3);
        assert_eq!(
            together.record_ids,
            batch.iter().map(id_of).collect::<Vec<_>>()
        );
        assert_eq!(together.records.unwrap().as_array().unwrap().len(), 3);

        // Unsubscribing stops the notifications (the receiver ends).
        ws.unsubscribe("orders").await.unwrap();
        client
            .insert("orders", order("late", 9), None)
            .await
            .unwrap();
        let after = tokio::time::timeout(Duration::from_secs(5), all.recv()).await;
        assert!(matches!(after, Ok(None)), "{after:?}");
        ws.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_filtered_subscription_gets_only_matching_changes_deletes_included() {
    let server = server_with_orders();
    bounded(async {
        let client = client(&server, &server.admin_key);
        let ws = client.connect_ws().await.unwrap();
        let mut pending = ws
            .subscribe("orders", Some("status"), Some("pending"))
            .await
            .unwrap();
        let other = client
            .insert("orders", order("shipped", 1), None)
            .await
            .unwrap();
        client.delete("orders", &id_of(&other), None).await.unwrap();
        let wanted = client
            .insert("orders", order("pending", 2), None)
            .await
            .unwrap();
        let first = next(&mut pending).await;
        assert_eq!(
            first.record_ids,
            [id_of(&wanted)],
            "the shipped order and its delete are not this subscriber's"
        );
        // Leaving the filter is a delete for this subscriber.
        client
            .update("orders", &id_of(&wanted), order("shipped", 2), None)
            .await
            .unwrap();
        let left = next(&mut pending).await;
        assert_eq!(left.event, "delete");
        quiet(&mut pending).await;

        // A typed filter value: "2" matches the stored number 2.
        let mut by_number = ws.subscribe("orders", Some("n"), Some("2")).await.unwrap();
        client
            .update("orders", &id_of(&wanted), order("pending", 2), None)
            .await
            .unwrap();
        assert_eq!(next(&mut by_number).await.event, "update");
    })
    .await;
}

#[tokio::test]
async fn a_key_without_a_grant_cannot_subscribe() {
    let server = server_with_orders();
    let db = &server.db;
    db.collections()
        .create("notes", CollectionSpec::new())
        .unwrap();
    let scoped = db
        .keys()
        .create(NewApiKey::new(KeyKind::Scoped, "reports").grant("notes", Grant::read()))
        .unwrap()
        .secret;
    bounded(async {
        let client = client(&server, &scoped);
        let ws = client.connect_ws().await.unwrap();
        match ws.subscribe("orders", None, None).await {
            Err(Error::Api { code, .. }) => assert!(matches!(code, 403 | 404), "{code}"),
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
        // The same socket still serves what the key may read.
        let mut notes = ws.subscribe("notes", None, None).await.unwrap();
        server
            .db
            .collection::<serde_json::Value>("notes")
            .insert(&serde_json::json!({"text": "hi"}))
            .unwrap();
        assert_eq!(next(&mut notes).await.event, "insert");
    })
    .await;
}

#[tokio::test]
async fn server_sent_event_subscribers_receive_mutations() {
    let server = server_with_orders();
    bounded(async {
        let client = client(&server, &server.admin_key);
        let mut events = client
            .subscribe_sse("orders", Some("status"), Some("pending"))
            .await
            .unwrap();
        client
            .insert("orders", order("shipped", 1), None)
            .await
            .unwrap();
        let wanted = client
            .insert("orders", order("pending", 2), None)
            .await
            .unwrap();
        let event = next(&mut events).await;
        assert_eq!(
            (event.event.as_str(), event.record_ids),
            ("insert", vec![id_of(&wanted)])
        );
        assert_eq!(event.records.unwrap()["n"], 2);
    })
    .await;
}
