//! THE authorization decision. [`authorize`] answers every "may this principal do this", for
//! the library and every HTTP dialect alike; it fails closed. What it allows comes back as a
//! [`Permit`], which also owns the field-level rules: projection of every output (hidden,
//! excluded and selected fields), the owner field on create and update, and writable fields.
//!
//! Denials, chosen once:
//! - an anonymous caller (or a publishable key) refused by a rule that a sign-in could satisfy:
//!   `Unauthenticated`;
//! - a known caller refused at collection level (role rule, admin rule, scoped key outside its
//!   grant): `Forbidden`;
//! - a document the caller may not read: `NotFound` (no existence oracle);
//! - a readable document the caller may not change: `Forbidden`.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::access::principal::{Kind, Principal};
use crate::access::rules::{Guard, Rule};
use crate::error::{Error, ErrorKind, Result};
use crate::identity::api_keys::{Grant, KeyKind};

/// What a caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// List, count or aggregate documents.
    List,
    /// Read one document.
    View,
    /// Create documents.
    Create,
    /// Replace or patch documents.
    Update,
    /// Delete documents.
    Delete,
    /// Create, change or delete collections.
    ManageCollections,
    /// Create, rotate, revoke API keys and change their grants.
    ManageKeys,
    /// List, change, disable and delete users.
    ManageUsers,
    /// Read and change settings.
    ManageSettings,
    /// Send mail through the project (server-side only).
    SendMail,
    /// Use urBackend's storage routes (server-side only: its SDK never sends a user's token
    /// with them, so a secret key acts there, or a scoped key within its bucket grants).
    ServerStorage,
}

impl Action {
    pub(crate) fn is_data(self) -> bool {
        matches!(
            self,
            Action::List | Action::View | Action::Create | Action::Update | Action::Delete
        )
    }
}

/// The answer of [`Db::explain`](crate::Db::explain): whether the action is allowed and the rule
/// that decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Whether the action is allowed.
    pub allowed: bool,
    /// The rule that decided, e.g. `owner (field owner_id)` or `scoped key grant: read`.
    pub rule: String,
    /// Why, in words (the error a refused call would give).
    pub reason: String,
}

/// What the decision is about.
pub(crate) enum Target<'a> {
    /// An administrative action.
    Admin,
    /// A collection as a whole (list, create).
    Collection { name: &'a str, spec: Guard<'a> },
    /// One existing document.
    Document {
        name: &'a str,
        spec: Guard<'a>,
        data: &'a Map<String, Value>,
    },
}

/// What an allowed action may touch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Permit {
    /// An administrator: no field rules at all.
    pub(crate) full: bool,
    /// For an owner rule: (owner field, caller's user id); lists are narrowed to it.
    pub(crate) owner_filter: Option<(String, String)>,
    /// Fields never shown to the caller, nor usable in its filters and sorts.
    pub(crate) hidden: Vec<String>,
    /// If set, only these fields are shown (and usable in filters).
    pub(crate) select: Option<Vec<String>>,
    /// If set, only these fields may be written.
    pub(crate) writable: Option<Vec<String>>,
    /// The collection's owner field.
    pub(crate) owner_field: Option<String>,
    /// The caller's user id, if a user.
    pub(crate) user_id: Option<String>,
    /// The rule that decided, for `explain`.
    pub(crate) rule: String,
}

