//! Project settings, stored in the file and read on every use, so a change applies to the next
//! request without a restart.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::schema::SETTINGS;

/// The role every user has.
pub const DEFAULT_ROLE: &str = "user";
/// Roles that can never be self-assigned, whatever `ALLOWED_SELF_ROLES` says.
pub const PRIVILEGED_ROLES: &[&str] = &["admin"];

/// The typed project settings. Setting names are the seed's upper-case keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Settings {
    /// Lifetime of access tokens in minutes (at least 1; default 60). The hosted services
    /// default to 2880 (two days); larder keeps it short because a leaked access token is
    /// usable until it expires, even though ended sessions are refused at once.
    pub jwt_expiry_minutes: u64,
    /// Roles users may give themselves at signup or in a profile update, besides
    /// [`DEFAULT_ROLE`]. Empty (the default) means only the default role: a deliberate
    /// deviation from the hosted service, where unset means any role. `admin` is never
    /// self-assignable.
    pub allowed_self_roles: Vec<String>,
    /// Browser origins allowed by CORS, exact (`https://app.example.com`,
    /// `http://localhost:5173`). `*`, patterns and `null` are refused. Default: none.
    pub allowed_origins: Vec<String>,
    /// Require a second factor (a one-time code by mail) at every login. Default off.
    #[serde(rename = "ENABLE_2FA")]
    pub enable_2fa: bool,
    /// Allow logging in with a one-time code sent by SMS. Default off.
    pub enable_phone_login: bool,
    /// New accounts must confirm their email before signing in. Default off.
    pub enable_email_verification: bool,
    /// Digits of one-time codes, 4 to 10. Default 6.
    pub otp_length: u32,
    /// Send a welcome mail after signup. Default off.
    pub send_welcome_email: bool,
    /// The app's address: the fallback of every URL below.
    pub frontend_url: Option<String>,
    /// Where verification links point (`{VERIFICATION_URL}?token=…`).
    pub verification_url: Option<String>,
    /// Where a user lands after verifying.
    pub verification_success_url: Option<String>,
    /// The app's login page.
    pub login_url: Option<String>,
    /// Where password-reset links point (`{PASSWORD_RESET_URL}?token=…`).
    pub password_reset_url: Option<String>,
    /// The address clients reach this server by (`https://api.example.com`), used for the
    /// absolute URLs larder hands out: files, signed upload links. Unset, they are built from
    /// the request's `Host` over `http://`, which is right on loopback but wrong behind TLS or
    /// a proxy — and file URLs are stored in documents and profiles.
    pub public_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            jwt_expiry_minutes: 60,
            allowed_self_roles: Vec::new(),
            allowed_origins: Vec::new(),
            enable_2fa: false,
            enable_phone_login: false,
            enable_email_verification: false,
            otp_length: 6,
            send_welcome_email: false,
            frontend_url: None,
            verification_url: None,
            verification_success_url: None,
            login_url: None,
            password_reset_url: None,
            public_url: None,
        }
    }
}

/// Checks a role name: 1 to 64 characters of `a-z 0-9 _ - . :`.
pub(crate) fn validate_role(role: &str) -> Result<()> {
    let ok = (1..=64).contains(&role.len())
        && role.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b':')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid role `{}`: use 1 to 64 characters of a-z, 0-9, _, -, . and :",
            role.escape_debug()
        )))
    }
}

impl Settings {
    /// Whether a user may give themselves this role.
    pub fn is_self_assignable(&self, role: &str) -> bool {
        role == DEFAULT_ROLE
            || (!PRIVILEGED_ROLES.contains(&role)
                && self.allowed_self_roles.iter().any(|r| r == role))
    }

    fn validate(&self) -> Result<()> {
        if self.jwt_expiry_minutes < 1 || self.jwt_expiry_minutes > 60 * 24 * 365 {
            return Err(Error::invalid(
                "JWT_EXPIRY_MINUTES must be between 1 and 525600",
            ));
        }
        for role in &self.allowed_self_roles {
            validate_role(role)?;
        }
        for origin in &self.allowed_origins {
            validate_origin(origin)?;
        }
        if !(4..=10).contains(&self.otp_length) {
            return Err(Error::invalid("OTP_LENGTH must be between 4 and 10"));
        }
        for (name, url) in [
            ("FRONTEND_URL", &self.frontend_url),
            ("VERIFICATION_URL", &self.verification_url),
            ("VERIFICATION_SUCCESS_URL", &self.verification_success_url),
            ("LOGIN_URL", &self.login_url),
            ("PASSWORD_RESET_URL", &self.password_reset_url),
        ] {
            if let Some(url) = url {
                validate_url(name, url)?;
            }
        }
        if let Some(url) = &self.public_url {
            validate_url("PUBLIC_URL", url)?;
            if url.contains(['?', '#']) {
                return Err(Error::invalid(
                    "PUBLIC_URL must have no query string or fragment",
                ));
            }
        }
        Ok(())
    }
}

