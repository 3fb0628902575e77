//! Users: signup, login, profiles, passwords, roles, enumeration resistance and throttling.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::memory_db;
use larder::{Client, Db, ErrorKind, NewUser, ThrottleConfig};
use serde_json::json;

const PASSWORD: &str = "a long enough passphrase";

fn kind<T: std::fmt::Debug>(result: larder::Result<T>) -> ErrorKind {
    result.unwrap_err().kind().clone()
}

fn address(last: u8) -> Client {
    Client::at(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)))
}

#[test]
fn signup_folds_the_email_and_returns_a_session() {
    let (db, _) = memory_db();
    let signed_in = db
        .users()
        .signup(
            NewUser::new("  Ada@Example.COM ", PASSWORD)
                .username("Ada_L")
                .field("name", "Ada"),
            &Client::unknown(),
        )
        .unwrap();
    let user = &signed_in.user;
    assert_eq!(user.email, "ada@example.com");
    assert_eq!(user.username.as_deref(), Some("Ada_L"));
    assert_eq!(user.roles, ["user"]);
    assert_eq!(user.data, json!({"name": "Ada"}));
    assert!(!user.email_verified && !user.disabled && !user.two_factor_enabled);
    assert_eq!(
        uuid::Uuid::parse_str(&user.id).unwrap().get_version_num(),
        4
    );
    let me = db.sessions().authenticate(&signed_in.access_token).unwrap();
    assert_eq!(me.user(), user);
    let text = format!("{signed_in:?}");
    assert!(!text.contains(&signed_in.refresh_token) && !text.contains(&signed_in.access_token));
}

#[test]
fn duplicate_emails_and_usernames_get_a_generic_error() {
    let (db, _) = memory_db();
    db.users()
        .signup(
            NewUser::new("a@example.com", PASSWORD).username("ada"),
            &Client::unknown(),
        )
        .unwrap();
    let email_taken = kind(db.users().signup(
        NewUser::new("A@EXAMPLE.com", "another passphrase"),
        &Client::unknown(),
    ));
    let name_taken = kind(db.users().signup(
        NewUser::new("b@example.com", "another passphrase").username("ADA"),
        &Client::unknown(),
    ));
    assert_eq!(
        email_taken, name_taken,
        "the error does not say which one is taken"
    );
    assert!(matches!(email_taken, ErrorKind::InvalidInput { .. }));
    assert_eq!(db.users().list().unwrap().len(), 1);
}

#[test]
fn malformed_signups_are_refused_and_create_nothing() {
    let (db, _) = memory_db();
    let bad = [
        NewUser::new("not-an-email", PASSWORD),
        NewUser::new("a@b", PASSWORD),
        NewUser::new("a b@example.com", PASSWORD),
        NewUser::new("a@example.com", "short"),
        NewUser::new("a@example.com", "password"),
        NewUser::new("a@example.com", "x".repeat(1025)),
        NewUser::new("a@example.com", PASSWORD).username("a"),
        NewUser::new("a@example.com", PASSWORD).username("bad name"),
        NewUser::new("a@example.com", PASSWORD).username("_leading"),
        NewUser::new("a@example.com", PASSWORD).username("x".repeat(51)),
        NewUser::new("a@example.com", PASSWORD).field("email_verified", true),
        NewUser::new("a@example.com", PASSWORD).field("password_hash", "x"),
        NewUser::new("a@example.com", PASSWORD).field("Role", "admin"),
        NewUser::new("a@example.com", PASSWORD).field("roles", json!(["admin"])),
    ];
    for new in bad {
        let debug = format!("{new:?}");
        assert!(
            matches!(
                kind(db.users().signup(new, &Client::unknown())),
                ErrorKind::InvalidInput { .. }
            ),
            "{debug}"
        );
    }
    assert!(db.users().list().unwrap().is_empty());
}

