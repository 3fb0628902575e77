//! Email verification and password reset end to end: codes read from the outbox, time moved
//! with the manual clock.

mod common;

use std::time::Duration;

use common::memory_db;
use larder::{Client, Db, ErrorKind, NewUser};
use serde_json::json;

const PASSWORD: &str = "a long enough passphrase";

fn kind<T: std::fmt::Debug>(result: larder::Result<T>) -> ErrorKind {
    result.unwrap_err().kind().clone()
}

fn invalid<T: std::fmt::Debug>(result: larder::Result<T>) -> bool {
    matches!(kind(result), ErrorKind::InvalidInput { .. })
}

/// The last code mailed to `email`, and its link token if any.
fn last_code(db: &Db, email: &str) -> (String, Option<String>) {
    let outbox = db.mail().outbox().unwrap();
    let message = outbox
        .iter()
        .rev()
        .find(|m| m.message.to == [email])
        .expect("a message was sent");
    let code = message.message.variables["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = message.message.variables.get("link").map(|l| {
        l.as_str()
            .unwrap()
            .split("token=")
            .nth(1)
            .unwrap()
            .to_owned()
    });
    (code, token)
}

fn account(db: &Db, email: &str) {
    db.users()
        .signup(NewUser::new(email, PASSWORD), &Client::unknown())
        .unwrap();
}

#[test]
fn verification_by_code() {
    let (db, clock) = memory_db();
    account(&db, "a@example.com");
    db.users()
        .request_email_verification("A@example.com")
        .unwrap();
    let (code, _) = last_code(&db, "a@example.com");
    assert_eq!(code.len(), 6);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert!(invalid(db.users().verify_email("a@example.com", wrong)));
    db.users().verify_email("a@example.com", &code).unwrap();
    assert!(db.users().list().unwrap()[0].email_verified);
    assert!(
        invalid(db.users().verify_email("a@example.com", &code)),
        "single use"
    );
    // Verified accounts get no more codes, with the same answer.
    clock.advance(Duration::from_secs(61));
    let sent = db.mail().outbox().unwrap().len();
    db.users()
        .request_email_verification("a@example.com")
        .unwrap();
    assert_eq!(db.mail().outbox().unwrap().len(), sent);
}

#[test]
fn the_code_length_follows_the_setting() {
    let (db, _) = memory_db();
    db.project()
        .update_settings(&json!({"OTP_LENGTH": 4}))
        .unwrap();
    account(&db, "a@example.com");
    db.users()
        .request_email_verification("a@example.com")
        .unwrap();
    assert_eq!(last_code(&db, "a@example.com").0.len(), 4);
}

#[test]
fn five_wrong_attempts_kill_the_code() {
    let (db, _) = memory_db();
    account(&db, "a@example.com");
    db.users()
        .request_email_verification("a@example.com")
        .unwrap();
    let (code, _) = last_code(&db, "a@example.com");
    let wrong = if code == "999999" { "888888" } else { "999999" };
    for _ in 0..5 {
        assert!(invalid(db.users().verify_email("a@example.com", wrong)));
    }
    assert!(
        invalid(db.users().verify_email("a@example.com", &code)),
        "dead after 5 wrong attempts"
    );
}

#[test]
fn codes_expire_after_ten_minutes() {
    let (db, clock) = memory_db();
    account(&db, "a@example.com");
    db.users()
        .request_email_verification("a@example.com")
        .unwrap();
    let (code, _) = last_code(&db, "a@example.com");
    clock.advance(Duration::from_secs(10 * 60 + 1));
    assert!(invalid(db.users().verify_email("a@example.com", &code)));
}

#[test]
fn a_new_request_voids_the_previous_code() {
    let (db, clock) = memory_db();
    account(&db, "a@example.com");
    db.users()
        .request_email_verification("a@example.com")
        .unwrap();
    let (first, _) = last_code(&db, "a@example.com");
    clock.advance(Duration::from_secs(61));
    db.users()
        .request_email_verification("a@example.com")
        .unwrap();
    let (second, _) = last_code(&db, "a@example.com");
    if first != second {
        assert!(invalid(db.users().verify_email("a@example.com", &first)));
    }
    db.users().verify_email("a@example.com", &second).unwrap();
}

