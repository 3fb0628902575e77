//! Damaged and foreign files: truncated, zeroed and bit-flipped copies of a real database, a
//! text file and others. Opening never panics or aborts: it succeeds on what redb can read
//! (checked in full), or fails with a typed error; foreign files stay byte-identical; and
//! `larder serve` exits non-zero with one clear line.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use larder::{CollectionSpec, Db, ErrorKind, Query};
use serde_json::{Value, json};

/// A good database with some documents, closed cleanly; returns its bytes.
fn good_file(dir: &Path) -> Vec<u8> {
    let path = dir.join("good.redb");
    let db = Db::open(&path).unwrap();
    db.collections()
        .create("notes", CollectionSpec::new().index("n"))
        .unwrap();
    let notes = db.collection::<Value>("notes");
    for n in 0..300 {
        notes
            .insert(&json!({"n": n, "text": "x".repeat(n * 7 % 500)}))
            .unwrap();
    }
    drop(notes);
    drop(db);
    fs::read(&path).unwrap()
}

/// The damaged copies: (name, bytes).
fn damaged(good: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut cases = Vec::new();
    for cut in [
        9,
        100,
        512,
        4096,
        good.len() / 3,
        good.len() / 2,
        good.len() - 1,
    ] {
        cases.push((format!("truncated at {cut}"), good[..cut].to_vec()));
    }
    cases.push(("all zeros".into(), vec![0; good.len()]));
    let mut zero_header = good.to_vec();
    zero_header[9..4096].fill(0);
    cases.push(("zeroed header after the magic".into(), zero_header));
    let mut zero_middle = good.to_vec();
    let mid = good.len() / 2 / 4096 * 4096;
    zero_middle[mid..mid + 4096].fill(0);
    cases.push(("a zeroed page".into(), zero_middle));
    let mut rng = fastrand::Rng::with_seed(7);
    let mut offsets: Vec<usize> = (9..128).step_by(3).collect();
    offsets.extend((0..40).map(|_| rng.usize(128..good.len())));
    for offset in offsets {
        let mut flipped = good.to_vec();
        flipped[offset] ^= 1 << rng.u8(0..8);
        cases.push((format!("bit flip at {offset}"), flipped));
    }
    cases.push(("text".into(), b"name,email\nada,ada@example.com\n".to_vec()));
    cases.push(("random".into(), (0..10_000).map(|_| rng.u8(..)).collect()));
    cases
}

/// Opens `path` and reads everything in it. A panic is a failure of this test.
fn open_and_read(path: &Path) -> Result<Vec<larder::Doc>, ErrorKind> {
    let db = Db::open(path).map_err(|e| e.kind().clone())?;
    let mut docs = Vec::new();
    for info in db.collections().list().map_err(|e| e.kind().clone())? {
        docs.extend(
            db.collection::<Value>(&info.name)
                .find(&Query::new())
                .map_err(|e| e.kind().clone())?,
        );
    }
    Ok(docs)
}

#[test]
fn damaged_copies_open_cleanly_or_fail_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_file(dir.path());
    let good_path = dir.path().join("good.redb");
    let original = open_and_read(&good_path).unwrap();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for (name, bytes) in damaged(&good) {
        let path: PathBuf = dir.path().join("case.redb");
        fs::write(&path, &bytes).unwrap();
        let outcome = std::panic::catch_unwind(|| open_and_read(&path));
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(_) => panic!("{name}: opening panicked"),
        };
        let label = match &outcome {
            Ok(docs) if *docs == original => "opened".to_owned(),
            Ok(_) => "opened, DIFFERENT".to_owned(),
            Err(kind) => format!("{kind:?}"),
        };
        println!("{name}: {label}");
        *outcomes.entry(label).or_default() += 1;
        match outcome {
            Ok(docs) => assert!(docs == original, "{name}: opened with different data"),
            Err(ErrorKind::NotALarderFile | ErrorKind::Corrupted) => {
                assert_eq!(
                    fs::read(&path).unwrap(),
                    bytes,
                    "{name}: a refused file changed"
                );
            }
            Err(other) => panic!("{name}: unexpected {other:?}"),
        }
        fs::remove_file(&path).unwrap();
    }
    println!("{outcomes:?}");
    assert!(
        outcomes.get("Corrupted").is_some_and(|n| *n > 10),
        "{outcomes:?}"
    );
}

#[cfg(feature = "cli")]
#[test]
fn larder_serve_refuses_damaged_and_foreign_files_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_file(dir.path());
    let mut cases = damaged(&good);
    // Every kind of case once, and a few bit flips: each is a process start.
    cases.retain(|(name, _)| {
        !name.starts_with("bit flip")
            || ["bit flip at 12", "bit flip at 30"].contains(&name.as_str())
    });
    let mut flips = damaged(&good)
        .into_iter()
        .filter(|(name, _)| name.starts_with("bit flip"))
        .collect::<Vec<_>>();
    cases.extend(flips.drain(flips.len() - 8..));
    for (name, bytes) in cases {
        let path = dir.path().join("case.redb");
        fs::write(&path, &bytes).unwrap();
        // `check` opens (with verification) and runs the integrity check.
        let output = Command::new(env!("CARGO_BIN_EXE_larder"))
            .args(["check", "--db"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.code().is_some(), "{name}: killed by a signal");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        if output.status.success() {
            // Only what verified in full is served: the same documents as the good file.
            assert_eq!(
                String::from_utf8_lossy(&output.stdout).trim(),
                "ok",
                "{name}"
            );
            continue;
        }
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(
            stderr.starts_with("larder: ")
                && (stderr.contains("damaged") || stderr.contains("not a larder database")),
            "{name}: {stderr}"
        );
        assert_eq!(fs::read(&path).unwrap(), bytes, "{name}: the file changed");
        // `serve` refuses the same way, before binding anything.
        let output = Command::new(env!("CARGO_BIN_EXE_larder"))
            .args(["serve", "--http", "127.0.0.1:0", "--db"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{name}");
        assert_eq!(String::from_utf8_lossy(&output.stderr), stderr, "{name}");
        assert_eq!(fs::read(&path).unwrap(), bytes, "{name}: the file changed");
    }
}

#[test]
fn without_verification_a_clean_file_still_opens_fast_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_file(dir.path());
    let path = dir.path().join("copy.redb");
    fs::write(&path, &good).unwrap();
    let db = Db::builder().verify_on_open(false).open(&path).unwrap();
    assert_eq!(db.collections().info("notes").unwrap().document_count, 300);
}
