//! Queries: every filter operator with typed comparison, dotted paths, multi-key sorts across
//! types, paging, counts and aggregates.

mod common;

use common::{is_invalid, memory_db};
use larder::{Aggregate, Collection, CollectionSpec, Filter, Op, Query};
use serde_json::{Value, json};

fn tasks() -> Collection {
    let (db, clock) = memory_db();
    db.collections()
        .create("tasks", CollectionSpec::new())
        .unwrap();
    let tasks: Collection = db.collection("tasks");
    let rows = [
        json!({"id": "t1", "title": "Write docs", "priority": 2, "done": false, "tags": ["docs"], "meta": {"hours": 1.5}}),
        json!({"id": "t2", "title": "ship release", "priority": 10, "done": true, "tags": ["release", "ops"], "meta": {"hours": 4}}),
        json!({"id": "t3", "title": "Fix bug", "priority": 5, "done": false, "tags": [], "meta": {"hours": null}}),
        json!({"id": "t4", "title": "review", "priority": "7", "done": "maybe"}),
        json!({"id": "t5", "title": null, "priority": 5, "done": true, "meta": {}}),
    ];
    for row in rows {
        tasks.insert(&row).unwrap();
        clock.advance(std::time::Duration::from_secs(1));
    }
    tasks
}

fn ids(c: &Collection, query: Query) -> Vec<String> {
    c.find(&query).unwrap().into_iter().map(|d| d.id).collect()
}

fn matching(c: &Collection, filter: Filter) -> Vec<String> {
    ids(c, Query::new().filter(filter))
}

#[test]
fn equality_is_typed() {
    let t = tasks();
    assert_eq!(matching(&t, Filter::eq("priority", 5)), ["t3", "t5"]);
    assert_eq!(matching(&t, Filter::eq("priority", "5")), ["t3", "t5"]);
    assert_eq!(
        matching(&t, Filter::eq("priority", 7)),
        ["t4"],
        "a stored string matches a number's text"
    );
    assert_eq!(matching(&t, Filter::eq("done", "True")), ["t2", "t5"]);
    assert_eq!(matching(&t, Filter::eq("done", "1")), ["t2", "t5"]);
    assert_eq!(matching(&t, Filter::eq("done", false)), ["t1", "t3"]);
    assert_eq!(matching(&t, Filter::eq("done", "maybe")), ["t4"]);
    assert_eq!(matching(&t, Filter::eq("title", Value::Null)), ["t5"]);
    assert_eq!(matching(&t, Filter::eq("tags", json!([]))), ["t3"]);
}

#[test]
fn comparisons_are_numeric_for_numbers_and_textual_for_strings() {
    let t = tasks();
    // 10 > 4 numerically (as text "10" < "4"); the stored string "7" compares as text.
    assert_eq!(
        matching(&t, Filter::gt("priority", "4")),
        ["t2", "t3", "t4", "t5"]
    );
    assert_eq!(
        matching(&t, Filter::gte("priority", 10)),
        ["t2", "t4"],
        "\"7\" >= \"10\" as text"
    );
    assert_eq!(matching(&t, Filter::lt("priority", 5)), ["t1"]);
    assert_eq!(
        matching(&t, Filter::lte("priority", "5")),
        ["t1", "t3", "t5"]
    );
    assert_eq!(
        matching(&t, Filter::lt("priority", "high")),
        ["t4"],
        "only the string is comparable"
    );
    assert_eq!(matching(&t, Filter::gt("meta.hours", 1)), ["t1", "t2"]);
}

#[test]
fn inequality_and_not_in_match_missing_fields() {
    let t = tasks();
    assert_eq!(matching(&t, Filter::ne("priority", 5)), ["t1", "t2", "t4"]);
    assert_eq!(
        matching(&t, Filter::ne("meta.hours", 4)),
        ["t1", "t3", "t4", "t5"]
    );
    assert_eq!(
        matching(&t, Filter::not_in("priority", [5, 10])),
        ["t1", "t4"]
    );
    assert_eq!(
        matching(&t, Filter::is_in("priority", ["2", "10"])),
        ["t1", "t2"]
    );
    assert_eq!(
        matching(&t, Filter::is_in("priority", Vec::<Value>::new())),
        Vec::<String>::new()
    );
}

