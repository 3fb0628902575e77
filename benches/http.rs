//! The HTTP front: how fast the test fixture starts, and how many authenticated GETs per second
//! it serves on loopback, measured by a keep-alive load generator in this file (16 connections
//! over 2 threads by default: the same shape as `wrk -c16 -t2`).
//!
//! ```text
//! cargo bench --bench http --features testing
//! LARDER_BENCH_SECONDS=2 LARDER_BENCH_CONNECTIONS=16 cargo bench --bench http --features testing
//! ```
//!
//! Each answer is checked to be `200` with the document; anything else aborts the bench.

use std::error::Error;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use larder::testing::TestServer;
use larder::{Client, CollectionSpec, NewUser, Rule, Rules};
use serde_json::json;

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One keep-alive connection sending the same GET again and again; returns answers counted.
fn hammer(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> BenchResult<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut buffer = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        stream.write_all(&request)?;
        // Read one full answer: the head, then Content-Length bytes.
        let mut filled = 0;
        let (head_end, length) = loop {
            let n = stream.read(&mut buffer[filled..])?;
            if n == 0 {
                return Err("connection closed".into());
            }
            filled += n;
            if let Some(end) = buffer[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&buffer[..end])?;
                if !head.starts_with("HTTP/1.1 200") {
                    return Err(format!("unexpected answer: {head}").into());
                }
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>())
                    })
                    .ok_or("no content-length")??;
                break (end + 4, length);
            }
        };
        while filled < head_end + length {
            let n = stream.read(&mut buffer[filled..])?;
            if n == 0 {
                return Err("connection closed".into());
            }
            filled += n;
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

fn main() -> BenchResult<()> {
    let seconds = env_number("LARDER_BENCH_SECONDS", 5);
    let connections = env_number("LARDER_BENCH_CONNECTIONS", 16) as usize;
    println!("larder HTTP front on loopback");
    println!(
        "machine: {} cores available; {connections} keep-alive connections, {seconds} s",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // Start-to-ready of the test fixture: database, keys, runtime, bound socket.
    let mut starts = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let server = TestServer::start()?;
        let ready = started.elapsed();
        TcpStream::connect(server.addr())?;
        starts.push(ready);
        server.shutdown();
    }
    starts.sort();
    println!(
        "TestServer::start to ready: median {:.2} ms, best {:.2} ms, worst {:.2} ms (20 starts)",
        starts[10].as_secs_f64() * 1000.0,
        starts[0].as_secs_f64() * 1000.0,
        starts[19].as_secs_f64() * 1000.0
    );

    let server = TestServer::start()?;
    let rules = Rules {
        list: Rule::Authenticated,
        view: Rule::Authenticated,
        create: Rule::Authenticated,
        update: Rule::Owner,
        delete: Rule::Owner,
    };
    server.db.collections().create(
        "items",
        CollectionSpec::new().rules(rules).owner_field("owner"),
    )?;
    let user = server.db.users().signup(
        NewUser::new("load@example.com", "a long enough passphrase"),
        &Client::unknown(),
    )?;
    let doc = server
        .db
        .collection::<serde_json::Value>("items")
        .insert(&json!({"title": "load", "n": 1, "body": "x".repeat(150)}))?;
    let request = Arc::new(
        format!(
            "GET /api/data/items/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {}\r\nAuthorization: Bearer {}\r\n\r\n",
            doc.id, server.publishable_key, user.access_token
        )
        .into_bytes(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (request, stop, done, addr) =
                (request.clone(), stop.clone(), done.clone(), server.addr());
            std::thread::spawn(move || hammer(addr, request, stop, done))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500)); // warm-up
    let before = done.load(Ordering::Relaxed);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let served = done.load(Ordering::Relaxed) - before;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().map_err(|_| "a load thread panicked")??;
    }
    println!(
        "authenticated GET /api/data/items/{{id}} (pk + user Bearer, owner rules): {:.0} requests/s",
        served as f64 / elapsed.as_secs_f64()
    );
    println!("(the load generator shares the 2 cores with the server)");
    Ok(())
}
