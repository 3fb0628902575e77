//! Access tokens: only EdDSA tokens signed by this database's key, with the right issuer,
//! audience and type, inside their validity window (±30 s), are accepted; every forgery is
//! `Unauthenticated`.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::memory_db;
use jwt_simple::prelude::*;
use larder::{Client, Clock, Db, ErrorKind, NewUser};
use serde_json::{Value, json};

fn signed_up(db: &Db) -> larder::SignedIn {
    db.users()
        .signup(
            NewUser::new("tok@example.com", "a long enough passphrase"),
            &Client::unknown(),
        )
        .unwrap()
}

fn refused(db: &Db, token: &str) -> bool {
    matches!(
        db.sessions()
            .authenticate(token)
            .map(|_| ())
            .unwrap_err()
            .kind(),
        ErrorKind::Unauthenticated { .. }
    )
}

fn parts(token: &str) -> (Value, Value, String) {
    let mut it = token.split('.');
    let header = serde_json::from_slice(&B64.decode(it.next().unwrap()).unwrap()).unwrap();
    let payload = serde_json::from_slice(&B64.decode(it.next().unwrap()).unwrap()).unwrap();
    (header, payload, it.next().unwrap().to_owned())
}

fn encode(header: &Value, payload: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(header.to_string()),
        B64.encode(payload.to_string()),
        signature
    )
}

#[test]
fn a_fresh_token_authenticates_and_carries_the_expected_claims() {
    let (db, _) = memory_db();
    let signed_in = signed_up(&db);
    let session = db.sessions().authenticate(&signed_in.access_token).unwrap();
    assert_eq!(session.user().id, signed_in.user.id);
    assert_eq!(session.session_id(), signed_in.session_id);
    let (header, payload, _) = parts(&signed_in.access_token);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(
        header["kid"],
        db.signing_keys().jwks().unwrap()["keys"][0]["kid"]
    );
    assert_eq!(payload["iss"], "larder");
    assert_eq!(payload["aud"], "larder");
    assert_eq!(payload["typ"], "access");
    assert_eq!(payload["sub"], json!(signed_in.user.id));
    assert_eq!(payload["sid"], json!(signed_in.session_id));
    assert_eq!(
        payload["exp"].as_u64().unwrap() - payload["iat"].as_u64().unwrap(),
        3600,
        "JWT_EXPIRY_MINUTES defaults to 60"
    );
    assert_eq!(signed_in.expires_in, 3600);
}

#[test]
fn alg_none_is_refused() {
    let (db, _) = memory_db();
    let token = signed_up(&db).access_token;
    let (mut header, payload, _) = parts(&token);
    header["alg"] = json!("none");
    assert!(refused(&db, &encode(&header, &payload, "")));
    header["alg"] = json!("None");
    assert!(refused(&db, &encode(&header, &payload, "")));
}

/// HMAC-SHA256 (RFC 2104), so the test can forge HS256 tokens with any key, even empty.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::digest([pad(0x36), message.to_vec()].concat());
    Sha256::digest([pad(0x5c), inner.to_vec()].concat()).to_vec()
}

#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    let (db, _) = memory_db();
    let signed_in = signed_up(&db);
    let jwks = db.signing_keys().jwks().unwrap();
    let x = jwks["keys"][0]["x"].as_str().unwrap();
    let public = B64.decode(x).unwrap();
    let (mut header, payload, _) = parts(&signed_in.access_token);
    for alg in ["HS256", "HS512"] {
        header["alg"] = json!(alg);
        for key in [public.clone(), x.as_bytes().to_vec(), vec![]] {
            let unsigned = format!(
                "{}.{}",
                B64.encode(header.to_string()),
                B64.encode(payload.to_string())
            );
            let forged = format!(
                "{unsigned}.{}",
                B64.encode(hmac_sha256(&key, unsigned.as_bytes()))
            );
            assert!(refused(&db, &forged), "{alg}");
        }
    }
    // The same payload with an HS256 header and the original signature is refused too.
    let (_, _, signature) = parts(&signed_in.access_token);
    header["alg"] = json!("HS256");
    assert!(refused(&db, &encode(&header, &payload, &signature)));
}

