//! Running a real Python SDK against `larder serve`: a virtualenv made once under cargo's
//! target directory, the binary started on a free loopback port, a suite script run against it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Kills the server when the test ends, however it ends.
pub struct Running(Child);

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

/// A virtualenv with `requirement` (e.g. `urbackend==0.1.0`) installed, made once.
pub fn python_with(requirement: &str) -> PathBuf {
    let name = requirement.replace("==", "-");
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("sdk-venv-{name}"));
    let python = venv.join("bin").join("python");
    let marker = venv.join("installed");
    if !marker.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            requirement,
        ]));
        std::fs::write(&marker, b"").unwrap();
    }
    python
}

/// A random admin key for `LARDER_ADMIN_KEY`.
pub fn random_secret() -> String {
    let mut rng = fastrand::Rng::new();
    let body: String = (0..43).map(|_| rng.alphanumeric()).collect();
    format!("sk_live_{body}")
}

/// Starts `larder serve` on `db` with `admin_key`; returns the guard and the URL. Every log line
/// is checked to carry no key.
pub fn serve(db: &Path, admin_key: &str) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("--db")
        .arg(db)
        .args(["serve", "--http", "127.0.0.1:0"])
        .env("LARDER_ADMIN_KEY", admin_key)
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
            assert!(
                !line.contains("sk_live_") && !line.contains("pk_live_"),
                "{line}"
            );
        }
    });
    let url = url
        .recv_timeout(Duration::from_secs(30))
        .expect("the server starts");
    (server, url)
}

/// Runs a suite script with `python` and the given environment; fails the test unless every
/// check passed.
pub fn run_suite(python: &Path, script: &str, env: &[(&str, &str)]) {
    let output = Command::new(python)
        .arg(script)
        .envs(env.iter().copied())
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
}
