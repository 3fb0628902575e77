//! Change-feed benchmarks: what subscribers cost writers, how fast changes reach them, what an
//! idle subscriber weighs and how fast a lagging one catches up from the log.
//!
//! ```text
//! cargo bench --features http --bench feed                         # full size (about 15 s)
//! LARDER_BENCH_SCALE=0.1 cargo bench --features http --bench feed  # quick smoke run
//! ```
//!
//! Every run uses a real file in a fresh temporary directory and durable commits, and the
//! documents of `benches/documents.rs` (about 210 bytes of JSON).
//!
//! 1. **memory per idle subscriber**: the resident-memory growth of 10,000 subscriptions
//!    held open without a thread each (as an async server holds them), divided by 10,000;
//!    measured first, before other workloads leave memory to reuse. Socket buffers of a
//!    served stream come on top. Target: <= 16 KiB.
//! 2. **writes with subscribers**: 500 durable inserts/s for 4 s (2,000 writes), with no
//!    subscriber and then with 1,000 subscribers on the same collection, each receiving every
//!    change (tasks of a two-worker tokio runtime awaiting `recv()`, as `larder serve` holds
//!    its streams). The rate reached and each insert's time. Target: >= 0.9x the rate with no
//!    subscriber. As context, the same 2,000 inserts as fast as 4 writer threads go.
//! 3. **delivery latency**, in the paced run with subscribers: the time from a write's commit
//!    returning to each subscriber receiving it, p50, p99 and max over all deliveries.
//! 4. **catch-up from the log**: 50,000 changes (in transactions of ten) written while a
//!    subscriber was away, read from `Since::Seq(0)`. Target: >= 50,000 changes/s.
//!
//! 5. **idle SSE streams**: 10,000 `GET /api/realtime/items` streams held open on one server
//!    (an in-memory database served as `larder serve` serves it, in a child process, since one
//!    process may hold 20,000 files here): the server's resident-memory growth per stream, and
//!    the time from one write's answer until every stream has read its event. Target: <= 16
//!    KiB per stream.
//!
//! `LARDER_BENCH_SCALE` (default `1`) multiplies the counts; below 0.5 the subscriber count of
//! 2 and 3 is 100 instead of 1,000, to keep smoke runs short.

use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use larder::{Collection, CollectionSpec, Db, FeedEvent, Filter, Since};
use serde_json::{Value, json};

type BenchResult<T> = Result<T, Box<dyn Error>>;

