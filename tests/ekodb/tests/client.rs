//! The real ekoDB Rust client (`ekodb_client` 0.32.0) against larder's ekoDB dialect on
//! 127.0.0.1, in both of its wire formats: MessagePack (its default) and JSON.

use std::future::Future;
use std::time::Duration;

use ekodb_client::admin::{
    AdminClient, ApiKeyAction, CreateApiKeyRequest, PatchApiKeyCollectionPermissionsRequest,
    PermissionEdit, UpdateApiKeyCollectionPermissionsRequest, UpdateApiKeyKvPermissionsRequest,
};
use ekodb_client::options::{
    BatchDeleteOptions, BatchInsertOptions, BatchUpdateOptions, DeleteOptions, InsertOptions,
    UpdateOptions, UpsertOptions,
};
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

fn names_of(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            r.get_string("name")
                .expect("a record has a name")
                .to_owned()
        })
        .collect()
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
            // The structured health: storage fine, the file verified on open.
            let health = client.health_status().await;
            assert!(health.reachable && health.integrity_ok, "{health:?}");
            assert_eq!(health.status, "ok");

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

/// A team of five: name, age and team, for the operator and sort tests.
async fn seed_team(client: &Client, collection: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for (name, age, team) in [
        ("Ada", 36, "red"),
        ("Bob", 25, "blue"),
        ("Cyrus", 41, "red"),
        ("Dee", 25, "red"),
        ("Eve", 30, "blue"),
    ] {
        let mut record = person(name, age);
        record.insert("team", team);
        ids.push(id_of(
            &client.insert(collection, record, None).await.unwrap(),
        ));
    }
    ids
}

#[tokio::test]
async fn every_operator_projection_and_a_multi_key_sort_give_the_right_records() {
    let server = TestServer::start().unwrap();
    bounded(async {
        let client = client(&server, &server.admin_key, SerializationFormat::MessagePack);
        let ids = seed_team(&client, "team").await;
        let names = |query: QueryBuilder| {
            let client = client.clone();
            async move {
                names_of(
                    &client
                        .find("team", query.sort_asc("name").build(), None)
                        .await
                        .unwrap(),
                )
            }
        };
        assert_eq!(names(QueryBuilder::new().gt("age", 30)).await, ["Ada", "Cyrus"]);
        assert_eq!(names(QueryBuilder::new().lt("age", 30)).await, ["Bob", "Dee"]);
        assert_eq!(
            names(QueryBuilder::new().lte("age", 30)).await,
            ["Bob", "Dee", "Eve"]
        );
        assert_eq!(
            names(QueryBuilder::new().nin("team", vec!["blue".into()])).await,
            ["Ada", "Cyrus", "Dee"]
        );
        assert_eq!(
            names(QueryBuilder::new().contains("name", "e")).await,
            ["Dee", "Eve"]
        );
        assert_eq!(
            names(QueryBuilder::new().ends_with("name", "us")).await,
            ["Cyrus"]
        );
        let not_red = serde_json::json!({"type": "Condition", "content": {"field": "team", "operator": "Eq", "value": "red"}});
        assert_eq!(
            names(QueryBuilder::new().not(not_red)).await,
            ["Bob", "Eve"]
        );

        // By team ascending, then by age descending within a team.
        let sorted = QueryBuilder::new()
            .sort_asc("team")
            .sort_desc("age")
            .build();
        let records = client.find("team", sorted, None).await.unwrap();
        assert_eq!(names_of(&records), ["Eve", "Bob", "Cyrus", "Ada", "Dee"]);
        // The second key breaks the first key's ties: the two 25-year-olds by name, descending.
        let sorted = QueryBuilder::new()
            .sort_asc("age")
            .sort_desc("name")
            .build();
        let records = client.find("team", sorted, None).await.unwrap();
        assert_eq!(names_of(&records), ["Dee", "Bob", "Eve", "Ada", "Cyrus"]);

        let without_team = QueryBuilder::new()
            .eq("name", "Eve")
            .exclude_fields(vec!["team".into()])
            .build();
        let found = client.find("team", without_team, None).await.unwrap();
        assert_eq!(found.len(), 1);
        assert!(found[0].get("team").is_none(), "the excluded field is gone");
        assert_eq!(age_of(&found[0]), 30);
        assert_eq!(id_of(&found[0]), ids[4], "the id is always kept");

        let projected = client
            .find_by_id_with_projection("team", &ids[0], None, Some(vec!["team".into()]))
            .await
            .unwrap();
        assert_eq!(projected.get_string("name"), Some("Ada"));
        assert_eq!(age_of(&projected), 36);
        assert!(projected.get("team").is_none());
    })
    .await;
}

