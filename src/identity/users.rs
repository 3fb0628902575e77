//! App users: signup, login, profile, password change, public profile, and administration.
//!
//! Emails are case-folded and unique; usernames (optional) are unique ignoring case. Passwords
//! are argon2id hashes (see `password.rs`). Login failures look the same whether the account
//! exists or not: same error, same message, and the same time (a dummy verification).

use std::net::IpAddr;

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::db::Db;
use crate::error::{Error, Result};
use crate::identity::password;
use crate::identity::sessions::{SignedIn, UserSession, end_sessions_of};
use crate::identity::throttle::Key;
use crate::project::settings::{DEFAULT_ROLE, Settings, read_settings};
use crate::store::clock::format_rfc3339;
use crate::store::schema::{self, USERS, USERS_BY_EMAIL, USERS_BY_PHONE, USERS_BY_USERNAME};

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
    server_trusted: bool,
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

/// Case-folds and checks an email address.
pub(crate) fn fold_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && local.len() <= 64
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
            }
            None => false,
        };
    if valid {
        Ok(email)
    } else {
        Err(Error::invalid("invalid email address"))
    }
}

/// Checks a username (`^[A-Za-z0-9][A-Za-z0-9_.-]{2,49}$`: nothing a URL path would need to
/// escape) and returns its case-folded form.
fn validate_username(username: &str) -> Result<String> {
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

/// The roles a user ends up with: `user` plus the requested ones, each checked.
fn resolve_roles(requested: &[String], settings: &Settings, trusted: bool) -> Result<Vec<String>> {
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
fn check_profile_data(data: &Map<String, Value>) -> Result<String> {
    for key in data.keys() {
        let lower = key.to_lowercase();
        if SERVER_MANAGED_PROFILE_KEYS.contains(&lower.as_str()) || lower == "roles" {
            return Err(Error::invalid(format!(
                "`{key}` is server-managed and cannot be set in the profile"
            )));
        }
    }
    crate::data::values::check_nesting(data, "the profile")?;
    let json = serde_json::to_string(data).map_err(Error::internal)?;
    if json.len() > MAX_PROFILE_BYTES {
        return Err(Error::too_large("the profile", MAX_PROFILE_BYTES as u64));
    }
    Ok(json)
}

fn login_failed() -> Error {
    Error::unauthenticated("invalid email or password")
}

fn load_user<T>(table: &T, id: &str) -> Result<StoredUser>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    match table.get(id)? {
        Some(bytes) => schema::decode(bytes.value()),
        None => Err(Error::not_found("user")),
    }
}

fn save_user(txn: &WriteTransaction, user: &StoredUser) -> Result<()> {
    txn.open_table(USERS)?
        .insert(user.id.as_str(), schema::encode(user)?.as_slice())?;
    Ok(())
}

impl Db {
    /// Creates an account and signs it in.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed email, username, role or profile, or a weak password;
    /// `Forbidden` for a role that is not self-assignable; `InvalidInput` with one generic
    /// message (and no account data) when the email or username is taken; `RateLimited` past
    /// the per-address signup limit. With `ENABLE_EMAIL_VERIFICATION` on, a signup never yields
    /// a session: it answers `VerificationRequired` whether the address is new (the account is
    /// made and a code mailed) or taken (nothing happens), so it reveals nothing.
    ///
    /// ```
    /// # fn main() -> larder::Result<()> {
    /// use larder::{Client, Db, NewUser};
    /// let db = Db::in_memory()?;
    /// let signed_in = db.signup(NewUser::new("ada@example.com", "analytical engine"), &Client::unknown())?;
    /// let session = db.authenticate(&signed_in.access_token)?;
    /// assert_eq!(session.user().email, "ada@example.com");
    /// # Ok(()) }
    /// ```
    pub fn signup(&self, new: NewUser, client: &Client) -> Result<SignedIn> {
        let now = self.now_micros();
        let address_key = client.address_key(Key::SignupAddress);
        if let Some(key) = &address_key {
            self.throttle()?.check(key, now)?;
        }
        let email = fold_email(&new.email)?;
        let username = new.username.as_deref().map(validate_username).transpose()?;
        let phone = new.phone.as_deref().map(normalize_phone).transpose()?;
        password::check_new_password(&new.password)?;
        let data_json = check_profile_data(&new.data)?;
        let settings = self.settings()?;
        let roles = resolve_roles(&new.roles, &settings, client.server_trusted)?;
        let password_hash = password::hash_password(&new.password)?;
        if let Some(key) = address_key {
            self.throttle()?.record(key, now);
        }
        let user = StoredUser {
            id: crate::store::ids::random_uuid()?,
            email,
            username: new.username.clone().filter(|_| username.is_some()),
            phone: phone.clone(),
            password_hash,
            roles,
            data_json,
            email_verified: false,
            two_factor_enabled: false,
            disabled: false,
            created_at: now,
            updated_at: now,
        };
        let verify_first = settings.enable_email_verification;
        enum Created {
            Session(String, String),
            PendingVerification,
            EmailTaken,
        }
        let created = self.write_auth(|txn| {
            // Generic on purpose: it does not say which one is taken, nor anything about the
            // account. With email verification on, a taken address gets the very answer a new
            // one gets (its owner is told by mail instead), so signup reveals nothing.
            let taken = || Error::invalid("this email or username cannot be used");
            let mut by_email = txn.open_table(USERS_BY_EMAIL)?;
            if by_email.get(user.email.as_str())?.is_some() {
                return if verify_first {
                    Ok(Created::EmailTaken)
                } else {
                    Err(taken())
                };
            }
            by_email.insert(user.email.as_str(), user.id.as_str())?;
            if let Some(folded) = &username {
                // Usernames are public (profiles), so saying one is taken hides nothing.
                let mut by_username = txn.open_table(USERS_BY_USERNAME)?;
                if by_username.get(folded.as_str())?.is_some() {
                    return Err(taken());
                }
                by_username.insert(folded.as_str(), user.id.as_str())?;
            }
            if let Some(phone) = &user.phone {
                let mut by_phone = txn.open_table(USERS_BY_PHONE)?;
                if by_phone.get(phone.as_str())?.is_some() {
                    return Err(taken());
                }
                by_phone.insert(phone.as_str(), user.id.as_str())?;
            }
            save_user(txn, &user)?;
            if verify_first {
                return Ok(Created::PendingVerification);
            }
            let (session_id, refresh) = self.create_session(txn, &user.id)?;
            Ok(Created::Session(session_id, refresh))
        })?;
        let (session_id, refresh) = match created {
            Created::Session(session_id, refresh) => (session_id, refresh),
            Created::PendingVerification => {
                // No session until the address is confirmed: the code goes out now.
                self.send_verification(&user, &settings)?;
                if settings.send_welcome_email {
                    self.send_flow_mail(welcome_mail(&user.email, &settings))?;
                }
                return Err(crate::error::ErrorKind::VerificationRequired.into());
            }
            Created::EmailTaken => {
                self.send_flow_mail(already_registered_mail(&user.email, &settings))?;
                return Err(crate::error::ErrorKind::VerificationRequired.into());
            }
        };
        if settings.send_welcome_email {
            self.send_flow_mail(welcome_mail(&user.email, &settings))?;
        }
        self.signed_in(user.public(), session_id, refresh)
    }

    /// Signs in with an email and a password.
    ///
    /// # Errors
    /// `Unauthenticated` ("invalid email or password", identical for unknown emails and wrong
    /// passwords); `RateLimited` once an account or address has too many recent failures
    /// (then even the right password is refused until the window passes); `Forbidden` for a
    /// disabled account (only told to someone who knows its password); `SecondFactorRequired`
    /// when the account or project uses a second factor (a code was mailed; finish with
    /// [`Db::complete_second_factor`]).
    pub fn login(&self, email: &str, password: &str, client: &Client) -> Result<SignedIn> {
        let now = self.now_micros();
        let folded = email.trim().to_lowercase();
        let account_key = Key::LoginAccount(folded.clone());
        let address_key = client.address_key(Key::LoginAddress);
        self.throttle()?.check(&account_key, now)?;
        if let Some(key) = &address_key {
            self.throttle()?.check(key, now)?;
        }
        let found = self.read(|txn| {
            let Some(id) = txn
                .open_table(USERS_BY_EMAIL)?
                .get(folded.as_str())?
                .map(|v| v.value().to_owned())
            else {
                return Ok(None);
            };
            load_user(&txn.open_table(USERS)?, &id).map(Some)
        })?;
        let verified = match &found {
            Some(user) => password::verify_password(password, &user.password_hash)?,
            None => {
                password::dummy_verify(password);
                false
            }
        };
        let Some(user) = found.filter(|_| verified) else {
            self.throttle()?.record(account_key, now);
            if let Some(key) = address_key {
                self.throttle()?.record(key, now);
            }
            return Err(login_failed());
        };
        if user.disabled {
            return Err(Error::forbidden("this account is disabled"));
        }
        self.throttle()?.reset(&account_key);
        let settings = self.settings()?;
        if settings.enable_email_verification && !user.email_verified {
            return Err(Error::forbidden(
                "confirm your email address first (a code was mailed at signup)",
            ));
        }
        if user.two_factor_enabled || settings.enable_2fa {
            // The password step alone yields nothing usable: a code goes out, bound to this
            // attempt, and `complete_second_factor` finishes the sign-in.
            self.start_second_factor(&user)?;
            return Err(crate::error::ErrorKind::SecondFactorRequired.into());
        }
        let (session_id, refresh) = self.write_auth(|txn| {
            // The account may have been deleted or disabled since it was read.
            let current =
                load_user(&txn.open_table(USERS)?, &user.id).map_err(|_| login_failed())?;
            if current.disabled {
                return Err(Error::forbidden("this account is disabled"));
            }
            self.create_session(txn, &user.id)
        })?;
        self.signed_in(user.public(), session_id, refresh)
    }

    /// Updates the caller's own profile from a JSON object: `username`, `roles` (each must be
    /// self-assignable), `data` (a merge patch of the profile fields), and any other key as a
    /// profile field. Server-managed fields (`id`, `email`, `email_verified`, `password`,
    /// timestamps, `disabled`, `role`, …) are refused, not ignored.
    ///
    /// # Errors
    /// `InvalidInput` / `Forbidden` as above; `AlreadyExists` for a taken username;
    /// `Unauthenticated` if the session ended meanwhile.
    pub fn update_profile(&self, session: &UserSession, changes: &Value) -> Result<User> {
        let Value::Object(changes) = changes else {
            return Err(Error::invalid("a profile update must be a JSON object"));
        };
        let now = self.now_micros();
        let user_id = session.user().id.clone();
        self.write_auth(|txn| {
            let settings = read_settings(&txn.open_table(crate::store::schema::SETTINGS)?)?;
            let mut user = load_user(&txn.open_table(USERS)?, &user_id)
                .map_err(|_| Error::unauthenticated("invalid or expired session"))?;
            let mut data: Map<String, Value> =
                serde_json::from_str(&user.data_json).map_err(Error::internal)?;
            let mut fields = Map::new();
            for (key, value) in changes {
                match key.as_str() {
                    "username" => set_username(txn, &mut user, value)?,
                    "roles" => {
                        let requested: Vec<String> = serde_json::from_value(value.clone())
                            .map_err(|_| Error::invalid("`roles` must be a list of strings"))?;
                        user.roles = resolve_roles(&requested, &settings, false)?;
                    }
                    "data" => {
                        let Value::Object(patch) = value else {
                            return Err(Error::invalid("`data` must be a JSON object"));
                        };
                        fields.extend(patch.clone());
                    }
                    _ => {
                        fields.insert(key.clone(), value.clone());
                    }
                }
            }
            check_profile_data(&fields)?;
            for (key, value) in fields {
                if value.is_null() {
                    data.remove(&key);
                } else {
                    data.insert(key, value);
                }
            }
            user.data_json = check_profile_data(&data)?;
            user.updated_at = now.max(user.updated_at + 1);
            save_user(txn, &user)?;
            Ok(user.public())
        })
    }

    /// Changes the caller's password. Needs the current one; ends every other session of the
    /// user (this one stays).
    ///
    /// # Errors
    /// `Unauthenticated` for a wrong current password (counted like a failed login);
    /// `InvalidInput` for a weak new password; `RateLimited` while the account is throttled.
    pub fn change_password(&self, session: &UserSession, current: &str, new: &str) -> Result<()> {
        let now = self.now_micros();
        let account_key = Key::LoginAccount(session.user().email.clone());
        self.throttle()?.check(&account_key, now)?;
        password::check_new_password(new)?;
        let stored = self.read(|txn| load_user(&txn.open_table(USERS)?, &session.user().id))?;
        if !password::verify_password(current, &stored.password_hash)? {
            self.throttle()?.record(account_key, now);
            return Err(Error::unauthenticated("the current password is wrong"));
        }
        let hash = password::hash_password(new)?;
        self.write_auth(|txn| {
            let mut user = load_user(&txn.open_table(USERS)?, &session.user().id)?;
            user.password_hash = hash.clone();
            user.updated_at = now.max(user.updated_at + 1);
            save_user(txn, &user)?;
            end_sessions_of(txn, &user.id, Some(session.session_id()))
        })
    }

    /// A user's public profile by username (case-insensitive).
    ///
    /// # Errors
    /// `NotFound` for an unknown username or a disabled account.
    pub fn public_profile(&self, username: &str) -> Result<PublicProfile> {
        let folded = validate_username(username).map_err(|_| Error::not_found("user"))?;
        let user = self.read(|txn| {
            let Some(id) = txn
                .open_table(USERS_BY_USERNAME)?
                .get(folded.as_str())?
                .map(|v| v.value().to_owned())
            else {
                return Err(Error::not_found("user"));
            };
            load_user(&txn.open_table(USERS)?, &id)
        })?;
        if user.disabled {
            return Err(Error::not_found("user"));
        }
        let data: Map<String, Value> =
            serde_json::from_str(&user.data_json).map_err(Error::internal)?;
        let shown = self.public_profile_fields()?;
        let fields = data
            .into_iter()
            .filter(|(k, _)| shown.contains(k))
            .collect();
        Ok(PublicProfile {
            id: user.id,
            username: user.username.unwrap_or_default(),
            fields,
            created_at: format_rfc3339(user.created_at),
        })
    }

    /// Every user, oldest first (an administrator's call).
    ///
    /// # Errors
    /// Only storage failures.
    pub fn list_users(&self) -> Result<Vec<User>> {
        let mut users = self.read(|txn| {
            let table = txn.open_table(USERS)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (_, bytes) = entry?;
                out.push(schema::decode::<StoredUser>(bytes.value())?);
            }
            Ok(out)
        })?;
        users.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(users.iter().map(StoredUser::public).collect())
    }

    /// One user by id (an administrator's call).
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub fn get_user(&self, id: &str) -> Result<User> {
        self.read(|txn| load_user(&txn.open_table(USERS)?, id))
            .map(|u| u.public())
    }

    /// Disables an account and ends all its sessions at once.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub fn disable_user(&self, id: &str) -> Result<User> {
        self.change_user(id, |user| user.disabled = true, true)
    }

    /// Enables a disabled account.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub fn enable_user(&self, id: &str) -> Result<User> {
        self.change_user(id, |user| user.disabled = false, false)
    }

    /// Sets a user's roles (an administrator's call: any valid role). Applies to the user's
    /// next request.
    ///
    /// # Errors
    /// `NotFound` for an unknown id; `InvalidInput` for a malformed role.
    pub fn set_user_roles(&self, id: &str, roles: &[String]) -> Result<User> {
        let roles = resolve_roles(roles, &Settings::default(), true)?;
        self.change_user(id, move |user| user.roles = roles.clone(), false)
    }

    /// Deletes an account: the user, its email and username, and all its sessions.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub fn delete_user(&self, id: &str) -> Result<()> {
        self.write_auth(|txn| {
            let user: StoredUser = match txn.open_table(USERS)?.remove(id)? {
                Some(bytes) => schema::decode(bytes.value())?,
                None => return Err(Error::not_found("user")),
            };
            txn.open_table(USERS_BY_EMAIL)?
                .remove(user.email.as_str())?;
            if let Some(phone) = &user.phone {
                txn.open_table(USERS_BY_PHONE)?.remove(phone.as_str())?;
            }
            if let Some(username) = &user.username {
                txn.open_table(USERS_BY_USERNAME)?
                    .remove(username.to_ascii_lowercase().as_str())?;
            }
            crate::files::on_user_deleted(txn, id)?;
            end_sessions_of(txn, id, None)
        })
    }

    fn change_user(
        &self,
        id: &str,
        change: impl Fn(&mut StoredUser),
        end_sessions: bool,
    ) -> Result<User> {
        let now = self.now_micros();
        self.write_auth(|txn| {
            let mut user = load_user(&txn.open_table(USERS)?, id)?;
            change(&mut user);
            user.updated_at = now.max(user.updated_at + 1);
            save_user(txn, &user)?;
            if end_sessions {
                end_sessions_of(txn, id, None)?;
            }
            Ok(user.public())
        })
    }
}

