//! Sessions and refresh tokens.
//!
//! A session starts at signup or login and carries one live refresh token: 256 random bits,
//! stored only as its SHA-256, rotated on every use. Presenting a token that was already
//! rotated away means it leaked: the whole session ends. Access tokens carry the session id,
//! and every use checks that the session is alive (through a cache invalidated by every
//! change), so an ended session's access token is refused on the very next request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redb::{ReadableMultimapTable, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::identity::tokens::SigningKeys;
use crate::identity::users::{StoredUser, User};
use crate::project::settings::Project;
use crate::store::Store;
use crate::store::ids;
use crate::store::schema::{self, REFRESH_TOKENS, SESSIONS, SESSIONS_BY_USER, USERS};

/// Default absolute lifetime of a session (and so of its refresh tokens): 30 days.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Rotated-away refresh tokens remembered per session for reuse detection.
const REMEMBERED_USED_TOKENS: usize = 32;

/// A session as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredSession {
    pub(crate) user_id: String,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
    /// SHA-256 of the live refresh token.
    current_refresh: Vec<u8>,
    /// SHA-256 of rotated-away refresh tokens, oldest first.
    used_refresh: Vec<Vec<u8>>,
}

/// The tokens handed out at signup, login and refresh. `Debug` hides the tokens.
#[derive(Clone, Serialize)]
pub struct SignedIn {
    /// The signed-in user.
    pub user: User,
    /// The session's id (the `sid` claim of its access tokens).
    pub session_id: String,
    /// A short-lived EdDSA JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The refresh token: single use, exchanged for new tokens by [`Sessions::refresh`](crate::Sessions::refresh).
    pub refresh_token: String,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("user", &self.user)
            .field("session_id", &self.session_id)
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &"<redacted>")
            .finish()
    }
}

/// A verified, live user session: what an access token proves. Only
/// [`Sessions::authenticate`](crate::Sessions::authenticate) makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct UserSession {
    user: User,
    session_id: String,
}

impl UserSession {
    /// The user, as of this request (roles and flags are current, not from the token).
    pub fn user(&self) -> &User {
        &self.user
    }

    /// The session id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }
}

fn refresh_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn unauthenticated() -> Error {
    Error::unauthenticated("invalid or expired session")
}

/// How long sessions live and what a public profile shows (set when the database opens).
#[derive(Debug, Clone)]
pub(crate) struct SessionConfig {
    /// The absolute lifetime of a session and its refresh tokens.
    pub(crate) lifetime: Duration,
    /// The profile `data` fields a public profile shows.
    pub(crate) public_profile_fields: Vec<String>,
}

/// Live sessions by id, with the user as of the last change. Every write to users or sessions
/// bumps the generation and clears the map; a reader only inserts what it read if no such
/// write happened meanwhile, so the cache never holds a state older than the tables.
#[derive(Default)]
pub(crate) struct IdentityCache {
    inner: Mutex<IdentityInner>,
}

#[derive(Default)]
struct IdentityInner {
    generation: u64,
    entries: HashMap<String, Arc<Identity>>,
}

#[derive(Debug)]
struct Identity {
    user: User,
    expires_at: i64,
}

/// Most identities cached.
const IDENTITY_CAPACITY: usize = 16_384;

impl IdentityCache {
    pub(crate) fn invalidate(&self) {
        let mut inner = self.inner.lock();
        inner.generation += 1;
        inner.entries.clear();
    }
}

/// Sessions and their tokens: refresh, authenticate, log out: `db.sessions()`.
#[derive(Debug, Clone, Copy)]
pub struct Sessions<'a> {
    pub(crate) store: &'a Store,
}

impl<'a> Sessions<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Sessions { store }
    }
}

