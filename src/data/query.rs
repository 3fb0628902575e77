//! Queries: the filter tree every dialect compiles to, sorting, paging and aggregates; their
//! compiled form and evaluation.
//!
//! Evaluation never parses a whole document to test it: a compiled query knows which top-level
//! fields it reads, and [`pick_fields`] extracts just those while skipping the rest of the JSON.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::data::values::{self, JsonType};
use crate::error::{Error, Result};
use crate::store::clock;
use crate::store::names::validate_field_path;

/// Most nodes a filter tree may have.
const MAX_FILTER_NODES: usize = 1024;
/// Deepest nesting of a filter tree.
const MAX_FILTER_DEPTH: usize = 32;
/// Most sort keys in one query.
const MAX_SORT_KEYS: usize = 8;

/// A comparison operator of [`Filter::Compare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Equal (typed: `"30"` matches `30`, `"True"` matches `true`).
    Eq,
    /// Not equal; also true when the field is missing.
    Ne,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// A string containing the value, or an array with an element equal to it.
    Contains,
    /// A string containing the value, ignoring case.
    ContainsIgnoreCase,
    /// A string starting with the value.
    StartsWith,
    /// A string starting with the value, ignoring case.
    StartsWithIgnoreCase,
    /// A string ending with the value.
    EndsWith,
    /// A string ending with the value, ignoring case.
    EndsWithIgnoreCase,
}

impl Op {
    /// The comparison named by a query-string suffix (`price_gte` → `Gte`): `eq`, `ne`, `gt`,
    /// `gte`, `lt`, `lte`. The dialects' query grammars share it.
    #[cfg(feature = "http")]
    pub(crate) fn from_suffix(name: &str) -> Option<Op> {
        Some(match name {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            _ => return None,
        })
    }
}

/// A filter over documents. Paths are dotted (`stats.likes`, `tags.0`); `id`, `created_at` and
/// `updated_at` address the server-managed fields.
///
/// ```
/// use larder::Filter;
/// let adults_named_a = Filter::gte("age", 18).and(Filter::starts_with("name", "A"));
/// let not_archived = !Filter::eq("archived", true);
/// let either = adults_named_a.or(not_archived);
/// # let _ = either;
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Filter {
    /// Every document.
    #[default]
    All,
    /// `path op value`.
    Compare {
        /// The field path.
        path: String,
        /// The operator.
        op: Op,
        /// The value compared with (typed comparison).
        value: Value,
    },
    /// The field equals one of the values, or is an array holding one of them (as MongoDB's
    /// `$in`: a `tags` list matches when any tag is listed). Every dialect's `in` means this.
    In {
        /// The field path.
        path: String,
        /// The accepted values.
        values: Vec<Value>,
    },
    /// The negation of [`Filter::In`]: the field equals none of the values and, if it is an
    /// array, holds none of them (or it is missing).
    NotIn {
        /// The field path.
        path: String,
        /// The refused values.
        values: Vec<Value>,
    },
    /// The field is missing or null.
    IsNull {
        /// The field path.
        path: String,
    },
    /// Every filter matches.
    And(Vec<Filter>),
    /// At least one filter matches.
    Or(Vec<Filter>),
    /// The filter does not match.
    Not(Box<Filter>),
}

macro_rules! compare_constructors {
    ($($(#[$doc:meta])* $name:ident => $op:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(path: impl Into<String>, value: impl Into<Value>) -> Filter {
                Filter::Compare { path: path.into(), op: Op::$op, value: value.into() }
            }
        )*
    };
}

impl Filter {
    compare_constructors! {
        /// `path == value`.
        eq => Eq,
        /// `path != value` (true when missing).
        ne => Ne,
        /// `path > value`.
        gt => Gt,
        /// `path >= value`.
        gte => Gte,
        /// `path < value`.
        lt => Lt,
        /// `path <= value`.
        lte => Lte,
        /// The string contains `value`, or the array has an element equal to it.
        contains => Contains,
        /// The string starts with `value`.
        starts_with => StartsWith,
        /// The string ends with `value`.
        ends_with => EndsWith,
    }

