//! Documents: insert, get, replace, merge patch, delete, batches, limits and refusals.

mod common;

use std::time::Duration;

use common::{is_invalid, kind, memory_db};
use larder::{Collection, CollectionSpec, Db, ErrorKind, Filter, Query};
use serde_json::{Value, json};

fn notes() -> (Db, larder::ManualClock, Collection) {
    let (db, clock) = memory_db();
    db.collections()
        .create("notes", CollectionSpec::new().index("tag"))
        .unwrap();
    let notes = db.collection("notes");
    (db, clock, notes)
}

/// Everything in the collection, for "nothing changed" assertions.
fn snapshot(c: &Collection) -> Vec<larder::Doc> {
    c.find(&Query::new()).unwrap()
}

#[test]
fn insert_assigns_a_uuid_v7_and_timestamps_from_the_clock() {
    let (_, _, notes) = notes();
    let doc = notes.insert(&json!({"text": "hi", "tag": "a"})).unwrap();
    let id = uuid::Uuid::parse_str(&doc.id).unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert_eq!(doc.created_at, "2023-11-14T22:13:20.000000+00:00");
    assert_eq!(doc.updated_at, doc.created_at);
    assert_eq!(doc.data, json!({"text": "hi", "tag": "a"}));
    assert_eq!(notes.get(&doc.id).unwrap().unwrap(), doc);
}

#[test]
fn generated_ids_follow_insertion_order() {
    let (_, _, notes) = notes();
    let ids: Vec<String> = (0..200)
        .map(|i| notes.insert(&json!({"i": i})).unwrap().id)
        .collect();
    let listed: Vec<String> = snapshot(&notes).into_iter().map(|d| d.id).collect();
    assert_eq!(listed, ids, "same-millisecond ids stay ordered");
}

#[test]
fn a_chosen_id_is_used_and_never_overwritten() {
    let (_, _, notes) = notes();
    let doc = notes.insert(&json!({"id": "my-note_1", "v": 1})).unwrap();
    assert_eq!(doc.id, "my-note_1");
    assert_eq!(
        doc.data,
        json!({"v": 1}),
        "the id is not stored in the data"
    );
    assert!(matches!(
        kind(notes.insert(&json!({"id": "my-note_1", "v": 2}))),
        ErrorKind::AlreadyExists { .. }
    ));
    assert_eq!(notes.get("my-note_1").unwrap().unwrap().data["v"], 1);

    let again = notes.insert_with_id("other", &json!({"v": 3})).unwrap();
    assert_eq!(again.id, "other");
    assert!(is_invalid(notes.insert_with_id("x", &json!({"id": "y"}))));
}

#[test]
fn malformed_ids_and_server_managed_fields_are_refused() {
    let (_, _, notes) = notes();
    for bad in [
        json!({"id": "../etc"}),
        json!({"id": ""}),
        json!({"id": 5}),
        json!({"id": "a b"}),
    ] {
        assert!(is_invalid(notes.insert(&bad)), "{bad}");
    }
    assert!(is_invalid(
        notes.insert(&json!({"created_at": "2020-01-01"}))
    ));
    assert!(is_invalid(notes.insert(&json!({"updated_at": 1}))));
    // null means "not given"
    notes
        .insert(&json!({"id": null, "created_at": null, "x": 1}))
        .unwrap();
    assert_eq!(snapshot(&notes).len(), 1);
}

#[test]
fn only_objects_are_documents() {
    let (_, _, notes) = notes();
    for bad in [
        json!([1, 2]),
        json!("text"),
        json!(3),
        json!(null),
        json!(true),
    ] {
        assert!(is_invalid(notes.insert(&bad)), "{bad}");
    }
    assert!(snapshot(&notes).is_empty());
}

#[test]
fn get_of_an_unknown_id_is_none() {
    let (_, _, notes) = notes();
    assert!(notes.get("nope").unwrap().is_none());
    assert!(notes.get("not even / valid").unwrap().is_none());
}

