//! The real ekoDB Rust client (`ekodb_client` 0.32.0) against larder's ekoDB dialect on
//! 127.0.0.1, in both of its wire formats: MessagePack (its default) and JSON.

use std::future::Future;
use std::time::Duration;

use ekodb_client::admin::{
    AdminClient, ApiKeyAction, CreateApiKeyRequest, PatchApiKeyCollectionPermissionsRequest,
    PermissionEdit, UpdateApiKeyCollectionPermissionsRequest,
};
use ekodb_client::options::{InsertOptions, UpdateOptions};
use ekodb_client::{Client, Error, FieldType, QueryBuilder, Record, SerializationFormat};
use larder::testing::TestServer;

const FORMATS: [SerializationFormat; 2] =
    [SerializationFormat::MessagePack, SerializationFormat::Json];

/// Every test is bounded: a hung server fails it instead of stalling the suite.
async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("the test finished within a minute")
}

/// A client as an app builds it, failing fast instead of retrying.
fn client(server: &TestServer, key: &str, format: SerializationFormat) -> Client {
    Client::builder()
        .base_url(server.url())
        .api_key(key)
        .timeout(Duration::from_secs(10))
        .should_retry(false)
        .serialization_format(format)
        .build()
        .unwrap()
}

fn admin_client(server: &TestServer, key: &str) -> AdminClient {
    AdminClient::with_timeout(&server.url(), key, Duration::from_secs(10)).unwrap()
}

fn person(name: &str, age: i64) -> Record {
    let mut record = Record::new();
    record.insert("name", name);
    record.insert("age", age);
    record
}

fn id_of(record: &Record) -> String {
    record
        .get_string("id")
        .expect("a record has an id")
        .to_owned()
}

fn age_of(record: &Record) -> i64 {
    match record.get("age") {
        Some(FieldType::Integer(age)) => *age,
        other => panic!("age is an integer, not {other:?}"),
    }
}

/// The status of a refused call (records themselves are not printed: an `ApiKey` holds a
/// secret and has no `Debug`).
fn status_of<T>(result: ekodb_client::Result<T>) -> u16 {
    match result {
        Err(Error::Api { code, .. }) => code,
        Err(Error::NotFound) => 404,
        Err(Error::TokenExpired) => 401,
        Err(other) => panic!("expected an API error, got {other:?}"),
        Ok(_) => panic!("expected an error, the call succeeded"),
    }
}

#[tokio::test]
async fn the_default_client_is_messagepack_and_works_unchanged() {
    let server = TestServer::start().unwrap();
    bounded(async {
        let client = Client::builder()
            .base_url(server.url())
            .api_key(&server.admin_key)
            .should_retry(false)
            .build()
            .unwrap();
        let stored = client
            .insert("people", person("Ada", 36), None)
            .await
            .unwrap();
        assert_eq!(stored.get_string("name"), Some("Ada"));
        assert_eq!(age_of(&stored), 36);
    })
    .await;
}

#[tokio::test]
async fn token_health_and_crud_in_both_formats() {
    let server = TestServer::start().unwrap();
    bounded(async {
        for format in FORMATS {
            let name = format!("people_{format:?}").to_lowercase();
            let client = client(&server, &server.admin_key, format);
            client.health().await.unwrap();

            let stored = client.insert(&name, person("Ada", 36), None).await.unwrap();
            let id = id_of(&stored);
            assert_eq!(stored.get_string("name"), Some("Ada"));

            let found = client.find_by_id(&name, &id, None).await.unwrap();
            assert_eq!(found.get_string("name"), Some("Ada"));
            assert_eq!(age_of(&found), 36);

            let mut change = Record::new();
            change.insert("age", 37i64);
            let updated = client.update(&name, &id, change, None).await.unwrap();
            assert_eq!(age_of(&updated), 37);
            assert_eq!(
                updated.get_string("name"),
                Some("Ada"),
                "an update is partial"
            );

            let options = UpdateOptions::new().select_fields(vec!["age".into()]);
            let mut change = Record::new();
            change.insert("city", "London");
            let projected = client
                .update(&name, &id, change, Some(options))
                .await
                .unwrap();
            assert_eq!(age_of(&projected), 37);
            assert!(projected.get("name").is_none() && projected.get("city").is_none());
            let only_name = client
                .find_by_id_with_projection(&name, &id, Some(vec!["name".into()]), None)
                .await
                .unwrap();
            assert_eq!(only_name.get_string("name"), Some("Ada"));
            assert!(only_name.get("age").is_none());

            // ekoDB transactions are not served: a staged write is refused, not committed.
            let staged = InsertOptions::new().transaction_id("t1");
            assert_eq!(
                status_of(client.insert(&name, person("T", 1), Some(staged)).await),
                400
            );

            // delete answers the deleted record; the client checks its shape.
            client.delete(&name, &id, None).await.unwrap();
            assert_eq!(status_of(client.find_by_id(&name, &id, None).await), 404);
            assert_eq!(status_of(client.delete(&name, &id, None).await), 404);
        }
    })
    .await;
}

