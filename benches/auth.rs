//! Authentication benchmarks: what a request pays to prove who it is.
//!
//! ```text
//! cargo bench --bench auth
//! LARDER_BENCH_SCALE=0.1 cargo bench --bench auth     # quick smoke run
//! ```
//!
//! Workloads:
//! 1. **raw Ed25519 JWT verification** (jwt-simple alone, the same tokens): the cost larder's
//!    verified-token cache exists to avoid.
//! 2. **first-seen token**: `Db::authenticate` on a token never seen before, of a session whose
//!    identity is not cached: signature and claims check, then the session and user rows.
//! 3. **repeat token**: `Db::authenticate` on a token seen before: a SHA-256 of the token, a
//!    cache lookup, the expiry check, and the cached live-session check. No signature.
//! 4. **login**: `Db::login` (argon2id at m=19 MiB, t=2, p=1, then a durable session write), and
//!    the argon2 hash alone for context.
//!
//! Every token used is checked to authenticate; a failure aborts the bench.

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine;
use jwt_simple::prelude::*;
use larder::{Client, Db, NewUser};

type BenchResult<T> = Result<T, Box<dyn Error>>;

const PASSWORD: &str = "a long enough passphrase";

fn scale() -> f64 {
    std::env::var("LARDER_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

fn scaled(n: f64, min: usize) -> usize {
    ((n * scale()) as usize).max(min)
}

fn per_op(total: Duration, ops: usize) -> String {
    let nanos = total.as_nanos() as f64 / ops as f64;
    if nanos >= 1_000_000.0 {
        format!("{:>9.2} ms", nanos / 1_000_000.0)
    } else if nanos >= 1_000.0 {
        format!("{:>9.2} µs", nanos / 1_000.0)
    } else {
        format!("{nanos:>9.0} ns")
    }
}

fn rate(total: Duration, ops: usize) -> String {
    format!("{:>12.0}/s", ops as f64 / total.as_secs_f64())
}

fn main() -> BenchResult<()> {
    let sessions = scaled(200.0, 20);
    let repeats = scaled(200_000.0, 1_000);
    println!("larder authentication costs");
    println!(
        "machine: {} cores available; scale {} (LARDER_BENCH_SCALE)",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        scale()
    );
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path().join("auth.redb"))?;
    db.users().signup(
        NewUser::new("bench@example.com", PASSWORD),
        &Client::unknown(),
    )?;

    // Logins: each makes a new session with its own access token.
    let started = Instant::now();
    let mut tokens = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        tokens.push(
            db.users()
                .login("bench@example.com", PASSWORD, &Client::unknown())?
                .access_token,
        );
    }
    let login_time = started.elapsed();

    let started = Instant::now();
    for _ in 0..20 {
        black_box(db.users().signup(
            NewUser::new(
                format!("h{}@example.com", started.elapsed().as_nanos()),
                PASSWORD,
            ),
            &Client::unknown().server_trusted(),
        )?);
    }
    let signup_time = started.elapsed();

    // Raw verification with jwt-simple alone, on the same tokens.
    let jwks = db.signing_keys().jwks().unwrap();
    let x = jwks["keys"][0]["x"].as_str().ok_or("no key in the JWKS")?;
    let public =
        Ed25519PublicKey::from_bytes(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(x)?)?;
    let started = Instant::now();
    for token in &tokens {
        black_box(public.verify_token::<serde_json::Value>(token, None)?);
    }
    let raw_verify = started.elapsed();

    // First-seen tokens (sessions not cached either: the logins above cleared the cache).
    let started = Instant::now();
    for token in &tokens {
        black_box(db.sessions().authenticate(token)?);
    }
    let first_seen = started.elapsed();

    // Repeat tokens.
    let mut best_repeat = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        for i in 0..repeats {
            black_box(db.sessions().authenticate(&tokens[i % tokens.len()])?);
        }
        best_repeat = best_repeat.min(started.elapsed());
    }

    println!();
    println!(
        "raw jwt-simple verify   {}  {}",
        per_op(raw_verify, sessions),
        rate(raw_verify, sessions)
    );
    println!(
        "first-seen token        {}  {}   ({:.2}x the raw verify)",
        per_op(first_seen, sessions),
        rate(first_seen, sessions),
        first_seen.as_secs_f64() / raw_verify.as_secs_f64()
    );
    println!(
        "repeat token            {}  {}   ({:.3}x the raw verify)",
        per_op(best_repeat, repeats),
        rate(best_repeat, repeats),
        (best_repeat.as_secs_f64() / repeats as f64) / (raw_verify.as_secs_f64() / sessions as f64)
    );
    println!(
        "login (argon2id+commit) {}  {}",
        per_op(login_time, sessions),
        rate(login_time, sessions)
    );
    println!(
        "signup (argon2id+commit){}  {}",
        per_op(signup_time, 20),
        rate(signup_time, 20)
    );
    Ok(())
}
