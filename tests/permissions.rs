//! The authorization matrix, through the public API: every principal kind × action × rule ×
//! owned / not owned, checked against the documented decision table, and every refused
//! operation proven to have changed nothing. Then field-level rules: owner fill and spoofing,
//! hidden fields, and scoped keys' select / exclude / writable fields.

mod common;

use common::memory_db;
use larder::{
    Action, Client, Collection, CollectionSpec, Db, ErrorKind, Filter, Grant, KeyKind, NewApiKey,
    NewUser, Query, Rule, Rules,
};
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough passphrase";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    System,
    SecretKey,
    PublishableKey,
    ScopedRead,
    ScopedWrite,
    ScopedAll,
    ScopedNone,
    Owner,
    OtherUser,
    Editor,
    Anonymous,
}

const EVERYONE: [Who; 11] = [
    Who::System,
    Who::SecretKey,
    Who::PublishableKey,
    Who::ScopedRead,
    Who::ScopedWrite,
    Who::ScopedAll,
    Who::ScopedNone,
    Who::Owner,
    Who::OtherUser,
    Who::Editor,
    Who::Anonymous,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Unauthenticated,
    Forbidden,
    NotFound,
}

fn outcome<T>(result: &larder::Result<T>) -> Outcome {
    match result {
        Ok(_) => Outcome::Allowed,
        Err(e) => match e.kind() {
            ErrorKind::Unauthenticated { .. } => Outcome::Unauthenticated,
            ErrorKind::Forbidden { .. } => Outcome::Forbidden,
            ErrorKind::NotFound { .. } => Outcome::NotFound,
            other => panic!("unexpected error {other:?}"),
        },
    }
}

/// The documented decision table, written independently of the implementation.
fn expected(who: Who, rule: &Rule, action: Action, view_rule: &Rule, owned: bool) -> Outcome {
    use Outcome::*;
    let scoped = |read: bool, write: bool, delete: bool| match action {
        Action::List | Action::View => {
            if read {
                Allowed
            } else {
                Forbidden
            }
        }
        Action::Create | Action::Update => {
            if write {
                Allowed
            } else {
                Forbidden
            }
        }
        _ => {
            if delete {
                Allowed
            } else {
                Forbidden
            }
        }
    };
    let user_rule = |rule: &Rule,
                     is_user: bool,
                     roles_ok: bool,
                     is_owner: bool,
                     on_document: bool| match rule {
        Rule::Public => Allowed,
        _ if !is_user => Unauthenticated,
        Rule::Authenticated => Allowed,
        Rule::Roles(_) => {
            if roles_ok {
                Allowed
            } else {
                Forbidden
            }
        }
        Rule::Admin => Forbidden,
        Rule::Owner => {
            if !on_document || is_owner {
                Allowed
            } else {
                Forbidden
            }
        }
    };
    let (is_user, roles_ok, is_owner) = match who {
        Who::System | Who::SecretKey => return Allowed,
        Who::ScopedRead => return scoped(true, false, false),
        Who::ScopedWrite => return scoped(true, true, false),
        Who::ScopedAll => return scoped(true, true, true),
        Who::ScopedNone => return Forbidden,
        Who::PublishableKey | Who::Anonymous => (false, false, false),
        Who::Owner => (true, false, owned),
        Who::OtherUser => (true, false, false),
        Who::Editor => (true, true, false),
    };
    match action {
        Action::List | Action::Create => user_rule(rule, is_user, roles_ok, is_owner, false),
        Action::View => match user_rule(rule, is_user, roles_ok, is_owner, true) {
            Forbidden if matches!(rule, Rule::Owner) => NotFound,
            other => other,
        },
        _ => {
            // The action's rule at collection level first (no document involved, so no
            // existence oracle); then the document must be readable (unreadable means not
            // found); then the action's rule on the document.
            let collection_level = user_rule(rule, is_user, roles_ok, is_owner, false);
            if collection_level != Allowed {
                return collection_level;
            }
            match user_rule(view_rule, is_user, roles_ok, is_owner, true) {
                Allowed => user_rule(rule, is_user, roles_ok, is_owner, true),
                Unauthenticated => Unauthenticated,
                _ => NotFound,
            }
        }
    }
}