fn main() -> BenchResult<()> {
    if std::env::var_os(SERVE_ENV).is_some() {
        return serve_for_the_parent();
    }
    let scale: f64 = match std::env::var("LARDER_BENCH_SCALE") {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|e| format!("LARDER_BENCH_SCALE={text:?}: {e}"))?,
        Err(_) => 1.0,
    };
    if !(scale.is_finite() && scale > 0.0) {
        return Err(format!("LARDER_BENCH_SCALE must be a positive number, not {scale}").into());
    }
    let scaled = |n: f64, min: usize| ((n * scale).round() as usize).max(min);
    let subscribers = if scale < 0.5 { 100 } else { 1_000 };
    let writes = scaled(2_000.0, 100);
    let dir = tempfile::tempdir()?;
    println!(
        "larder change-feed benchmark (scale {scale}; {} cores; files in {})",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        dir.path().display()
    );
    println!();

    let started = Instant::now();
    let idle = scaled(10_000.0, 1_000);
    let per_subscriber = idle_memory(&dir.path().join("idle.redb"), idle)?;
    println!(
        "{:<44} {:>9.1} KiB each (target <= 16 KiB)",
        format!("1. {idle} idle subscriptions"),
        per_subscriber / 1024.0
    );

    let quiet = paced(&dir.path().join("paced-alone.redb"), writes, 0, 500.0)?;
    let busy = paced(&dir.path().join("paced.redb"), writes, subscribers, 500.0)?;
    println!(
        "{:<46} {:>6.0} writes/s   insert p50 {:>5.2} ms  p99 {:>6.2} ms",
        "2. 500 writes/s, no subscriber",
        quiet.rate,
        percentile(&quiet.commits, 0.5),
        percentile(&quiet.commits, 0.99)
    );
    println!(
        "{:<46} {:>6.0} writes/s   insert p50 {:>5.2} ms  p99 {:>6.2} ms   ratio {:.2}x (target >= 0.9x)",
        format!("   with {subscribers} subscribers"),
        busy.rate,
        percentile(&busy.commits, 0.5),
        percentile(&busy.commits, 0.99),
        busy.rate / quiet.rate
    );
    println!(
        "{:<46} p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>7.2} ms   ({} deliveries)",
        "3. commit -> subscriber, same run",
        percentile(&busy.latencies, 0.50),
        percentile(&busy.latencies, 0.99),
        percentile(&busy.latencies, 1.0),
        busy.latencies.len()
    );
    let alone = write_rate(&dir.path().join("alone.redb"), writes, 0)?;
    let watched = write_rate(&dir.path().join("watched.redb"), writes, subscribers)?;
    println!(
        "{:<46} {:>6.0} writes/s alone, {:.0} with {subscribers} subscribers ({:.2}x)",
        "   (context) as fast as 4 writers can",
        alone,
        watched,
        watched / alone
    );

    let changes = scaled(50_000.0, 1_000);
    let rate = catch_up(&dir.path().join("catch-up.redb"), changes)?;
    println!(
        "{:<44} {:>9.0} changes/s (target >= 50,000)",
        format!("4. catch-up of {changes} changes from the log"),
        rate
    );
    let streams = scaled(10_000.0, 500);
    let held = held_streams(streams)?;
    println!(
        "{:<46} {:>9.1} KiB each in the server; one write reached all in {:.0} ms",
        format!("5. {} idle SSE streams on one server", held.streams),
        held.bytes_per_stream / 1024.0,
        held.fan_out_ms
    );
    println!();
    println!("total bench time {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Set in the child process that serves for `held_streams`.
const SERVE_ENV: &str = "LARDER_FEED_BENCH_SERVE";

/// The child's side: an in-memory database served as `larder serve` serves it, its address
/// and key on stdout; it runs until its stdin closes.
fn serve_for_the_parent() -> BenchResult<()> {
    let db = Db::in_memory()?;
    db.collections().create("items", CollectionSpec::new())?;
    let key = db
        .keys()
        .create(larder::NewApiKey::new(larder::KeyKind::Secret, "bench"))?
        .secret;
    let config = larder::ServerConfig {
        max_connections: 12_000,
        ..larder::ServerConfig::default()
    };
    let server = larder::Server::start_with(db, "127.0.0.1:0", config)?;
    println!("{} {key}", server.addr());
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut rest);
    server.shutdown();
    Ok(())
}

struct Held {
    streams: usize,
    bytes_per_stream: f64,
    fan_out_ms: f64,
}

/// Opens `count` event streams on a server in a child process (each process may hold 20,000
/// files here, so the two ends live apart), measures the server's resident-memory growth, then
/// one write's time until every stream has read it.
fn held_streams(count: usize) -> BenchResult<Held> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .env(SERVE_ENV, "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let (addr, key) = line
        .trim()
        .split_once(' ')
        .ok_or("the server did not start")?;
    let addr: std::net::SocketAddr = addr.parse()?;
    let rss = |pid: u32| -> BenchResult<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .ok_or("no VmRSS")?
            .trim()
            .trim_end_matches(" kB")
            .trim()
            .parse()?;
        Ok(kib * 1024)
    };
    let request =
        format!("GET /api/realtime/items HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {key}\r\n\r\n");
    // Warm the server up with a few streams first, so the measure is per stream, not the
    // runtime's first allocations.
    let mut streams = Vec::with_capacity(count + 50);
    let open = |streams: &mut Vec<std::net::TcpStream>| -> BenchResult<()> {
        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.write_all(request.as_bytes())?;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !seen.windows(12).any(|w| w == b"event: ready") {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Err("a stream closed before ready".into());
            }
            seen.extend_from_slice(&buf[..n]);
        }
        streams.push(stream);
        Ok(())
    };
    for _ in 0..50 {
        open(&mut streams)?;
    }
    let before = rss(child.id())?;
    for _ in 0..count {
        open(&mut streams)?;
    }
    let after = rss(child.id())?;
    let body = r#"{"n": 1}"#;
    let post = format!(
        "POST /api/data/items HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut writer = std::net::TcpStream::connect(addr)?;
    writer.write_all(post.as_bytes())?;
    let mut answer = String::new();
    writer.read_to_string(&mut answer)?;
    if !answer.starts_with("HTTP/1.1 201") {
        return Err(format!("the write failed: {answer}").into());
    }
    let written = Instant::now();
    let mut buf = [0u8; 4096];
    for stream in &mut streams {
        let mut seen = Vec::new();
        while !seen.windows(13).any(|w| w == b"event: insert") {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Err("a stream closed before the insert".into());
            }
            seen.extend_from_slice(&buf[..n]);
        }
    }
    let fan_out_ms = written.elapsed().as_secs_f64() * 1000.0;
    drop(streams);
    drop(child.stdin.take());
    let _ = child.wait();
    Ok(Held {
        streams: count,
        bytes_per_stream: after.saturating_sub(before) as f64 / count as f64,
        fan_out_ms,
    })
}

