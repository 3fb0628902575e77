//! Secondary indexes: an indexed collection answers every query exactly like an unindexed one,
//! and stays right through inserts, replaces, patches, deletes and batches.

mod common;

use common::memory_db;
use larder::{Aggregate, Collection, CollectionSpec, Db, Filter, Query};
use serde_json::{Value, json};

/// Two collections with the same documents, one indexed on `v`, `nested.n` and `created_at`.
fn twins(db: &Db) -> (Collection, Collection) {
    db.collections()
        .create("plain", CollectionSpec::new())
        .unwrap();
    db.collections()
        .create(
            "indexed",
            CollectionSpec::new()
                .index("v")
                .index("nested.n")
                .index("created_at"),
        )
        .unwrap();
    (db.collection("plain"), db.collection("indexed"))
}

fn values() -> Vec<Value> {
    vec![
        json!(null),
        json!(true),
        json!(false),
        json!(0),
        json!(-3),
        json!(2.5),
        json!(10),
        json!(9_007_199_254_740_993_i64),
        json!(9_007_199_254_740_992_i64),
        json!("10"),
        json!("2"),
        json!("a"),
        json!("True"),
        json!(""),
        json!("a\u{0}"),
        json!([1, 2]),
        json!({"k": 1}),
    ]
}

fn fill(plain: &Collection, indexed: &Collection, clock: &larder::ManualClock) {
    let vals = values();
    for i in 0..120 {
        let mut doc = serde_json::Map::new();
        doc.insert("id".into(), json!(format!("d{i:03}")));
        if i % 7 != 0 {
            doc.insert("v".into(), vals[i % vals.len()].clone());
        }
        doc.insert("nested".into(), json!({"n": (i * 37) % 11}));
        doc.insert("i".into(), json!(i));
        let doc = Value::Object(doc);
        plain.insert(&doc).unwrap();
        indexed.insert(&doc).unwrap();
        if i % 3 == 0 {
            clock.advance(std::time::Duration::from_millis(1));
        }
    }
}

fn filters() -> Vec<Filter> {
    let mut out = vec![Filter::All];
    for v in values().into_iter().chain([
        json!("1"),
        json!("0"),
        json!(1),
        json!("2.5"),
        json!("false"),
    ]) {
        out.push(Filter::eq("v", v.clone()));
        out.push(Filter::gt("v", v.clone()));
        out.push(Filter::gte("v", v.clone()));
        out.push(Filter::lt("v", v.clone()));
        out.push(Filter::lte("v", v.clone()));
        out.push(Filter::gt("v", v.clone()).and(Filter::lt("v", 10)));
    }
    out.push(Filter::is_in(
        "v",
        [json!(0), json!("2"), json!(true), json!("a")],
    ));
    out.push(Filter::is_in("v", [json!("10"), json!(10)]));
    out.push(Filter::is_null("v"));
    out.push(Filter::eq("nested.n", 3).and(Filter::gte("i", 50)));
    out.push(Filter::gte("nested.n", "4").and(Filter::lte("nested.n", 6)));
    out.push(Filter::eq("v", 10).or(Filter::eq("nested.n", 1)));
    out.push(Filter::gte("created_at", "2023-11-14T22:13:20.010Z"));
    out.push(!Filter::eq("v", "a"));
    out
}

fn queries() -> Vec<Query> {
    let mut out = Vec::new();
    for filter in filters() {
        out.push(Query::new().filter(filter.clone()));
        out.push(Query::new().filter(filter.clone()).sort_asc("v"));
        out.push(Query::new().filter(filter.clone()).sort_desc("v").limit(7));
        out.push(
            Query::new()
                .filter(filter.clone())
                .sort_asc("v")
                .offset(3)
                .limit(5),
        );
        out.push(
            Query::new()
                .filter(filter.clone())
                .sort_desc("nested.n")
                .sort_asc("i")
                .limit(9),
        );
        out.push(
            Query::new()
                .filter(filter.clone())
                .sort_desc("created_at")
                .limit(4),
        );
        out.push(Query::new().filter(filter).offset(2).limit(3));
    }
    out
}

