//! The change feed through the Rust API: every committed change exactly once, in order, as
//! the subscriber's rules let it see it; resume, snapshot, reset and revocation.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::TestDb;
use larder::{
    Batch, ChangeOp, Client, CollectionSpec, Db, ErrorKind, FeedEvent, Filter, NewUser,
    ResetReason, Retention, Rules, Since, Subscription,
};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";
const WAIT: Duration = Duration::from_secs(10);

fn db_with(name: &str, spec: CollectionSpec) -> Db {
    let db = Db::builder().in_memory().unwrap();
    db.collections().create(name, spec).unwrap();
    db
}

/// A new user, signed in.
fn signup(db: &Db, email: &str) -> larder::SignedIn {
    db.users()
        .signup(NewUser::new(email, PASSWORD), &Client::unknown())
        .unwrap()
}

/// The next event, failing the test instead of hanging.
fn next(sub: &mut Subscription) -> FeedEvent {
    match sub.next_timeout(WAIT) {
        Some(Ok(event)) => event,
        Some(Err(error)) => panic!("feed error: {error}"),
        None => panic!("no event within {WAIT:?} (closed: {})", sub.is_closed()),
    }
}

fn next_batch(sub: &mut Subscription) -> Batch {
    match next(sub) {
        FeedEvent::Batch(batch) => batch,
        other => panic!("expected a batch, got {other:?}"),
    }
}

fn expect_ready(sub: &mut Subscription) -> u64 {
    match next(sub) {
        FeedEvent::Ready { seq, .. } => seq,
        other => panic!("expected ready, got {other:?}"),
    }
}

/// Nothing more arrives (briefly waited for: the absence of an event).
fn assert_quiet(sub: &mut Subscription) {
    if let Some(event) = sub.next_timeout(Duration::from_millis(200)) {
        panic!("unexpected event {event:?}");
    }
}

fn ops(batch: &Batch) -> Vec<(ChangeOp, String)> {
    batch.changes.iter().map(|c| (c.op, c.id.clone())).collect()
}

#[test]
fn every_write_arrives_once_in_order_with_its_own_sequence() {
    let db = db_with("notes", CollectionSpec::new());
    let notes = db.collection::<Value>("notes");
    let mut sub = notes.subscribe(Filter::All, Since::Now).unwrap();
    let start = expect_ready(&mut sub);

    let a = notes.insert(&json!({"n": 1})).unwrap();
    notes.patch(&a.id, &json!({"n": 2})).unwrap();
    let many = notes
        .insert_many(&[json!({"n": 3}), json!({"n": 4})])
        .unwrap();
    notes.delete(&a.id).unwrap();

    let first = next_batch(&mut sub);
    assert_eq!(first.seq, start + 1);
    assert_eq!(ops(&first), [(ChangeOp::Insert, a.id.clone())]);
    assert_eq!(first.changes[0].doc.as_ref().unwrap().data["n"], 1);

    let second = next_batch(&mut sub);
    assert_eq!(second.seq, start + 2);
    assert_eq!(ops(&second), [(ChangeOp::Update, a.id.clone())]);
    let change = &second.changes[0];
    assert_eq!(change.doc.as_ref().unwrap().data["n"], 2);
    assert_eq!(change.prev.as_ref().unwrap().data["n"], 1);

    let third = next_batch(&mut sub);
    assert_eq!(third.seq, start + 3, "one transaction, one sequence number");
    assert_eq!(
        ops(&third),
        [
            (ChangeOp::Insert, many[0].id.clone()),
            (ChangeOp::Insert, many[1].id.clone())
        ]
    );

    let fourth = next_batch(&mut sub);
    assert_eq!(ops(&fourth), [(ChangeOp::Delete, a.id.clone())]);
    assert!(fourth.changes[0].doc.is_none());
    assert_eq!(fourth.changes[0].prev.as_ref().unwrap().data["n"], 2);
    assert_eq!(sub.cursor(), start + 4);
    assert_quiet(&mut sub);
}

