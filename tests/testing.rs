//! `larder::testing::TestServer`, the fixture downstream tests start: its builder (throttles
//! off, settings, an existing database) and `sign_in_as`.
#![cfg(feature = "testing")]

mod common;

use common::wire::send_raw;
use larder::testing::TestServer;
use larder::{Client, CollectionSpec, Db, ErrorKind, ManualClock, NewUser};
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

fn get(server: &TestServer, path: &str, headers: &str) -> common::wire::Reply {
    send_raw(
        server.addr(),
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n").as_bytes(),
    )
}

#[test]
fn without_throttles_a_test_may_fail_logins_as_often_as_it_likes() {
    let throttled = TestServer::start().unwrap();
    let free = TestServer::builder().without_throttles().start().unwrap();
    for server in [&throttled, &free] {
        server
            .db
            .users()
            .signup(
                NewUser::new("ada@example.com", PASSWORD),
                &Client::unknown(),
            )
            .unwrap();
    }
    let failures = |server: &TestServer| {
        (0..30)
            .map(|_| {
                server
                    .db
                    .users()
                    .login(
                        "ada@example.com",
                        "wrong password",
                        &Client::at([10, 0, 0, 1].into()),
                    )
                    .unwrap_err()
                    .kind()
                    .clone()
            })
            .filter(|kind| matches!(kind, ErrorKind::RateLimited { .. }))
            .count()
    };
    assert!(
        failures(&throttled) > 0,
        "the default fixture keeps the throttles"
    );
    assert_eq!(failures(&free), 0);
    // And the right password still works after all those failures.
    free.db
        .users()
        .login("ada@example.com", PASSWORD, &Client::unknown())
        .unwrap();
}

#[test]
fn settings_are_applied_before_the_server_starts() {
    let server = TestServer::builder()
        .settings(json!({"ALLOWED_SELF_ROLES": "editor", "JWT_EXPIRY_MINUTES": 5}))
        .start()
        .unwrap();
    let settings = server.db.project().settings().unwrap();
    assert_eq!(settings.allowed_self_roles, ["editor"]);
    assert_eq!(settings.jwt_expiry_minutes, 5);
    let bad = TestServer::builder()
        .settings(json!({"JWT_EXPIRY_MINUTES": "soon"}))
        .start();
    assert!(matches!(
        bad.err().unwrap().kind(),
        ErrorKind::InvalidInput { .. }
    ));
}

#[test]
fn an_existing_database_is_served_with_its_data_and_clock() {
    let clock = ManualClock::new();
    let db = Db::builder().clock(clock.clone()).in_memory().unwrap();
    db.collections()
        .create("notes", CollectionSpec::new())
        .unwrap();
    let note = db
        .collection::<serde_json::Value>("notes")
        .insert(&json!({"text": "already here"}))
        .unwrap();
    let server = TestServer::builder().db(db).clock(clock).start().unwrap();
    let key = format!("x-api-key: {}\r\n", server.admin_key);
    let answer = get(&server, &format!("/api/data/notes/{}", note.id), &key);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["data"]["text"], "already here");
    use larder::Clock;
    let before = server.clock.now();
    server.clock.advance(std::time::Duration::from_secs(60));
    assert!(
        server.db.clock().now() > before,
        "the server's clock is the database's"
    );
}

#[test]
fn sign_in_as_gives_a_user_tokens_without_a_password() {
    let server = TestServer::start().unwrap();
    let ada = server
        .db
        .users()
        .signup(
            NewUser::new("ada@example.com", PASSWORD),
            &Client::unknown(),
        )
        .unwrap();
    let signed = server.sign_in_as(&ada.user.id).unwrap();
    assert_ne!(signed.session_id, ada.session_id, "a session of its own");
    let bearer = format!(
        "x-api-key: {}\r\nAuthorization: Bearer {}\r\n",
        server.publishable_key, signed.access_token
    );
    let me = get(&server, "/api/userAuth/me", &bearer);
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["data"]["email"], "ada@example.com");
    assert!(matches!(
        server.sign_in_as("no-such-user").unwrap_err().kind(),
        ErrorKind::NotFound { .. }
    ));
    server.db.users().disable(&ada.user.id).unwrap();
    assert!(matches!(
        server.sign_in_as(&ada.user.id).unwrap_err().kind(),
        ErrorKind::Forbidden { .. }
    ));
}