#[tokio::test]
async fn the_convenience_reads_find_one_exists_paginate_find_all_and_list_user_collections() {
    let server = TestServer::start().unwrap();
    bounded(async {
        let client = client(&server, &server.admin_key, SerializationFormat::MessagePack);
        let ids = seed_team(&client, "team").await;

        let eve = client.find_one("team", "name", "Eve").await.unwrap();
        assert_eq!(age_of(&eve.expect("Eve is found")), 30);
        assert!(
            client
                .find_one("team", "name", "Zed")
                .await
                .unwrap()
                .is_none()
        );

        assert!(client.exists("team", &ids[1]).await.unwrap());
        assert!(!client.exists("team", "no-such-id").await.unwrap());

        let everyone = client.find_all("team", 100).await.unwrap();
        assert_eq!(everyone.len(), 5);
        assert!(
            everyone[0].get("team").is_some(),
            "find_all's empty field lists keep every field"
        );
        assert_eq!(client.find_all("team", 3).await.unwrap().len(), 3);

        // Pages of two, one-based: together they are every record, once, in find_all's order.
        let mut paged = Vec::new();
        for page in 1..=3 {
            let records = client.paginate("team", page, 2).await.unwrap();
            assert_eq!(records.len(), if page < 3 { 2 } else { 1 }, "page {page}");
            paged.extend(records.iter().map(id_of));
        }
        assert_eq!(paged, everyone.iter().map(id_of).collect::<Vec<_>>());
        assert!(client.paginate("team", 4, 2).await.unwrap().is_empty());

        client.insert("notes", person("N", 1), None).await.unwrap();
        let mut listed = client.list_user_collections().await.unwrap();
        listed.sort();
        assert_eq!(listed, ["notes", "team"]);
    })
    .await;
}

#[tokio::test]
async fn upsert_and_a_null_field_in_both_formats() {
    let server = TestServer::start().unwrap();
    bounded(async {
        for format in FORMATS {
            let name = format!("upsert_{format:?}").to_lowercase();
            let client = client(&server, &server.admin_key, format);
            // Admin keys create collections on their first insert.
            client.insert(&name, person("Seed", 1), None).await.unwrap();

            // A miss inserts under the caller's id; a hit merges into the record.
            let mut ada = person("Ada", 36);
            ada.insert("city", "London");
            let inserted = client.upsert(&name, "ada-1", ada, None).await.unwrap();
            assert_eq!(id_of(&inserted), "ada-1");
            let mut older = Record::new();
            older.insert("age", 37i64);
            let options = UpsertOptions::new().bypass_ripple(true);
            let updated = client
                .upsert(&name, "ada-1", older, Some(options))
                .await
                .unwrap();
            assert_eq!(age_of(&updated), 37);
            assert_eq!(updated.get_string("name"), Some("Ada"));
            assert_eq!(client.count_documents(&name).await.unwrap(), 2);

            // An update is a JSON merge patch: null deletes the field.
            let mut no_city = Record::new();
            no_city.insert("city", FieldType::Null);
            let updated = client.update(&name, "ada-1", no_city, None).await.unwrap();
            assert!(updated.get("city").is_none(), "null deleted the field");
            let stored = client.find_by_id(&name, "ada-1", None).await.unwrap();
            assert!(stored.get("city").is_none());
            assert_eq!(stored.get_string("name"), Some("Ada"));
        }
    })
    .await;
}

