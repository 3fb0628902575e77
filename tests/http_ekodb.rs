//! The ekoDB dialect through the router: the token exchange, identity, MessagePack bodies and
//! answers, the seed's key and permission routes, and where larder is stricter than ekoDB.
#![cfg(feature = "http")]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::http::Answer;
use larder::{Db, Grant, KeyKind, NewApiKey, ServerConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Fixture {
    db: Db,
    router: axum::Router,
    admin: String,
}

fn fixture() -> Fixture {
    let db = Db::in_memory().unwrap();
    let admin = db
        .keys()
        .create(NewApiKey::new(KeyKind::Secret, "app"))
        .unwrap()
        .secret;
    let router = larder::router(db.clone(), &ServerConfig::default());
    Fixture { db, router, admin }
}

impl Fixture {
    /// A JSON call with `Authorization: Bearer token`.
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("authorization", b.as_str()))
            .collect();
        common::http::call(&self.router, method, path, &headers, body)
    }

    /// The JWT for a key secret.
    fn token(&self, key: &str) -> String {
        let answer = self.call(
            "POST",
            "/api/auth/token",
            None,
            Some(json!({"api_key": key})),
        );
        assert_eq!(answer.status, 200, "{}", answer.json);
        answer.json["token"].as_str().unwrap().to_owned()
    }

    /// A raw call: body bytes and headers as given; the answer's status, content type and bytes.
    fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, String, Vec<u8>) {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let response = self
                .router
                .clone()
                .oneshot(request.body(Body::from(body)).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, content_type, bytes.to_vec())
        })
    }
}

#[test]
fn the_token_is_a_jwt_with_an_integer_exp_and_bad_keys_get_the_ekodb_error_shape() {
    let f = fixture();
    let token = f.token(&f.admin);
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    use base64::Engine;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .unwrap();
    let claims: Value = serde_json::from_slice(&payload).unwrap();
    assert!(claims["exp"].is_u64(), "{claims}");

    let answer = f.call(
        "POST",
        "/api/auth/token",
        None,
        Some(json!({"api_key": "sk_live_not-a-real-key"})),
    );
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json["code"], 401);
    assert_eq!(answer.json["message"], answer.json["error"]);
    assert!(!answer.json.to_string().contains("not-a-real-key"));

    let missing = f.call("POST", "/api/auth/token", None, Some(json!({})));
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json["code"], 400);
}

#[test]
fn every_route_but_the_token_needs_a_valid_credential() {
    let f = fixture();
    let none = f.call("GET", "/api/collections", None, None);
    assert_eq!(none.status, 401);
    assert!(
        none.json["message"]
            .as_str()
            .unwrap()
            .contains("/api/auth/token")
    );
    let forged = f.call("GET", "/api/collections", Some("a.b.c"), None);
    assert_eq!(forged.status, 401);
    let ok = f.call("GET", "/api/collections", Some(&f.token(&f.admin)), None);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json, json!({"collections": []}));
}

#[test]
fn messagepack_in_and_out_on_the_write_routes_json_elsewhere() {
    let f = fixture();
    let token = f.token(&f.admin);
    let bearer = format!("Bearer {token}");
    let msgpack = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/msgpack"),
        ("accept", "application/msgpack"),
    ];
    let record = rmp_serde::to_vec(&json!({"name": "Ada", "age": 36})).unwrap();
    let (status, content_type, bytes) = f.raw("POST", "/api/insert/people", &msgpack, record);
    assert_eq!(status, 201);
    assert_eq!(content_type, "application/msgpack");
    let stored: Value = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(stored["age"], 36);
    let id = stored["id"].as_str().unwrap().to_owned();

    // Reads are JSON whatever the client's format.
    let found = f.call("GET", &format!("/api/find/people/{id}"), Some(&token), None);
    assert_eq!(found.json["name"], "Ada");

    // The batch structs arrive positionally: [[[record, bypass_ripple]]].
    let batch =
        rmp_serde::to_vec(&json!([[[{"name": "B"}, null], [{"name": "C"}, null]]])).unwrap();
    let (status, _, bytes) = f.raw("POST", "/api/batch/insert/people", &msgpack, batch);
    assert_eq!(status, 200);
    let result: Value = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(result["successful"].as_array().unwrap().len(), 2);
    assert_eq!(result["failed"], json!([]));

    // Delete answers the deleted record, in the format asked for.
    let (status, _, bytes) = f.raw(
        "DELETE",
        &format!("/api/delete/people/{id}"),
        &msgpack,
        vec![],
    );
    assert_eq!(status, 200);
    let deleted: Value = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(deleted["name"], "Ada");

    // Errors are JSON even on a MessagePack route (the client reads them as JSON text).
    let (status, content_type, bytes) = f.raw(
        "DELETE",
        &format!("/api/delete/people/{id}"),
        &msgpack,
        vec![],
    );
    assert_eq!(status, 404);
    assert!(content_type.starts_with("application/json"));
    let error: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(error["code"], 404);
}

