//! Document writes under field rules: inserts, RFC 7396 merge patches, replaces, deletes, reads
//! and filters by an administrator, two users and a scoped key, on a collection with an owner
//! field, hidden fields (one nested) and an index; the scoped key may write three fields only.
//!
//! Oracles, with fields compared as key paths (a key `"a.b"` is not the path `a` → `b`):
//! - no call panics, and no error is a storage or internal one;
//! - a failed write changes nothing;
//! - a successful patch leaves exactly the reference merge of the stored document and the patch;
//!   a replace leaves the body (plus, for non-administrators, the hidden and owner fields kept);
//!   an insert stores the body (with the user filled in as owner);
//! - a non-administrator's successful write never changes a hidden field or the owner, and the
//!   scoped key's never a field outside its writable list;
//! - a user never reads, changes or deletes a document owned by someone else;
//! - nothing returned to a non-administrator holds a hidden (or, for the key, excluded) field;
//! - every stored document reads back, and the file passes redb's integrity check.

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use larder::{
    Client, CollectionSpec, Doc, ErrorKind, Filter, Grant, KeyKind, NewApiKey, NewUser, Query,
    Rule, Rules,
};
use serde_json::{Map, Value, json};

use super::{Piece, Word};

const HIDDEN: &[&str] = &["secret", "meta.hidden"];
const WRITABLE: &[&str] = &["title", "n", "meta.note"];
const EXCLUDED: &str = "private";
const KEYS: &[&str] = &[
    "title",
    "n",
    "meta",
    "note",
    "hidden",
    "secret",
    "owner",
    "private",
    "id",
    "created_at",
    "updated_at",
    "tags",
    "title.x",
    "meta.note",
    "secret.x",
    "",
    "0",
];
const IDS: &[&str] = &["a1", "a2", "b1", "b2", "k1", "new", "bad id", ""];

#[derive(Debug, Arbitrary)]
pub struct Input {
    steps: Vec<(Who, Step)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Arbitrary)]
enum Who {
    Admin,
    First,
    Second,
    Scoped,
}

#[derive(Debug, Arbitrary)]
enum Step {
    Insert(Piece),
    Patch(Word, Piece),
    Replace(Word, Piece),
    Delete(Word),
    Get(Word),
    Find(Word, Piece),
}

struct Template {
    image: Vec<u8>,
    first: String,
    second: String,
    first_id: String,
    second_id: String,
    key: String,
}

