//! Model-based test of collections, documents and queries.
//!
//! Seeded random sequences of operations run against a [`larder::Db`] and against a plain
//! in-memory reference model (`BTreeMap`s of collections and documents) that implements the
//! documented semantics on its own: collection and id rules, server-managed fields, RFC 7396
//! merge patches, all-or-nothing batches, typed comparison, the sort order
//! `missing < null < false < true < numbers < strings < arrays < objects` with ties broken by id
//! in the direction of the first sort key, paging, counts and aggregates, and the timestamps
//! (RFC 3339, six fractional digits, `+00:00`; `updated_at` on update is
//! `max(now, previous updated_at + 1µs)`). Results and error kinds are compared after every
//! step, the touched collection is compared in full after every successful write, and the whole
//! database every few steps. Some seeds run on a file that is closed and reopened periodically.
//!
//! Environment variables:
//! - `LARDER_MODEL_SEEDS`: how many seeds to run (default 40; seeds `1..=N`),
//! - `LARDER_MODEL_STEPS`: operations per seed (default 300),
//! - `LARDER_MODEL_SEED`: replay only this seed (both tests; the one owning the seed runs it),
//! - `LARDER_MODEL_STATS`: if set, print how often each operation succeeded or failed and which
//!   query shapes were reached (run with `-- --nocapture`).
//!
//! Seeds that are multiples of 4 run on a temporary file (closed and reopened every 20 to 70
//! steps), the others in memory.
//!
//! `negative_zero_compares_equal_to_zero` at the end keeps a bug this model found (`-0` and `0`
//! compared unequal in filters) from coming back.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, UNIX_EPOCH};

use larder::{
    Aggregate, CollectionInfo, CollectionSpec, Db, Doc, ErrorKind, Filter, ManualClock, Op, Order,
    Query,
};
use serde_json::{Map, Number, Value, json};

type Obj = Map<String, Value>;

/// The document size limit the databases are opened with (small, so `TooLarge` is reachable).
const MAX_DOC_BYTES: usize = 400;

const VALID_COLLECTIONS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];
const INVALID_COLLECTIONS: [&str; 8] = ["users", "Bad", "1abc", "", "a-b", "_x", "alpha ", "bétà"];

/// Data fields of generated documents (`p`/`q` hold long strings for the size limit).
const FIELDS: [&str; 6] = ["a", "b", "n", "s", "stats", "tags"];

/// Paths used by filters and sorts.
const PATHS: [&str; 14] = [
    "a",
    "b",
    "n",
    "s",
    "stats",
    "stats.n",
    "stats.m",
    "tags",
    "tags.0",
    "tags.1",
    "zz",
    "id",
    "created_at",
    "updated_at",
];
const BAD_PATHS: [&str; 5] = ["", "a..b", ".a", "a.", "stats..n"];

/// Paths that may carry an index.
const INDEX_PATHS: [&str; 10] = [
    "a",
    "b",
    "n",
    "s",
    "stats.n",
    "tags",
    "tags.0",
    "stats",
    "created_at",
    "updated_at",
];

const CHOSEN_IDS: [&str; 7] = ["x1", "x2", "x3", "doc-a", "Doc_B", "z", "0"];
const MALFORMED_IDS: [&str; 7] = ["", "a b", "a/b", "é", "a.b", "../x", "a\u{0}"];

// ---------------------------------------------------------------------------------------------
// Error kinds

/// The error kinds the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Invalid,
    NotFound,
    Exists,
    TooLarge,
}

fn kind_of(error: &larder::Error) -> Option<Kind> {
    match error.kind() {
        ErrorKind::InvalidInput { .. } => Some(Kind::Invalid),
        ErrorKind::NotFound { .. } => Some(Kind::NotFound),
        ErrorKind::AlreadyExists { .. } => Some(Kind::Exists),
        ErrorKind::TooLarge { .. } => Some(Kind::TooLarge),
        _ => None,
    }
}

/// Checks that the outcome has the predicted shape; returns both values when both succeeded.
fn outcome<T: std::fmt::Debug, U: std::fmt::Debug>(
    ctx: &str,
    actual: larder::Result<T>,
    expected: Result<U, Kind>,
) -> Option<(T, U)> {
    match (actual, expected) {
        (Ok(actual), Ok(expected)) => Some((actual, expected)),
        (Err(actual), Err(expected)) => {
            assert_eq!(
                kind_of(&actual),
                Some(expected),
                "{ctx}: wrong error kind: got {actual:?}"
            );
            None
        }
        (Ok(actual), Err(expected)) => {
            panic!("{ctx}: expected a {expected:?} error, got Ok({actual:?})")
        }
        (Err(actual), Ok(expected)) => {
            panic!("{ctx}: expected success ({expected:?}), got error {actual:?}")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The reference model

#[derive(Debug, Clone, PartialEq)]
struct MDoc {
    data: Obj,
    created: i64,
    updated: i64,
}

#[derive(Debug, Clone)]
struct MColl {
    indexes: Vec<String>,
    created: i64,
    updated: i64,
    docs: BTreeMap<String, MDoc>,
}

type Model = BTreeMap<String, MColl>;

/// `^[a-z][a-z0-9_]{0,63}$`, not reserved.
fn valid_collection_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        && name != "users"
}

/// 1 to 16 non-empty dot-separated segments, at most 256 bytes, no control characters.
fn valid_path(path: &str) -> bool {
    let segments: Vec<&str> = path.split('.').collect();
    !path.is_empty()
        && path.len() <= 256
        && segments.len() <= 16
        && segments.iter().all(|s| !s.is_empty())
        && !path.chars().any(char::is_control)
}

fn valid_indexes(indexes: &[String]) -> bool {
    let unique: BTreeSet<&String> = indexes.iter().collect();
    unique.len() == indexes.len() && indexes.iter().all(|p| valid_path(p) && p != "id")
}

/// 1 to 128 characters of `A-Z a-z 0-9 _ -`.
fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn spec_of(indexes: &[String]) -> CollectionSpec {
    indexes.iter().fold(CollectionSpec::new(), |spec, path| {
        spec.index(path.as_str())
    })
}

fn json_size(data: &Obj) -> usize {
    serde_json::to_vec(data).unwrap().len()
}

/// The collection named `name`, or the error the API must report for it.
fn model_collection<'m>(model: &'m Model, name: &str) -> Result<&'m MColl, Kind> {
    if !valid_collection_name(name) {
        return Err(Kind::Invalid);
    }
    model.get(name).ok_or(Kind::NotFound)
}

/// The id a new document gets.
#[derive(Debug, Clone, PartialEq)]
enum NewId {
    Chosen(String),
    Generated,
}

/// Validates one new document as `insert` does; `pending` holds ids taken earlier in a batch.
fn model_prepare_insert(
    coll: &MColl,
    pending: &BTreeSet<String>,
    value: &Value,
) -> Result<(NewId, Obj), Kind> {
    let Value::Object(map) = value else {
        return Err(Kind::Invalid);
    };
    let mut map = map.clone();
    let id = match map.remove("id") {
        None | Some(Value::Null) => NewId::Generated,
        Some(Value::String(id)) if valid_id(&id) => NewId::Chosen(id),
        Some(_) => return Err(Kind::Invalid),
    };
    for field in ["created_at", "updated_at"] {
        if !matches!(map.remove(field), None | Some(Value::Null)) {
            return Err(Kind::Invalid);
        }
    }
    if json_size(&map) > MAX_DOC_BYTES {
        return Err(Kind::TooLarge);
    }
    if let NewId::Chosen(id) = &id
        && (coll.docs.contains_key(id) || pending.contains(id))
    {
        return Err(Kind::Exists);
    }
    Ok((id, map))
}

/// Removes the server-managed fields of an update, refusing changed values.
fn model_strip_managed(map: &mut Obj, id: &str, doc: &MDoc) -> Result<(), Kind> {
    let current = [
        ("id", id.to_owned()),
        ("created_at", fmt_ts(doc.created)),
        ("updated_at", fmt_ts(doc.updated)),
    ];
    for (field, value) in current {
        match map.remove(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(given)) if given == value => {}
            Some(_) => return Err(Kind::Invalid),
        }
    }
    Ok(())
}

/// RFC 7396, section 2 pseudo-code.
fn merge_patch(target: &mut Value, patch: &Value) {
    if let Value::Object(patch) = patch {
        if !target.is_object() {
            *target = Value::Object(Map::new());
        }
        let Value::Object(target) = target else {
            unreachable!()
        };
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    } else {
        *target = patch.clone();
    }
}