#[tokio::test]
async fn queries_sort_numbers_as_numbers_and_count() {
    let server = TestServer::start().unwrap();
    bounded(async {
        let client = client(&server, &server.admin_key, SerializationFormat::MessagePack);
        for (name, age) in [("Nine", 9), ("Hundred", 100), ("Ten", 10), ("Zed", 42)] {
            client.insert("ages", person(name, age), None).await.unwrap();
        }
        let ascending = QueryBuilder::new().sort_asc("age").build();
        let ages: Vec<i64> = client
            .find("ages", ascending, None)
            .await
            .unwrap()
            .iter()
            .map(age_of)
            .collect();
        assert_eq!(ages, [9, 10, 42, 100]);

        let query = QueryBuilder::new()
            .gte("age", 10)
            .ne("name", "Zed")
            .sort_desc("age")
            .limit(1)
            .build();
        let page = client.find("ages", query, None).await.unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].get_string("name"), Some("Hundred"));

        let skipped = QueryBuilder::new().sort_asc("age").skip(1).limit(2).build();
        let ages: Vec<i64> = client
            .find("ages", skipped, None)
            .await
            .unwrap()
            .iter()
            .map(age_of)
            .collect();
        assert_eq!(ages, [10, 42]);

        let either = QueryBuilder::new()
            .or(vec![
                serde_json::json!({"type": "Condition", "content": {"field": "name", "operator": "StartsWith", "value": "T"}}),
                serde_json::json!({"type": "Condition", "content": {"field": "age", "operator": "In", "value": [9, 42]}}),
            ])
            .sort_asc("age")
            .build();
        let names: Vec<String> = client
            .find("ages", either, None)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get_string("name").unwrap().to_owned())
            .collect();
        assert_eq!(names, ["Nine", "Ten", "Zed"]);

        let projected = QueryBuilder::new()
            .eq("name", "Ten")
            .select_fields(vec!["name".into()])
            .build();
        let found = client.find("ages", projected, None).await.unwrap();
        assert_eq!(found[0].get_string("name"), Some("Ten"));
        assert!(found[0].get("age").is_none(), "only the selected fields");

        assert_eq!(client.count_documents("ages").await.unwrap(), 4);
        assert_eq!(client.count_documents("never_written").await.unwrap(), 0);

        let unknown = QueryBuilder::new()
            .raw_filter(serde_json::json!({"type": "Condition", "content": {"field": "a", "operator": "Like", "value": 1}}))
            .build();
        assert_eq!(status_of(client.find("ages", unknown, None).await), 400);
    })
    .await;
}

#[tokio::test]
async fn batches_in_both_formats() {
    let server = TestServer::start().unwrap();
    bounded(async {
        for format in FORMATS {
            let name = format!("batch_{format:?}").to_lowercase();
            let client = client(&server, &server.admin_key, format);
            let inserted = client
                .batch_insert(
                    &name,
                    vec![person("A", 1), person("B", 2), person("C", 3)],
                    None,
                )
                .await
                .unwrap();
            let ids: Vec<String> = inserted.iter().map(id_of).collect();
            assert_eq!(ids.len(), 3);

            let mut older = Record::new();
            older.insert("age", 20i64);
            let updated = client
                .batch_update(&name, vec![(ids[0].clone(), older)], None)
                .await
                .unwrap();
            assert_eq!(updated.len(), 1);
            assert_eq!(
                age_of(&client.find_by_id(&name, &ids[0], None).await.unwrap()),
                20
            );

            let deleted = client
                .batch_delete(&name, ids[1..].to_vec(), None)
                .await
                .unwrap();
            assert_eq!(deleted, 2);
            assert_eq!(client.count_documents(&name).await.unwrap(), 1);
        }
    })
    .await;
}

