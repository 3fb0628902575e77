//! The query languages of the dialects, through the real router: Cocobase's and urBackend's
//! query strings (`field_op=value`, sorting, paging, counting) and ekoDB's find body (a tree of
//! conditions and logical nodes, sort, skip/limit, select/exclude), as JSON text the fuzzer
//! composes from meaningful words or makes up.
//!
//! Oracles, besides [`check_answer`]'s (never a 5xx; no hidden field and no other user's
//! document in any answer):
//! - a list answer is a JSON array (or urBackend's envelope around one) no longer than asked;
//! - a user's count over `notes` never exceeds the documents the user owns.

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::site::{Caller, OWN_NOTES, Site, check_answer};
use super::{Piece, Word};

const COLLECTIONS: &[&str] = &["notes", "pub", "missing", "users", "_keys", "a/b", "..", ""];
const FIELDS: &[&str] = &[
    "n",
    "s",
    "tags",
    "tags.0",
    "stats",
    "stats.n",
    "stats.flag",
    "maybe",
    "owner",
    "secret",
    "id",
    "_id",
    "created_at",
    "createdAt",
    "updated_at",
    "nope",
    "n.x",
    "",
    ".",
    "a..b",
];
const SUFFIXES: &[&str] = &[
    "",
    "_eq",
    "_ne",
    "_gt",
    "_gte",
    "_lt",
    "_lte",
    "_in",
    "_notin",
    "_contains",
    "_startswith",
    "_endswith",
    "_isnull",
    "_exists",
    "__in",
    "__gte",
    "__isnull",
    "_",
];
const PARAMS: &[&str] = &[
    "limit",
    "offset",
    "sort",
    "order",
    "sort_by",
    "sort_order",
    "page",
    "skip",
    "count",
    "populate",
    "select",
    "fields",
    "expand",
];
const VALUES: &[&str] = &[
    "1",
    "0",
    "-1",
    "2.5",
    "-0",
    "1e308",
    "1e-400",
    "99999999999999999999999",
    "NaN",
    "inf",
    "alpha",
    "ALPHA",
    "Beta",
    "",
    "true",
    "True",
    "false",
    "null",
    "a,b",
    "1,2,3",
    ",",
    "asc",
    "desc",
    "ASC",
    "n",
    "-n",
    "n:desc",
    "n:asc,s:-1",
    "created_at",
    "1000000",
    "18446744073709551616",
    "%",
    "%zz",
    "\u{0}",
    "ünï",
    "private-b7d20a",
];
const OPERATORS: &[&str] = &[
    "Eq",
    "Ne",
    "Gt",
    "Gte",
    "Lt",
    "Lte",
    "In",
    "NotIn",
    "Contains",
    "StartsWith",
    "EndsWith",
    "Regex",
    "eq",
];
const LOGICAL: &[&str] = &["And", "Or", "Not", "Xor", "and"];

#[derive(Debug, Arbitrary)]
pub struct Input {
    caller: Caller,
    collection: Word,
    dialect: Dialect,
}