#[test]
fn replace_keeps_id_and_created_at_and_moves_updated_at() {
    let (_, clock, notes) = notes();
    let doc = notes.insert(&json!({"a": 1, "b": 2})).unwrap();
    clock.advance(Duration::from_secs(60));
    let replaced = notes.replace(&doc.id, &json!({"c": 3})).unwrap();
    assert_eq!(replaced.id, doc.id);
    assert_eq!(replaced.created_at, doc.created_at);
    assert_eq!(replaced.updated_at, "2023-11-14T22:14:20.000000+00:00");
    assert_eq!(replaced.data, json!({"c": 3}));
    assert_eq!(notes.get(&doc.id).unwrap().unwrap(), replaced);
}

#[test]
fn updated_at_moves_forward_even_if_the_clock_does_not() {
    let (_, clock, notes) = notes();
    let doc = notes.insert(&json!({"a": 1})).unwrap();
    let first = notes.patch(&doc.id, &json!({"a": 2})).unwrap();
    clock.advance(Duration::ZERO);
    let second = notes.patch(&doc.id, &json!({"a": 3})).unwrap();
    assert!(first.updated_at > doc.updated_at);
    assert!(second.updated_at > first.updated_at);
}

#[test]
fn a_fetched_document_can_be_written_back() {
    let (_, _, notes) = notes();
    let doc = notes.insert(&json!({"a": 1})).unwrap();
    let mut flat = doc.to_json();
    flat["a"] = json!(2);
    let replaced = notes.replace(&doc.id, &flat).unwrap();
    assert_eq!(replaced.data, json!({"a": 2}));
    // but server-managed fields cannot be changed
    flat["created_at"] = json!("2000-01-01T00:00:00.000000+00:00");
    assert!(is_invalid(notes.replace(&doc.id, &flat)));
    assert!(is_invalid(notes.patch(&doc.id, &json!({"id": "other"}))));
    assert_eq!(notes.get(&doc.id).unwrap().unwrap().data, json!({"a": 2}));
}

#[test]
fn patch_is_a_json_merge_patch() {
    let (_, _, notes) = notes();
    let doc = notes
        .insert(&json!({"title": "t", "meta": {"a": 1, "b": 2}, "tags": ["x"], "gone": 1}))
        .unwrap();
    let patched = notes
        .patch(
            &doc.id,
            &json!({"meta": {"b": null, "c": 3}, "tags": ["y"], "gone": null, "new": true}),
        )
        .unwrap();
    assert_eq!(
        patched.data,
        json!({"title": "t", "meta": {"a": 1, "c": 3}, "tags": ["y"], "new": true})
    );
    assert!(is_invalid(notes.patch(&doc.id, &json!([1]))));
    assert!(is_invalid(notes.patch(&doc.id, &json!(null))));
}

#[test]
fn delete_returns_the_document_and_removes_it() {
    let (_, _, notes) = notes();
    let doc = notes.insert(&json!({"tag": "a"})).unwrap();
    assert_eq!(notes.delete(&doc.id).unwrap(), doc);
    assert!(notes.get(&doc.id).unwrap().is_none());
    assert_eq!(
        notes.count(&Filter::eq("tag", "a")).unwrap(),
        0,
        "index entry gone"
    );
    assert!(matches!(
        kind(notes.delete(&doc.id)),
        ErrorKind::NotFound { .. }
    ));
}

#[test]
fn missing_documents_are_not_found_on_update() {
    let (_, _, notes) = notes();
    assert!(matches!(
        kind(notes.replace("nope", &json!({}))),
        ErrorKind::NotFound { .. }
    ));
    assert!(matches!(
        kind(notes.patch("nope", &json!({}))),
        ErrorKind::NotFound { .. }
    ));
    assert!(snapshot(&notes).is_empty(), "an update never creates");
}

