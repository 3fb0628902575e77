//! The ekoDB query body of `POST /api/find/{collection}`, compiled to larder's one filter tree:
//! `{"filter": {"type": "Condition" | "Logical", "content": …}, "sort": [{"field", "ascending"}],
//! "limit", "skip", "select_fields", "exclude_fields"}`. Comparisons are typed by the library, so
//! numbers sort and compare as numbers. Unknown keys and explicit nulls are accepted (the client
//! sends `bypass_cache`, `bypass_ripple` and nulls); an unknown operator is a clear 400.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::data::query::{Filter, Op, Order, Query, Sort};
use crate::error::{Error, Result};

/// A find request as the client sends it.
#[derive(Debug, Default, Deserialize)]
pub(super) struct FindBody {
    #[serde(default)]
    filter: Option<Value>,
    #[serde(default)]
    sort: Option<Value>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    skip: Option<usize>,
    #[serde(default)]
    join: Option<Value>,
    /// Only these fields (and `id`) in each answer.
    #[serde(default)]
    pub(super) select_fields: Option<Vec<String>>,
    /// Never these fields in each answer.
    #[serde(default)]
    pub(super) exclude_fields: Option<Vec<String>>,
}

impl FindBody {
    /// The library query this body asks for.
    pub(super) fn query(&self) -> Result<Query> {
        if self.join.as_ref().is_some_and(|j| !j.is_null()) {
            return Err(Error::invalid("joins are not supported"));
        }
        Ok(Query {
            filter: match &self.filter {
                None | Some(Value::Null) => Filter::All,
                Some(node) => filter_of(node)?,
            },
            sort: sorts(self.sort.as_ref())?,
            offset: self.skip.unwrap_or(0),
            // No default limit: the client counts documents by the length of a find.
            limit: self.limit,
        })
    }
}

/// ekoDB names the id `id`, and the client sometimes `_id`.
fn path_of(field: &str) -> String {
    if field == "_id" {
        "id".into()
    } else {
        field.to_owned()
    }
}

fn text<'v>(content: &'v Value, name: &str) -> Result<&'v str> {
    content
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid(format!("a filter node needs `{name}`")))
}

/// One node of the filter tree.
fn filter_of(node: &Value) -> Result<Filter> {
    let content = node
        .get("content")
        .ok_or_else(|| Error::invalid("a filter node needs `type` and `content`"))?;
    match node.get("type").and_then(Value::as_str) {
        Some("Condition") => condition(content),
        Some("Logical") => logical(content),
        _ => Err(Error::invalid(
            "a filter node's `type` is Condition or Logical",
        )),
    }
}

fn condition(content: &Value) -> Result<Filter> {
    let path = path_of(text(content, "field")?);
    let value = content.get("value").cloned().unwrap_or(Value::Null);
    let op = match text(content, "operator")? {
        "In" | "NotIn" => {
            let Value::Array(values) = value else {
                return Err(Error::invalid("`In` and `NotIn` take an array"));
            };
            return Ok(if text(content, "operator")? == "In" {
                Filter::In { path, values }
            } else {
                Filter::NotIn { path, values }
            });
        }
        "Eq" => Op::Eq,
        "Ne" => Op::Ne,
        "Gt" => Op::Gt,
        "Gte" => Op::Gte,
        "Lt" => Op::Lt,
        "Lte" => Op::Lte,
        "Contains" => Op::Contains,
        "StartsWith" => Op::StartsWith,
        "EndsWith" => Op::EndsWith,
        other => {
            return Err(Error::invalid(format!(
                "unknown operator `{other}`: use Eq, Ne, Gt, Gte, Lt, Lte, In, NotIn, Contains, StartsWith or EndsWith"
            )));
        }
    };
    Ok(Filter::Compare { path, op, value })
}

fn logical(content: &Value) -> Result<Filter> {
    let expressions = content
        .get("expressions")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid("a Logical node needs `expressions`"))?
        .iter()
        .map(filter_of)
        .collect::<Result<Vec<_>>>()?;
    match text(content, "operator")? {
        "And" => Ok(expressions.into_iter().fold(Filter::All, Filter::and)),
        "Or" => Ok(Filter::Or(expressions)),
        "Not" => match <[Filter; 1]>::try_from(expressions) {
            Ok([inner]) => Ok(!inner),
            Err(_) => Err(Error::invalid("`Not` takes exactly one expression")),
        },
        other => Err(Error::invalid(format!(
            "unknown logical operator `{other}`: use And, Or or Not"
        ))),
    }
}

