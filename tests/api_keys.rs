//! API keys: creation (secret shown once), listing without secrets, revoke and rotate taking
//! effect on the very next request (JWTs minted from a key included), expiry, grants with
//! before/after reports, and only hashes in the file.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{TestDb, memory_db};
use larder::{Credentials, Db, ErrorKind, Grant, KeyKind, NewApiKey};

fn unauthenticated<T: std::fmt::Debug>(result: larder::Result<T>) -> bool {
    matches!(
        result.unwrap_err().kind(),
        ErrorKind::Unauthenticated { .. }
    )
}

fn as_key(db: &Db, secret: &str) -> larder::Result<larder::Principal> {
    db.authenticate_request(Credentials {
        api_key: Some(secret),
        bearer: None,
    })
}

#[test]
fn keys_have_the_documented_shapes() {
    let (db, _) = memory_db();
    for (kind, prefix) in [
        (KeyKind::Secret, "sk_live_"),
        (KeyKind::Publishable, "pk_live_"),
        (KeyKind::Scoped, "rk_live_"),
    ] {
        let key = db.keys().create(NewApiKey::new(kind, "label")).unwrap();
        assert!(key.secret.starts_with(prefix));
        assert_eq!(key.secret.len(), prefix.len() + 43, "256 random bits");
        assert_eq!(key.info.id.len(), 32);
        assert!(
            key.info
                .id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(key.info.prefix, key.secret[..prefix.len() + 4]);
        assert!(
            !format!("{key:?}").contains(&key.secret),
            "Debug hides the secret"
        );
        let principal = as_key(&db, &key.secret).unwrap();
        assert_eq!(principal.key_id(), Some(key.info.id.as_str()));
        assert_eq!(principal.is_admin(), kind == KeyKind::Secret);
    }
}

#[test]
fn listings_never_show_secrets() {
    let (db, _) = memory_db();
    let key = db
        .keys()
        .create(NewApiKey::new(KeyKind::Secret, "ops").description("for scripts"))
        .unwrap();
    let listed = db.keys().list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0], db.keys().get(&key.info.id).unwrap());
    let text = serde_json::to_string(&listed).unwrap();
    assert!(!text.contains(&key.secret));
    assert!(text.contains("for scripts"));
}

#[test]
fn bad_keys_are_unauthenticated_never_anonymous() {
    let (db, _) = memory_db();
    let key = db
        .keys()
        .create(NewApiKey::new(KeyKind::Publishable, "web"))
        .unwrap();
    let mut tampered = key.secret.clone();
    tampered.pop();
    tampered.push('x');
    let long = format!("sk_live_{}", "a".repeat(10_000));
    for bad in [
        "",
        "nope",
        "sk_live_",
        "sk_live_AAAA",
        &tampered,
        &long,
        "pk_live_ü",
    ] {
        assert!(unauthenticated(as_key(&db, bad)), "{bad:.30}");
    }
    assert_eq!(
        db.authenticate_request(Credentials::default())
            .unwrap()
            .kind_name(),
        "anonymous"
    );
}

#[test]
fn revocation_takes_effect_on_the_next_request() {
    let (db, _) = memory_db();
    let key = db
        .keys()
        .create(NewApiKey::new(KeyKind::Secret, "ops"))
        .unwrap();
    as_key(&db, &key.secret).unwrap(); // cached now
    let (jwt, _) = db.keys().token(&key.secret).unwrap();
    let bearer = Credentials {
        api_key: None,
        bearer: Some(&jwt),
    };
    assert_eq!(
        db.authenticate_request(bearer).unwrap().key_id(),
        Some(key.info.id.as_str())
    );
    db.keys().revoke(&key.info.id).unwrap();
    assert!(unauthenticated(as_key(&db, &key.secret)));
    assert!(
        unauthenticated(db.authenticate_request(bearer)),
        "minted JWTs die too"
    );
    assert!(db.keys().list().unwrap().is_empty());
    assert!(matches!(
        db.keys().revoke(&key.info.id).unwrap_err().kind(),
        ErrorKind::NotFound { .. }
    ));
}