#[test]
fn codes_are_bound_to_purpose_and_account() {
    let (db, clock) = memory_db();
    account(&db, "a@example.com");
    account(&db, "b@example.com");
    db.users().request_password_reset("a@example.com").unwrap();
    let (reset_code, reset_token) = last_code(&db, "a@example.com");
    assert!(
        invalid(db.users().verify_email("a@example.com", &reset_code)),
        "another purpose"
    );
    assert!(invalid(
        db.users()
            .verify_email_token(reset_token.as_deref().unwrap_or("none"))
    ));
    clock.advance(Duration::from_secs(1));
    assert!(
        invalid(
            db.users()
                .reset_password("b@example.com", &reset_code, "a brand new passphrase")
        ),
        "another account"
    );
    db.users()
        .reset_password("a@example.com", &reset_code, "a brand new passphrase")
        .unwrap();
}

#[test]
fn requests_cool_down_the_same_for_known_and_unknown_emails() {
    let (db, clock) = memory_db();
    account(&db, "a@example.com");
    for email in ["a@example.com", "nobody@example.com"] {
        db.users().request_password_reset(email).unwrap();
        let again = kind(db.users().request_password_reset(email));
        assert!(
            matches!(again, ErrorKind::RateLimited { retry_after_secs } if (1..=60).contains(&retry_after_secs)),
            "{email}"
        );
    }
    clock.advance(Duration::from_secs(60));
    db.users()
        .request_password_reset("nobody@example.com")
        .unwrap();
    assert_eq!(
        db.mail()
            .outbox()
            .unwrap()
            .iter()
            .filter(|m| m.message.to == ["nobody@example.com"])
            .count(),
        0,
        "nothing is sent to unknown addresses"
    );
}

#[test]
fn a_reset_ends_every_session_and_changes_the_password() {
    let (db, _) = memory_db();
    let signed_in = db
        .users()
        .signup(NewUser::new("a@example.com", PASSWORD), &Client::unknown())
        .unwrap();
    db.users().request_password_reset("a@example.com").unwrap();
    let (code, _) = last_code(&db, "a@example.com");
    assert!(
        invalid(db.users().reset_password("a@example.com", &code, "short")),
        "weak password first"
    );
    db.users()
        .reset_password("a@example.com", &code, "a brand new passphrase")
        .unwrap();
    assert!(db.sessions().authenticate(&signed_in.access_token).is_err());
    assert!(db.sessions().refresh(&signed_in.refresh_token).is_err());
    assert!(
        db.users()
            .login("a@example.com", PASSWORD, &Client::unknown())
            .is_err()
    );
    db.users()
        .login(
            "a@example.com",
            "a brand new passphrase",
            &Client::unknown(),
        )
        .unwrap();
    assert!(
        invalid(
            db.users()
                .reset_password("a@example.com", &code, "yet another passphrase")
        ),
        "single use"
    );
}

#[test]
fn links_work_once_and_expire() {
    let (db, clock) = memory_db();
    db.project()
        .update_settings(&json!({"FRONTEND_URL": "https://app.example.com"}))
        .unwrap();
    account(&db, "a@example.com");
    db.users()
        .request_email_verification("a@example.com")
        .unwrap();
    let message = db.mail().outbox().unwrap().pop().unwrap();
    assert!(
        message
            .message
            .text
            .unwrap()
            .contains("https://app.example.com/verify-email?token=")
    );
    let (_, token) = last_code(&db, "a@example.com");
    let token = token.unwrap();
    db.users().verify_email_token(&token).unwrap();
    assert!(invalid(db.users().verify_email_token(&token)));

    db.users().request_password_reset("a@example.com").unwrap();
    let (_, token) = last_code(&db, "a@example.com");
    clock.advance(Duration::from_secs(601));
    assert!(invalid(db.users().reset_password_with_token(
        &token.unwrap(),
        "a brand new passphrase"
    )));
}

