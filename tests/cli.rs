//! The `larder` command line. `larder serve`'s first seconds: it claims its port before it
//! creates a file or prints a key, says the operating system's own reason when something is
//! wrong, and tells how to get a new admin key when the printed one was lost. The other
//! commands never create a database, and `keys create` gives a scoped key its grants.
#![cfg(feature = "cli")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn larder() -> Command {
    Command::new(env!("CARGO_BIN_EXE_larder"))
}

#[test]
fn a_port_in_use_leaves_no_file_and_no_key_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.redb");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = larder()
        .args(["serve", "--http", &addr, "--db"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")) && stderr.contains("in use"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "no key was printed");
    assert!(!path.exists(), "no database was created");
}

#[test]
fn errors_name_the_operating_systems_cause() {
    let dir = tempfile::tempdir().unwrap();
    let run = |path: &std::path::Path| {
        let output = larder()
            .arg("--db")
            .arg(path)
            .args(["collections", "list"])
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let is_a_directory = run(dir.path());
    assert!(
        is_a_directory.contains("Is a directory"),
        "{is_a_directory}"
    );
    // `serve` creates a missing file, but not the folders above it.
    let output = larder()
        .arg("--db")
        .arg(dir.path().join("no/such/folder/app.redb"))
        .args(["serve", "--http", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let missing_folder = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        missing_folder.contains("No such file or directory")
            && !missing_folder.contains("os error"),
        "{missing_folder}"
    );
}

#[test]
fn a_new_database_prints_its_key_once_with_a_way_to_get_another() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.redb");
    let mut child = larder()
        .args(["serve", "--http", "127.0.0.1:0", "--db"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        let serving = line.starts_with("larder: serving on");
        lines.push(line);
        if serving || Instant::now() > deadline {
            break;
        }
    }
    // Meanwhile the file is held: a second larder on it says who holds it and what to do.
    let held = larder()
        .arg("--db")
        .arg(&path)
        .args(["collections", "list"])
        .output()
        .unwrap();
    child.kill().unwrap();
    let mut key = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut key)
        .unwrap();
    child.wait().unwrap();
    assert!(key.starts_with("sk_live_"), "the key is on stdout: {key:?}");
    let hint = format!("larder --db {} keys create --kind secret", path.display());
    assert!(lines.iter().any(|l| l.contains(&hint)), "{lines:#?}");
    let held = String::from_utf8_lossy(&held.stderr);
    assert!(held.contains("larder serve"), "{held}");
}

#[test]
fn commands_other_than_serve_never_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mistyped.redb");
    for command in [
        &["collections", "list"][..],
        &["keys", "list"],
        &["users", "list"],
        &["docs", "list", "notes"],
        &["check"],
        &["keys", "create", "--kind", "secret"],
    ] {
        let output = larder()
            .arg("--db")
            .arg(&path)
            .args(command)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{command:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("no database here"), "{command:?}: {stderr}");
        assert!(!path.exists(), "{command:?} created a file");
    }
}

#[test]
fn keys_create_gives_a_scoped_key_its_grants() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.redb");
    drop(larder::Db::open(&path).unwrap());
    let create = |args: &[&str]| {
        larder()
            .arg("--db")
            .arg(&path)
            .args(["keys", "create"])
            .args(args)
            .output()
            .unwrap()
    };
    let made = create(&[
        "--kind",
        "scoped",
        "--grant",
        "notes=read,write",
        "--grant",
        "files/docs=read",
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let key: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    let grants = &key["info"]["grants"];
    assert_eq!(grants["notes"]["read"], true);
    assert_eq!(grants["notes"]["write"], true);
    assert_eq!(grants["notes"]["delete"], false);
    assert_eq!(grants["files/docs"]["read"], true);
    for (args, says) in [
        (&["--grant", "notes=read"][..], "add --kind scoped"),
        (
            &["--kind", "scoped", "--grant", "notes=fly"],
            "is no action",
        ),
        (&["--kind", "scoped", "--grant", "notes"], "COLLECTION=read"),
    ] {
        let refused = create(args);
        assert!(!refused.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
