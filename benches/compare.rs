//! The comparison harness, library side: larder, raw redb (our physical limit: the same storage
//! engine with nothing on top) and SQLite (rusqlite with its bundled SQLite, WAL journal,
//! `synchronous=FULL`, the durable setting) on the same document workloads in one process, then
//! a table of each ratio next to its target. The HTTP side (larder against PocketBase) is
//! `benches/compare_http.rs`; `benches/compare.sh` runs both.
//!
//! ```text
//! cargo bench --bench compare --features testing                      # full run (~2 minutes)
//! LARDER_COMPARE_SMOKE=1 cargo bench --bench compare --features testing   # seconds: CI's check
//! ```
//!
//! Every side stores the same documents (about 230 bytes of JSON: title, category `c0`..`c99`,
//! priority, done, tags, body, owner) under a UUIDv7 string key, in a real file in a fresh
//! temporary directory, with the same 64 MiB page cache where the engine has one. Workloads:
//!
//! 1. **durable single insert**, one writer: every insert its own durable commit (larder and
//!    raw redb with two-phase commit, SQLite in autocommit). Target: larder ≥ 0.9× raw redb.
//! 2. **16 concurrent durable writers**: 16 threads inserting, each acknowledged only once
//!    durable. larder shares commits (group commit); raw redb gives each insert its own commit;
//!    SQLite uses 16 connections with a busy timeout. Target: larder ≥ 3× SQLite's single
//!    writer.
//! 3. **bulk insert**: every document in one transaction. Target: larder ≥ 0.8× raw redb.
//! 4. **point get as a user**: larder through `Db::as_user` (token check, owner rule, a hidden
//!    field), raw redb and SQLite by key with the JSON parsed. Target: ≤ 1.3× raw redb.
//! 5. **filtered list, no index**: `category == "c7"` (1%) by a full scan; raw redb parses only
//!    the `category` field of each document, SQLite uses `json_extract`. Target: ≤ 1.2× raw.
//! 6. **scaling** (larder): per-operation cost of a bulk insert, a point get, a list page of 20
//!    and a durable insert at 1k, 10k, 100k and 1M documents, and the file size against the
//!    raw JSON payload (goal ≤ 1.6×), raw redb's file beside it.
//! 7. **fixture start**: `TestServer::start()` to ready, median of 20. Target: ≤ 5 ms.
//!
//! Timings are the best of a few interleaved repetitions (the machine is shared). Nothing here
//! asserts a timing; a result off its target is printed as `missed`.

use std::error::Error;
use std::hint::black_box;
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use larder::testing::TestServer;
use larder::{Client, Collection, CollectionSpec, Db, Filter, NewUser, Query, Rule, Rules};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::Deserialize;
use serde_json::{Value, json};

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const RAW_DOCS: TableDefinition<&str, &[u8]> = TableDefinition::new("docs");
const CACHE_BYTES: usize = 64 * 1024 * 1024;
const CATEGORIES: usize = 100;
const CATEGORY: &str = "c7";
const WRITERS: usize = 16;
const REPS: usize = 3;
const WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
];

/// Workload sizes: full, or the smoke mode CI runs so the harness cannot rot.
struct Sizes {
    smoke: bool,
    single_inserts: usize,
    concurrent_inserts: usize,
    docs: usize,
    gets: usize,
    scaling: Vec<usize>,
}

impl Sizes {
    fn from_env() -> Sizes {
        if std::env::var_os("LARDER_COMPARE_SMOKE").is_some() {
            Sizes {
                smoke: true,
                single_inserts: 48,
                concurrent_inserts: 160,
                docs: 2_000,
                gets: 2_000,
                scaling: vec![1_000, 4_000],
            }
        } else {
            Sizes {
                smoke: false,
                single_inserts: 1_500,
                concurrent_inserts: 8_000,
                docs: 100_000,
                gets: 100_000,
                scaling: vec![1_000, 10_000, 100_000, 1_000_000],
            }
        }
    }
}

/// One line of the final table.
struct Line {
    workload: &'static str,
    larder: String,
    raw: String,
    sqlite: String,
    ratio: f64,
    target: Target,
}