struct World {
    db: Db,
    owner_id: String,
    tokens: Vec<(Who, String)>,
    keys: Vec<(Who, String)>,
}

fn world(rules: Rules) -> World {
    let (db, _) = memory_db();
    db.project()
        .update_settings(&json!({"ALLOWED_SELF_ROLES": "editor"}))
        .unwrap();
    db.collections()
        .create(
            "items",
            CollectionSpec::new().rules(rules).owner_field("owner"),
        )
        .unwrap();
    let signup = |email: &str, role: Option<&str>| {
        let mut new = NewUser::new(email, PASSWORD);
        if let Some(role) = role {
            new = new.role(role);
        }
        db.users().signup(new, &Client::unknown()).unwrap()
    };
    let owner = signup("owner@example.com", None);
    let other = signup("other@example.com", None);
    let editor = signup("editor@example.com", Some("editor"));
    let key = |kind, grant: Option<Grant>| {
        let mut new = NewApiKey::new(kind, "k");
        if let Some(grant) = grant {
            new = new.grant("items", grant);
        }
        db.keys().create(new).unwrap().secret
    };
    let keys = vec![
        (Who::SecretKey, key(KeyKind::Secret, None)),
        (Who::PublishableKey, key(KeyKind::Publishable, None)),
        (Who::ScopedRead, key(KeyKind::Scoped, Some(Grant::read()))),
        (
            Who::ScopedWrite,
            key(
                KeyKind::Scoped,
                Some(Grant {
                    read: true,
                    write: true,
                    ..Grant::default()
                }),
            ),
        ),
        (Who::ScopedAll, key(KeyKind::Scoped, Some(Grant::all()))),
        (Who::ScopedNone, key(KeyKind::Scoped, None)),
    ];
    World {
        owner_id: owner.user.id.clone(),
        tokens: vec![
            (Who::Owner, owner.access_token),
            (Who::OtherUser, other.access_token),
            (Who::Editor, editor.access_token),
        ],
        keys,
        db,
    }
}

impl World {
    fn items(&self, who: Who) -> Collection {
        self.collection(who, "items")
    }

    fn collection(&self, who: Who, name: &str) -> Collection {
        match who {
            Who::System => self.db.collection(name),
            Who::Anonymous => self.db.anonymous().collection(name),
            _ => {
                if let Some((_, token)) = self.tokens.iter().find(|(w, _)| *w == who) {
                    return self.db.as_user(token).unwrap().collection(name);
                }
                let (_, secret) = self.keys.iter().find(|(w, _)| *w == who).unwrap();
                self.db.with_key(secret).unwrap().collection(name)
            }
        }
    }

    fn snapshot(&self) -> Vec<larder::Doc> {
        self.db
            .collection::<Value>("items")
            .find(&Query::new())
            .unwrap()
    }

    fn seed(&self, owned_by_owner: bool) -> String {
        let owner = if owned_by_owner {
            json!(self.owner_id)
        } else {
            json!("someone-else")
        };
        self.db
            .collection::<Value>("items")
            .insert(&json!({"n": 1, "owner": owner}))
            .unwrap()
            .id
    }
}

fn rules_with(rule: &Rule, view: &Rule) -> Rules {
    Rules {
        list: rule.clone(),
        view: view.clone(),
        create: rule.clone(),
        update: rule.clone(),
        delete: rule.clone(),
    }
}

