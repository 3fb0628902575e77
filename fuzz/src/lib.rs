//! The bodies of larder's fuzz targets.
//!
//! Each target is a `run(data)` that decodes the fuzzer's bytes into a structured input with
//! [`arbitrary`], drives larder with it and panics when one of its oracles fails. The same
//! bodies run in two places:
//! - `fuzz/fuzz_targets/*.rs`: coverage-guided, under cargo-fuzz (libFuzzer, nightly);
//! - `tests/fuzz_regressions.rs` (stable, in CI): every saved input under
//!   `fuzz/regressions/<target>/`, then a few hundred seeded random inputs per target.
//!
//! The targets:
//! - [`dialect_queries`]: the query strings of the Cocobase and urBackend dialects and the
//!   ekoDB find body, through the real router, as every kind of caller;
//! - [`http_requests`]: any method, route, headers and body, through the real router;
//! - [`document_writes`]: inserts, merge patches, replaces and projections under owner,
//!   hidden-field and writable-field rules, against a reference model;
//! - [`credentials`]: access tokens, refresh tokens, API keys, key JWTs and upload grants, made
//!   up or mutated from valid ones;
//! - [`model_crash`]: random operation sequences on a simulated disk, with power cuts and I/O
//!   errors mid-write, each followed by a reopen checked against a reference model.

pub mod credentials;
pub mod dialect_queries;
pub mod document_writes;
pub mod http_requests;
pub mod model_crash;
#[path = "../../tests/common/sim_disk.rs"]
mod sim_disk;
mod site;

/// A target's body: panics when an oracle fails.
pub type Target = fn(&[u8]);

/// Every target by name (the name of its cargo-fuzz binary and of its regressions folder).
pub const TARGETS: &[(&str, Target)] = &[
    ("credentials", credentials::run),
    ("dialect_queries", dialect_queries::run),
    ("document_writes", document_writes::run),
    ("http_requests", http_requests::run),
    ("model_crash", model_crash::run),
];

/// A database on a fresh simulated disk, for [`image_of`].
fn fresh_db() -> (sim_disk::SimDisk, larder::Db) {
    let disk = sim_disk::SimDisk::default();
    let db = larder::Db::builder().open_backend(disk.clone()).unwrap();
    (disk, db)
}

/// Closes a database made by [`fresh_db`] and returns its file image: copies of it open in a
/// fraction of the time filling a fresh one takes (password hashes).
fn image_of(disk: sim_disk::SimDisk, db: larder::Db) -> Vec<u8> {
    drop(db);
    disk.0.lock().live.clone()
}

/// A database on a copy of an image.
fn open_image(image: &[u8]) -> larder::Db {
    larder::Db::builder()
        .open_backend(sim_disk::SimDisk::with_image(image.to_vec()))
        .unwrap()
}

/// Decodes the whole input as `T`, or `None` when the bytes do not make one (the input is then
/// skipped: libFuzzer learns nothing from it and moves on).
fn decode<'a, T: arbitrary::Arbitrary<'a>>(data: &'a [u8]) -> Option<T> {
    T::arbitrary_take_rest(arbitrary::Unstructured::new(data)).ok()
}

/// Text drawn from a list of meaningful words, or any string the fuzzer makes up.
#[derive(Debug, arbitrary::Arbitrary)]
enum Word {
    Known(u8),
    Free(String),
}

impl Word {
    fn pick(&self, words: &[&str]) -> String {
        match self {
            Word::Known(i) => words[*i as usize % words.len()].to_owned(),
            Word::Free(text) => text.clone(),
        }
    }
}

/// A JSON value built from the words a target cares about: `keys` for object keys, `texts` for
/// strings.
#[derive(Debug, arbitrary::Arbitrary)]
enum Piece {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(Word),
    List(Vec<Piece>),
    Object(Vec<(Word, Piece)>),
    /// A value wrapped in this many single-element arrays (up to 299: nesting limits).
    Deep(u16, Box<Piece>),
}

impl Piece {
    fn json(&self, keys: &[&str], texts: &[&str]) -> serde_json::Value {
        use serde_json::{Value, json};
        match self {
            Piece::Null => Value::Null,
            Piece::Bool(b) => json!(b),
            Piece::Int(i) => json!(i),
            Piece::Float(f) => json!(f),
            Piece::Text(word) => json!(word.pick(texts)),
            Piece::List(items) => items.iter().map(|item| item.json(keys, texts)).collect(),
            Piece::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(key, value)| (key.pick(keys), value.json(keys, texts)))
                    .collect(),
            ),
            Piece::Deep(levels, inner) => {
                (0..*levels % 300).fold(inner.json(keys, texts), |value, _| json!([value]))
            }
        }
    }
}
