//! Authorization costs: the same point get as the embedding program (no rules), as a secret
//! key, as a scoped key holding N grants, as a user under an owner rule, and — for the
//! physical limit — raw redb reading and parsing the same document.
//!
//! ```text
//! cargo bench --bench policy
//! LARDER_BENCH_SCALE=0.1 cargo bench --bench policy     # quick smoke run
//! ```
//!
//! Every get is checked to return the document; a refusal aborts the bench.

use std::collections::BTreeMap;
use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use larder::{
    Client, Collection, CollectionSpec, Db, Grant, KeyKind, NewApiKey, NewUser, Rule, Rules,
};
use redb::{ReadableDatabase, TableDefinition};
use serde_json::{Value, json};

type BenchResult<T> = Result<T, Box<dyn Error>>;

fn scale() -> f64 {
    std::env::var("LARDER_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

/// Best of three runs of `gets` gets through `get`.
fn time_gets(
    gets: usize,
    ids: &[String],
    mut get: impl FnMut(&str) -> BenchResult<()>,
) -> BenchResult<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        for i in 0..gets {
            get(&ids[i * 7919 % ids.len()])?;
        }
        best = best.min(started.elapsed());
    }
    Ok(best)
}

fn line(name: &str, time: Duration, gets: usize, baseline: Duration) {
    let per = time.as_nanos() as f64 / gets as f64;
    println!(
        "{name:<34} {:>8.2} µs/get   {:>10.0} gets/s   {:.2}x the admin get",
        per / 1000.0,
        gets as f64 / time.as_secs_f64(),
        time.as_secs_f64() / baseline.as_secs_f64()
    );
}

fn check(found: bool) -> BenchResult<()> {
    if found {
        Ok(())
    } else {
        Err("a get returned nothing".into())
    }
}

fn main() -> BenchResult<()> {
    let docs = ((10_000.0 * scale()) as usize).max(100);
    let gets = ((100_000.0 * scale()) as usize).max(1_000);
    println!("larder authorization costs (point get of a ~200-byte document)");
    println!(
        "machine: {} cores available; {docs} documents, {gets} gets per run, best of 3",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path().join("policy.redb"))?;
    let owner_rules = Rules {
        list: Rule::Owner,
        view: Rule::Owner,
        create: Rule::Authenticated,
        update: Rule::Owner,
        delete: Rule::Owner,
    };
    db.collections().create(
        "items",
        CollectionSpec::new()
            .rules(owner_rules)
            .owner_field("owner")
            .hidden_field("secret"),
    )?;
    let user = db.users().signup(
        NewUser::new("bench@example.com", "a long enough passphrase"),
        &Client::unknown(),
    )?;
    let items: Collection = db.collection("items");
    let batch: Vec<Value> = (0..docs)
        .map(|i| json!({"title": format!("item {i}"), "n": i, "owner": user.user.id, "secret": "s", "body": "x".repeat(120)}))
        .collect();
    let ids: Vec<String> = items
        .insert_many(&batch)?
        .into_iter()
        .map(|d| d.id)
        .collect();

    let admin = time_gets(gets, &ids, |id| check(items.get(id)?.is_some()))?;

    let secret = db.keys().create(NewApiKey::new(KeyKind::Secret, "admin"))?;
    let as_secret: Collection = db.with_key(&secret.secret)?.collection("items");
    let secret_time = time_gets(gets, &ids, |id| check(as_secret.get(id)?.is_some()))?;

    let mut scoped_times = Vec::new();
    for grants in [1usize, 100, 1000] {
        let mut all = BTreeMap::new();
        for g in 0..grants - 1 {
            all.insert(format!("other_{g}"), Grant::read());
        }
        all.insert(
            "items".to_owned(),
            Grant {
                exclude_fields: vec!["body".into()],
                ..Grant::read()
            },
        );
        let mut new = NewApiKey::new(KeyKind::Scoped, "reader");
        new.grants = all;
        let key = db.keys().create(new)?;
        let scoped: Collection = db.with_key(&key.secret)?.collection("items");
        scoped_times.push((
            grants,
            time_gets(gets, &ids, |id| check(scoped.get(id)?.is_some()))?,
        ));
    }

    let as_user: Collection = db.as_user(&user.access_token)?.collection("items");
    let user_time = time_gets(gets, &ids, |id| check(as_user.get(id)?.is_some()))?;

    // The handle resolution per request (authenticate the key, then get), as HTTP does it.
    let per_request = time_gets(gets, &ids, |id| {
        let handle: Collection = db.with_key(&secret.secret)?.collection("items");
        check(handle.get(id)?.is_some())
    })?;
    drop(items);
    drop(as_secret);
    drop(as_user);
    drop(db);

    // Raw redb: the same kind of document, get + parse.
    const RAW: TableDefinition<&str, &[u8]> = TableDefinition::new("raw");
    let raw_db = redb::Database::create(dir.path().join("raw.redb"))?;
    let txn = raw_db.begin_write()?;
    {
        let mut table = txn.open_table(RAW)?;
        for (id, doc) in ids.iter().zip(&batch) {
            table.insert(id.as_str(), serde_json::to_vec(doc)?.as_slice())?;
        }
    }
    txn.commit()?;
    let raw = time_gets(gets, &ids, |id| {
        let txn = raw_db.begin_read()?;
        let table = txn.open_table(RAW)?;
        let found = match table.get(id)? {
            Some(bytes) => {
                black_box(serde_json::from_slice::<Value>(bytes.value())?);
                true
            }
            None => false,
        };
        check(found)
    })?;

    println!();
    line("raw redb get + parse", raw, gets, admin);
    line("admin (embedding program)", admin, gets, admin);
    line("secret key", secret_time, gets, admin);
    for (grants, time) in scoped_times {
        line(
            &format!("scoped key, {grants} grants, projection"),
            time,
            gets,
            admin,
        );
    }
    line("user, owner rule, hidden field", user_time, gets, admin);
    line("secret key authenticated per get", per_request, gets, admin);
    Ok(())
}