impl Sessions<'_> {
    /// Runs a write on users or sessions, then invalidates the identity cache. The change log
    /// records that credentials changed, so change-feed subscribers re-check theirs at once.
    pub(crate) fn write_auth<T>(
        &self,
        mut op: impl FnMut(&WriteTransaction) -> Result<T>,
    ) -> Result<T> {
        let cache = self.store.state::<IdentityCache>()?;
        self.store.write_changes_then(
            |txn, changes| {
                let out = op(txn)?;
                changes.access()?;
                Ok(out)
            },
            || cache.invalidate(),
        )
    }

    /// Starts a session for `user_id` inside a write transaction; returns its id and refresh
    /// token.
    pub(crate) fn create_session(
        &self,
        txn: &WriteTransaction,
        user_id: &str,
    ) -> Result<(String, String)> {
        let now = self.store.now_micros();
        let lifetime = i64::try_from(self.store.state::<SessionConfig>()?.lifetime.as_micros())
            .unwrap_or(i64::MAX);
        let session_id = ids::random_hex(16)?;
        let refresh = ids::random_secret()?;
        let stored = StoredSession {
            user_id: user_id.to_owned(),
            created_at: now,
            expires_at: now.saturating_add(lifetime),
            current_refresh: refresh_hash(&refresh),
            used_refresh: Vec::new(),
        };
        txn.open_table(SESSIONS)?
            .insert(session_id.as_str(), schema::encode(&stored)?.as_slice())?;
        txn.open_multimap_table(SESSIONS_BY_USER)?
            .insert(user_id, session_id.as_str())?;
        txn.open_table(REFRESH_TOKENS)?
            .insert(stored.current_refresh.as_slice(), session_id.as_str())?;
        Ok((session_id, refresh))
    }

    /// Signs an access token for a new or refreshed session and packs the answer.
    pub(crate) fn signed_in(
        &self,
        user: User,
        session_id: String,
        refresh_token: String,
    ) -> Result<SignedIn> {
        let lifetime = Project::new(self.store).settings()?.jwt_expiry_minutes * 60;
        let (access_token, _) =
            SigningKeys::new(self.store).mint_access_token(&user.id, &session_id, lifetime)?;
        Ok(SignedIn {
            user,
            session_id,
            access_token,
            expires_in: lifetime,
            refresh_token,
        })
    }

    /// Exchanges a refresh token for new tokens. The presented token dies; presenting it again
    /// ends the whole session.
    ///
    /// # Errors
    /// `Unauthenticated` for an unknown, used, expired or revoked token, or a disabled user.
    pub fn refresh(&self, refresh_token: &str) -> Result<SignedIn> {
        enum Outcome {
            Rotated(Box<User>, String, String),
            Reused,
        }
        if refresh_token.is_empty() || refresh_token.len() > 512 {
            return Err(unauthenticated());
        }
        let hash = refresh_hash(refresh_token);
        let now = self.store.now_micros();
        let outcome = self.write_auth(|txn| {
            let Some(session_id) = txn
                .open_table(REFRESH_TOKENS)?
                .get(hash.as_slice())?
                .map(|v| v.value().to_owned())
            else {
                return Err(unauthenticated());
            };
            let mut sessions = txn.open_table(SESSIONS)?;
            let Some(mut session) = sessions
                .get(session_id.as_str())?
                .map(|v| schema::decode::<StoredSession>(v.value()))
                .transpose()?
            else {
                return Err(unauthenticated());
            };
            if session.current_refresh != hash {
                drop(sessions);
                end_session(txn, &session_id)?;
                return Ok(Outcome::Reused);
            }
            if now >= session.expires_at {
                drop(sessions);
                end_session(txn, &session_id)?;
                return Err(unauthenticated());
            }
            let user = match txn.open_table(USERS)?.get(session.user_id.as_str())? {
                Some(bytes) => schema::decode::<StoredUser>(bytes.value())?,
                None => return Err(unauthenticated()),
            };
            if user.disabled {
                return Err(unauthenticated());
            }
            let fresh = ids::random_secret()?;
            let fresh_hash = refresh_hash(&fresh);
            let mut refresh_tokens = txn.open_table(REFRESH_TOKENS)?;
            session.used_refresh.push(std::mem::replace(
                &mut session.current_refresh,
                fresh_hash.clone(),
            ));
            while session.used_refresh.len() > REMEMBERED_USED_TOKENS {
                let forgotten = session.used_refresh.remove(0);
                refresh_tokens.remove(forgotten.as_slice())?;
            }
            refresh_tokens.insert(fresh_hash.as_slice(), session_id.as_str())?;
            sessions.insert(session_id.as_str(), schema::encode(&session)?.as_slice())?;
            Ok(Outcome::Rotated(Box::new(user.public()), session_id, fresh))
        })?;
        match outcome {
            Outcome::Rotated(user, session_id, fresh) => self.signed_in(*user, session_id, fresh),
            Outcome::Reused => Err(unauthenticated()),
        }
    }

    /// Mints an access token from a refresh token *without* rotating it, for flows where the
    /// refresh token is a backend-held credential used again and again (Cobru's
    /// `/token/refresh/`). Only the session's current refresh token works; presenting one that
    /// was rotated away still ends the session. Returns the token and its lifetime in seconds.
    ///
    /// # Errors
    /// `Unauthenticated` for an unknown, used, expired or revoked token, or a disabled user.
    pub fn access_token_from_refresh(&self, refresh_token: &str) -> Result<(String, u64)> {
        if refresh_token.is_empty() || refresh_token.len() > 512 {
            return Err(unauthenticated());
        }
        let hash = refresh_hash(refresh_token);
        let now = self.store.now_micros();
        let found = self.store.read(|txn| {
            let Some(session_id) = txn
                .open_table(REFRESH_TOKENS)?
                .get(hash.as_slice())?
                .map(|v| v.value().to_owned())
            else {
                return Ok(None);
            };
            let session = txn
                .open_table(SESSIONS)?
                .get(session_id.as_str())?
                .map(|v| schema::decode::<StoredSession>(v.value()))
                .transpose()?;
            Ok(session.map(|s| (session_id, s)))
        })?;
        let Some((session_id, session)) = found else {
            return Err(unauthenticated());
        };
        if session.current_refresh != hash {
            // A rotated-away token: it leaked; end the session as `refresh` would.
            self.write_auth(|txn| end_session(txn, &session_id))?;
            return Err(unauthenticated());
        }
        if now >= session.expires_at {
            return Err(unauthenticated());
        }
        let identity = self.identity(&session_id)?;
        let lifetime = Project::new(self.store).settings()?.jwt_expiry_minutes * 60;
        let (token, _) = SigningKeys::new(self.store).mint_access_token(
            &identity.user.id,
            &session_id,
            lifetime,
        )?;
        Ok((token, lifetime))
    }

    /// Turns an access token into the live session it belongs to: signature and claims (with
    /// the verified-token cache), then the session and user as they are now.
    ///
    /// # Errors
    /// `Unauthenticated` for an invalid or expired token, an ended session, or a disabled or
    /// deleted user.
    pub fn authenticate(&self, access_token: &str) -> Result<UserSession> {
        let verified = SigningKeys::new(self.store).verify_token(access_token)?;
        self.session_of(verified)
    }

    /// The live session a verified access token belongs to.
    pub(crate) fn session_of(
        &self,
        verified: crate::identity::tokens::VerifiedToken,
    ) -> Result<UserSession> {
        let (crate::identity::tokens::TokenType::Access, Some(session_id)) =
            (verified.typ, verified.session_id)
        else {
            return Err(unauthenticated());
        };
        let identity = self.identity(&session_id)?;
        if identity.user.id != verified.subject || self.store.now_micros() >= identity.expires_at {
            return Err(unauthenticated());
        }
        Ok(UserSession {
            user: identity.user.clone(),
            session_id,
        })
    }

    /// Whether `session` is still live: not ended, not expired, its user not disabled.
    ///
    /// # Errors
    /// `Unauthenticated` otherwise.
    pub(crate) fn check(&self, session: &UserSession) -> Result<()> {
        self.live(session).map(|_| ())
    }

    fn live(&self, session: &UserSession) -> Result<Arc<Identity>> {
        let identity = self.identity(&session.session_id)?;
        if identity.user.id != session.user.id || self.store.now_micros() >= identity.expires_at {
            return Err(unauthenticated());
        }
        Ok(identity)
    }

    /// `session` with its user as it is now (roles and flags), if it is still live.
    ///
    /// # Errors
    /// `Unauthenticated` once it is not.
    pub(crate) fn current(&self, session: &UserSession) -> Result<UserSession> {
        let identity = self.live(session)?;
        Ok(UserSession {
            user: identity.user.clone(),
            session_id: session.session_id.clone(),
        })
    }

    fn identity(&self, session_id: &str) -> Result<Arc<Identity>> {
        let cache = self.store.state::<IdentityCache>()?;
        let generation = {
            let inner = cache.inner.lock();
            if let Some(hit) = inner.entries.get(session_id) {
                return Ok(hit.clone());
            }
            inner.generation
        };
        let identity = self.store.read(|txn| {
            let Some(session) = txn
                .open_table(SESSIONS)?
                .get(session_id)?
                .map(|v| schema::decode::<StoredSession>(v.value()))
                .transpose()?
            else {
                return Err(unauthenticated());
            };
            let Some(user) = txn
                .open_table(USERS)?
                .get(session.user_id.as_str())?
                .map(|v| schema::decode::<StoredUser>(v.value()))
                .transpose()?
            else {
                return Err(unauthenticated());
            };
            if user.disabled {
                return Err(unauthenticated());
            }
            Ok(Arc::new(Identity {
                user: user.public(),
                expires_at: session.expires_at,
            }))
        })?;
        let mut inner = cache.inner.lock();
        if inner.generation == generation {
            if inner.entries.len() >= IDENTITY_CAPACITY {
                inner.entries.clear();
            }
            inner
                .entries
                .insert(session_id.to_owned(), identity.clone());
        }
        Ok(identity)
    }

    /// Ends this session: its refresh token and access tokens stop working at once.
    ///
    /// # Errors
    /// Only storage failures.
    pub fn logout(&self, session: &UserSession) -> Result<()> {
        self.write_auth(|txn| end_session(txn, &session.session_id))
    }

    /// Ends the session a refresh token belongs to (a logout that presents only the refresh
    /// token). Unknown tokens are ignored: logging out is idempotent.
    ///
    /// # Errors
    /// Only storage failures.
    pub fn logout_refresh_token(&self, refresh_token: &str) -> Result<()> {
        if refresh_token.is_empty() || refresh_token.len() > 512 {
            return Ok(());
        }
        let hash = refresh_hash(refresh_token);
        self.write_auth(|txn| {
            let session = txn
                .open_table(REFRESH_TOKENS)?
                .get(hash.as_slice())?
                .map(|v| v.value().to_owned());
            match session {
                Some(session_id) => end_session(txn, &session_id),
                None => Ok(()),
            }
        })
    }

    /// Ends every session of this session's user.
    ///
    /// # Errors
    /// Only storage failures.
    pub fn logout_all(&self, session: &UserSession) -> Result<()> {
        self.end_all(&session.user.id)
    }

    /// Ends every session of a user (an administrator's call).
    ///
    /// # Errors
    /// Only storage failures.
    pub fn end_all(&self, user_id: &str) -> Result<()> {
        self.write_auth(|txn| end_sessions_of(txn, user_id, None))
    }

    /// How many live sessions a user has.
    ///
    /// # Errors
    /// Only storage failures.
    pub fn count(&self, user_id: &str) -> Result<u64> {
        self.store.read(|txn| {
            Ok(txn
                .open_multimap_table(SESSIONS_BY_USER)?
                .get(user_id)?
                .len())
        })
    }
}

