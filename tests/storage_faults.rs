//! Faults below the process, through a simulated disk (a redb storage backend that records
//! what was synced): power loss (unsynced writes lost, torn at 512-byte sectors and reordered)
//! must reopen to exactly the last durable commit; I/O errors injected after N operations must
//! come back as clean `Storage` errors (503 over HTTP once fatal), never a panic, and a reopen
//! must match the reference model.
//!
//! Environment variables: `LARDER_FAULT_SEEDS` (default 40) seeds per test, each a random
//! sequence of writes cut at a random operation; `LARDER_FAULT_SEED` replays one seed.

mod common;

use std::collections::BTreeMap;

use common::sim_disk::SimDisk;
use larder::{CollectionSpec, Db, ErrorKind, Query};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// The workload and its model

type Model = BTreeMap<String, Value>;

/// One random write against the database; on success the model follows. Returns the model as
/// it would be had the write succeeded, so a cut during a commit may land on either side.
fn step(db: &Db, model: &Model, rng: &mut fastrand::Rng, n: usize) -> (larder::Result<()>, Model) {
    let docs = db.collection::<Value>("docs");
    let mut next = model.clone();
    let body = |rng: &mut fastrand::Rng| {
        let len = if rng.u8(0..6) == 0 {
            rng.usize(2000..9000)
        } else {
            rng.usize(0..200)
        };
        json!({"n": n, "text": "t".repeat(len), "r": rng.u32(..)})
    };
    let existing: Vec<String> = model.keys().cloned().collect();
    let result = match rng.u8(0..10) {
        0..=3 => {
            let id = format!("d{n}");
            let data = body(rng);
            let mut doc = data.clone();
            doc["id"] = json!(id);
            next.insert(id, data);
            docs.insert(&doc).map(drop)
        }
        4 => {
            let batch: Vec<Value> = (0..3)
                .map(|k| {
                    let id = format!("d{n}-{k}");
                    let data = body(rng);
                    let mut doc = data.clone();
                    doc["id"] = json!(id);
                    next.insert(id, data);
                    doc
                })
                .collect();
            docs.insert_many(&batch).map(drop)
        }
        5..=7 if !existing.is_empty() => {
            let id = &existing[rng.usize(..existing.len())];
            let patch = json!({"patched": n, "text": null});
            let doc = next.get_mut(id).unwrap();
            doc["patched"] = json!(n);
            doc.as_object_mut().unwrap().remove("text");
            docs.patch(id, &patch).map(drop)
        }
        8 if !existing.is_empty() => {
            let id = &existing[rng.usize(..existing.len())];
            next.remove(id);
            docs.delete(id).map(drop)
        }
        _ => {
            // A read: changes nothing, and must agree with the model when it succeeds.
            let found = docs.find(&Query::new()).map(|found| {
                let read: Model = found.into_iter().map(|d| (d.id, d.data)).collect();
                assert_eq!(&read, model, "a read disagrees with the model");
            });
            return (found, next);
        }
    };
    (result, next)
}

fn contents(db: &Db) -> Model {
    db.collection::<Value>("docs")
        .find(&Query::new())
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.data))
        .collect()
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("LARDER_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return vec![seed];
    }
    let count = std::env::var("LARDER_FAULT_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    (1..=count).collect()
}

/// A database on a fresh simulated disk with the documents collection.
fn fresh() -> (SimDisk, Db) {
    let disk = SimDisk::default();
    let db = Db::builder().open_backend(disk.clone()).unwrap();
    db.collections()
        .create("docs", CollectionSpec::new())
        .unwrap();
    (disk, db)
}

/// Reopens an image and checks it is one of the allowed states; returns which.
fn reopen_matches(image: Vec<u8>, allowed: &[&Model], seed: u64) -> usize {
    let db = Db::builder()
        .open_backend(SimDisk::with_image(image))
        .unwrap_or_else(|e| panic!("seed {seed}: the image does not reopen: {e:?}"));
    let found = contents(&db);
    assert!(
        allowed.contains(&&found),
        "seed {seed}: reopened to {} documents, none of the allowed states ({:?} documents)",
        found.len(),
        allowed.iter().map(|m| m.len()).collect::<Vec<_>>()
    );
    assert!(db.check_integrity().unwrap(), "seed {seed}: integrity");
    allowed.iter().position(|m| **m == found).unwrap_or(0)
}

