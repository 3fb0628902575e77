//! The native admin API: only administrators get in, the router serves exactly the documented
//! routes, and each call does what the library call does.
#![cfg(feature = "http")]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use larder::{Client, Db, KeyKind, NewApiKey, NewUser, ServerConfig};
use serde_json::{Value, json};

struct Fixture {
    db: Db,
    router: axum::Router,
    sk: String,
}

fn fixture() -> Fixture {
    let db = Db::in_memory().unwrap();
    let sk = db
        .keys()
        .create(NewApiKey::new(KeyKind::Secret, "admin"))
        .unwrap()
        .secret;
    let router = larder::router(db.clone(), &ServerConfig::default());
    Fixture { db, router, sk }
}

impl Fixture {
    /// A key goes in `x-api-key`, a token (`ey…`) in `Authorization: Bearer`.
    fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let bearer = key.map(|k| format!("Bearer {k}"));
        let headers: Vec<(&str, &str)> = match (key, &bearer) {
            (Some(token), Some(bearer)) if token.starts_with("ey") => {
                vec![("authorization", bearer.as_str())]
            }
            (Some(key), _) => vec![("x-api-key", key)],
            _ => vec![],
        };
        let answer = common::http::call(&self.router, method, path, &headers, body);
        (answer.status, answer.json)
    }

    fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(method, path, Some(&self.sk), body)
    }
}

/// Every documented admin route, with its `{params}` filled in.
fn documented_routes(f: &Fixture) -> Vec<(String, String)> {
    let (status, document) = f.call("GET", "/api/openapi.json", None, None);
    assert_eq!(status, 200);
    let mut routes = Vec::new();
    for (path, methods) in document["paths"].as_object().unwrap() {
        for method in methods.as_object().unwrap().keys() {
            if path.starts_with("/api/admin") {
                let concrete = path.replace("{id}", "abc").replace("{name}", "things");
                routes.push((method.to_uppercase(), concrete));
            }
        }
    }
    assert!(routes.len() >= 15);
    routes
}

#[test]
fn only_administrators_get_in() {
    let f = fixture();
    let pk =
        f.db.keys()
            .create(NewApiKey::new(KeyKind::Publishable, "app"))
            .unwrap()
            .secret;
    let scoped =
        f.db.keys()
            .create(NewApiKey::new(KeyKind::Scoped, "s"))
            .unwrap()
            .secret;
    let user =
        f.db.users()
            .signup(
                NewUser::new("u@example.com", "a long enough passphrase"),
                &Client::unknown(),
            )
            .unwrap()
            .access_token;
    // What a key is (its last use moves when it is presented; that is expected).
    let keys = || {
        f.db.keys()
            .list()
            .unwrap()
            .into_iter()
            .map(|k| (k.id, k.kind, k.label, k.prefix, k.grants))
            .collect::<Vec<_>>()
    };
    let keys_before = keys();
    for (method, path) in documented_routes(&f) {
        for (who, key, expected) in [
            ("nobody", None, 401),
            ("bad key", Some("sk_live_nope"), 401),
            ("publishable", Some(pk.as_str()), 403),
            ("scoped", Some(scoped.as_str()), 403),
            ("user", Some(user.as_str()), 403),
        ] {
            let (status, body) = f.call(
                &method,
                &path,
                key,
                Some(json!({"kind": "secret", "label": "x"})),
            );
            assert_eq!(status.as_u16(), expected, "{who} {method} {path}: {body}");
            assert!(body["error"]["code"].is_string(), "{body}");
        }
    }
    assert_eq!(keys(), keys_before, "nothing changed");
    assert!(f.db.collections().list().unwrap().is_empty());
}

#[test]
fn every_documented_route_exists() {
    let f = fixture();
    for (method, path) in documented_routes(&f) {
        let (status, body) = f.admin(&method, &path, Some(json!({})));
        assert!(
            status != 404 || body["error"]["code"] == "not_found",
            "{method} {path}: {status} {body}"
        );
        assert_ne!(status, 405, "{method} {path}");
    }
}