#[test]
fn a_refused_write_takes_no_sequence_number() {
    let db = db_with("notes", CollectionSpec::new());
    let notes = db.collection::<Value>("notes");
    let mut sub = notes.subscribe(Filter::All, Since::Now).unwrap();
    let start = expect_ready(&mut sub);
    notes.insert_with_id("x", &json!({})).unwrap();
    assert!(notes.insert_with_id("x", &json!({})).is_err());
    assert!(
        notes
            .insert_many(&[json!({"ok": true}), json!("not an object")])
            .is_err()
    );
    notes.insert_with_id("y", &json!({})).unwrap();
    assert_eq!(next_batch(&mut sub).seq, start + 1);
    let second = next_batch(&mut sub);
    assert_eq!(
        (second.seq, second.changes[0].id.as_str()),
        (start + 2, "y")
    );
}

#[test]
fn resuming_from_a_position_after_reopening_misses_and_repeats_nothing() {
    let test = TestDb::new().with_collection("notes", CollectionSpec::new());
    let notes = test.db.collection::<Value>("notes");
    for n in 0..10 {
        notes.insert(&json!({"n": n})).unwrap();
    }
    let mut sub = notes.subscribe(Filter::All, Since::Seq(0)).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let batch = next_batch(&mut sub);
        seen.push(batch.changes[0].doc.as_ref().unwrap().data["n"].clone());
    }
    let position = sub.cursor();
    drop(sub);
    drop(notes);
    let test = test.reopen();
    let notes = test.db.collection::<Value>("notes");
    notes.insert(&json!({"n": 10})).unwrap();
    let mut sub = notes.subscribe(Filter::All, Since::Seq(position)).unwrap();
    while seen.len() < 11 {
        let batch = next_batch(&mut sub);
        seen.push(batch.changes[0].doc.as_ref().unwrap().data["n"].clone());
    }
    assert_eq!(seen, (0..11).map(Value::from).collect::<Vec<_>>());
    assert_eq!(expect_ready(&mut sub), position + 7);
}

#[test]
fn a_position_beyond_the_log_or_trimmed_away_is_a_reset_never_a_gap() {
    let db = Db::builder()
        .feed_retention(Retention {
            max_batches: 5,
            ..Retention::default()
        })
        .in_memory()
        .unwrap();
    db.collections()
        .create("notes", CollectionSpec::new())
        .unwrap();
    let notes = db.collection::<Value>("notes");
    for n in 0..20 {
        notes.insert(&json!({"n": n})).unwrap();
    }
    let mut sub = notes.subscribe(Filter::All, Since::Seq(3)).unwrap();
    match next(&mut sub) {
        FeedEvent::Reset { reason, seq, .. } => {
            assert_eq!(reason, ResetReason::TooOld);
            assert_eq!(seq, 16, "the newest five batches are kept");
        }
        other => panic!("expected a reset, got {other:?}"),
    }
    assert!(sub.next_timeout(WAIT).is_none());
    assert!(sub.is_closed());

    let mut kept = notes.subscribe(Filter::All, Since::Seq(15)).unwrap();
    for n in 15..20 {
        assert_eq!(
            next_batch(&mut kept).changes[0].doc.as_ref().unwrap().data["n"],
            n
        );
    }

    let mut future = notes.subscribe(Filter::All, Since::Seq(99)).unwrap();
    assert!(matches!(
        next(&mut future),
        FeedEvent::Reset {
            reason: ResetReason::UnknownPosition,
            ..
        }
    ));
}

#[test]
fn a_stalled_subscriber_does_not_hold_writers_and_catches_up_from_the_log() {
    let db = db_with("notes", CollectionSpec::new());
    let notes = db.collection::<Value>("notes");
    let mut stalled = notes.subscribe(Filter::All, Since::Now).unwrap();
    expect_ready(&mut stalled);
    // Far more batches than one page: the subscriber reads them in pages.
    for n in 0..1500 {
        notes.insert(&json!({"n": n})).unwrap();
    }
    let mut received = 0;
    while received < 1500 {
        let batch = next_batch(&mut stalled);
        assert_eq!(batch.changes[0].doc.as_ref().unwrap().data["n"], received);
        received += 1;
    }
    assert_quiet(&mut stalled);
}