fn assert_same(plain: &Collection, indexed: &Collection) {
    for query in queries() {
        let a: Vec<String> = plain
            .find(&query)
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        let b: Vec<String> = indexed
            .find(&query)
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(a, b, "{query:?}");
    }
    for filter in filters() {
        assert_eq!(
            plain.count(&filter).unwrap(),
            indexed.count(&filter).unwrap(),
            "{filter:?}"
        );
        let sum = Aggregate::Sum("i".into());
        assert_eq!(
            plain.aggregate(&sum, &filter).unwrap(),
            indexed.aggregate(&sum, &filter).unwrap(),
            "{filter:?}"
        );
    }
}

#[test]
fn indexed_queries_answer_exactly_like_scans() {
    let (db, clock) = memory_db();
    let (plain, indexed) = twins(&db);
    fill(&plain, &indexed, &clock);
    assert_same(&plain, &indexed);
}

#[test]
fn indexes_follow_every_kind_of_write() {
    let (db, clock) = memory_db();
    let (plain, indexed) = twins(&db);
    fill(&plain, &indexed, &clock);
    for c in [&plain, &indexed] {
        c.replace("d001", &json!({"v": "replaced", "nested": {"n": 100}}))
            .unwrap();
        c.patch("d002", &json!({"v": null})).unwrap();
        c.patch("d003", &json!({"nested": {"n": -1}})).unwrap();
        c.patch("d004", &json!({"v": 10})).unwrap();
        c.delete("d005").unwrap();
        c.delete_many(&["d006", "d010"]).unwrap();
        c.patch_many(&[
            ("d011".into(), json!({"v": 2})),
            ("d012".into(), json!({"v": "2"})),
        ])
        .unwrap();
        c.insert_many(&[json!({"id": "new1", "v": 2}), json!({"id": "new2"})])
            .unwrap();
        // A failing batch must not leave index entries behind.
        assert!(
            c.insert_many(&[json!({"id": "ghost", "v": 2}), json!({"id": "new1"})])
                .is_err()
        );
    }
    clock.advance(std::time::Duration::from_secs(1));
    assert_same(&plain, &indexed);
    assert_eq!(indexed.count(&Filter::eq("v", "replaced")).unwrap(), 1);
    assert_eq!(indexed.count(&Filter::eq("id", "ghost")).unwrap(), 0);
}

#[test]
fn an_index_added_later_is_backfilled() {
    let (db, clock) = memory_db();
    let (plain, indexed) = twins(&db);
    db.collections()
        .update("indexed", CollectionSpec::new())
        .unwrap();
    fill(&plain, &indexed, &clock);
    db.collections()
        .update(
            "indexed",
            CollectionSpec::new()
                .index("v")
                .index("nested.n")
                .index("created_at"),
        )
        .unwrap();
    assert_same(&plain, &indexed);
}

#[test]
fn large_integers_beyond_f64_precision_are_told_apart() {
    let (db, clock) = memory_db();
    let (plain, indexed) = twins(&db);
    fill(&plain, &indexed, &clock);
    let exact = Filter::eq("v", 9_007_199_254_740_993_i64);
    let a = indexed.find(&Query::new().filter(exact.clone())).unwrap();
    assert!(!a.is_empty());
    assert!(
        a.iter()
            .all(|d| d.data["v"] == json!(9_007_199_254_740_993_i64))
    );
    assert_eq!(a.len() as u64, plain.count(&exact).unwrap());
    let above = Filter::gt("v", 9_007_199_254_740_992_i64);
    assert_eq!(indexed.count(&above).unwrap(), plain.count(&above).unwrap());
}

#[test]
fn indexed_sort_with_limit_returns_the_top_documents() {
    let (db, _) = memory_db();
    db.collections()
        .create("scores", CollectionSpec::new().index("score"))
        .unwrap();
    let scores: Collection = db.collection("scores");
    let docs: Vec<Value> = (0..500)
        .map(|i| json!({"score": (i * 7919) % 500}))
        .collect();
    scores.insert_many(&docs).unwrap();
    let top = scores
        .find(&Query::new().sort_desc("score").limit(3))
        .unwrap();
    let top: Vec<&Value> = top.iter().map(|d| &d.data["score"]).collect();
    assert_eq!(top, [&json!(499), &json!(498), &json!(497)]);
    let page = scores
        .find(
            &Query::new()
                .filter(Filter::lt("score", 100))
                .sort_asc("score")
                .offset(10)
                .limit(2),
        )
        .unwrap();
    assert_eq!(page[0].data["score"], 10);
    assert_eq!(page[1].data["score"], 11);
}
