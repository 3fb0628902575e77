//! Typed comparison of JSON values and the order-preserving byte encoding shared by sorting and
//! indexes.
//!
//! Query values arrive untyped (query strings are text, SDKs send `"True"` for booleans), so a
//! filter value is *coerced to the type of the stored value* before comparing:
//!
//! | stored   | filter value accepted as                                          |
//! | -------- | ----------------------------------------------------------------- |
//! | number   | a number, or a string holding a JSON number (`"30"`, `"2.5"`)     |
//! | boolean  | a boolean, `"true"`/`"True"`/`"TRUE"`/`"1"` (and false forms), `1`/`0` |
//! | string   | a string, or a number/boolean compared as its JSON text           |
//! | null     | null                                                              |
//! | array / object | the same type only                                          |
//!
//! A filter value that cannot be coerced never matches (`ne` and `not in` then match).
//!
//! [`sort_key`] maps every value (and "missing") to bytes whose lexicographic order is the sort
//! order: missing < null < false < true < numbers < strings < arrays < objects. Sorting compares
//! these keys, and index tables store them, so an index scan and an in-memory sort agree by
//! construction.

use std::cmp::Ordering;

use serde_json::{Number, Value};

const TAG_MISSING: u8 = 0x00;
const TAG_NULL: u8 = 0x01;
const TAG_FALSE: u8 = 0x02;
const TAG_TRUE: u8 = 0x03;
const TAG_NUMBER: u8 = 0x04;
const TAG_STRING: u8 = 0x05;
const TAG_ARRAY: u8 = 0x06;
const TAG_OBJECT: u8 = 0x07;
/// Ends the elements of an array or the entries of an object (every element starts with a tag
/// of at least 0x01, every entry with [`ENTRY`]), so shorter sorts first.
const END: u8 = 0x00;
/// Starts one key/value entry of an object.
const ENTRY: u8 = 0x01;

/// The JSON types, in sort order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonType {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl JsonType {
    pub(crate) const ALL: [JsonType; 6] = [
        JsonType::Null,
        JsonType::Bool,
        JsonType::Number,
        JsonType::String,
        JsonType::Array,
        JsonType::Object,
    ];

    pub(crate) fn of(value: &Value) -> JsonType {
        match value {
            Value::Null => JsonType::Null,
            Value::Bool(_) => JsonType::Bool,
            Value::Number(_) => JsonType::Number,
            Value::String(_) => JsonType::String,
            Value::Array(_) => JsonType::Array,
            Value::Object(_) => JsonType::Object,
        }
    }

    /// The first byte of every sort key of this type, and the first byte after them.
    pub(crate) fn tag_range(self) -> (u8, u8) {
        match self {
            JsonType::Null => (TAG_NULL, TAG_NULL + 1),
            JsonType::Bool => (TAG_FALSE, TAG_TRUE + 1),
            JsonType::Number => (TAG_NUMBER, TAG_NUMBER + 1),
            JsonType::String => (TAG_STRING, TAG_STRING + 1),
            JsonType::Array => (TAG_ARRAY, TAG_ARRAY + 1),
            JsonType::Object => (TAG_OBJECT, TAG_OBJECT + 1),
        }
    }
}

/// `value` as a value of type `target`, per the table in the module docs.
pub(crate) fn coerce(value: &Value, target: JsonType) -> Option<Value> {
    match (target, value) {
        (JsonType::Null, Value::Null) => Some(Value::Null),
        (JsonType::Bool, Value::Bool(b)) => Some(Value::Bool(*b)),
        (JsonType::Bool, Value::String(s)) => match s.as_str() {
            "true" | "True" | "TRUE" | "1" => Some(Value::Bool(true)),
            "false" | "False" | "FALSE" | "0" => Some(Value::Bool(false)),
            _ => None,
        },
        (JsonType::Bool, Value::Number(n)) => match n.as_u64() {
            Some(1) => Some(Value::Bool(true)),
            Some(0) => Some(Value::Bool(false)),
            _ => None,
        },
        (JsonType::Number, Value::Number(n)) => Some(Value::Number(n.clone())),
        (JsonType::Number, Value::String(s)) => parse_number(s).map(Value::Number),
        (JsonType::String, Value::String(s)) => Some(Value::String(s.clone())),
        (JsonType::String, Value::Number(n)) => Some(Value::String(n.to_string())),
        (JsonType::String, Value::Bool(b)) => Some(Value::String(b.to_string())),
        (JsonType::Array, Value::Array(_)) | (JsonType::Object, Value::Object(_)) => {
            Some(value.clone())
        }
        _ => None,
    }
}

