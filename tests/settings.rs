//! Settings: typed, validated on write (a refused change changes nothing), stored in the file,
//! applied to the next call; and environment variables.

mod common;

use common::{TestDb, is_invalid, memory_db};
use serde_json::json;

#[test]
fn defaults() {
    let (db, _) = memory_db();
    let settings = db.project().settings().unwrap();
    assert_eq!(settings.jwt_expiry_minutes, 60);
    assert_eq!(settings.otp_length, 6);
    assert!(
        !settings.enable_2fa && !settings.enable_email_verification && !settings.enable_phone_login
    );
    assert!(settings.allowed_self_roles.is_empty() && settings.allowed_origins.is_empty());
    let names = serde_json::to_value(&settings).unwrap();
    for name in [
        "JWT_EXPIRY_MINUTES",
        "ENABLE_2FA",
        "ENABLE_PHONE_LOGIN",
        "ENABLE_EMAIL_VERIFICATION",
        "OTP_LENGTH",
        "ALLOWED_SELF_ROLES",
        "SEND_WELCOME_EMAIL",
        "FRONTEND_URL",
        "VERIFICATION_URL",
        "VERIFICATION_SUCCESS_URL",
        "LOGIN_URL",
        "PASSWORD_RESET_URL",
        "ALLOWED_ORIGINS",
        "PUBLIC_URL",
    ] {
        assert!(names.get(name).is_some(), "{name}");
    }
}

#[test]
fn invalid_changes_are_refused_whole() {
    let (db, _) = memory_db();
    let before = db.project().settings().unwrap();
    for bad in [
        json!({"OTP_LENGTH": 3}),
        json!({"OTP_LENGTH": 11}),
        json!({"JWT_EXPIRY_MINUTES": 0}),
        json!({"JWT_EXPIRY_MINUTES": "sixty"}),
        json!({"ENABLE_2FA": "yes"}),
        json!({"FRONTEND_URL": "javascript:alert(1)"}),
        json!({"LOGIN_URL": "http://a b"}),
        json!({"ALLOWED_ORIGINS": "*"}),
        json!({"ALLOWED_ORIGINS": ["https://ok.example.com", "null"]}),
        json!({"ALLOWED_SELF_ROLES": ["Bad Role"]}),
        json!({"PUBLIC_URL": "ftp://files.example.com"}),
        json!({"PUBLIC_URL": "https://api.example.com/?x=1"}),
        json!({"NOT_A_SETTING": 1}),
        json!({"OTP_LENGTH": 8, "NOT_A_SETTING": 1}),
        json!("not an object"),
    ] {
        assert!(is_invalid(db.project().update_settings(&bad)), "{bad}");
    }
    assert_eq!(db.project().settings().unwrap(), before);
}

#[test]
fn changes_are_stored_and_apply_at_once() {
    let t = TestDb::new();
    let updated =
        t.db.project()
            .update_settings(&json!({
                "OTP_LENGTH": 8,
                "ENABLE_2FA": true,
                "FRONTEND_URL": "https://app.example.com/",
                "ALLOWED_ORIGINS": "https://app.example.com, http://localhost:5173",
            }))
            .unwrap();
    assert_eq!(updated.otp_length, 8);
    assert_eq!(
        updated.allowed_origins,
        ["https://app.example.com", "http://localhost:5173"]
    );
    assert_eq!(
        updated.verification_link_base().as_deref(),
        Some("https://app.example.com/verify-email"),
        "falls back to FRONTEND_URL"
    );
    let t = t.reopen();
    assert_eq!(t.db.project().settings().unwrap(), updated);
    let cleared =
        t.db.project()
            .update_settings(
                &json!({"FRONTEND_URL": null, "PASSWORD_RESET_URL": "https://x.example.com/reset"}),
            )
            .unwrap();
    assert_eq!(cleared.verification_link_base(), None);
    assert_eq!(
        cleared.password_reset_link_base().as_deref(),
        Some("https://x.example.com/reset")
    );
}

#[test]
fn environment_variables() {
    let (db, _) = memory_db();
    assert_eq!(
        db.project()
            .set_env_var("webhook secret", "whsec_abcdefgh")
            .unwrap(),
        "WEBHOOK_SECRET"
    );
    db.project()
        .set_env_var("WEBHOOK_SECRET", "whsec_changed!")
        .unwrap();
    assert_eq!(
        db.project().env_var("webhook secret").unwrap(),
        "whsec_changed!"
    );
    let listed = db.project().list_env_vars().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].masked_value.contains("whsec"));
    assert!(
        is_invalid(db.project().set_env_var("OTP_LENGTH", "4")),
        "built-in names are refused"
    );
    assert!(is_invalid(db.project().set_env_var("a-b", "x")));
    db.project().delete_env_var("WEBHOOK_SECRET").unwrap();
    assert!(db.project().env_var("WEBHOOK_SECRET").is_err());
}