/// The single authorization decision. Fails closed: anything not allowed by a rule is refused.
pub(crate) fn authorize(
    principal: &Principal,
    action: Action,
    target: &Target<'_>,
) -> Result<Permit> {
    if action == Action::ServerStorage
        && let Kind::Key(key) = &principal.0
        && key.kind == KeyKind::Scoped
    {
        // A scoped key reaches the server-side storage routes; its grant on each bucket
        // (`files/<bucket>`) then decides, as on every other door.
        return Ok(Permit {
            full: false,
            rule: "scoped key grant".into(),
            ..Permit::default()
        });
    }
    let (name, spec, document) = match target {
        Target::Admin => {
            return if action.is_data() {
                Err(Error::forbidden("not allowed"))
            } else {
                admin_only(principal).map(|()| Permit {
                    full: true,
                    rule: "administrators only".into(),
                    ..Permit::default()
                })
            };
        }
        Target::Collection { name, spec } => (*name, *spec, None),
        Target::Document { name, spec, data } => (*name, *spec, Some(*data)),
    };
    if !action.is_data() {
        return admin_only(principal).map(|()| Permit {
            full: true,
            rule: "administrators only".into(),
            ..Permit::default()
        });
    }
    match &principal.0 {
        Kind::System => Ok(full("the embedding program")),
        Kind::Key(key) => match key.kind {
            KeyKind::Secret => Ok(full("secret key")),
            KeyKind::Scoped => scoped(key.grants.get(name), name, action, spec),
            KeyKind::Publishable => by_rule(None, action, name, spec, document),
        },
        Kind::User(session) => by_rule(Some(session.user()), action, name, spec, document),
        Kind::Anonymous => by_rule(None, action, name, spec, document),
    }
}

fn full(rule: &str) -> Permit {
    Permit {
        full: true,
        rule: rule.into(),
        ..Permit::default()
    }
}

fn admin_only(principal: &Principal) -> Result<()> {
    match &principal.0 {
        _ if principal.is_admin() => Ok(()),
        Kind::Anonymous => Err(Error::unauthenticated(
            "an administrator's credential is required",
        )),
        _ => Err(Error::forbidden("only administrators may do this")),
    }
}

fn scoped(grant: Option<&Grant>, name: &str, action: Action, spec: Guard<'_>) -> Result<Permit> {
    let (needed, allowed) = match (action, grant) {
        (_, None) => ("any", false),
        (Action::List | Action::View, Some(g)) => ("read", g.read),
        (Action::Create | Action::Update, Some(g)) => ("write", g.write),
        (_, Some(g)) => ("delete", g.delete),
    };
    let rule = format!("scoped key grant: {needed}");
    let Some(grant) = grant.filter(|_| allowed) else {
        return Err(Error::forbidden(format!(
            "this key has no {needed} access to `{name}`"
        )));
    };
    let mut hidden = spec.hidden_fields.to_vec();
    hidden.extend(grant.exclude_fields.iter().cloned());
    Ok(Permit {
        full: false,
        owner_filter: None,
        hidden,
        select: grant.select_fields.clone(),
        writable: grant.writable_fields.clone(),
        owner_field: spec.owner_field.map(str::to_owned),
        user_id: None,
        rule,
    })
}

/// The rule of `spec` that governs a data action (`delete`'s for any other).
pub(crate) fn rule_for<'a>(spec: Guard<'a>, action: Action) -> &'a Rule {
    match action {
        Action::List => &spec.rules.list,
        Action::View => &spec.rules.view,
        Action::Create => &spec.rules.create,
        Action::Update => &spec.rules.update,
        _ => &spec.rules.delete,
    }
}

fn describe(rule: &Rule, spec: Guard<'_>) -> String {
    match rule {
        Rule::Public => "public".into(),
        Rule::Authenticated => "authenticated".into(),
        Rule::Owner => format!("owner (field {})", spec.owner_field.unwrap_or("<none>")),
        Rule::Roles(roles) => format!("roles [{}]", roles.join(", ")),
        Rule::Admin => "admin only".into(),
    }
}