#[test]
fn the_whole_matrix() {
    let all_rules = [
        Rule::Public,
        Rule::Authenticated,
        Rule::Owner,
        Rule::Roles(vec!["editor".into()]),
        Rule::Admin,
    ];
    let mut cells = 0;
    for rule in &all_rules {
        // The view rule matters for update and delete; try it equal to the rule and public.
        for view in [rule.clone(), Rule::Public] {
            let w = world(rules_with(rule, &view));
            for who in EVERYONE {
                for owned in [true, false] {
                    let id = w.seed(owned);
                    let items = w.items(who);
                    for action in [
                        Action::List,
                        Action::View,
                        Action::Create,
                        Action::Update,
                        Action::Delete,
                    ] {
                        let before = w.snapshot();
                        let expect = expected(
                            who,
                            rule_for(&rules_with(rule, &view), action),
                            action,
                            &view,
                            owned,
                        );
                        let got = match action {
                            Action::List => outcome(&items.find(&Query::new())),
                            Action::View => match items.get(&id) {
                                Ok(None) => Outcome::NotFound,
                                other => outcome(&other),
                            },
                            Action::Create => outcome(&items.insert(&json!({"n": 2}))),
                            Action::Update => outcome(&items.patch(&id, &json!({"n": 3}))),
                            _ => outcome(&items.delete(&id)),
                        };
                        let context =
                            format!("{who:?} {action:?} rule={rule:?} view={view:?} owned={owned}");
                        assert_eq!(got, expect, "{context}");
                        cells += 1;
                        if got != Outcome::Allowed {
                            assert_eq!(
                                w.snapshot(),
                                before,
                                "a refused call changed something: {context}"
                            );
                        }
                        if got == Outcome::Allowed
                            && matches!(action, Action::Create | Action::Delete)
                        {
                            // Put the world back as it was for the next action.
                            let system = w.db.collection::<Value>("items");
                            for doc in system.find(&Query::new()).unwrap() {
                                system.delete(&doc.id).unwrap();
                            }
                            let restored = system
                                .insert(&json!({"id": id, "n": 1, "owner": if owned { json!(w.owner_id) } else { json!("someone-else") }}))
                                .unwrap();
                            assert_eq!(restored.id, id);
                        }
                    }
                    w.db.collection::<Value>("items").delete(&id).unwrap();
                }
            }
            // explain agrees with what the calls did, for one principal per kind.
            let principal = w.db.as_user(&w.tokens[0].1).unwrap().principal().clone();
            let decision =
                w.db.explain(&principal, Action::List, "items", None)
                    .unwrap();
            assert_eq!(
                decision.allowed,
                expected(Who::Owner, rule, Action::List, &view, true) == Outcome::Allowed
            );
        }
    }
    assert!(cells >= 1000, "{cells} cells");
}

fn rule_for(rules: &Rules, action: Action) -> &Rule {
    match action {
        Action::List => &rules.list,
        Action::View => &rules.view,
        Action::Create => &rules.create,
        Action::Update => &rules.update,
        _ => &rules.delete,
    }
}

#[test]
fn owner_lists_are_narrowed_to_the_caller() {
    let w = world(rules_with(&Rule::Owner, &Rule::Owner));
    let owner = w.items(Who::Owner);
    let other = w.items(Who::OtherUser);
    owner.insert(&json!({"n": 1})).unwrap();
    owner.insert(&json!({"n": 2})).unwrap();
    other.insert(&json!({"n": 3})).unwrap();
    assert_eq!(owner.count(&Filter::All).unwrap(), 2);
    assert_eq!(other.count(&Filter::All).unwrap(), 1);
    // A filter naming the victim cannot widen the view.
    assert_eq!(
        other
            .count(&Filter::eq("owner", w.owner_id.as_str()))
            .unwrap(),
        0
    );
    let or = Filter::eq("owner", w.owner_id.as_str()).or(Filter::All);
    assert_eq!(other.find(&Query::new().filter(or)).unwrap().len(), 1);
    assert_eq!(
        other
            .aggregate(&larder::Aggregate::Sum("n".into()), &Filter::All)
            .unwrap(),
        json!(3)
    );
}