#[test]
fn rotation_without_overlap_switches_at_once() {
    let (db, _) = memory_db();
    let key = db
        .keys()
        .create(NewApiKey::new(KeyKind::Secret, "ops"))
        .unwrap();
    let (old_jwt, _) = db.keys().token(&key.secret).unwrap();
    let rotated = db.keys().rotate(&key.info.id, Duration::ZERO).unwrap();
    assert_eq!(rotated.info.id, key.info.id);
    assert_ne!(rotated.secret, key.secret);
    assert!(unauthenticated(as_key(&db, &key.secret)));
    assert!(unauthenticated(db.authenticate_request(Credentials {
        api_key: None,
        bearer: Some(&old_jwt)
    })));
    as_key(&db, &rotated.secret).unwrap();
}

#[test]
fn rotation_with_overlap_keeps_the_old_secret_for_a_while() {
    let (db, clock) = memory_db();
    let key = db
        .keys()
        .create(NewApiKey::new(KeyKind::Secret, "ops"))
        .unwrap();
    let (old_jwt, _) = db.keys().token(&key.secret).unwrap();
    let rotated = db
        .keys()
        .rotate(&key.info.id, Duration::from_secs(300))
        .unwrap();
    as_key(&db, &rotated.secret).unwrap();
    as_key(&db, &key.secret).unwrap();
    let old_bearer = Credentials {
        api_key: None,
        bearer: Some(&old_jwt),
    };
    db.authenticate_request(old_bearer).unwrap();
    clock.advance(Duration::from_secs(301));
    assert!(unauthenticated(as_key(&db, &key.secret)));
    assert!(unauthenticated(db.authenticate_request(old_bearer)));
    as_key(&db, &rotated.secret).unwrap();
    // A second rotation ends the first overlap for good.
    let again = db
        .keys()
        .rotate(&key.info.id, Duration::from_secs(300))
        .unwrap();
    assert!(unauthenticated(as_key(&db, &key.secret)));
    as_key(&db, &rotated.secret).unwrap();
    as_key(&db, &again.secret).unwrap();
}

#[test]
fn expired_keys_stop_working() {
    let (db, clock) = memory_db();
    let expiry = larder::Clock::now(&clock) + Duration::from_secs(60);
    let key = db
        .keys()
        .create(NewApiKey::new(KeyKind::Publishable, "web").expires_at(expiry))
        .unwrap();
    as_key(&db, &key.secret).unwrap();
    clock.advance(Duration::from_secs(61));
    assert!(unauthenticated(as_key(&db, &key.secret)));
    let past = larder::Clock::now(&clock) - Duration::from_secs(1);
    assert!(
        db.keys()
            .create(NewApiKey::new(KeyKind::Secret, "x").expires_at(past))
            .is_err()
    );
}

#[test]
fn last_use_is_tracked() {
    let (db, clock) = memory_db();
    let key = db
        .keys()
        .create(NewApiKey::new(KeyKind::Secret, "ops"))
        .unwrap();
    assert_eq!(db.keys().get(&key.info.id).unwrap().last_used_at, None);
    clock.advance(Duration::from_secs(10));
    as_key(&db, &key.secret).unwrap();
    let used = db.keys().get(&key.info.id).unwrap().last_used_at.unwrap();
    assert!(used.starts_with("2023-11-14T22:13:30"), "{used}");
}