#[test]
fn documents_over_the_size_limit_are_refused() {
    let (db, _) = memory_db();
    let db = {
        drop(db);
        Db::builder().max_document_bytes(100).in_memory().unwrap()
    };
    db.collections().create("c", CollectionSpec::new()).unwrap();
    let c: Collection = db.collection("c");
    // {"s":"…"} is 8 bytes of JSON around the string.
    let fits = json!({"s": "x".repeat(92)});
    let doc = c.insert(&fits).unwrap();
    let too_big = json!({"s": "x".repeat(93)});
    assert_eq!(
        kind(c.insert(&too_big)),
        ErrorKind::TooLarge {
            what: "the document".into(),
            limit: 100
        }
    );
    assert!(matches!(
        kind(c.patch(&doc.id, &json!({"more": 1}))),
        ErrorKind::TooLarge { .. }
    ));
    assert_eq!(c.get(&doc.id).unwrap().unwrap().data, fits);
}

#[test]
fn the_default_limit_is_one_mebibyte() {
    let (_, _, notes) = notes();
    let big = json!({"s": "x".repeat(1024 * 1024)});
    assert!(matches!(
        kind(notes.insert(&big)),
        ErrorKind::TooLarge {
            limit: 1_048_576,
            ..
        }
    ));
    notes
        .insert(&json!({"s": "x".repeat(1024 * 1000)}))
        .unwrap();
}

#[test]
fn insert_many_is_all_or_nothing() {
    let (_, _, notes) = notes();
    let docs = notes
        .insert_many(&[json!({"tag": "a"}), json!({"id": "fixed", "tag": "b"})])
        .unwrap();
    assert_eq!(docs.len(), 2);
    let before = snapshot(&notes);

    let error = notes
        .insert_many(&[
            json!({"tag": "c"}),
            json!({"tag": "d"}),
            json!({"id": "fixed"}),
        ])
        .unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::AlreadyExists { what } if what.starts_with("item 2:"))
    );
    assert!(is_invalid(
        notes.insert_many(&[json!({"tag": "e"}), json!(7)])
    ));
    assert_eq!(snapshot(&notes), before, "a failing batch leaves nothing");
    assert_eq!(
        notes.count(&Filter::eq("tag", "c")).unwrap(),
        0,
        "nor index entries"
    );
}

#[test]
fn patch_many_is_all_or_nothing() {
    let (_, _, notes) = notes();
    let a = notes.insert(&json!({"n": 1})).unwrap();
    let b = notes.insert(&json!({"n": 2})).unwrap();
    let before = snapshot(&notes);
    let error = notes
        .patch_many(&[
            (a.id.clone(), json!({"n": 10})),
            ("missing".into(), json!({"n": 0})),
        ])
        .unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::NotFound { what } if what.starts_with("item 1:")));
    assert_eq!(snapshot(&notes), before);

    let patched = notes
        .patch_many(&[
            (a.id.clone(), json!({"n": 10})),
            (b.id.clone(), json!({"n": 20})),
        ])
        .unwrap();
    assert_eq!(patched[1].data, json!({"n": 20}));
    assert_eq!(notes.get(&a.id).unwrap().unwrap().data, json!({"n": 10}));
}

#[test]
fn delete_many_is_all_or_nothing() {
    let (_, _, notes) = notes();
    let a = notes.insert(&json!({"tag": "x"})).unwrap();
    let b = notes.insert(&json!({"tag": "x"})).unwrap();
    let before = snapshot(&notes);
    assert!(matches!(
        kind(notes.delete_many(&[a.id.as_str(), "missing"])),
        ErrorKind::NotFound { .. }
    ));
    assert_eq!(snapshot(&notes), before);
    // Deleting the same id twice in one batch fails the batch too.
    assert!(notes.delete_many(&[&a.id, &a.id]).is_err());
    assert_eq!(snapshot(&notes), before);
    let deleted = notes.delete_many(&[&a.id, &b.id]).unwrap();
    assert_eq!(deleted, before);
    assert_eq!(notes.count(&Filter::eq("tag", "x")).unwrap(), 0);
}

#[test]
fn documents_serialize_flat() {
    let (_, _, notes) = notes();
    let doc = notes.insert(&json!({"title": "x"})).unwrap();
    let flat: Value = serde_json::to_value(&doc).unwrap();
    assert_eq!(flat, doc.to_json());
    assert_eq!(flat["title"], "x");
    assert_eq!(flat["id"], json!(doc.id));
    assert_eq!(flat.as_object().unwrap().len(), 4);
}

