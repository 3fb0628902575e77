//! A full disk: `larder serve` runs with a file size limit (`ulimit -f`, with SIGXFSZ ignored
//! so the write fails with EFBIG instead of killing the process), is filled with documents until
//! a write fails, and must answer 507 with a generic body, keep serving reads, and lose nothing
//! it acknowledged. With the limit lifted (space freed) and the server restarted, every
//! acknowledged document is there and writes succeed again.
#![cfg(feature = "cli")]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::wire::request;
use larder::{CollectionSpec, Db, Query};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "sk_live_disk_full_test_admin_key_0123456789abcdef";

/// `larder serve` on a free port, under a file size limit of `limit_blocks` 512-byte blocks.
fn serve(path: &Path, limit_blocks: Option<u64>) -> (Child, std::net::SocketAddr) {
    let limit = limit_blocks.map_or(String::new(), |b| format!("ulimit -f {b}; "));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("trap '' XFSZ; {limit}exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_larder"))
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

#[test]
fn a_full_disk_is_507_loses_nothing_and_writes_resume_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.redb");
    {
        let db = Db::open(&path).unwrap();
        db.collections()
            .create("docs", CollectionSpec::new())
            .unwrap();
        db.keys().import_secret(ADMIN_KEY, "test").unwrap();
    }
    let size = std::fs::metadata(&path).unwrap().len();
    // Room for about 2 MiB more.
    let (mut server, addr) = serve(&path, Some(size / 512 + 4096));
    let mut acked: Vec<(String, Value)> = Vec::new();
    let mut refusal = None;
    for n in 0..2000 {
        let body = json!({"n": n, "text": "f".repeat(16 * 1024)});
        let reply = request(
            addr,
            "POST",
            "/api/data/docs",
            &[("x-api-key", ADMIN_KEY)],
            Some(&body),
        );
        if reply.status == 201 {
            acked.push((
                reply.json()["data"]["_id"].as_str().unwrap().to_owned(),
                body,
            ));
        } else {
            refusal = Some(reply);
            break;
        }
    }
    let refusal = refusal.expect("the size limit was never reached");
    assert_eq!(refusal.status, 507, "{refusal:?}");
    assert_eq!(
        refusal.json()["error"],
        "the server is out of storage space"
    );
    assert!(acked.len() > 10, "only {} writes fit", acked.len());
    // Later writes keep failing cleanly (507, or 503 once redb refuses writes until a
    // reopen); the process is alive and still serves what it has.
    for _ in 0..3 {
        let reply = request(
            addr,
            "POST",
            "/api/data/docs",
            &[("x-api-key", ADMIN_KEY)],
            Some(&json!({"more": true})),
        );
        assert!(matches!(reply.status, 503 | 507), "{reply:?}");
    }
    // Health says so (503, for a supervisor to restart it), while the process still answers.
    let health = request(addr, "GET", "/api/health", &[], None);
    assert_eq!(health.status, 503, "{health:?}");
    assert_eq!(health.json()["status"], "degraded");
    assert_eq!(health.json()["writable"], false);
    assert_eq!(server.try_wait().unwrap(), None, "the server died");
    server.kill().unwrap();
    server.wait().unwrap();

    // Space freed: the same file, no limit.
    let (mut server, addr) = serve(&path, None);
    let reply = request(
        addr,
        "POST",
        "/api/data/docs",
        &[("x-api-key", ADMIN_KEY)],
        Some(&json!({"after": "space was freed"})),
    );
    assert_eq!(reply.status, 201, "{reply:?}");
    server.kill().unwrap();
    server.wait().unwrap();

    let db = Db::open(&path).unwrap();
    let stored: std::collections::BTreeMap<String, Value> = db
        .collection::<Value>("docs")
        .find(&Query::new())
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.data))
        .collect();
    for (id, body) in &acked {
        assert_eq!(stored.get(id), Some(body), "acknowledged {id} was lost");
    }
    assert_eq!(stored.len(), acked.len() + 1);
}
