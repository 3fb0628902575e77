//! One-time codes and links: one mechanism for email verification, password reset, the second
//! factor of a login and phone login.
//!
//! A code is `OTP_LENGTH` digits from the OS CSPRNG, stored only as a salted SHA-256, single
//! use, valid 10 minutes, dead after 5 wrong attempts, bound to its purpose and account; a new
//! request voids the previous code. A link carries a separate 256-bit token with the same
//! properties. Requests cool down per (purpose, email) whether or not the account exists, and
//! answer the same either way: nothing reveals whether an email is registered.

use std::time::Duration;

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::identity::accounts::Users;
use crate::identity::sessions::Sessions;
use crate::identity::sessions::end_sessions_of;
use crate::identity::throttle::Key;
use crate::identity::throttle::Throttle;
use crate::identity::users::StoredUser;
use crate::project::mail::Mail;
use crate::project::mail::MailMessage;
use crate::project::settings::Project;
use crate::store::ids;
use crate::store::names::fold_email;
use crate::store::schema::{self, OTP_CODES, OTP_LINKS, USERS, USERS_BY_EMAIL};

/// How long a code or link lives.
pub const CODE_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Wrong attempts after which a code is dead.
pub const MAX_ATTEMPTS: u8 = 5;

/// What a code is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Confirming an email address.
    VerifyEmail,
    /// Resetting a forgotten password.
    ResetPassword,
    /// The second step of a login.
    TwoFactor,
    /// Logging in with a code sent by SMS.
    PhoneLogin,
}

impl Purpose {
    fn name(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::ResetPassword => "reset_password",
            Purpose::TwoFactor => "two_factor",
            Purpose::PhoneLogin => "phone_login",
        }
    }
}

/// A code as stored (under `purpose:user_id`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredCode {
    salt: Vec<u8>,
    hash: Vec<u8>,
    link_hash: Vec<u8>,
    expires_at: i64,
    attempts: u8,
}

fn code_key(purpose: Purpose, user_id: &str) -> String {
    format!("{}:{user_id}", purpose.name())
}

fn salted(salt: &[u8], code: &str) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(code.as_bytes());
    hasher.finalize().to_vec()
}

fn link_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn invalid_code() -> Error {
    Error::invalid("invalid or expired code")
}

/// `length` random decimal digits, without modulo bias.
fn random_digits(length: u32) -> Result<String> {
    let mut digits = String::with_capacity(length as usize);
    while digits.len() < length as usize {
        let mut byte = [0u8; 1];
        getrandom::fill(&mut byte)
            .map_err(|e| Error::internal(std::io::Error::other(e.to_string())))?;
        // 250 = 25 × 10: rejecting 250..=255 keeps every digit equally likely.
        if byte[0] < 250 {
            digits.push(char::from(b'0' + byte[0] % 10));
        }
    }
    Ok(digits)
}

