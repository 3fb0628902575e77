//! API keys: secret (`sk_live_…`, full admin), publishable (`pk_live_…`, an anonymous client of
//! the project) and scoped (`rk_live_…`, per-collection grants).
//!
//! A key's secret is 256 random bits, shown once (at creation and rotation); the file keeps only
//! its SHA-256, found by a hash lookup and compared in constant time. Revocation and rotation
//! take effect on the very next request, including for JWTs minted from the key: every use
//! re-checks the key through a cache that every key change clears.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::identity::tokens::SigningKeys;
use crate::identity::tokens::TokenType;
use crate::project::settings::Project;
use crate::store::Store;
use crate::store::clock::{self, format_rfc3339};
use crate::store::ids;
use crate::store::names::validate_field_path;
use crate::store::schema::{self, API_KEYS, API_KEYS_BY_HASH};

/// How often at most a key's last-used time is written to the file.
const LAST_USED_RESOLUTION_MICROS: i64 = 60 * 1_000_000;
/// Most key identities cached.
const CACHE_CAPACITY: usize = 4096;
/// Longest secret accepted (anything longer is refused unhashed).
const MAX_SECRET_LEN: usize = 128;

/// The kind of an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// Full administrator, server-trusted (`sk_live_…`). Never ship it to a client.
    Secret,
    /// An anonymous client of the project (`pk_live_…`): reads and writes what the collection
    /// rules allow anonymous callers; a user token is needed for anything else.
    Publishable,
    /// A server-side key limited to its per-collection grants (`rk_live_…`).
    Scoped,
}

impl KeyKind {
    fn prefix(self) -> &'static str {
        match self {
            KeyKind::Secret => "sk_live_",
            KeyKind::Publishable => "pk_live_",
            KeyKind::Scoped => "rk_live_",
        }
    }
}

/// Whether `text` has the shape of a key secret (one of the kinds' prefixes): what is
/// authenticated as a key, and what a request log never prints.
pub(crate) fn looks_like_secret(text: &str) -> bool {
    [KeyKind::Secret, KeyKind::Publishable, KeyKind::Scoped]
        .iter()
        .any(|k| text.starts_with(k.prefix()))
}

/// What a scoped key may do in one collection.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Grant {
    /// List, count and read documents.
    #[serde(default)]
    pub read: bool,
    /// Create, replace and patch documents.
    #[serde(default)]
    pub write: bool,
    /// Delete documents.
    #[serde(default)]
    pub delete: bool,
    /// If set, only these fields are ever returned (an allow-list).
    #[serde(default)]
    pub select_fields: Option<Vec<String>>,
    /// These fields are never returned (a deny-list), nor usable in filters.
    #[serde(default)]
    pub exclude_fields: Vec<String>,
    /// If set, only these fields may be written.
    #[serde(default)]
    pub writable_fields: Option<Vec<String>>,
}

impl Grant {
    /// Read-only access.
    pub fn read() -> Self {
        Grant {
            read: true,
            ..Grant::default()
        }
    }

    /// Read, write and delete access.
    pub fn all() -> Self {
        Grant {
            read: true,
            write: true,
            delete: true,
            ..Grant::default()
        }
    }

    fn validate(&self) -> Result<()> {
        for path in self
            .select_fields
            .iter()
            .flatten()
            .chain(&self.exclude_fields)
            .chain(self.writable_fields.iter().flatten())
        {
            validate_field_path(path)?;
        }
        Ok(())
    }
}

/// A change to one collection's grant: what is `None` is kept as it is.
///
/// ```
/// use larder::{Grant, GrantPatch};
/// let patch = GrantPatch { write: Some(true), exclude_fields: Some(vec!["ssn".into()]), ..GrantPatch::default() };
/// let grant = patch.apply(Grant::read());
/// assert!(grant.read && grant.write && !grant.delete);
/// assert_eq!(grant.exclude_fields, ["ssn"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantPatch {
    /// Whether it may read.
    pub read: Option<bool>,
    /// Whether it may write.
    pub write: Option<bool>,
    /// Whether it may delete.
    pub delete: Option<bool>,
    /// The selected fields (`Some(None)`: every field).
    pub select_fields: Option<Option<Vec<String>>>,
    /// The excluded fields.
    pub exclude_fields: Option<Vec<String>>,
    /// The writable fields (`Some(None)`: every field).
    pub writable_fields: Option<Option<Vec<String>>>,
}