#[test]
fn snapshot_then_live_has_no_gap_and_no_duplicate_under_concurrent_writers() {
    let db = db_with("notes", CollectionSpec::new());
    let writer = {
        let notes = db.collection::<Value>("notes");
        std::thread::spawn(move || {
            for n in 0..400 {
                let doc = notes.insert(&json!({"n": n})).unwrap();
                if n % 3 == 0 {
                    notes.delete(&doc.id).unwrap();
                }
            }
        })
    };
    let mut views = Vec::new();
    for _ in 0..8 {
        let notes = db.collection::<Value>("notes");
        let mut sub = notes.subscribe(Filter::All, Since::Snapshot).unwrap();
        let mut view = BTreeMap::new();
        loop {
            match next(&mut sub) {
                FeedEvent::Snapshot { docs, .. } => {
                    for doc in docs {
                        assert!(view.insert(doc.id.clone(), doc.data).is_none());
                    }
                }
                FeedEvent::Ready { .. } => break,
                other => panic!("expected the snapshot, got {other:?}"),
            }
        }
        views.push((sub, view));
        std::thread::sleep(Duration::from_millis(5));
    }
    writer.join().unwrap();
    let high = db
        .collection::<Value>("notes")
        .subscribe(Filter::All, Since::Now)
        .unwrap()
        .cursor();
    let truth: BTreeMap<String, Value> = db
        .collection::<Value>("notes")
        .find(&larder::Query::new())
        .unwrap()
        .into_iter()
        .map(|doc| (doc.id, doc.data))
        .collect();
    for (mut sub, mut view) in views {
        while sub.cursor() < high {
            for change in next_batch(&mut sub).changes {
                match change.op {
                    ChangeOp::Insert => {
                        let doc = change.doc.unwrap();
                        assert!(view.insert(doc.id, doc.data).is_none(), "a duplicate");
                    }
                    ChangeOp::Update => {
                        view.insert(change.id, change.doc.unwrap().data);
                    }
                    ChangeOp::Delete => {
                        assert!(view.remove(&change.id).is_some(), "a gap");
                    }
                }
            }
        }
        assert_eq!(view, truth);
    }
}

#[test]
fn owner_rules_decide_who_sees_a_change_and_a_transfer_moves_it() {
    let db = db_with(
        "items",
        CollectionSpec::new()
            .rules(Rules::owner_only())
            .owner_field("owner")
            .hidden_field("secret"),
    );
    let ada = signup(&db, "ada@example.com");
    let bob = signup(&db, "bob@example.com");
    let as_ada = db.as_user(&ada.access_token).unwrap();
    let as_bob = db.as_user(&bob.access_token).unwrap();
    let mut ada_feed = as_ada
        .collection::<Value>("items")
        .subscribe(Filter::All, Since::Now)
        .unwrap();
    expect_ready(&mut ada_feed);

    let bobs = as_bob
        .collection::<Value>("items")
        .insert(&json!({"title": "bob's"}))
        .unwrap();
    as_bob
        .collection::<Value>("items")
        .delete(&bobs.id)
        .unwrap();
    let adas = as_ada
        .collection::<Value>("items")
        .insert(&json!({"title": "ada's"}))
        .unwrap();
    let batch = next_batch(&mut ada_feed);
    assert_eq!(
        ops(&batch),
        [(ChangeOp::Insert, adas.id.clone())],
        "bob's insert and delete are not ada's to see"
    );
    assert_eq!(
        batch.changes[0].doc.as_ref().unwrap().data["title"],
        "ada's"
    );

    // A change of a hidden field alone still shows (updated_at moved), without the field.
    let system = db.collection::<Value>("items");
    system
        .patch(&adas.id, &json!({"secret": "canary-7d1f"}))
        .unwrap();
    let batch = next_batch(&mut ada_feed);
    assert_eq!(ops(&batch), [(ChangeOp::Update, adas.id.clone())]);
    assert!(!format!("{batch:?}").contains("canary-7d1f"));

    // The administrator gives ada's item to bob: it leaves ada's view.
    let mut bob_feed = as_bob
        .collection::<Value>("items")
        .subscribe(Filter::All, Since::Now)
        .unwrap();
    expect_ready(&mut bob_feed);
    system
        .patch(&adas.id, &json!({"owner": bob.user.id}))
        .unwrap();
    assert_eq!(
        ops(&next_batch(&mut ada_feed)),
        [(ChangeOp::Delete, adas.id.clone())]
    );
    let arrived = next_batch(&mut bob_feed);
    assert_eq!(ops(&arrived), [(ChangeOp::Insert, adas.id.clone())]);
    assert!(arrived.changes[0].prev.is_none());
    assert_quiet(&mut ada_feed);
}

