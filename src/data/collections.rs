//! Collections: named sets of JSON documents with their access rules, owner field, hidden fields
//! and declared indexes.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use crate::data::index;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::store::schema::{self, COLLECTIONS, DocsTable, IndexTable, StoredCollection};

/// Names that can never be used for a collection.
const RESERVED_NAMES: &[&str] = &["users"];

/// Who may perform one action on a collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Anyone, including anonymous callers.
    Public,
    /// Any signed-in user.
    Authenticated,
    /// The user named in the document's owner field.
    Owner,
    /// Users holding at least one of these roles.
    Roles(Vec<String>),
    /// Only administrators (secret keys and the embedding program). The default: a new
    /// collection is closed until its rules open it.
    #[default]
    Admin,
}

/// The rule for each action on a collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Listing, counting and aggregating documents.
    pub list: Rule,
    /// Reading one document by id.
    pub view: Rule,
    /// Creating documents.
    pub create: Rule,
    /// Replacing or patching documents.
    pub update: Rule,
    /// Deleting documents.
    pub delete: Rule,
}

/// The configuration of a collection: what [`Db::create_collection`] and
/// [`Db::update_collection`] take.
///
/// ```
/// use larder::CollectionSpec;
/// let spec = CollectionSpec::new().index("author").index("stats.likes");
/// assert_eq!(spec.indexes, ["author", "stats.likes"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CollectionSpec {
    /// Who may do what.
    pub rules: Rules,
    /// The field holding the id of the user who owns a document, if the collection has owners.
    pub owner_field: Option<String>,
    /// Fields never returned to non-administrators.
    pub hidden_fields: Vec<String>,
    /// Field paths with a secondary index, used by equality, `in` and range filters and by sorts
    /// on that field.
    pub indexes: Vec<String>,
}

impl CollectionSpec {
    /// The default configuration: admin-only rules, no owner field, no hidden fields, no indexes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secondary index on a (dotted) field path.
    pub fn index(mut self, path: impl Into<String>) -> Self {
        self.indexes.push(path.into());
        self
    }

    /// Sets the access rules.
    pub fn rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }

    /// Sets the owner field.
    pub fn owner_field(mut self, path: impl Into<String>) -> Self {
        self.owner_field = Some(path.into());
        self
    }

    /// Adds a hidden field.
    pub fn hidden_field(mut self, path: impl Into<String>) -> Self {
        self.hidden_fields.push(path.into());
        self
    }

    fn validate(&self) -> Result<()> {
        for path in self
            .indexes
            .iter()
            .chain(&self.hidden_fields)
            .chain(&self.owner_field)
        {
            validate_field_path(path)?;
        }
        for (i, path) in self.indexes.iter().enumerate() {
            if self.indexes[..i].contains(path) {
                return Err(Error::invalid(format!("index `{path}` is declared twice")));
            }
            if path == "id" {
                return Err(Error::invalid("`id` is the primary key and needs no index"));
            }
        }
        if let Some(owner) = &self.owner_field
            && is_server_managed(owner)
        {
            return Err(Error::invalid(format!(
                "`{owner}` is server-managed and cannot be the owner field"
            )));
        }
        Ok(())
    }
}

/// A collection as stored, with its document count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CollectionInfo {
    /// The collection's name.
    pub name: String,
    /// Its configuration.
    pub spec: CollectionSpec,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When its configuration last changed (RFC 3339).
    pub updated_at: String,
    /// How many documents it holds.
    pub document_count: u64,
}

/// Checks a collection name: `^[a-z][a-z0-9_]{0,63}$`, not reserved.
pub(crate) fn validate_collection_name(name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let well_formed = matches!(bytes.next(), Some(b'a'..=b'z'))
        && name.len() <= 64
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'));
    if !well_formed {
        return Err(Error::invalid(format!(
            "invalid collection name `{}`: use 1 to 64 characters of a-z, 0-9 and _, \
             starting with a letter",
            name.escape_debug()
        )));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(Error::invalid(format!(
            "the collection name `{name}` is reserved"
        )));
    }
    Ok(())
}

/// The names larder manages in every document; they cannot be written as data.
pub(crate) const SERVER_MANAGED_FIELDS: [&str; 3] = ["id", "created_at", "updated_at"];

pub(crate) fn is_server_managed(path: &str) -> bool {
    SERVER_MANAGED_FIELDS.contains(&path)
}

/// Checks a dotted field path: 1 to 16 non-empty segments, at most 256 bytes, no control
/// characters.
pub(crate) fn validate_field_path(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && path.len() <= 256
        && path.split('.').count() <= 16
        && path.split('.').all(|segment| !segment.is_empty())
        && !path.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid field path `{}`: use up to 16 non-empty dot-separated names, \
             at most 256 bytes, no control characters",
            path.escape_debug()
        )))
    }
}

