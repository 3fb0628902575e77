//! Collections: create, get, list, update, delete, and every refusal.

mod common;

use common::{is_invalid, kind, memory_db};
use larder::{
    BucketSpec, CollectionSpec, ErrorKind, Filter, Grant, KeyKind, NewApiKey, Rule, Rules,
};
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
    let created = db.collections().create("posts", spec.clone()).unwrap();
    assert_eq!(created.name, "posts");
    assert_eq!(created.spec, spec);
    assert_eq!(created.document_count, 0);
    assert!(created.created_at.ends_with("+00:00"));

    db.collections()
        .create("comments", CollectionSpec::new())
        .unwrap();
    let names: Vec<String> = db
        .collections()
        .list()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["comments", "posts"]);
    assert_eq!(db.collections().info("posts").unwrap().spec, spec);

    db.collections().delete("posts").unwrap();
    assert_eq!(
        kind(db.collections().info("posts")),
        ErrorKind::NotFound {
            what: "collection `posts`".into()
        }
    );
    assert_eq!(db.collections().list().unwrap().len(), 1);
}

#[test]
fn new_collections_are_admin_only_by_default() {
    let (db, _) = memory_db();
    let info = db.collections().create("c", CollectionSpec::new()).unwrap();
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
            is_invalid(db.collections().create(bad, CollectionSpec::new())),
            "{bad:?} should be refused"
        );
    }
    assert!(
        db.collections().list().unwrap().is_empty(),
        "nothing was created"
    );
    db.collections()
        .create(&"a".repeat(64), CollectionSpec::new())
        .unwrap();
}

#[test]
fn creating_twice_is_a_conflict_and_keeps_the_first() {
    let (db, _) = memory_db();
    db.collections()
        .create("c", CollectionSpec::new().index("a"))
        .unwrap();
    assert!(matches!(
        kind(db.collections().create("c", CollectionSpec::new())),
        ErrorKind::AlreadyExists { .. }
    ));
    assert_eq!(db.collections().info("c").unwrap().spec.indexes, ["a"]);
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
            is_invalid(db.collections().create("c", spec.clone())),
            "{spec:?}"
        );
    }
    assert!(db.collections().list().unwrap().is_empty());
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
    assert!(not_found(kind(db.collections().delete("missing"))));
    assert!(not_found(kind(
        db.collections().update("missing", CollectionSpec::new())
    )));
    // A malformed name through a handle is invalid input, not a lookup.
    let bad: larder::Collection = db.collection("Bad Name");
    assert!(is_invalid(bad.insert(&json!({}))));
}

#[test]
fn delete_drops_documents_and_indexes_in_one_go() {
    let (db, _) = memory_db();
    db.collections()
        .create("c", CollectionSpec::new().index("k"))
        .unwrap();
    let c: larder::Collection = db.collection("c");
    for i in 0..20 {
        c.insert(&json!({"k": i % 3})).unwrap();
    }
    db.collections().delete("c").unwrap();
    // A new collection of the same name starts empty, with a fresh index.
    db.collections()
        .create("c", CollectionSpec::new().index("k"))
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
    db.collections().create("c", CollectionSpec::new()).unwrap();
    let c: larder::Collection = db.collection("c");
    for i in 0..30 {
        c.insert(&json!({"k": i % 5, "j": i})).unwrap();
    }
    clock.advance(std::time::Duration::from_secs(5));
    let info = db
        .collections()
        .update("c", CollectionSpec::new().index("k"))
        .unwrap();
    assert_eq!(info.document_count, 30);
    assert!(info.updated_at > info.created_at);
    // The backfilled index answers like a scan.
    assert_eq!(c.count(&Filter::eq("k", 2)).unwrap(), 6);
    let sorted = c
        .find(&larder::Query::new().sort_desc("k").limit(3))
        .unwrap();
    assert!(sorted.iter().all(|d| d.data["k"] == 4));

    db.collections()
        .update("c", CollectionSpec::new().index("j"))
        .unwrap();
    assert_eq!(db.collections().info("c").unwrap().spec.indexes, ["j"]);
    assert_eq!(c.count(&Filter::eq("k", 2)).unwrap(), 6);
    assert_eq!(c.count(&Filter::gte("j", 25)).unwrap(), 5);
}

#[test]
fn put_creates_then_updates() {
    let (db, _) = memory_db();
    db.collections().put("c", CollectionSpec::new()).unwrap();
    db.collections()
        .put("c", CollectionSpec::new().index("x"))
        .unwrap();
    assert_eq!(db.collections().info("c").unwrap().spec.indexes, ["x"]);
    assert_eq!(db.collections().list().unwrap().len(), 1);
}

/// A collection with an index, a document holding an attached file, and a scoped key reading
/// it, all under the name `posts`.
struct Renamable {
    first: String,
    file: String,
    key_id: String,
    key_secret: String,
}

fn renamable(db: &larder::Db) -> Renamable {
    db.collections()
        .create("posts", CollectionSpec::new().index("author"))
        .unwrap();
    let posts: larder::Collection = db.collection("posts");
    let first = posts.insert(&json!({"author": "ada", "n": 1})).unwrap();
    posts.insert(&json!({"author": "bob", "n": 2})).unwrap();
    posts.insert(&json!({"author": "ada", "n": 3})).unwrap();
    db.buckets().create("att", BucketSpec::new()).unwrap();
    let mut upload = db.bucket("att").upload("a.png", "image/png").unwrap();
    upload.attach_to("posts", &first.id);
    upload.write(b"png").unwrap();
    let file = upload.finish().unwrap().name;
    let key = db
        .keys()
        .create(NewApiKey::new(KeyKind::Scoped, "reader").grant("posts", Grant::read()))
        .unwrap();
    Renamable {
        first: first.id,
        file,
        key_id: key.info.id,
        key_secret: key.secret,
    }
}