#[test]
fn a_filter_is_applied_before_and_after_each_change() {
    let db = db_with("tasks", CollectionSpec::new());
    let tasks = db.collection::<Value>("tasks");
    let mut open = tasks
        .subscribe(Filter::eq("status", "open"), Since::Now)
        .unwrap();
    expect_ready(&mut open);
    let closed = tasks.insert(&json!({"status": "closed"})).unwrap();
    tasks.delete(&closed.id).unwrap();
    let task = tasks.insert(&json!({"status": "open"})).unwrap();
    tasks.patch(&task.id, &json!({"status": "closed"})).unwrap();
    tasks.patch(&task.id, &json!({"status": "open"})).unwrap();
    tasks.delete(&task.id).unwrap();
    let seen: Vec<ChangeOp> = (0..4)
        .map(|_| next_batch(&mut open).changes[0].op)
        .collect();
    assert_eq!(
        seen,
        [
            ChangeOp::Insert,
            ChangeOp::Delete,
            ChangeOp::Insert,
            ChangeOp::Delete
        ]
    );
    assert_quiet(&mut open);
}

#[test]
fn a_filter_on_a_hidden_field_is_refused_at_subscribe() {
    let db = db_with(
        "items",
        CollectionSpec::new()
            .rules(Rules::public_read())
            .hidden_field("secret"),
    );
    let anonymous = db.anonymous().collection::<Value>("items");
    let refused = anonymous.subscribe(Filter::eq("secret", "x"), Since::Now);
    assert!(matches!(
        refused.unwrap_err().kind(),
        ErrorKind::InvalidInput { .. }
    ));
    let admin_only = db_with("private", CollectionSpec::new());
    let refused = admin_only
        .anonymous()
        .collection::<Value>("private")
        .subscribe(Filter::All, Since::Now);
    assert!(refused.is_err());
}

#[test]
fn ending_the_session_ends_the_stream_with_an_error() {
    let db = db_with("items", CollectionSpec::new().rules(Rules::signed_in()));
    let ada = signup(&db, "ada@example.com");
    let mut feed = db
        .as_user(&ada.access_token)
        .unwrap()
        .collection::<Value>("items")
        .subscribe(Filter::All, Since::Now)
        .unwrap();
    expect_ready(&mut feed);
    let waiter = std::thread::spawn(move || {
        let event = feed.next_timeout(WAIT);
        (event, feed.next_timeout(Duration::from_millis(100)))
    });
    std::thread::sleep(Duration::from_millis(100));
    db.sessions().end_all(&ada.user.id).unwrap();
    let (event, after) = waiter.join().unwrap();
    let error = event.expect("the stream ends at once").unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Unauthenticated { .. }));
    assert!(after.is_none());
}

