//! The real urBackend SDKs against `larder serve` on a free loopback port: the Python SDK (PyPI
//! `urbackend==0.1.0`) must pass every check of `tests/sdk/urbackend_suite.py`, and the
//! TypeScript SDK (npm `@urbackend/sdk@0.4.8`) every check of `tests/sdk/urbackend_ts.mjs`.
#![cfg(feature = "cli")]

mod common;

use common::sdk;
use larder::{CollectionSpec, Db, KeyKind, NewApiKey, Rule, Rules};

#[test]
fn the_urbackend_sdk_works_against_larder_serve() {
    let python = sdk::python_with("urbackend==0.1.0");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sdk.redb");
    let admin_key = sdk::random_secret();
    let publishable = {
        let db = Db::open(&path).unwrap();
        let posts = Rules {
            list: Rule::Public,
            view: Rule::Public,
            create: Rule::Authenticated,
            update: Rule::Owner,
            delete: Rule::Owner,
        };
        db.collections()
            .create(
                "posts",
                CollectionSpec::new().rules(posts).owner_field("userId"),
            )
            .unwrap();
        db.collections()
            .create("private_notes", CollectionSpec::new())
            .unwrap();
        db.keys()
            .create(NewApiKey::new(KeyKind::Publishable, "sdk"))
            .unwrap()
            .secret
    };
    let (_server, url) = sdk::serve(&path, &admin_key);
    sdk::run_suite(
        &python,
        "tests/sdk/urbackend_suite.py",
        &[
            ("LARDER_URL", &url),
            ("LARDER_SK", &admin_key),
            ("LARDER_PK", &publishable),
        ],
    );
}

#[test]
fn the_urbackend_typescript_sdk_works_against_larder_serve() {
    let modules = sdk::node_modules(&["@urbackend/sdk@0.4.8"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sdk.redb");
    let admin_key = sdk::random_secret();
    let publishable = {
        let db = Db::open(&path).unwrap();
        db.collections()
            .create("products", CollectionSpec::new().index("price"))
            .unwrap();
        db.keys()
            .create(NewApiKey::new(KeyKind::Publishable, "app"))
            .unwrap()
            .secret
    };
    let (_server, url) = sdk::serve(&path, &admin_key);
    sdk::run_node_suite(
        "tests/sdk/urbackend_ts.mjs",
        &[
            ("NODE_MODULES", modules.to_str().unwrap()),
            ("LARDER_URL", &url),
            ("LARDER_SK", &admin_key),
            ("LARDER_PK", &publishable),
        ],
    );
}