impl GrantPatch {
    /// `grant` with this patch applied.
    pub fn apply(&self, mut grant: Grant) -> Grant {
        grant.read = self.read.unwrap_or(grant.read);
        grant.write = self.write.unwrap_or(grant.write);
        grant.delete = self.delete.unwrap_or(grant.delete);
        if let Some(select) = &self.select_fields {
            grant.select_fields.clone_from(select);
        }
        if let Some(exclude) = &self.exclude_fields {
            grant.exclude_fields.clone_from(exclude);
        }
        if let Some(writable) = &self.writable_fields {
            grant.writable_fields.clone_from(writable);
        }
        grant
    }
}

/// A request for a new key.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// The kind.
    pub kind: KeyKind,
    /// A short name shown in listings.
    pub label: String,
    /// A longer description.
    pub description: Option<String>,
    /// When the key stops working, if ever.
    pub expires_at: Option<SystemTime>,
    /// Per-collection grants (scoped keys only).
    pub grants: BTreeMap<String, Grant>,
}

impl NewApiKey {
    /// A key of this kind with a label.
    pub fn new(kind: KeyKind, label: impl Into<String>) -> Self {
        NewApiKey {
            kind,
            label: label.into(),
            description: None,
            expires_at: None,
            grants: BTreeMap::new(),
        }
    }

    /// Adds a grant (scoped keys only).
    pub fn grant(mut self, collection: impl Into<String>, grant: Grant) -> Self {
        self.grants.insert(collection.into(), grant);
        self
    }

    /// Sets the expiry.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }
}

/// A key as listings show it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyInfo {
    /// 32 lowercase hex characters.
    pub id: String,
    /// The kind.
    pub kind: KeyKind,
    /// The label.
    pub label: String,
    /// The description.
    pub description: Option<String>,
    /// The first characters of the secret, to recognise it (e.g. `sk_live_Ab3d`).
    pub prefix: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was last used (RFC 3339, to the minute), if ever.
    pub last_used_at: Option<String>,
    /// When it stops working, if ever.
    pub expires_at: Option<String>,
    /// Its grants (scoped keys).
    pub grants: BTreeMap<String, Grant>,
}

/// A new or rotated key: its secret, shown this once, and its metadata. `Debug` hides the
/// secret.
#[derive(Clone, Serialize)]
pub struct IssuedKey {
    /// The secret to present as `x-api-key`. Store it now: larder keeps only its hash.
    pub secret: String,
    /// The key's metadata.
    pub info: ApiKeyInfo,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("secret", &"<redacted>")
            .field("info", &self.info)
            .finish()
    }
}

/// A change of one collection's grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantChange {
    /// The collection.
    pub collection: String,
    /// The grant before (`None`: none).
    pub before: Option<Grant>,
    /// The grant after (`None`: removed).
    pub after: Option<Grant>,
}

/// A key as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredKey {
    kind: KeyKind,
    label: String,
    description: Option<String>,
    prefix: String,
    hash: Vec<u8>,
    generation: u32,
    /// The secret replaced by the last rotation, valid until the overlap ends.
    previous: Option<PreviousSecret>,
    created_at: i64,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
    grants: Vec<(String, Grant)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PreviousSecret {
    hash: Vec<u8>,
    generation: u32,
    valid_until: i64,
}

/// An authenticated key: what a key principal carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIdentity {
    pub(crate) id: String,
    pub(crate) kind: KeyKind,
    pub(crate) grants: BTreeMap<String, Grant>,
    /// The secret generation that was presented.
    pub(crate) generation: u32,
    expires_at: Option<i64>,
    /// Set when the presented secret is a rotated-away one in its overlap.
    valid_until: Option<i64>,
}

impl KeyIdentity {
    fn live_at(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|t| now < t) && self.valid_until.is_none_or(|t| now < t)
    }
}

/// Authenticated keys by the hash of what was presented, cleared by every key change (the
/// same generation scheme as the session cache: a reader only caches what it read if no
/// change happened meanwhile).
#[derive(Default)]
pub(crate) struct KeyCache {
    inner: Mutex<KeyCacheInner>,
    last_used: Mutex<HashMap<String, i64>>,
}

#[derive(Default)]
struct KeyCacheInner {
    generation: u64,
    entries: HashMap<[u8; 32], Arc<KeyIdentity>>,
}

fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn invalid_key() -> Error {
    Error::unauthenticated("invalid API key")
}

fn to_micros(time: SystemTime) -> i64 {
    clock::to_micros(time)
}

impl StoredKey {
    fn info(&self, id: &str, last_used: Option<i64>) -> ApiKeyInfo {
        ApiKeyInfo {
            id: id.to_owned(),
            kind: self.kind,
            label: self.label.clone(),
            description: self.description.clone(),
            prefix: self.prefix.clone(),
            created_at: format_rfc3339(self.created_at),
            last_used_at: self.last_used_at.max(last_used).map(format_rfc3339),
            expires_at: self.expires_at.map(format_rfc3339),
            grants: self.grants.iter().cloned().collect(),
        }
    }

    fn identity(&self, id: &str, generation: u32, valid_until: Option<i64>) -> KeyIdentity {
        KeyIdentity {
            id: id.to_owned(),
            kind: self.kind,
            grants: self.grants.iter().cloned().collect(),
            generation,
            expires_at: self.expires_at,
            valid_until,
        }
    }
}

/// Every collection whose grant differs between `before` and `after`.
fn grant_changes(
    before: &BTreeMap<String, Grant>,
    after: &BTreeMap<String, Grant>,
) -> Vec<GrantChange> {
    let mut changes = Vec::new();
    for (collection, old) in before {
        let new = after.get(collection);
        if new != Some(old) {
            changes.push(GrantChange {
                collection: collection.clone(),
                before: Some(old.clone()),
                after: new.cloned(),
            });
        }
    }
    for (collection, new) in after {
        if !before.contains_key(collection) {
            changes.push(GrantChange {
                collection: collection.clone(),
                before: None,
                after: Some(new.clone()),
            });
        }
    }
    changes
}

fn load_key<T>(table: &T, id: &str) -> Result<StoredKey>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    match table.get(id)? {
        Some(bytes) => schema::decode(bytes.value()),
        None => Err(Error::not_found("API key")),
    }
}

fn new_secret(kind: KeyKind) -> Result<(String, String)> {
    let secret = format!("{}{}", kind.prefix(), ids::random_secret()?);
    let prefix = secret.chars().take(kind.prefix().len() + 4).collect();
    Ok((secret, prefix))
}

/// API keys: create, list, rotate, revoke, grants and key tokens: `db.keys()`.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    pub(crate) store: &'a Store,
}

impl<'a> Keys<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Keys { store }
    }
}