#[test]
fn rule_changes_and_deletion_reset_subscribers() {
    let db = db_with("notes", CollectionSpec::new());
    let notes = db.collection::<Value>("notes");
    let mut sub = notes.subscribe(Filter::All, Since::Now).unwrap();
    expect_ready(&mut sub);
    // An index changes nobody's view.
    db.collections()
        .update("notes", CollectionSpec::new().index("n"))
        .unwrap();
    notes.insert(&json!({"n": 1})).unwrap();
    assert_eq!(next_batch(&mut sub).changes.len(), 1);
    db.collections()
        .update("notes", CollectionSpec::new().index("n").hidden_field("n"))
        .unwrap();
    assert!(matches!(
        next(&mut sub),
        FeedEvent::Reset {
            reason: ResetReason::RulesChanged,
            ..
        }
    ));
    assert!(sub.next_timeout(WAIT).is_none());

    let mut sub = notes.subscribe(Filter::All, Since::Now).unwrap();
    expect_ready(&mut sub);
    db.collections().delete("notes").unwrap();
    assert!(matches!(
        next(&mut sub),
        FeedEvent::Reset {
            reason: ResetReason::CollectionDeleted,
            ..
        }
    ));
}

#[test]
fn typed_handles_receive_typed_documents() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Note {
        title: String,
    }
    let db = db_with("notes", CollectionSpec::new());
    let notes = db.collection::<Note>("notes");
    let mut sub = notes.subscribe(Filter::All, Since::Now).unwrap();
    notes
        .insert(&Note {
            title: "typed".into(),
        })
        .unwrap();
    let mut events = sub.by_ref().take(2);
    assert!(matches!(events.next(), Some(Ok(FeedEvent::Ready { .. }))));
    let Some(Ok(FeedEvent::Batch(batch))) = events.next() else {
        panic!("expected a batch")
    };
    assert_eq!(batch.changes[0].doc.as_ref().unwrap().data.title, "typed");
}

/// Random writes from several threads, some of them refused: replaying the feed from the start
/// rebuilds the collection exactly, with one batch per successful write, numbered 1, 2, 3, …
#[test]
fn model_replaying_the_feed_rebuilds_the_collection() {
    let db = db_with("model", CollectionSpec::new());
    let threads: Vec<_> = (0..4u64)
        .map(|thread| {
            let docs = db.collection::<Value>("model");
            std::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(0x5eed + thread);
                let mut mine: Vec<String> = Vec::new();
                let mut succeeded = 0u64;
                for step in 0..150 {
                    let id = format!("t{thread}-{}", rng.u32(..40));
                    let ok = match rng.u8(..8) {
                        0 | 1 => docs
                            .insert_with_id(&id, &json!({"step": step}))
                            .map(|doc| mine.push(doc.id))
                            .is_ok(),
                        2 => {
                            let batch: Vec<Value> =
                                (0..rng.usize(1..5)).map(|i| json!({"i": i})).collect();
                            docs.insert_many(&batch)
                                .map(|out| mine.extend(out.into_iter().map(|d| d.id)))
                                .is_ok()
                        }
                        3 => docs
                            .insert_many(&[json!({"fine": true}), json!([1, 2])])
                            .is_ok(),
                        4 => docs.patch(&id, &json!({"patched": step})).is_ok(),
                        5 => docs.replace(&id, &json!({"replaced": step})).is_ok(),
                        6 => docs.delete(&id).is_ok(),
                        _ => {
                            let some: Vec<String> =
                                mine.iter().take(rng.usize(1..3)).cloned().collect();
                            !some.is_empty() && docs.delete_many(&some).is_ok()
                        }
                    };
                    succeeded += u64::from(ok);
                }
                succeeded
            })
        })
        .collect();
    let succeeded: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();

    let docs = db.collection::<Value>("model");
    let mut feed = docs.subscribe(Filter::All, Since::Seq(0)).unwrap();
    let mut replayed: BTreeMap<String, Value> = BTreeMap::new();
    let mut expected_seq = 1;
    while feed.cursor() < succeeded {
        let batch = next_batch(&mut feed);
        assert_eq!(batch.seq, expected_seq, "sequence numbers have no gap");
        expected_seq += 1;
        assert!(!batch.changes.is_empty());
        for change in batch.changes {
            match change.op {
                ChangeOp::Insert => {
                    let doc = change.doc.unwrap();
                    assert!(replayed.insert(doc.id, doc.data).is_none());
                }
                ChangeOp::Update => {
                    assert!(replayed.contains_key(&change.id));
                    replayed.insert(change.id, change.doc.unwrap().data);
                }
                ChangeOp::Delete => assert!(replayed.remove(&change.id).is_some()),
            }
        }
    }
    assert_eq!(
        expected_seq - 1,
        succeeded,
        "one batch per successful write"
    );
    assert!(matches!(next(&mut feed), FeedEvent::Ready { seq, .. } if seq == succeeded));
    let truth: BTreeMap<String, Value> = docs
        .find(&larder::Query::new())
        .unwrap()
        .into_iter()
        .map(|doc| (doc.id, doc.data))
        .collect();
    assert_eq!(replayed, truth);
}

