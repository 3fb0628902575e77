//! Document benchmarks: the same workloads on larder and on raw redb, in one run, with the
//! larder/raw ratio of each.
//!
//! Run it with
//!
//! ```text
//! cargo bench --bench documents                              # full size (well under 2 minutes)
//! LARDER_BENCH_SCALE=0.1 cargo bench --bench documents       # quick smoke run
//! ```
//!
//! `LARDER_BENCH_SCALE` (default `1`) multiplies every size below. Both sides use real files in
//! a fresh temporary directory (`tempfile::tempdir()`), the same redb page cache (64 MiB,
//! larder's default) and fsync-on-commit durability (redb's default `Durability::Immediate`).
//! Documents are small realistic objects generated from a fixed seed:
//! `{"title", "category": "c{i % 100}", "priority": i % 10, "done", "tags": [..], "body"}`
//! (about 210 bytes of JSON each).
//!
//! The raw side stores what an application without larder would: a
//! `TableDefinition<&str, &[u8]>` from a UUIDv7 string key to `serde_json::to_vec(doc)`.
//! larder stores the same JSON behind a 17-byte header (record version and two timestamps).
//!
//! Workloads (each at scale 1):
//!
//! 1. **durable single insert**: 2,000 inserts, each its own durable commit. larder:
//!    `coll.insert(&doc)`; raw: `begin_write`, `set_two_phase_commit(true)` (as larder does),
//!    insert, commit. Raw redb *without* two-phase commit is shown for context. The three run
//!    interleaved in six rounds, each leading in turn, and each side's fastest round counts.
//!    Target: larder rate >= 0.9x raw (two-phase).
//! 2. **bulk insert**: 100,000 documents in one transaction. larder: `insert_many(&docs)`;
//!    raw: one write transaction with 100,000 inserts. Best of three, each into fresh files.
//!    Target: rate >= 0.8x raw. Loading the same documents into a collection with an index on
//!    `category` (a file of its own) and the resulting file sizes are shown for context.
//! 3. **point get**: 100,000 random gets by id out of the 100,000 loaded. larder: `coll.get(id)`
//!    (a parsed `Doc<Value>`); raw: `begin_read`, `open_table`, `get`,
//!    `serde_json::from_slice::<Value>` per get. Raw with one reused read transaction and table
//!    is shown for context. Target: larder time per get <= 1.3x raw.
//! 4. **filtered list, no index**: `find(filter: category == "c7")`, 1% of the documents.
//!    Raw: a full table scan deserializing each value into a struct holding only `category`
//!    (serde skips the other fields), collecting the matches fully parsed to `Value`.
//!    Target: larder time <= 1.2x raw.
//! 5. **filtered list, with index**: the same query on a collection declared with
//!    `CollectionSpec::new().index("category")`, against the raw full scan and against larder
//!    without the index.
//! 6. **count**: `count(category == "c7")` without an index against the raw scan counting
//!    matches; `count(Filter::All)` (O(1), the table length) against raw `table.len()`.
//!
//! Read workloads run three times, interleaving larder and raw, and the best time counts.

use std::error::Error;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use larder::{Collection, CollectionSpec, Db, Filter, Query};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Deserialize;
use serde_json::{Value, json};

type BenchResult<T> = Result<T, Box<dyn Error>>;

/// The raw side's table: UUIDv7 string key to the document's JSON.
const RAW_DOCS: TableDefinition<&str, &[u8]> = TableDefinition::new("docs");

/// larder's default page cache, used on both sides.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

const MIB: f64 = 1024.0 * 1024.0;

/// Timed repetitions of each read workload; the best one counts.
const READ_REPS: usize = 3;

/// Timed repetitions of the bulk insert, each into fresh files; the best one counts.
const BULK_REPS: usize = 3;

/// The category every filtered workload selects (1% of the documents).
const CATEGORY: &str = "c7";

/// How many categories documents are spread over.
const CATEGORIES: usize = 100;

const WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "review", "deploy", "invoice",
    "meeting", "release", "backlog",
];

/// The raw side's view of a document when filtering: serde skips every other field.
#[derive(Deserialize)]
struct OnlyCategory {
    category: String,
}