#[test]
fn the_owner_field_is_filled_and_cannot_be_spoofed_or_changed() {
    let w = world(rules_with(&Rule::Authenticated, &Rule::Authenticated));
    let owner = w.items(Who::Owner);
    let created = owner.insert(&json!({"n": 1})).unwrap();
    assert_eq!(created.data["owner"], json!(w.owner_id));
    let before = w.snapshot();
    let spoof = owner
        .insert(&json!({"n": 1, "owner": "someone-else"}))
        .unwrap_err();
    assert!(matches!(spoof.kind(), ErrorKind::Forbidden { .. }));
    let change = owner
        .patch(&created.id, &json!({"owner": "someone-else"}))
        .unwrap_err();
    assert!(matches!(change.kind(), ErrorKind::Forbidden { .. }));
    let erase = owner
        .patch(&created.id, &json!({"owner": null}))
        .unwrap_err();
    assert!(matches!(erase.kind(), ErrorKind::Forbidden { .. }));
    assert_eq!(w.snapshot(), before);
    // A replace that leaves the owner out keeps it.
    let replaced = owner.replace(&created.id, &json!({"n": 5})).unwrap();
    assert_eq!(replaced.data["owner"], json!(w.owner_id));
    // Administrators may set any owner.
    let admin = w.items(Who::SecretKey);
    admin.insert(&json!({"owner": "someone-else"})).unwrap();
    admin
        .patch(&created.id, &json!({"owner": "someone-else"}))
        .unwrap();
}

#[test]
fn hidden_fields_are_never_shown_filtered_or_written_by_non_admins() {
    let (db, _) = memory_db();
    let rules = rules_with(&Rule::Public, &Rule::Public);
    db.collections()
        .create(
            "items",
            CollectionSpec::new()
                .rules(rules)
                .hidden_field("secret")
                .hidden_field("meta.internal"),
        )
        .unwrap();
    let system = db.collection::<Value>("items");
    let doc = system
        .insert(&json!({"title": "t", "secret": "s3cr3t", "meta": {"internal": 1, "tag": "x"}}))
        .unwrap();
    let public = db.anonymous().collection::<Value>("items");
    let seen = public.get(&doc.id).unwrap().unwrap();
    assert_eq!(seen.data, json!({"title": "t", "meta": {"tag": "x"}}));
    let listed = public.find(&Query::new()).unwrap();
    assert_eq!(listed[0].data, seen.data);
    for bad in [
        Query::new().filter(Filter::eq("secret", "s3cr3t")),
        Query::new().filter(Filter::eq("meta.internal", 1)),
        Query::new().sort_asc("secret"),
    ] {
        assert!(matches!(
            public.find(&bad).unwrap_err().kind(),
            ErrorKind::InvalidInput { .. }
        ));
    }
    assert!(public.count(&Filter::starts_with("secret", "s")).is_err());
    let before = system.find(&Query::new()).unwrap();
    assert!(matches!(
        public
            .patch(&doc.id, &json!({"secret": "x"}))
            .unwrap_err()
            .kind(),
        ErrorKind::Forbidden { .. }
    ));
    assert!(public.insert(&json!({"secret": "x"})).is_err());
    assert_eq!(system.find(&Query::new()).unwrap(), before);
    // A replace cannot erase what the caller cannot see.
    let replaced = public.replace(&doc.id, &json!({"title": "new"})).unwrap();
    assert_eq!(
        replaced.data,
        json!({"title": "new", "meta": {}}),
        "the echo is projected too; the hidden meta.internal was kept under meta"
    );
    let stored = system.get(&doc.id).unwrap().unwrap();
    assert_eq!(stored.data["secret"], "s3cr3t");
    assert_eq!(stored.data["meta"]["internal"], 1);
}

