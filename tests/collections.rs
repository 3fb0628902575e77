//! Collections: create, get, list, update, delete, and every refusal.

mod common;

use common::{is_invalid, kind, memory_db};
use larder::{CollectionSpec, ErrorKind, Filter, Rule, Rules};
use serde_json::json;

#[test]
fn create_get_list_and_delete() {
    let (db, _) = memory_db();
    let spec = CollectionSpec::new()
        .index("author")
        .owner_field("owner_id")
        .hidden_field("secret")
        .rules(Rules {
            list: Rule::Public,
            view: Rule::Authenticated,
            create: Rule::Roles(vec!["editor".into()]),
            update: Rule::Owner,
            delete: Rule::Admin,
        });
    let created = db.create_collection("posts", spec.clone()).unwrap();
    assert_eq!(created.name, "posts");
    assert_eq!(created.spec, spec);
    assert_eq!(created.document_count, 0);
    assert!(created.created_at.ends_with("+00:00"));

    db.create_collection("comments", CollectionSpec::new())
        .unwrap();
    let names: Vec<String> = db
        .list_collections()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["comments", "posts"]);
    assert_eq!(db.collection_info("posts").unwrap().spec, spec);

    db.delete_collection("posts").unwrap();
    assert_eq!(
        kind(db.collection_info("posts")),
        ErrorKind::NotFound {
            what: "collection `posts`".into()
        }
    );
    assert_eq!(db.list_collections().unwrap().len(), 1);
}

#[test]
fn new_collections_are_admin_only_by_default() {
    let (db, _) = memory_db();
    let info = db.create_collection("c", CollectionSpec::new()).unwrap();
    assert_eq!(info.spec.rules.list, Rule::Admin);
    assert_eq!(info.spec.rules.create, Rule::Admin);
    assert_eq!(info.spec.rules.delete, Rule::Admin);
}

#[test]
fn names_are_checked_and_reserved_names_refused() {
    let (db, _) = memory_db();
    for bad in [
        "",
        "Users",
        "users",
        "_internal",
        "9lives",
        "has-dash",
        "white space",
        &"a".repeat(65),
    ] {
        assert!(
            is_invalid(db.create_collection(bad, CollectionSpec::new())),
            "{bad:?} should be refused"
        );
    }
    assert!(
        db.list_collections().unwrap().is_empty(),
        "nothing was created"
    );
    db.create_collection(&"a".repeat(64), CollectionSpec::new())
        .unwrap();
}

#[test]
fn creating_twice_is_a_conflict_and_keeps_the_first() {
    let (db, _) = memory_db();
    db.create_collection("c", CollectionSpec::new().index("a"))
        .unwrap();
    assert!(matches!(
        kind(db.create_collection("c", CollectionSpec::new())),
        ErrorKind::AlreadyExists { .. }
    ));
    assert_eq!(db.collection_info("c").unwrap().spec.indexes, ["a"]);
}

#[test]
fn bad_specs_are_refused() {
    let (db, _) = memory_db();
    for spec in [
        CollectionSpec::new().index(""),
        CollectionSpec::new().index("a..b"),
        CollectionSpec::new().index("a").index("a"),
        CollectionSpec::new().index("id"),
        CollectionSpec::new().owner_field("created_at"),
        CollectionSpec::new().hidden_field("x."),
    ] {
        assert!(
            is_invalid(db.create_collection("c", spec.clone())),
            "{spec:?}"
        );
    }
    assert!(db.list_collections().unwrap().is_empty());
}

#[test]
fn unknown_collections_are_not_found_everywhere() {
    let (db, _) = memory_db();
    let missing: larder::Collection = db.collection("missing");
    let not_found = |e: ErrorKind| matches!(e, ErrorKind::NotFound { .. });
    assert!(not_found(kind(missing.insert(&json!({})))));
    assert!(not_found(kind(missing.get("x"))));
    assert!(not_found(kind(missing.find(&larder::Query::new()))));
    assert!(not_found(kind(missing.count(&Filter::All))));
    assert!(not_found(kind(missing.delete("x"))));
    assert!(not_found(kind(db.delete_collection("missing"))));
    assert!(not_found(kind(
        db.update_collection("missing", CollectionSpec::new())
    )));
    // A malformed name through a handle is invalid input, not a lookup.
    let bad: larder::Collection = db.collection("Bad Name");
    assert!(is_invalid(bad.insert(&json!({}))));
}

#[test]
fn delete_drops_documents_and_indexes_in_one_go() {
    let (db, _) = memory_db();
    db.create_collection("c", CollectionSpec::new().index("k"))
        .unwrap();
    let c: larder::Collection = db.collection("c");
    for i in 0..20 {
        c.insert(&json!({"k": i % 3})).unwrap();
    }
    db.delete_collection("c").unwrap();
    // A new collection of the same name starts empty, with a fresh index.
    db.create_collection("c", CollectionSpec::new().index("k"))
        .unwrap();
    assert_eq!(c.count(&Filter::All).unwrap(), 0);
    assert_eq!(c.count(&Filter::eq("k", 1)).unwrap(), 0);
    assert!(
        c.find(&larder::Query::new().sort_asc("k").limit(5))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn update_adds_and_drops_indexes_over_existing_documents() {
    let (db, clock) = memory_db();
    db.create_collection("c", CollectionSpec::new()).unwrap();
    let c: larder::Collection = db.collection("c");
    for i in 0..30 {
        c.insert(&json!({"k": i % 5, "j": i})).unwrap();
    }
    clock.advance(std::time::Duration::from_secs(5));
    let info = db
        .update_collection("c", CollectionSpec::new().index("k"))
        .unwrap();
    assert_eq!(info.document_count, 30);
    assert!(info.updated_at > info.created_at);
    // The backfilled index answers like a scan.
    assert_eq!(c.count(&Filter::eq("k", 2)).unwrap(), 6);
    let sorted = c
        .find(&larder::Query::new().sort_desc("k").limit(3))
        .unwrap();
    assert!(sorted.iter().all(|d| d.data["k"] == 4));

    db.update_collection("c", CollectionSpec::new().index("j"))
        .unwrap();
    assert_eq!(db.collection_info("c").unwrap().spec.indexes, ["j"]);
    assert_eq!(c.count(&Filter::eq("k", 2)).unwrap(), 6);
    assert_eq!(c.count(&Filter::gte("j", 25)).unwrap(), 5);
}

#[test]
fn put_creates_then_updates() {
    let (db, _) = memory_db();
    db.put_collection("c", CollectionSpec::new()).unwrap();
    db.put_collection("c", CollectionSpec::new().index("x"))
        .unwrap();
    assert_eq!(db.collection_info("c").unwrap().spec.indexes, ["x"]);
    assert_eq!(db.list_collections().unwrap().len(), 1);
}