#[test]
fn the_file_holds_no_code_or_link_token() {
    let t = common::TestDb::new();
    t.db.users()
        .signup(
            NewUser::new("scan@example.com", PASSWORD),
            &Client::unknown(),
        )
        .unwrap();
    t.db.project()
        .update_settings(&json!({"FRONTEND_URL": "https://app.example.com"}))
        .unwrap();
    t.db.users()
        .request_password_reset("scan@example.com")
        .unwrap();
    let message = t.db.mail().outbox().unwrap().pop().unwrap();
    let code = message.message.variables["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let link = message.message.variables["link"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = link.split("token=").nth(1).unwrap().to_owned();
    // The outbox holds the mail (that is its job): the token may appear only as often as the
    // stored mail carries it, never in the code tables.
    let in_outbox = serde_json::to_string(&message)
        .unwrap()
        .matches(&token)
        .count();
    let path = t.path.clone();
    drop(t.db);
    let bytes = std::fs::read(&path).unwrap();
    let count = |needle: &str| {
        bytes
            .windows(needle.len())
            .filter(|w| *w == needle.as_bytes())
            .count()
    };
    assert_eq!(
        count(&token),
        in_outbox,
        "the token is only in the outbox mail"
    );
    assert!(count(&code) >= 1);
}

/// A mailer that keeps what it delivers, or fails on demand.
#[derive(Debug, Clone, Default)]
struct Recording {
    delivered: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    fail: bool,
}

impl larder::Mailer for Recording {
    fn deliver(
        &self,
        message: &larder::OutboxMessage,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if self.fail {
            return Err("the relay is down".into());
        }
        self.delivered
            .lock()
            .unwrap()
            .push(message.message.to.join(","));
        Ok(())
    }
}

#[test]
fn a_mailer_delivers_and_the_outbox_still_records() {
    let mailer = Recording::default();
    let db = Db::builder().mailer(mailer.clone()).in_memory().unwrap();
    account(&db, "a@example.com");
    db.users().request_password_reset("a@example.com").unwrap();
    assert_eq!(*mailer.delivered.lock().unwrap(), ["a@example.com"]);
    assert_eq!(db.mail().outbox().unwrap().len(), 1);
}

#[test]
fn a_failing_mailer_is_reported_by_send_mail_but_not_by_flows() {
    let db = Db::builder()
        .mailer(Recording {
            fail: true,
            ..Recording::default()
        })
        .in_memory()
        .unwrap();
    account(&db, "a@example.com");
    db.users().request_password_reset("a@example.com").unwrap();
    db.users()
        .request_password_reset("nobody@example.com")
        .unwrap();
    let direct = db.mail().send(larder::MailMessage {
        to: vec!["a@example.com".into()],
        subject: Some("x".into()),
        text: Some("y".into()),
        ..larder::MailMessage::default()
    });
    let error = direct.unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Internal));
    assert!(
        !error.to_string().contains("relay"),
        "the cause is not in the message"
    );
    assert_eq!(db.mail().outbox().unwrap().len(), 2, "recorded anyway");
}

#[test]
fn a_welcome_mail_follows_signup_when_enabled() {
    let (db, _) = memory_db();
    account(&db, "quiet@example.com");
    assert!(db.mail().outbox().unwrap().is_empty());
    db.project()
        .update_settings(
            &json!({"SEND_WELCOME_EMAIL": true, "LOGIN_URL": "https://app.example.com/login"}),
        )
        .unwrap();
    account(&db, "new@example.com");
    let outbox = db.mail().outbox().unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].message.to, ["new@example.com"]);
    assert!(
        outbox[0]
            .message
            .text
            .as_deref()
            .unwrap()
            .contains("https://app.example.com/login")
    );
}