#[tokio::test]
async fn delete_and_batches_with_options_in_both_formats() {
    let server = TestServer::start().unwrap();
    bounded(async {
        for format in FORMATS {
            let name = format!("options_{format:?}").to_lowercase();
            let client = client(&server, &server.admin_key, format);
            let inserted = client
                .batch_insert_with_options(
                    &name,
                    vec![person("A", 1), person("B", 2), person("C", 3)],
                    BatchInsertOptions::new().bypass_ripple(true),
                )
                .await
                .unwrap();
            let ids: Vec<String> = inserted.iter().map(id_of).collect();
            assert_eq!(client.count_documents(&name).await.unwrap(), 3);

            let mut older = Record::new();
            older.insert("age", 20i64);
            let updated = client
                .batch_update_with_options(
                    &name,
                    vec![(ids[0].clone(), older.clone())],
                    BatchUpdateOptions::new().bypass_ripple(false),
                )
                .await
                .unwrap();
            assert_eq!(
                updated.iter().map(id_of).collect::<Vec<_>>(),
                [ids[0].clone()]
            );
            assert_eq!(
                age_of(&client.find_by_id(&name, &ids[0], None).await.unwrap()),
                20
            );

            client
                .delete_with_options(&name, &ids[2], DeleteOptions::new().bypass_ripple(true))
                .await
                .unwrap();
            assert!(!client.exists(&name, &ids[2]).await.unwrap());

            // Staged writes (a transaction_id) are refused, 400, and nothing changes.
            let staged = "t1";
            assert_eq!(
                status_of(
                    client
                        .batch_insert_with_options(
                            &name,
                            vec![person("T", 9)],
                            BatchInsertOptions::new().transaction_id(staged),
                        )
                        .await
                ),
                400
            );
            let mut changed = Record::new();
            changed.insert("age", 99i64);
            assert_eq!(
                status_of(
                    client
                        .batch_update_with_options(
                            &name,
                            vec![(ids[1].clone(), changed)],
                            BatchUpdateOptions::new().transaction_id(staged),
                        )
                        .await
                ),
                400
            );
            assert_eq!(
                status_of(
                    client
                        .batch_delete_with_options(
                            &name,
                            vec![ids[1].clone()],
                            BatchDeleteOptions::new().transaction_id(staged),
                        )
                        .await
                ),
                400
            );
            assert_eq!(
                status_of(
                    client
                        .delete_with_options(
                            &name,
                            &ids[1],
                            DeleteOptions::new().transaction_id(staged),
                        )
                        .await
                ),
                400
            );
            assert_eq!(client.count_documents(&name).await.unwrap(), 2);
            assert_eq!(
                age_of(&client.find_by_id(&name, &ids[1], None).await.unwrap()),
                2
            );

            // A batch delete naming an unknown id fails as a whole and deletes nothing.
            let with_unknown = vec![ids[0].clone(), "no-such-id".to_owned()];
            assert_eq!(
                status_of(
                    client
                        .batch_delete_with_options(&name, with_unknown, BatchDeleteOptions::new())
                        .await
                ),
                404
            );
            assert!(client.exists(&name, &ids[0]).await.unwrap());

            let deleted = client
                .batch_delete_with_options(
                    &name,
                    ids[..2].to_vec(),
                    BatchDeleteOptions::new().bypass_ripple(true),
                )
                .await
                .unwrap();
            assert_eq!(deleted, 2);
            assert_eq!(client.count_documents(&name).await.unwrap(), 0);
        }
    })
    .await;
}

