//! The README's quick start: collections, documents, queries. Run with
//! `cargo run --example quickstart`.

use larder::{CollectionSpec, Db, Filter, Query};
use serde_json::json;

fn main() -> larder::Result<()> {
    let dir = tempfile::tempdir().map_err(|_| larder::ErrorKind::Internal)?;
    let db = Db::open(dir.path().join("app.redb"))?; // creates the file on first use

    db.collections()
        .create("tasks", CollectionSpec::new().index("priority"))?;
    let tasks: larder::Collection = db.collection("tasks");

    let docs = tasks.insert(&json!({"title": "write docs", "priority": 2, "done": false}))?;
    tasks.insert(&json!({"title": "ship it", "priority": 5, "done": false}))?;
    tasks.insert(&json!({"title": "celebrate", "priority": 9, "done": false}))?;
    tasks.patch(&docs.id, &json!({"done": true}))?; // RFC 7396 merge patch

    // Typed comparison: "3" and "False" match the stored number and boolean.
    let open_and_urgent = Query::new()
        .filter(Filter::gte("priority", "3").and(Filter::eq("done", "False")))
        .sort_desc("priority")
        .limit(10);
    for task in tasks.find(&open_and_urgent)? {
        println!(
            "{} (priority {})",
            task.data["title"], task.data["priority"]
        );
    }
    println!("done: {}", tasks.count(&Filter::eq("done", true))?);
    Ok(())
}