#[test]
fn grants_belong_to_scoped_keys_and_report_their_changes() {
    let (db, _) = memory_db();
    let secret = db
        .keys()
        .create(NewApiKey::new(KeyKind::Secret, "ops"))
        .unwrap();
    assert!(
        db.keys()
            .put_grant(&secret.info.id, "orders", Some(Grant::read()))
            .is_err()
    );
    assert!(
        db.keys()
            .create(NewApiKey::new(KeyKind::Publishable, "x").grant("orders", Grant::read()))
            .is_err()
    );
    let scoped = db
        .keys()
        .create(NewApiKey::new(KeyKind::Scoped, "reports").grant("orders", Grant::read()))
        .unwrap();
    let id = &scoped.info.id;
    let change = db
        .keys()
        .put_grant(id, "orders", Some(Grant::all()))
        .unwrap();
    assert_eq!(change.before, Some(Grant::read()));
    assert_eq!(change.after, Some(Grant::all()));
    let change = db.keys().put_grant(id, "orders", None).unwrap();
    assert_eq!(change.after, None);

    let mut all = BTreeMap::new();
    all.insert("a".to_owned(), Grant::read());
    all.insert("b".to_owned(), Grant::all());
    let changes = db.keys().set_grants(id, all.clone()).unwrap();
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().all(|c| c.before.is_none()));
    assert_eq!(db.keys().get(id).unwrap().grants, all);
    let mut fewer = BTreeMap::new();
    fewer.insert("a".to_owned(), Grant::read());
    let changes = db.keys().set_grants(id, fewer).unwrap();
    assert_eq!(changes.len(), 1, "only b changed");
    assert_eq!(changes[0].collection, "b");
    assert_eq!(changes[0].after, None);

    let bad = Grant {
        select_fields: Some(vec!["a..b".into()]),
        ..Grant::read()
    };
    assert!(db.keys().put_grant(id, "a", Some(bad)).is_err());
    assert!(
        db.keys()
            .put_grant(id, "Not Valid", Some(Grant::read()))
            .is_err()
    );
}

#[test]
fn non_admin_keys_cannot_manage_keys() {
    let (db, _) = memory_db();
    let scoped = db
        .keys()
        .create(NewApiKey::new(KeyKind::Scoped, "reports").grant("orders", Grant::read()))
        .unwrap();
    let publishable = db
        .keys()
        .create(NewApiKey::new(KeyKind::Publishable, "web"))
        .unwrap();
    for secret in [&scoped.secret, &publishable.secret] {
        let actor = db.with_key(secret).unwrap();
        let refused = |e: larder::Error| matches!(e.kind(), ErrorKind::Forbidden { .. });
        assert!(refused(actor.keys().unwrap_err()));
        assert!(refused(actor.collections().unwrap_err()));
        assert!(refused(actor.users().unwrap_err()));
    }
    assert_eq!(db.keys().list().unwrap().len(), 2, "nothing created");
    assert_eq!(
        db.keys().get(&scoped.info.id).unwrap().grants["orders"],
        Grant::read(),
        "nothing widened"
    );
    assert!(matches!(
        db.anonymous().keys().unwrap_err().kind(),
        ErrorKind::Unauthenticated { .. }
    ));
    let admin = db
        .keys()
        .create(NewApiKey::new(KeyKind::Secret, "ops"))
        .unwrap();
    db.with_key(&admin.secret)
        .unwrap()
        .keys()
        .unwrap()
        .create(NewApiKey::new(KeyKind::Publishable, "ok"))
        .unwrap();
}

#[test]
fn the_file_holds_only_hashes_of_keys() {
    let t = TestDb::new();
    let a =
        t.db.keys()
            .create(NewApiKey::new(KeyKind::Secret, "scan-me"))
            .unwrap();
    let b =
        t.db.keys()
            .rotate(&a.info.id, Duration::from_secs(60))
            .unwrap();
    let c =
        t.db.keys()
            .create(NewApiKey::new(KeyKind::Scoped, "scan-me-too"))
            .unwrap();
    let path = t.path.clone();
    drop(t.db);
    let bytes = std::fs::read(&path).unwrap();
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(contains("scan-me-too"), "the scan reads the file for real");
    for secret in [&a.secret, &b.secret, &c.secret] {
        assert!(!contains(secret));
        assert!(
            !contains(&secret[12..]),
            "not even the secret part after the prefix"
        );
    }
}

#[test]
fn keys_survive_a_reopen() {
    let t = TestDb::new();
    let key =
        t.db.keys()
            .create(NewApiKey::new(KeyKind::Secret, "ops"))
            .unwrap();
    let t = t.reopen();
    as_key(&t.db, &key.secret).unwrap();
}