/// Everything of `Renamable` is still found under `name`.
fn assert_all_under(db: &larder::Db, name: &str, r: &Renamable) {
    let docs: larder::Collection = db.collection(name);
    // An equality filter and a sort on the indexed field.
    assert_eq!(docs.count(&Filter::eq("author", "ada")).unwrap(), 2);
    let sorted = docs
        .find(&larder::Query::new().sort_desc("author").limit(1))
        .unwrap();
    assert_eq!(sorted[0].data["author"], "bob");
    assert_eq!(
        db.bucket("att")
            .info(&r.file)
            .unwrap()
            .attached_to
            .as_deref(),
        Some(format!("{name}/{}", r.first).as_str())
    );
    let grants = db.keys().get(&r.key_id).unwrap().grants;
    assert_eq!(grants.keys().collect::<Vec<_>>(), [name]);
    let as_key: larder::Collection = db.with_key(&r.key_secret).unwrap().collection(name);
    assert_eq!(as_key.count(&Filter::All).unwrap(), 3);
}

#[test]
fn rename_moves_documents_indexes_files_and_grants() {
    let (db, clock) = memory_db();
    let r = renamable(&db);
    // The key's identity is cached with its grants before the rename.
    let before: larder::Collection = db.with_key(&r.key_secret).unwrap().collection("posts");
    assert_eq!(before.count(&Filter::All).unwrap(), 3);
    let created = db.collections().info("posts").unwrap();
    clock.advance(std::time::Duration::from_secs(5));

    let renamed = db.collections().rename("posts", "articles").unwrap();
    assert_eq!(renamed.name, "articles");
    assert_eq!(renamed.document_count, 3);
    assert_eq!(renamed.spec, created.spec);
    assert_eq!(renamed.created_at, created.created_at);
    assert!(renamed.updated_at > created.updated_at);
    assert_eq!(
        kind(db.collections().info("posts")),
        ErrorKind::NotFound {
            what: "collection `posts`".into()
        }
    );
    assert_all_under(&db, "articles", &r);
    let fresh: larder::Collection = db.with_key(&r.key_secret).unwrap().collection("posts");
    assert!(matches!(
        kind(fresh.count(&Filter::All)),
        ErrorKind::NotFound { .. } | ErrorKind::Forbidden { .. }
    ));

    // The file still goes with its document under the new name.
    let articles: larder::Collection = db.collection("articles");
    articles.delete(&r.first).unwrap();
    assert!(matches!(
        kind(db.bucket("att").info(&r.file)),
        ErrorKind::NotFound { .. }
    ));
}

#[test]
fn a_grant_on_the_new_name_does_not_survive_the_rename() {
    let (db, _) = memory_db();
    let r = renamable(&db);
    // A key granted `articles` before it existed must not reach the renamed `posts`.
    let early = db
        .keys()
        .create(NewApiKey::new(KeyKind::Scoped, "early").grant("articles", Grant::all()))
        .unwrap();
    db.collections().rename("posts", "articles").unwrap();
    assert!(db.keys().get(&early.info.id).unwrap().grants.is_empty());
    let early: larder::Collection = db.with_key(&early.secret).unwrap().collection("articles");
    assert!(early.count(&Filter::All).is_err());
    assert_all_under(&db, "articles", &r);
}

#[test]
fn refused_renames_change_nothing() {
    let (db, _) = memory_db();
    let r = renamable(&db);
    db.collections()
        .create("taken", CollectionSpec::new())
        .unwrap();
    let before = db.collections().list().unwrap();

    assert!(matches!(
        kind(db.collections().rename("posts", "taken")),
        ErrorKind::AlreadyExists { .. }
    ));
    assert!(matches!(
        kind(db.collections().rename("posts", "posts")),
        ErrorKind::AlreadyExists { .. }
    ));
    assert_eq!(
        kind(db.collections().rename("missing", "fresh")),
        ErrorKind::NotFound {
            what: "collection `missing`".into()
        }
    );
    for bad in ["users", "Posts", "9lives", "has-dash", ""] {
        assert!(is_invalid(db.collections().rename("posts", bad)), "{bad:?}");
        assert!(is_invalid(db.collections().rename(bad, "fresh")), "{bad:?}");
    }
    assert_eq!(db.collections().list().unwrap(), before);
    assert_all_under(&db, "posts", &r);
}

#[test]
fn a_rename_survives_reopening_the_file() {
    let t = common::TestDb::new();
    let r = renamable(&t.db);
    t.db.collections().rename("posts", "articles").unwrap();
    let t = t.reopen();
    let names: Vec<String> =
        t.db.collections()
            .list()
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
    assert_eq!(names, ["articles"]);
    assert_all_under(&t.db, "articles", &r);
    // The old name is free again, and starts empty.
    t.db.collections()
        .create("posts", CollectionSpec::new().index("author"))
        .unwrap();
    let posts: larder::Collection = t.db.collection("posts");
    assert_eq!(posts.count(&Filter::eq("author", "ada")).unwrap(), 0);
}
