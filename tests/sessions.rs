//! Sessions: refresh rotation, reuse detection, the parallel-refresh race, and revocation that
//! takes effect on the very next request.

mod common;

use std::time::Duration;

use common::{TestDb, memory_db};
use larder::{Client, Db, ErrorKind, NewUser, SignedIn};

const PASSWORD: &str = "a long enough passphrase";

fn account(db: &Db, email: &str) -> SignedIn {
    db.users()
        .signup(NewUser::new(email, PASSWORD), &Client::unknown())
        .unwrap()
}

fn login(db: &Db, email: &str) -> SignedIn {
    db.users()
        .login(email, PASSWORD, &Client::unknown())
        .unwrap()
}

fn unauthenticated<T: std::fmt::Debug>(result: larder::Result<T>) -> bool {
    matches!(
        result.unwrap_err().kind(),
        ErrorKind::Unauthenticated { .. }
    )
}

#[test]
fn refresh_rotates_the_token_and_kills_the_old_one() {
    let (db, _) = memory_db();
    let first = account(&db, "a@example.com");
    let second = db.sessions().refresh(&first.refresh_token).unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(
        second.session_id, first.session_id,
        "same session, new tokens"
    );
    db.sessions().authenticate(&second.access_token).unwrap();
    let third = db.sessions().refresh(&second.refresh_token).unwrap();
    db.sessions().authenticate(&third.access_token).unwrap();
}

#[test]
fn reusing_a_rotated_token_ends_the_whole_session() {
    let (db, _) = memory_db();
    let first = account(&db, "a@example.com");
    let other_session = login(&db, "a@example.com");
    let second = db.sessions().refresh(&first.refresh_token).unwrap();

    assert!(
        unauthenticated(db.sessions().refresh(&first.refresh_token)),
        "replay refused"
    );
    assert!(
        unauthenticated(db.sessions().refresh(&second.refresh_token)),
        "the live branch died too"
    );
    assert!(unauthenticated(
        db.sessions().authenticate(&second.access_token)
    ));
    assert!(unauthenticated(
        db.sessions().authenticate(&first.access_token)
    ));
    // Other sessions of the same user are untouched.
    db.sessions()
        .authenticate(&other_session.access_token)
        .unwrap();
    db.sessions().refresh(&other_session.refresh_token).unwrap();
}

#[test]
fn parallel_refreshes_never_yield_two_live_branches() {
    for _ in 0..5 {
        let (db, _) = memory_db();
        let first = account(&db, "race@example.com");
        let results: Vec<larder::Result<SignedIn>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| db.sessions().refresh(&first.refresh_token)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<&SignedIn> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert!(winners.len() <= 1, "{} refreshes succeeded", winners.len());
        let live = winners
            .iter()
            .filter(|w| db.sessions().refresh(&w.refresh_token).is_ok())
            .count();
        assert!(live <= 1);
        for result in &results {
            if let Err(e) = result {
                assert!(matches!(e.kind(), ErrorKind::Unauthenticated { .. }));
            }
        }
    }
}

#[test]
fn logout_ends_this_session_only() {
    let (db, _) = memory_db();
    let a = account(&db, "a@example.com");
    let b = login(&db, "a@example.com");
    let session = db.sessions().authenticate(&a.access_token).unwrap();
    db.sessions().logout(&session).unwrap();
    assert!(
        unauthenticated(db.sessions().authenticate(&a.access_token)),
        "access token dead at once"
    );
    assert!(unauthenticated(db.sessions().refresh(&a.refresh_token)));
    db.sessions().authenticate(&b.access_token).unwrap();
    assert_eq!(db.sessions().count(&a.user.id).unwrap(), 1);
}

#[test]
fn logout_all_ends_every_session() {
    let (db, _) = memory_db();
    let a = account(&db, "a@example.com");
    let b = login(&db, "a@example.com");
    let c = login(&db, "a@example.com");
    db.sessions()
        .logout_all(&db.sessions().authenticate(&b.access_token).unwrap())
        .unwrap();
    for s in [&a, &b, &c] {
        assert!(unauthenticated(db.sessions().authenticate(&s.access_token)));
        assert!(unauthenticated(db.sessions().refresh(&s.refresh_token)));
    }
    assert_eq!(db.sessions().count(&a.user.id).unwrap(), 0);
}

#[test]
fn password_change_ends_the_other_sessions() {
    let (db, _) = memory_db();
    let mine = account(&db, "a@example.com");
    let other = login(&db, "a@example.com");
    let session = db.sessions().authenticate(&mine.access_token).unwrap();
    db.users()
        .change_password(&session, PASSWORD, "a brand new passphrase")
        .unwrap();
    assert!(unauthenticated(
        db.sessions().authenticate(&other.access_token)
    ));
    assert!(unauthenticated(db.sessions().refresh(&other.refresh_token)));
    db.sessions().authenticate(&mine.access_token).unwrap();
    db.sessions().refresh(&mine.refresh_token).unwrap();
    assert!(unauthenticated(db.users().login(
        "a@example.com",
        PASSWORD,
        &Client::unknown()
    )));
    db.users()
        .login(
            "a@example.com",
            "a brand new passphrase",
            &Client::unknown(),
        )
        .unwrap();
}