    /// `path` equals one of `values`, or is an array holding one of them.
    pub fn is_in(
        path: impl Into<String>,
        values: impl IntoIterator<Item = impl Into<Value>>,
    ) -> Filter {
        Filter::In {
            path: path.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// `path` equals none of `values` and, if an array, holds none of them.
    pub fn not_in(
        path: impl Into<String>,
        values: impl IntoIterator<Item = impl Into<Value>>,
    ) -> Filter {
        Filter::NotIn {
            path: path.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// `path` is missing or null.
    pub fn is_null(path: impl Into<String>) -> Filter {
        Filter::IsNull { path: path.into() }
    }

    /// Both this filter and `other`.
    pub fn and(self, other: Filter) -> Filter {
        match (self, other) {
            (Filter::All, f) | (f, Filter::All) => f,
            (Filter::And(mut a), Filter::And(b)) => {
                a.extend(b);
                Filter::And(a)
            }
            (Filter::And(mut a), f) => {
                a.push(f);
                Filter::And(a)
            }
            (f, g) => Filter::And(vec![f, g]),
        }
    }

    /// This filter or `other`.
    pub fn or(self, other: Filter) -> Filter {
        match (self, other) {
            (Filter::Or(mut a), Filter::Or(b)) => {
                a.extend(b);
                Filter::Or(a)
            }
            (Filter::Or(mut a), f) => {
                a.push(f);
                Filter::Or(a)
            }
            (f, g) => Filter::Or(vec![f, g]),
        }
    }
}

impl std::ops::Not for Filter {
    type Output = Filter;
    fn not(self) -> Filter {
        match self {
            Filter::Not(inner) => *inner,
            other => Filter::Not(Box::new(other)),
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    /// The field path.
    pub path: String,
    /// The direction.
    pub order: Order,
}

/// A list request: filter, sort keys, offset and limit.
///
/// Without sort keys documents come in id order (for generated ids, creation order). Values of
/// different types sort missing < null < booleans < numbers < strings < arrays < objects; ties
/// are broken by id, in the direction of the first sort key.
///
/// ```
/// use larder::{Filter, Query};
/// let page = Query::new()
///     .filter(Filter::eq("status", "open"))
///     .sort_desc("priority")
///     .sort_asc("title")
///     .offset(20)
///     .limit(10);
/// # let _ = page;
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    /// Which documents.
    pub filter: Filter,
    /// In which order.
    pub sort: Vec<Sort>,
    /// How many matching documents to skip.
    pub offset: usize,
    /// How many to return at most (`None`: all).
    pub limit: Option<usize>,
}

impl Query {
    /// All documents, in id order.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the filter (replacing any previous one).
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// Adds an ascending sort key.
    pub fn sort_asc(mut self, path: impl Into<String>) -> Self {
        self.sort.push(Sort {
            path: path.into(),
            order: Order::Asc,
        });
        self
    }

    /// Adds a descending sort key.
    pub fn sort_desc(mut self, path: impl Into<String>) -> Self {
        self.sort.push(Sort {
            path: path.into(),
            order: Order::Desc,
        });
        self
    }

    /// Skips the first `offset` matches.
    pub fn offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }

    /// Returns at most `limit` documents.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
}

/// An aggregate over the documents matching a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aggregate {
    /// How many documents match.
    Count,
    /// The sum of the numeric values of a field (an integer when every value is an integer
    /// and the sum fits in 64 bits).
    Sum(String),
    /// The mean of the numeric values of a field.
    Avg(String),
    /// The smallest numeric value of a field.
    Min(String),
    /// The largest numeric value of a field.
    Max(String),
}

// ---------------------------------------------------------------------------------------------
// Compiled form

/// A server-managed field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetaField {
    Id,
    CreatedAt,
    UpdatedAt,
}

/// A resolved path: a server-managed field, or a slot (picked top-level key) plus the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldRef {
    Meta(MetaField),
    Data { slot: usize, rest: Vec<String> },
}

#[derive(Debug, Clone)]
pub(crate) enum Test {
    All,
    Compare(FieldRef, Op, Value),
    In(FieldRef, Vec<Value>),
    NotIn(FieldRef, Vec<Value>),
    IsNull(FieldRef),
    And(Vec<Test>),
    Or(Vec<Test>),
    Not(Box<Test>),
}

/// A compiled filter and sort, with the list of top-level keys they read.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Top-level data keys read by the filter and sort, in slot order.
    pub(crate) slots: Vec<String>,
    pub(crate) test: Test,
    pub(crate) sort: Vec<(FieldRef, Order)>,
}