#[test]
fn a_second_factor_cannot_be_skipped() {
    let (db, clock) = memory_db();
    let signed_in = db
        .users()
        .signup(NewUser::new("a@example.com", PASSWORD), &Client::unknown())
        .unwrap();
    let session = db.sessions().authenticate(&signed_in.access_token).unwrap();
    assert!(
        db.users()
            .set_second_factor(&session, true)
            .unwrap()
            .two_factor_enabled
    );

    // The password step yields no token, only a mailed code.
    let step = db
        .users()
        .login("a@example.com", PASSWORD, &Client::unknown());
    assert!(matches!(kind(step), ErrorKind::SecondFactorRequired));
    let (code, _) = last_code(&db, "a@example.com");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert!(matches!(
        kind(
            db.users()
                .complete_second_factor("a@example.com", wrong, &Client::unknown())
        ),
        ErrorKind::Unauthenticated { .. }
    ));
    let done = db
        .users()
        .complete_second_factor("a@example.com", &code, &Client::unknown())
        .unwrap();
    db.sessions().authenticate(&done.access_token).unwrap();
    assert!(
        db.users()
            .complete_second_factor("a@example.com", &code, &Client::unknown())
            .is_err(),
        "single use"
    );

    // A wrong password never sends a code; resending needs a pending password step.
    let before = db.mail().outbox().unwrap().len();
    assert!(matches!(
        kind(
            db.users()
                .login("a@example.com", "wrong password!", &Client::unknown())
        ),
        ErrorKind::Unauthenticated { .. }
    ));
    clock.advance(Duration::from_secs(61));
    db.users().resend_second_factor("a@example.com").unwrap();
    assert_eq!(
        db.mail().outbox().unwrap().len(),
        before,
        "no attempt pending: nothing sent"
    );

    // A reset does not sign in, so it cannot bypass the second factor.
    db.users().request_password_reset("a@example.com").unwrap();
    let (reset, _) = last_code(&db, "a@example.com");
    db.users()
        .reset_password("a@example.com", &reset, "a brand new passphrase")
        .unwrap();
    assert!(matches!(
        kind(db.users().login(
            "a@example.com",
            "a brand new passphrase",
            &Client::unknown()
        )),
        ErrorKind::SecondFactorRequired
    ));
    // Codes of other purposes do not complete a login.
    assert!(
        db.users()
            .complete_second_factor("a@example.com", &reset, &Client::unknown())
            .is_err()
    );
}

#[test]
fn the_project_setting_applies_to_everyone() {
    let (db, _) = memory_db();
    account(&db, "a@example.com");
    db.users()
        .login("a@example.com", PASSWORD, &Client::unknown())
        .unwrap();
    db.project()
        .update_settings(&json!({"ENABLE_2FA": true}))
        .unwrap();
    assert!(matches!(
        kind(
            db.users()
                .login("a@example.com", PASSWORD, &Client::unknown())
        ),
        ErrorKind::SecondFactorRequired
    ));
    let (code, _) = last_code(&db, "a@example.com");
    db.users()
        .complete_second_factor("a@example.com", &code, &Client::unknown())
        .unwrap();
}

#[test]
fn guessing_second_factor_codes_is_throttled() {
    let (db, _) = memory_db();
    account(&db, "a@example.com");
    db.project()
        .update_settings(&json!({"ENABLE_2FA": true}))
        .unwrap();
    let _ = db
        .users()
        .login("a@example.com", PASSWORD, &Client::unknown());
    for guess in 0..10 {
        let _ = db.users().complete_second_factor(
            "a@example.com",
            &format!("{guess:06}"),
            &Client::unknown(),
        );
    }
    assert!(matches!(
        kind(
            db.users()
                .complete_second_factor("a@example.com", "123456", &Client::unknown())
        ),
        ErrorKind::RateLimited { .. }
    ));
}

#[test]
fn with_email_verification_signup_reveals_nothing_and_login_waits_for_confirmation() {
    let (db, _) = memory_db();
    account(&db, "old@example.com");
    db.project()
        .update_settings(&json!({"ENABLE_EMAIL_VERIFICATION": true}))
        .unwrap();

    let new = kind(db.users().signup(
        NewUser::new("new@example.com", PASSWORD),
        &Client::unknown(),
    ));
    let taken = kind(db.users().signup(
        NewUser::new("OLD@example.com", "another passphrase"),
        &Client::unknown(),
    ));
    assert_eq!(new, ErrorKind::VerificationRequired);
    assert_eq!(taken, new, "the same answer for a new and a taken address");
    let to_old = db
        .mail()
        .outbox()
        .unwrap()
        .into_iter()
        .filter(|m| m.message.to == ["old@example.com"])
        .count();
    assert_eq!(to_old, 1, "the owner of the taken address is told by mail");

    // No session yet, and no sign-in before the address is confirmed.
    assert!(matches!(
        kind(
            db.users()
                .login("new@example.com", PASSWORD, &Client::unknown())
        ),
        ErrorKind::Forbidden { .. }
    ));
    assert!(
        matches!(
            kind(
                db.users()
                    .login("new@example.com", "wrong password!", &Client::unknown())
            ),
            ErrorKind::Unauthenticated { .. }
        ),
        "only someone with the password learns the account waits"
    );
    let (code, _) = last_code(&db, "new@example.com");
    db.users().verify_email("new@example.com", &code).unwrap();
    db.users()
        .login("new@example.com", PASSWORD, &Client::unknown())
        .unwrap();
}

