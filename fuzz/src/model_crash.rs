//! Random operation sequences on a simulated disk, against a reference model, with power cuts
//! and I/O errors at any backend call and reopens in between (see `tests/common/sim_disk.rs`).
//!
//! Oracles:
//! - every operation's outcome (success, `AlreadyExists`, `NotFound`) is the model's, until a
//!   fault, which surfaces as a `Storage` error and nothing else;
//! - after a power cut the file reopens to exactly the last acknowledged state, or to that state
//!   plus the write in flight; after an I/O error the same holds for the process's view and for
//!   the synced image; a clean reopen loses nothing;
//! - after every reopen, the documents, the index on `n` and redb's integrity check all agree.

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use larder::{CollectionSpec, Db, ErrorKind, Filter, Query};
use serde_json::{Value, json};

use super::sim_disk::SimDisk;

type Model = BTreeMap<String, Value>;

#[derive(Debug, Arbitrary)]
pub struct Input {
    steps: Vec<Step>,
}

#[derive(Debug, Arbitrary)]
enum Step {
    Insert {
        id: u8,
        n: i8,
        size: u16,
    },
    InsertMany(Vec<(u8, i8)>),
    Patch {
        id: u8,
        n: Option<i8>,
    },
    Delete(u8),
    /// Compares everything with the model.
    Check,
    /// The power goes off after this many more backend calls.
    PowerCut {
        after: u16,
        seed: u64,
    },
    /// Backend calls fail after this many more.
    IoError {
        after: u16,
    },
    /// The process ends cleanly and the file is opened again.
    Reopen,
}

/// A pending fault, armed by a step.
enum Fault {
    None,
    Power(u64),
    Io,
}

fn id(n: u8) -> String {
    format!("d{}", n % 24)
}

/// Runs a write; returns its result and the model as it is if the write succeeded.
fn write(
    db: &Db,
    model: &Model,
    step: &Step,
    counter: usize,
) -> Option<(larder::Result<()>, Model)> {
    let docs = db.collection::<Value>("docs");
    let mut next = model.clone();
    let result = match step {
        Step::Insert { id: i, n, size } => {
            let data = json!({"n": n, "pad": "x".repeat(*size as usize % 3000), "v": counter});
            next.insert(id(*i), data.clone());
            let mut doc = data;
            doc["id"] = json!(id(*i));
            docs.insert(&doc).map(drop)
        }
        Step::InsertMany(batch) => {
            let batch: Vec<Value> = batch
                .iter()
                .take(8)
                .map(|(i, n)| {
                    next.insert(id(*i), json!({"n": n, "v": counter}));
                    json!({"id": id(*i), "n": n, "v": counter})
                })
                .collect();
            docs.insert_many(&batch).map(drop)
        }
        Step::Patch { id: i, n } => {
            if let Some(doc) = next.get_mut(&id(*i)) {
                match n {
                    Some(n) => doc["n"] = json!(n),
                    None => drop(doc.as_object_mut().unwrap().remove("n")),
                }
                doc["p"] = json!(counter);
            }
            docs.patch(&id(*i), &json!({"n": n, "p": counter}))
                .map(drop)
        }
        Step::Delete(i) => {
            next.remove(&id(*i));
            docs.delete(&id(*i)).map(drop)
        }
        _ => return None,
    };
    Some((result, next))
}

/// The error the model expects of a write, if any.
fn expected_error(model: &Model, step: &Step) -> Option<&'static str> {
    match step {
        Step::Insert { id: i, .. } if model.contains_key(&id(*i)) => Some("AlreadyExists"),
        Step::InsertMany(batch) => {
            let ids: Vec<String> = batch.iter().take(8).map(|(i, _)| id(*i)).collect();
            let repeated = (1..ids.len()).any(|k| ids[..k].contains(&ids[k]));
            (repeated || ids.iter().any(|i| model.contains_key(i))).then_some("AlreadyExists")
        }
        Step::Patch { id: i, .. } | Step::Delete(i) if !model.contains_key(&id(*i)) => {
            Some("NotFound")
        }
        _ => None,
    }
}

fn kind_name(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::AlreadyExists { .. } => "AlreadyExists",
        ErrorKind::NotFound { .. } => "NotFound",
        ErrorKind::Storage { .. } => "Storage",
        _ => "other",
    }
}

