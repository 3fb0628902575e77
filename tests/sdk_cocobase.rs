//! The real Cocobase SDKs against `larder serve` on a free loopback port: the Python SDK (PyPI
//! `cocobase==1.5.0`) must pass every check of `tests/sdk/cocobase_suite.py`, and the JS SDK's
//! realtime watcher (npm `cocobase@1.6.0`, with `ws` as Node's WebSocket) every check of
//! `tests/sdk/cocobase_realtime.mjs`.
#![cfg(feature = "cli")]

mod common;

use common::sdk;

#[test]
fn the_cocobase_sdk_works_against_larder_serve() {
    let python = sdk::python_with("cocobase==1.5.0");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sdk.redb");
    let admin_key = sdk::random_secret();
    let (_server, url) = sdk::serve(&path, &admin_key);
    sdk::run_suite(
        &python,
        "tests/sdk/cocobase_suite.py",
        &[("LARDER_URL", &url), ("LARDER_SK", &admin_key)],
    );
}

#[test]
fn the_cocobase_js_sdk_watches_collections_on_larder() {
    let modules = sdk::node_modules(&["cocobase@1.6.0", "ws@8.23.1"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sdk.redb");
    let admin_key = sdk::random_secret();
    let (_server, url) = sdk::serve(&path, &admin_key);
    for collection in ["tasks", "notes"] {
        let answer = common::wire::send_raw(
            url.trim_start_matches("http://").parse().unwrap(),
            format!(
                "PUT /api/admin/collections/{collection} HTTP/1.1\r\nHost: x\r\nx-api-key: {admin_key}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            )
            .as_bytes(),
        );
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
    sdk::run_node_suite(
        "tests/sdk/cocobase_realtime.mjs",
        &[
            ("NODE_MODULES", modules.to_str().unwrap()),
            ("LARDER_URL", &url),
            ("LARDER_SK", &admin_key),
        ],
    );
}