impl Users<'_> {
    /// Issues a code and a link token for a user, voiding any previous one of that purpose.
    fn issue_code(
        &self,
        txn: &WriteTransaction,
        purpose: Purpose,
        user_id: &str,
        length: u32,
    ) -> Result<(String, String)> {
        let code = random_digits(length)?;
        let token = ids::random_secret()?;
        let mut salt = vec![0u8; 16];
        getrandom::fill(&mut salt)
            .map_err(|e| Error::internal(std::io::Error::other(e.to_string())))?;
        let lifetime = i64::try_from(CODE_LIFETIME.as_micros()).unwrap_or(i64::MAX);
        let stored = StoredCode {
            hash: salted(&salt, &code),
            salt,
            link_hash: link_hash(&token),
            expires_at: self.store.now_micros().saturating_add(lifetime),
            attempts: 0,
        };
        let key = code_key(purpose, user_id);
        let mut codes = txn.open_table(OTP_CODES)?;
        let mut links = txn.open_table(OTP_LINKS)?;
        if let Some(previous) = codes.get(key.as_str())? {
            let previous: StoredCode = schema::decode(previous.value())?;
            links.remove(previous.link_hash.as_slice())?;
        }
        codes.insert(key.as_str(), schema::encode(&stored)?.as_slice())?;
        links.insert(stored.link_hash.as_slice(), key.as_str())?;
        Ok((code, token))
    }

    /// Checks a code inside a write transaction: consumes it when right, counts the attempt when
    /// wrong (the fifth wrong attempt kills it).
    fn consume_code(
        &self,
        txn: &WriteTransaction,
        purpose: Purpose,
        user_id: &str,
        code: &str,
    ) -> Result<bool> {
        let key = code_key(purpose, user_id);
        let mut codes = txn.open_table(OTP_CODES)?;
        let Some(mut stored) = codes
            .get(key.as_str())?
            .map(|v| schema::decode::<StoredCode>(v.value()))
            .transpose()?
        else {
            return Ok(false);
        };
        let expired = self.store.now_micros() >= stored.expires_at;
        let right = bool::from(salted(&stored.salt, code).as_slice().ct_eq(&stored.hash));
        if right && !expired {
            codes.remove(key.as_str())?;
            txn.open_table(OTP_LINKS)?
                .remove(stored.link_hash.as_slice())?;
            return Ok(true);
        }
        stored.attempts += 1;
        if stored.attempts >= MAX_ATTEMPTS || expired {
            codes.remove(key.as_str())?;
            txn.open_table(OTP_LINKS)?
                .remove(stored.link_hash.as_slice())?;
        } else {
            codes.insert(key.as_str(), schema::encode(&stored)?.as_slice())?;
        }
        Ok(false)
    }

    /// Cools requests down per (purpose, email), known or not.
    fn cool_down(&self, purpose: Purpose, email: &str) -> Result<()> {
        let key = Key::CodeRequest(purpose.name(), email.to_owned());
        let now = self.store.now_micros();
        self.store.state::<Throttle>()?.check(&key, now)?;
        self.store.state::<Throttle>()?.record(key, now);
        Ok(())
    }

    /// Sends a verification code and link to an unverified account's email. Answers the same
    /// whether or not the email is registered or already verified.
    ///
    /// # Errors
    /// `RateLimited` within a minute of the previous request for this email (known or not).
    pub fn request_email_verification(&self, email: &str) -> Result<()> {
        self.request_code(Purpose::VerifyEmail, email, |user| !user.email_verified)
    }

    /// The request of a code by email: cooldown first (known or not), then a code only for an
    /// eligible account, mailed with its link; the answer is the same either way.
    fn request_code(
        &self,
        purpose: Purpose,
        email: &str,
        eligible: impl Fn(&StoredUser) -> bool,
    ) -> Result<()> {
        let email = fold_email(email).unwrap_or_else(|_| email.trim().to_lowercase());
        self.cool_down(purpose, &email)?;
        let settings = Project::new(self.store).settings()?;
        let issued = self.store.write(|txn| match user_by_email(txn, &email)? {
            Some(user) if eligible(&user) => self
                .issue_code(txn, purpose, &user.id, settings.otp_length)
                .map(Some),
            _ => Ok(None),
        })?;
        match issued {
            Some((code, token)) => self.mail_code(purpose, &email, &code, &token, &settings),
            None => Ok(()),
        }
    }

    /// Mails a code of `purpose`, with a link where the purpose has one and a URL is known.
    fn mail_code(
        &self,
        purpose: Purpose,
        email: &str,
        code: &str,
        token: &str,
        settings: &crate::project::settings::Settings,
    ) -> Result<()> {
        let (subject, action, base) = match purpose {
            Purpose::VerifyEmail => (
                "Confirm your email",
                "confirm your email address",
                self.verification_base(settings),
            ),
            Purpose::ResetPassword => (
                "Reset your password",
                "reset your password",
                self.password_reset_base(settings),
            ),
            Purpose::TwoFactor | Purpose::PhoneLogin => ("Your sign-in code", "sign in", None),
        };
        let link = base.map(|base| format!("{base}?token={token}"));
        Mail::new(self.store).send_flow_mail(code_mail(
            email,
            subject,
            action,
            code,
            link.as_deref(),
        ))
    }

    /// Where verification links point: the configured URL, else larder's own page when served.
    fn verification_base(&self, settings: &crate::project::settings::Settings) -> Option<String> {
        settings.verification_link_base().or_else(|| {
            self.store
                .served_url()
                .map(|url| format!("{url}/auth/verify-email"))
        })
    }

    /// Where reset links point: the configured URL, else larder's own form when served.
    fn password_reset_base(&self, settings: &crate::project::settings::Settings) -> Option<String> {
        settings.password_reset_link_base().or_else(|| {
            self.store
                .served_url()
                .map(|url| format!("{url}/auth/reset-password"))
        })
    }

    /// Mails a verification code to a new account (signup with email verification on).
    pub(crate) fn send_verification(
        &self,
        user: &StoredUser,
        settings: &crate::project::settings::Settings,
    ) -> Result<()> {
        let (code, token) = self.store.write(|txn| {
            self.issue_code(txn, Purpose::VerifyEmail, &user.id, settings.otp_length)
        })?;
        self.mail_code(Purpose::VerifyEmail, &user.email, &code, &token, settings)
    }

    /// Confirms an email with the code that was sent to it.
    ///
    /// # Errors
    /// `InvalidInput` ("invalid or expired code") for a wrong, used, expired, dead or
    /// other-purpose code, or an unknown email — all the same.
    pub fn verify_email(&self, email: &str, code: &str) -> Result<()> {
        let email = email.trim().to_lowercase();
        Sessions::new(self.store)
            .write_auth(|txn| {
                let Some(mut user) = user_by_email(txn, &email)? else {
                    return Ok(false);
                };
                if !self.consume_code(txn, Purpose::VerifyEmail, &user.id, code)? {
                    return Ok(false);
                }
                user.email_verified = true;
                user.updated_at = self.store.now_micros().max(user.updated_at + 1);
                txn.open_table(USERS)?
                    .insert(user.id.as_str(), schema::encode(&user)?.as_slice())?;
                Ok(true)
            })?
            .then_some(())
            .ok_or_else(invalid_code)
    }

    /// Sends a password-reset code and link. Answers the same whether or not the email is
    /// registered.
    ///
    /// # Errors
    /// `RateLimited` within a minute of the previous request for this email (known or not).
    pub fn request_password_reset(&self, email: &str) -> Result<()> {
        self.request_code(Purpose::ResetPassword, email, |_| true)
    }

    /// Sets a new password with the code that was mailed, and ends every session of the
    /// account. It signs nobody in, so it never bypasses a second factor.
    ///
    /// # Errors
    /// `InvalidInput` for a weak new password (checked first: the code is not spent) or an
    /// invalid code.
    pub fn reset_password(&self, email: &str, code: &str, new_password: &str) -> Result<()> {
        crate::identity::password::check_new_password(new_password)?;
        let hash = crate::identity::password::hash_password(new_password)?;
        let email = email.trim().to_lowercase();
        Sessions::new(self.store)
            .write_auth(|txn| {
                let Some(user) = user_by_email(txn, &email)? else {
                    return Ok(false);
                };
                if !self.consume_code(txn, Purpose::ResetPassword, &user.id, code)? {
                    return Ok(false);
                }
                self.set_password_in(txn, user, hash.clone())?;
                Ok(true)
            })?
            .then_some(())
            .ok_or_else(invalid_code)
    }

    /// Like [`Users::reset_password`](crate::Users::reset_password), with the token of the mailed link instead of the code.
    ///
    /// # Errors
    /// As [`Users::reset_password`](crate::Users::reset_password).
    pub fn reset_password_with_token(&self, token: &str, new_password: &str) -> Result<()> {
        crate::identity::password::check_new_password(new_password)?;
        let hash = crate::identity::password::hash_password(new_password)?;
        Sessions::new(self.store)
            .write_auth(|txn| {
                let Some(user_id) = self.consume_link(txn, Purpose::ResetPassword, token)? else {
                    return Ok(false);
                };
                let user: StoredUser = match txn.open_table(USERS)?.get(user_id.as_str())? {
                    Some(bytes) => schema::decode(bytes.value())?,
                    None => return Ok(false),
                };
                self.set_password_in(txn, user, hash.clone())?;
                Ok(true)
            })?
            .then_some(())
            .ok_or_else(invalid_code)
    }

    /// Confirms an email with the token of the mailed link.
    ///
    /// # Errors
    /// `InvalidInput` for an invalid, used or expired token.
    pub fn verify_email_token(&self, token: &str) -> Result<()> {
        Sessions::new(self.store)
            .write_auth(|txn| {
                let Some(user_id) = self.consume_link(txn, Purpose::VerifyEmail, token)? else {
                    return Ok(false);
                };
                let mut user: StoredUser = match txn.open_table(USERS)?.get(user_id.as_str())? {
                    Some(bytes) => schema::decode(bytes.value())?,
                    None => return Ok(false),
                };
                user.email_verified = true;
                user.updated_at = self.store.now_micros().max(user.updated_at + 1);
                txn.open_table(USERS)?
                    .insert(user.id.as_str(), schema::encode(&user)?.as_slice())?;
                Ok(true)
            })?
            .then_some(())
            .ok_or_else(invalid_code)
    }

    /// The password step of a login with a second factor: mails a code bound to this attempt
    /// (voiding any earlier one).
    pub(crate) fn start_second_factor(&self, user: &StoredUser) -> Result<()> {
        let settings = Project::new(self.store).settings()?;
        let (code, token) = self
            .store
            .write(|txn| self.issue_code(txn, Purpose::TwoFactor, &user.id, settings.otp_length))?;
        self.mail_code(Purpose::TwoFactor, &user.email, &code, &token, &settings)
    }

    /// Mails a new sign-in code, but only for a login whose password step passed in the last
    /// 10 minutes (the code stays bound to that attempt). Answers the same for every email.
    ///
    /// # Errors
    /// `RateLimited` within a minute of the previous request for this email.
    pub fn resend_second_factor(&self, email: &str) -> Result<()> {
        let email = fold_email(email).unwrap_or_else(|_| email.trim().to_lowercase());
        self.cool_down(Purpose::TwoFactor, &email)?;
        let settings = Project::new(self.store).settings()?;
        let issued = self.store.write(|txn| {
            let Some(user) = user_by_email(txn, &email)? else {
                return Ok(None);
            };
            let pending = txn
                .open_table(OTP_CODES)?
                .get(code_key(Purpose::TwoFactor, &user.id).as_str())?
                .is_some();
            if !pending {
                return Ok(None);
            }
            self.issue_code(txn, Purpose::TwoFactor, &user.id, settings.otp_length)
                .map(Some)
        })?;
        match issued {
            Some((code, token)) => {
                self.mail_code(Purpose::TwoFactor, &email, &code, &token, &settings)
            }
            None => Ok(()),
        }
    }

    /// The second step of a login: the code mailed after the password step. Wrong codes count
    /// as failed logins of the account.
    ///
    /// # Errors
    /// `Unauthenticated` for a wrong, used, expired or dead code; `RateLimited` while the
    /// account is throttled.
    pub fn complete_second_factor(
        &self,
        email: &str,
        code: &str,
        client: &crate::identity::users::Client,
    ) -> Result<crate::identity::sessions::SignedIn> {
        let email = email.trim().to_lowercase();
        self.sign_in_with_code(email.clone(), Purpose::TwoFactor, code, client, |txn| {
            user_by_email(txn, &email)
        })
    }

    /// Signs in with a one-time code: throttled like a login (per account and per address),
    /// the code consumed in the very transaction that starts the session.
    fn sign_in_with_code(
        &self,
        account: String,
        purpose: Purpose,
        code: &str,
        client: &crate::identity::users::Client,
        find: impl Fn(&WriteTransaction) -> Result<Option<StoredUser>>,
    ) -> Result<crate::identity::sessions::SignedIn> {
        let now = self.store.now_micros();
        let account = Key::LoginAccount(account);
        let address = client.address_key(Key::LoginAddress);
        self.store.state::<Throttle>()?.check(&account, now)?;
        if let Some(key) = &address {
            self.store.state::<Throttle>()?.check(key, now)?;
        }
        let signed_in = Sessions::new(self.store).write_auth(|txn| {
            let Some(user) = find(txn)? else {
                return Ok(None);
            };
            if user.disabled || !self.consume_code(txn, purpose, &user.id, code)? {
                return Ok(None);
            }
            let (session_id, refresh) = Sessions::new(self.store).create_session(txn, &user.id)?;
            Ok(Some((user.public(), session_id, refresh)))
        })?;
        match signed_in {
            Some((user, session_id, refresh)) => {
                self.store.state::<Throttle>()?.reset(&account);
                Sessions::new(self.store).signed_in(user, session_id, refresh)
            }
            None => {
                self.store.state::<Throttle>()?.record(account, now);
                if let Some(key) = address {
                    self.store.state::<Throttle>()?.record(key, now);
                }
                Err(Error::unauthenticated("invalid or expired code"))
            }
        }
    }

    /// Turns the caller's own second factor on or off. With `ENABLE_2FA` on, the project-wide
    /// setting still applies to everyone.
    ///
    /// # Errors
    /// `Unauthenticated` if the session ended meanwhile.
    pub fn set_second_factor(
        &self,
        session: &crate::identity::sessions::UserSession,
        enabled: bool,
    ) -> Result<crate::identity::users::User> {
        let now = self.store.now_micros();
        Sessions::new(self.store).write_auth(|txn| {
            let mut user: StoredUser =
                match txn.open_table(USERS)?.get(session.user().id.as_str())? {
                    Some(bytes) => schema::decode(bytes.value())?,
                    None => return Err(Error::unauthenticated("invalid or expired session")),
                };
            user.two_factor_enabled = enabled;
            user.updated_at = now.max(user.updated_at + 1);
            txn.open_table(USERS)?
                .insert(user.id.as_str(), schema::encode(&user)?.as_slice())?;
            Ok(user.public())
        })
    }

    /// Texts a login code to the account with this phone number, when `ENABLE_PHONE_LOGIN` is
    /// on. Answers the same whether or not the number is registered.
    ///
    /// # Errors
    /// `Forbidden` while phone login is off; `InvalidInput` for a malformed number;
    /// `RateLimited` within a minute of the previous request for this number.
    pub fn request_phone_login(&self, phone: &str) -> Result<()> {
        let settings = Project::new(self.store).settings()?;
        if !settings.enable_phone_login {
            return Err(Error::forbidden("phone login is not enabled"));
        }
        let phone = crate::identity::users::normalize_phone(phone)?;
        self.cool_down(Purpose::PhoneLogin, &phone)?;
        let issued = self.store.write(|txn| {
            let Some(user) = user_by_phone(txn, &phone)? else {
                return Ok(None);
            };
            if user.disabled {
                return Ok(None);
            }
            self.issue_code(txn, Purpose::PhoneLogin, &user.id, settings.otp_length)
                .map(Some)
        })?;
        if let Some((code, _)) = issued {
            let text = format!("Your sign-in code is {code}. It is valid for 10 minutes.");
            Mail::new(self.store).send_sms(&phone, text, Some(code))?;
        }
        Ok(())
    }

    /// Signs in with the code texted to this phone number. Wrong codes count as failed logins.
    ///
    /// # Errors
    /// `Forbidden` while phone login is off; `Unauthenticated` for a wrong, used, expired or
    /// dead code or an unknown number; `RateLimited` while throttled.
    pub fn complete_phone_login(
        &self,
        phone: &str,
        code: &str,
        client: &crate::identity::users::Client,
    ) -> Result<crate::identity::sessions::SignedIn> {
        if !Project::new(self.store).settings()?.enable_phone_login {
            return Err(Error::forbidden("phone login is not enabled"));
        }
        let phone = crate::identity::users::normalize_phone(phone)
            .map_err(|_| Error::unauthenticated("invalid or expired code"))?;
        self.sign_in_with_code(phone.clone(), Purpose::PhoneLogin, code, client, |txn| {
            user_by_phone(txn, &phone)
        })
    }

    /// Consumes a link token of a purpose; returns the account it was for.
    fn consume_link(
        &self,
        txn: &WriteTransaction,
        purpose: Purpose,
        token: &str,
    ) -> Result<Option<String>> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let hash = link_hash(token);
        let Some(key) = txn
            .open_table(OTP_LINKS)?
            .get(hash.as_slice())?
            .map(|v| v.value().to_owned())
        else {
            return Ok(None);
        };
        let Some(user_id) = key
            .strip_prefix(&format!("{}:", purpose.name()))
            .map(str::to_owned)
        else {
            return Ok(None); // a link of another purpose
        };
        let mut codes = txn.open_table(OTP_CODES)?;
        let stored = codes
            .remove(key.as_str())?
            .map(|v| schema::decode::<StoredCode>(v.value()))
            .transpose()?;
        txn.open_table(OTP_LINKS)?.remove(hash.as_slice())?;
        Ok(stored
            .filter(|s| self.store.now_micros() < s.expires_at)
            .map(|_| user_id))
    }

    fn set_password_in(
        &self,
        txn: &WriteTransaction,
        mut user: StoredUser,
        hash: String,
    ) -> Result<()> {
        user.password_hash = hash;
        user.updated_at = self.store.now_micros().max(user.updated_at + 1);
        txn.open_table(USERS)?
            .insert(user.id.as_str(), schema::encode(&user)?.as_slice())?;
        end_sessions_of(txn, &user.id, None)
    }
}