fn parse_number(text: &str) -> Option<Number> {
    let text = text.trim();
    if let Ok(i) = text.parse::<i64>() {
        return Some(Number::from(i));
    }
    if let Ok(u) = text.parse::<u64>() {
        return Some(Number::from(u));
    }
    // Only finite decimal numbers: "inf", "NaN" and friends are not JSON numbers.
    let looks_numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    if !looks_numeric || text.is_empty() {
        return None;
    }
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

/// Compares a stored value with a filter value under typed comparison. `None` means the two
/// cannot be compared (the filter value does not coerce to the stored type).
pub(crate) fn compare_typed(stored: &Value, filter: &Value) -> Option<Ordering> {
    let stored_type = JsonType::of(stored);
    if stored_type == JsonType::of(filter) {
        // Already the stored type: no coercion, no copy.
        return Some(compare_same_type(stored, filter));
    }
    let coerced = coerce(filter, stored_type)?;
    Some(compare_same_type(stored, &coerced))
}

/// Total order of two values of the same JSON type.
fn compare_same_type(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => sort_key(Some(a)).cmp(&sort_key(Some(b))),
    }
}

fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x.cmp(&y);
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x.cmp(&y);
    }
    let x = a.as_f64().unwrap_or(0.0);
    let y = b.as_f64().unwrap_or(0.0);
    // Not `total_cmp`: -0.0 and 0.0 are the same number (JSON has no NaN).
    x.partial_cmp(&y).unwrap_or(Ordering::Equal)
}

/// Whether the stored value equals the filter value under typed comparison.
pub(crate) fn equals_typed(stored: &Value, filter: &Value) -> bool {
    compare_typed(stored, filter) == Some(Ordering::Equal)
}

/// The order-preserving byte encoding of a value (`None` = missing field).
pub(crate) fn sort_key(value: Option<&Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    write_sort_key(value, &mut out);
    out
}

pub(crate) fn write_sort_key(value: Option<&Value>, out: &mut Vec<u8>) {
    match value {
        None => out.push(TAG_MISSING),
        Some(Value::Null) => out.push(TAG_NULL),
        Some(Value::Bool(false)) => out.push(TAG_FALSE),
        Some(Value::Bool(true)) => out.push(TAG_TRUE),
        Some(Value::Number(n)) => {
            out.push(TAG_NUMBER);
            out.extend_from_slice(&ordered_f64_bytes(n.as_f64().unwrap_or(0.0)));
        }
        Some(Value::String(s)) => {
            out.push(TAG_STRING);
            write_escaped(s.as_bytes(), out);
        }
        Some(Value::Array(items)) => {
            out.push(TAG_ARRAY);
            for item in items {
                write_sort_key(Some(item), out);
            }
            out.push(END);
        }
        Some(Value::Object(map)) => {
            out.push(TAG_OBJECT);
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            for (key, item) in entries {
                out.push(ENTRY);
                write_escaped(key.as_bytes(), out);
                write_sort_key(Some(item), out);
            }
            out.push(END);
        }
    }
}

/// Big-endian bytes of an f64 that sort like the number (sign bit flipped for positives, all
/// bits flipped for negatives). -0.0 is folded into 0.0.
fn ordered_f64_bytes(x: f64) -> [u8; 8] {
    let x = if x == 0.0 { 0.0 } else { x };
    let bits = x.to_bits();
    let ordered = if bits >> 63 == 0 {
        bits | (1 << 63)
    } else {
        !bits
    };
    ordered.to_be_bytes()
}