impl Keys<'_> {
    /// Runs a write on API keys, then clears the key cache. The change log records that
    /// credentials changed, so change-feed subscribers re-check theirs at once.
    fn write_keys<T>(&self, mut op: impl FnMut(&WriteTransaction) -> Result<T>) -> Result<T> {
        self.store.write_changes_then(
            |txn, changes| {
                let out = op(txn)?;
                changes.access()?;
                Ok(out)
            },
            || self.forget_cached_keys(),
        )
    }

    /// Creates an API key and returns its secret, shown this once.
    ///
    /// # Errors
    /// `InvalidInput` for an empty or overlong label, grants on a non-scoped key, malformed
    /// grants, or an expiry in the past.
    ///
    /// ```
    /// # fn main() -> larder::Result<()> {
    /// use larder::{Grant, KeyKind, NewApiKey};
    /// let db = larder::Db::in_memory()?;
    /// let key = db.keys().create(NewApiKey::new(KeyKind::Scoped, "reports").grant("orders", Grant::read()))?;
    /// assert!(key.secret.starts_with("rk_live_"));
    /// assert_eq!(db.keys().list()?[0].prefix, &key.secret[..12]);
    /// # Ok(()) }
    /// ```
    pub fn create(&self, new: NewApiKey) -> Result<IssuedKey> {
        let label = new.label.trim().to_owned();
        if label.is_empty() || label.len() > 100 {
            return Err(Error::invalid("a key needs a label of 1 to 100 characters"));
        }
        if new.description.as_ref().is_some_and(|d| d.len() > 1000) {
            return Err(Error::invalid(
                "the description is longer than 1000 characters",
            ));
        }
        if new.kind != KeyKind::Scoped && !new.grants.is_empty() {
            return Err(Error::invalid("only scoped keys have grants"));
        }
        for (collection, grant) in &new.grants {
            crate::store::names::validate_grant_target(collection)?;
            grant.validate()?;
        }
        let now = self.store.now_micros();
        let expires_at = new.expires_at.map(to_micros);
        if expires_at.is_some_and(|t| t <= now) {
            return Err(Error::invalid("the expiry is in the past"));
        }
        let id = ids::random_hex(16)?;
        let (secret, prefix) = new_secret(new.kind)?;
        let stored = StoredKey {
            kind: new.kind,
            label,
            description: new.description,
            prefix,
            hash: secret_hash(&secret).to_vec(),
            generation: 0,
            previous: None,
            created_at: now,
            last_used_at: None,
            expires_at,
            grants: new.grants.into_iter().collect(),
        };
        self.write_keys(|txn| {
            txn.open_table(API_KEYS)?
                .insert(id.as_str(), schema::encode(&stored)?.as_slice())?;
            txn.open_table(API_KEYS_BY_HASH)?
                .insert(stored.hash.as_slice(), id.as_str())?;
            Ok(())
        })?;
        Ok(IssuedKey {
            secret,
            info: stored.info(&id, None),
        })
    }

    /// Makes this exact secret key valid (for scripts and tests that configure the admin key,
    /// such as `LARDER_ADMIN_KEY`). Idempotent: a secret that is already a key is left as is.
    /// Returns the key's id.
    ///
    /// # Errors
    /// `InvalidInput` unless the secret is `sk_live_` followed by at least 32 characters of
    /// `A-Z a-z 0-9 _ -`.
    pub fn import_secret(&self, secret: &str, label: &str) -> Result<String> {
        let body = secret
            .strip_prefix(KeyKind::Secret.prefix())
            .unwrap_or_default();
        let well_formed = body.len() >= 32
            && secret.len() <= MAX_SECRET_LEN
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !well_formed {
            return Err(Error::invalid(
                "an admin key must be sk_live_ followed by at least 32 characters of A-Z, a-z, 0-9, _ and -",
            ));
        }
        let hash = secret_hash(secret);
        let now = self.store.now_micros();
        self.write_keys(|txn| {
            let mut by_hash = txn.open_table(API_KEYS_BY_HASH)?;
            if let Some(id) = by_hash.get(hash.as_slice())? {
                return Ok(id.value().to_owned());
            }
            let id = ids::random_hex(16)?;
            let stored = StoredKey {
                kind: KeyKind::Secret,
                label: label.to_owned(),
                description: None,
                prefix: secret
                    .chars()
                    .take(KeyKind::Secret.prefix().len() + 4)
                    .collect(),
                hash: hash.to_vec(),
                generation: 0,
                previous: None,
                created_at: now,
                last_used_at: None,
                expires_at: None,
                grants: Vec::new(),
            };
            by_hash.insert(hash.as_slice(), id.as_str())?;
            txn.open_table(API_KEYS)?
                .insert(id.as_str(), schema::encode(&stored)?.as_slice())?;
            Ok(id)
        })
    }

    /// Every key, without secrets.
    ///
    /// # Errors
    /// Only storage failures.
    pub fn list(&self) -> Result<Vec<ApiKeyInfo>> {
        let last_used = self.store.state::<KeyCache>()?.last_used.lock().clone();
        self.store.read(|txn| {
            let table = txn.open_table(API_KEYS)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (id, bytes) = entry?;
                let stored: StoredKey = schema::decode(bytes.value())?;
                out.push(stored.info(id.value(), last_used.get(id.value()).copied()));
            }
            Ok(out)
        })
    }

    /// One key's metadata.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub fn get(&self, id: &str) -> Result<ApiKeyInfo> {
        let last_used = self.last_used(id)?;
        self.store
            .read(|txn| Ok(load_key(&txn.open_table(API_KEYS)?, id)?.info(id, last_used)))
    }

    /// Revokes a key: its secret (and any JWT minted from it) stops working on the very next
    /// request.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub fn revoke(&self, id: &str) -> Result<()> {
        self.write_keys(|txn| {
            let stored: StoredKey = match txn.open_table(API_KEYS)?.remove(id)? {
                Some(bytes) => schema::decode(bytes.value())?,
                None => return Err(Error::not_found("API key")),
            };
            let mut by_hash = txn.open_table(API_KEYS_BY_HASH)?;
            by_hash.remove(stored.hash.as_slice())?;
            if let Some(previous) = &stored.previous {
                by_hash.remove(previous.hash.as_slice())?;
            }
            Ok(())
        })
    }

    /// Gives a key a new secret (same id, kind and grants). The old secret keeps working for
    /// `overlap` (zero: it stops at once), so clients can switch without downtime.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub fn rotate(&self, id: &str, overlap: Duration) -> Result<IssuedKey> {
        let now = self.store.now_micros();
        let overlap = i64::try_from(overlap.as_micros()).unwrap_or(i64::MAX);
        let last_used = self.last_used(id)?;
        self.write_keys(|txn| {
            let mut keys = txn.open_table(API_KEYS)?;
            let mut by_hash = txn.open_table(API_KEYS_BY_HASH)?;
            let mut stored = load_key(&keys, id)?;
            let (secret, prefix) = new_secret(stored.kind)?;
            if let Some(old) = stored.previous.take() {
                by_hash.remove(old.hash.as_slice())?;
            }
            let old_hash = std::mem::replace(&mut stored.hash, secret_hash(&secret).to_vec());
            if overlap > 0 {
                stored.previous = Some(PreviousSecret {
                    hash: old_hash,
                    generation: stored.generation,
                    valid_until: now.saturating_add(overlap),
                });
            } else {
                by_hash.remove(old_hash.as_slice())?;
            }
            stored.generation += 1;
            stored.prefix = prefix;
            by_hash.insert(stored.hash.as_slice(), id)?;
            keys.insert(id, schema::encode(&stored)?.as_slice())?;
            Ok(IssuedKey {
                secret,
                info: stored.info(id, last_used),
            })
        })
    }

    /// Sets (`Some`) or removes (`None`) a scoped key's grant on one collection, and reports the
    /// change.
    ///
    /// # Errors
    /// `NotFound` for an unknown id; `InvalidInput` for a non-scoped key or a malformed grant.
    pub fn put_grant(
        &self,
        id: &str,
        collection: &str,
        grant: Option<Grant>,
    ) -> Result<GrantChange> {
        crate::store::names::validate_grant_target(collection)?;
        if let Some(grant) = &grant {
            grant.validate()?;
        }
        let mut changes = self.change_grants(id, |grants| {
            let before = match &grant {
                Some(g) => grants.insert(collection.to_owned(), g.clone()),
                None => grants.remove(collection),
            };
            Ok(vec![GrantChange {
                collection: collection.to_owned(),
                before,
                after: grant.clone(),
            }])
        })?;
        changes
            .pop()
            .ok_or_else(|| Error::internal(std::io::Error::other("no grant change")))
    }

    /// Replaces all of a scoped key's grants, and reports every change.
    ///
    /// # Errors
    /// As [`Keys::put_grant`](crate::Keys::put_grant).
    pub fn set_grants(
        &self,
        id: &str,
        grants: BTreeMap<String, Grant>,
    ) -> Result<Vec<GrantChange>> {
        self.replace_grants(id, |_| grants.clone())
    }

    /// Sets the grants named in `grants` and keeps the key's others, in one transaction, and
    /// reports every change.
    ///
    /// # Errors
    /// As [`Keys::put_grant`](crate::Keys::put_grant).
    pub fn merge_grants(
        &self,
        id: &str,
        grants: BTreeMap<String, Grant>,
    ) -> Result<Vec<GrantChange>> {
        self.replace_grants(id, |current| {
            let mut next = current.clone();
            next.extend(grants.clone());
            next
        })
    }

    /// Changes (`Some`) or removes (`None`) a scoped key's grant on one collection, in one
    /// transaction, and reports it as it was and as it is. A patch applies to the current grant
    /// (or to no rights, without one).
    ///
    /// # Errors
    /// As [`Keys::put_grant`](crate::Keys::put_grant); `NotFound` for removing a grant the key
    /// does not have (it names the wrong key or collection; nothing changes).
    pub fn patch_grant(
        &self,
        id: &str,
        collection: &str,
        patch: Option<&GrantPatch>,
    ) -> Result<GrantChange> {
        crate::store::names::validate_grant_target(collection)?;
        self.change_grants(id, |grants| {
            let before = grants.get(collection).cloned();
            let after = match patch {
                Some(patch) => {
                    let grant = patch.apply(before.clone().unwrap_or_default());
                    grant.validate()?;
                    grants.insert(collection.to_owned(), grant.clone());
                    Some(grant)
                }
                None if before.is_none() => {
                    return Err(Error::not_found(format!(
                        "a grant on collection `{collection}`"
                    )));
                }
                None => {
                    grants.remove(collection);
                    None
                }
            };
            Ok(vec![GrantChange {
                collection: collection.to_owned(),
                before,
                after,
            }])
        })?
        .pop()
        .ok_or_else(|| Error::internal(std::io::Error::other("no grant change")))
    }

    /// Makes a scoped key's grants `next(current)` in one transaction, each checked, and
    /// reports every difference.
    fn replace_grants(
        &self,
        id: &str,
        next: impl Fn(&BTreeMap<String, Grant>) -> BTreeMap<String, Grant>,
    ) -> Result<Vec<GrantChange>> {
        self.change_grants(id, |current| {
            let next = next(current);
            for (collection, grant) in &next {
                crate::store::names::validate_grant_target(collection)?;
                grant.validate()?;
            }
            let changes = grant_changes(current, &next);
            *current = next;
            Ok(changes)
        })
    }

    fn change_grants(
        &self,
        id: &str,
        mut change: impl FnMut(&mut BTreeMap<String, Grant>) -> Result<Vec<GrantChange>>,
    ) -> Result<Vec<GrantChange>> {
        self.write_keys(|txn| {
            let mut keys = txn.open_table(API_KEYS)?;
            let mut stored = load_key(&keys, id)?;
            if stored.kind != KeyKind::Scoped {
                return Err(Error::invalid("only scoped keys have grants"));
            }
            let mut grants: BTreeMap<String, Grant> = stored.grants.into_iter().collect();
            let changes = change(&mut grants)?;
            stored.grants = grants.into_iter().collect();
            keys.insert(id, schema::encode(&stored)?.as_slice())?;
            Ok(changes)
        })
    }

    /// When the key was last used, as this process saw it.
    fn last_used(&self, id: &str) -> Result<Option<i64>> {
        Ok(self
            .store
            .state::<KeyCache>()?
            .last_used
            .lock()
            .get(id)
            .copied())
    }

    /// Checks a presented key secret and returns the key's identity.
    pub(crate) fn authenticate(&self, secret: &str) -> Result<Arc<KeyIdentity>> {
        let well_formed = secret.len() <= MAX_SECRET_LEN && looks_like_secret(secret);
        if !well_formed {
            return Err(invalid_key());
        }
        let hash = secret_hash(secret);
        let identity = self.cached_key(hash, |txn| {
            let Some(id) = txn
                .open_table(API_KEYS_BY_HASH)?
                .get(hash.as_slice())?
                .map(|v| v.value().to_owned())
            else {
                return Err(invalid_key());
            };
            let stored = load_key(&txn.open_table(API_KEYS)?, &id)?;
            if bool::from(stored.hash.as_slice().ct_eq(&hash)) {
                return Ok(stored.identity(&id, stored.generation, None));
            }
            match &stored.previous {
                Some(previous) if bool::from(previous.hash.as_slice().ct_eq(&hash)) => {
                    Ok(stored.identity(&id, previous.generation, Some(previous.valid_until)))
                }
                _ => Err(invalid_key()),
            }
        })?;
        self.touch_key(&identity.id);
        Ok(identity)
    }

    /// The identity of a key for a JWT minted from it, if that key and secret generation are
    /// still live.
    pub(crate) fn key_identity_for_token(
        &self,
        id: &str,
        generation: u32,
    ) -> Result<Arc<KeyIdentity>> {
        let cache_key: [u8; 32] = Sha256::digest(format!("key-token\0{id}\0{generation}")).into();
        let identity = self.cached_key(cache_key, |txn| {
            let stored = load_key(&txn.open_table(API_KEYS)?, id).map_err(|_| invalid_key())?;
            if stored.generation == generation {
                return Ok(stored.identity(id, generation, None));
            }
            match &stored.previous {
                Some(previous) if previous.generation == generation => {
                    Ok(stored.identity(id, generation, Some(previous.valid_until)))
                }
                _ => Err(invalid_key()),
            }
        })?;
        self.touch_key(id);
        Ok(identity)
    }

    fn cached_key(
        &self,
        cache_key: [u8; 32],
        load: impl FnOnce(&redb::ReadTransaction) -> Result<KeyIdentity>,
    ) -> Result<Arc<KeyIdentity>> {
        let now = self.store.now_micros();
        let cache = self.store.state::<KeyCache>()?;
        let (hit, generation) = {
            let inner = cache.inner.lock();
            (inner.entries.get(&cache_key).cloned(), inner.generation)
        };
        let identity = match hit {
            Some(hit) => hit,
            None => {
                let loaded = Arc::new(self.store.read(load)?);
                let mut inner = cache.inner.lock();
                if inner.generation == generation {
                    if inner.entries.len() >= CACHE_CAPACITY {
                        inner.entries.clear();
                    }
                    inner.entries.insert(cache_key, loaded.clone());
                }
                loaded
            }
        };
        if identity.live_at(now) {
            Ok(identity)
        } else {
            Err(invalid_key())
        }
    }

    /// Records a key's use in memory, and in the file at most once a minute (a non-durable
    /// commit that rides on the next durable one; skipped if a writer is busy).
    fn touch_key(&self, id: &str) {
        let now = self.store.now_micros();
        let Ok(cache) = self.store.state::<KeyCache>() else {
            return;
        };
        let previous = cache.last_used.lock().insert(id.to_owned(), now);
        if previous.is_some_and(|p| now - p < LAST_USED_RESOLUTION_MICROS) {
            return;
        }
        let Ok(mut txn) = self.store.redb().try_begin_write() else {
            return;
        };
        if txn.set_durability(redb::Durability::None).is_err() {
            return;
        }
        let updated = (|| -> Result<()> {
            let mut keys = txn.open_table(API_KEYS)?;
            let mut stored = load_key(&keys, id)?;
            stored.last_used_at = Some(now);
            keys.insert(id, schema::encode(&stored)?.as_slice())?;
            Ok(())
        })();
        if updated.is_ok() {
            let _ = txn.commit();
        }
    }

    /// Exchanges a key's secret for a short-lived JWT carrying the key's identity (ekoDB's
    /// `/api/auth/token`). The JWT stops working as soon as the key is revoked or rotated
    /// (after any overlap). Returns the token and its lifetime in seconds.
    ///
    /// # Errors
    /// `Unauthenticated` for an invalid key.
    pub fn token(&self, secret: &str) -> Result<(String, u64)> {
        let identity = self.authenticate(secret)?;
        let lifetime = Project::new(self.store).settings()?.jwt_expiry_minutes * 60;
        let (token, _) = SigningKeys::new(self.store).mint_token(
            TokenType::Key,
            &identity.id,
            None,
            Some(identity.generation),
            lifetime,
        )?;
        Ok((token, lifetime))
    }
}

