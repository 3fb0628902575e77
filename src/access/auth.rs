//! THE authentication edge: presented credentials become a [`Principal`], and principal-scoped
//! handles ([`Actor`]) let Rust callers act as someone, under the same rules as HTTP.

use crate::access::policy::{self, Action, Decision, Target};
use crate::access::principal::Principal;
use crate::data::collections::{CollectionInfo, CollectionSpec};
use crate::data::documents::Collection;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::identity::api_keys::{ApiKeyInfo, Grant, GrantChange, IssuedKey, NewApiKey};
use crate::identity::tokens::TokenType;

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

impl Db {
    /// Turns presented credentials into a [`Principal`]:
    /// - every credential presented must be valid: an invalid, expired or revoked key or token
    ///   is `Unauthenticated`, never a silent downgrade to anonymous;
    /// - a valid bearer token decides (a user's access token makes the user, even beside an
    ///   admin key — apps ship the key with the user's token; a key-derived JWT makes the key);
    /// - otherwise the API key decides;
    /// - with neither, the caller is anonymous.
    ///
    /// # Errors
    /// `Unauthenticated` as above.
    pub fn authenticate_request(&self, credentials: Credentials<'_>) -> Result<Principal> {
        let key = credentials
            .api_key
            .map(|secret| self.authenticate_key(secret))
            .transpose()?;
        if let Some(bearer) = credentials.bearer {
            return self.bearer_principal(bearer);
        }
        Ok(match key {
            Some(identity) => Principal::key(identity),
            None => Principal::anonymous(),
        })
    }

    fn bearer_principal(&self, token: &str) -> Result<Principal> {
        let verified = self.verify_token(token)?;
        match (verified.typ, verified.generation) {
            (TokenType::Key, Some(generation)) => Ok(Principal::key(
                self.key_identity_for_token(&verified.subject, generation)?,
            )),
            (TokenType::Access, _) => Ok(Principal::user_session(self.session_of(verified)?)),
            _ => Err(Error::unauthenticated("invalid or expired token")),
        }
    }

    /// Acts as the user of this access token.
    ///
    /// # Errors
    /// `Unauthenticated` for an invalid, expired or revoked token.
    ///
    /// ```
    /// # fn main() -> larder::Result<()> {
    /// use larder::{Client, CollectionSpec, Db, NewUser, Rule, Rules};
    /// use serde_json::json;
    /// let db = Db::in_memory()?;
    /// let owner_only = Rules { list: Rule::Owner, view: Rule::Owner, create: Rule::Authenticated,
    ///                          update: Rule::Owner, delete: Rule::Owner };
    /// db.create_collection("notes", CollectionSpec::new().rules(owner_only).owner_field("owner"))?;
    /// let ada = db.signup(NewUser::new("ada@example.com", "analytical engine"), &Client::unknown())?;
    ///
    /// let notes = db.as_user(&ada.access_token)?.collection::<serde_json::Value>("notes");
    /// let note = notes.insert(&json!({"text": "mine"}))?;
    /// assert_eq!(note.data["owner"], json!(ada.user.id)); // filled in from the caller
    /// # Ok(()) }
    /// ```
    pub fn as_user(&self, access_token: &str) -> Result<Actor> {
        let session = self.authenticate(access_token)?;
        Ok(self.acting_as(Principal::user_session(session)))
    }

    /// Acts as the holder of this API key secret.
    ///
    /// # Errors
    /// `Unauthenticated` for an invalid, expired or revoked key.
    pub fn with_key(&self, secret: &str) -> Result<Actor> {
        let identity = self.authenticate_key(secret)?;
        Ok(self.acting_as(Principal::key(identity)))
    }

    /// Acts as an anonymous caller.
    pub fn anonymous(&self) -> Actor {
        self.acting_as(Principal::anonymous())
    }

    /// Acts as an authenticated principal.
    pub fn acting_as(&self, principal: Principal) -> Actor {
        Actor {
            db: self.clone(),
            principal,
        }
    }

