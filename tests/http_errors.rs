//! Errors no handler made — an unknown route, a wrong method, a body over the limit, a body
//! that is not JSON — answer in the body shape of the dialect whose route was called, with the
//! status the framework chose.
#![cfg(feature = "http")]

mod common;

use common::http::call_raw;
use larder::{Db, ServerConfig};
use serde_json::Value;

/// How each dialect's SDK reads an error: the message's place in the body.
fn message_of(shape: &str, body: &Value) -> Option<String> {
    let at = match shape {
        "native" => &body["error"]["message"],
        "urbackend" => &body["error"],
        "cocobase" => &body["detail"],
        "ekodb" => &body["message"],
        _ => unreachable!(),
    };
    at.as_str().map(str::to_owned)
}

fn shape_holds(shape: &str, body: &Value, status: u16) -> bool {
    let extra = match shape {
        "native" => body["error"]["code"].is_string() && body.get("detail").is_none(),
        "urbackend" => body["success"] == false && body["code"] == status,
        "cocobase" => body.as_object().is_some_and(|o| o.len() == 1),
        "ekodb" => body["code"] == status && body.get("detail").is_none(),
        _ => false,
    };
    extra && message_of(shape, body).is_some()
}

#[test]
fn framework_errors_come_back_in_each_dialects_shape() {
    let db = Db::in_memory().unwrap();
    let config = ServerConfig {
        max_body_bytes: 1024,
        ..ServerConfig::default()
    };
    let router = larder::router(db, &config);
    let big = vec![b'x'; 4096];
    // (shape, an unknown route under its prefix, a route and a method it does not take, a
    // route that takes a JSON body)
    let doors = [
        (
            "native",
            "/api/admin/nothing-here",
            ("DELETE", "/api/admin/settings"),
            "/api/admin/settings",
        ),
        (
            "urbackend",
            "/api/userAuth/nothing-here",
            ("DELETE", "/api/userAuth/login"),
            "/api/userAuth/login",
        ),
        (
            "cocobase",
            "/auth-collections/nothing-here",
            ("DELETE", "/auth-collections/login"),
            "/auth-collections/login",
        ),
        (
            "ekodb",
            "/api/auth/nothing-here",
            ("DELETE", "/api/auth/token"),
            "/api/auth/token",
        ),
    ];
    for (shape, unknown, (method, path), json_route) in doors {
        let cases = [
            (call_raw(&router, "GET", unknown, &[], Vec::new()), 404),
            (call_raw(&router, method, path, &[], Vec::new()), 405),
            (
                call_raw(
                    &router,
                    "POST",
                    json_route,
                    &[
                        ("content-type", "application/json"),
                        ("content-length", "4096"),
                    ],
                    big.clone(),
                ),
                413,
            ),
        ];
        for (answer, status) in cases {
            assert_eq!(answer.status.as_u16(), status, "{shape}: {}", answer.json());
            let body = answer.json();
            assert!(
                shape_holds(shape, &body, status),
                "{shape} {status}: {body}"
            );
            assert!(
                answer
                    .header("content-type")
                    .starts_with("application/json")
            );
        }
    }
}

#[test]
fn a_create_without_a_json_body_is_400_in_the_dialects_shape_and_stores_nothing() {
    let db = Db::in_memory().unwrap();
    db.collections()
        .create("notes", larder::CollectionSpec::new())
        .unwrap();
    let key = db
        .keys()
        .create(larder::NewApiKey::new(larder::KeyKind::Secret, "server"))
        .unwrap()
        .secret;
    let router = larder::router(db.clone(), &ServerConfig::default());
    let creates = [
        ("urbackend", "/api/data/notes"),
        ("cocobase", "/collections/documents?collection=notes"),
        ("ekodb", "/api/insert/notes"),
    ];
    for (shape, path) in creates {
        for body in [&b""[..], b"not json", b"[1, 2]"] {
            let answer = call_raw(
                &router,
                "POST",
                path,
                &[
                    ("x-api-key", key.as_str()),
                    ("content-type", "application/json"),
                ],
                body.to_vec(),
            );
            assert_eq!(answer.status, 400, "{shape} {:?}: {}", body, answer.json());
            assert!(
                shape_holds(shape, &answer.json(), 400),
                "{shape}: {}",
                answer.json()
            );
        }
    }
    let stored = db
        .collection::<Value>("notes")
        .count(&larder::Filter::All)
        .unwrap();
    assert_eq!(stored, 0, "no empty document was stored");
}
