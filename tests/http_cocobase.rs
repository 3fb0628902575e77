//! The Cocobase dialect through the router: identity rules, body quirks, the query grammar,
//! owner-only collections, 2FA and verification routes.
#![cfg(feature = "http")]

mod common;

use common::http::Answer;
use larder::{Db, KeyKind, NewApiKey, ServerConfig};
use serde_json::{Value, json};

struct Fixture {
    db: Db,
    router: axum::Router,
    admin: String,
}

fn fixture() -> Fixture {
    let db = Db::in_memory().unwrap();
    let admin = db
        .create_api_key(NewApiKey::new(KeyKind::Secret, "app"))
        .unwrap()
        .secret;
    let router = larder::router(db.clone(), &ServerConfig::default());
    Fixture { db, router, admin }
}

impl Fixture {
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("x-api-key", self.admin.as_str())];
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer.as_str()));
        }
        common::http::call(&self.router, method, path, &headers, body)
    }

    fn signup(&self, email: &str) -> String {
        let answer = self.call(
            "POST",
            "/auth-collections/signup",
            Some("stale.token.sent.by.the.sdk"),
            Some(json!({"email": email, "password": "a long enough passphrase", "data": {"name": "N"}})),
        );
        assert_eq!(answer.status, 201, "{}", answer.json);
        assert_eq!(answer.json["token_type"], "bearer");
        assert_eq!(answer.json["user"]["data"]["name"], "N");
        answer.json["access_token"].as_str().unwrap().to_owned()
    }
}

