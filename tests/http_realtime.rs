//! The change feed over server-sent events (`GET /api/realtime/{collection}`), on a real
//! socket: the wire format, resume with `Last-Event-ID`, snapshot then live, the rules per
//! subscriber, errors before the stream, revocation and reset.
#![cfg(feature = "http")]

mod common;

use common::sse::{self, Event};
use larder::{
    Client, CollectionSpec, Db, KeyKind, NewApiKey, NewUser, Retention, Rules, Server, ServerHandle,
};
use serde_json::{Value, json};

struct Fixture {
    db: Db,
    server: ServerHandle,
    secret: String,
}

fn fixture_with(db: Db) -> Fixture {
    db.collections()
        .create("notes", CollectionSpec::new())
        .unwrap();
    db.collections()
        .create(
            "items",
            CollectionSpec::new()
                .rules(Rules::owner_only())
                .owner_field("owner")
                .hidden_field("secret"),
        )
        .unwrap();
    let secret = db
        .keys()
        .create(NewApiKey::new(KeyKind::Secret, "server"))
        .unwrap()
        .secret;
    let server = Server::start(db.clone(), "127.0.0.1:0").unwrap();
    Fixture { db, server, secret }
}

fn fixture() -> Fixture {
    fixture_with(Db::in_memory().unwrap())
}

impl Fixture {
    fn open(&self, path: &str, headers: &[&str]) -> sse::Stream {
        sse::open(self.server.addr(), path, headers)
    }

    fn open_admin(&self, path: &str, extra: &[&str]) -> sse::Stream {
        let key = format!("x-api-key: {}", self.secret);
        let mut headers = vec![key.as_str()];
        headers.extend_from_slice(extra);
        let stream = self.open(path, &headers);
        assert_eq!(stream.status, 200, "{}", stream.body);
        stream
    }

    fn user(&self, email: &str) -> (String, String) {
        let signed = self
            .db
            .users()
            .signup(
                NewUser::new(email, "correct horse battery"),
                &Client::unknown(),
            )
            .unwrap();
        (signed.user.id, signed.access_token)
    }
}

fn ready(stream: &mut sse::Stream) -> u64 {
    let event = stream.next().expect("a ready event");
    assert_eq!(event.event, "ready", "{event:?}");
    let seq = event.data["seq"].as_u64().unwrap();
    assert_eq!(event.id.as_deref(), Some(seq.to_string().as_str()));
    seq
}