/// Reads a collection's stored configuration inside a transaction.
pub(crate) fn load<T>(table: &T, name: &str) -> Result<StoredCollection>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    match table.get(name)? {
        Some(bytes) => StoredCollection::decode(bytes.value()),
        None => Err(Error::not_found(format!("collection `{name}`"))),
    }
}

impl Db {
    /// Creates a collection.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed or reserved name or spec, `AlreadyExists` if the name is
    /// taken.
    ///
    /// ```
    /// # fn main() -> larder::Result<()> {
    /// let db = larder::Db::in_memory()?;
    /// db.create_collection("notes", larder::CollectionSpec::new().index("author"))?;
    /// assert_eq!(db.collection_info("notes")?.spec.indexes, ["author"]);
    /// # Ok(()) }
    /// ```
    pub fn create_collection(&self, name: &str, spec: CollectionSpec) -> Result<CollectionInfo> {
        self.write(|txn| self.create_collection_in(txn, name, spec.clone()))
    }

    /// [`Db::create_collection`] inside a caller's write transaction.
    pub(crate) fn create_collection_in(
        &self,
        txn: &redb::WriteTransaction,
        name: &str,
        spec: CollectionSpec,
    ) -> Result<CollectionInfo> {
        validate_collection_name(name)?;
        spec.validate()?;
        let mut collections = txn.open_table(COLLECTIONS)?;
        if collections.get(name)?.is_some() {
            return Err(Error::already_exists(format!("collection `{name}`")));
        }
        let now = self.now_micros();
        let stored = StoredCollection {
            spec,
            created_at: now,
            updated_at: now,
        };
        let docs_name = schema::docs_table_name(name);
        txn.open_table(DocsTable::new(&docs_name))?;
        for path in &stored.spec.indexes {
            index::create(txn, name, path)?;
        }
        collections.insert(name, stored.encode()?.as_slice())?;
        Ok(info(name, stored, 0))
    }

    /// Replaces a collection's configuration. Indexes added to the spec are built from the
    /// existing documents in the same transaction; indexes removed from it are dropped.
    ///
    /// # Errors
    /// `NotFound` if the collection does not exist, `InvalidInput` for a malformed spec.
    pub fn update_collection(&self, name: &str, spec: CollectionSpec) -> Result<CollectionInfo> {
        validate_collection_name(name)?;
        spec.validate()?;
        let updated = self.write(|txn| {
            let mut collections = txn.open_table(COLLECTIONS)?;
            let mut stored = load(&collections, name)?;
            for path in &stored.spec.indexes {
                if !spec.indexes.contains(path) {
                    index::drop(txn, name, path)?;
                }
            }
            for path in &spec.indexes {
                if !stored.spec.indexes.contains(path) {
                    index::create(txn, name, path)?;
                    index::backfill(txn, name, path)?;
                }
            }
            stored.spec = spec.clone();
            // Never backwards, even if the clock is.
            stored.updated_at = self.now_micros().max(stored.updated_at + 1);
            collections.insert(name, stored.encode()?.as_slice())?;
            let count = txn
                .open_table(DocsTable::new(&schema::docs_table_name(name)))?
                .len()?;
            Ok(info(name, stored, count))
        });
        self.targets()?.invalidate();
        updated
    }