#[test]
fn a_malformed_body_is_a_400_that_changes_nothing() {
    let f = fixture();
    let token = f.token(&f.admin);
    let bearer = format!("Bearer {token}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/msgpack"),
    ];
    let (status, _, bytes) = f.raw("POST", "/api/insert/people", &headers, vec![0xc1, 0x00]);
    assert_eq!(status, 400);
    let error: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(error["code"], 400);
    let not_a_record = rmp_serde::to_vec(&json!([1, 2, 3])).unwrap();
    let (status, _, _) = f.raw("POST", "/api/insert/people", &headers, not_a_record);
    assert_eq!(status, 400);
    assert!(
        f.db.collections().info("people").is_err(),
        "nothing was created"
    );

    let staged = f.call(
        "POST",
        "/api/insert/people?transaction_id=t1",
        Some(&token),
        Some(json!({"name": "x"})),
    );
    assert_eq!(
        staged.status, 400,
        "a transactional write is not committed alone"
    );
    assert!(f.db.collections().info("people").is_err());

    let bad_filter = json!({"filter": {"type": "Condition", "content": {"field": "a", "operator": "Regex", "value": "x"}}});
    let answer = f.call("POST", "/api/find/people", Some(&token), Some(bad_filter));
    assert_eq!(answer.status, 400);
    assert!(answer.json["message"].as_str().unwrap().contains("Regex"));
}

