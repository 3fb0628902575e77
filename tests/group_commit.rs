//! Group commit: concurrent writers share durable commits, every acknowledged write survives a
//! reopen, and a write that fails in a shared transaction takes nobody else's with it.

mod common;

use std::collections::BTreeSet;
use std::sync::Barrier;

use common::{TestDb, kind};
use larder::{CollectionSpec, ErrorKind, Query};
use serde_json::{Value, json};

const WRITERS: usize = 16;
const WRITES_EACH: usize = 40;

#[test]
fn sixteen_writers_each_keep_every_acknowledged_document_after_reopen() {
    let t = TestDb::new().with_collection("notes", CollectionSpec::new());
    let start = Barrier::new(WRITERS);
    let acknowledged: Vec<(String, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let notes = t.db.collection::<Value>("notes");
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    (0..WRITES_EACH)
                        .map(|i| {
                            let body = json!({"writer": writer, "i": i, "text": "x".repeat(i)});
                            let doc = notes.insert(&body).unwrap();
                            (doc.id, body)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(acknowledged.len(), WRITERS * WRITES_EACH);
    let ids: BTreeSet<&str> = acknowledged.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), acknowledged.len(), "every id is distinct");

    let t = t.reopen();
    let notes = t.db.collection::<Value>("notes");
    assert_eq!(
        notes.find(&Query::new()).unwrap().len(),
        acknowledged.len(),
        "nothing more, nothing less"
    );
    for (id, body) in &acknowledged {
        assert_eq!(&notes.get(id).unwrap().unwrap().data, body, "{id}");
    }
    drop(notes);
    assert!(t.db.check_integrity().unwrap());
}

/// Batches of three whose third document clashes write two documents before they fail: when
/// they share a transaction with other writers, the others' writes must still commit (run
/// again in a fresh transaction) and none of the failed batch's documents may remain.
#[test]
fn a_write_failing_after_writing_in_a_shared_commit_fails_alone() {
    let t = TestDb::new().with_collection("notes", CollectionSpec::new());
    let notes = t.db.collection::<Value>("notes");
    notes
        .insert_with_id("taken", &json!({"first": true}))
        .unwrap();
    let start = Barrier::new(WRITERS);
    let (good, bad): (Vec<Vec<String>>, Vec<usize>) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let notes = t.db.collection::<Value>("notes");
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    let mut good = Vec::new();
                    let mut failed = 0;
                    for i in 0..WRITES_EACH {
                        if writer % 2 == 0 {
                            let doc = notes
                                .insert(&json!({"writer": writer, "i": i, "good": true}))
                                .unwrap();
                            good.push(doc.id);
                        } else {
                            let batch = [
                                json!({"writer": writer, "i": i, "bad": 1}),
                                json!({"writer": writer, "i": i, "bad": 2}),
                                json!({"id": "taken", "bad": 3}),
                            ];
                            let error = kind(notes.insert_many(&batch));
                            assert!(
                                matches!(error, ErrorKind::AlreadyExists { .. }),
                                "{error:?}"
                            );
                            failed += 1;
                        }
                    }
                    (good, failed)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).unzip()
    });
    let good: Vec<String> = good.into_iter().flatten().collect();
    assert_eq!(good.len(), WRITERS / 2 * WRITES_EACH);
    assert_eq!(bad.iter().sum::<usize>(), WRITERS / 2 * WRITES_EACH);

    drop(notes);
    let t = t.reopen();
    let notes = t.db.collection::<Value>("notes");
    let all = notes.find(&Query::new()).unwrap();
    assert_eq!(all.len(), good.len() + 1, "the good documents and `taken`");
    assert!(all.iter().all(|doc| doc.data.get("bad").is_none()));
    for id in &good {
        assert!(notes.get(id).unwrap().is_some(), "{id}");
    }
}

/// Every read after an acknowledged write sees it, from any thread: acknowledgement means the
/// shared commit has ended.
#[test]
fn a_write_is_visible_to_every_reader_once_acknowledged() {
    let t = TestDb::new().with_collection("counters", CollectionSpec::new());
    let counters = t.db.collection::<Value>("counters");
    counters.insert_with_id("c", &json!({"n": 0})).unwrap();
    let start = Barrier::new(8);
    std::thread::scope(|scope| {
        for writer in 0..8 {
            let counters = t.db.collection::<Value>("counters");
            let start = &start;
            scope.spawn(move || {
                start.wait();
                for i in 0..25 {
                    let id = format!("w{writer}-{i}");
                    counters.insert_with_id(&id, &json!({"i": i})).unwrap();
                    assert!(counters.get(&id).unwrap().is_some(), "{id} read back");
                }
            });
        }
    });
    assert_eq!(counters.find(&Query::new()).unwrap().len(), 8 * 25 + 1);
}