fn summary(event: &Event) -> (String, String, String) {
    (
        event.id.clone().unwrap_or_default(),
        event.event.clone(),
        event.data["id"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn each_change_is_an_event_with_its_sequence_as_id() {
    let f = fixture();
    let mut stream = f.open_admin("/api/realtime/notes", &[]);
    assert!(
        stream
            .head
            .contains("content-type: text/event-stream; charset=utf-8")
    );
    assert!(stream.head.contains("cache-control: no-store"));
    let start = ready(&mut stream);

    let notes = f.db.collection::<Value>("notes");
    let a = notes.insert(&json!({"title": "café"})).unwrap();
    notes.patch(&a.id, &json!({"title": "tea"})).unwrap();
    notes.delete(&a.id).unwrap();
    let pair = notes
        .insert_many(&[json!({"n": 1}), json!({"n": 2})])
        .unwrap();

    let insert = stream.next().unwrap();
    assert_eq!(insert.event, "insert");
    assert_eq!(insert.id, Some((start + 1).to_string()));
    assert_eq!(insert.data["seq"], start + 1);
    assert_eq!(insert.data["op"], "insert");
    assert_eq!(insert.data["collection"], "notes");
    assert_eq!(insert.data["id"], a.id.as_str());
    assert_eq!(
        insert.data["doc"]["title"], "café",
        "escaped on the wire, intact after"
    );
    assert_eq!(insert.data["doc"]["id"], a.id.as_str());

    let update = stream.next().unwrap();
    assert_eq!(
        (update.event.as_str(), update.data["seq"].as_u64()),
        ("update", Some(start + 2))
    );
    assert_eq!(update.data["doc"]["title"], "tea");
    assert_eq!(update.data["prev"]["title"], "café");

    let delete = stream.next().unwrap();
    assert_eq!(delete.event, "delete");
    assert_eq!(delete.data["doc"], Value::Null);

    let first = stream.next().unwrap();
    let second = stream.next().unwrap();
    let seq = start + 4;
    assert_eq!(
        [summary(&first), summary(&second)],
        [
            (format!("{seq}.0"), "insert".into(), pair[0].id.clone()),
            (seq.to_string(), "insert".into(), pair[1].id.clone()),
        ],
        "one transaction shares a sequence; all but its last change are numbered inside it"
    );
}

#[test]
fn last_event_id_resumes_after_the_position_exactly_once() {
    let f = fixture();
    let start = ready(&mut f.open_admin("/api/realtime/notes", &[]));
    let notes = f.db.collection::<Value>("notes");
    let ids: Vec<String> = (0..5)
        .map(|n| notes.insert(&json!({"n": n})).unwrap().id)
        .collect();
    let many = notes
        .insert_many(&[json!({"n": 5}), json!({"n": 6}), json!({"n": 7})])
        .unwrap();
    let batch_seq = start + 6;

    let position = format!("Last-Event-ID: {}", start + 2);
    let mut stream = f.open_admin("/api/realtime/notes", &[position.as_str()]);
    let events = stream.until("ready");
    let seen: Vec<String> = events[..events.len() - 1]
        .iter()
        .map(|e| e.data["id"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = ids[2..].to_vec();
    expected.extend(many.iter().map(|d| d.id.clone()));
    assert_eq!(seen, expected);

    // Cut off inside the transaction after its first change: the rest, and nothing again.
    let position = format!("Last-Event-ID: {batch_seq}.0");
    let mut stream = f.open_admin("/api/realtime/notes", &[position.as_str()]);
    let events = stream.until("ready");
    let seen: Vec<(String, String, String)> =
        events[..events.len() - 1].iter().map(summary).collect();
    assert_eq!(
        seen,
        [
            (
                format!("{batch_seq}.1"),
                "insert".into(),
                many[1].id.clone()
            ),
            (batch_seq.to_string(), "insert".into(), many[2].id.clone()),
        ]
    );

    // `since=` does the same; the header wins over it.
    let mut stream = f.open_admin(&format!("/api/realtime/notes?since={}", batch_seq - 1), &[]);
    assert_eq!(stream.until("ready").len(), 4);
}

#[test]
fn snapshot_then_live() {
    let f = fixture();
    let notes = f.db.collection::<Value>("notes");
    for n in 0..3 {
        notes
            .insert(&json!({"n": n, "status": if n == 1 {"done"} else {"open"}}))
            .unwrap();
    }
    let mut stream = f.open_admin("/api/realtime/notes?snapshot=true&status=open", &[]);
    let events = stream.until("ready");
    assert_eq!(
        events.len(),
        3,
        "two open documents, then ready: {events:?}"
    );
    let seq = events[2].data["seq"].as_u64().unwrap();
    for event in &events[..2] {
        assert_eq!(event.event, "insert");
        assert!(event.id.is_none(), "a snapshot event carries no position");
        assert_eq!(event.data["seq"], seq);
        assert_eq!(event.data["doc"]["status"], "open");
    }
    assert_eq!(events[2].id, Some(seq.to_string()));
    let live = notes.insert(&json!({"status": "open"})).unwrap();
    notes.insert(&json!({"status": "done"})).unwrap();
    let latest = notes.insert(&json!({"status": "open"})).unwrap();
    let next = stream.next().unwrap();
    assert_eq!(
        (next.id, next.data["id"].as_str()),
        (Some((seq + 1).to_string()), Some(live.id.as_str()))
    );
    let next = stream.next().unwrap();
    assert_eq!(
        next.data["id"],
        latest.id.as_str(),
        "the filter skipped the done one"
    );
}

#[test]
fn a_filter_parameter_in_the_list_query_syntax() {
    let f = fixture();
    let mut stream = f.open_admin(
        "/api/realtime/notes?filter=priority_gte%3D3%26status%3Dopen",
        &[],
    );
    ready(&mut stream);
    let notes = f.db.collection::<Value>("notes");
    notes
        .insert(&json!({"priority": 5, "status": "done"}))
        .unwrap();
    notes
        .insert(&json!({"priority": 1, "status": "open"}))
        .unwrap();
    let wanted = notes
        .insert(&json!({"priority": 4, "status": "open"}))
        .unwrap();
    assert_eq!(stream.next().unwrap().data["id"], wanted.id.as_str());
}

#[test]
fn each_subscriber_sees_only_what_its_rules_let_it_read() {
    let f = fixture();
    let (ada, ada_token) = f.user("ada@example.com");
    let (_, bob_token) = f.user("bob@example.com");
    let bearer = format!("Authorization: Bearer {bob_token}");
    let mut bob = f.open("/api/realtime/items", &[bearer.as_str()]);
    assert_eq!(bob.status, 200, "{}", bob.body);
    ready(&mut bob);

    let as_ada = f.db.as_user(&ada_token).unwrap();
    let items = as_ada.collection::<Value>("items");
    let adas = items.insert(&json!({"title": "ada's"})).unwrap();
    f.db.collection::<Value>("items")
        .patch(&adas.id, &json!({"secret": "canary-5e1c"}))
        .unwrap();
    items.delete(&adas.id).unwrap();
    let as_bob = f.db.as_user(&bob_token).unwrap();
    let bobs = as_bob
        .collection::<Value>("items")
        .insert(&json!({"title": "bob's"}))
        .unwrap();
    f.db.collection::<Value>("items")
        .patch(&bobs.id, &json!({"secret": "canary-9b2d"}))
        .unwrap();

    let first = bob.next().unwrap();
    assert_eq!(
        (first.event.as_str(), first.data["id"].as_str()),
        ("insert", Some(bobs.id.as_str()))
    );
    let second = bob.next().unwrap();
    assert_eq!(second.event, "update");
    let raw = String::from_utf8(bob.raw.clone()).unwrap();
    assert!(
        !raw.contains(&adas.id),
        "nothing of ada's document reaches bob, its delete included"
    );
    assert!(!raw.contains(&ada));
    assert!(
        !raw.contains("canary"),
        "hidden fields never reach a non-administrator"
    );
}

#[test]
fn refusals_come_before_the_stream_as_ordinary_errors() {
    let f = fixture();
    let anonymous = f.open("/api/realtime/notes", &[]);
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    let key = format!("x-api-key: {}", f.secret);
    let missing = f.open("/api/realtime/nope", &[key.as_str()]);
    assert_eq!(missing.status, 404, "{}", missing.body);
    let bad = f.open("/api/realtime/notes?since=soon", &[key.as_str()]);
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("feed position"), "{}", bad.body);
    let bad = f.open("/api/realtime/notes", &[key.as_str(), "Last-Event-ID: x"]);
    assert_eq!(bad.status, 400);
    let (_, token) = f.user("ada@example.com");
    let bearer = format!("Authorization: Bearer {token}");
    let hidden = f.open("/api/realtime/items?secret=x", &[bearer.as_str()]);
    assert_eq!(hidden.status, 400, "{}", hidden.body);
    let publishable =
        f.db.keys()
            .create(NewApiKey::new(KeyKind::Publishable, "app"))
            .unwrap()
            .secret;
    let key = format!("x-api-key: {publishable}");
    let private = f.open("/api/realtime/notes", &[key.as_str()]);
    assert!(
        matches!(private.status, 401 | 403 | 404),
        "{}",
        private.status
    );
}

#[test]
fn ending_the_session_ends_the_stream_with_an_error_event() {
    let f = fixture();
    let (ada, token) = f.user("ada@example.com");
    let bearer = format!("Authorization: Bearer {token}");
    let mut stream = f.open("/api/realtime/items", &[bearer.as_str()]);
    ready(&mut stream);
    f.db.sessions().end_all(&ada).unwrap();
    let event = stream.next().expect("an error event");
    assert_eq!(event.event, "error");
    assert_eq!(event.data["error"], "unauthenticated");
    assert!(stream.next().is_none(), "then the stream ends");
}

#[test]
fn a_position_older_than_the_kept_history_gets_reset() {
    let db = Db::builder()
        .feed_retention(Retention {
            max_batches: 3,
            ..Retention::default()
        })
        .in_memory()
        .unwrap();
    let f = fixture_with(db);
    let notes = f.db.collection::<Value>("notes");
    for n in 0..10 {
        notes.insert(&json!({"n": n})).unwrap();
    }
    let mut stream = f.open_admin("/api/realtime/notes", &["Last-Event-ID: 1"]);
    let event = stream.next().unwrap();
    assert_eq!(event.event, "reset");
    assert_eq!(event.data["reason"], "too_old");
    let oldest = event.data["seq"].as_u64().unwrap();
    assert!(oldest > 2, "{event:?}");
    assert!(stream.next().is_none());
    let mut resumed = f.open_admin(&format!("/api/realtime/notes?since={}", oldest - 1), &[]);
    assert_eq!(resumed.until("ready").len(), 4);
    let future = f
        .open_admin("/api/realtime/notes?since=999", &[])
        .next()
        .unwrap();
    assert_eq!(
        (future.event.as_str(), &future.data["reason"]),
        ("reset", &json!("unknown_cursor"))
    );
}

/// `larder serve` killed with SIGKILL three times in the middle of a stream of writes, and
/// restarted on the same file: a reader resuming with `Last-Event-ID` receives every
/// acknowledged write exactly once, in strictly increasing sequence, and nothing that is not in
/// the file.
#[cfg(feature = "cli")]
#[test]
fn a_reader_resuming_across_kill_9_loses_and_repeats_nothing() {
    use std::collections::BTreeSet;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    const WRITES: u64 = 1200;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("feed.redb");
    let key = common::sdk::random_secret();
    let start = |key: &str| -> (Child, SocketAddr) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
            .arg("--db")
            .arg(&file)
            .args(["serve", "--http", "127.0.0.1:0"])
            .env("LARDER_ADMIN_KEY", key)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let addr = common::wire::announced_addr(&mut child);
        (child, addr)
    };
    let (mut server, addr) = start(&key);
    let addr = Arc::new(Mutex::new(addr));
    let admin = key.clone();
    let request = move |addr: SocketAddr, method: &str, path: &str, body: &str| -> Option<u16> {
        let key = &admin;
        let mut socket = TcpStream::connect(addr).ok()?;
        socket.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(request.as_bytes()).ok()?;
        let mut answer = String::new();
        socket.read_to_string(&mut answer).ok()?;
        answer.split_whitespace().nth(1)?.parse().ok()
    };
    let first = *addr.lock().unwrap();
    assert_eq!(
        request(first, "PUT", "/api/admin/collections/items", "{}"),
        Some(201)
    );

    // Once the writes are over: how many inserts the file holds, for the reader to stop at.
    let expected = Arc::new(AtomicU64::new(u64::MAX));
    let writer = {
        let addr = Arc::clone(&addr);
        std::thread::spawn(move || {
            let mut acknowledged = BTreeSet::new();
            for n in 0..WRITES {
                let at = *addr.lock().unwrap();
                match request(at, "POST", "/api/data/items", &format!("{{\"n\": {n}}}")) {
                    Some(201) => {
                        acknowledged.insert(n);
                    }
                    // Killed with the write in flight: it may or may not be in the file.
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            acknowledged
        })
    };
    let reader = {
        let (addr, expected) = (Arc::clone(&addr), Arc::clone(&expected));
        let key = key.clone();
        std::thread::spawn(move || {
            let mut received: Vec<(u64, u64)> = Vec::new();
            let mut last: Option<String> = None;
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline
                && (received.len() as u64) < expected.load(Ordering::Acquire)
            {
                let at = *addr.lock().unwrap();
                let credential = format!("x-api-key: {key}");
                let position = last.as_ref().map(|id| format!("Last-Event-ID: {id}"));
                let mut headers = vec![credential.as_str()];
                headers.extend(position.as_deref());
                // A server killed while connecting or answering: try again.
                let Some(mut stream) = sse::try_open(at, "/api/realtime/items", &headers) else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                if stream.status != 200 {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                stream.set_timeout(Duration::from_millis(500));
                while let Some(event) = stream.next() {
                    if event.event == "insert" {
                        let seq = event.data["seq"].as_u64().unwrap();
                        received.push((seq, event.data["doc"]["n"].as_u64().unwrap()));
                    }
                    if event.id.is_some() {
                        last = event.id.clone();
                    }
                }
            }
            received
        })
    };

    let mut rng = fastrand::Rng::with_seed(9);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(rng.u64(200..600)));
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
        let (restarted, at) = start(&key);
        server = restarted;
        *addr.lock().unwrap() = at;
    }
    let acknowledged = writer.join().unwrap();
    // What the file holds, from a snapshot of the restarted server.
    let at = *addr.lock().unwrap();
    let credential = format!("x-api-key: {key}");
    let mut stored = BTreeSet::new();
    let mut snapshot = sse::open(
        at,
        "/api/realtime/items?snapshot=true",
        &[credential.as_str()],
    );
    for event in snapshot.until("ready") {
        if event.event == "insert" {
            stored.insert(event.data["doc"]["n"].as_u64().unwrap());
        }
    }
    expected.store(stored.len() as u64, Ordering::Release);
    let received = reader.join().unwrap();
    server.kill().unwrap();
    server.wait().unwrap();

    assert!(
        acknowledged.is_subset(&stored),
        "every acknowledged write is in the file"
    );
    let seqs: Vec<u64> = received.iter().map(|(seq, _)| *seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing across restarts"
    );
    let numbers: Vec<u64> = received.iter().map(|(_, n)| *n).collect();
    let unique: BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(unique.len(), numbers.len(), "nothing delivered twice");
    assert_eq!(
        unique, stored,
        "exactly what the file holds, every acknowledged write included"
    );
    assert!(
        acknowledged.len() as u64 > WRITES / 2,
        "the run wrote through the kills: {}",
        acknowledged.len()
    );
}