/// The new data of a replace (`patch == false`) or a merge patch, or the expected error.
fn model_prepare_update(coll: &MColl, id: &str, input: &Value, patch: bool) -> Result<Obj, Kind> {
    let doc = coll.docs.get(id).ok_or(Kind::NotFound)?;
    let Value::Object(input) = input else {
        return Err(Kind::Invalid);
    };
    let mut input = input.clone();
    model_strip_managed(&mut input, id, doc)?;
    let data = if patch {
        let mut target = Value::Object(doc.data.clone());
        merge_patch(&mut target, &Value::Object(input));
        match target {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    } else {
        input
    };
    if json_size(&data) > MAX_DOC_BYTES {
        return Err(Kind::TooLarge);
    }
    Ok(data)
}

// ---------------------------------------------------------------------------------------------
// Timestamps, formatted independently of larder

/// `(year, month, day)` of a day number since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A time as `offset_minutes` local time with that offset, `+00:00` style.
fn fmt_ts_offset(micros: i64, offset_minutes: i64) -> String {
    let local = micros + offset_minutes * 60_000_000;
    let seconds = local.div_euclid(1_000_000);
    let fraction = local.rem_euclid(1_000_000);
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let second_of_day = seconds.rem_euclid(86_400);
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let offset = offset_minutes.abs();
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:06}{sign}{:02}:{:02}",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
        offset / 60,
        offset % 60
    )
}

/// The canonical stored form: RFC 3339, microseconds, `+00:00`.
fn fmt_ts(micros: i64) -> String {
    fmt_ts_offset(micros, 0)
}

// ---------------------------------------------------------------------------------------------
// Typed comparison and sort order, as documented in `src/data/values.rs`

fn type_rank(value: &Value) -> u8 {
    match value {
        Value::Null => 1,
        Value::Bool(false) => 2,
        Value::Bool(true) => 3,
        Value::Number(_) => 4,
        Value::String(_) => 5,
        Value::Array(_) => 6,
        Value::Object(_) => 7,
    }
}

fn number(n: &Number) -> f64 {
    n.as_f64().unwrap()
}

/// The documented total order of JSON values.
fn cmp_values(a: &Value, b: &Value) -> Ordering {
    let by_type = type_rank(a).cmp(&type_rank(b));
    if by_type != Ordering::Equal {
        return by_type;
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number(x).partial_cmp(&number(y)).unwrap(),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (x, y) in x.iter().zip(y) {
                let o = cmp_values(x, y);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut x: Vec<(&String, &Value)> = x.iter().collect();
            let mut y: Vec<(&String, &Value)> = y.iter().collect();
            x.sort_by(|p, q| p.0.cmp(q.0));
            y.sort_by(|p, q| p.0.cmp(q.0));
            for ((kx, vx), (ky, vy)) in x.iter().zip(&y) {
                let o = kx.cmp(ky).then_with(|| cmp_values(vx, vy));
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => Ordering::Equal,
    }
}

/// Missing sorts first.
fn cmp_optional(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => cmp_values(a, b),
    }
}

/// A string holding a JSON number.
fn json_number(text: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Number(n)) => Some(Value::Number(n)),
        _ => None,
    }
}

/// The filter value as a value of the stored value's type (the table in `src/data/values.rs`).
fn coerce_like(filter: &Value, stored: &Value) -> Option<Value> {
    match (stored, filter) {
        (Value::Null, Value::Null) => Some(Value::Null),
        (Value::Bool(_), Value::Bool(b)) => Some(Value::Bool(*b)),
        (Value::Bool(_), Value::String(s)) => match s.as_str() {
            "true" | "True" | "TRUE" | "1" => Some(Value::Bool(true)),
            "false" | "False" | "FALSE" | "0" => Some(Value::Bool(false)),
            _ => None,
        },
        (Value::Bool(_), Value::Number(n)) if !n.is_f64() => match n.as_i64() {
            Some(1) => Some(Value::Bool(true)),
            Some(0) => Some(Value::Bool(false)),
            _ => None,
        },
        (Value::Number(_), Value::Number(_)) | (Value::String(_), Value::String(_)) => {
            Some(filter.clone())
        }
        (Value::Number(_), Value::String(s)) => json_number(s),
        (Value::String(_), Value::Number(_) | Value::Bool(_)) => {
            Some(Value::String(serde_json::to_string(filter).unwrap()))
        }
        (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_)) => {
            Some(filter.clone())
        }
        _ => None,
    }
}

fn typed_cmp(stored: &Value, filter: &Value) -> Option<Ordering> {
    coerce_like(filter, stored).map(|c| cmp_values(stored, &c))
}

fn typed_eq(stored: &Value, filter: &Value) -> bool {
    typed_cmp(stored, filter) == Some(Ordering::Equal)
}

/// A filter value as text, for the string operators.
fn as_text(filter: &Value) -> Option<String> {
    match filter {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(serde_json::to_string(filter).unwrap()),
        _ => None,
    }
}

/// The value at a dotted path (numeric segments index arrays), or a server-managed field.
fn resolve(id: &str, doc: &MDoc, path: &str) -> Option<Value> {
    match path {
        "id" => Some(Value::String(id.to_owned())),
        "created_at" => Some(Value::String(fmt_ts(doc.created))),
        "updated_at" => Some(Value::String(fmt_ts(doc.updated))),
        _ => {
            let mut segments = path.split('.');
            let mut current = doc.data.get(segments.next()?)?;
            for segment in segments {
                current = match current {
                    Value::Object(map) => map.get(segment)?,
                    Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                    _ => return None,
                };
            }
            Some(current.clone())
        }
    }
}

/// The model's filter tree. Leaves keep the value sent to larder and the value the model
/// compares with (they differ only for timestamps written with another offset).
#[derive(Debug, Clone)]
enum MF {
    All,
    Cmp {
        path: String,
        op: Op,
        sent: Value,
        model: Value,
    },
    In {
        path: String,
        negated: bool,
        values: Vec<(Value, Value)>,
    },
    IsNull(String),
    And(Vec<MF>, bool),
    Or(Vec<MF>, bool),
    Not(Box<MF>, bool),
}

impl MF {
    /// The larder filter; `sugar` nodes are built with `and`/`or`/`!` and the constructors.
    fn to_filter(&self) -> Filter {
        match self {
            MF::All => Filter::All,
            MF::Cmp { path, op, sent, .. } => match op {
                Op::Eq => Filter::eq(path.as_str(), sent.clone()),
                Op::Ne => Filter::ne(path.as_str(), sent.clone()),
                Op::StartsWith => Filter::starts_with(path.as_str(), sent.clone()),
                _ => Filter::Compare {
                    path: path.clone(),
                    op: *op,
                    value: sent.clone(),
                },
            },
            MF::In {
                path,
                negated,
                values,
            } => {
                let sent = values.iter().map(|(s, _)| s.clone());
                if *negated {
                    Filter::not_in(path.as_str(), sent)
                } else {
                    Filter::is_in(path.as_str(), sent)
                }
            }
            MF::IsNull(path) => Filter::is_null(path.as_str()),
            MF::And(all, sugar) => match (sugar, all.split_first()) {
                (true, Some((first, rest))) => rest
                    .iter()
                    .fold(first.to_filter(), |f, g| f.and(g.to_filter())),
                _ => Filter::And(all.iter().map(MF::to_filter).collect()),
            },
            MF::Or(any, sugar) => match (sugar, any.split_first()) {
                (true, Some((first, rest))) => rest
                    .iter()
                    .fold(first.to_filter(), |f, g| f.or(g.to_filter())),
                _ => Filter::Or(any.iter().map(MF::to_filter).collect()),
            },
            MF::Not(inner, true) => !inner.to_filter(),
            MF::Not(inner, false) => Filter::Not(Box::new(inner.to_filter())),
        }
    }

    fn paths_valid(&self) -> bool {
        match self {
            MF::All => true,
            MF::Cmp { path, .. } | MF::In { path, .. } | MF::IsNull(path) => valid_path(path),
            MF::And(all, _) | MF::Or(all, _) => all.iter().all(MF::paths_valid),
            MF::Not(inner, _) => inner.paths_valid(),
        }
    }

    fn matches(&self, id: &str, doc: &MDoc) -> bool {
        match self {
            MF::All => true,
            MF::Cmp {
                path, op, model, ..
            } => {
                let Some(stored) = resolve(id, doc, path) else {
                    return *op == Op::Ne;
                };
                let text = |ignore_case: bool, test: fn(&str, &str) -> bool| match (
                    &stored,
                    as_text(model),
                ) {
                    (Value::String(s), Some(v)) if ignore_case => {
                        test(&s.to_lowercase(), &v.to_lowercase())
                    }
                    (Value::String(s), Some(v)) => test(s, &v),
                    _ => false,
                };
                match op {
                    Op::Eq => typed_eq(&stored, model),
                    Op::Ne => !typed_eq(&stored, model),
                    Op::Gt => typed_cmp(&stored, model) == Some(Ordering::Greater),
                    Op::Gte => matches!(
                        typed_cmp(&stored, model),
                        Some(Ordering::Greater | Ordering::Equal)
                    ),
                    Op::Lt => typed_cmp(&stored, model) == Some(Ordering::Less),
                    Op::Lte => matches!(
                        typed_cmp(&stored, model),
                        Some(Ordering::Less | Ordering::Equal)
                    ),
                    Op::Contains => match &stored {
                        Value::Array(items) => items.iter().any(|item| typed_eq(item, model)),
                        _ => text(false, |s, v| s.contains(v)),
                    },
                    Op::ContainsIgnoreCase => text(true, |s, v| s.contains(v)),
                    Op::StartsWith => text(false, |s, v| s.starts_with(v)),
                    Op::StartsWithIgnoreCase => text(true, |s, v| s.starts_with(v)),
                    Op::EndsWith => text(false, |s, v| s.ends_with(v)),
                    Op::EndsWithIgnoreCase => text(true, |s, v| s.ends_with(v)),
                }
            }
            MF::In {
                path,
                negated,
                values,
            } => {
                // In: equal to a listed value, or an array holding one.
                let listed = |item: &Value| values.iter().any(|(_, v)| typed_eq(item, v));
                let hit = resolve(id, doc, path).is_some_and(|stored| {
                    listed(&stored)
                        || matches!(&stored, Value::Array(items) if items.iter().any(listed))
                });
                hit != *negated
            }
            MF::IsNull(path) => matches!(resolve(id, doc, path), None | Some(Value::Null)),
            MF::And(all, _) => all.iter().all(|f| f.matches(id, doc)),
            MF::Or(any, _) => any.iter().any(|f| f.matches(id, doc)),
            MF::Not(inner, _) => !inner.matches(id, doc),
        }
    }
}