/// Escapes 0x00 as 0x00 0xFF and terminates with 0x00 0x00, so the encoding is self-delimiting
/// and keeps byte order.
fn write_escaped(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// The smallest byte string greater than every string that starts with `prefix`
/// (`None` when there is none, i.e. the prefix is all 0xFF).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < 0xFF {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

/// Follows a dotted path (already split into segments) into a JSON value. A numeric segment
/// indexes into an array.
pub(crate) fn descend<'v>(mut value: &'v Value, segments: &[String]) -> Option<&'v Value> {
    for segment in segments {
        value = match value {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sort_keys_order_types_then_values() {
        let ordered = [
            None,
            Some(json!(null)),
            Some(json!(false)),
            Some(json!(true)),
            Some(json!(-1e300)),
            Some(json!(-2)),
            Some(json!(-0.5)),
            Some(json!(0)),
            Some(json!(0.25)),
            Some(json!(3)),
            Some(json!(1e300)),
            Some(json!("")),
            Some(json!("a")),
            Some(json!("a\u{0}")),
            Some(json!("a\u{0}b")),
            Some(json!("ab")),
            Some(json!("b")),
            Some(json!([])),
            Some(json!([1])),
            Some(json!([1, 2])),
            Some(json!([2])),
            Some(json!(["a"])),
            Some(json!({})),
            Some(json!({"a": 1})),
            Some(json!({"a": 1, "b": 0})),
            Some(json!({"a": 2})),
            Some(json!({"b": 0})),
        ];
        for pair in ordered.windows(2) {
            assert!(
                sort_key(pair[0].as_ref()) < sort_key(pair[1].as_ref()),
                "{:?} < {:?}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn negative_zero_equals_zero() {
        assert_eq!(sort_key(Some(&json!(-0.0))), sort_key(Some(&json!(0))));
        assert!(equals_typed(&json!(-0.0), &json!(0)));
        assert!(equals_typed(&json!(0), &json!(-0.0)));
        assert!(equals_typed(&json!(-0.0), &json!("0")));
    }

    #[test]
    fn typed_comparison_coerces_the_filter_value() {
        assert!(equals_typed(&json!(30), &json!("30")));
        assert!(equals_typed(&json!(30), &json!(30.0)));
        assert!(equals_typed(&json!(true), &json!("True")));
        assert!(equals_typed(&json!(true), &json!("1")));
        assert!(equals_typed(&json!(false), &json!(0)));
        assert!(equals_typed(&json!("30"), &json!(30)));
        assert!(!equals_typed(&json!(30), &json!("thirty")));
        assert!(!equals_typed(&json!(true), &json!("yes")));
        assert_eq!(
            compare_typed(&json!(9), &json!("10")),
            Some(Ordering::Less),
            "numbers compare numerically, not as text"
        );
        assert_eq!(compare_typed(&json!(1), &json!("inf")), None);
        assert_eq!(compare_typed(&json!(1), &json!("NaN")), None);
    }

    #[test]
    fn large_integers_compare_exactly() {
        let big = json!(9_007_199_254_740_993_i64);
        assert!(!equals_typed(&big, &json!(9_007_199_254_740_992_i64)));
        assert!(equals_typed(&big, &json!("9007199254740993")));
    }

    #[test]
    fn object_keys_do_not_change_equality() {
        assert!(equals_typed(&json!({"a":1,"b":2}), &json!({"b":2,"a":1})));
    }

    #[test]
    fn descend_follows_objects_and_array_indexes() {
        let doc = json!({"a": {"b": [10, {"c": 5}]}});
        let path = |p: &str| p.split('.').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(descend(&doc, &path("a.b.0")), Some(&json!(10)));
        assert_eq!(descend(&doc, &path("a.b.1.c")), Some(&json!(5)));
        assert_eq!(descend(&doc, &path("a.x")), None);
        assert_eq!(descend(&doc, &path("a.b.9")), None);
    }

    #[test]
    fn prefix_successor_bounds_the_prefix() {
        assert_eq!(prefix_successor(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_successor(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xFF]), None);
    }
}
