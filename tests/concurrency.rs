//! Concurrency over real sockets on a real file: parallel writers, parallel patches of one
//! document (no lost update), parallel signups with one email (exactly one user), and a key
//! revoked while requests use it (nothing succeeds once the revoke has returned).
#![cfg(feature = "http")]

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::TestDb;
use common::wire::request;
use larder::{CollectionSpec, KeyKind, NewApiKey, Server};
use serde_json::{Value, json};

fn served() -> (TestDb, larder::ServerHandle, String) {
    let t = TestDb::new().with_collection("notes", CollectionSpec::new());
    let sk =
        t.db.keys()
            .create(NewApiKey::new(KeyKind::Secret, "server"))
            .unwrap()
            .secret;
    let server = Server::start(t.db.clone(), "127.0.0.1:0").unwrap();
    (t, server, sk)
}

/// The body of writer `i`: derived from `i` alone, so every read can be checked.
fn body_of(i: usize) -> Value {
    json!({"writer": i, "text": format!("note {i} {}", "x".repeat(i % 17)), "nested": {"i": i}})
}

#[test]
fn a_hundred_parallel_writers_each_get_their_document() {
    let (t, server, sk) = served();
    let addr = server.addr();
    let created: Vec<(usize, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let sk = sk.as_str();
                scope.spawn(move || {
                    let reply = request(
                        addr,
                        "POST",
                        "/api/data/notes",
                        &[("x-api-key", sk)],
                        Some(&body_of(i)),
                    );
                    assert_eq!(reply.status, 201, "writer {i}: {}", reply.body);
                    (i, reply.json()["data"].clone())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ids: BTreeSet<String> = created
        .iter()
        .map(|(_, doc)| doc["_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 100, "100 distinct ids");
    for (i, doc) in &created {
        let id = doc["_id"].as_str().unwrap();
        let reply = request(
            addr,
            "GET",
            &format!("/api/data/notes/{id}"),
            &[("x-api-key", &sk)],
            None,
        );
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.json()["data"],
            *doc,
            "the read equals the acknowledged write"
        );
        let stored = t.db.collection::<Value>("notes").get(id).unwrap().unwrap();
        assert_eq!(stored.data, body_of(*i), "byte-identical content");
    }
    assert_eq!(
        t.db.collections().info("notes").unwrap().document_count,
        100
    );
}

#[test]
fn a_hundred_parallel_patches_of_one_document_lose_nothing() {
    let (t, server, sk) = served();
    let addr = server.addr();
    let doc =
        t.db.collection::<Value>("notes")
            .insert(&json!({"start": true}))
            .unwrap();
    std::thread::scope(|scope| {
        for i in 0..100 {
            let (sk, id) = (sk.as_str(), doc.id.as_str());
            scope.spawn(move || {
                let reply = request(
                    addr,
                    "PATCH",
                    &format!("/api/data/notes/{id}"),
                    &[("x-api-key", sk)],
                    Some(&json!({ format!("f{i}"): i })),
                );
                assert_eq!(reply.status, 200, "patch {i}: {}", reply.body);
            });
        }
    });
    let after =
        t.db.collection::<Value>("notes")
            .get(&doc.id)
            .unwrap()
            .unwrap();
    for i in 0..100 {
        assert_eq!(after.data[format!("f{i}")], i, "field f{i} was lost");
    }
    assert_eq!(after.data["start"], true);
}

#[test]
fn twenty_parallel_signups_with_one_email_make_exactly_one_user() {
    let (t, server, _) = served();
    let pk =
        t.db.keys()
            .create(NewApiKey::new(KeyKind::Publishable, "app"))
            .unwrap()
            .secret;
    let addr = server.addr();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let pk = pk.as_str();
                scope.spawn(move || {
                    // Differently cased spellings of one address.
                    let email = if i % 2 == 0 {
                        "race@example.com"
                    } else {
                        "Race@Example.COM"
                    };
                    request(
                        addr,
                        "POST",
                        "/api/userAuth/signup",
                        &[("x-api-key", pk)],
                        Some(
                            &json!({"email": email, "password": format!("passphrase number {i}")}),
                        ),
                    )
                    .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || (400..500).contains(s)),
        "losers get a client error, never a 5xx: {statuses:?}"
    );
    let users = t.db.users().list().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].email, "race@example.com");
}

#[test]
fn nothing_succeeds_with_a_key_once_its_revoke_has_returned() {
    let (t, server, _) = served();
    let victim =
        t.db.keys()
            .create(NewApiKey::new(KeyKind::Secret, "victim"))
            .unwrap();
    let addr = server.addr();
    let revoked = AtomicBool::new(false);
    let (before, after) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for w in 0..8 {
            let (secret, revoked, before, after) = (&victim.secret, &revoked, &before, &after);
            scope.spawn(move || {
                for n in 0..40 {
                    // Read the flag before sending: if the revoke had returned by then, the
                    // request must fail, whatever any cache holds.
                    let was_revoked = revoked.load(Ordering::SeqCst);
                    let reply = if n % 2 == 0 {
                        request(
                            addr,
                            "GET",
                            "/api/data/notes",
                            &[("x-api-key", secret)],
                            None,
                        )
                    } else {
                        request(
                            addr,
                            "POST",
                            "/api/data/notes",
                            &[("x-api-key", secret)],
                            Some(&json!({"w": w, "n": n})),
                        )
                    };
                    if was_revoked {
                        assert_eq!(reply.status, 401, "used after revoke: {}", reply.body);
                        after.fetch_add(1, Ordering::SeqCst);
                    } else {
                        assert!(matches!(reply.status, 200 | 201 | 401), "{}", reply.body);
                        before.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
        // Let the users get going, then revoke in the middle of their traffic.
        while before.load(Ordering::SeqCst) < 40 {
            std::thread::yield_now();
        }
        t.db.keys().revoke(&victim.info.id).unwrap();
        revoked.store(true, Ordering::SeqCst);
    });
    assert!(
        after.load(Ordering::SeqCst) > 0,
        "some requests came after the revoke"
    );
    // Documents written with the key are only those acknowledged before the revoke.
    let written = t.db.collections().info("notes").unwrap().document_count;
    assert!(written as usize <= before.load(Ordering::SeqCst));
    // The library agrees: the key is dead for every entry point.
    assert!(t.db.with_key(&victim.secret).is_err());
}