#[test]
fn pages_of_changes_a_subscriber_may_not_see_do_not_hold_back_the_one_it_may() {
    let db = db_with(
        "items",
        CollectionSpec::new()
            .rules(Rules::owner_only())
            .owner_field("owner"),
    );
    let ada = signup(&db, "ada@example.com");
    let bob = signup(&db, "bob@example.com");
    let as_ada = db.as_user(&ada.access_token).unwrap();
    let mut feed = as_ada
        .collection::<Value>("items")
        .subscribe(Filter::All, Since::Now)
        .unwrap();
    expect_ready(&mut feed);
    let bobs = db
        .as_user(&bob.access_token)
        .unwrap()
        .collection::<Value>("items");
    for n in 0..700 {
        bobs.insert(&json!({"n": n})).unwrap();
    }
    let mine = as_ada
        .collection::<Value>("items")
        .insert(&json!({"n": "ada's"}))
        .unwrap();
    let batch = next_batch(&mut feed);
    assert_eq!(ops(&batch), [(ChangeOp::Insert, mine.id)]);
}

#[test]
fn a_lost_role_or_grant_resets_the_subscription() {
    let rules = larder::Rules {
        list: larder::Rule::Roles(vec!["editor".into()]),
        ..Rules::admin_only()
    };
    let db = db_with("drafts", CollectionSpec::new().rules(rules));
    let ada = signup(&db, "ada@example.com");
    db.users()
        .set_roles(&ada.user.id, &["editor".to_owned()])
        .unwrap();
    let mut feed = db
        .as_user(&ada.access_token)
        .unwrap()
        .collection::<Value>("drafts")
        .subscribe(Filter::All, Since::Now)
        .unwrap();
    expect_ready(&mut feed);
    db.collection::<Value>("drafts")
        .insert(&json!({"v": 1}))
        .unwrap();
    assert_eq!(next_batch(&mut feed).changes.len(), 1);
    db.users().set_roles(&ada.user.id, &[]).unwrap();
    db.collection::<Value>("drafts")
        .insert(&json!({"v": 2}))
        .unwrap();
    assert!(matches!(
        next(&mut feed),
        FeedEvent::Reset {
            reason: ResetReason::AccessChanged,
            ..
        }
    ));
    assert!(feed.next_timeout(WAIT).is_none(), "nothing after the reset");

    // A scoped key whose grant changes (here: a field it may no longer see).
    let key = db
        .keys()
        .create(
            larder::NewApiKey::new(larder::KeyKind::Scoped, "reports")
                .grant("drafts", larder::Grant::read()),
        )
        .unwrap();
    let mut feed = db
        .with_key(&key.secret)
        .unwrap()
        .collection::<Value>("drafts")
        .subscribe(Filter::All, Since::Now)
        .unwrap();
    expect_ready(&mut feed);
    let narrower = larder::Grant {
        exclude_fields: vec!["v".into()],
        ..larder::Grant::read()
    };
    db.keys()
        .set_grants(&key.info.id, [("drafts".to_owned(), narrower)].into())
        .unwrap();
    assert!(matches!(
        next(&mut feed),
        FeedEvent::Reset {
            reason: ResetReason::AccessChanged,
            ..
        }
    ));
}