#[test]
fn disabling_ends_all_sessions_and_enabling_allows_login_again() {
    let (db, _) = memory_db();
    let a = account(&db, "a@example.com");
    db.sessions().authenticate(&a.access_token).unwrap(); // cached
    db.users().disable(&a.user.id).unwrap();
    assert!(unauthenticated(db.sessions().authenticate(&a.access_token)));
    assert!(unauthenticated(db.sessions().refresh(&a.refresh_token)));
    let refused = db
        .users()
        .login("a@example.com", PASSWORD, &Client::unknown())
        .unwrap_err();
    assert!(matches!(refused.kind(), ErrorKind::Forbidden { .. }));
    db.users().enable(&a.user.id).unwrap();
    let again = login(&db, "a@example.com");
    db.sessions().authenticate(&again.access_token).unwrap();
}

#[test]
fn deleting_a_user_ends_everything() {
    let (db, _) = memory_db();
    let a = account(&db, "a@example.com");
    db.sessions().authenticate(&a.access_token).unwrap();
    db.users().delete(&a.user.id).unwrap();
    assert!(unauthenticated(db.sessions().authenticate(&a.access_token)));
    assert!(unauthenticated(db.sessions().refresh(&a.refresh_token)));
    assert!(unauthenticated(db.users().login(
        "a@example.com",
        PASSWORD,
        &Client::unknown()
    )));
    assert!(matches!(
        db.users().get(&a.user.id).unwrap_err().kind(),
        ErrorKind::NotFound { .. }
    ));
    // The email is free again.
    account(&db, "a@example.com");
}

#[test]
fn admins_can_end_a_users_sessions() {
    let (db, _) = memory_db();
    let a = account(&db, "a@example.com");
    db.sessions().end_all(&a.user.id).unwrap();
    assert!(unauthenticated(db.sessions().authenticate(&a.access_token)));
}

#[test]
fn sessions_have_an_absolute_lifetime() {
    let clock = larder::ManualClock::new();
    let db = Db::builder()
        .clock(clock.clone())
        .session_lifetime(Duration::from_secs(7200))
        .in_memory()
        .unwrap();
    let a = account(&db, "a@example.com");
    clock.advance(Duration::from_secs(3000));
    let b = db.sessions().refresh(&a.refresh_token).unwrap();
    clock.advance(Duration::from_secs(3000));
    let c = db.sessions().refresh(&b.refresh_token).unwrap();
    clock.advance(Duration::from_secs(1300));
    assert!(
        unauthenticated(db.sessions().refresh(&c.refresh_token)),
        "past 2 h since login"
    );
    assert!(unauthenticated(db.sessions().authenticate(&c.access_token)));
}

#[test]
fn role_changes_apply_to_the_next_request() {
    let (db, _) = memory_db();
    let a = account(&db, "a@example.com");
    assert_eq!(
        db.sessions()
            .authenticate(&a.access_token)
            .unwrap()
            .user()
            .roles,
        ["user"]
    );
    db.users()
        .set_roles(&a.user.id, &["editor".to_owned()])
        .unwrap();
    assert_eq!(
        db.sessions()
            .authenticate(&a.access_token)
            .unwrap()
            .user()
            .roles,
        ["user", "editor"]
    );
}

#[test]
fn sessions_survive_a_reopen() {
    let t = TestDb::new();
    let a = account(&t.db, "a@example.com");
    let t = t.reopen();
    t.db.sessions().authenticate(&a.access_token).unwrap();
    t.db.sessions().refresh(&a.refresh_token).unwrap();
}

#[test]
fn the_file_holds_no_raw_secret() {
    let t = TestDb::new();
    let password = "unmistakable-password-4711";
    let a =
        t.db.users()
            .signup(
                NewUser::new("scan@example.com", password),
                &Client::unknown(),
            )
            .unwrap();
    let b = t.db.sessions().refresh(&a.refresh_token).unwrap();
    let c =
        t.db.users()
            .login("scan@example.com", password, &Client::unknown())
            .unwrap();
    let path = t.path.clone();
    drop(t.db);
    let bytes = std::fs::read(&path).unwrap();
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        contains("scan@example.com"),
        "the scan reads the file for real"
    );
    for secret in [
        password,
        &a.refresh_token,
        &b.refresh_token,
        &c.refresh_token,
        &a.access_token,
        &b.access_token,
    ] {
        assert!(!contains(secret), "a raw secret is in the file");
    }
    assert!(contains("$argon2id$v=19$m=19456,t=2,p=1$"));
}