#[tokio::test]
async fn collections_are_listed_and_deleted() {
    let server = TestServer::start().unwrap();
    bounded(async {
        let client = client(&server, &server.admin_key, SerializationFormat::Json);
        client.insert("notes", person("N", 1), None).await.unwrap();
        assert!(
            client
                .list_collections()
                .await
                .unwrap()
                .contains(&"notes".to_owned())
        );
        assert!(client.collection_exists("notes").await.unwrap());
        client.delete_collection("notes").await.unwrap();
        assert!(!client.collection_exists("notes").await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn scoped_keys_are_allowed_what_they_were_granted_and_nothing_else() {
    let server = TestServer::start().unwrap();
    bounded(async {
        let root = client(&server, &server.admin_key, SerializationFormat::MessagePack);
        let existing = id_of(
            &root
                .insert("members", person("Root", 50), None)
                .await
                .unwrap(),
        );
        root.insert("secrets", person("S", 1), None).await.unwrap();

        let admin = admin_client(&server, &server.admin_key);
        let created = admin
            .create_api_key(&CreateApiKeyRequest {
                label: Some("web app".into()),
                description: Some("reads and writes users".into()),
                is_admin: false,
                collection_permissions: [(
                    "members".to_owned(),
                    vec![ApiKeyAction::Read, ApiKeyAction::Write],
                )]
                .into(),
            })
            .await
            .unwrap();
        let key_id = created.id.clone().expect("the new key has an id");
        assert_eq!(key_id.len(), 32);
        assert!(!created.is_admin);
        let grant = &created.collection_permissions["members"];
        assert!(grant.read && grant.write);

        for format in FORMATS {
            let scoped = client(&server, &created.key, format);
            let mine = scoped
                .insert("members", person("Web", 20), None)
                .await
                .unwrap();
            assert_eq!(
                scoped
                    .find_by_id("members", &existing, None)
                    .await
                    .unwrap()
                    .get_string("name"),
                Some("Root")
            );
            assert!(scoped.count_documents("members").await.unwrap() >= 2);
            // No delete grant, no grant on `secrets`: 403, and nothing changes.
            assert_eq!(
                status_of(scoped.delete("members", &id_of(&mine), None).await),
                403
            );
            assert_eq!(
                status_of(
                    scoped
                        .find("secrets", QueryBuilder::new().build(), None)
                        .await
                ),
                403
            );
            assert_eq!(
                status_of(scoped.insert("secrets", person("X", 1), None).await),
                403
            );
            assert_eq!(scoped.list_collections().await.unwrap(), ["members"]);
            assert_eq!(status_of(scoped.delete_collection("members").await), 403);
        }
        assert_eq!(root.count_documents("secrets").await.unwrap(), 1);

        // A scoped key cannot escalate: no keys, no grants, no listing.
        let scoped_admin = admin_client(&server, &created.key);
        let escalation = scoped_admin
            .create_api_key(&CreateApiKeyRequest {
                is_admin: true,
                ..CreateApiKeyRequest::default()
            })
            .await;
        assert_eq!(status_of(escalation), 403);
        assert_eq!(status_of(scoped_admin.list_api_keys().await), 403);
        let widen = scoped_admin
            .put_api_key_collection_permissions(&UpdateApiKeyCollectionPermissionsRequest {
                key_id: key_id.clone(),
                collection: "secrets".into(),
                read: true,
                write: true,
                select_fields: PermissionEdit::Keep,
                exclude_fields: PermissionEdit::Keep,
                writable_fields: PermissionEdit::Keep,
            })
            .await;
        assert_eq!(status_of(widen), 403);
        assert_eq!(admin.list_api_keys().await.unwrap().len(), 3);
    })
    .await;
}

#[tokio::test]
async fn listed_keys_never_show_their_secret_and_revocation_is_immediate() {
    let server = TestServer::start().unwrap();
    bounded(async {
        let root = client(&server, &server.admin_key, SerializationFormat::Json);
        root.insert("members", person("Root", 50), None)
            .await
            .unwrap();
        let admin = admin_client(&server, &server.admin_key);
        let created = admin
            .create_api_key(&CreateApiKeyRequest {
                label: Some("reader".into()),
                collection_permissions: [("members".to_owned(), vec![ApiKeyAction::Read])].into(),
                ..CreateApiKeyRequest::default()
            })
            .await
            .unwrap();
        let listed = admin.list_api_keys().await.unwrap();
        for key in &listed {
            assert_ne!(key.key, created.key);
            assert_ne!(key.key, server.admin_key);
            assert!(
                key.key.ends_with("..."),
                "a prefix stands in for the secret"
            );
        }
        assert!(
            listed
                .iter()
                .any(|k| k.id == created.id && k.label.as_deref() == Some("reader"))
        );

        let scoped = client(&server, &created.key, SerializationFormat::MessagePack);
        assert_eq!(scoped.count_documents("members").await.unwrap(), 1);
        admin
            .revoke_api_key(created.id.as_deref().unwrap())
            .await
            .unwrap();
        // The cached token is refused, and so is the key when the client asks for a new one.
        match scoped.count_documents("members").await {
            Err(Error::Authentication(message)) => assert!(message.contains("401"), "{message}"),
            other => panic!("a revoked key is refused, not {other:?}"),
        }
        assert_eq!(admin.list_api_keys().await.unwrap().len(), 2);
    })
    .await;
}

#[tokio::test]
async fn permissions_are_read_and_edited_with_before_and_after() {
    let server = TestServer::start().unwrap();
    bounded(async {
        let admin = admin_client(&server, &server.admin_key);
        assert!(admin.uses_key_permission_routes().await.unwrap());
        assert!(admin.get_permissions().await.unwrap().is_admin);

        let created = admin
            .create_api_key(&CreateApiKeyRequest {
                label: Some("reports".into()),
                collection_permissions: [("orders".to_owned(), vec![ApiKeyAction::Read])].into(),
                ..CreateApiKeyRequest::default()
            })
            .await
            .unwrap();
        let key_id = created.id.clone().unwrap();

        // The key reads its own permissions.
        let own = admin_client(&server, &created.key)
            .get_permissions()
            .await
            .unwrap();
        assert!(!own.is_admin);
        assert!(own.collection_permissions["orders"].read);
        assert!(!own.collection_permissions["orders"].write);

        let put = admin
            .put_api_key_collection_permissions(&UpdateApiKeyCollectionPermissionsRequest {
                key_id: key_id.clone(),
                collection: "invoices".into(),
                read: true,
                write: false,
                select_fields: PermissionEdit::Set(vec!["total".into()]),
                exclude_fields: PermissionEdit::Keep,
                writable_fields: PermissionEdit::Keep,
            })
            .await
            .unwrap();
        assert!(put.before.is_none());
        let after = put.after.unwrap();
        assert!(after.read && !after.write);
        assert_eq!(after.select_fields, Some(vec!["total".to_owned()]));

        let patched = admin
            .patch_api_key_collection_permissions(&PatchApiKeyCollectionPermissionsRequest {
                key_id: key_id.clone(),
                collection: "invoices".into(),
                write: Some(true),
                ..PatchApiKeyCollectionPermissionsRequest::default()
            })
            .await
            .unwrap();
        assert!(!patched.before.unwrap().write);
        let after = patched.after.unwrap();
        assert!(
            after.write && after.read,
            "a patch keeps what it leaves out"
        );
        assert_eq!(after.select_fields, Some(vec!["total".to_owned()]));

        let grants = admin
            .list_api_key_collection_permissions(&key_id)
            .await
            .unwrap();
        assert_eq!(grants.len(), 2);
        let one = admin
            .get_api_key_collection_permissions(&key_id, "orders")
            .await
            .unwrap();
        assert!(one.read);
        let by_id = admin.get_api_key_permissions(&key_id).await.unwrap();
        assert_eq!(by_id.collection_permissions.len(), 2);

        let removed = admin
            .delete_api_key_collection_permissions(&key_id, "invoices")
            .await
            .unwrap();
        assert!(removed.before.is_some() && removed.after.is_none());
        assert_eq!(
            status_of(
                admin
                    .get_api_key_collection_permissions(&key_id, "invoices")
                    .await
            ),
            404
        );
        assert!(
            admin
                .list_api_key_kv_permissions(&key_id, None)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn an_expired_token_is_refreshed_by_the_client_and_the_call_succeeds() {
    let server = TestServer::start().unwrap();
    bounded(async {
        let client = client(&server, &server.admin_key, SerializationFormat::MessagePack);
        client
            .insert("clock", person("Before", 1), None)
            .await
            .unwrap();
        // The server's clock moves past the token's lifetime; the client's does not, so it
        // sends the old token, gets a 401, exchanges its key again and retries once.
        server.clock.advance(Duration::from_secs(24 * 3600));
        client
            .insert("clock", person("After", 2), None)
            .await
            .unwrap();
        assert_eq!(client.count_documents("clock").await.unwrap(), 2);
    })
    .await;
}