fn user_by_phone(txn: &WriteTransaction, phone: &str) -> Result<Option<StoredUser>> {
    let Some(id) = txn
        .open_table(crate::store::schema::USERS_BY_PHONE)?
        .get(phone)?
        .map(|v| v.value().to_owned())
    else {
        return Ok(None);
    };
    txn.open_table(USERS)?
        .get(id.as_str())?
        .map(|v| schema::decode(v.value()))
        .transpose()
}

fn user_by_email(txn: &WriteTransaction, email: &str) -> Result<Option<StoredUser>> {
    let Some(id) = txn
        .open_table(USERS_BY_EMAIL)?
        .get(email)?
        .map(|v| v.value().to_owned())
    else {
        return Ok(None);
    };
    txn.open_table(USERS)?
        .get(id.as_str())?
        .map(|v| schema::decode(v.value()))
        .transpose()
}

/// The plain-text mail carrying a code (and a link when a URL is configured).
fn code_mail(to: &str, subject: &str, action: &str, code: &str, link: Option<&str>) -> MailMessage {
    let mut text = format!("Your code to {action} is {code}. It is valid for 10 minutes.\n");
    if let Some(link) = link {
        text.push_str(&format!("\nOr open this link: {link}\n"));
    }
    text.push_str("\nIf you did not ask for this, ignore this message.\n");
    let mut variables = serde_json::Map::new();
    variables.insert("code".into(), code.into());
    if let Some(link) = link {
        variables.insert("link".into(), link.into());
    }
    MailMessage {
        to: vec![to.to_owned()],
        subject: Some(subject.to_owned()),
        text: Some(text),
        template: Some("otp".into()),
        variables,
        ..MailMessage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_uniform_enough_and_of_the_asked_length() {
        let mut counts = [0u32; 10];
        for _ in 0..2000 {
            let code = random_digits(6).unwrap();
            assert_eq!(code.len(), 6);
            for d in code.bytes() {
                counts[usize::from(d - b'0')] += 1;
            }
        }
        // 12,000 digits: each should appear about 1,200 times.
        assert!(
            counts.iter().all(|&c| (900..1500).contains(&c)),
            "{counts:?}"
        );
    }
}