/// Rules for users, publishable keys and anonymous callers.
fn by_rule(
    user: Option<&crate::identity::users::User>,
    action: Action,
    name: &str,
    spec: Guard<'_>,
    document: Option<&Map<String, Value>>,
) -> Result<Permit> {
    // To change or delete a document one must first be able to read it; a document one cannot
    // read does not exist for the caller.
    if let (Action::Update | Action::Delete, Some(data)) = (action, document) {
        by_rule(user, Action::View, name, spec, document).map_err(|e| match e.kind() {
            ErrorKind::Forbidden { .. } => Error::not_found("document"),
            _ => e,
        })?;
        let _ = data;
    }
    let rule = rule_for(spec, action);
    let mut permit = Permit {
        full: false,
        owner_filter: None,
        hidden: spec.hidden_fields.to_vec(),
        select: None,
        writable: None,
        owner_field: spec.owner_field.map(str::to_owned),
        user_id: user.map(|u| u.id.clone()),
        rule: describe(rule, spec),
    };
    let sign_in = || Error::unauthenticated("sign in to do this");
    match (rule, user) {
        (Rule::Public, _) => Ok(permit),
        (_, None) => Err(sign_in()),
        (Rule::Authenticated, Some(_)) => Ok(permit),
        (Rule::Roles(roles), Some(user)) => {
            if user.roles.iter().any(|r| roles.contains(r)) {
                Ok(permit)
            } else {
                Err(Error::forbidden(format!(
                    "your roles do not allow this on `{name}`"
                )))
            }
        }
        (Rule::Admin, Some(_)) => Err(Error::forbidden(format!(
            "only administrators may do this on `{name}`"
        ))),
        (Rule::Owner, Some(user)) => {
            let Some(field) = spec.owner_field.map(str::to_owned) else {
                return Err(Error::forbidden(format!(
                    "`{name}` has an owner rule but no owner field"
                )));
            };
            if let Some(data) = document {
                let owner = get_path(data, &field);
                if owner != Some(&Value::String(user.id.clone())) {
                    return Err(match action {
                        Action::View => Error::not_found("document"),
                        _ => Error::forbidden("only the document's owner may do this"),
                    });
                }
            }
            if action == Action::List {
                permit.owner_filter = Some((field, user.id.clone()));
            }
            Ok(permit)
        }
    }
}

impl Permit {
    /// The permit of an administrator.
    pub(crate) fn default_full() -> Self {
        full("administrator")
    }

    /// Whether a field path is invisible to the caller (hidden, excluded, or outside the
    /// selection).
    fn invisible(&self, path: &str) -> bool {
        if self.full {
            return false;
        }
        if self
            .hidden
            .iter()
            .any(|h| covers(h, path) || covers(path, h))
        {
            return true;
        }
        match &self.select {
            Some(select) => {
                !["id", "created_at", "updated_at"].contains(&path)
                    && !select.iter().any(|s| covers(s, path))
            }
            None => false,
        }
    }