#[test]
fn scoped_keys_see_and_write_only_their_fields() {
    let (db, _) = memory_db();
    db.collections()
        .create("orders", CollectionSpec::new())
        .unwrap();
    let system = db.collection::<Value>("orders");
    let doc = system
        .insert(&json!({"item": "book", "price": 10, "card": "4111", "notes": {"a": 1, "b": 2}}))
        .unwrap();
    let grant = Grant {
        read: true,
        write: true,
        delete: false,
        select_fields: Some(vec![
            "item".into(),
            "price".into(),
            "notes".into(),
            "card".into(),
        ]),
        exclude_fields: vec!["card".into()],
        writable_fields: Some(vec!["price".into(), "notes.a".into()]),
    };
    let key = db
        .keys()
        .create(NewApiKey::new(KeyKind::Scoped, "shop").grant("orders", grant))
        .unwrap();
    let orders = db
        .with_key(&key.secret)
        .unwrap()
        .collection::<Value>("orders");
    let seen = orders.get(&doc.id).unwrap().unwrap();
    assert_eq!(
        seen.data,
        json!({"item": "book", "price": 10, "notes": {"a": 1, "b": 2}})
    );
    assert!(
        orders
            .find(&Query::new().filter(Filter::eq("card", "4111")))
            .is_err()
    );

    let before = system.find(&Query::new()).unwrap();
    for refused in [
        json!({"item": "car"}),
        json!({"price": 5, "item": "car"}),
        json!({"notes": {"b": 3}}),
        json!({"notes": null}),
        json!({"card": "0000"}),
        json!({"$set": {"item": "x"}}),
        json!({"Price": 1}),
    ] {
        let error = orders.patch(&doc.id, &refused).unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::Forbidden { .. }),
            "{refused}"
        );
    }
    // A replace that changes or erases a protected field is refused too.
    assert!(
        orders
            .replace(
                &doc.id,
                &json!({"item": "car", "price": 1, "notes": {"a": 1, "b": 2}})
            )
            .is_err()
    );
    assert!(
        orders
            .replace(&doc.id, &json!({"price": 1, "notes": {"a": 1, "b": 2}}))
            .is_err()
    );
    assert!(orders.insert(&json!({"item": "pen"})).is_err());
    assert!(orders.delete(&doc.id).is_err());
    assert_eq!(system.find(&Query::new()).unwrap(), before);

    let patched = orders
        .patch(&doc.id, &json!({"price": 12, "notes": {"a": 5}}))
        .unwrap();
    assert_eq!(
        patched.data,
        json!({"item": "book", "price": 12, "notes": {"a": 5, "b": 2}}),
        "the echo is projected"
    );
    assert_eq!(system.get(&doc.id).unwrap().unwrap().data["card"], "4111");
    let created = orders.insert(&json!({"price": 3})).unwrap();
    assert_eq!(created.data, json!({"price": 3}));
    // Other collections are out of reach.
    db.collections()
        .create("other", CollectionSpec::new())
        .unwrap();
    let other = db
        .with_key(&key.secret)
        .unwrap()
        .collection::<Value>("other");
    assert!(matches!(
        other.find(&Query::new()).unwrap_err().kind(),
        ErrorKind::Forbidden { .. }
    ));
}

#[test]
fn grant_changes_apply_to_the_next_request() {
    let (db, _) = memory_db();
    db.collections()
        .create("orders", CollectionSpec::new())
        .unwrap();
    let key = db
        .keys()
        .create(NewApiKey::new(KeyKind::Scoped, "shop").grant("orders", Grant::read()))
        .unwrap();
    let orders = db
        .with_key(&key.secret)
        .unwrap()
        .collection::<Value>("orders");
    assert!(orders.insert(&json!({})).is_err());
    db.keys()
        .put_grant(&key.info.id, "orders", Some(Grant::all()))
        .unwrap();
    let orders = db
        .with_key(&key.secret)
        .unwrap()
        .collection::<Value>("orders");
    orders.insert(&json!({})).unwrap();
}

#[test]
fn explain_names_the_deciding_rule() {
    let w = world(rules_with(&Rule::Owner, &Rule::Owner));
    let id = w.seed(true);
    let owner = w.db.as_user(&w.tokens[0].1).unwrap().principal().clone();
    let other = w.db.as_user(&w.tokens[1].1).unwrap().principal().clone();
    let yes =
        w.db.explain(&owner, Action::View, "items", Some(&id))
            .unwrap();
    assert!(yes.allowed);
    assert_eq!(yes.rule, "owner (field owner)");
    let no =
        w.db.explain(&other, Action::View, "items", Some(&id))
            .unwrap();
    assert!(!no.allowed);
    let anonymous = w.db.anonymous().principal().clone();
    let admin_only =
        w.db.explain(&anonymous, Action::ManageKeys, "items", None)
            .unwrap();
    assert!(!admin_only.allowed);
}