fn open(image: Vec<u8>) -> (SimDisk, Db) {
    let disk = SimDisk::with_image(image);
    let db = Db::builder()
        .open_backend(disk.clone())
        .unwrap_or_else(|e| panic!("the image does not reopen: {e:?}"));
    (disk, db)
}

/// Checks the documents and the index against `model`.
fn agrees(db: &Db, model: &Model) -> bool {
    let docs = db.collection::<Value>("docs");
    let found: Model = docs
        .find(&Query::new())
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.data))
        .collect();
    if &found != model {
        return false;
    }
    for n in -3..=3 {
        let by_index: Vec<String> = docs
            .find(&Query::new().filter(Filter::eq("n", n)).sort_asc("id"))
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        let expected: Vec<&String> = model
            .iter()
            .filter(|(_, d)| d["n"] == json!(n))
            .map(|(id, _)| id)
            .collect();
        assert_eq!(
            by_index.iter().collect::<Vec<_>>(),
            expected,
            "the index on n disagrees for {n}"
        );
    }
    true
}

/// Reopens an image, checks it holds one of `allowed` and passes the integrity check; returns the
/// reopened database and the state it holds.
fn reopen(image: Vec<u8>, allowed: &[&Model]) -> (SimDisk, Db, Model) {
    let (_, check) = open(image.clone());
    assert!(
        check.check_integrity().unwrap(),
        "integrity after reopening"
    );
    let (disk, db) = open(image);
    let state = allowed
        .iter()
        .find(|model| agrees(&db, model))
        .unwrap_or_else(|| panic!("reopened to none of the {} allowed states", allowed.len()));
    let state = (*state).clone();
    (disk, db, state)
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    let Some(input) = super::decode::<Input>(data) else {
        return;
    };
    let mut disk = SimDisk::default();
    let mut db = Db::builder().open_backend(disk.clone()).unwrap();
    db.collections()
        .create("docs", CollectionSpec::new().index("n"))
        .unwrap();
    let mut model = Model::new();
    let mut fault = Fault::None;
    for (counter, step) in input.steps.iter().take(64).enumerate() {
        match step {
            Step::Check => assert!(agrees(&db, &model), "the database disagrees with the model"),
            Step::PowerCut { after, seed } => {
                if let Fault::None = fault {
                    let mut state = disk.0.lock();
                    state.power_off_after = Some(state.ops + u64::from(*after));
                    fault = Fault::Power(*seed);
                }
            }
            Step::IoError { after } => {
                if let Fault::None = fault {
                    let mut state = disk.0.lock();
                    state.fail_after = Some(state.ops + u64::from(*after));
                    fault = Fault::Io;
                }
            }
            Step::Reopen => {
                if let Fault::None = fault {
                    drop(db);
                    let image = disk.0.lock().durable.clone();
                    (disk, db, model) = reopen(image, &[&model]);
                }
            }
            write_step => {
                let expected = expected_error(&model, write_step);
                let (result, next) = write(&db, &model, write_step, counter).unwrap();
                match result {
                    Ok(()) => {
                        assert_eq!(expected, None, "{write_step:?} succeeded");
                        model = next;
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::Storage { .. }) => {
                        assert!(
                            !matches!(fault, Fault::None),
                            "a storage error without a fault: {e:?}"
                        );
                        drop(db);
                        let in_flight = if expected.is_none() {
                            next
                        } else {
                            model.clone()
                        };
                        let image = match fault {
                            Fault::Power(seed) => disk
                                .0
                                .lock()
                                .after_power_cut(&mut fastrand::Rng::with_seed(seed)),
                            _ => {
                                // The process lived: the synced image must reopen as well.
                                let durable = disk.0.lock().durable.clone();
                                reopen(durable, &[&model, &in_flight]);
                                disk.0.lock().live.clone()
                            }
                        };
                        (disk, db, model) = reopen(image, &[&model, &in_flight]);
                        fault = Fault::None;
                    }
                    Err(e) => {
                        assert_eq!(Some(kind_name(e.kind())), expected, "{write_step:?}: {e:?}");
                    }
                }
            }
        }
    }
    // The end: a power cut now (whatever was armed) must keep every acknowledged write.
    drop(db);
    let seed = match fault {
        Fault::Power(seed) => seed,
        _ => 0,
    };
    let image = disk
        .0
        .lock()
        .after_power_cut(&mut fastrand::Rng::with_seed(seed));
    reopen(image, &[&model]);
}
