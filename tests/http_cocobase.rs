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
        .keys()
        .create(NewApiKey::new(KeyKind::Secret, "app"))
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
    let code =
        f.db.mail()
            .outbox()
            .unwrap()
            .pop()
            .unwrap()
            .message
            .variables["code"]
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

#[test]
fn collections_are_renamed_and_webhooks_refused() {
    let f = fixture();
    let hooked = f.call(
        "POST",
        "/collections/",
        None,
        Some(json!({"data": {"name": "notes", "webhook_url": "https://hooks.example.com/x"}})),
    );
    assert_eq!(hooked.status, 400);
    assert!(
        hooked.json["detail"]
            .as_str()
            .unwrap()
            .starts_with("webhooks are not supported"),
        "{}",
        hooked.json
    );
    assert!(
        f.db.collections().info("notes").is_err(),
        "nothing was created"
    );

    for name in ["notes", "taken"] {
        let made = f.call(
            "POST",
            "/collections/",
            None,
            Some(json!({"data": {"name": name}})),
        );
        assert_eq!(made.status, 201);
    }
    let ada = f.signup("ada@example.com");
    let doc = f.call(
        "POST",
        "/collections/documents?collection=notes",
        Some(&ada),
        Some(json!({"data": {"data": {"title": "mine"}}})),
    );
    let id = doc.json["id"].as_str().unwrap().to_owned();
    let rename = |token: Option<&str>, from: &str, body: Value| {
        f.call("PATCH", &format!("/collections/{from}"), token, Some(body))
    };

    // Refusals, each leaving `notes` as it was.
    assert_eq!(
        rename(Some(&ada), "notes", json!({"data": {"name": "journal"}})).status,
        403
    );
    let hooked = rename(
        None,
        "notes",
        json!({"data": {"name": "journal", "webhook_url": "https://hooks.example.com/x"}}),
    );
    assert_eq!(hooked.status, 400);
    assert!(hooked.json["detail"].as_str().unwrap().contains("webhooks"));
    let taken = rename(None, "notes", json!({"data": {"name": "taken"}}));
    assert_eq!(taken.status, 409);
    assert_eq!(taken.json["detail"], "collection `taken` already exists");
    let bad = rename(None, "notes", json!({"data": {"name": "Bad Name"}}));
    assert_eq!(bad.status, 400);
    assert!(
        bad.json["detail"]
            .as_str()
            .unwrap()
            .contains("invalid collection name")
    );
    assert_eq!(
        rename(None, "notes", json!({"data": {"name": "users"}})).status,
        400
    );
    assert_eq!(
        rename(None, "notes", json!({"data": {"name": 7}})).status,
        400
    );
    assert_eq!(
        rename(None, "missing", json!({"data": {"name": "journal"}})).status,
        404
    );
    assert!(f.db.collections().info("journal").is_err());
    assert_eq!(f.db.collections().info("notes").unwrap().document_count, 1);
    // The same name changes nothing.
    let same = rename(None, "notes", json!({"data": {"name": "notes"}}));
    assert_eq!(
        (same.status.as_u16(), &same.json["name"]),
        (200, &json!("notes"))
    );

    let renamed = rename(None, "notes", json!({"data": {"name": "journal"}}));
    assert_eq!(renamed.status, 200, "{}", renamed.json);
    assert_eq!(renamed.json["name"], "journal");
    assert_eq!(renamed.json["id"], "journal");
    assert_eq!(renamed.json["document_count"], 1);
    let moved = f.call(
        "GET",
        &format!("/collections/journal/documents/{id}"),
        Some(&ada),
        None,
    );
    assert_eq!(moved.status, 200, "the owner still reads it");
    assert_eq!(moved.json["data"]["title"], "mine");
    assert_eq!(moved.json["collection"]["name"], "journal");
    assert_eq!(
        f.call(
            "GET",
            &format!("/collections/notes/documents/{id}"),
            Some(&ada),
            None
        )
        .status,
        404
    );
}

/// Sends a multipart body through the router as `token` (beside the admin key, or alone).
fn multipart_call(
    f: &Fixture,
    method: &str,
    path: &str,
    token: &str,
    parts: &[(&str, Option<&str>, &[u8])],
) -> Value {
    let (content_type, body) = common::http::multipart(parts);
    let bearer = format!("Bearer {token}");
    let answer = common::http::call_raw(
        &f.router,
        method,
        path,
        &[
            ("x-api-key", f.admin.as_str()),
            ("authorization", bearer.as_str()),
            ("content-type", content_type.as_str()),
        ],
        body,
    );
    assert!(answer.status.is_success(), "{}", answer.json());
    answer.json()
}

/// The status of a GET of a file URL the dialect handed out.
fn fetch_status(f: &Fixture, url: &Value) -> u16 {
    let url = url.as_str().unwrap();
    let path = &url[url.find("/api/files/").unwrap()..];
    common::http::call_raw(&f.router, "GET", path, &[], Vec::new())
        .status
        .as_u16()
}

