//! Secrets hygiene: `larder serve` (which logs every request) is driven through sign-ups,
//! logins (right and wrong), refreshes, password resets, key creation and refused requests,
//! with keys and passwords also pushed into query strings and bodies of failing requests.
//! Its whole output must hold no password, raw key, refresh or access token, one-time code or
//! password hash, and every error body must be generic.
#![cfg(feature = "cli")]

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::wire::{Reply, request};
use larder::{Db, KeyKind, NewApiKey};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "sk_live_secrets_test_admin_key_0123456789abcdefgh";
const PASSWORD: &str = "correct horse battery staple 42";
const WRONG: &str = "incorrect donkey battery staple";
const NEW_PASSWORD: &str = "a brand new passphrase, please";

/// Every string in a JSON value that looks like a credential.
fn credentials_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s.len() >= 16 && !s.contains(' ') => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| credentials_in(v, out)),
        Value::Object(map) => {
            // Scalars only under credential-like names; containers are searched everywhere.
            for (key, v) in map {
                let lower = key.to_ascii_lowercase();
                let named = ["token", "secret", "key"].iter().any(|n| lower.contains(n));
                if named || v.is_object() || v.is_array() {
                    credentials_in(v, out);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn no_secret_reaches_the_log_and_error_bodies_are_generic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.redb");
    let pk = {
        let db = Db::open(&path).unwrap();
        db.collections()
            .create("notes", larder::CollectionSpec::new())
            .unwrap();
        db.keys()
            .create(NewApiKey::new(KeyKind::Publishable, "app"))
            .unwrap()
            .secret
    };
    let mut server = Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(["serve", "--http", "127.0.0.1:0", "--db"])
        .arg(&path)
        .env("LARDER_ADMIN_KEY", ADMIN_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The address is in the log; read it without consuming the rest.
    let mut stderr = server.stderr.take().unwrap();
    let (send, receive) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        let mut sent = false;
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&all);
            if !sent
                && let Some(rest) = text.split("serving on http://").nth(1)
                && let Some((addr, _)) = rest.split_once('\n')
            {
                let _ = send.send(addr.trim().to_owned());
                sent = true;
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    let addr: std::net::SocketAddr = receive
        .recv_timeout(Duration::from_secs(30))
        .unwrap()
        .parse()
        .unwrap();

    let mut secrets: Vec<String> =
        vec![ADMIN_KEY.into(), pk.clone(), PASSWORD.into(), WRONG.into()];
    let mut replies: Vec<Reply> = Vec::new();
    let mut call = |method: &str, path: &str, headers: &[(&str, &str)], body: Option<Value>| {
        let reply = request(addr, method, path, headers, body.as_ref());
        credentials_in(&reply.json(), &mut secrets);
        replies.push(reply.clone());
        reply
    };
    let user = [
        ("x-api-key", pk.as_str()),
        ("x-refresh-token-mode", "header"),
    ];
    let signup = call(
        "POST",
        "/api/userAuth/signup",
        &user,
        Some(json!({"email": "ada@example.com", "password": PASSWORD})),
    );
    assert_eq!(signup.status, 201, "{signup:?}");
    let login = call(
        "POST",
        "/api/userAuth/login",
        &user,
        Some(json!({"email": "ada@example.com", "password": PASSWORD})),
    );
    assert_eq!(login.status, 200);
    let refresh_token = login.json()["data"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let refreshed = call(
        "POST",
        "/api/userAuth/refresh-token",
        &[
            ("x-api-key", &pk),
            ("x-refresh-token-mode", "header"),
            ("x-refresh-token", &refresh_token),
        ],
        None,
    );
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    // Refusals that carry secrets in the request.
    for _ in 0..3 {
        let wrong = call(
            "POST",
            "/api/userAuth/login",
            &user,
            Some(json!({"email": "ada@example.com", "password": WRONG})),
        );
        assert_eq!(wrong.status, 401);
    }
    let reused = call(
        "POST",
        "/api/userAuth/refresh-token",
        &[("x-api-key", &pk), ("x-refresh-token", &refresh_token)],
        None,
    );
    assert_eq!(reused.status, 401, "a rotated refresh token is dead");
    call(
        "GET",
        &format!("/api/data/notes?key={ADMIN_KEY}&password={PASSWORD}"),
        &[],
        None,
    );
    call(
        "GET",
        "/api/data/notes",
        &[("x-api-key", &format!("{ADMIN_KEY}x"))],
        None,
    );
    call(
        "GET",
        "/api/userAuth/me",
        &[
            ("x-api-key", &pk),
            ("authorization", &format!("Bearer {refresh_token}")),
        ],
        None,
    );
    // A reset: the code goes to the outbox, never to the log.
    let reset = call(
        "POST",
        "/api/userAuth/request-password-reset",
        &[("x-api-key", &pk)],
        Some(json!({"email": "ada@example.com"})),
    );
    assert!(reset.status < 300, "{reset:?}");
    // An admin creates a key: its secret is in that answer only.
    let created = call(
        "POST",
        "/api/admin/keys",
        &[("x-api-key", ADMIN_KEY)],
        Some(json!({"kind": "secret", "label": "made over http"})),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let listed = call("GET", "/api/admin/keys", &[("x-api-key", ADMIN_KEY)], None);
    assert_eq!(listed.status, 200);
    // A signed upload URL: its token is a credential until used, so it is never logged.
    let blob = json!({"a": 1});
    let granted = call(
        "POST",
        "/api/storage/upload-request",
        &[("x-api-key", ADMIN_KEY)],
        Some(
            json!({"filename": "a.json", "contentType": "application/json",
                    "size": blob.to_string().len()}),
        ),
    );
    assert_eq!(granted.status, 200, "{granted:?}");
    let signed = granted.json()["data"]["signedUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, token) = signed.split_once("/api/storage/blob/").unwrap();
    let upload_token = token.to_owned();
    let blob_path = format!("/api/storage/blob/{upload_token}");
    assert_eq!(call("PUT", &blob_path, &[], Some(blob.clone())).status, 200);
    assert_eq!(call("PUT", &blob_path, &[], Some(blob)).status, 403);

    // Stop the server and gather everything it wrote.
    server.kill().unwrap();
    server.wait().unwrap();
    let mut stdout = String::new();
    server
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let log = format!("{stdout}\n{}", reader.join().unwrap());
    assert!(
        log.contains("POST /api/userAuth/login 401"),
        "requests are logged: {log}"
    );

    // The one-time code, from the outbox.
    let db = Db::open(&path).unwrap();
    for message in db.mail().outbox().unwrap() {
        let text = message.message.text.unwrap_or_default();
        secrets.extend(
            text.split(|c: char| !c.is_ascii_digit())
                .filter(|w| w.len() >= 6)
                .map(str::to_owned),
        );
    }
    secrets.push("$argon2".into());
    secrets.push(NEW_PASSWORD.into());
    secrets.push(upload_token);
    secrets.sort();
    secrets.dedup();
    assert!(
        secrets
            .iter()
            .any(|s| s.starts_with("sk_live_") && s != ADMIN_KEY),
        "the new key was collected"
    );
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the log holds a secret ({} chars): {log}",
            secret.len()
        );
    }
    // No answer is a 5xx, and error bodies hold no secret and nothing internal.
    for reply in &replies {
        assert!(reply.status < 500, "{reply:?}");
        if reply.status >= 400 {
            for secret in &secrets {
                assert!(
                    !reply.body.contains(secret.as_str()),
                    "an error body echoes a secret: {reply:?}"
                );
            }
            assert!(
                !reply.body.contains("argon2") && !reply.body.contains(".rs"),
                "{reply:?}"
            );
        }
    }
    // The listing shows no secret either.
    assert!(!listed.body.contains(ADMIN_KEY));
}