/// The project's settings and environment variables: `db.project()`.
///
/// ```
/// # fn main() -> larder::Result<()> {
/// let db = larder::Db::in_memory()?;
/// db.project().update_settings(&serde_json::json!({"OTP_LENGTH": 8}))?;
/// assert_eq!(db.project().settings()?.otp_length, 8);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Project<'a> {
    pub(crate) store: &'a Store,
}

impl<'a> Project<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Project { store }
    }
}

impl Project<'_> {
    /// The current settings.
    ///
    /// # Errors
    /// Only storage failures.
    pub fn settings(&self) -> Result<Settings> {
        self.store
            .read(|txn| read_settings(&txn.open_table(SETTINGS)?))
    }

    /// Changes some settings: `changes` is a JSON object of setting names (`"JWT_EXPIRY_MINUTES"`,
    /// `"ALLOWED_SELF_ROLES"`, which also accepts a comma-separated string) to new values.
    /// Unknown names and invalid values are refused and nothing changes.
    ///
    /// # Errors
    /// `InvalidInput` for unknown names or invalid values.
    pub fn update_settings(&self, changes: &Value) -> Result<Settings> {
        let Value::Object(changes) = changes else {
            return Err(Error::invalid("settings must be a JSON object"));
        };
        self.store.write(|txn| {
            let mut table = txn.open_table(SETTINGS)?;
            let current = read_settings(&table)?;
            let mut merged = match serde_json::to_value(&current) {
                Ok(Value::Object(map)) => map,
                _ => Map::new(),
            };
            for (name, value) in changes {
                if !merged.contains_key(name) {
                    return Err(Error::invalid(format!("unknown setting `{name}`")));
                }
                merged.insert(name.clone(), normalize(name, value.clone()));
            }
            let updated: Settings = serde_json::from_value(Value::Object(merged))
                .map_err(|e| Error::invalid(format!("invalid setting value: {e}")))?;
            updated.validate()?;
            let as_json = serde_json::to_value(&updated).map_err(Error::internal)?;
            if let Value::Object(map) = as_json {
                for (name, value) in map {
                    table.insert(name.as_str(), value.to_string().as_str())?;
                }
            }
            Ok(updated)
        })
    }
}

/// Checks a URL setting: absolute http(s), no spaces or control characters.
fn validate_url(name: &str, url: &str) -> Result<()> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() > "http://".len()
        && url.len() <= 2048
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{name} must be an absolute http(s) URL"
        )))
    }
}

impl Settings {
    /// The URL a verification link points to: `VERIFICATION_URL`, else `FRONTEND_URL` +
    /// `/verify-email`, else `None` (larder's own page).
    pub fn verification_link_base(&self) -> Option<String> {
        self.verification_url.clone().or_else(|| {
            self.frontend_url
                .as_ref()
                .map(|f| format!("{}/verify-email", f.trim_end_matches('/')))
        })
    }

    /// The URL a password-reset link points to: `PASSWORD_RESET_URL`, else `FRONTEND_URL` +
    /// `/reset-password`, else `None` (larder's own page).
    pub fn password_reset_link_base(&self) -> Option<String> {
        self.password_reset_url.clone().or_else(|| {
            self.frontend_url
                .as_ref()
                .map(|f| format!("{}/reset-password", f.trim_end_matches('/')))
        })
    }
}

/// Checks an exact origin: `scheme://host[:port]` with scheme http or https, nothing else.
fn validate_origin(origin: &str) -> Result<()> {
    let refused = || {
        Error::invalid(format!(
            "invalid origin `{}`: give an exact origin such as https://app.example.com \
             (no *, no patterns, no null, no path)",
            origin.escape_debug()
        ))
    };
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(refused)?;
    let ok = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if ok { Ok(()) } else { Err(refused()) }
}

/// Accepts the seed's comma-separated form of list settings.
fn normalize(name: &str, value: Value) -> Value {
    match (name, value) {
        ("ALLOWED_SELF_ROLES" | "ALLOWED_ORIGINS", Value::String(list)) => Value::Array(
            list.split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(|r| Value::String(r.to_owned()))
                .collect(),
        ),
        (_, value) => value,
    }
}

/// Reads the settings inside a transaction; missing rows take their defaults.
pub(crate) fn read_settings<T>(table: &T) -> Result<Settings>
where
    T: ReadableTable<&'static str, &'static str>,
{
    let mut map = match serde_json::to_value(Settings::default()) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    for entry in table.iter()? {
        let (name, value) = entry?;
        if map.contains_key(name.value()) {
            let value: Value = serde_json::from_str(value.value()).map_err(Error::internal)?;
            map.insert(name.value().to_owned(), value);
        }
    }
    serde_json::from_value(Value::Object(map)).map_err(Error::internal)
}