fn open(path: &std::path::Path) -> BenchResult<(Db, Collection<Value>)> {
    let db = Db::open(path)?;
    db.collections().create("items", CollectionSpec::new())?;
    let items = db.collection::<Value>("items");
    Ok((db, items))
}

fn doc(i: usize) -> Value {
    json!({
        "title": format!("item {i}"),
        "category": format!("c{}", i % 100),
        "priority": i % 10,
        "done": i.is_multiple_of(3),
        "tags": ["alpha", "beta"],
        "body": "a realistic body of text that pads the document to about two hundred bytes of JSON.",
    })
}

/// Subscribers as tasks of a two-worker tokio runtime (as `larder serve` holds its streams),
/// each counting the changes it receives until `expected`.
fn spawn_subscribers(
    runtime: &tokio::runtime::Runtime,
    items: &Collection<Value>,
    count: usize,
    expected: usize,
    on_change: Arc<dyn Fn(&Value) + Send + Sync>,
) -> BenchResult<Vec<tokio::task::JoinHandle<usize>>> {
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let mut feed = items.subscribe(Filter::All, Since::Now)?;
        let on_change = Arc::clone(&on_change);
        tasks.push(runtime.spawn(async move {
            let mut received = 0;
            while received < expected {
                match feed.recv().await {
                    Some(Ok(FeedEvent::Batch(batch))) => {
                        for change in &batch.changes {
                            if let Some(doc) = &change.doc {
                                on_change(&doc.data);
                            }
                        }
                        received += batch.changes.len();
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => panic!("feed error: {error}"),
                    None => panic!("a subscription ended"),
                }
            }
            received
        }));
    }
    Ok(tasks)
}

fn runtime() -> BenchResult<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn join_all(
    runtime: &tokio::runtime::Runtime,
    tasks: Vec<tokio::task::JoinHandle<usize>>,
    expected: usize,
) -> BenchResult<()> {
    for task in tasks {
        let received = runtime.block_on(task)?;
        assert_eq!(received, expected, "every subscriber receives every change");
    }
    Ok(())
}

/// Inserts per second by 4 writers, with `subscribers` receiving every change.
fn write_rate(path: &std::path::Path, writes: usize, subscribers: usize) -> BenchResult<f64> {
    let (_db, items) = open(path)?;
    let runtime = runtime()?;
    let tasks = spawn_subscribers(&runtime, &items, subscribers, writes, Arc::new(|_| {}))?;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for writer in 0..4 {
            let items = &items;
            scope.spawn(move || {
                for i in (writer..writes).step_by(4) {
                    items.insert(&doc(i)).expect("insert");
                }
            });
        }
    });
    let rate = writes as f64 / started.elapsed().as_secs_f64();
    join_all(&runtime, tasks, writes)?;
    Ok(rate)
}

/// A paced run: the write rate reached, each insert's time (ms, sorted) and each delivery's
/// time from the commit returning to the subscriber receiving it (ms, sorted).
struct Paced {
    rate: f64,
    commits: Vec<f64>,
    latencies: Vec<f64>,
}