#[test]
fn a_token_from_another_key_is_refused() {
    let (db, _) = memory_db();
    let signed_in = signed_up(&db);
    let kid = db.signing_keys().jwks().unwrap()["keys"][0]["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, payload, _) = parts(&signed_in.access_token);
    let attacker = Ed25519KeyPair::generate().with_key_id(&kid);
    let custom = json!({"typ": "access", "sid": payload["sid"]});
    let claims = Claims::with_custom_claims(custom, Duration::from_secs(600).into())
        .with_issuer("larder")
        .with_audience("larder")
        .with_subject(payload["sub"].as_str().unwrap());
    assert!(refused(&db, &attacker.sign(claims).unwrap()));

    // Another database's genuine token is refused too.
    let (other, _) = memory_db();
    assert!(refused(&db, &signed_up(&other).access_token));
}

#[test]
fn tampered_payloads_and_transplanted_signatures_are_refused() {
    let (db, _) = memory_db();
    let first = signed_up(&db);
    let second = db
        .users()
        .signup(
            NewUser::new("other@example.com", "another long passphrase"),
            &Client::unknown(),
        )
        .unwrap();
    let (header, payload, signature) = parts(&first.access_token);
    for (claim, value) in [
        ("sub", json!(second.user.id)),
        ("sid", json!(second.session_id)),
        ("exp", json!(payload["exp"].as_u64().unwrap() + 86_400)),
        ("typ", json!("refresh")),
        ("role", json!("admin")),
    ] {
        let mut tampered = payload.clone();
        tampered[claim] = value;
        assert!(
            refused(&db, &encode(&header, &tampered, &signature)),
            "{claim}"
        );
    }
    let (_, _, other_signature) = parts(&second.access_token);
    assert!(refused(&db, &encode(&header, &payload, &other_signature)));
    assert!(refused(
        &db,
        &encode(&header, &payload, &B64.encode([7u8; 64]))
    ));
}

#[test]
fn malformed_and_oversized_tokens_are_refused() {
    let (db, _) = memory_db();
    let good = signed_up(&db).access_token;
    let huge = format!("{good}{}", "A".repeat(100_000));
    for bad in [
        "",
        "x",
        "a.b",
        "a.b.c.d",
        "!!!.???.***",
        "e30.e30.",
        "W10.W10.AA",
        huge.as_str(),
    ] {
        assert!(refused(&db, bad), "{bad:.40}");
    }
}

#[test]
fn expired_tokens_are_refused_after_the_tolerance() {
    let (db, clock) = memory_db();
    let token = signed_up(&db).access_token;
    clock.advance(Duration::from_secs(3600 + 29));
    db.sessions().authenticate(&token).unwrap();
    clock.advance(Duration::from_secs(2));
    assert!(refused(&db, &token));
}

#[test]
fn expiry_is_enforced_for_cached_tokens_too() {
    let (db, clock) = memory_db();
    let token = signed_up(&db).access_token;
    db.sessions().authenticate(&token).unwrap(); // now in the verified-token cache
    clock.advance(Duration::from_secs(3600 + 31));
    assert!(refused(&db, &token));
}

#[test]
fn tokens_from_the_future_are_refused() {
    let (db, clock) = memory_db();
    let token = signed_up(&db).access_token;
    clock.set(clock.now() - Duration::from_secs(120));
    assert!(
        refused(&db, &token),
        "not valid before its issue time (beyond 30 s)"
    );
    clock.advance(Duration::from_secs(100));
    db.sessions().authenticate(&token).unwrap();
}

#[test]
fn the_token_lifetime_follows_the_setting() {
    let (db, clock) = memory_db();
    db.project()
        .update_settings(&json!({"JWT_EXPIRY_MINUTES": 5}))
        .unwrap();
    let signed_in = signed_up(&db);
    assert_eq!(signed_in.expires_in, 300);
    clock.advance(Duration::from_secs(300 + 31));
    assert!(refused(&db, &signed_in.access_token));
    assert!(
        db.project()
            .update_settings(&json!({"JWT_EXPIRY_MINUTES": 0}))
            .is_err()
    );
    assert!(
        db.project()
            .update_settings(&json!({"NO_SUCH_SETTING": 1}))
            .is_err()
    );
}

#[test]
fn rotation_keeps_old_tokens_valid_until_they_expire() {
    let (db, clock) = memory_db();
    let old = signed_up(&db);
    let old_kid = db.signing_keys().jwks().unwrap()["keys"][0]["kid"].clone();
    db.signing_keys().rotate().unwrap();
    let jwks = db.signing_keys().jwks().unwrap();
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        2,
        "both keys published"
    );
    db.sessions().authenticate(&old.access_token).unwrap();
    let new = db.sessions().refresh(&old.refresh_token).unwrap();
    let (header, _, _) = parts(&new.access_token);
    assert_ne!(header["kid"], old_kid, "new tokens use the new key");

    clock.advance(Duration::from_secs(3600 + 31));
    assert!(refused(&db, &old.access_token));
    db.signing_keys().rotate().unwrap();
    let kids: Vec<Value> = db.signing_keys().jwks().unwrap()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert!(
        !kids.contains(&old_kid),
        "the first key is gone after its grace period"
    );
}

#[test]
fn keys_survive_a_reopen() {
    let t = common::TestDb::new();
    let signed_in = signed_up(&t.db);
    let t = t.reopen();
    t.db.sessions()
        .authenticate(&signed_in.access_token)
        .unwrap();
}
