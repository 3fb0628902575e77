//! What names and shapes the file accepts from callers: collection and bucket names, field
//! paths, the targets of key grants, and how deep JSON may nest. Every layer checks its input
//! with these, so one name is valid or not everywhere.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Names that can never be used for a collection.
const RESERVED_NAMES: &[&str] = &["users"];

/// Checks a collection name: `^[a-z][a-z0-9_]{0,63}$`, not reserved.
pub(crate) fn validate_collection_name(name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let well_formed = matches!(bytes.next(), Some(b'a'..=b'z'))
        && name.len() <= 64
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'));
    if !well_formed {
        return Err(Error::invalid(format!(
            "invalid collection name `{}`: use 1 to 64 characters of a-z, 0-9 and _, \
             starting with a letter",
            name.escape_debug()
        )));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(Error::invalid(format!(
            "the collection name `{name}` is reserved"
        )));
    }
    Ok(())
}

/// The names larder manages in every document; they cannot be written as data.
pub(crate) const SERVER_MANAGED_FIELDS: [&str; 3] = ["id", "created_at", "updated_at"];

pub(crate) fn is_server_managed(path: &str) -> bool {
    SERVER_MANAGED_FIELDS.contains(&path)
}

/// Checks a dotted field path: 1 to 16 non-empty segments, at most 256 bytes, no control
/// characters.
pub(crate) fn validate_field_path(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && path.len() <= 256
        && path.split('.').count() <= 16
        && path.split('.').all(|segment| !segment.is_empty())
        && !path.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid field path `{}`: use up to 16 non-empty dot-separated names, \
             at most 256 bytes, no control characters",
            path.escape_debug()
        )))
    }
}

/// Checks a bucket name: the same pattern as a collection name.
pub(crate) fn validate_bucket_name(name: &str) -> Result<()> {
    validate_collection_name(name).map_err(|_| {
        Error::invalid(format!(
            "invalid bucket name `{}`: use 1 to 64 characters of a-z, 0-9 and _, starting \
             with a letter",
            name.escape_debug()
        ))
    })
}

/// Checks the name a scoped key's grant is for: a collection, or `files/<bucket>`.
pub(crate) fn validate_grant_target(name: &str) -> Result<()> {
    match name.strip_prefix("files/") {
        Some(bucket) => validate_bucket_name(bucket),
        None => validate_collection_name(name),
    }
}

/// Case-folds and checks an email address.
pub(crate) fn fold_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && local.len() <= 64
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
            }
            None => false,
        };
    if valid {
        Ok(email)
    } else {
        Err(Error::invalid("invalid email address"))
    }
}

/// How deeply stored data (a document, a profile) may nest objects and arrays, the data itself
/// being level 1. Reading parses with serde_json's limit of 128 levels, so deeper data would be
/// stored and then never read again (and break every list over it). MongoDB's limit is also 100.
pub(crate) const MAX_NESTING: usize = 100;

/// Refuses data nested deeper than [`MAX_NESTING`], before it is stored. `what` names it in the
/// error ("the document").
pub(crate) fn check_nesting(data: &Map<String, Value>, what: &str) -> Result<()> {
    fn within(value: &Value, budget: usize) -> bool {
        match value {
            Value::Array(items) => budget > 0 && items.iter().all(|v| within(v, budget - 1)),
            Value::Object(entries) => budget > 0 && entries.values().all(|v| within(v, budget - 1)),
            _ => true,
        }
    }
    if data.values().all(|value| within(value, MAX_NESTING - 1)) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{what} nests objects and arrays more than {MAX_NESTING} levels deep"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `levels` of arrays around a number: `[[1]]` is 2.
    fn nested(levels: usize) -> Value {
        (0..levels).fold(json!(1), |inner, _| json!([inner]))
    }

    #[test]
    fn nesting_is_counted_from_the_data_itself() {
        let data = |levels: usize| match json!({ "a": nested(levels - 1) }) {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        assert!(check_nesting(&data(MAX_NESTING), "it").is_ok());
        assert!(check_nesting(&data(MAX_NESTING + 1), "it").is_err());
        // Far deeper than the limit: refused without walking it all.
        assert!(check_nesting(&data(300), "it").is_err());
        // What is accepted can be parsed again.
        let text = serde_json::to_string(&data(MAX_NESTING)).unwrap();
        assert!(serde_json::from_str::<Value>(&text).is_ok());
    }
}