/// Compiles paths against a growing slot table.
#[derive(Default)]
pub(crate) struct Compiler {
    slots: Vec<String>,
    nodes: usize,
}

impl Compiler {
    pub(crate) fn field(&mut self, path: &str) -> Result<FieldRef> {
        validate_field_path(path)?;
        Ok(match path {
            "id" => FieldRef::Meta(MetaField::Id),
            "created_at" => FieldRef::Meta(MetaField::CreatedAt),
            "updated_at" => FieldRef::Meta(MetaField::UpdatedAt),
            _ => {
                let mut segments = path.split('.').map(str::to_owned);
                let top = segments.next().unwrap_or_default();
                let slot = match self.slots.iter().position(|s| *s == top) {
                    Some(slot) => slot,
                    None => {
                        self.slots.push(top);
                        self.slots.len() - 1
                    }
                };
                FieldRef::Data {
                    slot,
                    rest: segments.collect(),
                }
            }
        })
    }

    fn test(&mut self, filter: &Filter, depth: usize) -> Result<Test> {
        self.nodes += 1;
        if self.nodes > MAX_FILTER_NODES || depth > MAX_FILTER_DEPTH {
            return Err(Error::invalid(format!(
                "the filter is too complex (at most {MAX_FILTER_NODES} conditions, \
                 nested at most {MAX_FILTER_DEPTH} deep)"
            )));
        }
        Ok(match filter {
            Filter::All => Test::All,
            Filter::Compare { path, op, value } => {
                let field = self.field(path)?;
                let value = normalize_for(&field, value);
                Test::Compare(field, *op, value)
            }
            Filter::In { path, values } | Filter::NotIn { path, values } => {
                self.nodes += values.len();
                let field = self.field(path)?;
                let values = values.iter().map(|v| normalize_for(&field, v)).collect();
                if matches!(filter, Filter::In { .. }) {
                    Test::In(field, values)
                } else {
                    Test::NotIn(field, values)
                }
            }
            Filter::IsNull { path } => Test::IsNull(self.field(path)?),
            Filter::And(all) => Test::And(
                all.iter()
                    .map(|f| self.test(f, depth + 1))
                    .collect::<Result<_>>()?,
            ),
            Filter::Or(any) => Test::Or(
                any.iter()
                    .map(|f| self.test(f, depth + 1))
                    .collect::<Result<_>>()?,
            ),
            Filter::Not(inner) => Test::Not(Box::new(self.test(inner, depth + 1)?)),
        })
    }

    pub(crate) fn into_slots(self) -> Vec<String> {
        self.slots
    }
}

/// Timestamps given in any RFC 3339 form compare against the stored canonical form.
fn normalize_for(field: &FieldRef, value: &Value) -> Value {
    if let (FieldRef::Meta(MetaField::CreatedAt | MetaField::UpdatedAt), Value::String(text)) =
        (field, value)
        && let Some(micros) = clock::parse_rfc3339(text)
    {
        return Value::String(clock::format_rfc3339(micros));
    }
    value.clone()
}

