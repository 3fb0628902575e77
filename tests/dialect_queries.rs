//! The three dialects' filter grammars compile to one filter tree with one meaning: the same
//! question asked through urBackend, Cocobase and ekoDB (and the Rust API) finds the same
//! documents, with or without an index on the field.
#![cfg(feature = "http")]

mod common;

use common::http::call;
use larder::{CollectionSpec, Db, Filter, KeyKind, NewApiKey, Query, ServerConfig};
use serde_json::{Value, json};

/// `posts` holds a list of tags, a single tag, or none; `n` tells the documents apart.
fn database(indexed: bool) -> (Db, axum::Router, String) {
    let db = Db::in_memory().unwrap();
    let spec = if indexed {
        CollectionSpec::new().index("tags")
    } else {
        CollectionSpec::new()
    };
    db.collections().create("posts", spec).unwrap();
    let posts = db.collection::<Value>("posts");
    for doc in [
        json!({"n": 1, "tags": ["a", "b"]}),
        json!({"n": 2, "tags": ["c"]}),
        json!({"n": 3, "tags": "a"}),
        json!({"n": 4}),
        json!({"n": 5, "tags": []}),
    ] {
        posts.insert(&doc).unwrap();
    }
    let admin = db
        .keys()
        .create(NewApiKey::new(KeyKind::Secret, "server"))
        .unwrap()
        .secret;
    let router = larder::router(db.clone(), &ServerConfig::default());
    (db, router, admin)
}

fn numbers(docs: &Value, door: &str) -> Vec<i64> {
    let mut found: Vec<i64> = docs
        .as_array()
        .unwrap_or_else(|| panic!("{door} answered no list: {docs}"))
        .iter()
        .map(|doc| {
            doc.get("data")
                .and_then(|d| d.get("n"))
                .or_else(|| doc.get("n"))
                .and_then(Value::as_i64)
                .unwrap_or_else(|| panic!("{door}: no n in {doc}"))
        })
        .collect();
    found.sort_unstable();
    found
}

/// `tags in [a, x]` and `tags not in [a, x]` through each door.
fn ask(router: &axum::Router, admin: &str, negated: bool) -> Vec<(&'static str, Vec<i64>)> {
    let key = [("x-api-key", admin)];
    let (cocobase_op, ekodb_op) = if negated {
        ("notin", "NotIn")
    } else {
        ("in", "In")
    };
    let mut answers = vec![
        (
            "cocobase",
            numbers(
                &call(
                    router,
                    "GET",
                    &format!("/collections/posts/documents?tags__{cocobase_op}=a,x"),
                    &key,
                    None,
                )
                .json,
                "cocobase",
            ),
        ),
        (
            "ekodb",
            numbers(
                &call(
                    router,
                    "POST",
                    "/api/find/posts",
                    &key,
                    Some(json!({"filter": {"type": "Condition", "content": {
                        "field": "tags", "operator": ekodb_op, "value": ["a", "x"]}}})),
                )
                .json,
                "ekodb",
            ),
        ),
    ];
    if !negated {
        // urBackend's grammar has `_in` and no negated form.
        let answer = call(router, "GET", "/api/data/posts?tags_in=a,x", &key, None);
        answers.push((
            "urbackend",
            numbers(&answer.json["data"]["items"], "urbackend"),
        ));
    }
    answers
}

#[test]
fn in_means_the_same_at_every_door_with_or_without_an_index() {
    for indexed in [false, true] {
        let (db, router, admin) = database(indexed);
        let posts = db.collection::<Value>("posts");
        let library = |filter: Filter| {
            let docs: Vec<Value> = posts
                .find(&Query::new().filter(filter))
                .unwrap()
                .into_iter()
                .map(|doc| doc.to_json())
                .collect();
            numbers(&Value::Array(docs), "library")
        };
        assert_eq!(
            library(Filter::is_in("tags", ["a", "x"])),
            [1, 3],
            "indexed: {indexed}"
        );
        assert_eq!(
            library(Filter::not_in("tags", ["a", "x"])),
            [2, 4, 5],
            "indexed: {indexed}"
        );
        for (door, found) in ask(&router, &admin, false) {
            assert_eq!(found, [1, 3], "{door}, indexed: {indexed}: in");
        }
        for (door, found) in ask(&router, &admin, true) {
            assert_eq!(found, [2, 4, 5], "{door}, indexed: {indexed}: not in");
        }
    }
}
