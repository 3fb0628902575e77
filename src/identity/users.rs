//! App users as stored: the records, their tables, and the checks of emails, usernames,
//! phones, roles and profile data. The operations on them are in `accounts.rs`.

use std::net::IpAddr;

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::identity::throttle::Key;
use crate::project::settings::{DEFAULT_ROLE, Settings, validate_role};
use crate::store::clock::format_rfc3339;
use crate::store::schema::{self, USERS, USERS_BY_USERNAME};

/// Largest profile `data`, in bytes of JSON.
const MAX_PROFILE_BYTES: usize = 64 * 1024;

/// Top-level profile keys users can never set themselves (compared ignoring case).
const SERVER_MANAGED_PROFILE_KEYS: &[&str] = &[
    "id",
    "_id",
    "email",
    "email_verified",
    "emailverified",
    "isverified",
    "verified",
    "password",
    "password_hash",
    "passwordhash",
    "created_at",
    "createdat",
    "updated_at",
    "updatedat",
    "disabled",
    "two_factor_enabled",
    "role",
    "is_admin",
    "isadmin",
];

/// A user as larder shows it: never the password hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// A random UUID (version 4: it reveals nothing about when the account was made).
    pub id: String,
    /// The case-folded email.
    pub email: String,
    /// The optional public username.
    pub username: Option<String>,
    /// The optional phone number (`+` and 8 to 15 digits), for phone login.
    pub phone: Option<String>,
    /// The user's roles; always includes `user`.
    pub roles: Vec<String>,
    /// Free profile fields.
    pub data: Value,
    /// Whether the email was verified.
    pub email_verified: bool,
    /// Whether two-factor login is on.
    pub two_factor_enabled: bool,
    /// Whether an administrator disabled the account.
    pub disabled: bool,
    /// When the account was made (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

/// What a public profile shows: the id, username, creation time, and only the `data` fields
/// listed in [`DbBuilder::public_profile_fields`](crate::DbBuilder::public_profile_fields).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublicProfile {
    /// The user's id.
    pub id: String,
    /// The username looked up.
    pub username: String,
    /// The allow-listed profile fields.
    pub fields: Map<String, Value>,
    /// When the account was made.
    pub created_at: String,
}

/// A signup request.
///
/// ```
/// use larder::NewUser;
/// let new = NewUser::new("Ada@Example.com", "correct horse battery staple")
///     .username("ada")
///     .field("name", "Ada Lovelace");
/// # let _ = new;
/// ```
#[derive(Clone, Default)]
pub struct NewUser {
    /// The email (case-folded when stored).
    pub email: String,
    /// The password, exactly as typed.
    pub password: String,
    /// An optional unique username.
    pub username: Option<String>,
    /// An optional unique phone number (`+` and 8 to 15 digits), for phone login. Set at
    /// signup only: a profile update never changes it (a `phone` profile field is just data).
    pub phone: Option<String>,
    /// Profile fields.
    pub data: Map<String, Value>,
    /// Requested roles beyond `user`; each must be self-assignable (see
    /// [`Settings::allowed_self_roles`]) unless the caller is server-trusted.
    pub roles: Vec<String>,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .field("username", &self.username)
            .field("phone", &self.phone)
            .field("data", &self.data)
            .field("roles", &self.roles)
            .finish()
    }
}

impl NewUser {
    /// A signup with an email and a password.
    pub fn new(email: impl Into<String>, password: impl Into<String>) -> Self {
        NewUser {
            email: email.into(),
            password: password.into(),
            ..NewUser::default()
        }
    }

    /// Sets the username.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Sets the phone number.
    pub fn phone(mut self, phone: impl Into<String>) -> Self {
        self.phone = Some(phone.into());
        self
    }

    /// Sets one profile field.
    pub fn field(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.data.insert(name.into(), value.into());
        self
    }

    /// Requests a role.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }
}

/// Who is calling, for throttling: the client's address (as the HTTP front saw it) and whether
/// the caller is server-trusted (a secret key, or the embedding program itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    address: Option<IpAddr>,
    pub(crate) server_trusted: bool,
}

impl Client {
    /// A client of unknown address (only per-account throttles apply).
    pub fn unknown() -> Self {
        Client::default()
    }

    /// A client at this address.
    pub fn at(address: IpAddr) -> Self {
        Client {
            address: Some(address),
            server_trusted: false,
        }
    }

    /// Marks the caller as server-trusted: exempt from per-address limits (so a backend can
    /// provision many users) and free to assign any role at signup. Per-account login limits
    /// still apply.
    pub fn server_trusted(mut self) -> Self {
        self.server_trusted = true;
        self
    }

    pub(crate) fn address_key(&self, key: impl FnOnce(IpAddr) -> Key) -> Option<Key> {
        match (self.server_trusted, self.address) {
            (false, Some(address)) => Some(key(address)),
            _ => None,
        }
    }
}