impl Plan {
    pub(crate) fn compile(filter: &Filter, sort: &[Sort]) -> Result<Plan> {
        if sort.len() > MAX_SORT_KEYS {
            return Err(Error::invalid(format!(
                "at most {MAX_SORT_KEYS} sort keys are allowed"
            )));
        }
        let mut compiler = Compiler::default();
        let test = compiler.test(filter, 0)?;
        let sort = sort
            .iter()
            .map(|s| Ok((compiler.field(&s.path)?, s.order)))
            .collect::<Result<_>>()?;
        Ok(Plan {
            slots: compiler.into_slots(),
            test,
            sort,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// The fields of one document as a compiled query sees them.
pub(crate) struct Row<'a> {
    pub(crate) id: RowId<'a>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) data: RowData<'a>,
}

/// A row's id: a string, or the redb key it is stored under. Decoding a key checks its UTF-8,
/// so a scan hands over the key and it is decoded only if the query reads `id`.
#[derive(Clone, Copy)]
pub(crate) enum RowId<'a> {
    Str(&'a str),
    Key(&'a redb::AccessGuard<'a, &'static str>),
}

impl<'a> RowId<'a> {
    pub(crate) fn get(self) -> &'a str {
        match self {
            RowId::Str(id) => id,
            RowId::Key(key) => key.value(),
        }
    }
}

/// Where a row's data fields come from.
pub(crate) enum RowData<'a> {
    /// Only the top-level keys a plan reads, by slot.
    Picked(&'a [Picked]),
    /// A whole parsed document, looked up by top-level key name.
    Full(&'a Map<String, Value>, &'a [String]),
}

impl<'a> Row<'a> {
    pub(crate) fn resolve(&self, field: &FieldRef) -> Option<Cow<'a, Value>> {
        match field {
            FieldRef::Meta(MetaField::Id) => {
                Some(Cow::Owned(Value::String(self.id.get().to_owned())))
            }
            FieldRef::Meta(MetaField::CreatedAt) => Some(Cow::Owned(Value::String(
                clock::format_rfc3339(self.created_at),
            ))),
            FieldRef::Meta(MetaField::UpdatedAt) => Some(Cow::Owned(Value::String(
                clock::format_rfc3339(self.updated_at),
            ))),
            FieldRef::Data { slot, rest } => {
                let top = match &self.data {
                    RowData::Picked(values) => values.get(*slot)?.get()?,
                    RowData::Full(map, slots) => map.get(slots.get(*slot)?)?,
                };
                values::descend(top, rest).map(Cow::Borrowed)
            }
        }
    }

    pub(crate) fn matches(&self, test: &Test) -> bool {
        match test {
            Test::All => true,
            Test::Compare(field, op, value) => {
                let stored = self.resolve(field);
                compare(stored.as_deref(), *op, value)
            }
            Test::In(field, values) => self
                .resolve(field)
                .is_some_and(|stored| is_in(&stored, values)),
            Test::NotIn(field, values) => !self
                .resolve(field)
                .is_some_and(|stored| is_in(&stored, values)),
            Test::IsNull(field) => {
                matches!(self.resolve(field).as_deref(), None | Some(Value::Null))
            }
            Test::And(all) => all.iter().all(|t| self.matches(t)),
            Test::Or(any) => any.iter().any(|t| self.matches(t)),
            Test::Not(inner) => !self.matches(inner),
        }
    }

    /// The sort keys of this row, one per compiled sort key.
    pub(crate) fn sort_keys(&self, sort: &[(FieldRef, Order)]) -> Vec<Vec<u8>> {
        sort.iter()
            .map(|(field, _)| match field {
                // Timestamps sort by their stored microseconds: the same order as their
                // canonical text, without formatting a string for every candidate row.
                FieldRef::Meta(MetaField::CreatedAt) => timestamp_key(self.created_at),
                FieldRef::Meta(MetaField::UpdatedAt) => timestamp_key(self.updated_at),
                _ => values::sort_key(self.resolve(field).as_deref()),
            })
            .collect()
    }
}

/// An order-preserving key of a timestamp (big-endian with the sign bit flipped).
fn timestamp_key(micros: i64) -> Vec<u8> {
    ((micros as u64) ^ (1 << 63)).to_be_bytes().to_vec()
}

/// `stored` equals one of `values`, or is an array with an element that does.
fn is_in(stored: &Value, values: &[Value]) -> bool {
    let listed = |item: &Value| values.iter().any(|v| values::equals_typed(item, v));
    listed(stored) || matches!(stored, Value::Array(items) if items.iter().any(listed))
}

fn compare(stored: Option<&Value>, op: Op, value: &Value) -> bool {
    let Some(stored) = stored else {
        return op == Op::Ne;
    };
    match op {
        Op::Eq => values::equals_typed(stored, value),
        Op::Ne => !values::equals_typed(stored, value),
        Op::Gt => values::compare_typed(stored, value) == Some(Ordering::Greater),
        Op::Gte => matches!(
            values::compare_typed(stored, value),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        Op::Lt => values::compare_typed(stored, value) == Some(Ordering::Less),
        Op::Lte => matches!(
            values::compare_typed(stored, value),
            Some(Ordering::Less | Ordering::Equal)
        ),
        Op::Contains => match stored {
            Value::Array(items) => items.iter().any(|item| values::equals_typed(item, value)),
            _ => text_test(stored, value, false, |s, v| s.contains(v)),
        },
        Op::ContainsIgnoreCase => text_test(stored, value, true, |s, v| s.contains(v)),
        Op::StartsWith => text_test(stored, value, false, |s, v| s.starts_with(v)),
        Op::StartsWithIgnoreCase => text_test(stored, value, true, |s, v| s.starts_with(v)),
        Op::EndsWith => text_test(stored, value, false, |s, v| s.ends_with(v)),
        Op::EndsWithIgnoreCase => text_test(stored, value, true, |s, v| s.ends_with(v)),
    }
}

fn text_test(
    stored: &Value,
    value: &Value,
    ignore_case: bool,
    test: fn(&str, &str) -> bool,
) -> bool {
    let Value::String(stored) = stored else {
        return false;
    };
    // A string is used as it is: coercing it would copy it for every document tested.
    let value = match value {
        Value::String(value) => Cow::Borrowed(value.as_str()),
        other => match values::coerce(other, JsonType::String) {
            Some(Value::String(value)) => Cow::Owned(value),
            _ => return false,
        },
    };
    if ignore_case {
        test(&stored.to_lowercase(), &value.to_lowercase())
    } else {
        test(stored, &value)
    }
}

/// Orders two rows' sort keys; ties are broken by id in the direction of the first key.
pub(crate) fn compare_rows(
    sort: &[(FieldRef, Order)],
    a: (&[Vec<u8>], &str),
    b: (&[Vec<u8>], &str),
) -> Ordering {
    for ((key_a, key_b), (_, order)) in a.0.iter().zip(b.0).zip(sort) {
        let ordering = key_a.cmp(key_b);
        if ordering != Ordering::Equal {
            return if *order == Order::Desc {
                ordering.reverse()
            } else {
                ordering
            };
        }
    }
    let by_id = a.1.cmp(b.1);
    match sort.first() {
        Some((_, Order::Desc)) => by_id.reverse(),
        _ => by_id,
    }
}

// ---------------------------------------------------------------------------------------------
// Picking fields out of stored JSON

/// One top-level field picked out of a stored document. Slots are reused from document to
/// document, and keep their value's buffers while the field is missing (see [`InPlace`]).
#[derive(Debug, Default)]
pub(crate) struct Picked {
    present: bool,
    value: Value,
}

impl Picked {
    /// The field's value; `None` when the document does not have it.
    pub(crate) fn get(&self) -> Option<&Value> {
        self.present.then_some(&self.value)
    }
}

/// Parses only the top-level keys named in `slots` out of a JSON object, skipping the rest.
#[cfg(test)]
pub(crate) fn pick_fields(json: &[u8], slots: &[String]) -> Result<Vec<Option<Value>>> {
    let mut picked = Vec::new();
    pick_fields_into(json, slots, &mut picked)?;
    Ok(picked
        .into_iter()
        .map(|p| p.present.then_some(p.value))
        .collect())
}

/// [`pick_fields`] into reused slots (allocated once per scan, not per document).
pub(crate) fn pick_fields_into(
    json: &[u8],
    slots: &[String],
    picked: &mut Vec<Picked>,
) -> Result<()> {
    picked.resize_with(slots.len(), Picked::default);
    for slot in picked.iter_mut() {
        slot.present = false;
    }
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    Picker { slots, picked }
        .deserialize(&mut deserializer)
        .map_err(Error::internal)
}

struct Picker<'s> {
    slots: &'s [String],
    picked: &'s mut [Picked],
}

impl<'de> DeserializeSeed<'de> for Picker<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Picker<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while let Some(slot) = map.next_key_seed(SlotOfKey { slots: self.slots })? {
            match slot {
                Some(slot) => {
                    let picked = &mut self.picked[slot];
                    map.next_value_seed(InPlace(&mut picked.value))?;
                    picked.present = true;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Deserializes an object key into the index of the slot it names, without allocating. Keys
/// are read as bytes: serde_json then skips the UTF-8 check (stored JSON was written by
/// serde_json, so it is valid) and the comparison is the same.
struct SlotOfKey<'s> {
    slots: &'s [String],
}

impl<'de> DeserializeSeed<'de> for SlotOfKey<'_> {
    type Value = Option<usize>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_bytes(self)
    }
}

impl Visitor<'_> for SlotOfKey<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_bytes<E: serde::de::Error>(self, key: &[u8]) -> Result<Self::Value, E> {
        // The first-byte test spares a `memcmp` call for most keys of the same length.
        Ok(self.slots.iter().position(|slot| {
            let slot = slot.as_bytes();
            slot.len() == key.len() && slot.first() == key.first() && slot == key
        }))
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        self.visit_bytes(key.as_bytes())
    }
}