/// The documents a query returns, in order.
fn model_find(
    coll: &MColl,
    filter: &MF,
    sort: &[(String, Order)],
    offset: usize,
    limit: Option<usize>,
) -> Vec<(String, MDoc)> {
    let mut rows: Vec<(&String, &MDoc, Vec<Option<Value>>)> = coll
        .docs
        .iter()
        .filter(|(id, doc)| filter.matches(id, doc))
        .map(|(id, doc)| {
            let keys = sort.iter().map(|(p, _)| resolve(id, doc, p)).collect();
            (id, doc, keys)
        })
        .collect();
    rows.sort_by(|a, b| {
        for ((ka, kb), (_, order)) in a.2.iter().zip(&b.2).zip(sort) {
            let o = cmp_optional(ka.as_ref(), kb.as_ref());
            if o != Ordering::Equal {
                return if *order == Order::Desc {
                    o.reverse()
                } else {
                    o
                };
            }
        }
        match sort.first() {
            Some((_, Order::Desc)) => b.0.cmp(a.0),
            _ => a.0.cmp(b.0),
        }
    });
    rows.into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .map(|(id, doc, _)| (id.clone(), doc.clone()))
        .collect()
}

#[derive(Debug, Clone)]
enum MAgg {
    Count,
    Sum(String),
    Avg(String),
    Min(String),
    Max(String),
}

impl MAgg {
    fn to_aggregate(&self) -> Aggregate {
        match self {
            MAgg::Count => Aggregate::Count,
            MAgg::Sum(p) => Aggregate::Sum(p.clone()),
            MAgg::Avg(p) => Aggregate::Avg(p.clone()),
            MAgg::Min(p) => Aggregate::Min(p.clone()),
            MAgg::Max(p) => Aggregate::Max(p.clone()),
        }
    }

    fn path(&self) -> Option<&str> {
        match self {
            MAgg::Count => None,
            MAgg::Sum(p) | MAgg::Avg(p) | MAgg::Min(p) | MAgg::Max(p) => Some(p),
        }
    }
}