    /// Refuses filters and sorts on fields the caller cannot see (they would be an oracle).
    pub(crate) fn check_query_paths<'p>(
        &self,
        paths: impl IntoIterator<Item = &'p str>,
    ) -> Result<()> {
        for path in paths {
            if self.invisible(path) {
                return Err(Error::invalid(format!(
                    "the field `{path}` cannot be used in queries"
                )));
            }
        }
        Ok(())
    }

    /// Whether [`Permit::project`] leaves every document as it is.
    pub(crate) fn projects_nothing(&self) -> bool {
        self.full || (self.hidden.is_empty() && self.select.is_none())
    }

    /// Removes what the caller may not see from a document's data.
    pub(crate) fn project(&self, data: &mut Map<String, Value>) {
        if self.full {
            return;
        }
        for hidden in &self.hidden {
            remove_path(data, hidden);
        }
        if let Some(select) = &self.select {
            let mut kept = Map::new();
            for path in select {
                if let Some(value) = get_path(data, path) {
                    set_path(&mut kept, path, value.clone());
                }
            }
            *data = kept;
        }
    }

    /// Checks and completes a new document: fills the owner field with the caller, refuses a
    /// different owner, and refuses fields the caller may not write.
    pub(crate) fn prepare_create(&self, data: &mut Map<String, Value>) -> Result<()> {
        if self.full {
            return Ok(());
        }
        if let Some(field) = &self.owner_field {
            match (get_path(data, field), &self.user_id) {
                (None | Some(Value::Null), Some(user)) => {
                    set_path(data, field, Value::String(user.clone()));
                }
                // No user to fill in (a key): a null owner is no owner, not a written field.
                (None | Some(Value::Null), None) => remove_path(data, field),
                (Some(Value::String(given)), Some(user)) if given == user => {}
                (Some(_), _) => {
                    return Err(Error::forbidden("the owner field must name the caller"));
                }
            }
        }
        self.check_changes(&Map::new(), data)
    }

    /// Checks and completes an update: on a replace, fields the caller cannot see and the owner
    /// field are kept from the stored document when left out (a replace cannot erase them);
    /// changing them, or any field outside the writable set, is refused.
    pub(crate) fn prepare_update(
        &self,
        old: &Map<String, Value>,
        new: &mut Map<String, Value>,
        replace: bool,
    ) -> Result<()> {
        if self.full {
            return Ok(());
        }
        if !replace {
            return self.check_changes(old, new);
        }
        let mut kept: Vec<&String> = self.hidden.iter().collect();
        kept.extend(&self.owner_field);
        for path in kept {
            // Only where the body leaves room: a body that puts a value where a kept field's
            // parent was would lose it, and is refused below as a change to that field.
            if get_path(new, path).is_none()
                && parents_are_objects(new, path)
                && let Some(value) = get_path(old, path)
            {
                set_path(new, path, value.clone());
            }
        }
        if let Some(select) = &self.select {
            // Fields outside the selection are invisible too: keep them as stored.
            for (key, value) in old {
                let path = [key.clone()];
                if !select
                    .iter()
                    .any(|s| rule_covers(s, &path) || within_rule(&path, s))
                    && !new.contains_key(key)
                {
                    new.insert(key.clone(), value.clone());
                }
            }
        }
        self.check_changes(old, new)
    }

    fn check_changes(&self, old: &Map<String, Value>, new: &Map<String, Value>) -> Result<()> {
        let mut changed = Vec::new();
        diff(old, new, &mut Vec::new(), &mut changed);
        for path in &changed {
            let dotted = path.join(".");
            if let Some(owner) = &self.owner_field
                && !old.is_empty()
                && (rule_covers(owner, path) || within_rule(path, owner))
            {
                return Err(Error::forbidden("the owner field cannot be changed"));
            }
            if self
                .hidden
                .iter()
                .any(|h| rule_covers(h, path) || within_rule(path, h))
            {
                return Err(Error::forbidden(format!(
                    "the field `{dotted}` cannot be written"
                )));
            }
            if let Some(writable) = &self.writable {
                let owner_fill = old.is_empty()
                    && self
                        .owner_field
                        .as_deref()
                        .is_some_and(|owner| owner.split('.').eq(path.iter().map(String::as_str)));
                if !owner_fill && !writable.iter().any(|w| rule_covers(w, path)) {
                    return Err(Error::forbidden(format!(
                        "the field `{dotted}` is not writable with this key"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Whether `prefix` is `path` or one of its ancestors (by dotted segments). For query paths,
/// which are dotted by definition.
fn covers(prefix: &str, path: &str) -> bool {
    path == prefix || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'.'))
}

/// Whether the dotted `rule` path is the key path `path` or one of its ancestors, key by key: a
/// key holding a dot (`"title.x"`) is one key, never the path `title` → `x`.
fn rule_covers(rule: &str, path: &[String]) -> bool {
    let mut keys = path.iter();
    rule.split('.')
        .all(|segment| keys.next().is_some_and(|key| key == segment))
}

/// Whether the key path `path` is the dotted `rule` path or one of its ancestors.
fn within_rule(path: &[String], rule: &str) -> bool {
    let mut segments = rule.split('.');
    path.iter().all(|key| segments.next() == Some(key.as_str()))
}

/// The key paths at which two objects differ (descending into objects on both sides; a missing
/// side counts as an empty object beside an object).
fn diff(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    at: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) {
    let empty = Map::new();
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        at.push(key.clone());
        match (old.get(key), new.get(key)) {
            (a, b) if a == b => {}
            (Some(Value::Object(a)), Some(Value::Object(b))) => diff(a, b, at, out),
            (None, Some(Value::Object(b))) => diff(&empty, b, at, out),
            (Some(Value::Object(a)), None) => diff(a, &empty, at, out),
            _ => out.push(at.clone()),
        }
        at.pop();
    }
}

pub(crate) fn get_path<'v>(data: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    let mut segments = path.split('.');
    let mut value = data.get(segments.next()?)?;
    for segment in segments {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

/// Whether every parent of `path` in `data` is an object or missing.
fn parents_are_objects(data: &Map<String, Value>, path: &str) -> bool {
    let mut level = data;
    let mut segments = path.split('.').peekable();
    while let Some(segment) = segments.next() {
        if segments.peek().is_none() {
            break;
        }
        match level.get(segment) {
            None => return true,
            Some(Value::Object(inner)) => level = inner,
            Some(_) => return false,
        }
    }
    true
}

/// Sets `path` (dotted for nested fields) to `value`, making the objects on the way.
pub(crate) fn set_path(data: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            data.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry = data
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(inner) = entry {
                set_path(inner, rest, value);
            }
        }
    }
}

fn remove_path(data: &mut Map<String, Value>, path: &str) {
    match path.split_once('.') {
        None => {
            data.remove(path);
        }
        Some((head, rest)) => {
            if let Some(Value::Object(inner)) = data.get_mut(head) {
                remove_path(inner, rest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn diff_reports_leaf_paths() {
        let mut out = Vec::new();
        diff(
            &map(json!({"a": 1, "b": {"c": 1, "d": 2}, "e": [1]})),
            &map(json!({"a": 1, "b": {"c": 2, "d": 2, "f": {"g": 1}}, "e": [2]})),
            &mut Vec::new(),
            &mut out,
        );
        assert_eq!(out, [vec!["b", "c"], vec!["b", "f", "g"], vec!["e"]]);
    }

    #[test]
    fn write_rules_compare_key_by_key() {
        let path = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        assert!(rule_covers("a", &path(&["a", "b"])));
        assert!(rule_covers("a.b", &path(&["a", "b"])));
        assert!(!rule_covers("a.b", &path(&["a"])));
        // A key with a dot in it is not the nested path.
        assert!(!rule_covers("title", &path(&["title.x"])));
        assert!(!rule_covers("a.b", &path(&["a.b"])));
        assert!(within_rule(&path(&["a"]), "a.b"));
        assert!(!within_rule(&path(&["a.b"]), "a.b"));
    }

    #[test]
    fn a_key_with_a_dot_is_not_a_writable_field() {
        let permit = Permit {
            writable: Some(vec!["title".into()]),
            ..Permit::default()
        };
        let old = map(json!({"title": "t", "title.admin": "kept"}));
        let mut new = map(json!({"title": "t", "title.admin": "changed"}));
        assert!(permit.prepare_update(&old, &mut new, false).is_err());
        let mut new = map(json!({"title": {"x": 1}, "title.admin": "kept"}));
        assert!(permit.prepare_update(&old, &mut new, false).is_ok());
    }

    #[test]
    fn a_replace_cannot_drop_a_hidden_field_by_overwriting_its_parent() {
        let permit = Permit {
            hidden: vec!["meta.hidden".into()],
            ..Permit::default()
        };
        let old = map(json!({"meta": {"hidden": "h", "note": 1}}));
        let mut new = map(json!({"meta": 5}));
        assert!(permit.prepare_update(&old, &mut new, true).is_err());
        let mut new = map(json!({"meta": {"note": 2}}));
        permit.prepare_update(&old, &mut new, true).unwrap();
        assert_eq!(
            Value::Object(new),
            json!({"meta": {"hidden": "h", "note": 2}})
        );
    }

    #[test]
    fn covers_is_by_segment() {
        assert!(covers("a", "a"));
        assert!(covers("a", "a.b"));
        assert!(!covers("a", "ab"));
        assert!(!covers("a.b", "a"));
    }

    #[test]
    fn projection_removes_hidden_and_keeps_selected() {
        let permit = Permit {
            hidden: vec!["secret".into(), "meta.internal".into()],
            select: Some(vec!["title".into(), "meta".into(), "secret".into()]),
            ..Permit::default()
        };
        let mut data = map(
            json!({"title": "t", "body": "b", "secret": 1, "meta": {"internal": 1, "tag": "x"}}),
        );
        permit.project(&mut data);
        assert_eq!(
            Value::Object(data),
            json!({"title": "t", "meta": {"tag": "x"}})
        );
    }
}