/// Workload sizes, scaled by `LARDER_BENCH_SCALE`.
struct Sizes {
    scale: f64,
    single_inserts: usize,
    bulk_docs: usize,
    point_gets: usize,
    scans_per_sample: usize,
    indexed_finds_per_sample: usize,
    count_all_per_sample: usize,
}

impl Sizes {
    fn from_env() -> BenchResult<Sizes> {
        let scale = match std::env::var("LARDER_BENCH_SCALE") {
            Ok(text) => text
                .trim()
                .parse::<f64>()
                .map_err(|e| format!("LARDER_BENCH_SCALE={text:?}: {e}"))?,
            Err(_) => 1.0,
        };
        if !(scale.is_finite() && scale > 0.0) {
            return Err(
                format!("LARDER_BENCH_SCALE must be a positive number, not {scale}").into(),
            );
        }
        let scaled = |n: f64, min: usize| ((n * scale).round() as usize).max(min);
        Ok(Sizes {
            scale,
            single_inserts: scaled(2_000.0, 40),
            bulk_docs: scaled(100_000.0, 2 * CATEGORIES),
            point_gets: scaled(100_000.0, 1_000),
            scans_per_sample: 3,
            indexed_finds_per_sample: 20,
            count_all_per_sample: scaled(20_000.0, 1_000),
        })
    }
}