#[test]
fn string_operators() {
    let t = tasks();
    assert_eq!(
        matching(&t, Filter::contains("title", "e")),
        ["t1", "t2", "t4"]
    );
    assert_eq!(matching(&t, Filter::starts_with("title", "Fix")), ["t3"]);
    assert_eq!(
        matching(&t, Filter::starts_with("title", "fix")),
        Vec::<String>::new()
    );
    assert_eq!(matching(&t, Filter::ends_with("title", "docs")), ["t1"]);
    let ci = |op, v: &str| Filter::Compare {
        path: "title".into(),
        op,
        value: json!(v),
    };
    assert_eq!(matching(&t, ci(Op::ContainsIgnoreCase, "SHIP")), ["t2"]);
    assert_eq!(matching(&t, ci(Op::StartsWithIgnoreCase, "fix")), ["t3"]);
    assert_eq!(matching(&t, ci(Op::EndsWithIgnoreCase, "DOCS")), ["t1"]);
    // contains on an array tests its elements
    assert_eq!(matching(&t, Filter::contains("tags", "ops")), ["t2"]);
}

#[test]
fn null_tests_and_dotted_paths() {
    let t = tasks();
    assert_eq!(
        matching(&t, Filter::is_null("meta.hours")),
        ["t3", "t4", "t5"]
    );
    assert_eq!(matching(&t, Filter::is_null("title")), ["t5"]);
    assert_eq!(matching(&t, !Filter::is_null("tags")), ["t1", "t2", "t3"]);
    assert_eq!(matching(&t, Filter::eq("tags.1", "ops")), ["t2"]);
    assert_eq!(matching(&t, Filter::eq("meta.hours", "1.5")), ["t1"]);
}

#[test]
fn and_or_not_compose() {
    let t = tasks();
    let f = Filter::eq("done", true).and(Filter::gt("priority", 6));
    assert_eq!(matching(&t, f), ["t2"]);
    let f = Filter::eq("id", "t1")
        .or(Filter::eq("id", "t4"))
        .or(Filter::contains("tags", "ops"));
    assert_eq!(matching(&t, f), ["t1", "t2", "t4"]);
    let f = !(Filter::eq("done", true).or(Filter::eq("done", false)));
    assert_eq!(matching(&t, f), ["t4"]);
    assert_eq!(matching(&t, Filter::And(vec![])), matching(&t, Filter::All));
    assert_eq!(matching(&t, Filter::Or(vec![])), Vec::<String>::new());
}

#[test]
fn server_managed_fields_are_filterable() {
    let t = tasks();
    assert_eq!(matching(&t, Filter::gte("id", "t4")), ["t4", "t5"]);
    // t3 was created two seconds after t1, at 22:13:22
    assert_eq!(
        matching(&t, Filter::gte("created_at", "2023-11-14T22:13:22Z")),
        ["t3", "t4", "t5"],
        "any RFC 3339 form is accepted"
    );
    assert_eq!(
        matching(&t, Filter::lt("created_at", "2023-11-15T00:13:21+02:00")),
        ["t1"]
    );
    assert_eq!(
        matching(
            &t,
            Filter::eq("updated_at", "2023-11-14T22:13:20.000000+00:00")
        ),
        ["t1"]
    );
}

