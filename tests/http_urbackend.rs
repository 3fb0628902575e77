//! The urBackend dialect and Cobru's refresh through the router, without a socket: each case is
//! a caller, a request, the expected status and JSON, and for refusals a check that nothing
//! changed.
#![cfg(feature = "http")]

mod common;

use common::http::Answer;
use larder::{CollectionSpec, Db, KeyKind, NewApiKey, Query, Rule, Rules, ServerConfig};
use serde_json::{Value, json};

struct Fixture {
    db: Db,
    router: axum::Router,
    sk: String,
    pk: String,
}

fn fixture() -> Fixture {
    let db = Db::in_memory().unwrap();
    let sk = db
        .keys()
        .create(NewApiKey::new(KeyKind::Secret, "server"))
        .unwrap()
        .secret;
    let pk = db
        .keys()
        .create(NewApiKey::new(KeyKind::Publishable, "app"))
        .unwrap()
        .secret;
    let rules = Rules {
        list: Rule::Public,
        view: Rule::Public,
        create: Rule::Authenticated,
        update: Rule::Owner,
        delete: Rule::Owner,
    };
    db.collections()
        .create(
            "posts",
            CollectionSpec::new().rules(rules).owner_field("userId"),
        )
        .unwrap();
    db.collections()
        .create("secrets", CollectionSpec::new())
        .unwrap();
    let router = larder::router(db.clone(), &ServerConfig::default());
    Fixture { db, router, sk, pk }
}

impl Fixture {
    fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        common::http::call(&self.router, method, path, headers, body)
    }

    fn signup(&self, email: &str) -> Value {
        let answer = self.call(
            "POST",
            "/api/userAuth/signup",
            &[("x-api-key", &self.pk), ("x-refresh-token-mode", "header")],
            Some(json!({"email": email, "password": "a long enough passphrase", "name": "N"})),
        );
        assert_eq!(answer.status, 201, "{}", answer.json);
        answer.json["data"].clone()
    }

    fn posts(&self) -> Vec<larder::Doc> {
        self.db
            .collection::<Value>("posts")
            .find(&Query::new())
            .unwrap()
    }
}

fn bearer(token: &Value) -> String {
    format!("Bearer {}", token.as_str().unwrap())
}

#[test]
fn every_route_needs_a_project_key() {
    let f = fixture();
    for headers in [vec![], vec![("x-api-key", "pk_live_nope")]] {
        for (method, path) in [
            ("GET", "/api/data/posts"),
            ("POST", "/api/userAuth/login"),
            ("GET", "/api/userAuth/me"),
        ] {
            let answer = f.call(method, path, &headers, Some(json!({})));
            assert_eq!(answer.status, 401, "{method} {path} {headers:?}");
            assert_eq!(answer.json["success"], false);
            assert!(
                answer.json["error"].is_string(),
                "the SDK needs a string error"
            );
            assert_eq!(answer.json["code"], 401);
        }
    }
}

#[test]
fn a_scoped_key_opens_these_doors_within_its_grants() {
    let f = fixture();
    let scoped =
        f.db.keys()
            .create(NewApiKey::new(KeyKind::Scoped, "s"))
            .unwrap()
            .secret;
    let headers = [("x-api-key", scoped.as_str())];
    // Known, but granted nothing on `posts`: refused as any door refuses it.
    let data = f.call("GET", "/api/data/posts", &headers, None);
    assert_eq!(data.status, 403, "{}", data.json);
    assert_eq!(data.json["success"], false);
    // The account routes take it as the project key: the empty login body is what fails.
    let login = f.call("POST", "/api/userAuth/login", &headers, Some(json!({})));
    assert_eq!(login.status, 400, "{}", login.json);
}