/// Random writes by two users and the administrator on an owner-rule collection with a hidden
/// field, and subscribers (each user, the administrator) that drop their subscription at
/// random points and resume from their cursor: each one's view, rebuilt from its snapshot and
/// events, equals what a list request shows it at the end, and no event carries the hidden
/// field to a user.
#[test]
fn model_each_subscriber_sees_exactly_its_own_view_across_resumes() {
    let db = db_with(
        "items",
        CollectionSpec::new()
            .rules(Rules::owner_only())
            .owner_field("owner")
            .hidden_field("secret"),
    );
    let (ada, bob) = (
        signup(&db, "ada@example.com"),
        signup(&db, "bob@example.com"),
    );
    let actors = [
        db.as_user(&ada.access_token).unwrap(),
        db.as_user(&bob.access_token).unwrap(),
    ];
    let owners = [ada.user.id.clone(), bob.user.id.clone()];
    let system = db.collection::<Value>("items");
    let handles: Vec<larder::Collection<Value>> = actors
        .iter()
        .map(|a| a.collection::<Value>("items"))
        .chain([system.clone()])
        .collect();

    struct Watcher {
        handle: larder::Collection<Value>,
        feed: Subscription,
        view: BTreeMap<String, Value>,
        is_admin: bool,
    }
    let apply = |w: &mut Watcher, event: FeedEvent| match event {
        FeedEvent::Snapshot { docs, .. } => {
            for doc in docs {
                w.view.insert(doc.id, doc.data);
            }
        }
        FeedEvent::Ready { .. } => {}
        FeedEvent::Batch(batch) => {
            for change in batch.changes {
                if let Some(doc) = &change.doc
                    && !w.is_admin
                {
                    assert!(doc.data.get("secret").is_none(), "a hidden field leaked");
                }
                match change.op {
                    ChangeOp::Insert => {
                        assert!(w.view.insert(change.id, change.doc.unwrap().data).is_none());
                    }
                    ChangeOp::Update => {
                        assert!(w.view.insert(change.id, change.doc.unwrap().data).is_some());
                    }
                    ChangeOp::Delete => assert!(w.view.remove(&change.id).is_some()),
                }
            }
        }
        FeedEvent::Reset { .. } => panic!("no reset expected"),
    };
    let mut watchers: Vec<Watcher> = handles
        .iter()
        .enumerate()
        .map(|(i, handle)| Watcher {
            handle: handle.clone(),
            feed: handle.subscribe(Filter::All, Since::Snapshot).unwrap(),
            view: BTreeMap::new(),
            is_admin: i == 2,
        })
        .collect();

    let mut rng = fastrand::Rng::with_seed(0xfeed);
    let mut ids: Vec<String> = Vec::new();
    for step in 0..600 {
        let who = rng.usize(..3);
        let handle = &handles[who];
        let pick = |rng: &mut fastrand::Rng| ids.get(rng.usize(..ids.len().max(1))).cloned();
        match rng.u8(..7) {
            0 | 1 => {
                if let Ok(doc) = handle.insert(&json!({"step": step})) {
                    ids.push(doc.id);
                }
            }
            2 => {
                if let Some(id) = pick(&mut rng) {
                    let _ = handle.patch(&id, &json!({"step": step}));
                }
            }
            3 => {
                if let Some(id) = pick(&mut rng) {
                    let _ = system.patch(&id, &json!({"owner": owners[rng.usize(..2)]}));
                }
            }
            4 => {
                if let Some(id) = pick(&mut rng) {
                    let _ = system.patch(&id, &json!({"secret": format!("s{step}")}));
                }
            }
            5 => {
                if let Some(id) = pick(&mut rng) {
                    let _ = handle.delete(&id);
                }
            }
            _ => {
                let docs: Vec<Value> = (0..rng.usize(1..4))
                    .map(|i| json!({"owner": owners[rng.usize(..2)], "i": i}))
                    .collect();
                if let Ok(out) = system.insert_many(&docs) {
                    ids.extend(out.into_iter().map(|d| d.id));
                }
            }
        }
        // Each watcher now and then takes what has arrived, or drops its subscription and
        // resumes from its cursor.
        for watcher in &mut watchers {
            match rng.u8(..6) {
                0 => {
                    let cursor = watcher.feed.cursor();
                    watcher.feed = watcher
                        .handle
                        .subscribe(Filter::All, Since::Seq(cursor))
                        .unwrap();
                }
                1 | 2 => {
                    while let Some(event) = watcher.feed.next_timeout(Duration::ZERO) {
                        apply(watcher, event.unwrap());
                    }
                }
                _ => {}
            }
        }
    }
    let high = system.subscribe(Filter::All, Since::Now).unwrap().cursor();
    for watcher in &mut watchers {
        let deadline = std::time::Instant::now() + WAIT;
        while watcher.feed.cursor() < high {
            assert!(
                std::time::Instant::now() < deadline,
                "the watcher did not catch up"
            );
            // The last batches may all be invisible to it: no event, but the cursor moves.
            if let Some(event) = watcher.feed.next_timeout(Duration::from_millis(20)) {
                apply(watcher, event.unwrap());
            }
        }
        let truth: BTreeMap<String, Value> = watcher
            .handle
            .find(&larder::Query::new())
            .unwrap()
            .into_iter()
            .map(|doc| (doc.id, doc.data))
            .collect();
        assert_eq!(watcher.view, truth);
    }
}