fn template() -> Template {
    let (disk, db) = super::fresh_db();
    let rules = Rules {
        list: Rule::Owner,
        view: Rule::Owner,
        create: Rule::Authenticated,
        update: Rule::Owner,
        delete: Rule::Owner,
    };
    let mut spec = CollectionSpec::new()
        .index("n")
        .owner_field("owner")
        .rules(rules);
    for hidden in HIDDEN {
        spec = spec.hidden_field(*hidden);
    }
    db.collections().create("docs", spec).unwrap();
    let client = Client::unknown().server_trusted();
    let first = db
        .users()
        .signup(
            NewUser::new("a@example.com", "correct horse battery"),
            &client,
        )
        .unwrap();
    let second = db
        .users()
        .signup(
            NewUser::new("b@example.com", "staple grape volcano"),
            &client,
        )
        .unwrap();
    let docs = db.collection::<Value>("docs");
    for (id, owner) in [
        ("a1", &first),
        ("a2", &first),
        ("b1", &second),
        ("b2", &second),
    ] {
        docs.insert(&json!({
            "id": id, "owner": owner.user.id, "title": id, "n": 1,
            "secret": "s", "meta": {"hidden": "h", "note": "x"}, "private": "p", "title.x": "admin's",
        }))
        .unwrap();
    }
    docs.insert(&json!({"id": "k1", "title": "keyed", "private": "p"}))
        .unwrap();
    let grant = Grant {
        write: true,
        delete: true,
        exclude_fields: vec![EXCLUDED.into()],
        writable_fields: Some(WRITABLE.iter().map(|w| w.to_string()).collect()),
        ..Grant::read()
    };
    let key = db
        .keys()
        .create(NewApiKey::new(KeyKind::Scoped, "writer").grant("docs", grant))
        .unwrap()
        .secret;
    let image = super::image_of(disk, db);
    Template {
        image,
        first: first.access_token,
        second: second.access_token,
        first_id: first.user.id,
        second_id: second.user.id,
        key,
    }
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    let Some(input) = super::decode::<Input>(data) else {
        return;
    };
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    let t = TEMPLATE.get_or_init(template);
    let db = super::open_image(&t.image);
    let handle = |who: Who| -> larder::Collection {
        let actor = match who {
            Who::Admin => return db.collection("docs"),
            Who::First => db.as_user(&t.first),
            Who::Second => db.as_user(&t.second),
            Who::Scoped => db.with_key(&t.key),
        };
        actor.unwrap().collection("docs")
    };
    let admin = db.collection::<Value>("docs");
    for (who, step) in input.steps.iter().take(24) {
        let before = snapshot(&admin);
        let docs = handle(*who);
        let user_id = match who {
            Who::First => Some(t.first_id.as_str()),
            Who::Second => Some(t.second_id.as_str()),
            _ => None,
        };
        let (result, target): (larder::Result<Vec<Doc>>, Option<String>) = match step {
            Step::Insert(body) => {
                let body = body.json(KEYS, IDS);
                (docs.insert(&body).map(|d| vec![d]), None)
            }
            Step::Patch(id, patch) => {
                let id = id.pick(IDS);
                (
                    docs.patch(&id, &patch.json(KEYS, IDS)).map(|d| vec![d]),
                    Some(id),
                )
            }
            Step::Replace(id, body) => {
                let id = id.pick(IDS);
                (
                    docs.replace(&id, &body.json(KEYS, IDS)).map(|d| vec![d]),
                    Some(id),
                )
            }
            Step::Delete(id) => {
                let id = id.pick(IDS);
                (docs.delete(&id).map(|d| vec![d]), Some(id))
            }
            Step::Get(id) => {
                let id = id.pick(IDS);
                (docs.get(&id).map(|d| d.into_iter().collect()), Some(id))
            }
            Step::Find(path, value) => {
                let query = Query::new().filter(Filter::eq(path.pick(KEYS), value.json(KEYS, IDS)));
                (docs.find(&query), None)
            }
        };
        let after = snapshot(&admin);
        let is_write = !matches!(step, Step::Get(_) | Step::Find(..));
        let returned = match result {
            Err(error) => {
                assert!(
                    !matches!(
                        error.kind(),
                        ErrorKind::Storage { .. } | ErrorKind::Internal
                    ),
                    "{step:?} by {who:?}: {error:?}"
                );
                assert_eq!(
                    before, after,
                    "a failed {step:?} by {who:?} changed the collection"
                );
                continue;
            }
            Ok(returned) => returned,
        };
        if !is_write {
            assert_eq!(before, after, "a read changed the collection");
        }
        // Reads and writes alike: what a non-administrator gets back.
        if *who != Who::Admin {
            for doc in &returned {
                for hidden in unseen(*who) {
                    assert!(
                        get(&doc.data, hidden).is_none(),
                        "{who:?} was shown `{hidden}`: {doc:?}"
                    );
                }
                let stored = &after.get(&doc.id).or(before.get(&doc.id)).unwrap();
                if let Some(user) = user_id {
                    assert_eq!(
                        stored.get("owner"),
                        Some(&json!(user)),
                        "{who:?} reached another's document"
                    );
                }
            }
        }
        let Some(id) = target.filter(|_| is_write) else {
            if let Step::Insert(body) = step {
                check_insert(&body.json(KEYS, IDS), &returned[0], &after, user_id, *who);
            }
            continue;
        };
        let old = before
            .get(&id)
            .unwrap_or_else(|| panic!("{step:?} by {who:?} succeeded on a missing id"));
        match step {
            Step::Delete(_) => assert!(!after.contains_key(&id)),
            Step::Patch(_, patch) => {
                let mut expected = old.clone();
                merge(&mut expected, strip_managed(patch.json(KEYS, IDS)));
                assert_eq!(
                    &after[&id], &expected,
                    "patch {patch:?} by {who:?} on {old:?}"
                );
            }
            Step::Replace(_, body) => {
                let mut expected = strip_managed(body.json(KEYS, IDS));
                if *who != Who::Admin {
                    // What the caller cannot see, and the owner, are kept when left out.
                    for path in unseen(*who).chain(["owner"]) {
                        if get(&expected, path).is_none()
                            && let Some(kept) = get(old, path)
                        {
                            set(&mut expected, path, kept.clone());
                        }
                    }
                }
                assert_eq!(
                    &after[&id], &expected,
                    "replace {body:?} by {who:?} of {old:?}"
                );
            }
            _ => unreachable!(),
        }
        if let Some(new) = after.get(&id) {
            check_fields(old, new, *who);
        }
    }
    for id in snapshot(&admin).keys() {
        assert!(admin.get(id).unwrap().is_some());
    }
    drop(admin);
    assert!(db.check_integrity().unwrap());
}