#[test]
fn signup_login_me_refresh_logout() {
    let f = fixture();
    let data = f.signup("Ada@Example.com");
    assert_eq!(data["email"], "ada@example.com");
    assert_eq!(data["_id"], data["userId"]);
    assert_eq!(data["token"], data["accessToken"]);
    assert_eq!(data["name"], "N");
    assert!(
        data["refreshToken"].is_string(),
        "header mode puts it in the body"
    );
    assert!(data.to_string().find("argon2").is_none());

    let cookie_mode = f.call(
        "POST",
        "/api/userAuth/login",
        &[("x-api-key", &f.pk)],
        Some(json!({"email": "ada@example.com", "password": "a long enough passphrase"})),
    );
    assert_eq!(cookie_mode.status, 200);
    assert!(
        cookie_mode.json["data"]["refreshToken"].is_null(),
        "cookie mode keeps it out of the body"
    );
    let cookie = cookie_mode.headers["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.starts_with("refreshToken="));
    assert_eq!(cookie_mode.headers["cache-control"], "no-store");
    let access = cookie_mode.json["data"]["accessToken"].clone();

    let me = f.call(
        "GET",
        "/api/userAuth/me",
        &[("x-api-key", &f.pk), ("authorization", &bearer(&access))],
        None,
    );
    assert_eq!(me.status, 200);
    assert_eq!(me.json["data"]["email"], "ada@example.com");
    let forged = f.call(
        "GET",
        "/api/userAuth/me",
        &[("x-api-key", &f.pk), ("authorization", "Bearer e30.e30.x")],
        None,
    );
    assert_eq!(forged.status, 401);

    // Refresh from the cookie, then from the header; a replay fails.
    let raw_cookie = cookie.split(';').next().unwrap().to_owned();
    let refreshed = f.call(
        "POST",
        "/api/userAuth/refresh-token",
        &[("x-api-key", &f.pk), ("cookie", &raw_cookie)],
        None,
    );
    assert_eq!(refreshed.status, 200, "{}", refreshed.json);
    let replay = f.call(
        "POST",
        "/api/userAuth/refresh-token",
        &[("x-api-key", &f.pk), ("cookie", &raw_cookie)],
        None,
    );
    assert_eq!(replay.status, 401);
    let header_token = data["refreshToken"].as_str().unwrap();
    let by_header = f.call(
        "POST",
        "/api/userAuth/refresh-token",
        &[("x-api-key", &f.pk), ("x-refresh-token", header_token)],
        None,
    );
    assert_eq!(by_header.status, 200);
    assert!(by_header.json["data"]["refreshToken"].is_string());

    let new_access = by_header.json["data"]["accessToken"].clone();
    let out = f.call(
        "POST",
        "/api/userAuth/logout",
        &[
            ("x-api-key", &f.pk),
            ("authorization", &bearer(&new_access)),
        ],
        None,
    );
    assert_eq!(out.status, 200);
    assert_eq!(out.json["success"], true);
    let after = f.call(
        "GET",
        "/api/userAuth/me",
        &[
            ("x-api-key", &f.pk),
            ("authorization", &bearer(&new_access)),
        ],
        None,
    );
    assert_eq!(after.status, 401, "logged-out tokens die at once");
}

#[test]
fn login_failures_look_the_same_and_throttle_with_retry_after() {
    let f = fixture();
    f.signup("a@example.com");
    let wrong = f.call(
        "POST",
        "/api/userAuth/login",
        &[("x-api-key", &f.pk)],
        Some(json!({"email": "a@example.com", "password": "wrong password!"})),
    );
    let unknown = f.call(
        "POST",
        "/api/userAuth/login",
        &[("x-api-key", &f.pk)],
        Some(json!({"email": "b@example.com", "password": "wrong password!"})),
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json, unknown.json, "byte-identical bodies");
    for _ in 0..9 {
        f.call(
            "POST",
            "/api/userAuth/login",
            &[("x-api-key", &f.pk)],
            Some(json!({"email": "a@example.com", "password": "wrong password!"})),
        );
    }
    let throttled = f.call(
        "POST",
        "/api/userAuth/login",
        &[("x-api-key", &f.pk)],
        Some(json!({"email": "a@example.com", "password": "a long enough passphrase"})),
    );
    assert_eq!(throttled.status, 429);
    let retry: u64 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0);
}

#[test]
fn duplicate_signups_and_server_managed_profile_fields_are_400() {
    let f = fixture();
    let data = f.signup("a@example.com");
    let again = f.call(
        "POST",
        "/api/userAuth/signup",
        &[("x-api-key", &f.pk)],
        Some(json!({"email": "A@example.com", "password": "another passphrase"})),
    );
    assert_eq!(again.status, 400);
    assert!(
        again
            .json
            .to_string()
            .find(data["_id"].as_str().unwrap())
            .is_none()
    );
    let token = bearer(&data["accessToken"]);
    for body in [
        json!({"emailVerified": true}),
        json!({"password": "x"}),
        json!({"_id": "x"}),
        json!({"role": "admin"}),
    ] {
        let answer = f.call(
            "PUT",
            "/api/userAuth/update-profile",
            &[("x-api-key", &f.pk), ("authorization", &token)],
            Some(body.clone()),
        );
        assert_eq!(answer.status, 400, "{body}");
    }
    let ok = f.call(
        "PUT",
        "/api/userAuth/update-profile",
        &[("x-api-key", &f.pk), ("authorization", &token)],
        Some(json!({"bio": "hi"})),
    );
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json["data"]["user"]["bio"], "hi");
    let wrong = f.call(
        "PUT",
        "/api/userAuth/change-password",
        &[("x-api-key", &f.pk), ("authorization", &token)],
        Some(json!({"currentPassword": "nope nope", "newPassword": "a new passphrase"})),
    );
    assert_eq!(wrong.status, 401);
}