#[test]
fn the_users_table_is_never_reachable_through_documents() {
    let w = world(rules_with(&Rule::Public, &Rule::Public));
    for who in EVERYONE {
        for name in ["users", "Users", "users/", "users\0", "%75sers", "_users"] {
            let users = w.collection(who, name);
            let refused = |e: larder::Error| {
                matches!(
                    e.kind(),
                    ErrorKind::InvalidInput { .. } | ErrorKind::NotFound { .. }
                )
            };
            assert!(
                refused(users.find(&Query::new()).unwrap_err()),
                "{who:?} {name:?}"
            );
            assert!(
                refused(users.insert(&json!({"email": "x"})).unwrap_err()),
                "{who:?} {name:?}"
            );
            assert!(
                refused(users.get("anything").unwrap_err()),
                "{who:?} {name:?}"
            );
        }
        assert!(
            w.db.collections()
                .create("users", CollectionSpec::new())
                .is_err()
        );
    }
    assert_eq!(
        w.db.users().list().unwrap().len(),
        3,
        "no user was created or touched"
    );
}

/// Rules are cached between reads: a change, a deletion and a re-creation under the same name
/// must each take effect for the very next read, on every handle already made.
#[test]
fn a_rule_change_applies_to_the_next_read_of_handles_already_made() {
    let (db, _) = memory_db();
    let public = Rules {
        list: Rule::Public,
        view: Rule::Public,
        create: Rule::Admin,
        update: Rule::Admin,
        delete: Rule::Admin,
    };
    db.collections()
        .create("posts", CollectionSpec::new().rules(public.clone()))
        .unwrap();
    let id = db
        .collection::<Value>("posts")
        .insert(&json!({"title": "hello", "secret": "s"}))
        .unwrap()
        .id;
    let anonymous: Collection = db.anonymous().collection("posts");
    assert!(anonymous.get(&id).unwrap().is_some());
    assert_eq!(anonymous.find(&Query::new()).unwrap().len(), 1);

    let admin_only = Rules {
        view: Rule::Admin,
        list: Rule::Admin,
        ..public.clone()
    };
    db.collections()
        .update("posts", CollectionSpec::new().rules(admin_only))
        .unwrap();
    assert!(matches!(
        anonymous.get(&id).unwrap_err().kind(),
        ErrorKind::Forbidden { .. } | ErrorKind::Unauthenticated { .. }
    ));
    assert!(anonymous.find(&Query::new()).is_err());

    db.collections()
        .update(
            "posts",
            CollectionSpec::new()
                .rules(public.clone())
                .hidden_field("secret"),
        )
        .unwrap();
    let doc = anonymous.get(&id).unwrap().unwrap();
    assert!(doc.data.get("secret").is_none(), "{:?}", doc.data);

    db.collections().delete("posts").unwrap();
    assert!(matches!(
        anonymous.get(&id).unwrap_err().kind(),
        ErrorKind::NotFound { .. }
    ));
    db.collections()
        .create("posts", CollectionSpec::new().rules(public))
        .unwrap();
    assert!(
        anonymous.get(&id).unwrap().is_none(),
        "a new, empty collection"
    );
}