/// The welcome mail sent after signup when `SEND_WELCOME_EMAIL` is on.
fn welcome_mail(to: &str, settings: &Settings) -> crate::project::mail::MailMessage {
    notice_mail(
        to,
        "Welcome",
        "welcome",
        "Welcome! Your account is ready.\n",
        settings,
    )
}

/// Told to the owner of an address someone tried to sign up with again (email verification
/// on: the signup itself answers as for a new address).
fn already_registered_mail(to: &str, settings: &Settings) -> crate::project::mail::MailMessage {
    notice_mail(
        to,
        "You already have an account",
        "already_registered",
        "Someone tried to create an account with this address, which already has one.\n\
         If it was you, sign in or reset your password. Otherwise, ignore this message.\n",
        settings,
    )
}

/// A plain-text notice about the account, ending with where to sign in when that is known.
fn notice_mail(
    to: &str,
    subject: &str,
    template: &str,
    text: &str,
    settings: &Settings,
) -> crate::project::mail::MailMessage {
    let mut text = text.to_owned();
    if let Some(url) = settings
        .login_url
        .as_ref()
        .or(settings.frontend_url.as_ref())
    {
        text.push_str(&format!("\nSign in at {url}\n"));
    }
    crate::project::mail::MailMessage {
        to: vec![to.to_owned()],
        subject: Some(subject.into()),
        text: Some(text),
        template: Some(template.into()),
        ..crate::project::mail::MailMessage::default()
    }
}

fn set_username(txn: &WriteTransaction, user: &mut StoredUser, value: &Value) -> Result<()> {
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