/// The router and the OpenAPI document agree on `/api/admin`, seen from outside: each documented
/// method of a documented path reaches an admin handler (401 without a key, where no handler
/// would be the fallback's 404); every other method of that path is refused with 405, and its
/// `Allow` lists the documented methods only; and the paths between `/api/admin` and a
/// documented path that the document does not list reach no handler at all (404).
#[test]
fn the_router_serves_exactly_the_documented_admin_routes() {
    const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    let f = fixture();
    let mut documented: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (method, path) in documented_routes(&f) {
        documented.entry(path).or_default().insert(method);
    }
    for (path, methods) in &documented {
        for method in METHODS {
            let answer = common::http::call(&f.router, method, path, &[], None);
            if methods.contains(method) {
                assert_eq!(
                    answer.status, 401,
                    "{method} {path} is documented, but no admin handler answers it: {}",
                    answer.json
                );
                assert!(answer.json["error"]["code"].is_string(), "{}", answer.json);
                continue;
            }
            assert_eq!(
                answer.status, 405,
                "{method} {path} is not in the OpenAPI document, yet the router answers it: {}",
                answer.json
            );
            // axum answers HEAD wherever it answers GET; the document lists GET only.
            let allowed: BTreeSet<String> = answer
                .headers
                .get("allow")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .split(',')
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty() && m != "HEAD")
                .collect();
            assert_eq!(
                &allowed, methods,
                "{path}: the methods the router allows, against the documented ones"
            );
        }
    }
    let undocumented_parents: BTreeSet<&str> = documented
        .keys()
        .flat_map(|path| {
            path.match_indices('/')
                .map(|(end, _)| &path[..end])
                .filter(|parent| parent.starts_with("/api/admin"))
        })
        .filter(|parent| !documented.contains_key(*parent))
        .collect();
    assert!(undocumented_parents.contains("/api/admin"));
    for path in undocumented_parents {
        for method in METHODS {
            let answer = common::http::call(&f.router, method, path, &[], None);
            assert_eq!(
                answer.status, 404,
                "{method} {path} is not in the OpenAPI document, yet the router answers it: {}",
                answer.json
            );
        }
    }
}

#[test]
fn keys_are_created_listed_rotated_and_revoked() {
    let f = fixture();
    let (status, created) = f.admin(
        "POST",
        "/api/admin/keys",
        Some(json!({"kind": "scoped", "label": "reports", "permissions": {"orders": {"read": true}}})),
    );
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["info"]["id"].as_str().unwrap().to_owned();
    let (_, listed) = f.admin("GET", "/api/admin/keys", None);
    assert!(
        !listed.to_string().contains(&secret),
        "listings never show secrets"
    );
    let (status, rotated) = f.admin("POST", &format!("/api/admin/keys/{id}/rotate"), None);
    assert_eq!(status, 200);
    assert_ne!(rotated["secret"], created["secret"]);
    assert!(
        f.db.with_key(&secret).is_err(),
        "no overlap asked: the old secret is dead"
    );
    let (status, _) = f.admin("DELETE", &format!("/api/admin/keys/{id}"), None);
    assert_eq!(status, 200);
    assert!(f.db.with_key(rotated["secret"].as_str().unwrap()).is_err());
    let (status, _) = f.admin(
        "POST",
        "/api/admin/keys",
        Some(json!({"kind": "root", "label": "x"})),
    );
    assert_eq!(status, 400);
    let (status, _) = f.admin(
        "POST",
        "/api/admin/keys",
        Some(json!({"kind": "secret", "label": "x", "expires_at": "tomorrow"})),
    );
    assert_eq!(status, 400);
}

#[test]
fn collections_are_put_read_and_deleted() {
    let f = fixture();
    let spec = json!({"rules": {"list": "public", "view": "public", "create": "authenticated", "update": "owner", "delete": {"roles": ["moderator"]}}, "owner_field": "owner", "hidden_fields": ["secret"], "indexes": ["owner"]});
    let (status, created) = f.admin("PUT", "/api/admin/collections/posts", Some(spec.clone()));
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["spec"]["rules"]["delete"],
        json!({"roles": ["moderator"]})
    );
    let (status, _) = f.admin(
        "PUT",
        "/api/admin/collections/posts",
        Some(json!({"indexes": []})),
    );
    assert_eq!(status, 200);
    let (_, got) = f.admin("GET", "/api/admin/collections/posts", None);
    assert_eq!(
        got["spec"]["rules"]["list"], "admin",
        "left-out rules are admin-only"
    );
    let (status, _) = f.admin(
        "PUT",
        "/api/admin/collections/posts",
        Some(json!({"rules": {"list": "everyone"}})),
    );
    assert_eq!(status, 400);
    let (status, _) = f.admin("PUT", "/api/admin/collections/Bad-Name", Some(json!({})));
    assert_eq!(status, 400);
    let (_, listed) = f.admin("GET", "/api/admin/collections", None);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        f.admin("DELETE", "/api/admin/collections/posts", None).0,
        200
    );
    assert_eq!(f.admin("GET", "/api/admin/collections/posts", None).0, 404);
}