#[test]
fn identity_rules() {
    let f = fixture();
    let none = common::http::call(&f.router, "GET", "/auth-collections/user", &[], None);
    assert_eq!(none.status, 401);
    assert_eq!(none.json["detail"], "Authentication required");
    let bad_key = common::http::call(
        &f.router,
        "GET",
        "/collections/x/documents",
        &[("x-api-key", "sk_live_nope")],
        None,
    );
    assert_eq!(bad_key.status, 401);
    assert!(bad_key.json["detail"].is_string());
    let token = f.signup("a@example.com");
    // A user token beside the admin key runs as the user, never admin.
    let me = f.call("GET", "/auth-collections/user", Some(&token), None);
    assert_eq!(me.json["email"], "a@example.com");
    assert_eq!(
        f.call("GET", "/auth-collections/users", Some(&token), None)
            .status,
        403
    );
    assert_eq!(
        f.call(
            "POST",
            "/collections/",
            Some(&token),
            Some(json!({"data": {"name": "x"}}))
        )
        .status,
        403
    );
    assert_eq!(
        f.call(
            "GET",
            "/auth-collections/user",
            Some("e30.e30.forged"),
            None
        )
        .status,
        401
    );
    // Bearer only works too (the multipart profile update sends no key).
    let bearer = format!("Bearer {token}");
    let only = common::http::call(
        &f.router,
        "GET",
        "/auth-collections/user",
        &[("authorization", bearer.as_str())],
        None,
    );
    assert_eq!(only.status, 200);
    assert_eq!(
        f.call("GET", "/auth-collections/users", None, None)
            .json
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn documents_are_owner_only_and_unwrapped_once_more() {
    let f = fixture();
    let created = f.call(
        "POST",
        "/collections/",
        None,
        Some(json!({"data": {"name": "notes"}})),
    );
    assert_eq!(created.status, 201);
    assert_eq!(created.json["name"], "notes");
    let ada = f.signup("ada@example.com");
    let bob = f.signup("bob@example.com");
    let doc = f.call(
        "POST",
        "/collections/documents?collection=notes",
        Some(&ada),
        Some(json!({"data": {"data": {"title": "mine", "n": 5}}})),
    );
    assert_eq!(doc.status, 201, "{}", doc.json);
    assert_eq!(
        doc.json["data"],
        json!({"title": "mine", "n": 5}),
        "the double wrap is undone"
    );
    assert!(doc.json["owner_id"].is_string());
    assert_eq!(doc.json["collection"]["name"], "notes");
    let id = doc.json["id"].as_str().unwrap().to_owned();

    assert_eq!(
        f.call(
            "GET",
            &format!("/collections/notes/documents/{id}"),
            Some(&bob),
            None
        )
        .status,
        404
    );
    assert_eq!(
        f.call("GET", "/collections/notes/documents", Some(&bob), None)
            .json,
        json!([])
    );
    assert_eq!(
        f.call(
            "GET",
            "/collections/notes/query/documents/count",
            Some(&bob),
            None
        )
        .json["count"],
        0
    );
    assert_eq!(
        f.call(
            "PATCH",
            &format!("/collections/notes/documents/{id}"),
            Some(&bob),
            Some(json!({"data": {"title": "x"}}))
        )
        .status,
        404
    );
    let patched = f.call(
        "PATCH",
        &format!("/collections/notes/documents/{id}"),
        Some(&ada),
        Some(json!({"data": {"title": "edited"}})),
    );
    assert_eq!(patched.json["data"]["title"], "edited");
    assert_eq!(patched.json["data"]["n"], 5);
    let listed = f.call("GET", "/collections/notes/documents", Some(&ada), None);
    assert!(listed.json.is_array(), "a bare array");
    assert_eq!(listed.json.as_array().unwrap().len(), 1);
    assert_eq!(
        f.call(
            "DELETE",
            &format!("/collections/notes/documents/{id}"),
            Some(&ada),
            None
        )
        .status,
        200
    );
    assert_eq!(
        f.call("DELETE", "/collections/notes", Some(&ada), None)
            .status,
        403
    );
    assert_eq!(
        f.call("DELETE", "/collections/notes", None, None).status,
        200
    );
}

#[test]
fn the_query_grammar_batches_count_and_aggregate() {
    let f = fixture();
    let made = f.call(
        "POST",
        "/collections/tasks/batch/documents/create",
        None,
        Some(json!({"documents": [
            {"title": "Alpha", "priority": 2, "pinned": true, "status": "open"},
            {"title": "beta", "priority": 10, "pinned": false, "status": "open"},
            {"title": "Gamma", "priority": 7, "pinned": true, "status": "done"}
        ]})),
    );
    assert_eq!(
        made.status, 404,
        "no auto-create on batch routes: the collection must exist"
    );
    f.call(
        "POST",
        "/collections/documents?collection=tasks",
        None,
        Some(json!({"data": {"data": {"title": "seed", "priority": 0}}})),
    );
    let made = f.call(
        "POST",
        "/collections/tasks/batch/documents/create",
        None,
        Some(json!({"documents": [
            {"title": "Alpha", "priority": 2, "pinned": true, "status": "open"},
            {"title": "beta", "priority": 10, "pinned": false, "status": "open"},
            {"title": "Gamma", "priority": 7, "pinned": true, "status": "done"}
        ]})),
    );
    assert_eq!(made.status, 201, "{}", made.json);
    let titles = |path: &str| -> Vec<String> {
        f.call("GET", path, None, None)
            .json
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["data"]["title"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        titles("/collections/tasks/documents?priority_gte=5&sort=priority&order=asc"),
        ["Gamma", "beta"]
    );
    assert_eq!(
        titles("/collections/tasks/documents?pinned=True&sort_by=priority&sort_order=desc"),
        ["Gamma", "Alpha"]
    );
    assert_eq!(
        titles("/collections/tasks/documents?title_contains=ALP"),
        ["Alpha"]
    );
    assert_eq!(
        titles("/collections/tasks/documents?status_in=done,closed"),
        ["Gamma"]
    );
    assert_eq!(
        titles("/collections/tasks/documents?sort=priority&order=asc&limit=2&offset=1"),
        ["Alpha", "Gamma"]
    );
    let count = f.call(
        "GET",
        "/collections/tasks/query/documents/count?status=open",
        None,
        None,
    );
    assert_eq!(count.json["count"], 2);
    let sum = f.call(
        "GET",
        "/collections/tasks/query/documents/aggregate?field=priority&operation=sum&status=open",
        None,
        None,
    );
    assert_eq!(sum.json["result"], 12);
    let ids: Vec<String> = made
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    let updated = f.call(
        "POST",
        "/collections/tasks/batch/documents/update",
        None,
        Some(json!({"updates": {ids[0].clone(): {"status": "done"}}})),
    );
    assert_eq!(updated.json[0]["data"]["status"], "done");
    let deleted = f.call(
        "POST",
        "/collections/tasks/batch/documents/delete",
        None,
        Some(json!({"document_ids": ids})),
    );
    assert_eq!(deleted.json["count"], 3);
    assert_eq!(
        f.call("GET", "/collections/tasks/documents?limit=x", None, None)
            .status,
        400
    );
}

#[test]
fn second_factor_and_verification_routes() {
    let f = fixture();
    let token = f.signup("two@example.com");
    assert_eq!(
        f.call(
            "POST",
            "/auth-collections/2fa/enable",
            Some(&token),
            Some(json!({}))
        )
        .status,
        200
    );
    let login = f.call(
        "POST",
        "/auth-collections/login",
        Some(&token),
        Some(json!({"email": "two@example.com", "password": "a long enough passphrase"})),
    );
    assert_eq!(login.status, 200);
    assert_eq!(login.json["requires_2fa"], true);
    assert!(login.json["access_token"].is_null());
    let code = f.db.outbox().unwrap().pop().unwrap().message.variables["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let verified = f.call(
        "POST",
        "/auth-collections/2fa/verify",
        None,
        Some(json!({"email": "two@example.com", "code": code})),
    );
    assert_eq!(verified.status, 200, "{}", verified.json);
    assert!(verified.json["access_token"].is_string() && verified.json["user"].is_object());

    let sent = f.call(
        "POST",
        "/auth-collections/verify-email/send",
        Some(&token),
        Some(json!({})),
    );
    assert_eq!(sent.status, 200);
    let google = f.call(
        "POST",
        "/auth-collections/google-verify",
        None,
        Some(json!({"id_token": "x"})),
    );
    assert_eq!(google.status, 501);
    assert!(google.json["detail"].is_string());
}