#[cfg(feature = "http")]
#[test]
fn in_async_code_a_subscription_is_a_stream() {
    use futures_core::Stream;
    let db = db_with("notes", CollectionSpec::new());
    let notes = db.collection::<Value>("notes");
    let mut feed = notes.subscribe(Filter::All, Since::Now).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        notes.insert(&json!({"n": 1})).unwrap();
    });
    let events = runtime.block_on(async {
        let mut events = Vec::new();
        while events.len() < 2 {
            let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut feed).poll_next(cx));
            let event = tokio::time::timeout(WAIT, next)
                .await
                .expect("an event in time");
            events.push(event.unwrap().unwrap());
        }
        events
    });
    writer.join().unwrap();
    assert!(matches!(events[0], FeedEvent::Ready { .. }));
    let FeedEvent::Batch(batch) = &events[1] else {
        panic!("expected a batch")
    };
    assert_eq!(batch.changes[0].doc.as_ref().unwrap().data["n"], 1);
}

#[test]
fn the_byte_budget_and_the_age_limit_trim_old_history_too() {
    let (db, clock) = {
        let clock =
            larder::ManualClock::at(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let db = Db::builder()
            .clock(clock.clone())
            .feed_retention(Retention {
                max_bytes: 4_000,
                max_age: Duration::from_secs(3600),
                ..Retention::default()
            })
            .in_memory()
            .unwrap();
        (db, clock)
    };
    db.collections()
        .create("notes", CollectionSpec::new())
        .unwrap();
    let notes = db.collection::<Value>("notes");
    let body = "x".repeat(200);
    for n in 0..40 {
        notes.insert(&json!({"n": n, "body": body})).unwrap();
    }
    let oldest = |db: &Db| match db
        .collection::<Value>("notes")
        .subscribe(Filter::All, Since::Seq(0))
        .unwrap()
        .next_timeout(WAIT)
    {
        Some(Ok(FeedEvent::Reset { reason, seq, .. })) => {
            assert_eq!(reason, ResetReason::TooOld);
            seq
        }
        other => panic!("expected a reset, got {other:?}"),
    };
    let by_bytes = oldest(&db);
    // Each batch takes about 300 bytes of the 4,000: some ten of the forty are kept.
    assert!((25..=35).contains(&by_bytes), "{by_bytes}");
    // An hour later, one more commit trims everything older than an hour (the newest stays).
    clock.advance(Duration::from_secs(3601));
    notes.insert(&json!({"n": "late"})).unwrap();
    assert!(oldest(&db) > by_bytes);
}