#[derive(Debug, Arbitrary)]
enum Dialect {
    /// `GET /collections/{c}/documents` (list), `…/query/documents/count` or `…/aggregate`.
    Cocobase {
        route: u8,
        params: Vec<Param>,
    },
    /// `GET /api/data/{c}`.
    UrBackend {
        params: Vec<Param>,
    },
    /// `POST /api/find/{c}`, the body as composed or as raw bytes.
    EkoDb(Box<FindBody>),
    EkoDbRaw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Param {
    Filter {
        field: Word,
        suffix: Word,
        value: Word,
    },
    Reserved {
        name: Word,
        value: Word,
    },
    /// Sent as is when it makes a valid URI (malformed escapes, stray `=` and `&`).
    Raw(String),
}

#[derive(Debug, Arbitrary)]
struct FindBody {
    filter: Option<Node>,
    sort: Vec<(Word, Option<bool>)>,
    limit: Option<i64>,
    skip: Option<i64>,
    select: Option<Vec<Word>>,
    exclude: Option<Vec<Word>>,
    extra: Option<(String, Piece)>,
}

#[derive(Debug, Arbitrary)]
enum Node {
    Condition {
        field: Word,
        operator: Word,
        value: Piece,
    },
    Logical {
        operator: Word,
        expressions: Vec<Node>,
    },
    /// Anything else where a node belongs.
    Odd(Piece),
}

impl Node {
    fn json(&self) -> Value {
        match self {
            Node::Condition {
                field,
                operator,
                value,
            } => json!({
                "type": "Condition",
                "content": {"field": field.pick(FIELDS), "operator": operator.pick(OPERATORS), "value": value.json(FIELDS, VALUES)},
            }),
            Node::Logical {
                operator,
                expressions,
            } => json!({
                "type": "Logical",
                "content": {
                    "operator": operator.pick(LOGICAL),
                    "expressions": expressions.iter().map(Node::json).collect::<Vec<_>>(),
                },
            }),
            Node::Odd(leaf) => leaf.json(FIELDS, VALUES),
        }
    }
}

impl FindBody {
    fn json(&self) -> Value {
        let mut body = json!({
            "filter": self.filter.as_ref().map(Node::json),
            "sort": self.sort.iter().map(|(field, ascending)| json!({"field": field.pick(FIELDS), "ascending": ascending})).collect::<Vec<_>>(),
            "limit": self.limit,
            "skip": self.skip,
            "select_fields": self.select.as_ref().map(|f| f.iter().map(|w| w.pick(FIELDS)).collect::<Vec<_>>()),
            "exclude_fields": self.exclude.as_ref().map(|f| f.iter().map(|w| w.pick(FIELDS)).collect::<Vec<_>>()),
        });
        if let Some((key, value)) = &self.extra {
            body[key.as_str()] = value.json(FIELDS, VALUES);
        }
        body
    }
}

fn query_string(params: &[Param]) -> String {
    let encode = |text: &str| utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
    params
        .iter()
        .map(|param| match param {
            Param::Filter {
                field,
                suffix,
                value,
            } => format!(
                "{}={}",
                encode(&(field.pick(FIELDS) + &suffix.pick(SUFFIXES))),
                encode(&value.pick(VALUES))
            ),
            Param::Reserved { name, value } => {
                format!(
                    "{}={}",
                    encode(&name.pick(PARAMS)),
                    encode(&value.pick(VALUES))
                )
            }
            Param::Raw(raw) => raw.clone(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    let Some(input) = super::decode::<Input>(data) else {
        return;
    };
    static SITE: OnceLock<Site> = OnceLock::new();
    let site = SITE.get_or_init(Site::new);
    let collection =
        utf8_percent_encode(&input.collection.pick(COLLECTIONS), NON_ALPHANUMERIC).to_string();
    let (method, uri, body, limit) = match &input.dialect {
        Dialect::Cocobase { route, params } => {
            let route = [
                "documents",
                "query/documents/count",
                "query/documents/aggregate",
            ][*route as usize % 3];
            let uri = format!("/collections/{collection}/{route}?{}", query_string(params));
            ("GET", uri, Vec::new(), None)
        }
        Dialect::UrBackend { params } => {
            let uri = format!("/api/data/{collection}?{}", query_string(params));
            ("GET", uri, Vec::new(), None)
        }
        Dialect::EkoDb(find) => {
            let body = find.json();
            let limit = body["limit"].as_u64();
            (
                "POST",
                format!("/api/find/{collection}"),
                body.to_string().into_bytes(),
                limit,
            )
        }
        Dialect::EkoDbRaw(bytes) => (
            "POST",
            format!("/api/find/{collection}"),
            bytes.clone(),
            None,
        ),
    };
    let request = Request::builder()
        .method(method)
        .uri(&uri)
        .header("content-type", "application/json")
        .body(Body::from(body.clone()));
    // A raw parameter that does not make a valid URI never reaches a server.
    let Ok(mut request) = request else {
        return;
    };
    site.authorize(input.caller, &mut request);
    let (status, answer) = site.send(request);
    let sent = [uri.as_bytes(), &body].concat();
    check_answer(input.caller, &sent, status, &answer);
    if status != StatusCode::OK {
        return;
    }
    let answer: Value = serde_json::from_slice(&answer).expect("a 200 answer is JSON");
    if let Dialect::EkoDb(_) | Dialect::EkoDbRaw(_) = input.dialect {
        let records = answer.as_array().expect("a find answers an array");
        if let Some(limit) = limit {
            assert!(
                records.len() as u64 <= limit,
                "{} records over a limit of {limit}",
                records.len()
            );
        }
    }
    if let (Caller::User, Some(count)) = (input.caller, answer.get("count").and_then(Value::as_u64))
        && uri.starts_with("/collections/notes/")
    {
        assert!(
            count <= OWN_NOTES,
            "the user counted {count} notes, owning {OWN_NOTES}"
        );
    }
}