fn main() -> BenchResult<()> {
    let sizes = Sizes::from_env()?;
    let dir = tempfile::tempdir()?;
    print_header(&sizes, dir.path());
    let started = Instant::now();

    let docs = make_docs(sizes.bulk_docs.max(sizes.single_inserts), 42);
    let json_bytes: usize = docs.iter().map(|doc| doc.to_string().len()).sum();
    println!(
        "documents: {} bytes of JSON on average, category == {CATEGORY:?} selects 1 in {CATEGORIES}",
        json_bytes / docs.len().max(1)
    );
    println!();
    durable_single_inserts(dir.path(), &docs[..sizes.single_inserts])?;

    let bulk_docs = &docs[..sizes.bulk_docs];
    let loaded = bulk_insert(dir.path(), bulk_docs)?;
    point_gets(&loaded, &sizes)?;
    filtered_lists(&loaded, &sizes)?;
    counts(&loaded, &sizes)?;

    println!();
    println!("total bench time {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The workloads

/// Workload 1: every insert its own durable commit.
fn durable_single_inserts(dir: &Path, docs: &[Value]) -> BenchResult<()> {
    let db = Db::builder()
        .cache_bytes(CACHE_BYTES)
        .open(dir.join("single-larder.redb"))?;
    db.collections().create("items", CollectionSpec::new())?;
    let items: Collection = db.collection("items");
    let raw_2pc = open_raw(&dir.join("single-raw-2pc.redb"))?;
    let raw_1pc = open_raw(&dir.join("single-raw-1pc.redb"))?;

    let raw_inserts = |raw: &redb::Database, two_phase: bool, chunk: &[Value]| -> BenchResult<()> {
        for doc in chunk {
            let mut txn = raw.begin_write()?;
            txn.set_two_phase_commit(two_phase);
            {
                let mut table = txn.open_table(RAW_DOCS)?;
                let key = uuid::Uuid::now_v7().to_string();
                table.insert(key.as_str(), serde_json::to_vec(doc)?.as_slice())?;
            }
            txn.commit()?;
        }
        Ok(())
    };

    // Interleaved rounds, each side leading in turn: the three see the same disk, the same
    // neighbours and the same warm-up. Each side's fastest round counts (the machine is shared).
    const ROUNDS: usize = 6;
    let mut best: [Option<Rate>; 3] = [None; 3];
    for round in 0..ROUNDS {
        let chunk = &docs[round * docs.len() / ROUNDS..(round + 1) * docs.len() / ROUNDS];
        for turn in 0..3 {
            let side = (round + turn) % 3;
            let start = Instant::now();
            match side {
                0 => {
                    for doc in chunk {
                        black_box(items.insert(doc)?);
                    }
                }
                1 => raw_inserts(&raw_2pc, true, chunk)?,
                _ => raw_inserts(&raw_1pc, false, chunk)?,
            }
            let rate = Rate::new(chunk.len(), start.elapsed());
            if best[side].is_none_or(|b| rate.per_op() < b.per_op()) {
                best[side] = Some(rate);
            }
        }
    }
    let [Some(larder), Some(raw_2pc), Some(raw_1pc)] = best else {
        return Err("no single-insert round ran".into());
    };
    report(
        "durable single insert",
        larder,
        "redb 2pc",
        raw_2pc,
        Target::RateAtLeast(0.9),
    );
    report("  (context)", larder, "redb 1pc", raw_1pc, Target::None);
    Ok(())
}

/// The databases loaded by the bulk insert, reused by the read workloads.
struct Loaded {
    _larder_dbs: [Db; 2],
    items: Collection,
    indexed: Collection,
    larder_ids: Vec<String>,
    raw: redb::Database,
    raw_keys: Vec<String>,
}

/// Workload 2: one transaction inserting every document, into fresh files each repetition
/// (the first repetition's files are kept for the read workloads).
fn bulk_insert(dir: &Path, docs: &[Value]) -> BenchResult<Loaded> {
    let mut larder_best = Duration::MAX;
    let mut raw_best = Duration::MAX;
    let mut kept_larder = None;
    let mut kept_raw = None;
    for rep in 0..BULK_REPS {
        let larder_path = dir.join(format!("bulk-larder-{rep}.redb"));
        let raw_path = dir.join(format!("bulk-raw-{rep}.redb"));
        for turn in 0..2 {
            if (rep + turn) % 2 == 0 {
                let db = Db::builder().cache_bytes(CACHE_BYTES).open(&larder_path)?;
                db.collections().create("items", CollectionSpec::new())?;
                let items: Collection = db.collection("items");
                let start = Instant::now();
                let stored = items.insert_many(docs)?;
                larder_best = larder_best.min(start.elapsed());
                if rep == 0 {
                    let ids: Vec<String> = stored.into_iter().map(|doc| doc.id).collect();
                    kept_larder = Some((db, items, ids));
                }
            } else {
                let raw = open_raw(&raw_path)?;
                let start = Instant::now();
                let mut keys = Vec::with_capacity(docs.len());
                let mut txn = raw.begin_write()?;
                txn.set_two_phase_commit(true);
                {
                    let mut table = txn.open_table(RAW_DOCS)?;
                    for doc in docs {
                        let key = uuid::Uuid::now_v7().to_string();
                        table.insert(key.as_str(), serde_json::to_vec(doc)?.as_slice())?;
                        keys.push(key);
                    }
                }
                txn.commit()?;
                raw_best = raw_best.min(start.elapsed());
                if rep == 0 {
                    kept_raw = Some((raw, keys));
                }
            }
        }
        if rep > 0 {
            std::fs::remove_file(&larder_path)?;
            std::fs::remove_file(&raw_path)?;
        }
    }
    let (db, items, larder_ids) = kept_larder.ok_or("no larder repetition ran")?;
    let (raw, raw_keys) = kept_raw.ok_or("no raw repetition ran")?;

    // The same documents into a collection with an index, in a file (and page cache) of its
    // own, so that every read workload runs against one 100k-document file per cache.
    let indexed_db = Db::builder()
        .cache_bytes(CACHE_BYTES)
        .open(dir.join("bulk-larder-indexed.redb"))?;
    indexed_db
        .collections()
        .create("indexed", CollectionSpec::new().index("category"))?;
    let indexed: Collection = indexed_db.collection("indexed");
    let start = Instant::now();
    black_box(indexed.insert_many(docs)?);
    let indexed_time = start.elapsed();

    let n = docs.len();
    report(
        "bulk insert (1 txn)",
        Rate::new(n, larder_best),
        "redb",
        Rate::new(n, raw_best),
        Target::RateAtLeast(0.8),
    );
    report(
        "  with 1 index",
        Rate::new(n, indexed_time),
        "redb",
        Rate::new(n, raw_best),
        Target::None,
    );
    let size = |name: &str| std::fs::metadata(dir.join(name)).map(|m| m.len() as f64 / MIB);
    println!(
        "{:<22} larder {:>8.1} MiB, with index {:.1} MiB   redb {:.1} MiB   ratio {:.2}x",
        "  file size",
        size("bulk-larder-0.redb")?,
        size("bulk-larder-indexed.redb")?,
        size("bulk-raw-0.redb")?,
        size("bulk-larder-0.redb")? / size("bulk-raw-0.redb")?,
    );
    Ok(Loaded {
        _larder_dbs: [db, indexed_db],
        items,
        indexed,
        larder_ids,
        raw,
        raw_keys,
    })
}

/// Workload 3: random gets by id, each in its own read transaction.
fn point_gets(loaded: &Loaded, sizes: &Sizes) -> BenchResult<()> {
    let mut rng = fastrand::Rng::with_seed(7);
    let picks: Vec<usize> = (0..sizes.point_gets)
        .map(|_| rng.usize(..loaded.larder_ids.len()))
        .collect();

    let mut best = [Duration::MAX; 3];
    for _ in 0..READ_REPS {
        let start = Instant::now();
        for &i in &picks {
            let doc = loaded.items.get(&loaded.larder_ids[i])?;
            black_box(doc.ok_or("a loaded document is missing")?);
        }
        best[0] = best[0].min(start.elapsed());

        let start = Instant::now();
        for &i in &picks {
            let txn = loaded.raw.begin_read()?;
            let table = txn.open_table(RAW_DOCS)?;
            let bytes = table
                .get(loaded.raw_keys[i].as_str())?
                .ok_or("a loaded document is missing")?;
            black_box(serde_json::from_slice::<Value>(bytes.value())?);
        }
        best[1] = best[1].min(start.elapsed());

        let start = Instant::now();
        {
            let txn = loaded.raw.begin_read()?;
            let table = txn.open_table(RAW_DOCS)?;
            for &i in &picks {
                let bytes = table
                    .get(loaded.raw_keys[i].as_str())?
                    .ok_or("a loaded document is missing")?;
                black_box(serde_json::from_slice::<Value>(bytes.value())?);
            }
        }
        best[2] = best[2].min(start.elapsed());
    }
    let n = picks.len();
    report(
        "point get",
        Rate::new(n, best[0]),
        "redb",
        Rate::new(n, best[1]),
        Target::TimeAtMost(1.3),
    );
    report(
        "  (context)",
        Rate::new(n, best[0]),
        "redb 1 txn",
        Rate::new(n, best[2]),
        Target::None,
    );
    Ok(())
}

/// Workloads 4 and 5: `category == "c7"`, without and with an index, against a raw full scan.
fn filtered_lists(loaded: &Loaded, sizes: &Sizes) -> BenchResult<()> {
    let query = Query::new().filter(Filter::eq("category", CATEGORY));
    let expected = loaded.larder_ids.len().div_ceil(CATEGORIES);

    let mut best = [Duration::MAX; 2];
    for _ in 0..READ_REPS {
        let start = Instant::now();
        for _ in 0..sizes.scans_per_sample {
            check_len("larder find", loaded.items.find(&query)?.len(), expected)?;
        }
        best[0] = best[0].min(start.elapsed());

        let start = Instant::now();
        for _ in 0..sizes.scans_per_sample {
            check_len("raw scan", raw_find(&loaded.raw, CATEGORY)?.len(), expected)?;
        }
        best[1] = best[1].min(start.elapsed());
    }
    let larder_scan = Rate::new(sizes.scans_per_sample, best[0]);
    let raw_scan = Rate::new(sizes.scans_per_sample, best[1]);
    report(
        "find, no index",
        larder_scan,
        "redb scan",
        raw_scan,
        Target::TimeAtMost(1.2),
    );

    let mut best = Duration::MAX;
    for _ in 0..READ_REPS {
        let start = Instant::now();
        for _ in 0..sizes.indexed_finds_per_sample {
            check_len("indexed find", loaded.indexed.find(&query)?.len(), expected)?;
        }
        best = best.min(start.elapsed());
    }
    let larder_indexed = Rate::new(sizes.indexed_finds_per_sample, best);
    report(
        "find, with index",
        larder_indexed,
        "redb scan",
        raw_scan,
        Target::None,
    );
    report(
        "  (context)",
        larder_indexed,
        "no index",
        larder_scan,
        Target::None,
    );
    Ok(())
}

/// Workload 6: counting with a filter (a scan) and without one (the table length).
fn counts(loaded: &Loaded, sizes: &Sizes) -> BenchResult<()> {
    let filter = Filter::eq("category", CATEGORY);
    let expected = loaded.larder_ids.len().div_ceil(CATEGORIES) as u64;

    let mut best = [Duration::MAX; 2];
    for _ in 0..READ_REPS {
        let start = Instant::now();
        for _ in 0..sizes.scans_per_sample {
            check_len("larder count", loaded.items.count(&filter)?, expected)?;
        }
        best[0] = best[0].min(start.elapsed());

        let start = Instant::now();
        for _ in 0..sizes.scans_per_sample {
            check_len("raw count", raw_count(&loaded.raw, CATEGORY)?, expected)?;
        }
        best[1] = best[1].min(start.elapsed());
    }
    report(
        "count, no index",
        Rate::new(sizes.scans_per_sample, best[0]),
        "redb scan",
        Rate::new(sizes.scans_per_sample, best[1]),
        Target::TimeAtMost(1.2),
    );

    let total = loaded.larder_ids.len() as u64;
    let mut best = [Duration::MAX; 2];
    for _ in 0..READ_REPS {
        let start = Instant::now();
        for _ in 0..sizes.count_all_per_sample {
            check_len("larder count all", loaded.items.count(&Filter::All)?, total)?;
        }
        best[0] = best[0].min(start.elapsed());

        let start = Instant::now();
        for _ in 0..sizes.count_all_per_sample {
            let txn = loaded.raw.begin_read()?;
            let len = txn.open_table(RAW_DOCS)?.len()?;
            check_len("raw len", len, total)?;
        }
        best[1] = best[1].min(start.elapsed());
    }
    report(
        "count all",
        Rate::new(sizes.count_all_per_sample, best[0]),
        "redb len",
        Rate::new(sizes.count_all_per_sample, best[1]),
        Target::None,
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The raw side

fn open_raw(path: &Path) -> BenchResult<redb::Database> {
    let db = redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .create(path)?;
    // Create the table outside any timed section, as larder's create_collection does.
    let mut txn = db.begin_write()?;
    txn.set_two_phase_commit(true);
    txn.open_table(RAW_DOCS)?;
    txn.commit()?;
    Ok(db)
}

/// A full scan returning the matching documents as (key, parsed JSON).
fn raw_find(db: &redb::Database, category: &str) -> BenchResult<Vec<(String, Value)>> {
    let txn = db.begin_read()?;
    let table = txn.open_table(RAW_DOCS)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        let bytes = value.value();
        let only: OnlyCategory = serde_json::from_slice(bytes)?;
        if only.category == category {
            out.push((key.value().to_owned(), serde_json::from_slice(bytes)?));
        }
    }
    Ok(out)
}

/// A full scan counting the matching documents.
fn raw_count(db: &redb::Database, category: &str) -> BenchResult<u64> {
    let txn = db.begin_read()?;
    let table = txn.open_table(RAW_DOCS)?;
    let mut count = 0;
    for entry in table.iter()? {
        let (_, value) = entry?;
        let only: OnlyCategory = serde_json::from_slice(value.value())?;
        if only.category == category {
            count += 1;
        }
    }
    Ok(count)
}

// ---------------------------------------------------------------------------------------------
// Data, checks and output

/// `n` documents from a fixed seed; `category` cycles through `c0..c99`.
fn make_docs(n: usize, seed: u64) -> Vec<Value> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let word = |rng: &mut fastrand::Rng| WORDS[rng.usize(..WORDS.len())];
    (0..n)
        .map(|i| {
            let title = format!("{} {} #{i}", word(&mut rng), word(&mut rng));
            let tags: Vec<&str> = (0..rng.usize(1..=3)).map(|_| word(&mut rng)).collect();
            let mut body = String::with_capacity(128);
            while body.len() < 100 {
                if !body.is_empty() {
                    body.push(' ');
                }
                body.push_str(word(&mut rng));
            }
            json!({
                "title": title,
                "category": format!("c{}", i % CATEGORIES),
                "priority": i % 10,
                "done": rng.bool(),
                "tags": tags,
                "body": body,
            })
        })
        .collect()
}

fn check_len<N: PartialEq + std::fmt::Display>(what: &str, got: N, expected: N) -> BenchResult<()> {
    if got == expected {
        Ok(())
    } else {
        Err(format!("{what}: {got} results, expected {expected}").into())
    }
}

/// How many operations took how long.
#[derive(Debug, Clone, Copy)]
struct Rate {
    ops: usize,
    time: Duration,
}

impl Rate {
    fn new(ops: usize, time: Duration) -> Rate {
        Rate { ops, time }
    }

    fn per_second(self) -> f64 {
        self.ops as f64 / self.time.as_secs_f64().max(1e-12)
    }

    fn per_op(self) -> Duration {
        self.time.div_f64(self.ops.max(1) as f64)
    }
}

/// What a workload aims for.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Context only: the ratio is printed as larder time / other time.
    None,
    /// larder's rate at least this fraction of the other's.
    RateAtLeast(f64),
    /// larder's time per operation at most this multiple of the other's.
    TimeAtMost(f64),
}

fn report(name: &str, larder: Rate, other_name: &str, other: Rate, target: Target) {
    let side = |rate: Rate| {
        format!(
            "{:>12}/s ({:>9})",
            group_digits(rate.per_second()),
            duration_text(rate.per_op())
        )
    };
    let time_ratio = larder.time.as_secs_f64()
        / larder.ops as f64
        / (other.time.as_secs_f64() / other.ops as f64).max(1e-15);
    let (ratio, verdict) = match target {
        Target::None => (format!("ratio {time_ratio:>6.2}x time"), String::new()),
        Target::RateAtLeast(min) => {
            let rate_ratio = larder.per_second() / other.per_second();
            let ok = if rate_ratio >= min { "ok" } else { "MISS" };
            (
                format!("ratio {rate_ratio:>6.2}x rate"),
                format!("  (target >= {min:.2}x) {ok}"),
            )
        }
        Target::TimeAtMost(max) => {
            let ok = if time_ratio <= max { "ok" } else { "MISS" };
            (
                format!("ratio {time_ratio:>6.2}x time"),
                format!("  (target <= {max:.2}x) {ok}"),
            )
        }
    };
    println!(
        "{name:<22} larder {}   {other_name:<10} {}   {ratio}{verdict}",
        side(larder),
        side(other)
    );
}

/// `1234567.8` as `1,234,568`; small rates keep one decimal.
fn group_digits(x: f64) -> String {
    if x < 100.0 {
        return format!("{x:.1}");
    }
    let digits = format!("{:.0}", x);
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn duration_text(d: Duration) -> String {
    let ns = d.as_secs_f64() * 1e9;
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1_000_000_000.0 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

fn print_header(sizes: &Sizes, dir: &Path) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("larder vs raw redb: document workloads");
    println!(
        "machine: {cores} cores available; scale {} (LARDER_BENCH_SCALE)",
        sizes.scale
    );
    println!(
        "durability: fsync on every commit (redb Durability::Immediate) on {} ({})",
        dir.display(),
        filesystem_of(dir)
    );
    println!(
        "sizes: {} single inserts, {} bulk docs, {} point gets; best of {READ_REPS} for reads; \
         ratio = larder/redb",
        sizes.single_inserts, sizes.bulk_docs, sizes.point_gets
    );
}

/// The filesystem type and mount point holding `dir`, from `/proc/self/mounts` (Linux).
fn filesystem_of(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return "filesystem unknown".into();
    };
    let mut best: Option<(PathBuf, String, String)> = None;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(device), Some(mount), Some(kind)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let mount = PathBuf::from(mount.replace("\\040", " "));
        let longer = best
            .as_ref()
            .is_none_or(|(b, _, _)| mount.as_os_str().len() >= b.as_os_str().len());
        if dir.starts_with(&mount) && longer {
            best = Some((mount, kind.to_owned(), device.to_owned()));
        }
    }
    match best {
        Some((mount, kind, device)) => {
            format!("{kind} on {device}, mounted at {}", mount.display())
        }
        None => "filesystem unknown".into(),
    }
}