/// `writes` inserts at `per_second`, with `subscribers` receiving every change.
fn paced(
    path: &std::path::Path,
    writes: usize,
    subscribers: usize,
    per_second: f64,
) -> BenchResult<Paced> {
    let (_db, items) = open(path)?;
    let epoch = Instant::now();
    // When each write's commit returned, by write number (µs since `epoch`).
    let committed: Arc<Vec<AtomicU64>> = Arc::new((0..writes).map(|_| AtomicU64::new(0)).collect());
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(writes * subscribers)));
    let on_change = {
        let committed = Arc::clone(&committed);
        let latencies = Arc::clone(&latencies);
        Arc::new(move |data: &Value| {
            let now = epoch.elapsed().as_micros() as u64;
            let n = data["n"].as_u64().unwrap_or(0) as usize;
            // The writer stores the commit time right after insert returns; a subscriber can
            // be faster than that store, so wait for it.
            let mut at = committed[n].load(Ordering::Acquire);
            while at == 0 {
                std::hint::spin_loop();
                at = committed[n].load(Ordering::Acquire);
            }
            let latency = now.saturating_sub(at) as f64 / 1000.0;
            latencies.lock().unwrap().push(latency);
        })
    };
    let runtime = runtime()?;
    let tasks = spawn_subscribers(&runtime, &items, subscribers, writes, on_change)?;
    let mut commits = Vec::with_capacity(writes);
    let interval = Duration::from_secs_f64(1.0 / per_second);
    let start = Instant::now();
    for n in 0..writes {
        let due = start + interval * n as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let mut value = doc(n);
        value["n"] = json!(n);
        let began = Instant::now();
        items.insert(&value)?;
        commits.push(began.elapsed().as_secs_f64() * 1000.0);
        committed[n].store(epoch.elapsed().as_micros().max(1) as u64, Ordering::Release);
    }
    let rate = writes as f64 / start.elapsed().as_secs_f64();
    join_all(&runtime, tasks, writes)?;
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort_by(f64::total_cmp);
    commits.sort_by(f64::total_cmp);
    Ok(Paced {
        rate,
        commits,
        latencies,
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

/// Resident-memory growth per open subscription (bytes). Run first, before other workloads
/// leave freed memory for the allocator to reuse.
fn idle_memory(path: &std::path::Path, count: usize) -> BenchResult<f64> {
    let (_db, items) = open(path)?;
    items.insert(&doc(0))?;
    let before = resident_bytes()?;
    let held: Vec<_> = (0..count)
        .map(|_| items.subscribe(Filter::All, Since::Now))
        .collect::<Result<_, _>>()?;
    let after = resident_bytes()?;
    drop(held);
    Ok(after.saturating_sub(before) as f64 / count as f64)
}

fn resident_bytes() -> BenchResult<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .ok_or("unreadable /proc/self/statm")?
        .parse()?;
    Ok(pages * 4096)
}

/// Changes per second read back from the log by a subscriber that was away.
fn catch_up(path: &std::path::Path, changes: usize) -> BenchResult<f64> {
    let (_db, items) = open(path)?;
    // Ten documents per transaction, from four writers sharing commits, to load quickly.
    let batches: Vec<Vec<Value>> = (0..changes)
        .collect::<Vec<_>>()
        .chunks(10)
        .map(|chunk| chunk.iter().map(|&i| doc(i)).collect())
        .collect();
    std::thread::scope(|scope| {
        for writer in 0..4 {
            let (items, batches) = (&items, &batches);
            scope.spawn(move || {
                for batch in batches.iter().skip(writer).step_by(4) {
                    items.insert_many(batch).expect("insert");
                }
            });
        }
    });
    let started = Instant::now();
    let mut feed = items.subscribe(Filter::All, Since::Seq(0))?;
    let mut received = 0;
    while received < changes {
        match feed.next_timeout(Duration::from_secs(60)) {
            Some(Ok(FeedEvent::Batch(batch))) => received += batch.changes.len(),
            Some(Ok(_)) => {}
            other => return Err(format!("catch-up stopped: {other:?}").into()),
        }
    }
    Ok(changes as f64 / started.elapsed().as_secs_f64())
}