fn last_sms_code(db: &Db, phone: &str) -> String {
    db.mail()
        .sms_outbox()
        .unwrap()
        .into_iter()
        .rev()
        .find(|m| m.to == phone)
        .expect("a text was sent")
        .code
        .unwrap()
}

#[test]
fn phone_login_by_texted_code() {
    let (db, clock) = memory_db();
    db.users()
        .signup(
            NewUser::new("p@example.com", PASSWORD).phone("+44 20 7946 0958"),
            &Client::unknown(),
        )
        .unwrap();
    assert!(
        matches!(
            kind(db.users().request_phone_login("+442079460958")),
            ErrorKind::Forbidden { .. }
        ),
        "off by default"
    );
    db.project()
        .update_settings(&json!({"ENABLE_PHONE_LOGIN": true}))
        .unwrap();

    db.users()
        .request_phone_login("+44 (20) 7946-0958")
        .unwrap();
    let code = last_sms_code(&db, "+442079460958");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert!(matches!(
        kind(
            db.users()
                .complete_phone_login("+442079460958", wrong, &Client::unknown())
        ),
        ErrorKind::Unauthenticated { .. }
    ));
    let signed_in = db
        .users()
        .complete_phone_login("+442079460958", &code, &Client::unknown())
        .unwrap();
    assert_eq!(
        db.sessions()
            .authenticate(&signed_in.access_token)
            .unwrap()
            .user()
            .email,
        "p@example.com"
    );
    assert!(
        db.users()
            .complete_phone_login("+442079460958", &code, &Client::unknown())
            .is_err(),
        "single use"
    );

    // Unknown numbers get the same answer, no text, and the same cooldown.
    clock.advance(Duration::from_secs(61));
    db.users().request_phone_login("+15555550100").unwrap();
    assert!(matches!(
        kind(db.users().request_phone_login("+15555550100")),
        ErrorKind::RateLimited { .. }
    ));
    assert!(
        db.mail()
            .sms_outbox()
            .unwrap()
            .iter()
            .all(|m| m.to != "+15555550100")
    );
    assert!(invalid(db.users().request_phone_login("not a number")));
}

#[test]
fn login_phones_are_unique_and_not_changed_by_profile_updates() {
    let (db, _) = memory_db();
    let a = db
        .users()
        .signup(
            NewUser::new("a@example.com", PASSWORD).phone("+4915112345678"),
            &Client::unknown(),
        )
        .unwrap();
    assert_eq!(a.user.phone.as_deref(), Some("+4915112345678"));
    assert!(invalid(db.users().signup(
        NewUser::new("b@example.com", PASSWORD).phone("+49 151 1234 5678"),
        &Client::unknown()
    )));
    assert!(invalid(db.users().signup(
        NewUser::new("c@example.com", PASSWORD).phone("12345"),
        &Client::unknown()
    )));
    let session = db.sessions().authenticate(&a.access_token).unwrap();
    // A `phone` profile field is plain data: the login phone stays as it was.
    let updated = db
        .users()
        .update_profile(&session, &json!({"phone": "+4915199999999"}))
        .unwrap();
    assert_eq!(updated.phone.as_deref(), Some("+4915112345678"));
    assert_eq!(updated.data["phone"], "+4915199999999");
    db.users().delete(&a.user.id).unwrap();
    db.users()
        .signup(
            NewUser::new("d@example.com", PASSWORD).phone("+4915112345678"),
            &Client::unknown(),
        )
        .unwrap();
}