#[test]
fn passwords_are_taken_exactly_as_given() {
    let (db, _) = memory_db();
    let long = "é🦀 ".repeat(30); // 64+ characters of Unicode
    db.users()
        .signup(
            NewUser::new("a@example.com", long.clone()),
            &Client::unknown(),
        )
        .unwrap();
    db.users()
        .login("a@example.com", &long, &Client::unknown())
        .unwrap();
    let prefix: String = long.chars().take(72).collect();
    assert!(matches!(
        kind(
            db.users()
                .login("a@example.com", &prefix, &Client::unknown())
        ),
        ErrorKind::Unauthenticated { .. }
    ));
    assert!(matches!(
        kind(
            db.users()
                .login("a@example.com", long.trim(), &Client::unknown())
        ),
        ErrorKind::Unauthenticated { .. }
    ));
    assert!(matches!(
        kind(
            db.users()
                .login("a@example.com", &long.to_uppercase(), &Client::unknown())
        ),
        ErrorKind::Unauthenticated { .. }
    ));
}

#[test]
fn login_failures_do_not_reveal_whether_the_account_exists() {
    let (db, _) = memory_db();
    db.users()
        .signup(NewUser::new("a@example.com", PASSWORD), &Client::unknown())
        .unwrap();
    let wrong_password = db
        .users()
        .login("a@example.com", "not the password", &Client::unknown())
        .unwrap_err();
    let unknown_email = db
        .users()
        .login("nobody@example.com", PASSWORD, &Client::unknown())
        .unwrap_err();
    let malformed_email = db
        .users()
        .login("nobody", PASSWORD, &Client::unknown())
        .unwrap_err();
    assert_eq!(wrong_password.kind(), unknown_email.kind());
    assert_eq!(wrong_password.to_string(), unknown_email.to_string());
    assert_eq!(wrong_password.to_string(), malformed_email.to_string());
    assert_eq!(wrong_password.to_string(), "invalid email or password");
}

#[test]
fn an_account_is_throttled_after_ten_failures_even_for_the_right_password() {
    let (db, clock) = memory_db();
    db.users()
        .signup(NewUser::new("a@example.com", PASSWORD), &Client::unknown())
        .unwrap();
    for i in 0..10 {
        let client = address(i); // spread over addresses: the account limit still applies
        assert!(matches!(
            kind(db.users().login("a@example.com", "wrong guess!", &client)),
            ErrorKind::Unauthenticated { .. }
        ));
    }
    let throttled = kind(db.users().login(
        "A@example.com",
        PASSWORD,
        &Client::unknown().server_trusted(),
    ));
    assert!(
        matches!(throttled, ErrorKind::RateLimited { retry_after_secs } if retry_after_secs > 0 && retry_after_secs <= 900)
    );
    clock.advance(Duration::from_secs(15 * 60));
    db.users()
        .login("a@example.com", PASSWORD, &Client::unknown())
        .unwrap();
}

#[test]
fn unknown_accounts_are_throttled_the_same_way() {
    let (db, _) = memory_db();
    for _ in 0..10 {
        let _ = db
            .users()
            .login("ghost@example.com", "whatever guess", &Client::unknown());
    }
    assert!(matches!(
        kind(
            db.users()
                .login("ghost@example.com", "whatever guess", &Client::unknown())
        ),
        ErrorKind::RateLimited { .. }
    ));
}

#[test]
fn an_address_spraying_many_accounts_is_throttled() {
    let clock = larder::ManualClock::new();
    let db = Db::builder()
        .clock(clock.clone())
        .throttle(ThrottleConfig {
            login_failures_per_address: 5,
            ..ThrottleConfig::default()
        })
        .in_memory()
        .unwrap();
    let attacker = address(66);
    for i in 0..5 {
        let _ = db
            .users()
            .login(&format!("victim{i}@example.com"), "Summer2024!", &attacker);
    }
    assert!(matches!(
        kind(
            db.users()
                .login("victim9@example.com", "Summer2024!", &attacker)
        ),
        ErrorKind::RateLimited { .. }
    ));
    // Another address is unaffected.
    assert!(matches!(
        kind(
            db.users()
                .login("victim9@example.com", "Summer2024!", &address(1))
        ),
        ErrorKind::Unauthenticated { .. }
    ));
}

