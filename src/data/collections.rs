//! Collections: named sets of JSON documents with their access rules, owner field, hidden fields
//! and declared indexes.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use crate::access::rules::{Guard, Rules};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::data::index::{self, IndexDef};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::changes::{self, DocsWriter, ResetReason};
use crate::store::names::{is_server_managed, validate_collection_name, validate_field_path};
use crate::store::schema::{self, COLLECTIONS, IndexTable};

/// The configuration of a collection: what [`Collections::create`](crate::Collections::create) and
/// [`Collections::update`](crate::Collections::update) take.
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
    /// What decides who sees which document and field (everything but the indexes).
    fn view(&self) -> (&Rules, &Option<String>, &Vec<String>) {
        (&self.rules, &self.owner_field, &self.hidden_fields)
    }

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

    /// What the policy decides with.
    pub(crate) fn guard(&self) -> Guard<'_> {
        Guard {
            rules: &self.rules,
            owner_field: self.owner_field.as_deref(),
            hidden_fields: &self.hidden_fields,
        }
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

/// A collection's stored configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredCollection {
    pub(crate) spec: CollectionSpec,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl StoredCollection {
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        schema::encode(self)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        schema::decode(bytes)
    }
}

/// A collection resolved inside a transaction.
pub(crate) struct Target {
    pub(crate) docs: String,
    pub(crate) indexes: Vec<IndexDef>,
    pub(crate) spec: CollectionSpec,
}

impl Target {
    pub(crate) fn load<C>(collections: &C, name: &str) -> Result<Target>
    where
        C: ReadableTable<&'static str, &'static [u8]>,
    {
        validate_collection_name(name)?;
        let stored = load(collections, name)?;
        let indexes = stored
            .spec
            .indexes
            .iter()
            .map(|path| IndexDef::new(name, path))
            .collect::<Result<_>>()?;
        Ok(Target {
            docs: schema::docs_table_name(name),
            indexes,
            spec: stored.spec,
        })
    }
}

/// At most this many collections' read targets are cached (then the cache starts afresh).
pub(crate) const TARGET_CACHE_ENTRIES: usize = 1024;

/// Collections' read targets kept between reads: loading one (a table lookup, decoding the
/// spec, naming its tables) was a third of a point get. Every change to a collection's spec,
/// or its deletion, moves the generation on, and entries of older generations are not used.
#[derive(Default)]
pub(crate) struct TargetCache {
    pub(crate) generation: AtomicU64,
    pub(crate) entries: parking_lot::RwLock<HashMap<String, (u64, Arc<Target>)>>,
}

impl TargetCache {
    /// Called after a collection's spec changed or it was deleted (creation needs nothing:
    /// missing collections are not cached).
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
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

/// The collections themselves: create, change, rename, list, delete: `db.collections()`.
#[derive(Debug, Clone, Copy)]
pub struct Collections<'a> {
    pub(crate) store: &'a Store,
}

impl<'a> Collections<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Collections { store }
    }
}

