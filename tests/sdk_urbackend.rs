//! The real urBackend Python SDK (PyPI `urbackend==0.1.0`) against `larder serve` on a free
//! loopback port. The test makes its own virtualenv (once, under cargo's target directory),
//! prepares a database with the library, starts the binary, runs `tests/sdk/urbackend_suite.py`
//! and requires every check to pass.
#![cfg(feature = "cli")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use larder::{CollectionSpec, Db, KeyKind, NewApiKey, Rule, Rules};

/// Kills the server when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(command: &mut Command) {
    let output = command.output().expect("the command starts");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A virtualenv with the SDK, made once and reused by later runs.
fn python_with_sdk() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk-venv-urbackend");
    let python = venv.join("bin").join("python");
    let marker = venv.join("urbackend-0.1.0.installed");
    if !marker.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "urbackend==0.1.0",
        ]));
        std::fs::write(&marker, b"").unwrap();
    }
    python
}

fn random_secret() -> String {
    let mut rng = fastrand::Rng::new();
    let body: String = (0..43).map(|_| rng.alphanumeric()).collect();
    format!("sk_live_{body}")
}

#[test]
fn the_urbackend_sdk_works_against_larder_serve() {
    let python = python_with_sdk();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sdk.redb");
    let admin_key = random_secret();
    let publishable = {
        let db = Db::open(&path).unwrap();
        let posts = Rules {
            list: Rule::Public,
            view: Rule::Public,
            create: Rule::Authenticated,
            update: Rule::Owner,
            delete: Rule::Owner,
        };
        db.create_collection(
            "posts",
            CollectionSpec::new().rules(posts).owner_field("userId"),
        )
        .unwrap();
        db.create_collection("private_notes", CollectionSpec::new())
            .unwrap();
        db.create_api_key(NewApiKey::new(KeyKind::Publishable, "sdk"))
            .unwrap()
            .secret
    };

    let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("--db")
        .arg(&path)
        .args(["serve", "--http", "127.0.0.1:0"])
        .env("LARDER_ADMIN_KEY", &admin_key)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let server = Running(child);
    let (lines, url) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("larder: serving on ") {
                let _ = lines.send(url.to_owned());
            }
            // Request lines: never a credential.
            assert!(
                !line.contains("sk_live_") && !line.contains("pk_live_"),
                "{line}"
            );
        }
    });
    let url = url
        .recv_timeout(Duration::from_secs(30))
        .expect("the server starts");

    let output = Command::new(&python)
        .arg("tests/sdk/urbackend_suite.py")
        .env("LARDER_URL", &url)
        .env("LARDER_SK", &admin_key)
        .env("LARDER_PK", &publishable)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the SDK suite failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(", 0 failed"), "{stdout}");
    drop(server);
}