/// Moves every scoped key's grant on `from` to `to` (called in a collection rename's
/// transaction). A grant a key held on `to` goes: after the rename, `to` names the renamed
/// collection, and only the keys that could reach it before may reach it now.
pub(crate) fn on_collection_renamed(txn: &WriteTransaction, from: &str, to: &str) -> Result<()> {
    let mut keys = txn.open_table(API_KEYS)?;
    let mut changed = Vec::new();
    for entry in keys.iter()? {
        let (id, bytes) = entry?;
        let mut stored: StoredKey = schema::decode(bytes.value())?;
        if !stored
            .grants
            .iter()
            .any(|(name, _)| name == from || name == to)
        {
            continue;
        }
        let moved = stored
            .grants
            .iter()
            .find(|(name, _)| name == from)
            .map(|(_, grant)| grant.clone());
        stored.grants.retain(|(name, _)| name != from && name != to);
        if let Some(grant) = moved {
            stored.grants.push((to.to_owned(), grant));
            stored.grants.sort_by(|a, b| a.0.cmp(&b.0));
        }
        changed.push((id.value().to_owned(), stored));
    }
    for (id, stored) in changed {
        keys.insert(id.as_str(), schema::encode(&stored)?.as_slice())?;
    }
    Ok(())
}

impl Keys<'_> {
    /// Drops every cached key identity, after any change to keys or their grants (a collection
    /// rename moves grants too), so the next use of each key reads it anew.
    pub(crate) fn forget_cached_keys(&self) {
        let Ok(cache) = self.store.state::<KeyCache>() else {
            return;
        };
        let mut inner = cache.inner.lock();
        inner.generation += 1;
        inner.entries.clear();
    }
}
