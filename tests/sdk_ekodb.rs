//! The ekoDB Python client (PyPI `ekodb-client==0.31.0`, built from its source distribution,
//! since it publishes no Linux wheel) against `larder serve` on a free loopback port: the
//! realtime checks of `tests/sdk/ekodb_realtime.py` must pass. (The Rust client's suite is the
//! `tests/ekodb` package.)
#![cfg(feature = "cli")]

mod common;

use common::sdk;

#[test]
fn the_ekodb_python_client_subscribes_on_larder() {
    let python = sdk::python_with("ekodb-client==0.31.0");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sdk.redb");
    let admin_key = sdk::random_secret();
    let (_server, url) = sdk::serve(&path, &admin_key);
    let answer = common::wire::send_raw(
        url.trim_start_matches("http://").parse().unwrap(),
        format!(
            "PUT /api/admin/collections/orders HTTP/1.1\r\nHost: x\r\nx-api-key: {admin_key}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        )
        .as_bytes(),
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    sdk::run_suite(
        &python,
        "tests/sdk/ekodb_realtime.py",
        &[("LARDER_URL", &url), ("LARDER_SK", &admin_key)],
    );
}
