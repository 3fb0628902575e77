//! Accounts: signup, login, profile, password change, public profile, and administration, on
//! the [`Users`] handle.
//!
//! Emails are case-folded and unique; usernames (optional) are unique ignoring case. Passwords
//! are argon2id hashes (see `password.rs`). Login failures look the same whether the account
//! exists or not: same error, same message, and the same time (a dummy verification).

use redb::ReadableTable;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::identity::password;
use crate::identity::sessions::SessionConfig;
use crate::identity::sessions::Sessions;
use crate::identity::sessions::{SignedIn, UserSession, end_sessions_of};
use crate::identity::throttle::Key;
use crate::identity::throttle::Throttle;
use crate::identity::users::*;
use crate::project::mail::Mail;
use crate::project::settings::Project;
use crate::project::settings::{Settings, read_settings};
use crate::store::clock::format_rfc3339;
use crate::store::names::fold_email;
use crate::store::schema::{self, USERS, USERS_BY_EMAIL, USERS_BY_PHONE, USERS_BY_USERNAME};
use crate::store::{Cascades, Store};

/// App users' accounts: signup, login, profiles, one-time codes and administration:
/// `db.users()`.
#[derive(Debug, Clone, Copy)]
pub struct Users<'a> {
    pub(crate) store: &'a Store,
}

impl<'a> Users<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Users { store }
    }
}