#[derive(Clone, Copy)]
enum Target {
    /// larder's rate must be at least this multiple of the reference's.
    RateAtLeast(f64),
    /// larder's time must be at most this multiple of the reference's.
    TimeAtMost(f64),
    /// An absolute ceiling in milliseconds.
    MillisAtMost(f64),
}

impl Target {
    fn describe(self, reference: &str) -> String {
        match self {
            Target::RateAtLeast(x) => format!("≥ {x}× {reference}"),
            Target::TimeAtMost(x) => format!("≤ {x}× {reference}"),
            Target::MillisAtMost(ms) => format!("≤ {ms} ms"),
        }
    }

    fn met(self, ratio: f64) -> bool {
        match self {
            Target::RateAtLeast(x) => ratio >= x,
            Target::TimeAtMost(x) | Target::MillisAtMost(x) => ratio <= x,
        }
    }
}

fn per_second(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() -> BenchResult<()> {
    let sizes = Sizes::from_env();
    let dir = tempfile::tempdir()?;
    println!(
        "larder vs raw redb vs SQLite {} (bundled, WAL, synchronous=FULL){}",
        rusqlite::version(),
        if sizes.smoke { " — smoke mode" } else { "" }
    );
    println!(
        "machine: {} cores available; files in {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        dir.path().display()
    );
    let docs = make_docs(sizes.docs.max(sizes.concurrent_inserts), "owner-id");
    let mut lines = Vec::new();

    let (larder1, raw1, sqlite1) = single_writer(dir.path(), &docs[..sizes.single_inserts])?;
    lines.push(Line {
        workload: "durable insert, 1 writer (inserts/s)",
        larder: format!("{larder1:.0}"),
        raw: format!("{raw1:.0}"),
        sqlite: format!("{sqlite1:.0}"),
        ratio: larder1 / raw1,
        target: Target::RateAtLeast(0.9),
    });
    let (larder16, raw16, sqlite16) =
        concurrent_writers(dir.path(), &docs[..sizes.concurrent_inserts])?;
    lines.push(Line {
        workload: "durable insert, 16 writers (inserts/s)",
        larder: format!("{larder16:.0}"),
        raw: format!("{raw16:.0}"),
        sqlite: format!("{sqlite16:.0}"),
        ratio: larder16 / sqlite1,
        target: Target::RateAtLeast(3.0),
    });

    let loaded = Loaded::bulk(dir.path(), &docs[..sizes.docs])?;
    lines.push(Line {
        workload: "bulk insert, one transaction (docs/s)",
        larder: format!("{:.0}", loaded.rates[0]),
        raw: format!("{:.0}", loaded.rates[1]),
        sqlite: format!("{:.0}", loaded.rates[2]),
        ratio: loaded.rates[0] / loaded.rates[1],
        target: Target::RateAtLeast(0.8),
    });
    let [larder, raw, sqlite] = loaded.point_gets(sizes.gets)?;
    lines.push(Line {
        workload: "point get as a user (µs)",
        larder: format!("{:.2}", micros(larder)),
        raw: format!("{:.2}", micros(raw)),
        sqlite: format!("{:.2}", micros(sqlite)),
        ratio: larder.as_secs_f64() / raw.as_secs_f64(),
        target: Target::TimeAtMost(1.3),
    });
    let [larder, raw, sqlite] = loaded.filtered_scans()?;
    lines.push(Line {
        workload: "filtered list, full scan (ms)",
        larder: format!("{:.2}", larder.as_secs_f64() * 1e3),
        raw: format!("{:.2}", raw.as_secs_f64() * 1e3),
        sqlite: format!("{:.2}", sqlite.as_secs_f64() * 1e3),
        ratio: larder.as_secs_f64() / raw.as_secs_f64(),
        target: Target::TimeAtMost(1.2),
    });
    drop(loaded);

    let start = fixture_start()?;
    lines.push(Line {
        workload: "TestServer::start to ready (ms)",
        larder: format!("{:.2}", start.as_secs_f64() * 1e3),
        raw: "-".into(),
        sqlite: "-".into(),
        ratio: start.as_secs_f64() * 1e3,
        target: Target::MillisAtMost(5.0),
    });

    println!();
    println!(
        "| workload | larder | raw redb | SQLite | ratio | target | |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for line in &lines {
        let reference = match line.target {
            Target::RateAtLeast(x) if x >= 3.0 => "SQLite 1 writer",
            _ => "raw redb",
        };
        println!(
            "| {} | {} | {} | {} | {:.2}{} | {} | {} |",
            line.workload,
            line.larder,
            line.raw,
            line.sqlite,
            line.ratio,
            if matches!(line.target, Target::MillisAtMost(_)) {
                " ms"
            } else {
                "×"
            },
            line.target.describe(reference),
            if line.target.met(line.ratio) {
                "met"
            } else {
                "missed"
            }
        );
    }
    println!();
    scaling(dir.path(), &sizes)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Opening each side

fn open_larder(path: &Path) -> BenchResult<(Db, Collection)> {
    let db = Db::builder().cache_bytes(CACHE_BYTES).open(path)?;
    db.collections().create("items", CollectionSpec::new())?;
    let items = db.collection("items");
    Ok((db, items))
}

fn open_raw(path: &Path) -> BenchResult<redb::Database> {
    let raw = redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .create(path)?;
    let txn = raw.begin_write()?;
    txn.open_table(RAW_DOCS)?;
    txn.commit()?;
    Ok(raw)
}

fn open_sqlite(path: &Path) -> BenchResult<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -((CACHE_BYTES / 1024) as i64))?;
    conn.execute(
        "CREATE TABLE IF NOT EXISTS docs (id TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID",
        [],
    )?;
    Ok(conn)
}