    /// Whether `principal` may do `action` on a collection (and, for document actions, on one
    /// document), and the rule that decides — without doing it.
    ///
    /// # Errors
    /// `NotFound` for a missing collection or document.
    pub fn explain(
        &self,
        principal: &Principal,
        action: Action,
        collection: &str,
        document_id: Option<&str>,
    ) -> Result<Decision> {
        let info = self.collection_info(collection)?;
        let data = match document_id {
            Some(id) => match self.collection::<serde_json::Value>(collection).get(id)? {
                Some(doc) => Some(doc.data.as_object().cloned().unwrap_or_default()),
                None => return Err(Error::not_found("document")),
            },
            None => None,
        };
        let target = match &data {
            Some(data) => Target::Document {
                name: collection,
                spec: &info.spec,
                data,
            },
            None => Target::Collection {
                name: collection,
                spec: &info.spec,
            },
        };
        Ok(match policy::authorize(principal, action, &target) {
            Ok(permit) => Decision {
                allowed: true,
                rule: permit.rule,
                reason: "allowed".into(),
            },
            Err(error) => Decision {
                allowed: false,
                rule: policy::authorize(&Principal::system(), action, &target)
                    .map(|_| describe_rule(&info.spec, action))
                    .unwrap_or_default(),
                reason: error.to_string(),
            },
        })
    }
}

fn describe_rule(spec: &CollectionSpec, action: Action) -> String {
    if !action.is_data() {
        return "administrators only".into();
    }
    format!("{:?}", crate::access::policy::rule_for(spec, action)).to_lowercase()
}

/// A principal-scoped handle: every call runs as that principal, under the same rules as
/// HTTP. Administrative calls need an administrator (a secret key or the embedding program).
#[derive(Debug, Clone)]
pub struct Actor {
    db: Db,
    principal: Principal,
}

impl Actor {
    /// Who this handle acts as.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// A collection's documents, as this principal.
    pub fn collection<T>(&self, name: &str) -> Collection<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + 'static,
    {
        self.db.collection_as(name, self.principal.clone())
    }

    /// A bucket's files, as this principal.
    pub fn bucket(&self, name: &str) -> crate::files::Bucket {
        self.db.bucket_as(name, self.principal.clone())
    }

    fn admin(&self, action: Action) -> Result<&Db> {
        policy::authorize(&self.principal, action, &Target::Admin)?;
        Ok(&self.db)
    }

    /// [`Db::create_collection`], for administrators.
    ///
    /// # Errors
    /// `Forbidden`/`Unauthenticated` for non-administrators; otherwise as the `Db` call.
    pub fn create_collection(&self, name: &str, spec: CollectionSpec) -> Result<CollectionInfo> {
        self.admin(Action::ManageCollections)?
            .create_collection(name, spec)
    }

    /// [`Db::create_api_key`], for administrators.
    ///
    /// # Errors
    /// `Forbidden`/`Unauthenticated` for non-administrators; otherwise as the `Db` call.
    pub fn create_api_key(&self, new: NewApiKey) -> Result<IssuedKey> {
        self.admin(Action::ManageKeys)?.create_api_key(new)
    }

    /// [`Db::list_api_keys`], for administrators.
    ///
    /// # Errors
    /// `Forbidden`/`Unauthenticated` for non-administrators.
    pub fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>> {
        self.admin(Action::ManageKeys)?.list_api_keys()
    }

    /// [`Db::put_key_grant`], for administrators.
    ///
    /// # Errors
    /// `Forbidden`/`Unauthenticated` for non-administrators; otherwise as the `Db` call.
    pub fn put_key_grant(
        &self,
        id: &str,
        collection: &str,
        grant: Option<Grant>,
    ) -> Result<GrantChange> {
        self.admin(Action::ManageKeys)?
            .put_key_grant(id, collection, grant)
    }

    /// [`Db::revoke_api_key`], for administrators.
    ///
    /// # Errors
    /// `Forbidden`/`Unauthenticated` for non-administrators; otherwise as the `Db` call.
    pub fn revoke_api_key(&self, id: &str) -> Result<()> {
        self.admin(Action::ManageKeys)?.revoke_api_key(id)
    }

    /// [`Db::list_users`], for administrators.
    ///
    /// # Errors
    /// `Forbidden`/`Unauthenticated` for non-administrators.
    pub fn list_users(&self) -> Result<Vec<crate::identity::users::User>> {
        self.admin(Action::ManageUsers)?.list_users()
    }
}