impl Collections<'_> {
    /// Creates a collection.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed or reserved name or spec, `AlreadyExists` if the name is
    /// taken.
    ///
    /// ```
    /// # fn main() -> larder::Result<()> {
    /// let db = larder::Db::in_memory()?;
    /// db.collections().create("notes", larder::CollectionSpec::new().index("author"))?;
    /// assert_eq!(db.collections().info("notes")?.spec.indexes, ["author"]);
    /// # Ok(()) }
    /// ```
    pub fn create(&self, name: &str, spec: CollectionSpec) -> Result<CollectionInfo> {
        self.store
            .write(|txn| self.create_collection_in(txn, name, spec.clone()))
    }

    /// [`Collections::create`](crate::Collections::create) inside a caller's write transaction.
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
        let now = self.store.now_micros();
        let stored = StoredCollection {
            spec,
            created_at: now,
            updated_at: now,
        };
        DocsWriter::open(txn, name)?;
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
    pub fn update(&self, name: &str, spec: CollectionSpec) -> Result<CollectionInfo> {
        validate_collection_name(name)?;
        spec.validate()?;
        let updated = self.store.write_changes(|txn, changes| {
            let mut collections = txn.open_table(COLLECTIONS)?;
            let mut stored = load(&collections, name)?;
            if stored.spec.view() != spec.view() {
                // Who sees what changed: subscribers' views are rebuilt, not patched.
                changes.reset(name, ResetReason::RulesChanged)?;
            }
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
            stored.updated_at = self.store.now_micros().max(stored.updated_at + 1);
            collections.insert(name, stored.encode()?.as_slice())?;
            let count = DocsWriter::open(txn, name)?.len()?;
            Ok(info(name, stored, count))
        });
        self.store.state::<TargetCache>()?.invalidate();
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
    /// db.collections().create("notes", larder::CollectionSpec::new().index("author"))?;
    /// let notes: larder::Collection = db.collection("notes");
    /// notes.insert(&serde_json::json!({"author": "ada"}))?;
    /// let renamed = db.collections().rename("notes", "journal")?;
    /// assert_eq!((renamed.name.as_str(), renamed.document_count), ("journal", 1));
    /// assert!(db.collections().info("notes").is_err());
    /// # Ok(()) }
    /// ```
    pub fn rename(&self, from: &str, to: &str) -> Result<CollectionInfo> {
        validate_collection_name(from)?;
        validate_collection_name(to)?;
        let renamed = self.store.write_changes(|txn, changes| {
            let mut collections = txn.open_table(COLLECTIONS)?;
            let mut stored = load(&collections, from)?;
            if collections.get(to)?.is_some() {
                return Err(Error::already_exists(format!("collection `{to}`")));
            }
            changes::rename_docs(txn, changes, from, to)?;
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
            stored.updated_at = self.store.now_micros().max(stored.updated_at + 1);
            collections.insert(to, stored.encode()?.as_slice())?;
            let count = DocsWriter::open(txn, to)?.len()?;
            Ok(info(to, stored, count))
        });
        // Both names' read targets are stale, and so are cached keys carrying the old grants.
        self.store.state::<TargetCache>()?.invalidate();
        crate::identity::api_keys::Keys::new(self.store).forget_cached_keys();
        renamed
    }

    /// Creates the collection or replaces its configuration (see [`Collections::update`](crate::Collections::update)).
    ///
    /// # Errors
    /// As [`Collections::create`](crate::Collections::create) and [`Collections::update`](crate::Collections::update).
    pub fn put(&self, name: &str, spec: CollectionSpec) -> Result<CollectionInfo> {
        match self.create(name, spec.clone()) {
            Err(error) if matches!(error.kind(), crate::error::ErrorKind::AlreadyExists { .. }) => {
                self.update(name, spec)
            }
            other => other,
        }
    }

    /// A collection's configuration and document count.
    ///
    /// # Errors
    /// `NotFound` if it does not exist.
    pub fn info(&self, name: &str) -> Result<CollectionInfo> {
        validate_collection_name(name)?;
        let txn = self.store.redb().begin_read()?;
        let stored = load(&txn.open_table(COLLECTIONS)?, name)?;
        let count = schema::open_docs(&txn, &schema::docs_table_name(name))?.len()?;
        Ok(info(name, stored, count))
    }

    /// Every collection, by name.
    ///
    /// # Errors
    /// Only storage failures.
    pub fn list(&self) -> Result<Vec<CollectionInfo>> {
        let txn = self.store.redb().begin_read()?;
        let collections = txn.open_table(COLLECTIONS)?;
        let mut out = Vec::new();
        for entry in collections.iter()? {
            let (name, bytes) = entry?;
            let stored = StoredCollection::decode(bytes.value())?;
            let count = schema::open_docs(&txn, &schema::docs_table_name(name.value()))?.len()?;
            out.push(info(name.value(), stored, count));
        }
        Ok(out)
    }

    /// Deletes a collection with all its documents and indexes, in one transaction.
    ///
    /// # Errors
    /// `NotFound` if it does not exist.
    pub fn delete(&self, name: &str) -> Result<()> {
        validate_collection_name(name)?;
        let deleted = self.store.write_changes(|txn, changes| {
            let mut collections = txn.open_table(COLLECTIONS)?;
            let stored = load(&collections, name)?;
            for path in &stored.spec.indexes {
                index::drop(txn, name, path)?;
            }
            crate::files::on_collection_deleted(txn, name)?;
            changes::delete_docs(txn, changes, name)?;
            collections.remove(name)?;
            Ok(())
        });
        self.store.state::<TargetCache>()?.invalidate();
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
