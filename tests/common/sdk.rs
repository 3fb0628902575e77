//! Running real SDKs against `larder serve`: a Python virtualenv or an npm install made once
//! per pinned version in a cache outside the checkout (`sdk_cache`), the binary started on a
//! free loopback port, a suite script run against it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the log reader may take to see the end of the server's stderr once the server is
/// dead; it only has the pipe's last buffered lines left to read.
const LOG_READER_GRACE: Duration = Duration::from_secs(10);

/// The running server and the thread reading its log. When the test ends, however it ends, the
/// server is killed and the reader joined; a test that otherwise passed fails if any log line
/// carried a key.
pub struct Running {
    server: Child,
    /// Answers the log lines that carried a key.
    log_reader: Option<JoinHandle<Vec<String>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let Some(log_reader) = self.log_reader.take() else {
            return;
        };
        let deadline = Instant::now() + LOG_READER_GRACE;
        while !log_reader.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // A second panic while the test is already failing would abort the whole test binary,
        // so then the finding is printed instead of asserted.
        let failing_already = std::thread::panicking();
        if !log_reader.is_finished() {
            let message = format!(
                "the server's log was not read to its end within {LOG_READER_GRACE:?} of the server's exit"
            );
            if failing_already {
                eprintln!("{message}");
                return;
            }
            panic!("{message}");
        }
        match log_reader.join() {
            Ok(leaks) if leaks.is_empty() => {}
            Ok(leaks) => {
                let message = format!(
                    "{} server log line(s) carry a key:\n{}",
                    leaks.len(),
                    leaks.join("\n")
                );
                if failing_already {
                    eprintln!("{message}");
                } else {
                    panic!("{message}");
                }
            }
            Err(panic) if !failing_already => std::panic::resume_unwind(panic),
            Err(_) => eprintln!("the server's log reader panicked"),
        }
    }
}

/// Whether a log line shows a secret or publishable key.
fn carries_a_key(line: &str) -> bool {
    line.contains("sk_live_") || line.contains("pk_live_")
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

/// Where SDK installs are kept between runs: `$LARDER_SDK_CACHE`, else `~/.cache/larder-sdk`
/// (outside the checkout, so a fresh clone reuses them). Each install is a folder named by its
/// pinned versions, so a version change makes a new one.
pub fn sdk_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("LARDER_SDK_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache").join("larder-sdk")
}

/// The folder `name` in the cache, made by `install` into a scratch folder and moved into place
/// whole, so an interrupted or concurrent install never leaves a half-made one behind.
fn cached(name: &str, install: impl FnOnce(&Path)) -> PathBuf {
    let cache = sdk_cache();
    let target = cache.join(name);
    if target.join("installed").exists() {
        return target;
    }
    std::fs::create_dir_all(&cache).unwrap();
    let scratch = cache.join(format!(".{name}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    install(&scratch);
    std::fs::write(scratch.join("installed"), b"").unwrap();
    if std::fs::rename(&scratch, &target).is_err() {
        // Another test process finished the same install first.
        let _ = std::fs::remove_dir_all(&scratch);
    }
    assert!(
        target.join("installed").exists(),
        "{} was not installed",
        target.display()
    );
    target
}

/// A virtualenv with `requirement` (e.g. `urbackend==0.1.0`) installed, made once. A virtualenv
/// cannot be moved, so it is made in place, under a lock folder.
pub fn python_with(requirement: &str) -> PathBuf {
    let name = requirement.replace("==", "-");
    let venv = sdk_cache().join(format!("python-{name}"));
    let python = venv.join("bin").join("python");
    let marker = venv.join("installed");
    if !marker.exists() {
        std::fs::create_dir_all(sdk_cache()).unwrap();
        let lock = sdk_cache().join(format!(".python-{name}.lock"));
        // A client built from source (ekodb-client) takes minutes on two cores.
        let deadline = Instant::now() + Duration::from_secs(1800);
        while std::fs::create_dir(&lock).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} stayed locked",
                lock.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        if !marker.exists() {
            let _ = std::fs::remove_dir_all(&venv);
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
        let _ = std::fs::remove_dir(&lock);
    }
    python
}

/// `node_modules` with the given npm packages (`name@version`, pinned) installed, made once.
pub fn node_modules(packages: &[&str]) -> PathBuf {
    let name = format!("npm-{}", packages.join("+").replace(['/', '@'], "_"));
    let folder = cached(&name, |scratch| {
        let mut npm = Command::new("npm");
        npm.args([
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--prefix",
        ])
        .arg(scratch)
        .args(packages);
        run(&mut npm);
    });
    folder.join("node_modules")
}

/// Runs a Node suite script with the given environment; fails the test unless it passed.
pub fn run_node_suite(script: &str, env: &[(&str, &str)]) {
    run_script(Path::new("node"), script, env, "all checks passed");
}

/// A random admin key for `LARDER_ADMIN_KEY`.
pub fn random_secret() -> String {
    let mut rng = fastrand::Rng::new();
    let body: String = (0..43).map(|_| rng.alphanumeric()).collect();
    format!("sk_live_{body}")
}

/// Starts `larder serve` on `db` with `admin_key`; returns the guard and the URL. Every log line
/// is checked to carry no key (the guard fails the test when it is dropped).
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
    let (url_sender, url) = mpsc::channel();
    // The reader only collects: a panic on this thread would not reach the test.
    let log_reader = std::thread::spawn(move || {
        let mut leaks = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("larder: serving on ") {
                let _ = url_sender.send(url.to_owned());
            }
            if carries_a_key(&line) {
                leaks.push(line);
            }
        }
        leaks
    });
    let server = Running {
        server: child,
        log_reader: Some(log_reader),
    };
    let url = url
        .recv_timeout(Duration::from_secs(30))
        .expect("the server starts");
    (server, url)
}

/// Runs a suite script with `python` and the given environment; fails the test unless every
/// check passed.
pub fn run_suite(python: &Path, script: &str, env: &[(&str, &str)]) {
    run_script(python, script, env, ", 0 failed");
}

/// Runs `script` with `interpreter`; fails the test unless it exits 0 and says `passed`.
fn run_script(interpreter: &Path, script: &str, env: &[(&str, &str)], passed: &str) {
    let output = Command::new(interpreter)
        .arg(script)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{} does not run: {e}", interpreter.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the SDK suite failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(passed), "{stdout}");
}