#[test]
fn an_actor_loses_its_rights_the_moment_its_credential_does() {
    let db = larder::Db::in_memory().unwrap();
    let signed_in = larder::Rules {
        list: larder::Rule::Authenticated,
        view: larder::Rule::Authenticated,
        create: larder::Rule::Authenticated,
        update: larder::Rule::Authenticated,
        delete: larder::Rule::Authenticated,
    };
    db.collections()
        .create("notes", larder::CollectionSpec::new().rules(signed_in))
        .unwrap();
    fn unauthenticated<T: std::fmt::Debug>(result: larder::Result<T>) -> bool {
        matches!(common::kind(result), ErrorKind::Unauthenticated { .. })
    }

    // A user's handle: logging out, or an administrator disabling the account, ends it.
    for end in ["logout", "disable"] {
        let email = format!("{end}@example.com");
        let ada = db
            .users()
            .signup(NewUser::new(email, "analytical engine"), &Client::unknown())
            .unwrap();
        let actor = db.as_user(&ada.access_token).unwrap();
        let notes = actor.collection::<serde_json::Value>("notes");
        notes.insert(&serde_json::json!({"by": end})).unwrap();
        match end {
            "logout" => {
                let session = db.sessions().authenticate(&ada.access_token).unwrap();
                db.sessions().logout(&session).unwrap();
            }
            _ => {
                db.users().disable(&ada.user.id).unwrap();
            }
        }
        assert!(
            unauthenticated(notes.insert(&serde_json::json!({"late": true}))),
            "{end}"
        );
        assert!(unauthenticated(notes.find(&larder::Query::new())), "{end}");
    }

    // A key's handle: revoking the key ends it, for data and administration alike.
    let key = db
        .keys()
        .create(NewApiKey::new(KeyKind::Scoped, "k").grant("notes", Grant::all()))
        .unwrap();
    let admin = db
        .keys()
        .create(NewApiKey::new(KeyKind::Secret, "ops"))
        .unwrap();
    db.buckets()
        .create("docs", larder::BucketSpec::new())
        .unwrap();
    let scoped = db.with_key(&key.secret).unwrap();
    let operator = db.with_key(&admin.secret).unwrap();
    assert!(operator.bucket("docs").list().is_ok());
    scoped
        .collection::<serde_json::Value>("notes")
        .insert(&serde_json::json!({"k": 1}))
        .unwrap();
    assert!(operator.keys().is_ok());
    db.keys().revoke(&key.info.id).unwrap();
    db.keys().revoke(&admin.info.id).unwrap();
    assert!(unauthenticated(
        scoped
            .collection::<serde_json::Value>("notes")
            .insert(&serde_json::json!({"k": 2}))
    ));
    assert!(unauthenticated(operator.keys().map(|_| ())));
    assert!(unauthenticated(operator.bucket("docs").list()));
    let stored = db
        .collection::<serde_json::Value>("notes")
        .count(&larder::Filter::All)
        .unwrap();
    assert_eq!(stored, 3, "nothing was written after a credential ended");
}

#[test]
fn the_rule_presets_mean_what_they_say() {
    let (db, _) = memory_db();
    db.collections()
        .create(
            "posts",
            CollectionSpec::new()
                .rules(Rules::public_read_owner_write())
                .owner_field("author"),
        )
        .unwrap();
    db.collections()
        .create(
            "diary",
            CollectionSpec::new()
                .rules(Rules::owner_only())
                .owner_field("owner"),
        )
        .unwrap();
    let sign_up = |email: &str| {
        let signed = db
            .users()
            .signup(NewUser::new(email, "analytical engine"), &Client::unknown())
            .unwrap();
        db.as_user(&signed.access_token).unwrap()
    };
    let (ada, bob) = (sign_up("ada@example.com"), sign_up("bob@example.com"));
    let post = ada
        .collection::<Value>("posts")
        .insert(&json!({"t": "hi"}))
        .unwrap();
    let entry = ada
        .collection::<Value>("diary")
        .insert(&json!({"t": "mine"}))
        .unwrap();
    // Public read, owner write.
    assert!(
        db.anonymous()
            .collection::<Value>("posts")
            .get(&post.id)
            .unwrap()
            .is_some()
    );
    assert!(
        bob.collection::<Value>("posts")
            .patch(&post.id, &json!({"t": "x"}))
            .is_err()
    );
    assert!(
        ada.collection::<Value>("posts")
            .patch(&post.id, &json!({"t": "y"}))
            .is_ok()
    );
    // Owner only: another user does not even see it.
    assert!(
        bob.collection::<Value>("diary")
            .get(&entry.id)
            .unwrap()
            .is_none()
    );
    assert_eq!(
        bob.collection::<Value>("diary")
            .count(&Filter::All)
            .unwrap(),
        0
    );
    assert_eq!(
        ada.collection::<Value>("diary")
            .count(&Filter::All)
            .unwrap(),
        1
    );
    // The rest, as data.
    assert_eq!(Rules::admin_only(), Rules::default());
    assert_eq!(Rules::public_read().list, Rule::Public);
    assert_eq!(Rules::public_read().create, Rule::Admin);
    assert_eq!(Rules::signed_in().delete, Rule::Authenticated);
}