#[test]
fn signups_are_limited_per_address_except_for_trusted_callers() {
    let db = Db::builder()
        .throttle(ThrottleConfig {
            signups_per_address: 2,
            ..ThrottleConfig::default()
        })
        .in_memory()
        .unwrap();
    let client = address(5);
    for i in 0..2 {
        db.users()
            .signup(NewUser::new(format!("u{i}@example.com"), PASSWORD), &client)
            .unwrap();
    }
    assert!(matches!(
        kind(
            db.users()
                .signup(NewUser::new("u9@example.com", PASSWORD), &client)
        ),
        ErrorKind::RateLimited { .. }
    ));
    let trusted = address(5).server_trusted();
    for i in 10..15 {
        db.users()
            .signup(
                NewUser::new(format!("u{i}@example.com"), PASSWORD),
                &trusted,
            )
            .unwrap();
    }
}

#[test]
fn only_allowed_roles_can_be_self_assigned() {
    let (db, _) = memory_db();
    let forbidden = kind(db.users().signup(
        NewUser::new("a@example.com", PASSWORD).role("editor"),
        &Client::unknown(),
    ));
    assert!(
        matches!(forbidden, ErrorKind::Forbidden { .. }),
        "unset means only the default role"
    );
    db.project()
        .update_settings(&json!({"ALLOWED_SELF_ROLES": "editor, viewer, admin"}))
        .unwrap();
    assert_eq!(
        db.project().settings().unwrap().allowed_self_roles,
        ["editor", "viewer", "admin"]
    );
    let ok = db
        .users()
        .signup(
            NewUser::new("a@example.com", PASSWORD).role("editor"),
            &Client::unknown(),
        )
        .unwrap();
    assert_eq!(ok.user.roles, ["user", "editor"]);
    assert!(
        matches!(
            kind(db.users().signup(
                NewUser::new("b@example.com", PASSWORD).role("admin"),
                &Client::unknown()
            )),
            ErrorKind::Forbidden { .. }
        ),
        "admin is never self-assignable"
    );
    let provisioned = db
        .users()
        .signup(
            NewUser::new("c@example.com", PASSWORD).role("admin"),
            &Client::unknown().server_trusted(),
        )
        .unwrap();
    assert_eq!(provisioned.user.roles, ["user", "admin"]);
}

#[test]
fn profile_updates_refuse_server_managed_fields() {
    let (db, _) = memory_db();
    let a = db
        .users()
        .signup(
            NewUser::new("a@example.com", PASSWORD).field("name", "A"),
            &Client::unknown(),
        )
        .unwrap();
    let session = db.sessions().authenticate(&a.access_token).unwrap();
    for change in [
        json!({"email_verified": true}),
        json!({"emailVerified": true}),
        json!({"password": "x"}),
        json!({"id": "other"}),
        json!({"email": "b@example.com"}),
        json!({"role": "admin"}),
        json!({"Role": "admin"}),
        json!({"roles": ["admin"]}),
        json!({"data": {"roles": ["admin"]}}),
        json!({"created_at": "2000-01-01"}),
        json!({"disabled": false}),
        json!("not an object"),
    ] {
        assert!(
            db.users().update_profile(&session, &change).is_err(),
            "{change}"
        );
    }
    let me = db.sessions().authenticate(&a.access_token).unwrap();
    assert_eq!(me.user().roles, ["user"]);
    assert_eq!(me.user().data, json!({"name": "A"}));

    let updated = db
        .users()
        .update_profile(
            &session,
            &json!({"username": "new_name", "bio": "hi", "data": {"name": null, "age": 3}}),
        )
        .unwrap();
    assert_eq!(updated.username.as_deref(), Some("new_name"));
    assert_eq!(updated.data, json!({"bio": "hi", "age": 3}));
}

