//! Opening files: creation, reopening, foreign and newer files, double opens, in-memory.

mod common;

use std::fs;

use common::{TestDb, kind};
use larder::{CollectionSpec, Db, ErrorKind};
use serde_json::json;

#[test]
fn open_creates_a_missing_file_and_reopen_keeps_everything() {
    let t = TestDb::new().with_collection("notes", CollectionSpec::new().index("n"));
    assert!(t.path.exists());
    let notes: larder::Collection = t.db.collection("notes");
    let a = notes.insert(&json!({"n": 1, "text": "kept"})).unwrap();
    let b = notes.insert(&json!({"id": "chosen", "n": 2})).unwrap();
    notes.patch(&b.id, &json!({"n": 3})).unwrap();
    drop(notes); // every handle shares the file; the last one to go closes it

    let t = t.reopen();
    let notes: larder::Collection = t.db.collection("notes");
    assert_eq!(notes.get(&a.id).unwrap().unwrap(), a);
    assert_eq!(notes.get("chosen").unwrap().unwrap().data, json!({"n": 3}));
    assert_eq!(
        t.db.collections().info("notes").unwrap().spec.indexes,
        ["n"]
    );
    // The index survived too: an indexed lookup finds the patched value.
    assert_eq!(notes.count(&larder::Filter::eq("n", 3)).unwrap(), 1);
}

#[test]
fn an_empty_file_becomes_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.redb");
    fs::write(&path, b"").unwrap();
    let db = Db::open(&path).unwrap();
    assert!(db.collections().list().unwrap().is_empty());
}

#[test]
fn foreign_files_are_refused_and_left_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("text.txt", b"hello, I am a text file\n".to_vec()),
        ("zeros.bin", vec![0; 8192]),
        ("short.bin", b"re".to_vec()),
        ("sqlite.db", b"SQLite format 3\0rest of the header".to_vec()),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        fs::write(&path, &bytes).unwrap();
        assert_eq!(kind(Db::open(&path)), ErrorKind::NotALarderFile, "{name}");
        assert_eq!(fs::read(&path).unwrap(), bytes, "{name} was modified");
    }
}

#[test]
fn a_plain_redb_file_is_refused_and_left_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn
                .open_table(redb::TableDefinition::<&str, u64>::new("theirs"))
                .unwrap();
            table.insert("k", 1).unwrap();
        }
        txn.commit().unwrap();
    }
    let before = fs::read(&path).unwrap();
    assert_eq!(kind(Db::open(&path)), ErrorKind::NotALarderFile);
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn a_newer_format_is_refused_and_left_byte_identical() {
    let t = TestDb::new();
    let path = t.path.clone();
    drop(t.db);
    {
        // Pretend a future larder wrote the file.
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn
                .open_table(redb::TableDefinition::<&str, u64>::new("larder_meta"))
                .unwrap();
            meta.insert("format_version", 99).unwrap();
        }
        txn.commit().unwrap();
    }
    let before = fs::read(&path).unwrap();
    assert_eq!(
        kind(Db::open(&path)),
        ErrorKind::UnsupportedFormat {
            found: 99,
            supported: 1
        }
    );
    assert_eq!(fs::read(&path).unwrap(), before);
    let message = Db::open(&path).unwrap_err().to_string();
    assert!(
        message.contains("99") && message.contains("upgrade"),
        "{message}"
    );
}

#[test]
fn a_second_open_in_the_same_process_is_refused() {
    let t = TestDb::new();
    assert_eq!(kind(Db::open(&t.path)), ErrorKind::AlreadyOpen);
    // The first handle is unaffected.
    t.db.collections()
        .create("still_fine", CollectionSpec::new())
        .unwrap();
    drop(t.db);
    Db::open(&t.path).unwrap();
}

#[test]
fn a_second_open_from_another_process_is_refused() {
    // The child is this very test binary, re-run with an environment variable telling it to
    // open the file and report what happened.
    if let Ok(path) = std::env::var("LARDER_TEST_OPEN_CHILD") {
        match Db::open(&path) {
            Err(e) if *e.kind() == ErrorKind::AlreadyOpen => std::process::exit(42),
            Err(_) => std::process::exit(2),
            Ok(_) => std::process::exit(0),
        }
    }
    let t = TestDb::new();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_second_open_from_another_process_is_refused",
            "--nocapture",
        ])
        .env("LARDER_TEST_OPEN_CHILD", &t.path)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(42), "the child should see AlreadyOpen");
}

#[test]
fn in_memory_databases_are_independent() {
    let a = Db::in_memory().unwrap();
    let b = Db::in_memory().unwrap();
    a.collections().create("x", CollectionSpec::new()).unwrap();
    assert!(b.collections().list().unwrap().is_empty());
    assert!(a.path().is_none());
}

#[test]
fn the_handle_is_cheap_clone_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Db>();
    assert_send_sync::<larder::Collection>();
    let db = Db::in_memory().unwrap();
    db.collections()
        .create("shared", CollectionSpec::new())
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let db = db.clone();
            std::thread::spawn(move || {
                let c: larder::Collection = db.collection("shared");
                for j in 0..25 {
                    c.insert(&json!({"thread": i, "j": j})).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(db.collections().info("shared").unwrap().document_count, 100);
}

#[test]
fn integrity_check_passes_after_writes() {
    let t = TestDb::new().with_collection("c", CollectionSpec::new().index("v"));
    let c: larder::Collection = t.db.collection("c");
    for i in 0..50 {
        c.insert(&json!({"v": i})).unwrap();
    }
    drop(c);
    assert!(t.db.check_integrity().unwrap());
}

#[test]
fn integrity_check_needs_the_only_handle() {
    let db = Db::in_memory().unwrap();
    let other = db.clone();
    assert!(common::is_invalid(db.check_integrity()));
    drop(other);
}