#[tokio::test]
async fn field_actions_are_refused_with_a_clear_501_in_both_formats() {
    let server = TestServer::start().unwrap();
    bounded(async {
        for format in FORMATS {
            let name = format!("counters_{format:?}").to_lowercase();
            let client = client(&server, &server.admin_key, format);
            let id = id_of(&client.insert(&name, person("C", 1), None).await.unwrap());
            let single = client
                .update_with_action(&name, &id, "increment", "age", FieldType::Integer(1))
                .await;
            let sequence = client
                .update_with_action_sequence(
                    &name,
                    &id,
                    vec![("increment".into(), "age".into(), FieldType::Integer(1))],
                )
                .await;
            for refused in [single, sequence] {
                match refused {
                    Err(Error::Api { code, message }) => {
                        assert_eq!(code, 501);
                        assert!(
                            message.contains("atomic field actions are not supported"),
                            "{message}"
                        );
                    }
                    Err(other) => panic!("expected the 501, got {other:?}"),
                    Ok(_) => panic!("field actions are not served"),
                }
            }
            assert_eq!(
                age_of(&client.find_by_id(&name, &id, None).await.unwrap()),
                1,
                "nothing changed"
            );
        }
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
        let secret = id_of(&root.insert("secrets", person("S", 1), None).await.unwrap());
        let archived = id_of(
            &root
                .insert("archive", person("Old", 70), None)
                .await
                .unwrap(),
        );

        let admin = admin_client(&server, &server.admin_key);
        let created = admin
            .create_api_key(&CreateApiKeyRequest {
                label: Some("web app".into()),
                description: Some("reads and writes users".into()),
                is_admin: false,
                collection_permissions: [
                    (
                        "members".to_owned(),
                        vec![ApiKeyAction::Read, ApiKeyAction::Write],
                    ),
                    ("archive".to_owned(), vec![ApiKeyAction::Read]),
                ]
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
            // The write grant allows updates.
            let mut older = Record::new();
            older.insert("age", 21i64);
            let updated = scoped
                .update("members", &id_of(&mine), older.clone(), None)
                .await
                .unwrap();
            assert_eq!(age_of(&updated), 21);
            assert_eq!(updated.get_string("name"), Some("Web"));
            // A read grant alone does not: 403 (the client's `Error::Api`), nothing changes.
            match scoped
                .update("archive", &archived, older.clone(), None)
                .await
            {
                Err(Error::Api { code: 403, message }) => {
                    assert!(!message.is_empty() && !message.contains("not found"));
                }
                Err(other) => panic!("expected 403, got {other:?}"),
                Ok(_) => panic!("a read grant does not allow an update"),
            }
            assert_eq!(
                status_of(scoped.update("secrets", &secret, older, None).await),
                403
            );
            assert_eq!(
                status_of(
                    scoped
                        .batch_insert("secrets", vec![person("X", 1), person("Y", 2)], None)
                        .await
                ),
                403
            );
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
            let mut listed = scoped.list_collections().await.unwrap();
            listed.sort();
            assert_eq!(listed, ["archive", "members"]);
            assert_eq!(status_of(scoped.delete_collection("members").await), 403);
        }
        assert_eq!(root.count_documents("secrets").await.unwrap(), 1);
        for (collection, id, age) in [("secrets", &secret, 1), ("archive", &archived, 70)] {
            let untouched = root.find_by_id(collection, id, None).await.unwrap();
            assert_eq!(
                age_of(&untouched),
                age,
                "the refused update changed nothing"
            );
        }

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
                label: Some("editor".into()),
                collection_permissions: [(
                    "members".to_owned(),
                    vec![ApiKeyAction::Read, ApiKeyAction::Write],
                )]
                .into(),
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
                .any(|k| k.id == created.id && k.label.as_deref() == Some("editor"))
        );

        let scoped = client(&server, &created.key, SerializationFormat::MessagePack);
        assert_eq!(scoped.count_documents("members").await.unwrap(), 1);
        admin
            .revoke_api_key(created.id.as_deref().unwrap())
            .await
            .unwrap();
        // The cached token is refused on a MessagePack write route and on a JSON route, and so
        // is the key when the client asks for a new one.
        match scoped.insert("members", person("Late", 1), None).await {
            Err(Error::Authentication(message)) => assert!(message.contains("401"), "{message}"),
            Err(other) => panic!("a revoked key is refused, not {other:?}"),
            Ok(_) => panic!("a revoked key wrote a record"),
        }
        match scoped.count_documents("members").await {
            Err(Error::Authentication(message)) => assert!(message.contains("401"), "{message}"),
            other => panic!("a revoked key is refused, not {other:?}"),
        }
        assert_eq!(root.count_documents("members").await.unwrap(), 1);
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

        // The full-grant PATCH (read and write given, field lists as edited).
        let updated = admin
            .update_api_key_collection_permissions(&UpdateApiKeyCollectionPermissionsRequest {
                key_id: key_id.clone(),
                collection: "orders".into(),
                read: true,
                write: true,
                select_fields: PermissionEdit::Keep,
                exclude_fields: PermissionEdit::Set(vec!["margin".into()]),
                writable_fields: PermissionEdit::Keep,
            })
            .await
            .unwrap();
        let before = updated.before.unwrap();
        assert!(before.read && !before.write);
        assert_eq!(before.exclude_fields, None);
        let after = updated.after.unwrap();
        assert!(after.read && after.write);
        assert_eq!(after.exclude_fields, Some(vec!["margin".to_owned()]));
        assert_eq!(after.select_fields, None);
        let stored = admin
            .get_api_key_collection_permissions(&key_id, "orders")
            .await
            .unwrap();
        assert!(stored.write);
        assert_eq!(stored.exclude_fields, Some(vec!["margin".to_owned()]));

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
        // Removing it again finds no grant: 404 (the admin client's `Error::Api`).
        assert_eq!(
            status_of(
                admin
                    .delete_api_key_collection_permissions(&key_id, "invoices")
                    .await
            ),
            404
        );
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
        // Per-prefix KV grants are not served (no key-value store): 501. The admin client
        // keeps only the status, not the body's message.
        assert_eq!(
            status_of(admin.get_api_key_kv_permissions(&key_id, "sessions").await),
            501
        );
        let kv_grant = UpdateApiKeyKvPermissionsRequest {
            key_id: key_id.clone(),
            prefix: "sessions".into(),
            read: true,
            write: false,
        };
        assert_eq!(
            status_of(admin.put_api_key_kv_permissions(&kv_grant).await),
            501
        );
        assert_eq!(
            status_of(
                admin
                    .delete_api_key_kv_permissions(&key_id, "sessions")
                    .await
            ),
            501
        );
        assert_eq!(
            admin
                .list_api_key_collection_permissions(&key_id)
                .await
                .unwrap()
                .len(),
            1
        );
    })
    .await;
}