#[test]
fn usernames_stay_unique_through_profile_updates() {
    let (db, _) = memory_db();
    db.users()
        .signup(
            NewUser::new("a@example.com", PASSWORD).username("taken"),
            &Client::unknown(),
        )
        .unwrap();
    let b = db
        .users()
        .signup(
            NewUser::new("b@example.com", PASSWORD).username("bee"),
            &Client::unknown(),
        )
        .unwrap();
    let session = db.sessions().authenticate(&b.access_token).unwrap();
    assert!(matches!(
        kind(
            db.users()
                .update_profile(&session, &json!({"username": "TAKEN"}))
        ),
        ErrorKind::AlreadyExists { .. }
    ));
    db.users()
        .update_profile(&session, &json!({"username": "bee2"}))
        .unwrap();
    assert!(
        db.users().public_profile("bee").is_err(),
        "the old name is free"
    );
    db.users()
        .signup(
            NewUser::new("c@example.com", PASSWORD).username("bee"),
            &Client::unknown(),
        )
        .unwrap();
}

#[test]
fn change_password_needs_the_current_one() {
    let (db, _) = memory_db();
    let a = db
        .users()
        .signup(NewUser::new("a@example.com", PASSWORD), &Client::unknown())
        .unwrap();
    let session = db.sessions().authenticate(&a.access_token).unwrap();
    assert!(matches!(
        kind(
            db.users()
                .change_password(&session, "wrong current one", "a new passphrase!")
        ),
        ErrorKind::Unauthenticated { .. }
    ));
    assert!(matches!(
        kind(db.users().change_password(&session, PASSWORD, "short")),
        ErrorKind::InvalidInput { .. }
    ));
    db.users()
        .login("a@example.com", PASSWORD, &Client::unknown())
        .unwrap();
}

#[test]
fn public_profiles_show_only_allow_listed_fields() {
    let db = Db::builder()
        .public_profile_fields(["name", "avatar"])
        .in_memory()
        .unwrap();
    db.users()
        .signup(
            NewUser::new("a@example.com", PASSWORD)
                .username("ada")
                .field("name", "Ada")
                .field("phone", "+1 555"),
            &Client::unknown(),
        )
        .unwrap();
    let profile = db.users().public_profile("ADA").unwrap();
    assert_eq!(profile.username, "ada");
    assert_eq!(
        serde_json::to_value(&profile.fields).unwrap(),
        json!({"name": "Ada"})
    );
    let text = serde_json::to_string(&profile).unwrap();
    assert!(!text.contains("a@example.com") && !text.contains("555") && !text.contains("argon"));
    assert!(matches!(
        kind(db.users().public_profile("nobody")),
        ErrorKind::NotFound { .. }
    ));
    assert!(matches!(
        kind(db.users().public_profile("../x")),
        ErrorKind::NotFound { .. }
    ));
}

#[test]
fn administrators_list_get_disable_enable_and_delete() {
    let (db, clock) = memory_db();
    let a = db
        .users()
        .signup(NewUser::new("a@example.com", PASSWORD), &Client::unknown())
        .unwrap();
    clock.advance(Duration::from_secs(1));
    let b = db
        .users()
        .signup(NewUser::new("b@example.com", PASSWORD), &Client::unknown())
        .unwrap();
    let emails: Vec<String> = db
        .users()
        .list()
        .unwrap()
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(emails, ["a@example.com", "b@example.com"]);
    assert_eq!(db.users().get(&b.user.id).unwrap().email, "b@example.com");
    assert!(db.users().disable(&a.user.id).unwrap().disabled);
    assert!(!db.users().enable(&a.user.id).unwrap().disabled);
    db.users().delete(&a.user.id).unwrap();
    assert_eq!(db.users().list().unwrap().len(), 1);
    assert!(matches!(
        kind(db.users().delete(&a.user.id)),
        ErrorKind::NotFound { .. }
    ));
    let text = serde_json::to_string(&db.users().list().unwrap()).unwrap();
    assert!(!text.contains("argon2"), "no hash in any listing");
}