/// A user as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredUser {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) username: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) password_hash: String,
    pub(crate) roles: Vec<String>,
    pub(crate) data_json: String,
    pub(crate) email_verified: bool,
    pub(crate) two_factor_enabled: bool,
    pub(crate) disabled: bool,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl StoredUser {
    pub(crate) fn public(&self) -> User {
        User {
            id: self.id.clone(),
            email: self.email.clone(),
            username: self.username.clone(),
            phone: self.phone.clone(),
            roles: self.roles.clone(),
            data: serde_json::from_str(&self.data_json)
                .unwrap_or_else(|_| Value::Object(Map::new())),
            email_verified: self.email_verified,
            two_factor_enabled: self.two_factor_enabled,
            disabled: self.disabled,
            created_at: format_rfc3339(self.created_at),
            updated_at: format_rfc3339(self.updated_at),
        }
    }
}

/// Checks a username (`^[A-Za-z0-9][A-Za-z0-9_.-]{2,49}$`: nothing a URL path would need to
/// escape) and returns its case-folded form.
pub(crate) fn validate_username(username: &str) -> Result<String> {
    let ok = (3..=50).contains(&username.len())
        && username.starts_with(|c: char| c.is_ascii_alphanumeric())
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(username.to_ascii_lowercase())
    } else {
        Err(Error::invalid(
            "invalid username: use 3 to 50 characters of A-Z, a-z, 0-9, _, . and -, \
             starting with a letter or digit",
        ))
    }
}

/// Checks a phone number: `+` then 8 to 15 digits; spaces, dashes, dots and parentheses are
/// dropped.
pub(crate) fn normalize_phone(phone: &str) -> Result<String> {
    let digits: String = phone
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let ok = digits.starts_with('+')
        && (9..=16).contains(&digits.len())
        && digits[1..].bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(digits)
    } else {
        Err(Error::invalid(
            "invalid phone number: use + and the country code, 8 to 15 digits",
        ))
    }
}

/// The roles a user ends up with: `user` plus the requested ones, each checked.
pub(crate) fn resolve_roles(
    requested: &[String],
    settings: &Settings,
    trusted: bool,
) -> Result<Vec<String>> {
    let mut roles = vec![DEFAULT_ROLE.to_owned()];
    for role in requested {
        validate_role(role)?;
        if !trusted && !settings.is_self_assignable(role) {
            return Err(Error::forbidden(format!(
                "the role `{role}` cannot be self-assigned"
            )));
        }
        if !roles.contains(role) {
            roles.push(role.clone());
        }
    }
    Ok(roles)
}

/// Refuses server-managed keys in profile data.
pub(crate) fn check_profile_data(data: &Map<String, Value>) -> Result<String> {
    for key in data.keys() {
        let lower = key.to_lowercase();
        if SERVER_MANAGED_PROFILE_KEYS.contains(&lower.as_str()) || lower == "roles" {
            return Err(Error::invalid(format!(
                "`{key}` is server-managed and cannot be set in the profile"
            )));
        }
    }
    crate::store::names::check_nesting(data, "the profile")?;
    let json = serde_json::to_string(data).map_err(Error::internal)?;
    if json.len() > MAX_PROFILE_BYTES {
        return Err(Error::too_large("the profile", MAX_PROFILE_BYTES as u64));
    }
    Ok(json)
}

pub(crate) fn login_failed() -> Error {
    Error::unauthenticated("invalid email or password")
}

pub(crate) fn load_user<T>(table: &T, id: &str) -> Result<StoredUser>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    match table.get(id)? {
        Some(bytes) => schema::decode(bytes.value()),
        None => Err(Error::not_found("user")),
    }
}

pub(crate) fn save_user(txn: &WriteTransaction, user: &StoredUser) -> Result<()> {
    txn.open_table(USERS)?
        .insert(user.id.as_str(), schema::encode(user)?.as_slice())?;
    Ok(())
}

pub(crate) fn set_username(
    txn: &WriteTransaction,
    user: &mut StoredUser,
    value: &Value,
) -> Result<()> {
    let mut by_username = txn.open_table(USERS_BY_USERNAME)?;
    let new = match value {
        Value::Null => None,
        Value::String(name) => Some((name.clone(), validate_username(name)?)),
        _ => return Err(Error::invalid("`username` must be a string or null")),
    };
    if let Some((_, folded)) = &new
        && let Some(owner) = by_username.get(folded.as_str())?
        && owner.value() != user.id
    {
        return Err(Error::already_exists("an account with this username"));
    }
    if let Some(old) = &user.username {
        by_username.remove(old.to_ascii_lowercase().as_str())?;
    }
    if let Some((_, folded)) = &new {
        by_username.insert(folded.as_str(), user.id.as_str())?;
    }
    user.username = new.map(|(name, _)| name);
    Ok(())
}
