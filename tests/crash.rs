//! kill -9 at random points: a child process writes documents whose content derives from their
//! id and prints each id only after the write was acknowledged; the parent kills it with SIGKILL
//! after a random delay, reopens the file, and checks that every acknowledged document is there
//! byte-identical, that no document is partial, and that redb's integrity check passes. Then the
//! same through `larder serve` over HTTP.
//!
//! Environment variables:
//! - `LARDER_CRASH_KILLS`: kills per test (default 12; the long mode is 200 or more),
//! - `LARDER_CRASH_SEED`: the seed of the kill delays (default: from the time, printed).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use larder::{CollectionSpec, Db, Query};
use serde_json::{Value, json};

/// How long a child may live if nobody kills it (it then exits by itself).
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

fn kills() -> usize {
    std::env::var("LARDER_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

fn rng(test: &str) -> fastrand::Rng {
    let seed = std::env::var("LARDER_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("{test}: LARDER_CRASH_SEED={seed}");
    fastrand::Rng::with_seed(seed)
}

/// FNV-1a, so the content of a key is a pure function of the key.
fn hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The data of the document with this key: sizes from a few bytes to several pages, so that
/// commits span one or many pages.
fn body_of(key: &str) -> Value {
    let h = hash(key);
    let len = if h.is_multiple_of(8) {
        20_000 + (h % 30_000) as usize
    } else {
        (h % 3000) as usize
    };
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let payload: String = (0..len)
        .map(|i| alphabet[((h >> (i % 50)) as usize + i) % alphabet.len()] as char)
        .collect();
    json!({"key": key, "h": h, "payload": payload, "tags": [h % 7, h % 11]})
}

/// Reopens the file after a crash and checks it: integrity first, then every acknowledged key
/// present with its exact content, and every present document whole.
fn verify(path: &Path, acked: &BTreeMap<String, Option<String>>) -> usize {
    let db = Db::open(path).expect("a crashed file must reopen");
    assert!(
        db.check_integrity().unwrap(),
        "integrity check after reopen"
    );
    let db = Db::open(path).unwrap();
    let docs = db.collection::<Value>("crash").find(&Query::new()).unwrap();
    let mut present = BTreeMap::new();
    for doc in &docs {
        let key = doc.data["key"]
            .as_str()
            .expect("a partial document")
            .to_owned();
        assert_eq!(doc.data, body_of(&key), "document {key} is not whole");
        present.insert(key, doc.id.clone());
    }
    for (key, id) in acked {
        let found = present.get(key);
        assert!(found.is_some(), "acknowledged document {key} is missing");
        if let Some(id) = id {
            assert_eq!(found, Some(id), "acknowledged document {key} changed id");
        }
    }
    docs.len()
}

fn create_file(path: &Path) {
    let db = Db::open(path).unwrap();
    db.collections()
        .create("crash", CollectionSpec::new())
        .unwrap();
}

/// Reads a child's lines on a thread, so the parent can kill it at any moment.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

// ---------------------------------------------------------------------------------------------
// The library

/// The child: inserts single documents and batches of three, printing each key once its write
/// returned `Ok`.
fn library_child(path: &str, run: &str) -> ! {
    let started = Instant::now();
    let db = Db::open(path).unwrap();
    let crash = db.collection::<Value>("crash");
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    for n in 0.. {
        if started.elapsed() > CHILD_LIFETIME {
            std::process::exit(3);
        }
        let keys: Vec<String> = if n % 4 == 3 {
            (0..3).map(|k| format!("{run}-{n}-{k}")).collect()
        } else {
            vec![format!("{run}-{n}")]
        };
        let docs: Vec<Value> = keys
            .iter()
            .map(|key| {
                let mut doc = body_of(key);
                doc["id"] = json!(key);
                doc
            })
            .collect();
        if docs.len() == 1 {
            crash.insert(&docs[0]).unwrap();
        } else {
            crash.insert_many(&docs).unwrap();
        }
        for key in keys {
            writeln!(out, "ack {key}").unwrap();
        }
        out.flush().unwrap();
    }
    unreachable!()
}

#[test]
fn kill_9_never_loses_an_acknowledged_write() {
    if let (Ok(path), Ok(run)) = (
        std::env::var("LARDER_CRASH_CHILD_DB"),
        std::env::var("LARDER_CRASH_CHILD_RUN"),
    ) {
        library_child(&path, &run);
    }
    let mut rng = rng("kill_9_never_loses_an_acknowledged_write");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    create_file(&path);
    let mut acked: BTreeMap<String, Option<String>> = BTreeMap::new();
    for run in 0..kills() {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "kill_9_never_loses_an_acknowledged_write",
                "--nocapture",
            ])
            .env("LARDER_CRASH_CHILD_DB", &path)
            .env("LARDER_CRASH_CHILD_RUN", run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = lines_of(&mut child);
        // Wait for the open, then kill 0-200 ms into the write burst.
        // (The test harness prints its own lines first.)
        loop {
            let line = lines.recv_timeout(Duration::from_secs(30));
            match line.as_deref() {
                Ok(line) if line.ends_with("ready") => break,
                Ok(_) => {}
                Err(e) => panic!("the child did not start: {e}"),
            }
        }
        std::thread::sleep(Duration::from_micros(rng.u64(0..200_000)));
        child.kill().unwrap();
        child.wait().unwrap();
        // The reader thread ends at EOF; everything it read was printed after an ack.
        for line in lines.iter() {
            if let Some((_, key)) = line.rsplit_once("ack ") {
                acked.insert(key.to_owned(), None);
            }
        }
        verify(&path, &acked);
    }
    assert!(!acked.is_empty(), "the children acknowledged nothing");
    println!("{} kills, {} acknowledged documents", kills(), acked.len());
}

// ---------------------------------------------------------------------------------------------
// `larder serve`

#[cfg(feature = "cli")]
const ADMIN_KEY: &str = "sk_live_crash_test_admin_key_0123456789abcdef";

/// Starts `larder serve` on a free port and returns it with its address.
#[cfg(feature = "cli")]
fn serve(path: &Path) -> (Child, std::net::SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(["serve", "--http", "127.0.0.1:0", "--db"])
        .arg(path)
        .env("LARDER_ADMIN_KEY", ADMIN_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = common::wire::announced_addr(&mut child);
    (child, addr)
}

#[cfg(feature = "cli")]
#[test]
fn kill_9_of_larder_serve_never_loses_an_acknowledged_write() {
    use common::wire::request;

    let mut rng = rng("kill_9_of_larder_serve_never_loses_an_acknowledged_write");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("served.redb");
    create_file(&path);
    let mut acked: BTreeMap<String, Option<String>> = BTreeMap::new();
    // Each start costs a process and a port: a quarter of the library kills.
    let rounds = kills().div_ceil(4).max(3);
    for run in 0..rounds {
        let (mut server, addr) = serve(&path);
        let (send, receive) = mpsc::channel();
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let send = send.clone();
                std::thread::spawn(move || {
                    for n in 0.. {
                        let key = format!("http-{run}-{w}-{n}");
                        let reply = request(
                            addr,
                            "POST",
                            "/api/data/crash",
                            &[("x-api-key", ADMIN_KEY)],
                            Some(&body_of(&key)),
                        );
                        if reply.status != 201 {
                            // The server died under us (status 0); anything else is a bug.
                            assert_eq!(reply.status, 0, "{}", reply.body);
                            break;
                        }
                        let id = reply.json()["data"]["_id"].as_str().unwrap().to_owned();
                        if send.send((key, id)).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        drop(send);
        // Kill after a random number of acknowledged writes, up to 40.
        let target = rng.usize(1..40);
        let mut seen = Vec::new();
        while seen.len() < target {
            match receive.recv_timeout(Duration::from_secs(30)) {
                Ok(ack) => seen.push(ack),
                Err(e) => panic!("the writers stopped: {e}"),
            }
        }
        server.kill().unwrap();
        server.wait().unwrap();
        for writer in writers {
            writer.join().unwrap();
        }
        seen.extend(receive.iter());
        for (key, id) in seen {
            acked.insert(key, Some(id));
        }
        verify(&path, &acked);
    }
    println!(
        "{rounds} kills of larder serve, {} acknowledged documents",
        acked.len()
    );
}

#[test]
fn a_file_that_crashed_during_creation_opens() {
    // The smallest crash: a child creates the file and is killed at once, over and over.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.redb");
    if let Ok(path) = std::env::var("LARDER_CRASH_CREATE_CHILD") {
        let _ = Db::open(&path);
        std::process::exit(0);
    }
    let mut rng = rng("a_file_that_crashed_during_creation_opens");
    for _ in 0..kills().min(20) {
        let _ = std::fs::remove_file(&path);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "a_file_that_crashed_during_creation_opens"])
            .env("LARDER_CRASH_CREATE_CHILD", &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.u64(0..20_000)));
        let _ = child.kill();
        child.wait().unwrap();
        match Db::open(&path) {
            Ok(db) => assert!(db.check_integrity().unwrap()),
            Err(e) => panic!("a half-created file must open: {e:?} ({:?})", e.kind()),
        }
    }
}