#[test]
fn a_file_replaced_by_a_multipart_update_is_deleted() {
    let f = fixture();
    f.call(
        "POST",
        "/collections/",
        None,
        Some(json!({"data": {"name": "notes"}})),
    );
    let ada = f.signup("ada@example.com");
    let bob = f.signup("bob@example.com");
    let created = multipart_call(
        &f,
        "POST",
        "/collections/documents?collection=notes",
        &ada,
        &[
            ("data", None, br#"{"title": "t"}"#),
            ("photo", Some("a.jpg"), b"AAA"),
        ],
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let first = created["data"]["photo"].clone();
    assert_eq!(fetch_status(&f, &first), 200);
    let path = format!("/collections/notes/documents/{id}");

    let replaced = multipart_call(
        &f,
        "PATCH",
        &path,
        &ada,
        &[("photo", Some("b.jpg"), b"BBB")],
    );
    let second = replaced["data"]["photo"].clone();
    assert_ne!(second, first);
    assert_eq!(
        fetch_status(&f, &first),
        404,
        "the replaced file is deleted"
    );
    assert_eq!(fetch_status(&f, &second), 200);

    // A file kept under another field stays: only unreferenced files go.
    let kept = multipart_call(
        &f,
        "PATCH",
        &path,
        &ada,
        &[
            (
                "data",
                None,
                format!(r#"{{"old_photo": {second}}}"#).as_bytes(),
            ),
            ("photo", Some("c.jpg"), b"CCC"),
        ],
    );
    assert_eq!(kept["data"]["old_photo"], second);
    assert_eq!(fetch_status(&f, &second), 200);

    // Someone else's file pasted into the field is never deleted by replacing it.
    let bobs = multipart_call(
        &f,
        "POST",
        "/collections/documents?collection=notes",
        &bob,
        &[("data", None, b"{}"), ("photo", Some("bob.jpg"), b"BOB")],
    );
    let bobs_photo = bobs["data"]["photo"].clone();
    let pasted = f.call(
        "PATCH",
        &path,
        Some(&ada),
        Some(json!({"data": {"photo": bobs_photo}})),
    );
    assert_eq!(pasted.status, 200);
    multipart_call(
        &f,
        "PATCH",
        &path,
        &ada,
        &[("photo", Some("d.jpg"), b"DDD")],
    );
    assert_eq!(fetch_status(&f, &bobs_photo), 200);

    // A profile's replaced file goes the same way.
    let signed = multipart_call(
        &f,
        "POST",
        "/auth-collections/signup",
        "stale.token.sent.by.the.sdk",
        &[
            (
                "data",
                None,
                br#"{"email": "dan@example.com", "password": "a long enough passphrase"}"#,
            ),
            ("avatar", Some("a.png"), b"AV1"),
        ],
    );
    let dan = signed["access_token"].as_str().unwrap().to_owned();
    let avatar = signed["user"]["data"]["avatar"].clone();
    assert_eq!(fetch_status(&f, &avatar), 200);
    let updated = multipart_call(
        &f,
        "PATCH",
        "/auth-collections/user",
        &dan,
        &[
            (
                "data",
                None,
                format!(r#"{{"data": {{"avatar": {avatar}}}}}"#).as_bytes(),
            ),
            ("avatar", Some("b.png"), b"AV2"),
        ],
    );
    assert_ne!(updated["data"]["avatar"], avatar);
    assert_eq!(fetch_status(&f, &avatar), 404);
    assert_eq!(fetch_status(&f, &updated["data"]["avatar"]), 200);

    // Files alone, no `data` part (what the SDK sends when only files change).
    let second = updated["data"]["avatar"].clone();
    let alone = multipart_call(
        &f,
        "PATCH",
        "/auth-collections/user",
        &dan,
        &[("avatar", Some("c.png"), b"AV3")],
    );
    assert_ne!(alone["data"]["avatar"], second);
    assert_eq!(fetch_status(&f, &second), 404);

    // A refused update keeps the old file and stores no new one.
    let files_before = f.db.buckets().info("uploads").unwrap().file_count;
    let (content_type, body) = common::http::multipart(&[
        ("data", None, br#"{"password": "another long passphrase"}"#),
        ("avatar", Some("d.png"), b"AV4"),
    ]);
    let bearer = format!("Bearer {dan}");
    let refused = common::http::call_raw(
        &f.router,
        "PATCH",
        "/auth-collections/user",
        &[
            ("authorization", bearer.as_str()),
            ("content-type", content_type.as_str()),
        ],
        body,
    );
    assert_eq!(refused.status, 400);
    assert!(
        refused.json()["detail"]
            .as_str()
            .unwrap()
            .starts_with("changing the password")
    );
    assert_eq!(
        f.db.buckets().info("uploads").unwrap().file_count,
        files_before
    );
    assert_eq!(fetch_status(&f, &alone["data"]["avatar"]), 200);
}
