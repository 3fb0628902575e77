//! THE authentication edge: presented credentials become a [`Principal`]. Nothing else makes
//! one (the embedding program's own principal is `Principal::system`).

use crate::access::principal::{Kind, Principal};
use crate::error::{Error, Result};
use crate::identity::api_keys::Keys;
use crate::identity::sessions::Sessions;
use crate::identity::tokens::{SigningKeys, TokenType};
use crate::store::Store;

/// The credentials a request presents (as the HTTP front reads them from `x-api-key` and
/// `Authorization: Bearer`).
#[derive(Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// An API key secret.
    pub api_key: Option<&'a str>,
    /// A bearer token: a user's access token or a JWT exchanged for a key.
    pub bearer: Option<&'a str>,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("api_key", &self.api_key.map(|_| "<redacted>"))
            .field("bearer", &self.bearer.map(|_| "<redacted>"))
            .finish()
    }
}

/// Turns presented credentials into a [`Principal`]: the one authentication edge.
/// - every credential presented must be valid: an invalid, expired or revoked key or token
///   is `Unauthenticated`, never a silent downgrade to anonymous;
/// - a valid bearer token decides (a user's access token makes the user, even beside an
///   admin key — apps ship the key with the user's token; a key-derived JWT makes the key);
/// - otherwise the API key decides;
/// - with neither, the caller is anonymous.
///
/// # Errors
/// `Unauthenticated` as above.
pub(crate) fn authenticate(store: &Store, credentials: Credentials<'_>) -> Result<Principal> {
    let key = credentials
        .api_key
        .map(|secret| Keys::new(store).authenticate(secret))
        .transpose()?;
    if let Some(bearer) = credentials.bearer {
        return bearer_principal(store, bearer);
    }
    Ok(match key {
        Some(identity) => Principal::key(identity),
        None => Principal::anonymous(),
    })
}

fn bearer_principal(store: &Store, token: &str) -> Result<Principal> {
    let verified = SigningKeys::new(store).verify_token(token)?;
    match (verified.typ, verified.generation) {
        (TokenType::Key, Some(generation)) => Ok(Principal::key(
            Keys::new(store).key_identity_for_token(&verified.subject, generation)?,
        )),
        (TokenType::Access, _) => Ok(Principal::user_session(
            Sessions::new(store).session_of(verified)?,
        )),
        _ => Err(Error::unauthenticated("invalid or expired token")),
    }
}

/// The principal of a user's access token.
///
/// # Errors
/// `Unauthenticated` for an invalid, expired or revoked token.
pub(crate) fn user(store: &Store, access_token: &str) -> Result<Principal> {
    Ok(Principal::user_session(
        Sessions::new(store).authenticate(access_token)?,
    ))
}

/// The principal of a session the caller has just proven (a signup or login made it).
#[cfg(feature = "http")]
pub(crate) fn of_session(session: crate::identity::sessions::UserSession) -> Principal {
    Principal::user_session(session)
}

/// The principal of an API key secret.
///
/// # Errors
/// `Unauthenticated` for an invalid, expired or revoked key.
pub(crate) fn key(store: &Store, secret: &str) -> Result<Principal> {
    Ok(Principal::key(Keys::new(store).authenticate(secret)?))
}

/// The principal of a caller that presents nothing.
pub(crate) fn anonymous() -> Principal {
    Principal::anonymous()
}

/// Whether the credential behind `principal` still holds: a key not revoked, rotated away or
/// expired; a session not ended or expired, its user not disabled. Principal-scoped handles
/// check it on every call, so a Rust `Actor` loses its rights the moment its credential does,
/// as an HTTP caller does on its next request. Cached like authentication itself.
///
/// # Errors
/// `Unauthenticated` once the credential is gone.
pub(crate) fn still_valid(store: &Store, principal: &Principal) -> Result<()> {
    match &principal.0 {
        Kind::System | Kind::Anonymous => Ok(()),
        Kind::Key(key) => Keys::new(store)
            .key_identity_for_token(&key.id, key.generation)
            .map(|_| ()),
        Kind::User(session) => Sessions::new(store).check(session),
    }
}

/// `principal` as its credential stands now: a key's current grants, a user's current roles
/// (for long-lived holders of a principal, such as change-feed subscriptions, which must see a
/// lost role or grant).
///
/// # Errors
/// `Unauthenticated` once the credential is gone (see [`still_valid`]).
pub(crate) fn refreshed(store: &Store, principal: &Principal) -> Result<Principal> {
    match &principal.0 {
        Kind::System | Kind::Anonymous => Ok(principal.clone()),
        Kind::Key(key) => Keys::new(store)
            .key_identity_for_token(&key.id, key.generation)
            .map(Principal::key),
        Kind::User(session) => Sessions::new(store)
            .current(session)
            .map(Principal::user_session),
    }
}