/// Deletes a session and all its refresh tokens.
pub(crate) fn end_session(txn: &WriteTransaction, session_id: &str) -> Result<()> {
    let Some(session) = txn
        .open_table(SESSIONS)?
        .remove(session_id)?
        .map(|v| schema::decode::<StoredSession>(v.value()))
        .transpose()?
    else {
        return Ok(());
    };
    let mut refresh_tokens = txn.open_table(REFRESH_TOKENS)?;
    refresh_tokens.remove(session.current_refresh.as_slice())?;
    for used in &session.used_refresh {
        refresh_tokens.remove(used.as_slice())?;
    }
    txn.open_multimap_table(SESSIONS_BY_USER)?
        .remove(session.user_id.as_str(), session_id)?;
    Ok(())
}

/// Ends every session of a user, except `keep` if given.
pub(crate) fn end_sessions_of(
    txn: &WriteTransaction,
    user_id: &str,
    keep: Option<&str>,
) -> Result<()> {
    let ids: Vec<String> = txn
        .open_multimap_table(SESSIONS_BY_USER)?
        .get(user_id)?
        .map(|v| v.map(|v| v.value().to_owned()))
        .collect::<std::result::Result<_, _>>()?;
    for id in ids {
        if Some(id.as_str()) != keep {
            end_session(txn, &id)?;
        }
    }
    Ok(())
}