#[test]
fn public_profiles_are_an_allow_list() {
    let f = fixture();
    let answer = f.call(
        "POST",
        "/api/userAuth/signup",
        &[("x-api-key", &f.pk)],
        Some(json!({"email": "p@example.com", "password": "a long enough passphrase", "username": "pat", "name": "Pat", "phone": "555"})),
    );
    assert_eq!(answer.status, 201);
    let profile = f.call(
        "GET",
        "/api/userAuth/public/pat",
        &[("x-api-key", &f.pk)],
        None,
    );
    assert_eq!(profile.status, 200);
    assert_eq!(profile.json["data"]["name"], "Pat");
    let text = profile.json.to_string();
    assert!(!text.contains("555") && !text.contains("p@example.com"));
    assert_eq!(
        f.call(
            "GET",
            "/api/userAuth/public/nobody",
            &[("x-api-key", &f.pk)],
            None
        )
        .status,
        404
    );
}

#[test]
fn the_write_matrix_and_owner_rules() {
    let f = fixture();
    let ada = f.signup("ada@example.com");
    let bob = f.signup("bob@example.com");
    let (ada_token, bob_token) = (bearer(&ada["accessToken"]), bearer(&bob["accessToken"]));
    let as_ada = [
        ("x-api-key", f.pk.as_str()),
        ("authorization", ada_token.as_str()),
    ];
    let as_bob = [
        ("x-api-key", f.pk.as_str()),
        ("authorization", bob_token.as_str()),
    ];

    // pk without a user: no writes, nothing stored.
    let anonymous = f.call(
        "POST",
        "/api/data/posts",
        &[("x-api-key", &f.pk)],
        Some(json!({"title": "x"})),
    );
    assert_eq!(anonymous.status, 401);
    assert!(f.posts().is_empty());

    let created = f.call(
        "POST",
        "/api/data/posts",
        &as_ada,
        Some(json!({"title": "hello", "n": 2})),
    );
    assert_eq!(created.status, 201, "{}", created.json);
    let doc = &created.json["data"];
    assert_eq!(doc["userId"], ada["_id"], "the owner is filled in");
    assert!(doc["createdAt"].as_str().unwrap().ends_with('Z'));
    let id = doc["_id"].as_str().unwrap().to_owned();

    let spoof = f.call(
        "POST",
        "/api/data/posts",
        &as_bob,
        Some(json!({"title": "x", "userId": ada["_id"]})),
    );
    assert_eq!(spoof.status, 403);
    let before = f.posts();
    for (method, body) in [
        ("PATCH", json!({"title": "mine now"})),
        ("PUT", json!({"title": "mine now"})),
    ] {
        let answer = f.call(
            method,
            &format!("/api/data/posts/{id}"),
            &as_bob,
            Some(body),
        );
        assert_eq!(answer.status, 403, "{method}");
    }
    assert_eq!(
        f.call("DELETE", &format!("/api/data/posts/{id}"), &as_bob, None)
            .status,
        403
    );
    assert_eq!(f.posts(), before, "refusals changed nothing");

    // PUT is the hosted service's `$set`: the given fields are set whole (a dotted key sets
    // one nested field), the others and the owner are kept; PATCH merges too.
    let put = f.call(
        "PUT",
        &format!("/api/data/posts/{id}"),
        &as_ada,
        Some(json!({"title": "replaced", "meta": {"a": 1, "b": 2}})),
    );
    assert_eq!(put.status, 200, "{}", put.json);
    assert_eq!(put.json["data"]["userId"], ada["_id"]);
    assert_eq!(put.json["data"]["n"], 2, "fields left out are kept");
    let put = f.call(
        "PUT",
        &format!("/api/data/posts/{id}"),
        &as_ada,
        Some(json!({"meta": {"c": 3}, "stats.likes": 4, "note": null})),
    );
    assert_eq!(
        put.json["data"]["meta"],
        json!({"c": 3}),
        "an object is set whole"
    );
    assert_eq!(put.json["data"]["stats"], json!({"likes": 4}));
    assert!(
        put.json["data"].as_object().unwrap().contains_key("note"),
        "null is stored"
    );
    let patched = f.call(
        "PATCH",
        &format!("/api/data/posts/{id}"),
        &as_ada,
        Some(json!({"n": 5})),
    );
    assert_eq!(patched.json["data"]["title"], "replaced");
    assert_eq!(patched.json["data"]["n"], 5);

    // The secret key writes anywhere, bypassing rules, with no owner checks.
    let server = f.call(
        "POST",
        "/api/data/secrets",
        &[("x-api-key", &f.sk)],
        Some(json!({"k": 1})),
    );
    assert_eq!(server.status, 201);
    assert_eq!(
        f.call("GET", "/api/data/secrets", &[("x-api-key", &f.pk)], None)
            .status,
        401
    );

    let deleted = f.call("DELETE", &format!("/api/data/posts/{id}"), &as_ada, None);
    assert_eq!(
        deleted.json["data"],
        json!({"_id": id, "id": id, "deleted": true, "message": "Document deleted"}),
        "what both SDKs read to report a deletion"
    );
    assert_eq!(
        f.call("DELETE", &format!("/api/data/posts/{id}"), &as_ada, None)
            .status,
        404
    );
}

