//! The real Cocobase Python SDK (PyPI `cocobase==1.5.0`) against `larder serve` on a free
//! loopback port: `tests/sdk/cocobase_suite.py` must pass every check.
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