/// `sort`: an array of `{"field", "ascending"}` (one object alone is accepted too).
fn sorts(sort: Option<&Value>) -> Result<Vec<Sort>> {
    let keys = match sort {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(keys)) => keys.iter().collect(),
        Some(key @ Value::Object(_)) => vec![key],
        Some(_) => return Err(Error::invalid("`sort` is a list of {field, ascending}")),
    };
    keys.into_iter()
        .map(|key| {
            let path = path_of(text(key, "field")?);
            let ascending = match key.get("ascending") {
                None | Some(Value::Null) => true,
                Some(Value::Bool(ascending)) => *ascending,
                Some(_) => return Err(Error::invalid("`ascending` is true or false")),
            };
            let order = if ascending { Order::Asc } else { Order::Desc };
            Ok(Sort { path, order })
        })
        .collect()
}

/// Applies a caller's own choice of fields to a record (authorization has already removed what
/// the caller may not see): `select` keeps the listed top-level fields and `id`; `exclude`
/// drops the listed ones (never `id`).
pub(super) fn project(record: &mut Map<String, Value>, select: &[String], exclude: &[String]) {
    if !select.is_empty() {
        record.retain(|field, _| field == "id" || select.iter().any(|s| path_of(s) == *field));
    }
    for field in exclude {
        let field = path_of(field);
        if field != "id" {
            record.remove(&field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(body: Value) -> Result<Query> {
        serde_json::from_value::<FindBody>(body).unwrap().query()
    }

    #[test]
    fn the_recorded_client_body_compiles() {
        let query = compile(json!({"filter": {"type": "Logical", "content": {"operator": "And", "expressions": [
            {"type": "Condition", "content": {"field": "name", "operator": "Eq", "value": "Alice"}},
            {"type": "Condition", "content": {"field": "age", "operator": "Gte", "value": 18}}]}},
            "sort": [{"field": "age", "ascending": false}], "limit": 10, "skip": 0,
            "bypass_cache": false, "select_fields": null, "exclude_fields": null, "bypass_ripple": false}))
        .unwrap();
        assert_eq!(
            query.filter,
            Filter::eq("name", "Alice").and(Filter::gte("age", 18))
        );
        assert_eq!(
            query.sort,
            [Sort {
                path: "age".into(),
                order: Order::Desc
            }]
        );
        assert_eq!((query.offset, query.limit), (0, Some(10)));
    }

    #[test]
    fn not_takes_one_expression_and_in_takes_an_array() {
        let cond =
            json!({"type": "Condition", "content": {"field": "a", "operator": "Eq", "value": 1}});
        let not = |expressions: Value| {
            compile(
                json!({"filter": {"type": "Logical", "content": {"operator": "Not", "expressions": expressions}}}),
            )
        };
        assert_eq!(not(json!([cond])).unwrap().filter, !Filter::eq("a", 1));
        assert!(not(json!([cond, cond])).is_err());
        let in_scalar = json!({"filter": {"type": "Condition", "content": {"field": "a", "operator": "In", "value": 1}}});
        assert!(compile(in_scalar).is_err());
        let unknown = json!({"filter": {"type": "Condition", "content": {"field": "a", "operator": "Like", "value": 1}}});
        assert!(compile(unknown).is_err());
        assert!(compile(json!({"join": {"collections": ["x"]}})).is_err());
    }

    #[test]
    fn projection_keeps_the_id() {
        let mut record = json!({"id": "1", "a": 1, "b": 2})
            .as_object()
            .unwrap()
            .clone();
        project(&mut record, &["_id".into()], &[]);
        assert_eq!(Value::Object(record), json!({"id": "1"}));
        let mut record = json!({"id": "1", "a": 1, "b": 2})
            .as_object()
            .unwrap()
            .clone();
        project(&mut record, &[], &["a".into(), "id".into()]);
        assert_eq!(Value::Object(record), json!({"id": "1", "b": 2}));
    }
}