#[test]
fn sorting_is_typed_multi_key_and_stable_by_id() {
    let t = tasks();
    // numbers sort numerically; types order missing < null < bool < number < string
    assert_eq!(
        ids(&t, Query::new().sort_asc("priority")),
        ["t1", "t3", "t5", "t2", "t4"]
    );
    assert_eq!(
        ids(&t, Query::new().sort_desc("priority")),
        ["t4", "t2", "t5", "t3", "t1"]
    );
    assert_eq!(
        ids(&t, Query::new().sort_asc("priority").sort_desc("done")),
        ["t1", "t5", "t3", "t2", "t4"]
    );
    assert_eq!(
        ids(&t, Query::new().sort_asc("title")),
        ["t5", "t3", "t1", "t4", "t2"]
    );
    assert_eq!(
        ids(&t, Query::new().sort_asc("meta.hours")),
        ["t4", "t5", "t3", "t1", "t2"]
    );
    assert_eq!(
        ids(&t, Query::new().sort_desc("created_at")),
        ["t5", "t4", "t3", "t2", "t1"]
    );
    assert_eq!(
        ids(&t, Query::new()),
        ["t1", "t2", "t3", "t4", "t5"],
        "id order by default"
    );
}

#[test]
fn offset_and_limit_page_through_results() {
    let t = tasks();
    let q = || Query::new().sort_desc("created_at");
    assert_eq!(ids(&t, q().limit(2)), ["t5", "t4"]);
    assert_eq!(ids(&t, q().offset(2).limit(2)), ["t3", "t2"]);
    assert_eq!(ids(&t, q().offset(4).limit(2)), ["t1"]);
    assert_eq!(ids(&t, q().offset(9).limit(2)), Vec::<String>::new());
    assert_eq!(ids(&t, q().limit(0)), Vec::<String>::new());
    assert_eq!(ids(&t, Query::new().offset(3)), ["t4", "t5"]);
    assert_eq!(
        ids(
            &t,
            Query::new()
                .filter(Filter::eq("done", false))
                .offset(1)
                .limit(1)
        ),
        ["t3"]
    );
}

#[test]
fn counts_honour_the_filter() {
    let t = tasks();
    assert_eq!(t.count(&Filter::All).unwrap(), 5);
    assert_eq!(t.count(&Filter::eq("done", true)).unwrap(), 2);
    assert_eq!(t.count(&Filter::eq("nothing", 1)).unwrap(), 0);
}

#[test]
fn aggregates_use_numeric_values_only() {
    let t = tasks();
    let agg = |a: Aggregate, f: Filter| t.aggregate(&a, &f).unwrap();
    assert_eq!(agg(Aggregate::Count, Filter::All), json!(5));
    assert_eq!(
        agg(Aggregate::Sum("priority".into()), Filter::All),
        json!(22),
        "the string \"7\" is skipped"
    );
    assert_eq!(
        agg(Aggregate::Avg("priority".into()), Filter::All),
        json!(5.5)
    );
    assert_eq!(
        agg(Aggregate::Min("priority".into()), Filter::All),
        json!(2)
    );
    assert_eq!(
        agg(Aggregate::Max("priority".into()), Filter::All),
        json!(10)
    );
    assert_eq!(
        agg(Aggregate::Sum("meta.hours".into()), Filter::All),
        json!(5.5)
    );
    assert_eq!(
        agg(Aggregate::Max("priority".into()), Filter::eq("done", false)),
        json!(5)
    );
    assert_eq!(
        agg(Aggregate::Sum("title".into()), Filter::All),
        Value::Null
    );
    assert_eq!(agg(Aggregate::Count, Filter::eq("done", true)), json!(2));
}

#[test]
fn malformed_queries_are_refused() {
    let t = tasks();
    assert!(is_invalid(t.find(&Query::new().filter(Filter::eq("", 1)))));
    assert!(is_invalid(t.find(&Query::new().sort_asc("a..b"))));
    assert!(is_invalid(t.count(&Filter::eq("x.", 1))));
    assert!(is_invalid(
        t.aggregate(&Aggregate::Sum(String::new()), &Filter::All)
    ));
    let deep = (0..100).fold(Filter::eq("a", 1), |f, _| Filter::Not(Box::new(f)));
    assert!(is_invalid(t.count(&deep)));
}