#[test]
fn lists_filter_sort_page_and_count_with_typed_values() {
    let f = fixture();
    for (title, price, published) in [
        ("a", 2, true),
        ("b", 10, false),
        ("c", 7, true),
        ("d", 30, true),
    ] {
        f.call("POST", "/api/data/posts", &[("x-api-key", &f.sk)], Some(json!({"title": title, "price": price, "published": published, "tags": [title, "all"]})));
    }
    let titles = |answer: &Answer| -> Vec<String> {
        answer.json["data"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let pk = [("x-api-key", f.pk.as_str())];
    let sorted = f.call("GET", "/api/data/posts?sort=price", &pk, None);
    assert_eq!(
        titles(&sorted),
        ["a", "c", "b", "d"],
        "numeric, not textual"
    );
    assert_eq!(sorted.json["data"]["total"], 4);
    let filtered = f.call(
        "GET",
        "/api/data/posts?published=True&price_gt=5&sort=-price",
        &pk,
        None,
    );
    assert_eq!(titles(&filtered), ["d", "c"]);
    let in_list = f.call(
        "GET",
        "/api/data/posts?tags_in=b&tags_in=c&sort=title:asc",
        &pk,
        None,
    );
    assert_eq!(titles(&in_list), ["b", "c"]);
    let page = f.call(
        "GET",
        "/api/data/posts?sort=title&limit=2&page=2",
        &pk,
        None,
    );
    assert_eq!(titles(&page), ["c", "d"]);
    let skip = f.call(
        "GET",
        "/api/data/posts?sort=title&limit=2&skip=1",
        &pk,
        None,
    );
    assert_eq!(titles(&skip), ["b", "c"]);
    let count = f.call(
        "GET",
        "/api/data/posts?published=true&count=true",
        &pk,
        None,
    );
    assert_eq!(count.json["data"], json!({"count": 3}));
    assert_eq!(
        f.call("GET", "/api/data/posts?limit=x", &pk, None).status,
        400
    );
}

#[test]
fn users_and_unknown_collections_are_out_of_reach() {
    let f = fixture();
    for path in ["/api/data/users", "/api/data/Users", "/api/data/USERS/abc"] {
        for key in [&f.pk, &f.sk] {
            let answer = f.call("GET", path, &[("x-api-key", key)], None);
            assert_eq!(answer.status, 403, "{path}");
            let write = f.call(
                "POST",
                path,
                &[("x-api-key", key)],
                Some(json!({"email": "x"})),
            );
            assert!(matches!(write.status.as_u16(), 403 | 405), "{path}");
        }
    }
    assert_eq!(
        f.call("GET", "/api/data/nope", &[("x-api-key", &f.sk)], None)
            .status,
        404
    );
    assert_eq!(f.db.users().list().unwrap().len(), 0);
}

#[test]
fn cobru_refresh_mints_access_tokens_from_one_refresh_token() {
    let f = fixture();
    let data = f.signup("c@example.com");
    let refresh = data["refreshToken"].clone();
    for _ in 0..3 {
        let answer = f.call(
            "POST",
            "/token/refresh/",
            &[("x-api-key", &f.sk)],
            Some(json!({"refresh": refresh})),
        );
        assert_eq!(answer.status, 200, "{}", answer.json);
        let me = f.call(
            "GET",
            "/api/userAuth/me",
            &[
                ("x-api-key", &f.pk),
                ("authorization", &bearer(&answer.json["access"])),
            ],
            None,
        );
        assert_eq!(me.status, 200);
    }
    let missing_key = f.call(
        "POST",
        "/token/refresh/",
        &[],
        Some(json!({"refresh": refresh})),
    );
    assert_eq!(missing_key.status, 401);
    assert!(missing_key.json["detail"].is_string());
    let wrong_field = f.call(
        "POST",
        "/token/refresh/",
        &[("x-api-key", &f.sk)],
        Some(json!({"refresh_token": refresh})),
    );
    assert_eq!(wrong_field.status, 400);
    let bad = f.call(
        "POST",
        "/token/refresh/",
        &[("x-api-key", &f.sk)],
        Some(json!({"refresh": "nope"})),
    );
    assert_eq!(bad.status, 401);
}

#[test]
fn mail_goes_to_the_outbox_with_the_secret_key_only() {
    let f = fixture();
    let body = json!({"to": ["a@example.com", "b@example.com"], "subject": "Hi", "text": "Hello"});
    let refused = f.call(
        "POST",
        "/api/mail/send",
        &[("x-api-key", &f.pk)],
        Some(body.clone()),
    );
    assert_eq!(refused.status, 403);
    assert!(f.db.mail().outbox().unwrap().is_empty());
    let sent = f.call(
        "POST",
        "/api/mail/send",
        &[("x-api-key", &f.sk)],
        Some(body),
    );
    assert_eq!(sent.status, 200, "{}", sent.json);
    assert_eq!(sent.json["data"]["provider"], "outbox");
    let template = f.call(
        "POST",
        "/api/mail/send",
        &[("x-api-key", &f.sk)],
        Some(json!({"to": "c@example.com", "templateName": "welcome", "variables": {"name": "C"}})),
    );
    assert_eq!(template.status, 200);
    for bad in [
        json!({"to": "not an email", "subject": "x", "text": "y"}),
        json!({"to": "a@example.com"}),
        json!({"subject": "x", "text": "y"}),
    ] {
        assert_eq!(
            f.call(
                "POST",
                "/api/mail/send",
                &[("x-api-key", &f.sk)],
                Some(bad.clone())
            )
            .status,
            400,
            "{bad}"
        );
    }
    let outbox = f.db.mail().outbox().unwrap();
    assert_eq!(outbox.len(), 2);
    assert_eq!(outbox[0].message.to, ["a@example.com", "b@example.com"]);
    assert_eq!(outbox[1].message.template.as_deref(), Some("welcome"));
}

#[test]
fn verification_and_reset_routes() {
    let f = fixture();
    let data = f.signup("v@example.com");
    let pk = [("x-api-key", f.pk.as_str())];
    let code = |db: &Db| {
        db.mail()
            .outbox()
            .unwrap()
            .last()
            .unwrap()
            .message
            .variables["code"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let resend = f.call(
        "POST",
        "/api/userAuth/resend-verification-otp",
        &pk,
        Some(json!({"email": "v@example.com"})),
    );
    let unknown = f.call(
        "POST",
        "/api/userAuth/resend-verification-otp",
        &pk,
        Some(json!({"email": "nobody@example.com"})),
    );
    assert_eq!(resend.status, 200);
    assert_eq!(
        resend.json, unknown.json,
        "the same answer for unknown emails"
    );
    let again = f.call(
        "POST",
        "/api/userAuth/resend-verification-otp",
        &pk,
        Some(json!({"email": "nobody@example.com"})),
    );
    assert_eq!(again.status, 429);
    assert!(again.headers.contains_key("retry-after"));
    let wrong = f.call(
        "POST",
        "/api/userAuth/verify-email",
        &pk,
        Some(json!({"email": "v@example.com", "otp": "x"})),
    );
    assert_eq!(wrong.status, 400);
    let verified = f.call(
        "POST",
        "/api/userAuth/verify-email",
        &pk,
        Some(json!({"email": "v@example.com", "otp": code(&f.db)})),
    );
    assert_eq!(verified.status, 200, "{}", verified.json);
    assert!(f.db.users().list().unwrap()[0].email_verified);

    let requested = f.call(
        "POST",
        "/api/userAuth/request-password-reset",
        &pk,
        Some(json!({"email": "v@example.com"})),
    );
    assert_eq!(requested.status, 200);
    let reset = f.call(
        "POST",
        "/api/userAuth/reset-password",
        &pk,
        Some(json!({"email": "v@example.com", "otp": code(&f.db), "newPassword": "a brand new passphrase"})),
    );
    assert_eq!(reset.status, 200, "{}", reset.json);
    let me = f.call(
        "GET",
        "/api/userAuth/me",
        &[
            ("x-api-key", &f.pk),
            ("authorization", &bearer(&data["accessToken"])),
        ],
        None,
    );
    assert_eq!(me.status, 401, "a reset ends every session");
}
