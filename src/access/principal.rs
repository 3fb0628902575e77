//! Who is acting: the result of authentication, and the input of every authorization.

use std::sync::Arc;

use crate::identity::api_keys::{KeyIdentity, KeyKind};
use crate::identity::sessions::UserSession;
use crate::identity::users::User;

/// The caller of an operation. Only authentication makes one ([`Db::authenticate_request`],
/// [`Db::as_user`], [`Db::with_key`], [`Db::anonymous`]); it cannot be built from parts, so
/// holding one proves the credential was checked.
///
/// [`Db::authenticate_request`]: crate::Db::authenticate_request
/// [`Db::as_user`]: crate::Db::as_user
/// [`Db::with_key`]: crate::Db::with_key
/// [`Db::anonymous`]: crate::Db::anonymous
#[derive(Debug, Clone)]
pub struct Principal(pub(crate) Kind);

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// The embedding program itself (`Db::collection`): full access.
    System,
    /// An API key (secret, publishable or scoped).
    Key(Arc<KeyIdentity>),
    /// A signed-in app user.
    User(Box<UserSession>),
    /// Nobody in particular.
    Anonymous,
}

impl Principal {
    pub(crate) fn system() -> Self {
        Principal(Kind::System)
    }

    pub(crate) fn anonymous() -> Self {
        Principal(Kind::Anonymous)
    }

    pub(crate) fn user_session(session: UserSession) -> Self {
        Principal(Kind::User(Box::new(session)))
    }

    pub(crate) fn key(identity: Arc<KeyIdentity>) -> Self {
        Principal(Kind::Key(identity))
    }

    /// A short name of the kind of caller: `system`, `secret_key`, `publishable_key`,
    /// `scoped_key`, `user` or `anonymous`.
    pub fn kind_name(&self) -> &'static str {
        match &self.0 {
            Kind::System => "system",
            Kind::Key(key) => match key.kind {
                KeyKind::Secret => "secret_key",
                KeyKind::Publishable => "publishable_key",
                KeyKind::Scoped => "scoped_key",
            },
            Kind::User(_) => "user",
            Kind::Anonymous => "anonymous",
        }
    }

    /// Whether the caller has full access: the embedding program or a secret key.
    pub fn is_admin(&self) -> bool {
        match &self.0 {
            Kind::System => true,
            Kind::Key(key) => key.kind == KeyKind::Secret,
            _ => false,
        }
    }

    /// Whether the caller is server-trusted (an administrator): exempt from per-address limits.
    pub fn is_server_trusted(&self) -> bool {
        self.is_admin()
    }

    /// The signed-in user, if the caller is one.
    pub fn user(&self) -> Option<&User> {
        match &self.0 {
            Kind::User(session) => Some(session.user()),
            _ => None,
        }
    }

    /// The user session, if the caller is a signed-in user.
    pub fn session(&self) -> Option<&UserSession> {
        match &self.0 {
            Kind::User(session) => Some(session),
            _ => None,
        }
    }

    /// The API key's id, if the caller is a key.
    pub fn key_id(&self) -> Option<&str> {
        match &self.0 {
            Kind::Key(key) => Some(&key.id),
            _ => None,
        }
    }
}