impl Users<'_> {
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
    /// let signed_in = db.users().signup(NewUser::new("ada@example.com", "analytical engine"), &Client::unknown())?;
    /// let session = db.sessions().authenticate(&signed_in.access_token)?;
    /// assert_eq!(session.user().email, "ada@example.com");
    /// # Ok(()) }
    /// ```
    pub fn signup(&self, new: NewUser, client: &Client) -> Result<SignedIn> {
        let now = self.store.now_micros();
        let address_key = client.address_key(Key::SignupAddress);
        if let Some(key) = &address_key {
            self.store.state::<Throttle>()?.check(key, now)?;
        }
        let email = fold_email(&new.email)?;
        let username = new.username.as_deref().map(validate_username).transpose()?;
        let phone = new.phone.as_deref().map(normalize_phone).transpose()?;
        password::check_new_password(&new.password)?;
        let data_json = check_profile_data(&new.data)?;
        let settings = Project::new(self.store).settings()?;
        let roles = resolve_roles(&new.roles, &settings, client.server_trusted)?;
        let password_hash = password::hash_password(&new.password)?;
        if let Some(key) = address_key {
            self.store.state::<Throttle>()?.record(key, now);
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
        let created = Sessions::new(self.store).write_auth(|txn| {
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
            let (session_id, refresh) = Sessions::new(self.store).create_session(txn, &user.id)?;
            Ok(Created::Session(session_id, refresh))
        })?;
        let (session_id, refresh) = match created {
            Created::Session(session_id, refresh) => (session_id, refresh),
            Created::PendingVerification => {
                // No session until the address is confirmed: the code goes out now.
                self.send_verification(&user, &settings)?;
                if settings.send_welcome_email {
                    Mail::new(self.store).send_flow_mail(welcome_mail(&user.email, &settings))?;
                }
                return Err(crate::error::ErrorKind::VerificationRequired.into());
            }
            Created::EmailTaken => {
                Mail::new(self.store)
                    .send_flow_mail(already_registered_mail(&user.email, &settings))?;
                return Err(crate::error::ErrorKind::VerificationRequired.into());
            }
        };
        if settings.send_welcome_email {
            Mail::new(self.store).send_flow_mail(welcome_mail(&user.email, &settings))?;
        }
        Sessions::new(self.store).signed_in(user.public(), session_id, refresh)
    }

    /// Signs in with an email and a password, for the embedding program itself (a desktop app's
    /// own sign-in window, a script): [`login`](Self::login) without a client address, so only
    /// the per-account throttle applies.
    ///
    /// ```
    /// # fn main() -> larder::Result<()> {
    /// use larder::{Client, Db, NewUser};
    /// let db = Db::in_memory()?;
    /// db.users().signup(NewUser::new("ada@example.com", "analytical engine"), &Client::unknown())?;
    /// let signed_in = db.users().sign_in("ada@example.com", "analytical engine")?;
    /// assert_eq!(signed_in.user.email, "ada@example.com");
    /// let ada = db.as_user(&signed_in.access_token)?;
    /// assert_eq!(ada.principal().user().map(|u| u.id.as_str()), Some(signed_in.user.id.as_str()));
    /// assert!(db.users().sign_in("ada@example.com", "wrong password").is_err());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`login`](Self::login).
    pub fn sign_in(&self, email: &str, password: &str) -> Result<SignedIn> {
        self.login(email, password, &Client::unknown())
    }

    /// Signs in with an email and a password.
    ///
    /// # Errors
    /// `Unauthenticated` ("invalid email or password", identical for unknown emails and wrong
    /// passwords); `RateLimited` once an account or address has too many recent failures
    /// (then even the right password is refused until the window passes); `Forbidden` for a
    /// disabled account (only told to someone who knows its password); `SecondFactorRequired`
    /// when the account or project uses a second factor (a code was mailed; finish with
    /// [`Users::complete_second_factor`](crate::Users::complete_second_factor)).
    pub fn login(&self, email: &str, password: &str, client: &Client) -> Result<SignedIn> {
        let now = self.store.now_micros();
        let folded = email.trim().to_lowercase();
        let account_key = Key::LoginAccount(folded.clone());
        let address_key = client.address_key(Key::LoginAddress);
        self.store.state::<Throttle>()?.check(&account_key, now)?;
        if let Some(key) = &address_key {
            self.store.state::<Throttle>()?.check(key, now)?;
        }
        let found = self.store.read(|txn| {
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
            self.store.state::<Throttle>()?.record(account_key, now);
            if let Some(key) = address_key {
                self.store.state::<Throttle>()?.record(key, now);
            }
            return Err(login_failed());
        };
        if user.disabled {
            return Err(Error::forbidden("this account is disabled"));
        }
        self.store.state::<Throttle>()?.reset(&account_key);
        let settings = Project::new(self.store).settings()?;
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
        let (session_id, refresh) = Sessions::new(self.store).write_auth(|txn| {
            // The account may have been deleted or disabled since it was read.
            let current =
                load_user(&txn.open_table(USERS)?, &user.id).map_err(|_| login_failed())?;
            if current.disabled {
                return Err(Error::forbidden("this account is disabled"));
            }
            Sessions::new(self.store).create_session(txn, &user.id)
        })?;
        Sessions::new(self.store).signed_in(user.public(), session_id, refresh)
    }

    /// A new session for user `id` without a password: for test fixtures
    /// (`TestServer::sign_in_as`), never a door.
    ///
    /// # Errors
    /// `NotFound` for an unknown user; `Forbidden` for a disabled one.
    #[cfg(feature = "testing")]
    pub(crate) fn session_for(&self, id: &str) -> Result<SignedIn> {
        let (user, session_id, refresh) = Sessions::new(self.store).write_auth(|txn| {
            let user = load_user(&txn.open_table(USERS)?, id)?;
            if user.disabled {
                return Err(Error::forbidden("this account is disabled"));
            }
            let (session_id, refresh) = Sessions::new(self.store).create_session(txn, id)?;
            Ok((user.public(), session_id, refresh))
        })?;
        Sessions::new(self.store).signed_in(user, session_id, refresh)
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
        let now = self.store.now_micros();
        let user_id = session.user().id.clone();
        Sessions::new(self.store).write_auth(|txn| {
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
        let now = self.store.now_micros();
        let account_key = Key::LoginAccount(session.user().email.clone());
        self.store.state::<Throttle>()?.check(&account_key, now)?;
        password::check_new_password(new)?;
        let stored = self
            .store
            .read(|txn| load_user(&txn.open_table(USERS)?, &session.user().id))?;
        if !password::verify_password(current, &stored.password_hash)? {
            self.store.state::<Throttle>()?.record(account_key, now);
            return Err(Error::unauthenticated("the current password is wrong"));
        }
        let hash = password::hash_password(new)?;
        Sessions::new(self.store).write_auth(|txn| {
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
        let user = self.store.read(|txn| {
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
        let shown = &self.store.state::<SessionConfig>()?.public_profile_fields;
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
    pub fn list(&self) -> Result<Vec<User>> {
        let mut users = self.store.read(|txn| {
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
    pub fn get(&self, id: &str) -> Result<User> {
        self.store
            .read(|txn| load_user(&txn.open_table(USERS)?, id))
            .map(|u| u.public())
    }

    /// Disables an account and ends all its sessions at once.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub fn disable(&self, id: &str) -> Result<User> {
        self.change_user(id, |user| user.disabled = true, true)
    }

    /// Enables a disabled account.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub fn enable(&self, id: &str) -> Result<User> {
        self.change_user(id, |user| user.disabled = false, false)
    }

    /// Sets a user's roles (an administrator's call: any valid role). Applies to the user's
    /// next request.
    ///
    /// # Errors
    /// `NotFound` for an unknown id; `InvalidInput` for a malformed role.
    pub fn set_roles(&self, id: &str, roles: &[String]) -> Result<User> {
        let roles = resolve_roles(roles, &Settings::default(), true)?;
        self.change_user(id, move |user| user.roles = roles.clone(), false)
    }

    /// Deletes an account: the user, its email and username, and all its sessions.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub fn delete(&self, id: &str) -> Result<()> {
        let cascades = *self.store.state::<Cascades>()?;
        Sessions::new(self.store).write_auth(|txn| {
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
            (cascades.user_deleted)(txn, id)?;
            end_sessions_of(txn, id, None)
        })
    }

    fn change_user(
        &self,
        id: &str,
        change: impl Fn(&mut StoredUser),
        end_sessions: bool,
    ) -> Result<User> {
        let now = self.store.now_micros();
        Sessions::new(self.store).write_auth(|txn| {
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