#[test]
fn users_settings_and_signing_keys() {
    let f = fixture();
    let signed_in =
        f.db.users()
            .signup(
                NewUser::new("u@example.com", "a long enough passphrase"),
                &Client::unknown(),
            )
            .unwrap();
    let id = &signed_in.user.id;
    let (_, users) = f.admin("GET", "/api/admin/users", None);
    assert_eq!(users[0]["email"], "u@example.com");
    assert!(!users.to_string().contains("argon2"));
    assert_eq!(
        f.admin("POST", &format!("/api/admin/users/{id}/disable"), None)
            .1["disabled"],
        true
    );
    assert!(
        f.db.sessions()
            .authenticate(&signed_in.access_token)
            .is_err()
    );
    assert_eq!(
        f.admin("POST", &format!("/api/admin/users/{id}/enable"), None)
            .1["disabled"],
        false
    );
    assert_eq!(
        f.admin("POST", &format!("/api/admin/users/{id}/end-sessions"), None)
            .0,
        200
    );
    assert_eq!(
        f.admin("DELETE", &format!("/api/admin/users/{id}"), None).0,
        200
    );
    assert_eq!(
        f.admin("GET", &format!("/api/admin/users/{id}"), None).0,
        404
    );

    let (status, settings) = f.admin(
        "PUT",
        "/api/admin/settings",
        Some(json!({"JWT_EXPIRY_MINUTES": 15, "ALLOWED_ORIGINS": "http://localhost:5173"})),
    );
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["JWT_EXPIRY_MINUTES"], 15);
    let (status, _) = f.admin(
        "PUT",
        "/api/admin/settings",
        Some(json!({"JWT_EXPIRY_MINUTES": 0})),
    );
    assert_eq!(status, 400);
    let (status, _) = f.admin(
        "PUT",
        "/api/admin/settings",
        Some(json!({"ALLOWED_ORIGINS": ["*"]})),
    );
    assert_eq!(status, 400);
    assert_eq!(
        f.admin("GET", "/api/admin/settings", None).1["JWT_EXPIRY_MINUTES"],
        15,
        "refusals changed nothing"
    );

    let (status, jwks) = f.admin("POST", "/api/admin/signing-keys/rotate", None);
    assert_eq!(status, 200);
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let (_, public) = f.call("GET", "/.well-known/jwks.json", None, None);
    assert_eq!(public, jwks);
}

#[test]
fn environment_variables_are_masked_until_read() {
    let f = fixture();
    let (status, set) = f.admin(
        "PUT",
        "/api/admin/env/stripe%20key",
        Some(json!({"value": "sk_test_1234567890"})),
    );
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["name"], "STRIPE_KEY");
    let (_, listed) = f.admin("GET", "/api/admin/env", None);
    assert!(!listed.to_string().contains("1234567890"), "{listed}");
    assert_eq!(listed[0]["name"], "STRIPE_KEY");
    let (_, read) = f.admin("GET", "/api/admin/env/STRIPE_KEY", None);
    assert_eq!(read["value"], "sk_test_1234567890");
    let (status, _) = f.admin(
        "PUT",
        "/api/admin/env/JWT_EXPIRY_MINUTES",
        Some(json!({"value": "9"})),
    );
    assert_eq!(status, 400, "built-in names are refused");
    assert_eq!(f.admin("DELETE", "/api/admin/env/STRIPE_KEY", None).0, 200);
    assert_eq!(f.admin("GET", "/api/admin/env/STRIPE_KEY", None).0, 404);
}