#[tokio::test]
async fn an_admin_key_created_by_an_admin_works_as_an_admin() {
    let server = TestServer::start().unwrap();
    bounded(async {
        let admin = admin_client(&server, &server.admin_key);
        let created = admin
            .create_api_key(&CreateApiKeyRequest {
                label: Some("second admin".into()),
                is_admin: true,
                ..CreateApiKeyRequest::default()
            })
            .await
            .unwrap();
        assert!(created.is_admin);
        assert!(created.key.starts_with("sk_live_"));

        for format in FORMATS {
            let name = format!("ledger_{format:?}").to_lowercase();
            let second = client(&server, &created.key, format);
            // Only administrators create collections, which the first insert does.
            let stored = second.insert(&name, person("L", 1), None).await.unwrap();
            assert_eq!(
                second
                    .find_by_id(&name, &id_of(&stored), None)
                    .await
                    .unwrap()
                    .get_string("name"),
                Some("L")
            );
            second.delete_collection(&name).await.unwrap();
            assert!(!second.collection_exists(&name).await.unwrap());
        }

        let second_admin = admin_client(&server, &created.key);
        assert!(second_admin.get_permissions().await.unwrap().is_admin);
        let made = second_admin
            .create_api_key(&CreateApiKeyRequest {
                label: Some("made by the second admin".into()),
                collection_permissions: [("notes".to_owned(), vec![ApiKeyAction::Read])].into(),
                ..CreateApiKeyRequest::default()
            })
            .await
            .unwrap();
        assert!(!made.is_admin);
        let listed = second_admin.list_api_keys().await.unwrap();
        assert_eq!(
            listed.len(),
            4,
            "the server's two keys and the two made here"
        );
        second_admin
            .revoke_api_key(made.id.as_deref().unwrap())
            .await
            .unwrap();
        assert_eq!(admin.list_api_keys().await.unwrap().len(), 3);
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