#[test]
fn power_loss_reopens_to_the_last_durable_commit() {
    let mut stats = [0usize; 3];
    for seed in seeds() {
        let mut rng = fastrand::Rng::with_seed(seed);
        let (disk, db) = fresh();
        let mut model = Model::new();
        // Some acknowledged history, then the power goes at a random backend call ahead.
        for n in 0..rng.usize(0..30) {
            let (result, next) = step(&db, &model, &mut rng, n);
            result.unwrap();
            model = next;
        }
        let cut = disk.0.lock().ops + rng.u64(0..400);
        disk.0.lock().power_off_after = Some(cut);
        let mut in_flight = model.clone();
        for n in 100.. {
            let (result, next) = step(&db, &model, &mut rng, n);
            match result {
                Ok(()) => model = next,
                Err(e) => {
                    assert!(
                        matches!(e.kind(), ErrorKind::Storage { .. }),
                        "seed {seed}: {e:?}"
                    );
                    in_flight = next;
                    break;
                }
            }
        }
        drop(db);
        if !disk.0.lock().pending.is_empty() {
            stats[2] += 1;
        }
        // Several different cuts of the same moment.
        for _ in 0..4 {
            let image = disk.0.lock().after_power_cut(&mut rng);
            stats[reopen_matches(image, &[&model, &in_flight], seed)] += 1;
        }
    }
    println!(
        "{} reopens at the last acknowledged commit, {} with the in-flight one; {} cuts had unsynced writes",
        stats[0], stats[1], stats[2]
    );
    assert!(stats[2] > 0, "no cut ever lost a write");
}

#[test]
fn io_errors_are_clean_errors_and_a_reopen_matches_the_model() {
    for seed in seeds() {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed);
        let (disk, db) = fresh();
        let mut model = Model::new();
        for n in 0..rng.usize(0..30) {
            let (result, next) = step(&db, &model, &mut rng, n);
            result.unwrap();
            model = next;
        }
        let fail_at = disk.0.lock().ops + rng.u64(0..400);
        disk.0.lock().fail_after = Some(fail_at);
        let mut in_flight: Option<Model> = None;
        let mut fatal_seen = false;
        for n in 100..160 {
            let (result, next) = step(&db, &model, &mut rng, n);
            match result {
                Ok(()) => {
                    assert!(
                        in_flight.is_none() || next == model,
                        "seed {seed}: a write succeeded after a storage failure"
                    );
                    model = next;
                }
                Err(e) => {
                    assert!(
                        matches!(e.kind(), ErrorKind::Storage { .. }),
                        "seed {seed}: {e:?}"
                    );
                    assert!(
                        !fatal_seen || e.is_fatal(),
                        "seed {seed}: a fatal error is followed by fatal errors"
                    );
                    fatal_seen |= e.is_fatal();
                    assert!(
                        !e.to_string().contains("injected"),
                        "the cause stays internal"
                    );
                    in_flight.get_or_insert(next);
                }
            }
        }
        drop(db);
        let in_flight = in_flight.unwrap_or_else(|| model.clone());
        // The process lived: what was written stays written, and what was synced survives.
        let (live, durable) = {
            let disk = disk.0.lock();
            (disk.live.clone(), disk.durable.clone())
        };
        reopen_matches(live, &[&model, &in_flight], seed);
        reopen_matches(durable, &[&model, &in_flight], seed);
    }
}

#[cfg(feature = "http")]
#[test]
fn over_http_a_failed_disk_is_503_with_a_generic_body_and_health_still_answers() {
    use common::wire::request;

    let (disk, db) = fresh();
    let sk = db
        .keys()
        .create(larder::NewApiKey::new(larder::KeyKind::Secret, "k"))
        .unwrap()
        .secret;
    let server = larder::Server::start(db.clone(), "127.0.0.1:0").unwrap();
    let post = |n: usize| {
        request(
            server.addr(),
            "POST",
            "/api/data/docs",
            &[("x-api-key", &sk)],
            Some(&json!({"n": n})),
        )
    };
    assert_eq!(post(0).status, 201);
    let now = disk.0.lock().ops;
    disk.0.lock().fail_after = Some(now);
    let statuses: Vec<u16> = (1..6).map(|n| post(n).status).collect();
    assert!(
        statuses.iter().all(|s| *s == 500 || *s == 503),
        "{statuses:?}"
    );
    assert_eq!(
        *statuses.last().unwrap(),
        503,
        "fatal once the commit failed: {statuses:?}"
    );
    let reply = post(7);
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.json()["error"],
        "the service is unavailable; retry later"
    );
    assert!(!reply.body.contains("injected"));
    // Health still answers, and says that writes wait for a reopen (503: restart me).
    let health = request(server.addr(), "GET", "/api/health", &[], None);
    assert_eq!(health.status, 503);
    let health = health.json();
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["writable"], false);
    assert_eq!(health["integrity_ok"], false);
    assert!(!db.health().is_ok());
}