#[test]
fn the_seed_register_form_with_action_arrays_and_the_admin_key_in_the_body() {
    let f = fixture();
    let answer = f.call(
        "POST",
        "/api/auth/register",
        None,
        Some(json!({
            "api_key": f.admin,
            "label": "Web App Key",
            "description": "API key for web application",
            "is_admin": false,
            "collection_permissions": {"posts": ["read", "write"], "comments": ["read", "write", "delete"]},
        })),
    );
    assert_eq!(answer.status, 201, "{}", answer.json);
    let secret = answer.json["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("rk_live_"));
    assert_eq!(answer.json["id"].as_str().unwrap().len(), 32);
    assert_eq!(
        answer.json["collection_permissions"]["comments"],
        json!({"read": true, "write": true, "delete": true, "select_fields": null, "exclude_fields": null, "writable_fields": null})
    );
    assert_eq!(
        answer.json["collection_permissions"]["posts"]["delete"], false,
        "delete is given only when named"
    );

    let keys = f.call("GET", "/api/auth/keys", Some(&f.token(&f.admin)), None);
    assert_eq!(keys.status, 200);
    assert!(!keys.json.to_string().contains(&secret));
    assert!(!keys.json.to_string().contains(&f.admin));

    let unknown_action = f.call(
        "POST",
        "/api/auth/register",
        None,
        Some(json!({"api_key": f.admin, "collection_permissions": {"posts": ["read", "admin"]}})),
    );
    assert_eq!(unknown_action.status, 400);
    let anonymous = f.call(
        "POST",
        "/api/auth/register",
        None,
        Some(json!({"label": "x"})),
    );
    assert_eq!(anonymous.status, 401);
    assert_eq!(f.db.keys().list().unwrap().len(), 2, "no key was created");
}

#[test]
fn scoped_keys_cannot_escalate() {
    let f = fixture();
    let scoped =
        f.db.keys()
            .create(NewApiKey::new(KeyKind::Scoped, "s").grant("posts", Grant::all()))
            .unwrap();
    let token = f.token(&scoped.secret);
    let register = f.call(
        "POST",
        "/api/auth/register",
        Some(&token),
        Some(json!({"api_key": scoped.secret, "is_admin": true})),
    );
    assert_eq!(register.status, 403);
    let widen = f.call(
        "PUT",
        "/api/auth/permissions",
        Some(&token),
        Some(json!({"key_id": scoped.info.id, "collection_permissions": {"secrets": ["read"]}})),
    );
    assert_eq!(widen.status, 403);
    let admin_id =
        f.db.keys()
            .list()
            .unwrap()
            .into_iter()
            .find(|k| k.kind == KeyKind::Secret)
            .unwrap()
            .id;
    let read_other = f.call(
        "GET",
        &format!("/api/auth/keys/{admin_id}/permissions"),
        Some(&token),
        None,
    );
    assert_eq!(read_other.status, 403);
    let read_own = f.call("GET", "/api/auth/keys/me/permissions", Some(&token), None);
    assert_eq!(read_own.status, 200);
    assert_eq!(read_own.json["collections"]["posts"]["write"], true);
    assert_eq!(f.db.keys().list().unwrap().len(), 2);
    assert_eq!(
        f.db.keys().get(&scoped.info.id).unwrap().grants.len(),
        1,
        "grants unchanged"
    );
}

#[test]
fn keys_are_named_by_id_and_revoked_by_id_or_secret() {
    let f = fixture();
    let new_key = || {
        f.db.keys()
            .create(NewApiKey::new(KeyKind::Scoped, "s"))
            .unwrap()
    };
    let (first, second) = (new_key(), new_key());
    let token = f.token(&f.admin);
    // Reading a key's permissions names it by id: a secret in that path is refused.
    let read_by_secret = f.call(
        "GET",
        &format!("/api/auth/keys/{}/permissions", first.secret),
        Some(&token),
        None,
    );
    assert_eq!(read_by_secret.status, 400);
    assert!(!read_by_secret.json.to_string().contains(&first.secret));
    // Revoking takes the secret too, as the client's revoke_api_key(key) sends it.
    let by_secret = f.call(
        "DELETE",
        &format!("/api/auth/keys/{}", first.secret),
        Some(&token),
        None,
    );
    assert_eq!(by_secret.status, 200, "{}", by_secret.json);
    assert!(!by_secret.json.to_string().contains(&first.secret));
    assert!(f.db.keys().get(&first.info.id).is_err(), "revoked");
    let unknown = f.call(
        "DELETE",
        &format!("/api/auth/keys/{}", "0".repeat(32)),
        Some(&token),
        None,
    );
    assert_eq!(unknown.status, 404);
    let by_id = f.call(
        "DELETE",
        &format!("/api/auth/keys/{}", second.info.id),
        Some(&token),
        None,
    );
    assert_eq!(by_id.status, 200);
    assert_eq!(by_id.json["status"], "success");
}

#[test]
fn the_seed_permission_routes() {
    let f = fixture();
    let scoped =
        f.db.keys()
            .create(NewApiKey::new(KeyKind::Scoped, "Production API").grant("posts", Grant::read()))
            .unwrap();
    let own = f.call(
        "GET",
        "/api/auth/permissions",
        Some(&f.token(&scoped.secret)),
        None,
    );
    assert_eq!(own.status, 200);
    assert_eq!(own.json["key_id"], scoped.info.id.as_str());
    assert_eq!(own.json["is_admin"], false);
    assert_eq!(own.json["collection_permissions"]["posts"]["read"], true);

    let admin = f.token(&f.admin);
    let id = scoped.info.id.as_str();
    let set = f.call(
        "POST",
        "/api/auth/permissions",
        Some(&admin),
        Some(json!({"key_id": id, "collection_permissions": {"users_data": ["read", "write"], "analytics": []}})),
    );
    assert_eq!(set.status, 200, "{}", set.json);
    assert_eq!(set.json["status"], "updated");
    let grants = f.db.keys().get(id).unwrap().grants;
    assert!(!grants.contains_key("posts"), "POST replaces every grant");
    assert!(grants["users_data"].write);

    let update = f.call(
        "PUT",
        "/api/auth/permissions",
        Some(&admin),
        Some(json!({"key_id": id, "collection_permissions": {"users_data": ["read", "write", "delete"], "posts": ["read", "write"]}})),
    );
    assert_eq!(update.status, 200, "{}", update.json);
    assert_eq!(update.json["changes"].as_array().unwrap().len(), 2);
    let grants = f.db.keys().get(id).unwrap().grants;
    assert!(
        grants.contains_key("analytics"),
        "PUT keeps the grants it does not name"
    );
    assert!(grants["users_data"].delete && grants["posts"].write);

    // The client's legacy one-collection form answers the key.
    let legacy = f.call(
        "PUT",
        "/api/auth/permissions",
        Some(&admin),
        Some(json!({"api_key": scoped.secret, "collection": "posts", "read": true, "write": false, "select_fields": ["title"]})),
    );
    assert_eq!(legacy.status, 200, "{}", legacy.json);
    assert_eq!(legacy.json["id"], id);
    assert!(!legacy.json.to_string().contains(&scoped.secret));
    let post = &f.db.keys().get(id).unwrap().grants["posts"];
    assert!(post.read && !post.write);
    assert_eq!(post.select_fields, Some(vec!["title".to_owned()]));
}

#[test]
fn grants_limit_fields_through_the_dialect() {
    let f = fixture();
    let admin = f.token(&f.admin);
    let created = f.call(
        "POST",
        "/api/insert/posts",
        Some(&admin),
        Some(json!({"title": "t", "draft_notes": "private"})),
    );
    assert_eq!(created.status, 201);
    let id = created.json["id"].as_str().unwrap();
    let scoped =
        f.db.keys()
            .create(NewApiKey::new(KeyKind::Scoped, "reader").grant(
                "posts",
                Grant {
                    exclude_fields: vec!["draft_notes".into()],
                    ..Grant::read()
                },
            ))
            .unwrap();
    let token = f.token(&scoped.secret);
    let found = f.call("GET", &format!("/api/find/posts/{id}"), Some(&token), None);
    assert_eq!(found.status, 200);
    assert_eq!(found.json["title"], "t");
    assert!(found.json.get("draft_notes").is_none());
    let listed = f.call("POST", "/api/find/posts", Some(&token), Some(json!({})));
    assert!(!listed.json.to_string().contains("private"));
    let write = f.call(
        "PUT",
        &format!("/api/update/posts/{id}"),
        Some(&token),
        Some(json!({"title": "changed"})),
    );
    assert_eq!(write.status, 403);
    assert_eq!(write.json["code"], 403);
}

#[test]
fn field_actions_answer_501_with_what_is_missing_and_change_nothing() {
    let f = fixture();
    let token = f.token(&f.admin);
    let created = f.call(
        "POST",
        "/api/insert/counters",
        Some(&token),
        Some(json!({"n": 1})),
    );
    let id = created.json["id"].as_str().unwrap().to_owned();
    // The paths `update_with_action` and `update_with_action_sequence` use.
    for path in [
        format!("/api/update/counters/{id}/action/increment"),
        format!("/api/update/sequence/counters/{id}"),
    ] {
        let answer = f.call(
            "PUT",
            &path,
            Some(&token),
            Some(json!({"field": "n", "value": 5})),
        );
        assert_eq!(answer.status, 501, "{path}");
        assert_eq!(answer.json["code"], 501);
        assert_eq!(answer.json["message"], answer.json["error"]);
        let message = answer.json["message"].as_str().unwrap();
        assert!(
            message.contains("atomic field actions are not supported"),
            "{message}"
        );
        let anonymous = f.call("PUT", &path, None, Some(json!({"field": "n"})));
        assert_eq!(anonymous.status, 401, "credentials are checked first");
    }
    let stored = f.call(
        "GET",
        &format!("/api/find/counters/{id}"),
        Some(&token),
        None,
    );
    assert_eq!(stored.json["n"], 1, "nothing changed");

    // A collection that happens to be called `sequence` is still updated as usual.
    let created = f.call(
        "POST",
        "/api/insert/sequence",
        Some(&token),
        Some(json!({"step": 1})),
    );
    let id = created.json["id"].as_str().unwrap();
    let updated = f.call(
        "PUT",
        &format!("/api/update/sequence/{id}"),
        Some(&token),
        Some(json!({"step": 2})),
    );
    assert_eq!(updated.status, 200, "{}", updated.json);
    assert_eq!(updated.json["step"], 2);
}

#[test]
fn kv_grants_by_prefix_answer_501_for_every_method() {
    let f = fixture();
    let scoped =
        f.db.keys()
            .create(NewApiKey::new(KeyKind::Scoped, "s").grant("posts", Grant::read()))
            .unwrap();
    let token = f.token(&f.admin);
    let path = format!("/api/auth/keys/{}/permissions/kv/sessions", scoped.info.id);
    for method in ["GET", "PUT", "PATCH", "DELETE"] {
        let body = (method == "PUT" || method == "PATCH").then(|| json!({"read": true}));
        let answer = f.call(method, &path, Some(&token), body);
        assert_eq!(answer.status, 501, "{method}");
        assert_eq!(answer.json["code"], 501);
        assert_eq!(
            answer.json["message"],
            "KV grants are not supported: larder has no key-value store"
        );
        assert_eq!(answer.json["message"], answer.json["error"]);
    }
    assert_eq!(f.call("GET", &path, None, None).status, 401);
    // The list of KV grants is still served, and empty.
    let list = f.call(
        "GET",
        &format!("/api/auth/keys/{}/permissions/kv", scoped.info.id),
        Some(&token),
        None,
    );
    assert_eq!(list.status, 200);
    assert_eq!(list.json, json!([]));
    assert_eq!(f.db.keys().get(&scoped.info.id).unwrap().grants.len(), 1);
}

#[test]
fn deleting_a_grant_the_key_does_not_have_is_404_and_changes_nothing() {
    let f = fixture();
    let scoped =
        f.db.keys()
            .create(NewApiKey::new(KeyKind::Scoped, "s").grant("posts", Grant::read()))
            .unwrap();
    let token = f.token(&f.admin);
    let id = scoped.info.id.as_str();
    let missing = f.call(
        "DELETE",
        &format!("/api/auth/keys/{id}/permissions/collections/comments"),
        Some(&token),
        None,
    );
    assert_eq!(missing.status, 404, "{}", missing.json);
    assert_eq!(missing.json["code"], 404);
    assert_eq!(
        missing.json["message"],
        "a grant on collection `comments` not found"
    );
    assert_eq!(missing.json["message"], missing.json["error"]);
    let grants = f.db.keys().get(id).unwrap().grants;
    assert_eq!(grants.keys().collect::<Vec<_>>(), ["posts"]);

    let removed = f.call(
        "DELETE",
        &format!("/api/auth/keys/{id}/permissions/collections/posts"),
        Some(&token),
        None,
    );
    assert_eq!(removed.status, 200);
    assert_eq!(removed.json["before"]["read"], true);
    assert_eq!(removed.json["after"], Value::Null);
    assert!(f.db.keys().get(id).unwrap().grants.is_empty());
    let again = f.call(
        "DELETE",
        &format!("/api/auth/keys/{id}/permissions/collections/posts"),
        Some(&token),
        None,
    );
    assert_eq!(again.status, 404, "a second removal finds nothing");
}

#[test]
fn health_reports_the_ekodb_protocol_version_and_a_key_can_be_revoked_by_its_secret() {
    let f = fixture();
    let health = f.call("GET", "/api/health", None, None);
    assert_eq!(health.status, 200);
    // The Python client's legacy permission edit needs 0.79.2 or later.
    let version: Vec<u32> = health.json["version"]
        .as_str()
        .unwrap()
        .split('.')
        .map(|part| part.parse().unwrap())
        .collect();
    assert!(version >= vec![0, 79, 2], "{}", health.json);

    let token = f.token(&f.admin);
    let scoped =
        f.db.keys()
            .create(NewApiKey::new(KeyKind::Scoped, "to revoke").grant("notes", Grant::read()))
            .unwrap();
    // What the client's revoke_api_key(key) sends: the secret, percent-encoded, in the path.
    let path = format!("/api/auth/keys/{}", percent_encode(&scoped.secret));
    let revoked = f.call("DELETE", &path, Some(&token), None);
    assert_eq!(revoked.status, 200, "{}", revoked.json);
    assert!(f.db.keys().get(&scoped.info.id).is_err(), "the key is gone");
    // Gone now: the same call names no key.
    let again = f.call("DELETE", &path, Some(&token), None);
    assert_eq!(again.status, 404, "{}", again.json);
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
