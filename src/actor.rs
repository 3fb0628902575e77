//! Acting as someone: [`Actor`], a principal-scoped handle that lets Rust callers do what an
//! HTTP caller with the same credentials could, under the same rules.

use crate::access::auth::{self, Credentials};
use crate::access::policy::{self, Action, Decision, Target};
use crate::access::principal::Principal;
use crate::data::collections::{CollectionSpec, Collections};
use crate::data::documents::Collection;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::files::{Bucket, Buckets};
use crate::identity::accounts::Users;
use crate::identity::api_keys::Keys;
use crate::identity::tokens::SigningKeys;
use crate::project::mail::Mail;
use crate::project::settings::Project;

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
        auth::authenticate(self.store(), credentials)
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
    /// db.collections().create("notes", CollectionSpec::new().rules(owner_only).owner_field("owner"))?;
    /// let ada = db.users().signup(NewUser::new("ada@example.com", "analytical engine"), &Client::unknown())?;
    ///
    /// let notes = db.as_user(&ada.access_token)?.collection::<serde_json::Value>("notes");
    /// let note = notes.insert(&json!({"text": "mine"}))?;
    /// assert_eq!(note.data["owner"], json!(ada.user.id)); // filled in from the caller
    /// # Ok(()) }
    /// ```
    pub fn as_user(&self, access_token: &str) -> Result<Actor> {
        Ok(self.acting_as(auth::user(self.store(), access_token)?))
    }

    /// Acts as the holder of this API key secret.
    ///
    /// # Errors
    /// `Unauthenticated` for an invalid, expired or revoked key.
    pub fn with_key(&self, secret: &str) -> Result<Actor> {
        Ok(self.acting_as(auth::key(self.store(), secret)?))
    }

    /// Acts as an anonymous caller.
    pub fn anonymous(&self) -> Actor {
        self.acting_as(auth::anonymous())
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
        let info = self.collections().info(collection)?;
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
                spec: info.spec.guard(),
                data,
            },
            None => Target::Collection {
                name: collection,
                spec: info.spec.guard(),
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
    format!(
        "{:?}",
        crate::access::policy::rule_for(spec.guard(), action)
    )
    .to_lowercase()
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
    pub fn bucket(&self, name: &str) -> Bucket {
        self.db.bucket_as(name, self.principal.clone())
    }

    fn admin(&self, action: Action) -> Result<&Db> {
        auth::still_valid(self.db.store(), &self.principal)?;
        policy::authorize(&self.principal, action, &Target::Admin)?;
        Ok(&self.db)
    }

    /// [`Db::collections`], for administrators.
    ///
    /// # Errors
    /// `Forbidden`/`Unauthenticated` for non-administrators.
    pub fn collections(&self) -> Result<Collections<'_>> {
        Ok(self.admin(Action::ManageCollections)?.collections())
    }

    /// [`Db::keys`], for administrators.
    ///
    /// # Errors
    /// `Forbidden`/`Unauthenticated` for non-administrators.
    pub fn keys(&self) -> Result<Keys<'_>> {
        Ok(self.admin(Action::ManageKeys)?.keys())
    }

    /// [`Db::buckets`], for administrators.
    ///
    /// # Errors
    /// `Forbidden`/`Unauthenticated` for non-administrators.
    pub fn buckets(&self) -> Result<Buckets<'_>> {
        Ok(self.admin(Action::ManageCollections)?.buckets())
    }

    /// [`Db::project`], for administrators.
    ///
    /// # Errors
    /// `Forbidden`/`Unauthenticated` for non-administrators.
    pub fn project(&self) -> Result<Project<'_>> {
        Ok(self.admin(Action::ManageSettings)?.project())
    }

    /// [`Db::mail`], for server-side callers (a secret key, the embedding program).
    ///
    /// # Errors
    /// `Forbidden`/`Unauthenticated` for others.
    pub fn mail(&self) -> Result<Mail<'_>> {
        Ok(self.admin(Action::SendMail)?.mail())
    }

    /// [`Db::signing_keys`], for administrators.
    ///
    /// # Errors
    /// `Forbidden`/`Unauthenticated` for non-administrators.
    pub fn signing_keys(&self) -> Result<SigningKeys<'_>> {
        Ok(self.admin(Action::ManageKeys)?.signing_keys())
    }

    #[cfg(feature = "http")]
    /// A bucket on the server-side storage routes (urBackend's): a secret key acts there, or
    /// a scoped key within its grants; a publishable key or a user is refused.
    pub(crate) fn server_bucket(&self, name: &str) -> Result<Bucket> {
        self.admin(Action::ServerStorage)?;
        Ok(self.bucket(name))
    }

    #[cfg(feature = "http")]
    /// The whole database, for a caller the policy lets do `action` as an administrator: what
    /// the administrative routes of every dialect act through once the policy has decided.
    pub(crate) fn administrator(&self, action: Action) -> Result<Db> {
        Ok(self.admin(action)?.clone())
    }

    #[cfg(feature = "http")]
    /// The collections this caller may list, as the policy decides for each.
    pub(crate) fn listable_collections(
        &self,
    ) -> Result<Vec<crate::data::collections::CollectionInfo>> {
        let all = self.db.collections().list()?;
        Ok(all
            .into_iter()
            .filter(|info| {
                let target = Target::Collection {
                    name: &info.name,
                    spec: info.spec.guard(),
                };
                policy::authorize(&self.principal, Action::List, &target).is_ok()
            })
            .collect())
    }

    /// A user's record: one's own, or anyone's for those who manage users.
    #[cfg(feature = "http")]
    pub(crate) fn user_record(&self, id: &str) -> Result<crate::identity::users::User> {
        if self.principal.user().is_some_and(|user| user.id == id) {
            auth::still_valid(self.db.store(), &self.principal)?;
            return self.db.users().get(id);
        }
        self.admin(Action::ManageUsers)?.users().get(id)
    }

    /// A key's metadata: one's own key, or any key for those who manage keys.
    #[cfg(feature = "http")]
    pub(crate) fn key_record(&self, id: &str) -> Result<crate::identity::api_keys::ApiKeyInfo> {
        if self.principal.key_id() == Some(id) {
            auth::still_valid(self.db.store(), &self.principal)?;
            return self.db.keys().get(id);
        }
        self.admin(Action::ManageKeys)?.keys().get(id)
    }

    /// [`Db::users`], for administrators.
    ///
    /// # Errors
    /// `Forbidden`/`Unauthenticated` for non-administrators.
    pub fn users(&self) -> Result<Users<'_>> {
        Ok(self.admin(Action::ManageUsers)?.users())
    }
}