fn raw_insert(raw: &redb::Database, doc: &Value) -> BenchResult<()> {
    let mut txn = raw.begin_write()?;
    txn.set_two_phase_commit(true);
    {
        let key = uuid::Uuid::now_v7().to_string();
        txn.open_table(RAW_DOCS)?
            .insert(key.as_str(), serde_json::to_vec(doc)?.as_slice())?;
    }
    txn.commit()?;
    Ok(())
}

fn sqlite_insert(statement: &mut rusqlite::Statement<'_>, doc: &Value) -> BenchResult<()> {
    let key = uuid::Uuid::now_v7().to_string();
    statement.execute((key, serde_json::to_string(doc)?))?;
    Ok(())
}

const SQLITE_INSERT: &str = "INSERT INTO docs (id, body) VALUES (?1, ?2)";

// ---------------------------------------------------------------------------------------------
// Writes

/// Workload 1: inserts per second of one writer on each side, interleaved rounds, best round.
fn single_writer(dir: &Path, docs: &[Value]) -> BenchResult<(f64, f64, f64)> {
    let (_db, items) = open_larder(&dir.join("single.larder"))?;
    let raw = open_raw(&dir.join("single.redb"))?;
    let sqlite = open_sqlite(&dir.join("single.sqlite"))?;
    let mut statement = sqlite.prepare(SQLITE_INSERT)?;
    let mut best = [0f64; 3];
    for round in 0..REPS {
        let chunk = &docs[round * docs.len() / REPS..(round + 1) * docs.len() / REPS];
        for turn in 0..3 {
            let side = (round + turn) % 3;
            let start = Instant::now();
            for doc in chunk {
                match side {
                    0 => drop(black_box(items.insert(doc)?)),
                    1 => raw_insert(&raw, doc)?,
                    _ => sqlite_insert(&mut statement, doc)?,
                }
            }
            best[side] = best[side].max(per_second(chunk.len(), start.elapsed()));
        }
    }
    Ok((best[0], best[1], best[2]))
}