/// The expected aggregate: the exact value, or (for min/max, where `2` and `2.0` are equally
/// small) the set of acceptable values.
fn model_aggregate(coll: &MColl, agg: &MAgg, filter: &MF) -> Vec<Value> {
    let matched: Vec<(&String, &MDoc)> = coll
        .docs
        .iter()
        .filter(|(id, doc)| filter.matches(id, doc))
        .collect();
    let Some(path) = agg.path() else {
        return vec![Value::from(matched.len() as u64)];
    };
    let numbers: Vec<Number> = matched
        .iter()
        .filter_map(|(id, doc)| match resolve(id, doc, path) {
            Some(Value::Number(n)) => Some(n),
            _ => None,
        })
        .collect();
    if numbers.is_empty() {
        return vec![Value::Null];
    }
    let float_sum: f64 = numbers.iter().map(number).sum();
    let float = |x: f64| Value::Number(Number::from_f64(x).unwrap());
    match agg {
        MAgg::Count => unreachable!(),
        MAgg::Sum(_) => {
            if numbers.iter().all(Number::is_i64) {
                vec![Value::from(
                    numbers.iter().map(|n| n.as_i64().unwrap()).sum::<i64>(),
                )]
            } else {
                vec![float(float_sum)]
            }
        }
        MAgg::Avg(_) => vec![float(float_sum / numbers.len() as f64)],
        MAgg::Min(_) | MAgg::Max(_) => {
            let better = |best: f64, x: f64| {
                if matches!(agg, MAgg::Min(_)) {
                    best.min(x)
                } else {
                    best.max(x)
                }
            };
            let extreme = numbers.iter().map(number).fold(number(&numbers[0]), better);
            numbers
                .into_iter()
                .filter(|n| number(n) == extreme)
                .map(Value::Number)
                .collect()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Random values

fn pick<T: Clone>(rng: &mut fastrand::Rng, items: &[T]) -> T {
    items[rng.usize(..items.len())].clone()
}

fn gen_number(rng: &mut fastrand::Rng) -> Value {
    match rng.u32(..11) {
        0 => json!(0),
        1 => json!(1),
        2 => json!(2),
        3 => json!(3),
        4 => json!(-1),
        5 => json!(10),
        6 => json!(2.5),
        7 => json!(-1.5),
        8 => json!(0.5),
        9 => json!(-0.0),
        _ => json!(2.0),
    }
}

fn gen_string(rng: &mut fastrand::Rng) -> Value {
    json!(pick(
        rng,
        &["a", "b", "ab", "Ab", "ba", "b1", "10", "2", "", "A"]
    ))
}

fn gen_scalar(rng: &mut fastrand::Rng) -> Value {
    match rng.u32(..20) {
        0..=7 => gen_number(rng),
        8..=14 => gen_string(rng),
        15 => json!("True"),
        16 => json!("1"),
        17 => json!(true),
        18 => json!(false),
        _ => Value::Null,
    }
}

fn gen_array(rng: &mut fastrand::Rng) -> Value {
    let len = rng.usize(..4);
    Value::Array((0..len).map(|_| gen_scalar(rng)).collect())
}

fn gen_object(rng: &mut fastrand::Rng) -> Value {
    let mut map = Map::new();
    if rng.u32(..10) < 8 {
        let n = if rng.bool() {
            gen_number(rng)
        } else {
            gen_scalar(rng)
        };
        map.insert("n".into(), n);
    }
    if rng.u32(..10) < 4 {
        map.insert("m".into(), gen_scalar(rng));
    }
    Value::Object(map)
}

fn gen_any(rng: &mut fastrand::Rng) -> Value {
    match rng.u32(..20) {
        0..=14 => gen_scalar(rng),
        15..=17 => gen_array(rng),
        _ => gen_object(rng),
    }
}

fn gen_field_value(rng: &mut fastrand::Rng, field: &str) -> Value {
    let typical = rng.u32(..4) < 3;
    match field {
        "n" if typical => gen_number(rng),
        "s" if typical => gen_string(rng),
        "stats" if typical => gen_object(rng),
        "tags" if typical => {
            let len = rng.usize(..4);
            Value::Array(
                (0..len)
                    .map(|_| {
                        if rng.bool() {
                            gen_string(rng)
                        } else {
                            gen_number(rng)
                        }
                    })
                    .collect(),
            )
        }
        "p" | "q" => json!("w".repeat(rng.usize(150..260))),
        _ => gen_any(rng),
    }
}

fn gen_data(rng: &mut fastrand::Rng) -> Obj {
    let mut map = Map::new();
    for field in FIELDS {
        if rng.u32(..100) < 55 {
            map.insert(field.into(), gen_field_value(rng, field));
        }
    }
    for field in ["p", "q"] {
        if rng.u32(..100) < 4 {
            map.insert(field.into(), gen_field_value(rng, field));
        }
    }
    if rng.u32(..100) < 2 {
        map.insert("huge".into(), json!("h".repeat(MAX_DOC_BYTES)));
    }
    map
}

fn gen_non_object(rng: &mut fastrand::Rng) -> Value {
    match rng.u32(..4) {
        0 => json!([1, 2]),
        1 => json!("text"),
        2 => json!(5),
        _ => Value::Null,
    }
}

// ---------------------------------------------------------------------------------------------
// The run

struct Run {
    seed: u64,
    step: usize,
    op: String,
    rng: fastrand::Rng,
    clock: ManualClock,
    /// The clock's reading, in microseconds since the epoch.
    now: i64,
    /// Whether the clock went back since the database was (re)opened.
    clock_went_back: bool,
    /// The last generated id seen since the database was (re)opened.
    last_generated: Option<String>,
    db: Option<Db>,
    dir: Option<tempfile::TempDir>,
    model: Model,
    /// How often each operation succeeded or failed, and a few query shapes (printed with
    /// `LARDER_MODEL_STATS=1`, to see what the generator reaches).
    stats: BTreeMap<String, u64>,
}

impl Run {
    fn new(seed: u64, file_backed: bool) -> Run {
        let mut rng = fastrand::Rng::with_seed(seed);
        let now = 1_700_000_000_000_000 + rng.i64(0..1_000_000_000_000);
        let clock = ManualClock::at(UNIX_EPOCH + Duration::from_micros(now.unsigned_abs()));
        let dir = file_backed.then(|| tempfile::tempdir().unwrap());
        let mut run = Run {
            seed,
            step: 0,
            op: "open".into(),
            rng,
            clock,
            now,
            clock_went_back: false,
            last_generated: None,
            db: None,
            dir,
            model: Model::new(),
            stats: BTreeMap::new(),
        };
        run.open();
        run
    }

    fn ctx(&self) -> String {
        format!(
            "seed={} step={} op={} (replay: LARDER_MODEL_SEED={} cargo test --test model_ops)",
            self.seed, self.step, self.op, self.seed
        )
    }

    fn note(&mut self, what: impl Into<String>) {
        *self.stats.entry(what.into()).or_default() += 1;
    }

    /// [`outcome`], counted in the statistics.
    fn expect<T: std::fmt::Debug, U: std::fmt::Debug>(
        &mut self,
        actual: larder::Result<T>,
        expected: Result<U, Kind>,
    ) -> Option<(T, U)> {
        let call = self.op.split('(').next().unwrap_or_default().to_owned();
        match &actual {
            Ok(_) => self.note(format!("{call}: ok")),
            Err(e) => self.note(format!("{call}: {:?}", kind_of(e))),
        }
        outcome(&self.ctx(), actual, expected)
    }

    fn db(&self) -> &Db {
        self.db.as_ref().unwrap()
    }

    fn open(&mut self) {
        let builder = Db::builder()
            .clock(self.clock.clone())
            .max_document_bytes(MAX_DOC_BYTES);
        let opened = match &self.dir {
            Some(dir) => builder.open(dir.path().join("model.redb")),
            None => builder.in_memory(),
        };
        self.db = Some(opened.unwrap_or_else(|e| panic!("{}: open failed: {e:?}", self.ctx())));
        self.last_generated = None;
        self.clock_went_back = false;
    }

    fn reopen(&mut self, check_already_open: bool) {
        let Some(path) = self.dir.as_ref().map(|d| d.path().join("model.redb")) else {
            return;
        };
        self.op = "reopen".into();
        self.note("file: reopen");
        if check_already_open {
            let second = Db::open(&path);
            assert!(
                matches!(
                    second.as_ref().map_err(larder::Error::kind),
                    Err(ErrorKind::AlreadyOpen)
                ),
                "{}: a second open must fail with AlreadyOpen: {second:?}",
                self.ctx()
            );
        }
        self.db = None;
        self.open();
    }

    fn tick_clock(&mut self) {
        let delta = match self.rng.u32(..100) {
            0..=39 => 0,
            40..=59 => 1,
            60..=84 => self.rng.i64(1..5_000),
            85..=97 => self.rng.i64(5_000..10_000_000),
            98 => self.rng.i64(0..2 * 86_400_000_000),
            _ => -self.rng.i64(1..2_000_000),
        };
        self.now += delta;
        if delta < 0 {
            self.clock
                .set(UNIX_EPOCH + Duration::from_micros(self.now.unsigned_abs()));
            self.clock_went_back = true;
        } else {
            self.clock
                .advance(Duration::from_micros(delta.unsigned_abs()));
        }
    }

    // -- picking names and ids --------------------------------------------------------------

    fn pick_collection(&mut self) -> String {
        let r = self.rng.u32(..100);
        if r < 4 {
            if self.rng.u32(..8) == 0 {
                "x".repeat(65)
            } else {
                pick(&mut self.rng, &INVALID_COLLECTIONS).to_owned()
            }
        } else if r < 90 && !self.model.is_empty() {
            let names: Vec<&String> = self.model.keys().collect();
            names[self.rng.usize(..names.len())].clone()
        } else {
            pick(&mut self.rng, &VALID_COLLECTIONS).to_owned()
        }
    }

    fn existing_ids(&self, collection: &str) -> Vec<String> {
        self.model
            .get(collection)
            .map(|c| c.docs.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// An id for get/replace/patch/delete: mostly an existing one.
    fn pick_target_id(&mut self, collection: &str) -> String {
        let ids = self.existing_ids(collection);
        let r = self.rng.u32(..100);
        if r < 78 && !ids.is_empty() {
            ids[self.rng.usize(..ids.len())].clone()
        } else if r < 92 {
            pick(&mut self.rng, &CHOSEN_IDS).to_owned()
        } else {
            pick(&mut self.rng, &MALFORMED_IDS).to_owned()
        }
    }

    /// An id a caller chooses for a new document.
    fn pick_new_id(&mut self, collection: &str) -> Value {
        let ids = self.existing_ids(collection);
        match self.rng.u32(..100) {
            0..=64 => json!(pick(&mut self.rng, &CHOSEN_IDS)),
            65..=74 if !ids.is_empty() => json!(ids[self.rng.usize(..ids.len())]),
            75..=79 => json!("k".repeat(128)),
            80..=84 => json!("k".repeat(129)),
            85..=94 => json!(pick(&mut self.rng, &MALFORMED_IDS)),
            _ => pick(&mut self.rng, &[json!(5), json!(true), json!(["x1"])]),
        }
    }

    fn gen_indexes(&mut self) -> Vec<String> {
        let mut indexes: Vec<String> = Vec::new();
        for _ in 0..self.rng.usize(..4) {
            let path = pick(&mut self.rng, &INDEX_PATHS).to_owned();
            if !indexes.contains(&path) {
                indexes.push(path);
            }
        }
        if self.rng.u32(..100) < 8 {
            let bad = match self.rng.u32(..4) {
                0 => "id".to_owned(),
                1 => pick(&mut self.rng, &BAD_PATHS).to_owned(),
                2 => "a\nb".to_owned(),
                _ => indexes.first().cloned().unwrap_or_else(|| "id".to_owned()),
            };
            let at = self.rng.usize(..=indexes.len());
            indexes.insert(at, bad);
        }
        indexes
    }

    /// A document for insert: sometimes with a chosen, malformed or duplicate id, a
    /// server-managed field, or not an object at all.
    fn gen_insert_value(&mut self, collection: &str) -> Value {
        if self.rng.u32(..100) < 3 {
            return gen_non_object(&mut self.rng);
        }
        let mut map = gen_data(&mut self.rng);
        match self.rng.u32(..100) {
            0..=49 => {}
            50..=57 => {
                map.insert("id".into(), Value::Null);
            }
            58..=91 => {
                let id = self.pick_new_id(collection);
                map.insert("id".into(), id);
            }
            92..=95 => {
                let field = pick(&mut self.rng, &["created_at", "updated_at"]);
                map.insert(field.into(), json!(fmt_ts(self.now)));
            }
            _ => {
                let field = pick(&mut self.rng, &["created_at", "updated_at"]);
                map.insert(field.into(), Value::Null);
            }
        }
        Value::Object(map)
    }

    /// Server-managed fields an update may carry: current values (accepted), null
    /// (ignored) or changed values (refused).
    fn add_managed_fields(&mut self, map: &mut Obj, collection: &str, id: &str) {
        if self.rng.u32(..100) >= 15 {
            return;
        }
        let doc = self
            .model
            .get(collection)
            .and_then(|c| c.docs.get(id))
            .cloned();
        let field = pick(&mut self.rng, &["id", "created_at", "updated_at"]);
        let current = match (field, &doc) {
            ("id", _) => id.to_owned(),
            ("created_at", Some(doc)) => fmt_ts(doc.created),
            (_, Some(doc)) => fmt_ts(doc.updated),
            (_, None) => fmt_ts(self.now),
        };
        let value = match self.rng.u32(..10) {
            0..=4 => json!(current),
            5..=6 => Value::Null,
            7 => json!(5),
            8 if field != "id" => json!(current.replace("+00:00", "Z")),
            _ => json!(format!("{current}0")),
        };
        map.insert(field.into(), value);
    }

    fn gen_patch(&mut self, collection: &str, id: &str) -> Value {
        if self.rng.u32(..100) < 3 {
            return gen_non_object(&mut self.rng);
        }
        let mut map = Map::new();
        for _ in 0..self.rng.usize(1..4) {
            let field = pick(
                &mut self.rng,
                &["a", "b", "n", "s", "stats", "tags", "p", "q"],
            );
            let value = match self.rng.u32(..100) {
                0..=24 => Value::Null,
                25..=44 if field == "stats" => {
                    let inner = pick(&mut self.rng, &["n", "m"]);
                    let v = if self.rng.u32(..3) == 0 {
                        Value::Null
                    } else {
                        gen_scalar(&mut self.rng)
                    };
                    json!({ inner: v })
                }
                _ => gen_field_value(&mut self.rng, field),
            };
            map.insert(field.into(), value);
        }
        self.add_managed_fields(&mut map, collection, id);
        Value::Object(map)
    }

    fn gen_replacement(&mut self, collection: &str, id: &str) -> Value {
        if self.rng.u32(..100) < 3 {
            return gen_non_object(&mut self.rng);
        }
        let mut map = gen_data(&mut self.rng);
        self.add_managed_fields(&mut map, collection, id);
        Value::Object(map)
    }

    // -- filters and queries ----------------------------------------------------------------

    fn pick_path(&mut self, collection: &str) -> String {
        let r = self.rng.u32(..100);
        if r < 3 {
            return pick(&mut self.rng, &BAD_PATHS).to_owned();
        }
        let indexes = self
            .model
            .get(collection)
            .map(|c| c.indexes.clone())
            .unwrap_or_default();
        if r < 40 && !indexes.is_empty() {
            indexes[self.rng.usize(..indexes.len())].clone()
        } else if r < 80 {
            // The paths most documents have, so that filters hit.
            pick(&mut self.rng, &PATHS[..6]).to_owned()
        } else {
            pick(&mut self.rng, &PATHS).to_owned()
        }
    }

    /// A filter value for `path`: `(sent to larder, compared by the model)`.
    fn gen_filter_value(&mut self, collection: &str, path: &str) -> (Value, Value) {
        let docs: Vec<(String, MDoc)> = self
            .model
            .get(collection)
            .map(|c| c.docs.iter().map(|(i, d)| (i.clone(), d.clone())).collect())
            .unwrap_or_default();
        let from_doc = (!docs.is_empty()).then(|| docs[self.rng.usize(..docs.len())].clone());
        if matches!(path, "created_at" | "updated_at") && self.rng.u32(..4) != 0 {
            let micros = match &from_doc {
                Some((_, doc)) => {
                    let base = if self.rng.bool() {
                        doc.created
                    } else {
                        doc.updated
                    };
                    base + self.rng.i64(-1..=1)
                }
                None => self.now,
            };
            let canonical = json!(fmt_ts(micros));
            let sent = match self.rng.u32(..4) {
                0 => json!(fmt_ts_offset(micros, 120)),
                1 => json!(fmt_ts_offset(micros, -330)),
                2 => json!(fmt_ts(micros).replace("+00:00", "Z")),
                _ => canonical.clone(),
            };
            return (sent, canonical);
        }
        let value = match self.rng.u32(..100) {
            0..=29 => gen_scalar(&mut self.rng),
            30..=54 => json!(pick(
                &mut self.rng,
                &[
                    "2", "10", "-1", "2.5", "0", "1", "3", "2.0", "1e1", "-0", "True", "true",
                    "TRUE", "false", "False", "FALSE", "a", "b", "A", "x", "", "10a", "0.5", "inf",
                    "NaN", "1e400"
                ]
            )),
            60..=64 => pick(
                &mut self.rng,
                &[json!(1.0), json!(0), json!(1), json!(-1.5)],
            ),
            65..=69 => match self.rng.u32(..3) {
                0 => gen_array(&mut self.rng),
                1 => gen_object(&mut self.rng),
                _ => json!(pick(&mut self.rng, &["2023", "20", "0", "x1", "Doc"])),
            },
            _ => match &from_doc {
                Some((id, doc)) => resolve(id, doc, path).unwrap_or(Value::Null),
                None => gen_scalar(&mut self.rng),
            },
        };
        (value.clone(), value)
    }

    fn gen_filter(&mut self, collection: &str, depth: u32) -> MF {
        let r = self.rng.u32(..100);
        if depth < 2 && r < 20 {
            let n = self.rng.usize(..4);
            let children = (0..n)
                .map(|_| self.gen_filter(collection, depth + 1))
                .collect();
            let sugar = self.rng.bool();
            return match self.rng.u32(..3) {
                0 => MF::And(children, sugar),
                1 => MF::Or(children, sugar),
                _ => MF::Not(Box::new(self.gen_filter(collection, depth + 1)), sugar),
            };
        }
        if r < 24 {
            return MF::All;
        }
        let path = self.pick_path(collection);
        match self.rng.u32(..100) {
            0..=9 => MF::IsNull(path),
            10..=21 => {
                let values = (0..self.rng.usize(..4))
                    .map(|_| self.gen_filter_value(collection, &path))
                    .collect();
                MF::In {
                    path,
                    negated: self.rng.bool(),
                    values,
                }
            }
            _ => {
                let op = pick(
                    &mut self.rng,
                    &[
                        Op::Eq,
                        Op::Eq,
                        Op::Eq,
                        Op::Ne,
                        Op::Ne,
                        Op::Gt,
                        Op::Gt,
                        Op::Gte,
                        Op::Gte,
                        Op::Lt,
                        Op::Lt,
                        Op::Lte,
                        Op::Lte,
                        Op::Contains,
                        Op::Contains,
                        Op::ContainsIgnoreCase,
                        Op::StartsWith,
                        Op::StartsWithIgnoreCase,
                        Op::EndsWith,
                        Op::EndsWithIgnoreCase,
                    ],
                );
                let text_op = !matches!(op, Op::Eq | Op::Ne | Op::Gt | Op::Gte | Op::Lt | Op::Lte);
                let (sent, model) = if text_op && self.rng.u32(..10) < 7 {
                    // Substrings of the generated strings, so that the text operators hit.
                    let value = pick(
                        &mut self.rng,
                        &[
                            json!("a"),
                            json!("b"),
                            json!("A"),
                            json!("B"),
                            json!("ab"),
                            json!(""),
                            json!("1"),
                            json!(1),
                            json!(0),
                            json!(true),
                        ],
                    );
                    (value.clone(), value)
                } else {
                    self.gen_filter_value(collection, &path)
                };
                MF::Cmp {
                    path,
                    op,
                    sent,
                    model,
                }
            }
        }
    }

    fn gen_sort(&mut self, collection: &str) -> Vec<(String, Order)> {
        let n = match self.rng.u32(..100) {
            0..=39 => 0,
            40..=74 => 1,
            75..=97 => self.rng.usize(2..4),
            _ => 9,
        };
        (0..n)
            .map(|_| {
                let order = if self.rng.bool() {
                    Order::Asc
                } else {
                    Order::Desc
                };
                (self.pick_path(collection), order)
            })
            .collect()
    }

    // -- checks -----------------------------------------------------------------------------

    fn check_doc(&self, what: &str, actual: &Doc<Value>, id: &str, doc: &MDoc) {
        let ctx = self.ctx();
        assert_eq!(actual.id, id, "{ctx}: {what}: id");
        assert_eq!(
            actual.created_at,
            fmt_ts(doc.created),
            "{ctx}: {what}: created_at of `{id}`"
        );
        assert_eq!(
            actual.updated_at,
            fmt_ts(doc.updated),
            "{ctx}: {what}: updated_at of `{id}`"
        );
        assert_eq!(
            actual.data,
            Value::Object(doc.data.clone()),
            "{ctx}: {what}: data of `{id}`"
        );
    }

    fn check_docs(&self, what: &str, actual: &[Doc<Value>], expected: &[(String, MDoc)]) {
        let actual_ids: Vec<&str> = actual.iter().map(|d| d.id.as_str()).collect();
        let expected_ids: Vec<&str> = expected.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            actual_ids,
            expected_ids,
            "{}: {what}: ids in order",
            self.ctx()
        );
        for (doc, (id, model)) in actual.iter().zip(expected) {
            self.check_doc(what, doc, id, model);
        }
    }

    fn check_info(&self, actual: &CollectionInfo, name: &str) {
        let ctx = self.ctx();
        let coll = &self.model[name];
        assert_eq!(actual.name, name, "{ctx}: collection name");
        assert_eq!(
            actual.spec,
            spec_of(&coll.indexes),
            "{ctx}: spec of `{name}`"
        );
        assert_eq!(
            actual.created_at,
            fmt_ts(coll.created),
            "{ctx}: created_at of collection `{name}`"
        );
        assert_eq!(
            actual.updated_at,
            fmt_ts(coll.updated),
            "{ctx}: updated_at of collection `{name}`"
        );
        assert_eq!(
            actual.document_count,
            coll.docs.len() as u64,
            "{ctx}: document_count of `{name}`"
        );
    }

    /// Compares one collection in full: every document in id order, and the count.
    fn check_collection(&self, name: &str) {
        let ctx = self.ctx();
        let handle = self.db().collection::<Value>(name);
        let actual = handle
            .find(&Query::new())
            .unwrap_or_else(|e| panic!("{ctx}: full scan of `{name}`: {e:?}"));
        let coll = &self.model[name];
        let expected: Vec<(String, MDoc)> = coll
            .docs
            .iter()
            .map(|(id, doc)| (id.clone(), doc.clone()))
            .collect();
        self.check_docs(&format!("contents of `{name}`"), &actual, &expected);
        let count = handle.count(&Filter::All).unwrap();
        assert_eq!(count, coll.docs.len() as u64, "{ctx}: count of `{name}`");
    }

    /// Compares the whole database with the model.
    fn check_all(&mut self) {
        let ctx = self.ctx();
        let infos = self
            .db()
            .collections()
            .list()
            .unwrap_or_else(|e| panic!("{ctx}: list_collections: {e:?}"));
        let names: Vec<&str> = infos.iter().map(|i| i.name.as_str()).collect();
        let expected: Vec<&str> = self.model.keys().map(String::as_str).collect();
        assert_eq!(names, expected, "{ctx}: list_collections");
        for info in &infos {
            self.check_info(info, &info.name);
            let size = match info.document_count {
                0 => "0",
                1..=9 => "1-9",
                10..=29 => "10-29",
                _ => "30+",
            };
            self.note(format!("full check: collections with {size} documents"));
            self.check_collection(&info.name);
        }
    }

    /// A generated id: a UUIDv7 string from the database clock, increasing within a handle.
    fn check_generated_id(&mut self, id: &str, collection: &str) {
        let ctx = self.ctx();
        let bytes = id.as_bytes();
        let well_formed = bytes.len() == 36
            && [8, 13, 18, 23].iter().all(|&i| bytes[i] == b'-')
            && bytes[14] == b'7'
            && matches!(bytes[19], b'8' | b'9' | b'a' | b'b')
            && id
                .bytes()
                .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        assert!(well_formed, "{ctx}: generated id `{id}` is not a UUIDv7");
        assert!(
            !self.model[collection].docs.contains_key(id),
            "{ctx}: generated id `{id}` is already taken"
        );
        if let Some(last) = &self.last_generated {
            assert!(
                id > last.as_str(),
                "{ctx}: generated id `{id}` is not after `{last}`"
            );
        }
        if !self.clock_went_back {
            let millis = format!("{:012x}", self.now / 1000);
            let in_id = format!("{}{}", &id[..8], &id[9..13]);
            assert_eq!(
                in_id, millis,
                "{ctx}: generated id `{id}` does not carry the clock's milliseconds"
            );
        }
        self.last_generated = Some(id.to_owned());
    }

    // -- operations -------------------------------------------------------------------------

    fn random_op(&mut self) {
        match self.rng.u32(..200) {
            0..=2 => self.op_create_collection(None),
            3 => self.op_delete_collection(),
            4..=11 => self.op_update_collection(false),
            12..=13 => self.op_update_collection(true),
            14..=17 => self.op_collection_info(),
            18..=53 => self.op_insert(),
            54..=59 => self.op_insert_with_id(),
            60..=71 => self.op_insert_many(),
            72..=81 => self.op_get(),
            82..=91 => self.op_update(false),
            92..=107 => self.op_update(true),
            108..=115 => self.op_patch_many(),
            116..=123 => self.op_delete(),
            124..=128 => self.op_delete_many(),
            129..=172 => self.op_find(),
            173..=186 => self.op_count(),
            _ => self.op_aggregate(),
        }
    }

    fn op_create_collection(&mut self, name: Option<&str>) {
        let name = match name {
            Some(name) => name.to_owned(),
            None if self.rng.u32(..10) < 6 => pick(&mut self.rng, &VALID_COLLECTIONS).to_owned(),
            None => self.pick_collection(),
        };
        let indexes = self.gen_indexes();
        self.op = format!("create_collection({name:?}, indexes={indexes:?})");
        let expected = if !valid_collection_name(&name) || !valid_indexes(&indexes) {
            Err(Kind::Invalid)
        } else if self.model.contains_key(&name) {
            Err(Kind::Exists)
        } else {
            Ok(())
        };
        let actual = self.db().collections().create(&name, spec_of(&indexes));
        if let Some((info, ())) = self.expect(actual, expected) {
            self.model.insert(
                name.clone(),
                MColl {
                    indexes,
                    created: self.now,
                    updated: self.now,
                    docs: BTreeMap::new(),
                },
            );
            self.check_info(&info, &name);
            self.check_collection(&name);
        }
    }

    fn op_delete_collection(&mut self) {
        let name = self.pick_collection();
        self.op = format!("delete_collection({name:?})");
        let expected = model_collection(&self.model, &name).map(|_| ());
        let actual = self.db().collections().delete(&name);
        if self.expect(actual, expected).is_some() {
            self.model.remove(&name);
            let ctx = self.ctx();
            let gone = self.db().collection::<Value>(&name).count(&Filter::All);
            assert!(
                matches!(gone.as_ref().map_err(kind_of), Err(Some(Kind::NotFound))),
                "{ctx}: a deleted collection is gone: {gone:?}"
            );
        }
    }

    /// `update_collection`, or `put_collection` (create or update) when `put`.
    fn op_update_collection(&mut self, put: bool) {
        let name = self.pick_collection();
        let indexes = self.gen_indexes();
        let call = if put {
            "put_collection"
        } else {
            "update_collection"
        };
        self.op = format!("{call}({name:?}, indexes={indexes:?})");
        let expected = if !valid_collection_name(&name) || !valid_indexes(&indexes) {
            Err(Kind::Invalid)
        } else if !put && !self.model.contains_key(&name) {
            Err(Kind::NotFound)
        } else {
            Ok(())
        };
        let actual = if put {
            self.db().collections().put(&name, spec_of(&indexes))
        } else {
            self.db().collections().update(&name, spec_of(&indexes))
        };
        if let Some((info, ())) = self.expect(actual, expected) {
            let now = self.now;
            let existed = self.model.contains_key(&name);
            let coll = self.model.entry(name.clone()).or_insert_with(|| MColl {
                indexes: Vec::new(),
                created: now,
                updated: now,
                docs: BTreeMap::new(),
            });
            coll.indexes = indexes;
            // A configuration change never moves updated_at backwards.
            coll.updated = if existed {
                now.max(coll.updated + 1)
            } else {
                now
            };
            self.check_info(&info, &name);
            self.check_collection(&name);
        }
    }

    fn op_collection_info(&mut self) {
        let name = self.pick_collection();
        self.op = format!("collection_info({name:?})");
        let expected = model_collection(&self.model, &name).map(|_| ());
        let actual = self.db().collections().info(&name);
        if let Some((info, ())) = self.expect(actual, expected) {
            self.check_info(&info, &name);
        }
    }

    /// Stores validated new documents in the model, taking generated ids from the results.
    fn commit_inserts(&mut self, name: &str, prepared: Vec<(NewId, Obj)>, actual: &[Doc<Value>]) {
        let ctx = self.ctx();
        assert_eq!(
            actual.len(),
            prepared.len(),
            "{ctx}: number of inserted documents"
        );
        for ((new_id, data), doc) in prepared.into_iter().zip(actual) {
            let id = match new_id {
                NewId::Chosen(id) => id,
                NewId::Generated => {
                    self.check_generated_id(&doc.id, name);
                    doc.id.clone()
                }
            };
            let stored = MDoc {
                data,
                created: self.now,
                updated: self.now,
            };
            self.check_doc("inserted document", doc, &id, &stored);
            self.model.get_mut(name).unwrap().docs.insert(id, stored);
        }
        self.check_collection(name);
    }

    fn op_insert(&mut self) {
        let name = self.pick_collection();
        let value = self.gen_insert_value(&name);
        self.op = format!("insert({name:?}, {value})");
        let expected = model_collection(&self.model, &name)
            .and_then(|c| model_prepare_insert(c, &BTreeSet::new(), &value));
        let actual = self.db().collection::<Value>(&name).insert(&value);
        if let Some((doc, prepared)) = self.expect(actual, expected) {
            self.commit_inserts(&name, vec![prepared], &[doc]);
        }
    }

    fn op_insert_with_id(&mut self) {
        let name = self.pick_collection();
        let id = match self.pick_new_id(&name) {
            Value::String(id) => id,
            _ => "x1".to_owned(),
        };
        let value = if self.rng.u32(..100) < 3 {
            gen_non_object(&mut self.rng)
        } else {
            let mut map = gen_data(&mut self.rng);
            match self.rng.u32(..20) {
                0..=2 => {
                    map.insert("id".into(), json!(id));
                }
                3 => {
                    map.insert("id".into(), json!("other"));
                }
                4 => {
                    map.insert("id".into(), Value::Null);
                }
                _ => {}
            }
            Value::Object(map)
        };
        self.op = format!("insert_with_id({name:?}, {id:?}, {value})");
        // The data is checked against the id before the collection is looked up.
        let expected = match &value {
            Value::Object(map) => match map.get("id") {
                None | Some(Value::Null) => Ok(()),
                Some(Value::String(given)) if *given == id => Ok(()),
                Some(_) => Err(Kind::Invalid),
            },
            _ => Err(Kind::Invalid),
        }
        .and_then(|()| model_collection(&self.model, &name))
        .and_then(|coll| {
            let mut with_id = value.clone();
            with_id
                .as_object_mut()
                .unwrap()
                .insert("id".into(), json!(id));
            model_prepare_insert(coll, &BTreeSet::new(), &with_id)
        });
        let actual = self
            .db()
            .collection::<Value>(&name)
            .insert_with_id(&id, &value);
        if let Some((doc, prepared)) = self.expect(actual, expected) {
            self.commit_inserts(&name, vec![prepared], &[doc]);
        }
    }

    fn op_insert_many(&mut self) {
        let name = self.pick_collection();
        let mut items: Vec<Value> = (0..self.rng.usize(..6))
            .map(|_| {
                let mut map = gen_data(&mut self.rng);
                map.remove("huge");
                if self.rng.u32(..3) == 0 {
                    let id = pick(&mut self.rng, &CHOSEN_IDS);
                    map.insert("id".into(), json!(id));
                }
                Value::Object(map)
            })
            .collect();
        if self.rng.u32(..4) == 0 {
            // One bad item: the whole batch must change nothing.
            let bad = self.gen_insert_value(&name);
            let at = self.rng.usize(..=items.len());
            items.insert(at, bad);
        }
        self.op = format!("insert_many({name:?}, {})", Value::Array(items.clone()));
        let expected = model_collection(&self.model, &name).and_then(|coll| {
            let mut pending = BTreeSet::new();
            let mut prepared = Vec::new();
            for item in &items {
                let (id, data) = model_prepare_insert(coll, &pending, item)?;
                if let NewId::Chosen(id) = &id {
                    pending.insert(id.clone());
                }
                prepared.push((id, data));
            }
            Ok(prepared)
        });
        let actual = self.db().collection::<Value>(&name).insert_many(&items);
        if let Some((docs, prepared)) = self.expect(actual, expected) {
            self.commit_inserts(&name, prepared, &docs);
        } else if self.model.contains_key(&name) {
            self.check_collection(&name);
        }
    }

    fn op_get(&mut self) {
        let name = self.pick_collection();
        let id = self.pick_target_id(&name);
        self.op = format!("get({name:?}, {id:?})");
        let expected = model_collection(&self.model, &name).map(|coll| coll.docs.get(&id).cloned());
        let actual = self.db().collection::<Value>(&name).get(&id);
        if let Some((doc, model)) = self.expect(actual, expected) {
            match (doc, model) {
                (Some(doc), Some(model)) => self.check_doc("get", &doc, &id, &model),
                (None, None) => {}
                (doc, model) => panic!("{}: get: got {doc:?}, expected {model:?}", self.ctx()),
            }
        }
    }

    /// `replace`, or `patch` when `patch`.
    fn op_update(&mut self, patch: bool) {
        let name = self.pick_collection();
        let id = self.pick_target_id(&name);
        let input = if patch {
            self.gen_patch(&name, &id)
        } else {
            self.gen_replacement(&name, &id)
        };
        let call = if patch { "patch" } else { "replace" };
        self.op = format!("{call}({name:?}, {id:?}, {input})");
        let expected = model_collection(&self.model, &name)
            .and_then(|coll| model_prepare_update(coll, &id, &input, patch));
        let handle = self.db().collection::<Value>(&name);
        let actual = if patch {
            handle.patch(&id, &input)
        } else {
            handle.replace(&id, &input)
        };
        if let Some((doc, data)) = self.expect(actual, expected) {
            let now = self.now;
            let stored = self
                .model
                .get_mut(&name)
                .unwrap()
                .docs
                .get_mut(&id)
                .unwrap();
            stored.data = data;
            stored.updated = now.max(stored.updated + 1);
            let stored = stored.clone();
            self.check_doc(call, &doc, &id, &stored);
            self.check_collection(&name);
        } else if self.model.contains_key(&name) {
            self.check_collection(&name);
        }
    }

    fn op_patch_many(&mut self) {
        let name = self.pick_collection();
        let ids = self.existing_ids(&name);
        let mut patches: Vec<(String, Value)> = Vec::new();
        for _ in 0..self.rng.usize(..5) {
            let id = if ids.is_empty() || self.rng.u32(..10) == 0 {
                self.pick_target_id(&name)
            } else {
                ids[self.rng.usize(..ids.len())].clone()
            };
            let mut patch = Map::new();
            for _ in 0..self.rng.usize(1..3) {
                let field = pick(&mut self.rng, &FIELDS);
                let value = if self.rng.u32(..4) == 0 {
                    Value::Null
                } else {
                    gen_field_value(&mut self.rng, field)
                };
                patch.insert(field.into(), value);
            }
            patches.push((id, Value::Object(patch)));
        }
        if self.rng.u32(..4) == 0 {
            let id = self.pick_target_id(&name);
            let bad = self.gen_patch(&name, &id);
            let at = self.rng.usize(..=patches.len());
            patches.insert(at, (id, bad));
        }
        self.op = format!("patch_many({name:?}, {patches:?})");
        let now = self.now;
        let expected = model_collection(&self.model, &name).and_then(|coll| {
            let mut coll = coll.clone();
            let mut results = Vec::new();
            for (id, patch) in &patches {
                let data = model_prepare_update(&coll, id, patch, true)?;
                let doc = coll.docs.get_mut(id).unwrap();
                doc.data = data;
                doc.updated = now.max(doc.updated + 1);
                results.push((id.clone(), doc.clone()));
            }
            Ok((coll, results))
        });
        let actual = self.db().collection::<Value>(&name).patch_many(&patches);
        if let Some((docs, (coll, results))) = self.expect(actual, expected) {
            let ctx = self.ctx();
            assert_eq!(
                docs.len(),
                results.len(),
                "{ctx}: number of patched documents"
            );
            for (doc, (id, model)) in docs.iter().zip(&results) {
                self.check_doc("patch_many", doc, id, model);
            }
            self.model.insert(name.clone(), coll);
        }
        if self.model.contains_key(&name) {
            self.check_collection(&name);
        }
    }

    fn op_delete(&mut self) {
        let name = self.pick_collection();
        let id = self.pick_target_id(&name);
        self.op = format!("delete({name:?}, {id:?})");
        let expected = model_collection(&self.model, &name)
            .and_then(|coll| coll.docs.get(&id).cloned().ok_or(Kind::NotFound));
        let actual = self.db().collection::<Value>(&name).delete(&id);
        if let Some((doc, model)) = self.expect(actual, expected) {
            self.check_doc("deleted document", &doc, &id, &model);
            self.model.get_mut(&name).unwrap().docs.remove(&id);
            self.check_collection(&name);
        }
    }

    fn op_delete_many(&mut self) {
        let name = self.pick_collection();
        let ids = self.existing_ids(&name);
        let mut targets: Vec<String> = Vec::new();
        for _ in 0..self.rng.usize(..4) {
            if !ids.is_empty() {
                targets.push(ids[self.rng.usize(..ids.len())].clone());
            }
        }
        if self.rng.u32(..4) == 0 {
            // Unknown ids, or the same id twice, fail the whole batch.
            let extra = self.pick_target_id(&name);
            let at = self.rng.usize(..=targets.len());
            targets.insert(at, extra);
        }
        self.op = format!("delete_many({name:?}, {targets:?})");
        let expected = model_collection(&self.model, &name).and_then(|coll| {
            let mut coll = coll.clone();
            let mut removed = Vec::new();
            for id in &targets {
                let doc = coll.docs.remove(id).ok_or(Kind::NotFound)?;
                removed.push((id.clone(), doc));
            }
            Ok((coll, removed))
        });
        let actual = self.db().collection::<Value>(&name).delete_many(&targets);
        if let Some((docs, (coll, removed))) = self.expect(actual, expected) {
            let ctx = self.ctx();
            assert_eq!(
                docs.len(),
                removed.len(),
                "{ctx}: number of deleted documents"
            );
            for (doc, (id, model)) in docs.iter().zip(&removed) {
                self.check_doc("delete_many", doc, id, model);
            }
            self.model.insert(name.clone(), coll);
        }
        if self.model.contains_key(&name) {
            self.check_collection(&name);
        }
    }

    fn op_find(&mut self) {
        let name = self.pick_collection();
        let filter = self.gen_filter(&name, 0);
        let sort = self.gen_sort(&name);
        let offset = if self.rng.u32(..10) < 7 {
            0
        } else {
            self.rng.usize(..6)
        };
        let limit = (self.rng.u32(..10) < 6).then(|| self.rng.usize(..8));
        let mut query = Query::new().filter(filter.to_filter()).offset(offset);
        for (path, order) in &sort {
            query = match order {
                Order::Asc => query.sort_asc(path.as_str()),
                Order::Desc => query.sort_desc(path.as_str()),
            };
        }
        if let Some(limit) = limit {
            query = query.limit(limit);
        }
        self.op = format!("find({name:?}, {query:?})");
        let query_valid =
            filter.paths_valid() && sort.len() <= 8 && sort.iter().all(|(p, _)| valid_path(p));
        let expected = if query_valid {
            model_collection(&self.model, &name)
                .map(|coll| model_find(coll, &filter, &sort, offset, limit))
        } else {
            Err(Kind::Invalid)
        };
        let actual = self.db().collection::<Value>(&name).find(&query);
        if let Some((docs, model)) = self.expect(actual, expected) {
            self.check_docs("find", &docs, &model);
            let indexes = self.model[&name].indexes.clone();
            let indexed = |path: &String| indexes.contains(path);
            self.note(match docs.len() {
                0 => "find shape: 0 results",
                1..=2 => "find shape: 1-2 results",
                _ => "find shape: 3+ results",
            });
            if let [(path, _)] = sort.as_slice()
                && indexed(path)
            {
                self.note(format!(
                    "find shape: sort on an index, limit={}",
                    limit.is_some()
                ));
            }
            let mut conjuncts = vec![&filter];
            while let Some(MF::And(all, _)) = conjuncts.last().copied() {
                conjuncts.pop();
                conjuncts.extend(all);
            }
            for conjunct in conjuncts {
                match conjunct {
                    MF::Cmp { path, op, .. } if indexed(path) => {
                        self.note(format!("find shape: {op:?} on an index"));
                    }
                    MF::In { path, .. } | MF::IsNull(path) if indexed(path) => {
                        self.note("find shape: in/not in/is null on an index");
                    }
                    _ => {}
                }
            }
        }
    }

    fn op_count(&mut self) {
        let name = self.pick_collection();
        let filter = self.gen_filter(&name, 0);
        let larder_filter = filter.to_filter();
        self.op = format!("count({name:?}, {larder_filter:?})");
        let expected = if filter.paths_valid() {
            model_collection(&self.model, &name).map(|coll| {
                coll.docs
                    .iter()
                    .filter(|(id, doc)| filter.matches(id, doc))
                    .count() as u64
            })
        } else {
            Err(Kind::Invalid)
        };
        let actual = self.db().collection::<Value>(&name).count(&larder_filter);
        if let Some((count, model)) = self.expect(actual, expected) {
            assert_eq!(count, model, "{}: count", self.ctx());
        }
    }

    fn op_aggregate(&mut self) {
        let name = self.pick_collection();
        let filter = self.gen_filter(&name, 0);
        let path = if self.rng.u32(..100) < 3 {
            pick(&mut self.rng, &BAD_PATHS).to_owned()
        } else {
            pick(
                &mut self.rng,
                &["n", "n", "a", "stats.n", "tags.0", "s", "zz", "created_at"],
            )
            .to_owned()
        };
        let agg = match self.rng.u32(..5) {
            0 => MAgg::Count,
            1 => MAgg::Sum(path),
            2 => MAgg::Avg(path),
            3 => MAgg::Min(path),
            _ => MAgg::Max(path),
        };
        let larder_filter = filter.to_filter();
        self.op = format!("aggregate({name:?}, {agg:?}, {larder_filter:?})");
        let valid = filter.paths_valid() && agg.path().is_none_or(valid_path);
        let expected = if valid {
            model_collection(&self.model, &name).map(|coll| model_aggregate(coll, &agg, &filter))
        } else {
            Err(Kind::Invalid)
        };
        let actual = self
            .db()
            .collection::<Value>(&name)
            .aggregate(&agg.to_aggregate(), &larder_filter);
        if let Some((value, accepted)) = self.expect(actual, expected) {
            self.note(format!("aggregate shape: null={}", value.is_null()));
            assert!(
                accepted.contains(&value),
                "{}: aggregate: got {value}, expected one of {accepted:?}",
                self.ctx()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Drivers

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {text:?}")),
        Err(_) => default,
    }
}

fn is_file_backed(seed: u64) -> bool {
    seed.is_multiple_of(4)
}

fn run_seed(seed: u64, steps: usize, stats: &mut BTreeMap<String, u64>) {
    let file_backed = is_file_backed(seed);
    let mut run = Run::new(seed, file_backed);
    let reopen_every = run.rng.usize(20..70);
    let mut reopened = false;
    for name in &VALID_COLLECTIONS[..2] {
        run.op_create_collection(Some(name));
    }
    for step in 0..steps {
        run.step = step;
        run.tick_clock();
        run.random_op();
        if (step + 1) % 25 == 0 {
            run.op = "full check".into();
            run.check_all();
        }
        if file_backed && (step + 1) % reopen_every == 0 {
            run.reopen(!reopened);
            reopened = true;
            run.op = "full check after reopen".into();
            run.check_all();
        }
    }
    run.step = steps;
    run.op = "final check".into();
    run.check_all();
    if file_backed {
        run.reopen(false);
        run.op = "final check after reopen".into();
        run.check_all();
        let ctx = run.ctx();
        let db = run.db.take().unwrap();
        run.note("file: integrity check");
        assert!(
            db.check_integrity()
                .unwrap_or_else(|e| panic!("{ctx}: integrity check: {e:?}")),
            "{ctx}: integrity check"
        );
    }
    for (what, n) in run.stats {
        *stats.entry(what).or_default() += n;
    }
}

/// Runs every configured seed of one storage kind (or the one seed to replay).
fn run_seeds(file_backed: bool) {
    let steps = usize::try_from(env_number("LARDER_MODEL_STEPS", 300)).unwrap();
    let seeds: Vec<u64> = match std::env::var("LARDER_MODEL_SEED") {
        Ok(_) => vec![env_number("LARDER_MODEL_SEED", 0)],
        Err(_) => (1..=env_number("LARDER_MODEL_SEEDS", 40)).collect(),
    };
    let mut stats = BTreeMap::new();
    for seed in seeds
        .into_iter()
        .filter(|&s| is_file_backed(s) == file_backed)
    {
        run_seed(seed, steps, &mut stats);
    }
    if std::env::var_os("LARDER_MODEL_STATS").is_some() {
        let kind = if file_backed {
            "file-backed"
        } else {
            "in memory"
        };
        let lines: Vec<String> = stats.iter().map(|(k, n)| format!("  {k}: {n}")).collect();
        println!("model_ops statistics ({kind}):\n{}", lines.join("\n"));
    }
}

#[test]
fn model_ops_in_memory() {
    run_seeds(false);
}

#[test]
fn model_ops_file_backed_with_reopen() {
    run_seeds(true);
}

/// The model's own building blocks against the documented examples, so that a disagreement
/// in the model test points at larder and not at the model.
#[test]
fn model_follows_the_documented_examples() {
    assert_eq!(fmt_ts(0), "1970-01-01T00:00:00.000000+00:00");
    assert_eq!(fmt_ts(-1), "1969-12-31T23:59:59.999999+00:00");
    assert_eq!(
        fmt_ts(1_700_000_000_123_456),
        "2023-11-14T22:13:20.123456+00:00"
    );
    assert_eq!(
        fmt_ts_offset(1_700_000_000_123_456, 120),
        "2023-11-15T00:13:20.123456+02:00"
    );
    assert_eq!(
        fmt_ts(951_782_400_000_000),
        "2000-02-29T00:00:00.000000+00:00"
    );

    assert!(typed_eq(&json!(30), &json!("30")));
    assert!(typed_eq(&json!(30), &json!(30.0)));
    assert!(typed_eq(&json!(true), &json!("True")));
    assert!(typed_eq(&json!(true), &json!("1")));
    assert!(typed_eq(&json!(false), &json!(0)));
    assert!(typed_eq(&json!("30"), &json!(30)));
    assert!(!typed_eq(&json!(30), &json!("thirty")));
    assert!(!typed_eq(&json!(true), &json!("yes")));
    assert_eq!(typed_cmp(&json!(9), &json!("10")), Some(Ordering::Less));
    assert!(typed_eq(&json!({"a":1,"b":2}), &json!({"b":2,"a":1})));

    let ordered = [
        json!(null),
        json!(false),
        json!(true),
        json!(-2),
        json!(0.25),
        json!(3),
        json!(""),
        json!("a"),
        json!("ab"),
        json!("b"),
        json!([]),
        json!([1]),
        json!([1, 2]),
        json!([2]),
        json!(["a"]),
        json!({}),
        json!({"a": 1}),
        json!({"a": 1, "b": 0}),
        json!({"a": 2}),
        json!({"b": 0}),
    ];
    for pair in ordered.windows(2) {
        assert_eq!(
            cmp_values(&pair[0], &pair[1]),
            Ordering::Less,
            "{} < {}",
            pair[0],
            pair[1]
        );
    }

    let mut target = json!({"a": {"b": "c"}, "k": [1]});
    merge_patch(
        &mut target,
        &json!({"a": {"b": "d", "c": null}, "k": null, "n": {"x": null}}),
    );
    assert_eq!(target, json!({"a": {"b": "d"}, "n": {}}));
}

/// Found by this model: the JSON number `-0` is stored as the float `-0.0`. Sorting and index
/// keys treated it as equal to `0`, but filters compared with `f64::total_cmp`, which orders
/// `-0.0` before `+0.0`, so `n == 0` missed the document and `n < 0` found it.
#[test]
fn negative_zero_compares_equal_to_zero() {
    let db = Db::in_memory().unwrap();
    db.collections().create("t", CollectionSpec::new()).unwrap();
    let docs = db.collection::<Value>("t");
    let doc: Value = serde_json::from_str(r#"{"id": "neg", "n": -0}"#).unwrap();
    docs.insert(&doc).unwrap();
    assert_eq!(docs.count(&Filter::eq("n", 0)).unwrap(), 1, "-0 == 0");
    assert_eq!(
        docs.count(&Filter::lt("n", 0)).unwrap(),
        0,
        "-0 < 0 must not hold"
    );
}