fn check_insert(body: &Value, doc: &Doc, after: &Map<String, Value>, user: Option<&str>, who: Who) {
    let mut expected = strip_managed(body.clone()).as_object().unwrap().clone();
    let mut stored = after[&doc.id].as_object().unwrap().clone();
    if let Some(user) = user {
        assert_eq!(
            stored.remove("owner"),
            Some(json!(user)),
            "the owner is the inserting user"
        );
        expected.remove("owner");
    } else if who == Who::Scoped && expected.get("owner") == Some(&Value::Null) {
        // No user to fill in: a null owner is no owner.
        expected.remove("owner");
    }
    assert_eq!(stored, expected, "insert of {body:?} by {who:?}");
    if who != Who::Admin {
        check_fields(&json!({}), &after[&doc.id], who);
    }
}

/// The fields `who` can never see (nor write).
fn unseen(who: Who) -> impl Iterator<Item = &'static str> {
    let excluded = (who == Who::Scoped).then_some(EXCLUDED);
    HIDDEN.iter().copied().chain(excluded)
}

/// A non-administrator's write touched no hidden field, and the key's only writable ones.
fn check_fields(old: &Value, new: &Value, who: Who) {
    if who == Who::Admin {
        return;
    }
    let mut changed = Vec::new();
    diff(Some(old), Some(new), &mut Vec::new(), &mut changed);
    // Whether one path is the other or one of its ancestors.
    let prefix =
        |a: &[&str], b: &[&str]| a.len() <= b.len() && a.iter().zip(b).all(|(x, y)| x == y);
    for path in &changed {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        for hidden in unseen(who) {
            let hidden: Vec<&str> = hidden.split('.').collect();
            assert!(
                !prefix(&hidden, &path) && !prefix(&path, &hidden),
                "{who:?} changed the hidden {hidden:?} at {path:?}"
            );
        }
        if who == Who::Scoped {
            assert!(
                WRITABLE
                    .iter()
                    .any(|w| prefix(&w.split('.').collect::<Vec<_>>(), &path)),
                "the scoped key changed {path:?}, outside its writable fields"
            );
        }
    }
}

/// The key paths at which two values differ. Objects are compared key by key, a missing value
/// counting as an empty object beside an object (as a write that adds `{"a": {"b": 1}}` changes
/// `a` → `b`, not all of `a`).
fn diff(
    old: Option<&Value>,
    new: Option<&Value>,
    at: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) {
    if old == new {
        return;
    }
    fn object<'v>(
        value: Option<&'v Value>,
        empty: &'v Map<String, Value>,
    ) -> Option<&'v Map<String, Value>> {
        match value {
            None => Some(empty),
            Some(Value::Object(map)) => Some(map),
            Some(_) => None,
        }
    }
    let empty = Map::new();
    match (object(old, &empty), object(new, &empty)) {
        (Some(a), Some(b)) => {
            for key in a.keys().chain(b.keys()) {
                at.push(key.clone());
                diff(a.get(key), b.get(key), at, out);
                at.pop();
            }
        }
        _ => out.push(at.clone()),
    }
}

/// The collection as the administrator sees it: id → data.
fn snapshot(admin: &larder::Collection) -> Map<String, Value> {
    admin
        .find(&Query::new())
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.data))
        .collect()
}

/// A body without the server-managed fields (the write succeeded, so they matched or were null).
fn strip_managed(mut body: Value) -> Value {
    if let Some(map) = body.as_object_mut() {
        for field in ["id", "created_at", "updated_at"] {
            map.remove(field);
        }
    }
    body
}

/// RFC 7396, written from the RFC's pseudo-code.
fn merge(target: &mut Value, patch: Value) {
    let Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let map = target.as_object_mut().unwrap();
    for (key, value) in patch {
        if value.is_null() {
            map.remove(&key);
        } else {
            merge(map.entry(key).or_insert(Value::Null), value);
        }
    }
}

fn get<'v>(data: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .try_fold(data, |value, key| value.as_object()?.get(key))
}

/// Sets a path, creating missing parents; a parent that is not an object is left as it is.
fn set(data: &mut Value, path: &str, value: Value) {
    let segments: Vec<&str> = path.split('.').collect();
    let (last, parents) = segments.split_last().unwrap();
    let mut at = data;
    for key in parents {
        let Some(map) = at.as_object_mut() else {
            return;
        };
        at = map.entry(*key).or_insert_with(|| json!({}));
    }
    if let Some(map) = at.as_object_mut() {
        map.insert((*last).to_owned(), value);
    }
}