/// Deserializes a value over an existing one, giving the same `Value` as deserializing it
/// afresh but reusing the old value's string and array buffers: a scan picks the same fields
/// document after document, so once they have grown it no longer allocates.
struct InPlace<'v>(&'v mut Value);

impl<'de> DeserializeSeed<'de> for InPlace<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for InPlace<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        match self.0 {
            Value::String(buffer) => {
                buffer.clear();
                buffer.push_str(text);
            }
            other => *other = Value::String(text.to_owned()),
        }
        Ok(())
    }

    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Self::Value, E> {
        *self.0 = Value::String(text);
        Ok(())
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Self::Value, E> {
        *self.0 = Value::Bool(b);
        Ok(())
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Self::Value, E> {
        *self.0 = Value::from(n);
        Ok(())
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Self::Value, E> {
        *self.0 = Value::from(n);
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Self::Value, E> {
        *self.0 = Value::from(n);
        Ok(())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        *self.0 = Value::Null;
        Ok(())
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Value::Array(items) = self.0 else {
            *self.0 = Value::deserialize(SeqAccessDeserializer::new(seq))?;
            return Ok(());
        };
        // Overwrite the elements already there, then push any further ones.
        for len in 0..items.len() {
            if seq.next_element_seed(InPlace(&mut items[len]))?.is_none() {
                items.truncate(len);
                return Ok(());
            }
        }
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        *self.0 = Value::deserialize(MapAccessDeserializer::new(map))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row_matches(doc: &Value, filter: Filter) -> bool {
        let plan = Plan::compile(&filter, &[]).unwrap();
        let map = doc.as_object().unwrap();
        let row = Row {
            id: RowId::Str("x"),
            created_at: 0,
            updated_at: 0,
            data: RowData::Full(map, &plan.slots),
        };
        let mut picked = Vec::new();
        pick_fields_into(doc.to_string().as_bytes(), &plan.slots, &mut picked).unwrap();
        let picked_row = Row {
            id: RowId::Str("x"),
            created_at: 0,
            updated_at: 0,
            data: RowData::Picked(&picked),
        };
        let full = row.matches(&plan.test);
        assert_eq!(
            full,
            picked_row.matches(&plan.test),
            "picked and full rows agree"
        );
        full
    }

    #[test]
    fn operators() {
        let doc = json!({"n": 5, "s": "Hello", "b": true, "tags": ["x", "y"], "o": {"k": null}});
        assert!(row_matches(&doc, Filter::eq("n", "5")));
        assert!(row_matches(&doc, Filter::gt("n", 4)));
        assert!(!row_matches(&doc, Filter::gt("n", 5)));
        assert!(row_matches(&doc, Filter::lte("n", "5")));
        assert!(row_matches(&doc, Filter::ne("missing", 1)));
        assert!(!row_matches(&doc, Filter::eq("missing", 1)));
        assert!(row_matches(&doc, Filter::contains("s", "ell")));
        assert!(!row_matches(&doc, Filter::contains("s", "ELL")));
        assert!(row_matches(
            &doc,
            Filter::Compare {
                path: "s".into(),
                op: Op::ContainsIgnoreCase,
                value: json!("ELL")
            }
        ));
        assert!(row_matches(&doc, Filter::contains("tags", "y")));
        assert!(row_matches(&doc, Filter::starts_with("s", "He")));
        assert!(row_matches(&doc, Filter::ends_with("s", "lo")));
        assert!(row_matches(
            &doc,
            Filter::is_in("n", [json!(1), json!("5")])
        ));
        assert!(row_matches(&doc, Filter::not_in("n", [1, 2])));
        assert!(row_matches(&doc, Filter::is_null("o.k")));
        assert!(row_matches(&doc, Filter::is_null("nope")));
        assert!(!row_matches(&doc, Filter::is_null("n")));
        assert!(row_matches(&doc, Filter::eq("b", "True")));
        assert!(row_matches(&doc, Filter::eq("tags.1", "y")));
        assert!(row_matches(&doc, !Filter::eq("n", 6)));
        assert!(row_matches(
            &doc,
            Filter::eq("n", 5).and(Filter::eq("b", 1))
        ));
        assert!(row_matches(&doc, Filter::eq("n", 6).or(Filter::eq("b", 1))));
    }

    #[test]
    fn picker_handles_escaped_keys_and_duplicates() {
        let json = br#"{"a\u0062": 1, "skip": {"deep": [1, 2, {"x": "y"}]}, "ab": 2}"#;
        let picked = pick_fields(json, &["ab".to_owned()]).unwrap();
        assert_eq!(picked, vec![Some(json!(2))]);
    }

    #[test]
    fn picking_in_place_gives_the_values_parsing_afresh_gives() {
        let docs = [
            json!({"a": "a long string", "b": [1, "x", [2, "y"], {"k": "v"}]}),
            json!({"a": "s", "b": ["p", "q", "r", "s", "t"]}),
            json!({"b": []}),
            json!({"a": 5, "b": {"k": ["v"]}}),
            json!({"a": null, "b": [true, 1.5, -3, 18_446_744_073_709_551_615_u64, null]}),
            json!({"a": "\u{e9}\u{0}\"\\", "b": ["x", []]}),
            json!({"c": 1}),
            json!({"a": ["one"], "b": "now a string"}),
        ];
        let slots = ["a".to_owned(), "b".to_owned()];
        let mut picked = Vec::new();
        for doc in &docs {
            pick_fields_into(doc.to_string().as_bytes(), &slots, &mut picked).unwrap();
            let got: Vec<Option<&Value>> = picked.iter().map(Picked::get).collect();
            let fresh: Vec<Option<&Value>> = slots.iter().map(|k| doc.get(k)).collect();
            assert_eq!(got, fresh, "{doc}");
        }
    }

    #[test]
    fn filters_too_complex_are_refused() {
        let mut filter = Filter::eq("a", 1);
        for _ in 0..40 {
            filter = !Filter::And(vec![filter]);
        }
        assert!(Plan::compile(&filter, &[]).is_err());
        let wide = Filter::Or((0..2000).map(|i| Filter::eq("a", i)).collect());
        assert!(Plan::compile(&wide, &[]).is_err());
    }

    #[test]
    fn bad_paths_are_refused() {
        assert!(Plan::compile(&Filter::eq("a..b", 1), &[]).is_err());
        assert!(
            Plan::compile(
                &Filter::All,
                &[Sort {
                    path: "".into(),
                    order: Order::Asc
                }]
            )
            .is_err()
        );
    }
}