    /// Renames a collection, in one transaction: its documents, its indexes and everything that
    /// names it follow. Files attached to its documents stay attached (they are re-keyed to the
    /// new name), and each scoped key's grant on `from` becomes its grant on `to` (a grant a key
    /// already held on `to` is dropped, so no key gains access to the renamed documents).
    /// `created_at` is kept; `updated_at` moves on. A refused rename changes nothing.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed or reserved name, `NotFound` if `from` does not exist,
    /// `AlreadyExists` if `to` does (renaming a collection to its own name included).
    ///
    /// ```
    /// # fn main() -> larder::Result<()> {
    /// let db = larder::Db::in_memory()?;
    /// db.create_collection("notes", larder::CollectionSpec::new().index("author"))?;
    /// let notes: larder::Collection = db.collection("notes");
    /// notes.insert(&serde_json::json!({"author": "ada"}))?;
    /// let renamed = db.rename_collection("notes", "journal")?;
    /// assert_eq!((renamed.name.as_str(), renamed.document_count), ("journal", 1));
    /// assert!(db.collection_info("notes").is_err());
    /// # Ok(()) }
    /// ```
    pub fn rename_collection(&self, from: &str, to: &str) -> Result<CollectionInfo> {
        validate_collection_name(from)?;
        validate_collection_name(to)?;
        let renamed = self.write(|txn| {
            let mut collections = txn.open_table(COLLECTIONS)?;
            let mut stored = load(&collections, from)?;
            if collections.get(to)?.is_some() {
                return Err(Error::already_exists(format!("collection `{to}`")));
            }
            txn.rename_table(
                DocsTable::new(&schema::docs_table_name(from)),
                DocsTable::new(&schema::docs_table_name(to)),
            )?;
            for path in &stored.spec.indexes {
                txn.rename_table(
                    IndexTable::new(&schema::index_table_name(from, path)),
                    IndexTable::new(&schema::index_table_name(to, path)),
                )?;
            }
            crate::files::on_collection_renamed(txn, from, to)?;
            crate::identity::api_keys::on_collection_renamed(txn, from, to)?;
            collections.remove(from)?;
            // Never backwards, even if the clock is.
            stored.updated_at = self.now_micros().max(stored.updated_at + 1);
            collections.insert(to, stored.encode()?.as_slice())?;
            let count = txn
                .open_table(DocsTable::new(&schema::docs_table_name(to)))?
                .len()?;
            Ok(info(to, stored, count))
        });
        // Both names' read targets are stale, and so are cached keys carrying the old grants.
        self.targets()?.invalidate();
        self.forget_cached_keys();
        renamed
    }

    /// Creates the collection or replaces its configuration (see [`Db::update_collection`]).
    ///
    /// # Errors
    /// As [`Db::create_collection`] and [`Db::update_collection`].
    pub fn put_collection(&self, name: &str, spec: CollectionSpec) -> Result<CollectionInfo> {
        match self.create_collection(name, spec.clone()) {
            Err(error) if matches!(error.kind(), crate::ErrorKind::AlreadyExists { .. }) => {
                self.update_collection(name, spec)
            }
            other => other,
        }
    }

    /// A collection's configuration and document count.
    ///
    /// # Errors
    /// `NotFound` if it does not exist.
    pub fn collection_info(&self, name: &str) -> Result<CollectionInfo> {
        validate_collection_name(name)?;
        let txn = self.redb().begin_read()?;
        let stored = load(&txn.open_table(COLLECTIONS)?, name)?;
        let count = txn
            .open_table(DocsTable::new(&schema::docs_table_name(name)))?
            .len()?;
        Ok(info(name, stored, count))
    }

    /// Every collection, by name.
    ///
    /// # Errors
    /// Only storage failures.
    pub fn list_collections(&self) -> Result<Vec<CollectionInfo>> {
        let txn = self.redb().begin_read()?;
        let collections = txn.open_table(COLLECTIONS)?;
        let mut out = Vec::new();
        for entry in collections.iter()? {
            let (name, bytes) = entry?;
            let stored = StoredCollection::decode(bytes.value())?;
            let count = txn
                .open_table(DocsTable::new(&schema::docs_table_name(name.value())))?
                .len()?;
            out.push(info(name.value(), stored, count));
        }
        Ok(out)
    }

    /// Deletes a collection with all its documents and indexes, in one transaction.
    ///
    /// # Errors
    /// `NotFound` if it does not exist.
    pub fn delete_collection(&self, name: &str) -> Result<()> {
        validate_collection_name(name)?;
        let deleted = self.write(|txn| {
            let mut collections = txn.open_table(COLLECTIONS)?;
            let stored = load(&collections, name)?;
            for path in &stored.spec.indexes {
                index::drop(txn, name, path)?;
            }
            crate::files::on_collection_deleted(txn, name)?;
            txn.delete_table(DocsTable::new(&schema::docs_table_name(name)))?;
            collections.remove(name)?;
            Ok(())
        });
        self.targets()?.invalidate();
        deleted
    }
}

fn info(name: &str, stored: StoredCollection, document_count: u64) -> CollectionInfo {
    CollectionInfo {
        name: name.to_owned(),
        created_at: crate::store::clock::format_rfc3339(stored.created_at),
        updated_at: crate::store::clock::format_rfc3339(stored.updated_at),
        spec: stored.spec,
        document_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_names() {
        for ok in ["a", "notes", "a1_b2", &"x".repeat(64)] {
            assert!(validate_collection_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Notes",
            "1abc",
            "_private",
            "a-b",
            "a b",
            "é",
            "users",
            &"x".repeat(65),
            "a\0",
        ] {
            assert!(validate_collection_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn field_paths() {
        for ok in ["a", "a.b", "stats.likes", "tags.0"] {
            assert!(validate_field_path(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "a.", ".a", "a..b", "a\nb", &"a.".repeat(17)] {
            assert!(validate_field_path(bad).is_err(), "{bad:?}");
        }
    }
}