/// Workload 2: 16 threads inserting at once, each insert acknowledged durable on return.
fn concurrent_writers(dir: &Path, docs: &[Value]) -> BenchResult<(f64, f64, f64)> {
    let (_db, items) = open_larder(&dir.join("concurrent.larder"))?;
    let raw = open_raw(&dir.join("concurrent.redb"))?;
    let sqlite_path = dir.join("concurrent.sqlite");
    drop(open_sqlite(&sqlite_path)?);
    let share = docs.len() / WRITERS;
    let run = |side: usize| -> BenchResult<f64> {
        let barrier = Barrier::new(WRITERS);
        let start = Instant::now();
        std::thread::scope(|scope| -> BenchResult<()> {
            let handles: Vec<_> = docs
                .chunks(share)
                .take(WRITERS)
                .map(|chunk| {
                    let (items, raw, barrier, sqlite_path) = (&items, &raw, &barrier, &sqlite_path);
                    scope.spawn(move || -> BenchResult<()> {
                        let sqlite = match side {
                            2 => Some(open_sqlite(sqlite_path)?),
                            _ => None,
                        };
                        let mut statement = match &sqlite {
                            Some(conn) => Some(conn.prepare(SQLITE_INSERT)?),
                            None => None,
                        };
                        barrier.wait();
                        for doc in chunk {
                            match (side, &mut statement) {
                                (0, _) => drop(black_box(items.insert(doc)?)),
                                (1, _) => raw_insert(raw, doc)?,
                                (_, Some(statement)) => sqlite_insert(statement, doc)?,
                                _ => return Err("no SQLite statement".into()),
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            for handle in handles {
                handle.join().map_err(|_| "a writer panicked")??;
            }
            Ok(())
        })?;
        Ok(per_second(share * WRITERS, start.elapsed()))
    };
    let mut best = [0f64; 3];
    for round in 0..2 {
        for turn in 0..3 {
            let side = (round + turn) % 3;
            best[side] = best[side].max(run(side)?);
        }
    }
    Ok((best[0], best[1], best[2]))
}

// ---------------------------------------------------------------------------------------------
// Reads over a loaded data set

/// The three sides loaded with the same documents, owned by one user on larder's side.
struct Loaded {
    _db: Db,
    as_user: Collection,
    larder_ids: Vec<String>,
    raw: redb::Database,
    raw_keys: Vec<String>,
    sqlite: rusqlite::Connection,
    /// Bulk insert rates (documents per second) of larder, raw redb, SQLite.
    rates: [f64; 3],
}

#[derive(Deserialize)]
struct OnlyCategory {
    category: String,
}

impl Loaded {
    /// Workload 3: every document in one transaction, best of `REPS` into fresh files (the
    /// first repetition's files are kept for the reads).
    fn bulk(dir: &Path, docs: &[Value]) -> BenchResult<Loaded> {
        let mut rates = [0f64; 3];
        let mut kept = None;
        for rep in 0..REPS {
            // larder: a collection under an owner rule, as a real app's would be.
            let db = Db::builder()
                .cache_bytes(CACHE_BYTES)
                .open(dir.join(format!("bulk-{rep}.larder")))?;
            let rules = Rules {
                list: Rule::Owner,
                view: Rule::Owner,
                create: Rule::Authenticated,
                update: Rule::Owner,
                delete: Rule::Owner,
            };
            db.collections().create(
                "items",
                CollectionSpec::new()
                    .rules(rules)
                    .owner_field("owner")
                    .hidden_field("secret"),
            )?;
            let user = db.users().signup(
                NewUser::new("bench@example.com", "a long enough passphrase"),
                &Client::unknown(),
            )?;
            let owned: Vec<Value> = docs
                .iter()
                .map(|doc| {
                    let mut doc = doc.clone();
                    doc["owner"] = json!(user.user.id);
                    doc
                })
                .collect();
            let items: Collection = db.collection("items");
            let start = Instant::now();
            let stored = items.insert_many(&owned)?;
            rates[0] = rates[0].max(per_second(docs.len(), start.elapsed()));

            let raw = open_raw(&dir.join(format!("bulk-{rep}.redb")))?;
            let start = Instant::now();
            let mut raw_keys = Vec::with_capacity(docs.len());
            let mut txn = raw.begin_write()?;
            txn.set_two_phase_commit(true);
            {
                let mut table = txn.open_table(RAW_DOCS)?;
                for doc in &owned {
                    let key = uuid::Uuid::now_v7().to_string();
                    table.insert(key.as_str(), serde_json::to_vec(doc)?.as_slice())?;
                    raw_keys.push(key);
                }
            }
            txn.commit()?;
            rates[1] = rates[1].max(per_second(docs.len(), start.elapsed()));

            let sqlite = open_sqlite(&dir.join(format!("bulk-{rep}.sqlite")))?;
            let start = Instant::now();
            let txn = sqlite.unchecked_transaction()?;
            {
                let mut statement = txn.prepare(SQLITE_INSERT)?;
                for (doc, key) in owned.iter().zip(&raw_keys) {
                    statement.execute((key, serde_json::to_string(doc)?))?;
                }
            }
            txn.commit()?;
            rates[2] = rates[2].max(per_second(docs.len(), start.elapsed()));

            if rep == 0 {
                let as_user = db.as_user(&user.access_token)?.collection("items");
                let larder_ids = stored.into_iter().map(|doc| doc.id).collect();
                kept = Some((db, as_user, larder_ids, raw, raw_keys, sqlite));
            }
        }
        let (db, as_user, larder_ids, raw, raw_keys, sqlite) =
            kept.ok_or("no bulk repetition ran")?;
        Ok(Loaded {
            _db: db,
            as_user,
            larder_ids,
            raw,
            raw_keys,
            sqlite,
            rates,
        })
    }

    /// Workload 4: time per get of a random document, best of `REPS`.
    fn point_gets(&self, gets: usize) -> BenchResult<[Duration; 3]> {
        let mut rng = fastrand::Rng::with_seed(7);
        let picks: Vec<usize> = (0..gets)
            .map(|_| rng.usize(..self.larder_ids.len()))
            .collect();
        let mut statement = self.sqlite.prepare("SELECT body FROM docs WHERE id = ?1")?;
        let mut best = [Duration::MAX; 3];
        for _ in 0..REPS {
            let start = Instant::now();
            for &i in &picks {
                let doc = self.as_user.get(&self.larder_ids[i])?.ok_or("missing")?;
                black_box(doc);
            }
            best[0] = best[0].min(start.elapsed() / gets as u32);

            let start = Instant::now();
            for &i in &picks {
                let txn = self.raw.begin_read()?;
                let table = txn.open_table(RAW_DOCS)?;
                let bytes = table.get(self.raw_keys[i].as_str())?.ok_or("missing")?;
                black_box(serde_json::from_slice::<Value>(bytes.value())?);
            }
            best[1] = best[1].min(start.elapsed() / gets as u32);

            let start = Instant::now();
            for &i in &picks {
                let body: String = statement.query_row([&self.raw_keys[i]], |row| row.get(0))?;
                black_box(serde_json::from_str::<Value>(&body)?);
            }
            best[2] = best[2].min(start.elapsed() / gets as u32);
        }
        Ok(best)
    }

    /// Workload 5: `category == "c7"` by a full scan, best of `REPS`.
    fn filtered_scans(&self) -> BenchResult<[Duration; 3]> {
        let expected = self.larder_ids.len().div_ceil(CATEGORIES);
        let filter = Filter::eq("category", CATEGORY);
        let mut statement = self
            .sqlite
            .prepare("SELECT body FROM docs WHERE json_extract(body, '$.category') = ?1")?;
        let mut best = [Duration::MAX; 3];
        for _ in 0..REPS {
            let start = Instant::now();
            let found = self.as_user.find(&Query::new().filter(filter.clone()))?;
            best[0] = best[0].min(start.elapsed());
            check_count("larder", found.len(), expected)?;

            let start = Instant::now();
            let txn = self.raw.begin_read()?;
            let table = txn.open_table(RAW_DOCS)?;
            let mut found = Vec::new();
            for entry in table.iter()? {
                let (_, value) = entry?;
                let only: OnlyCategory = serde_json::from_slice(value.value())?;
                if only.category == CATEGORY {
                    found.push(serde_json::from_slice::<Value>(value.value())?);
                }
            }
            best[1] = best[1].min(start.elapsed());
            check_count("raw redb", found.len(), expected)?;

            let start = Instant::now();
            let found = statement
                .query_map([CATEGORY], |row| row.get::<_, String>(0))?
                .map(|body| Ok(serde_json::from_str::<Value>(&body?)?))
                .collect::<BenchResult<Vec<Value>>>()?;
            best[2] = best[2].min(start.elapsed());
            check_count("SQLite", found.len(), expected)?;
        }
        Ok(best)
    }
}

fn check_count(side: &str, got: usize, expected: usize) -> BenchResult<()> {
    if got == expected {
        Ok(())
    } else {
        Err(format!("{side}: {got} matches, expected {expected}").into())
    }
}

// ---------------------------------------------------------------------------------------------
// Scaling and the fixture

/// Workload 6: how larder's costs grow with the number of documents, and its file size.
fn scaling(dir: &Path, sizes: &Sizes) -> BenchResult<()> {
    println!("scaling (larder; per operation; a durable insert is one commit of one document)");
    println!(
        "| documents | bulk insert | point get | list page of 20 | durable insert | file / JSON payload | raw redb file / payload |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for &n in &sizes.scaling {
        let docs = make_docs(n, "owner-id");
        let payload: usize = docs.iter().map(|doc| doc.to_string().len()).sum();
        let path = dir.join(format!("scale-{n}.larder"));
        let (db, items) = open_larder(&path)?;
        let start = Instant::now();
        let mut ids = Vec::with_capacity(n);
        for chunk in docs.chunks(100_000) {
            ids.extend(items.insert_many(chunk)?.into_iter().map(|doc| doc.id));
        }
        let bulk = start.elapsed() / n as u32;

        let mut rng = fastrand::Rng::with_seed(9);
        let gets = 20_000.min(sizes.gets);
        let start = Instant::now();
        for _ in 0..gets {
            black_box(items.get(&ids[rng.usize(..n)])?);
        }
        let get = start.elapsed() / gets as u32;

        let pages = 200;
        let start = Instant::now();
        for page in 0..pages {
            let offset = (page * 997) % n.saturating_sub(20).max(1);
            let found = items.find(&Query::new().offset(offset).limit(20))?;
            check_count("list page", found.len(), 20)?;
        }
        let list = start.elapsed() / pages as u32;

        let inserts = 100;
        let start = Instant::now();
        for doc in docs.iter().take(inserts) {
            black_box(items.insert(doc)?);
        }
        let insert = start.elapsed() / inserts as u32;
        drop(items);
        drop(db);
        let file = std::fs::metadata(&path)?.len() as f64;

        let raw_path = dir.join(format!("scale-{n}.redb"));
        let raw = open_raw(&raw_path)?;
        let txn = raw.begin_write()?;
        {
            let mut table = txn.open_table(RAW_DOCS)?;
            for (doc, id) in docs.iter().zip(&ids) {
                table.insert(id.as_str(), serde_json::to_vec(doc)?.as_slice())?;
            }
        }
        txn.commit()?;
        drop(raw);
        let raw_file = std::fs::metadata(&raw_path)?.len() as f64;
        println!(
            "| {n} | {:.2} µs | {:.2} µs | {:.1} µs | {:.0} µs | {:.2}× ({:.1} MiB) | {:.2}× |",
            micros(bulk),
            micros(get),
            micros(list),
            micros(insert),
            file / payload as f64,
            file / 1024.0 / 1024.0,
            raw_file / payload as f64,
        );
        std::fs::remove_file(&path)?;
        std::fs::remove_file(&raw_path)?;
    }
    Ok(())
}

/// Workload 7: the test fixture, from nothing to serving, median of 20.
fn fixture_start() -> BenchResult<Duration> {
    let mut times: Vec<Duration> = (0..20)
        .map(|_| {
            let start = Instant::now();
            let server = TestServer::start()?;
            let elapsed = start.elapsed();
            drop(server);
            Ok(elapsed)
        })
        .collect::<BenchResult<_>>()?;
    times.sort();
    Ok(times[times.len() / 2])
}

/// Documents of about 230 bytes from a fixed seed.
fn make_docs(n: usize, owner: &str) -> Vec<Value> {
    let mut rng = fastrand::Rng::with_seed(42);
    let word = |rng: &mut fastrand::Rng| WORDS[rng.usize(..WORDS.len())];
    (0..n)
        .map(|i| {
            let mut body = String::with_capacity(128);
            while body.len() < 100 {
                if !body.is_empty() {
                    body.push(' ');
                }
                body.push_str(word(&mut rng));
            }
            json!({
                "title": format!("{} {} #{i}", word(&mut rng), word(&mut rng)),
                "category": format!("c{}", i % CATEGORIES),
                "priority": i % 10,
                "done": rng.bool(),
                "tags": [word(&mut rng), word(&mut rng)],
                "body": body,
                "owner": owner,
                "secret": "s",
            })
        })
        .collect()
}