#[test]
fn unicode_and_escapes_round_trip() {
    let (_, _, notes) = notes();
    let data = json!({"emoji": "🦀", "nul": "a\u{0}b", "quote": "\"", "keys \u{7f}": {"ü": [1.5e300, -0.0]}});
    let doc = notes.insert(&data).unwrap();
    assert_eq!(notes.get(&doc.id).unwrap().unwrap().data, data);
}

/// A list page and its total agree with `find` and `count`, whichever way the query runs: a
/// sort no index serves (counted in the same pass), an indexed filter, an indexed sort, none.
#[test]
fn find_page_gives_the_page_of_find_and_the_total_of_count() {
    let (_, clock, notes) = notes();
    for n in 0..120 {
        clock.advance(Duration::from_millis(1));
        notes
            .insert(&json!({"n": n, "tag": format!("t{}", n % 3)}))
            .unwrap();
    }
    let queries = [
        Query::new()
            .filter(Filter::gte("n", 30))
            .sort_desc("created_at")
            .limit(20),
        Query::new()
            .filter(Filter::eq("tag", "t1"))
            .sort_asc("n")
            .offset(5)
            .limit(10),
        Query::new().sort_desc("tag").limit(7),
        Query::new().filter(Filter::lt("n", 50)).limit(15),
        Query::new().offset(200).limit(10),
        Query::new(),
    ];
    for query in &queries {
        let (page, total) = notes.find_page(query).unwrap();
        assert_eq!(page, notes.find(query).unwrap(), "{query:?}");
        assert_eq!(total, notes.count(&query.filter).unwrap(), "{query:?}");
    }
    let (page, total) = notes.find_page(&queries[0]).unwrap();
    assert_eq!(total, 90);
    assert_eq!(page[0].data["n"], 119, "newest first");
}

/// Found by the `document_writes` fuzz target's nesting pieces: a document nested deeper than
/// the JSON parser's limit was stored, then could never be read again (nor any list over it).
#[test]
fn documents_nested_past_the_limit_are_refused_and_change_nothing() {
    let (_db, _clock, notes) = notes();
    let first = notes.insert(&json!({"title": "kept"})).unwrap();
    // `arrays` single-element arrays around a number.
    let nested = |arrays: usize| (0..arrays).fold(json!(1), |inner, _| json!([inner]));
    let before = snapshot(&notes);
    for body in [
        json!({"deep": nested(200)}),
        json!({"deep": nested(100)}), // 101 levels with the document itself
    ] {
        assert!(is_invalid(notes.insert(&body)));
        assert!(is_invalid(notes.patch(&first.id, &body)));
        assert!(is_invalid(notes.replace(&first.id, &body)));
    }
    assert_eq!(snapshot(&notes), before);
    // 100 levels, the document included, are fine and read back.
    let ok = notes.insert(&json!({"deep": nested(99)})).unwrap();
    assert_eq!(notes.get(&ok.id).unwrap().unwrap().data, ok.data);
    assert_eq!(notes.find(&Query::new()).unwrap().len(), 2);
}

/// Found by the `document_writes` fuzz target: serde_json's default float parser is not
/// correctly rounded, so some floats read back one unit in the last place off what was stored.
#[test]
fn floats_read_back_bit_exact() {
    let (_db, _clock, notes) = notes();
    for x in [
        1.0310382667271185e105_f64,
        0.1 + 0.2,
        2.2250738585072014e-308,
        1e-300,
        123456.789e10,
    ] {
        let doc = notes.insert(&json!({"x": x})).unwrap();
        let read = notes.get(&doc.id).unwrap().unwrap();
        assert_eq!(
            read.data["x"].as_f64().unwrap().to_bits(),
            x.to_bits(),
            "{x:e}"
        );
        assert_eq!(notes.count(&Filter::eq("x", x)).unwrap(), 1, "{x:e}");
    }
}
