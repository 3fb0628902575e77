//! Documents: JSON objects in a collection, reached through a [`Collection`] handle.
//!
//! Every mutation is one durable write transaction of the store; every read
//! runs on one snapshot.

use std::any::Any;
use std::marker::PhantomData;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::access::policy::{self, Action, Permit, Target as PolicyTarget};
use crate::access::principal::Principal;
use crate::data::collections::{CollectionSpec, TARGET_CACHE_ENTRIES, Target, TargetCache};
use crate::data::index::{self, IndexDef, IndexScan};
use crate::data::query::{
    self, Aggregate, FieldRef, MetaField, Order, Picked, Plan, Query, Row, RowData, RowId, Sort,
};
use crate::data::values;
use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;
use crate::store::changes::{ChangeBatch, DocsWriter};
use crate::store::clock::format_rfc3339;
use crate::store::names::{SERVER_MANAGED_FIELDS, validate_collection_name};
use crate::store::schema::{self, COLLECTIONS, DocRecord, IndexTable};

/// Longest accepted document id.
const MAX_ID_LEN: usize = 128;

/// A stored document: the server-managed fields and the caller's data.
///
/// Serializes flat: `{"id": …, "created_at": …, "updated_at": …, ...data}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc<T = Value> {
    /// The document's id: a UUIDv7 string unless the caller chose one.
    pub id: String,
    /// When it was created (RFC 3339, microseconds, `+00:00`).
    pub created_at: String,
    /// When it last changed (same format).
    pub updated_at: String,
    /// The document's fields, without the three above.
    pub data: T,
}

impl<T: Serialize> Serialize for Doc<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Flat<'a, T> {
            id: &'a str,
            created_at: &'a str,
            updated_at: &'a str,
            #[serde(flatten)]
            data: &'a T,
        }
        Flat {
            id: &self.id,
            created_at: &self.created_at,
            updated_at: &self.updated_at,
            data: &self.data,
        }
        .serialize(serializer)
    }
}

impl Doc<Value> {
    /// The document as one flat JSON object.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("id".into(), Value::String(self.id.clone()));
        map.insert("created_at".into(), Value::String(self.created_at.clone()));
        map.insert("updated_at".into(), Value::String(self.updated_at.clone()));
        if let Value::Object(data) = &self.data {
            map.extend(data.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Value::Object(map)
    }
}

/// A handle to one collection's documents, typed as `T` (JSON by default). Cheap to create;
/// errors such as a missing collection surface on use.
///
/// The fields `id`, `created_at` and `updated_at` are server-managed: they are never stored in
/// the data. On insert a non-null `id` in the data is the id the caller chooses; on update the
/// three may be present only with their current values (so a fetched document can be written
/// back); any other value is refused.
///
/// ```
/// # fn main() -> larder::Result<()> {
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// struct Note { title: String, stars: u32 }
///
/// let db = larder::Db::in_memory()?;
/// db.collections().create("notes", larder::CollectionSpec::new())?;
/// let notes = db.collection::<Note>("notes");
/// let stored = notes.insert(&Note { title: "hello".into(), stars: 3 })?;
/// assert_eq!(notes.get(&stored.id)?.unwrap().data.stars, 3);
/// # Ok(()) }
/// ```
pub struct Collection<T = Value> {
    store: Store,
    name: String,
    docs_table: String,
    principal: Principal,
    marker: PhantomData<fn() -> T>,
}

impl<T> Clone for Collection<T> {
    fn clone(&self) -> Self {
        Collection {
            store: self.store.clone(),
            name: self.name.clone(),
            docs_table: self.docs_table.clone(),
            principal: self.principal.clone(),
            marker: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Collection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("name", &self.name)
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Collection<T> {
    /// A handle to collection `name` acting as `principal`.
    pub(crate) fn new(store: &Store, name: &str, principal: Principal) -> Self {
        Collection {
            store: store.clone(),
            name: name.to_owned(),
            docs_table: schema::docs_table_name(name),
            principal,
            marker: PhantomData,
        }
    }
}

/// The tables of one collection, opened once per write transaction.
struct Tables<'txn> {
    txn: &'txn WriteTransaction,
    /// The documents, written only through the change log's recorder.
    docs: DocsWriter<'txn>,
    /// What this operation changed, for the change log.
    changes: &'txn mut ChangeBatch,
    indexes: Vec<(IndexDef, redb::Table<'txn, &'static [u8], &'static str>)>,
    spec: CollectionSpec,
    /// What the caller may do at collection level (decided once per transaction).
    permit: Permit,
    /// The record being written, reused from document to document within the transaction.
    record: Vec<u8>,
}

impl<'txn> Tables<'txn> {
    fn open(
        txn: &'txn WriteTransaction,
        changes: &'txn mut ChangeBatch,
        name: &str,
        target: Target,
        permit: Permit,
    ) -> Result<Tables<'txn>> {
        let docs = DocsWriter::open(txn, name)?;
        let indexes = target
            .indexes
            .into_iter()
            .map(|def| {
                let table = txn.open_table(IndexTable::new(&def.table))?;
                Ok((def, table))
            })
            .collect::<Result<_>>()?;
        Ok(Tables {
            txn,
            docs,
            changes,
            indexes,
            spec: target.spec,
            permit,
            record: Vec::new(),
        })
    }
}

/// How an update states the new document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UpdateKind {
    /// The whole document: fields left out that the caller may not touch are kept.
    Replace,
    /// A merge patch: a field set to null is an explicit removal.
    Patch,
}

/// The stored state of an existing document.
struct Existing {
    id: String,
    created_at: i64,
    updated_at: i64,
    data: Map<String, Value>,
}

impl<T: Serialize + DeserializeOwned + 'static> Collection<T> {
    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store behind the handle.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Stores a new document. Its id is generated (UUIDv7) unless the data carries a non-null
    /// `id`.
    ///
    /// # Errors
    /// `NotFound` for a missing collection; `InvalidInput` if the data is not an object, the id
    /// is malformed or a server-managed field is set; `AlreadyExists` if the chosen id is taken;
    /// `TooLarge` beyond the document size limit.
    pub fn insert(&self, doc: &T) -> Result<Doc<T>> {
        let value = to_value(doc)?;
        let stored = self.store.write_changes(|txn, changes| {
            let mut tables = self.tables(txn, changes, Action::Create)?;
            self.insert_in(&mut tables, value.clone())
        })?;
        self.typed(stored)
    }

    /// Stores a new document with the given id.
    ///
    /// # Errors
    /// As [`Collection::insert`].
    pub fn insert_with_id(&self, id: &str, doc: &T) -> Result<Doc<T>> {
        let mut value = to_value(doc)?;
        match &mut value {
            Value::Object(map) => match map.get("id") {
                None | Some(Value::Null) => {
                    map.insert("id".into(), Value::String(id.to_owned()));
                }
                Some(Value::String(existing)) if existing == id => {}
                Some(_) => {
                    return Err(Error::invalid(
                        "the data carries an `id` different from the one given",
                    ));
                }
            },
            _ => return Err(not_an_object()),
        }
        let stored = self.store.write_changes(|txn, changes| {
            let mut tables = self.tables(txn, changes, Action::Create)?;
            self.insert_in(&mut tables, value.clone())
        })?;
        self.typed(stored)
    }

    /// Stores several new documents in one transaction: all of them or none.
    ///
    /// # Errors
    /// As [`Collection::insert`]; the message names the position of the refused item.
    pub fn insert_many(&self, docs: &[T]) -> Result<Vec<Doc<T>>> {
        let stored = self.store.write_changes(|txn, changes| {
            let mut tables = self.tables(txn, changes, Action::Create)?;
            let mut out = Vec::with_capacity(docs.len());
            for (position, doc) in docs.iter().enumerate() {
                let stored = to_value(doc).and_then(|value| self.insert_in(&mut tables, value));
                out.push(stored.map_err(|e| at(position, e))?);
            }
            Ok(out)
        })?;
        self.typed_all(stored)
    }

    /// [`Collection::insert_many`], first creating the collection with the default (admin-only)
    /// spec when it is missing and the caller may manage collections — in the same transaction,
    /// so a refused document leaves no empty collection behind. (ekoDB creates a collection on
    /// its first insert.)
    ///
    /// # Errors
    /// As [`Collection::insert_many`]; `NotFound` for a missing collection the caller may not
    /// create.
    #[cfg(feature = "http")]
    pub(crate) fn insert_many_creating(&self, docs: &[T]) -> Result<Vec<Doc<T>>> {
        let may_create = policy::authorize(
            &self.principal,
            Action::ManageCollections,
            &PolicyTarget::Admin,
        )
        .is_ok();
        let stored = self.store.write_changes(|txn, changes| {
            let missing = txn
                .open_table(COLLECTIONS)?
                .get(self.name.as_str())?
                .is_none();
            if missing && may_create {
                crate::data::collections::Collections::new(&self.store).create_collection_in(
                    txn,
                    &self.name,
                    CollectionSpec::new(),
                )?;
            }
            let mut tables = self.tables(txn, changes, Action::Create)?;
            let mut out = Vec::with_capacity(docs.len());
            for (position, doc) in docs.iter().enumerate() {
                let stored = to_value(doc).and_then(|value| self.insert_in(&mut tables, value));
                out.push(stored.map_err(|e| at(position, e))?);
            }
            Ok(out)
        })?;
        self.typed_all(stored)
    }

    /// The document with this id, if any.
    ///
    /// # Errors
    /// `NotFound` for a missing collection.
    pub fn get(&self, id: &str) -> Result<Option<Doc<T>>> {
        if self.principal.is_admin() {
            // Administrators: no rules to read, straight to the document.
            return self.store.read(|txn| {
                let docs = self.docs_table(txn)?;
                let Some(bytes) = docs.get(id)? else {
                    return Ok(None);
                };
                let record = DocRecord::decode(bytes.value())?;
                Ok(Some(self.parse(id, &record, &Permit::default_full())?))
            });
        }
        self.read_with_target(|txn, target| {
            // Collection-level first: the answer must not depend on whether the id exists.
            self.permit(Action::View, &target.spec)?;
            let docs = schema::open_docs(txn, &target.docs)?;
            let Some(bytes) = docs.get(id)? else {
                return Ok(None);
            };
            let record = DocRecord::decode(bytes.value())?;
            let data: Map<String, Value> =
                serde_json::from_slice(record.json).map_err(Error::internal)?;
            let permit = match self.document_permit(Action::View, &target.spec, &data) {
                Ok(permit) => permit,
                Err(e) if matches!(e.kind(), ErrorKind::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            self.projected(id, &record, data, &permit).map(Some)
        })
    }

    /// Replaces a document's data (the id and `created_at` stay).
    ///
    /// # Errors
    /// `NotFound` for a missing collection or document; otherwise as [`Collection::insert`].
    pub fn replace(&self, id: &str, doc: &T) -> Result<Doc<T>> {
        let value = to_value(doc)?;
        let stored = self.store.write_changes(|txn, changes| {
            let mut tables = self.tables(txn, changes, Action::Update)?;
            self.update_in(&mut tables, id, UpdateKind::Replace, |existing| {
                prepare_update(value.clone(), existing)
            })
        })?;
        self.typed(stored)
    }

    /// Applies a JSON merge patch (RFC 7396) to a document: keys set to `null` are removed,
    /// objects merge recursively, anything else replaces.
    ///
    /// # Errors
    /// `InvalidInput` if the patch is not an object; otherwise as [`Collection::replace`].
    pub fn patch(&self, id: &str, patch: &Value) -> Result<Doc<T>> {
        let stored = self.store.write_changes(|txn, changes| {
            let mut tables = self.tables(txn, changes, Action::Update)?;
            self.update_in(&mut tables, id, UpdateKind::Patch, |existing| {
                apply_patch(patch, existing)
            })
        })?;
        self.typed(stored)
    }

    /// Sets the given fields and keeps the others, as MongoDB's `$set` does (urBackend's `PUT`
    /// and `PATCH` on the hosted service): each top-level value replaces the field whole (an
    /// object is not merged into, `null` is stored as `null`), and a dotted key (`stats.likes`)
    /// sets one nested field.
    ///
    /// # Errors
    /// As [`Collection::patch`].
    #[cfg(feature = "http")]
    pub(crate) fn set_fields(&self, id: &str, fields: &Value) -> Result<Doc<T>> {
        let stored = self.store.write_changes(|txn, changes| {
            let mut tables = self.tables(txn, changes, Action::Update)?;
            self.update_in(&mut tables, id, UpdateKind::Patch, |existing| {
                let Value::Object(fields) = fields else {
                    return Err(Error::invalid("the fields to set must be a JSON object"));
                };
                let mut fields = fields.clone();
                strip_server_managed(&mut fields, existing)?;
                let mut data = existing.data.clone();
                for (key, value) in fields {
                    policy::set_path(&mut data, &key, value);
                }
                Ok(data)
            })
        })?;
        self.typed(stored)
    }

    /// Applies several merge patches in one transaction: all of them or none.
    ///
    /// # Errors
    /// As [`Collection::patch`]; the message names the position of the refused item.
    pub fn patch_many(&self, patches: &[(String, Value)]) -> Result<Vec<Doc<T>>> {
        let stored = self.store.write_changes(|txn, changes| {
            let mut tables = self.tables(txn, changes, Action::Update)?;
            let mut out = Vec::with_capacity(patches.len());
            for (position, (id, patch)) in patches.iter().enumerate() {
                let doc = self.update_in(&mut tables, id, UpdateKind::Patch, |existing| {
                    apply_patch(patch, existing)
                });
                out.push(doc.map_err(|e| at(position, e))?);
            }
            Ok(out)
        })?;
        self.typed_all(stored)
    }

    /// Deletes a document and returns it as it was.
    ///
    /// # Errors
    /// `NotFound` for a missing collection or document.
    pub fn delete(&self, id: &str) -> Result<Doc<T>> {
        let deleted = self.store.write_changes(|txn, changes| {
            let mut tables = self.tables(txn, changes, Action::Delete)?;
            self.delete_in(txn, &mut tables, id)
        })?;
        self.typed(deleted)
    }

    /// Deletes several documents in one transaction: all of them or none (an unknown id fails
    /// the whole batch). Returns them as they were.
    ///
    /// # Errors
    /// As [`Collection::delete`]; the message names the position of the refused item.
    pub fn delete_many(&self, ids: &[impl AsRef<str>]) -> Result<Vec<Doc<T>>> {
        let deleted = self.store.write_changes(|txn, changes| {
            let mut tables = self.tables(txn, changes, Action::Delete)?;
            let mut out = Vec::with_capacity(ids.len());
            for (position, id) in ids.iter().enumerate() {
                out.push(
                    self.delete_in(txn, &mut tables, id.as_ref())
                        .map_err(|e| at(position, e))?,
                );
            }
            Ok(out)
        })?;
        self.typed_all(deleted)
    }

    /// The documents matching a query, in its order, paged by its offset and limit.
    ///
    /// # Errors
    /// `NotFound` for a missing collection; `InvalidInput` for a malformed query.
    pub fn find(&self, query: &Query) -> Result<Vec<Doc<T>>> {
        self.find_counting(query, &mut None)
    }

    /// A page of [`Collection::find`] and how many documents match the query's filter in all
    /// (a list page with its total). A page sorted on a field no index serves reads every match
    /// anyway, and counts them in the same pass; otherwise the total is a [`Collection::count`].
    ///
    /// # Errors
    /// As [`Collection::find`].
    ///
    /// ```
    /// # fn main() -> larder::Result<()> {
    /// use larder::{CollectionSpec, Db, Filter, Query};
    /// let db = Db::in_memory()?;
    /// db.collections().create("notes", CollectionSpec::new())?;
    /// let notes = db.collection::<serde_json::Value>("notes");
    /// for n in 0..30 {
    ///     notes.insert(&serde_json::json!({"n": n}))?;
    /// }
    /// let query = Query::new().filter(Filter::gte("n", 10)).sort_desc("created_at").limit(5);
    /// let (page, total) = notes.find_page(&query)?;
    /// assert_eq!((page.len(), total), (5, 20));
    /// assert_eq!(page[0].data["n"], 29);
    /// # Ok(()) }
    /// ```
    pub fn find_page(&self, query: &Query) -> Result<(Vec<Doc<T>>, u64)> {
        let mut total = None;
        let page = self.find_counting(query, &mut total)?;
        let total = match total {
            Some(total) => total,
            None => self.count(&query.filter)?,
        };
        Ok((page, total))
    }

    /// [`Collection::find`], setting `total` to the number of matches when it read them all.
    fn find_counting(&self, query: &Query, total: &mut Option<u64>) -> Result<Vec<Doc<T>>> {
        // Malformed input is refused before anything is looked up.
        let plan = Plan::compile(&query.filter, &query.sort)?;
        self.read_with_target(|txn, target| self.find_in(txn, target, &plan, query, total))
    }

    /// [`Collection::find_counting`] on a given snapshot, with the query's compiled `plan`.
    pub(crate) fn find_in(
        &self,
        txn: &ReadTransaction,
        target: &Target,
        plan: &Plan,
        query: &Query,
        total: &mut Option<u64>,
    ) -> Result<Vec<Doc<T>>> {
        {
            let permit = self.permit(Action::List, &target.spec)?;
            let plan = match self.visible_filter(
                &permit,
                &query.filter,
                query.sort.iter().map(|s| s.path.as_str()),
            )? {
                Some(narrowed) => Plan::compile(&narrowed, &query.sort)?,
                None => plan.clone(),
            };
            let plan = &plan;
            let permit = &permit;
            let docs = schema::open_docs(txn, &target.docs)?;
            let mut out = Vec::new();
            let mut matcher = Matcher::new(plan);
            let window = Window::new(query.offset, query.limit);
            if window.is_empty() {
                return Ok(out);
            }
            let scan = index::choose(&plan.test, &target.indexes, |f| field_path(plan, f));
            let sorted_by_index = match plan.sort.as_slice() {
                [(field, _)] => {
                    let path = field_path(plan, field);
                    target.indexes.iter().position(|def| def.path == path)
                }
                _ => None,
            };
            let sort_desc = plan
                .sort
                .first()
                .is_some_and(|(_, order)| *order == Order::Desc);

            match (scan, sorted_by_index) {
                // The index returns candidates already in the requested order.
                (Some(scan), Some(sort_index)) if scan.index == sort_index => {
                    let mut ids = self.index_candidates(txn, target, &scan)?;
                    if sort_desc {
                        ids.reverse();
                    }
                    self.stream(
                        &docs,
                        permit,
                        &mut matcher,
                        ids.iter().map(String::as_str),
                        window,
                        &mut out,
                    )?;
                }
                // No filter index, a limit, and an indexed sort: walk the sort index in order.
                (None, Some(sort_index)) if query.limit.is_some() => {
                    let index =
                        txn.open_table(IndexTable::new(&target.indexes[sort_index].table))?;
                    let mut window = window;
                    index::visit_all(&index, sort_desc, |id| {
                        self.offer(&docs, permit, &mut matcher, id, &mut window, &mut out)
                    })?;
                }
                (Some(scan), _) => {
                    let mut ids = self.index_candidates(txn, target, &scan)?;
                    if plan.sort.is_empty() {
                        ids.sort_unstable();
                        self.stream(
                            &docs,
                            permit,
                            &mut matcher,
                            ids.iter().map(String::as_str),
                            window,
                            &mut out,
                        )?;
                    } else {
                        let mut matches = Vec::new();
                        for id in &ids {
                            if let Some(bytes) = docs.get(id.as_str())? {
                                let record = DocRecord::decode(bytes.value())?;
                                matcher.collect(RowId::Str(id), &record, &mut matches)?;
                            }
                        }
                        *total = Some(matches.len() as u64);
                        self.sorted_page(&docs, permit, plan, matches, window, &mut out)?;
                    }
                }
                (None, _) if plan.sort.is_empty() => {
                    let mut window = window;
                    for entry in docs.iter()? {
                        let (id, bytes) = entry?;
                        let record = DocRecord::decode(bytes.value())?;
                        if matcher.matches(RowId::Key(&id), &record)? {
                            if window.take() {
                                out.push(self.parse(id.value(), &record, permit)?);
                            }
                            if window.done() {
                                break;
                            }
                        }
                    }
                }
                (None, _) => {
                    let mut matches = Vec::new();
                    for entry in docs.iter()? {
                        let (id, bytes) = entry?;
                        let record = DocRecord::decode(bytes.value())?;
                        matcher.collect(RowId::Key(&id), &record, &mut matches)?;
                    }
                    *total = Some(matches.len() as u64);
                    self.sorted_page(&docs, permit, plan, matches, window, &mut out)?;
                }
            }
            Ok(out)
        }
    }

    /// How many documents match a filter.
    ///
    /// # Errors
    /// `NotFound` for a missing collection; `InvalidInput` for a malformed filter.
    pub fn count(&self, filter: &query::Filter) -> Result<u64> {
        if matches!(filter, query::Filter::All) && self.principal.is_admin() {
            return self.store.read(|txn| Ok(self.docs_table(txn)?.len()?));
        }
        let plan = Plan::compile(filter, &[])?;
        self.read_with_target(|txn, target| {
            let permit = self.permit(Action::List, &target.spec)?;
            let plan = match self.visible_filter(&permit, filter, std::iter::empty())? {
                Some(narrowed) => Plan::compile(&narrowed, &[])?,
                None => plan.clone(),
            };
            let docs = schema::open_docs(txn, &target.docs)?;
            let mut count = 0;
            self.visit_matches(txn, target, &docs, &plan, |_| {
                count += 1;
                Ok(())
            })?;
            Ok(count)
        })
    }

    /// An aggregate over the documents matching a filter: a count, or the sum, mean, minimum
    /// or maximum of a field's numeric values (`null` when there are none; other values are
    /// skipped).
    ///
    /// # Errors
    /// `NotFound` for a missing collection; `InvalidInput` for a malformed filter or path.
    pub fn aggregate(&self, aggregate: &Aggregate, filter: &query::Filter) -> Result<Value> {
        let path = match aggregate {
            Aggregate::Count => return self.count(filter).map(Value::from),
            Aggregate::Sum(path)
            | Aggregate::Avg(path)
            | Aggregate::Min(path)
            | Aggregate::Max(path) => path,
        };
        let sort = [Sort {
            path: path.clone(),
            order: Order::Asc,
        }];
        let mut accumulator = Accumulator::default();
        let plan = Plan::compile(filter, &sort)?;
        self.read_with_target(|txn, target| {
            let permit = self.permit(Action::List, &target.spec)?;
            let plan = match self.visible_filter(&permit, filter, std::iter::once(path.as_str()))? {
                Some(narrowed) => Plan::compile(&narrowed, &sort)?,
                None => plan.clone(),
            };
            let field = plan.sort[0].0.clone();
            let plan = &plan;
            let docs = schema::open_docs(txn, &target.docs)?;
            self.visit_matches(txn, target, &docs, plan, |row| {
                if let Some(Value::Number(n)) = row.resolve(&field).as_deref() {
                    accumulator.add(n);
                }
                Ok(())
            })
        })?;
        Ok(accumulator.finish(aggregate))
    }

    // -----------------------------------------------------------------------------------------
    // Write internals

    fn tables<'txn>(
        &self,
        txn: &'txn WriteTransaction,
        changes: &'txn mut ChangeBatch,
        action: Action,
    ) -> Result<Tables<'txn>> {
        let target = Target::load(&txn.open_table(COLLECTIONS)?, &self.name)?;
        let permit = self.permit(action, &target.spec)?;
        Tables::open(txn, changes, &self.name, target, permit)
    }

    fn insert_in(&self, tables: &mut Tables<'_>, value: Value) -> Result<Doc<Value>> {
        let Value::Object(mut map) = value else {
            return Err(not_an_object());
        };
        let id = match map.remove("id") {
            None | Some(Value::Null) => self.store.new_id(),
            Some(Value::String(id)) => {
                validate_id(&id)?;
                id
            }
            Some(_) => return Err(Error::invalid("`id` must be a string")),
        };
        for field in ["created_at", "updated_at"] {
            match map.remove(field) {
                None | Some(Value::Null) => {}
                Some(_) => {
                    return Err(Error::invalid(format!(
                        "`{field}` is server-managed and cannot be set"
                    )));
                }
            }
        }
        tables.permit.prepare_create(&mut map)?;
        self.seal(&map, &mut tables.record)?;
        let now = self.store.now_micros();
        DocRecord::finish(&mut tables.record, now, now);
        // An existing id is refused; the caller's transaction then aborts, so the overwrite
        // below never reaches the file.
        if tables
            .docs
            .insert(tables.changes, id.as_str(), tables.record.as_slice())?
        {
            return Err(Error::already_exists(format!(
                "document `{id}` in `{}`",
                self.name
            )));
        }
        for (def, table) in &mut tables.indexes {
            table.insert(def.key(&id, now, now, &map).as_slice(), id.as_str())?;
        }
        let stamp = format_rfc3339(now);
        tables.permit.project(&mut map);
        Ok(Doc {
            id,
            created_at: stamp.clone(),
            updated_at: stamp,
            data: Value::Object(map),
        })
    }

    fn update_in(
        &self,
        tables: &mut Tables<'_>,
        id: &str,
        kind: UpdateKind,
        change: impl FnOnce(&Existing) -> Result<Map<String, Value>>,
    ) -> Result<Doc<Value>> {
        let existing = {
            let Some(bytes) = tables.docs.get(id)? else {
                return Err(self.doc_not_found(id));
            };
            let record = DocRecord::decode(bytes.value())?;
            Existing {
                id: id.to_owned(),
                created_at: record.created_at,
                updated_at: record.updated_at,
                data: serde_json::from_slice(record.json).map_err(Error::internal)?,
            }
        };
        // The document-level decision (readable? owner?) on the document as stored.
        let permit = if tables.permit.full {
            tables.permit.clone()
        } else {
            self.document_permit(Action::Update, &tables.spec, &existing.data)
                .map_err(|e| self.hide_not_found(e, id))?
        };
        let mut data = change(&existing)?;
        permit.prepare_update(&existing.data, &mut data, kind == UpdateKind::Replace)?;
        self.seal(&data, &mut tables.record)?;
        // Keep updated_at strictly increasing even if the clock stalls or steps back.
        let now = self.store.now_micros().max(existing.updated_at + 1);
        DocRecord::finish(&mut tables.record, existing.created_at, now);
        tables
            .docs
            .insert(tables.changes, id, tables.record.as_slice())?;
        crate::files::on_document_updated(tables.txn, &self.name, id, &existing.data, &data)?;
        for (def, table) in &mut tables.indexes {
            let old = def.key(id, existing.created_at, existing.updated_at, &existing.data);
            let new = def.key(id, existing.created_at, now, &data);
            if old != new {
                table.remove(old.as_slice())?;
                table.insert(new.as_slice(), id)?;
            }
        }
        permit.project(&mut data);
        Ok(doc_of(
            id.to_owned(),
            existing.created_at,
            now,
            Value::Object(data),
        ))
    }

    fn delete_in(
        &self,
        txn: &WriteTransaction,
        tables: &mut Tables<'_>,
        id: &str,
    ) -> Result<Doc<Value>> {
        let mut permit = tables.permit.clone();
        if !permit.full {
            // Decide on the stored document before touching it.
            let Some(bytes) = tables.docs.get(id)? else {
                return Err(self.doc_not_found(id));
            };
            let record = DocRecord::decode(bytes.value())?;
            let data: Map<String, Value> =
                serde_json::from_slice(record.json).map_err(Error::internal)?;
            permit = self
                .document_permit(Action::Delete, &tables.spec, &data)
                .map_err(|e| self.hide_not_found(e, id))?;
        }
        let (created_at, updated_at, mut data) = {
            let Some(bytes) = tables.docs.remove(tables.changes, id)? else {
                return Err(self.doc_not_found(id));
            };
            let record = DocRecord::decode(&bytes)?;
            let data: Map<String, Value> =
                serde_json::from_slice(record.json).map_err(Error::internal)?;
            (record.created_at, record.updated_at, data)
        };
        for (def, table) in &mut tables.indexes {
            table.remove(def.key(id, created_at, updated_at, &data).as_slice())?;
        }
        crate::files::on_document_deleted(txn, &self.name, id)?;
        permit.project(&mut data);
        Ok(doc_of(
            id.to_owned(),
            created_at,
            updated_at,
            Value::Object(data),
        ))
    }

    // -----------------------------------------------------------------------------------------
    // Authorization: every decision goes through `policy::authorize`.

    /// The collection-level decision for this handle's principal.
    pub(crate) fn permit(&self, action: Action, spec: &CollectionSpec) -> Result<Permit> {
        crate::access::auth::still_valid(&self.store, &self.principal)?;
        policy::authorize(
            &self.principal,
            action,
            &PolicyTarget::Collection {
                name: &self.name,
                spec: spec.guard(),
            },
        )
    }

    /// The collection-level decision for the handle's principal as its credential stands now
    /// (current roles and key grants), for holders of a decision made earlier.
    pub(crate) fn current_permit(&self, action: Action, spec: &CollectionSpec) -> Result<Permit> {
        let principal = crate::access::auth::refreshed(&self.store, &self.principal)?;
        policy::authorize(
            &principal,
            action,
            &PolicyTarget::Collection {
                name: &self.name,
                spec: spec.guard(),
            },
        )
    }

    /// The decision on one stored document.
    fn document_permit(
        &self,
        action: Action,
        spec: &CollectionSpec,
        data: &Map<String, Value>,
    ) -> Result<Permit> {
        crate::access::auth::still_valid(&self.store, &self.principal)?;
        policy::authorize(
            &self.principal,
            action,
            &PolicyTarget::Document {
                name: &self.name,
                spec: spec.guard(),
                data,
            },
        )
    }

    /// The same "not found" for an unreadable document as for a missing one.
    fn hide_not_found(&self, error: Error, id: &str) -> Error {
        match error.kind() {
            ErrorKind::NotFound { .. } => self.doc_not_found(id),
            _ => error,
        }
    }

    /// The caller's filter as it runs: refused if it (or a sort or aggregate path) reads a field
    /// the caller cannot see, and narrowed by an owner rule (`None`: runs as given).
    pub(crate) fn visible_filter<'p>(
        &self,
        permit: &Permit,
        filter: &'p query::Filter,
        more_paths: impl Iterator<Item = &'p str>,
    ) -> Result<Option<query::Filter>> {
        if permit.full {
            return Ok(None);
        }
        let mut paths = Vec::new();
        filter_paths(filter, &mut paths);
        permit.check_query_paths(paths.into_iter().chain(more_paths))?;
        Ok(permit.owner_filter.as_ref().map(|(field, user)| {
            filter
                .clone()
                .and(query::Filter::eq(field.as_str(), user.as_str()))
        }))
    }

    fn doc_not_found(&self, id: &str) -> Error {
        Error::not_found(format!(
            "document `{}` in `{}`",
            id.escape_debug(),
            self.name
        ))
    }

    /// Serializes the data into `record`, straight after room for the header (see
    /// [`DocRecord::begin`]), and checks its size.
    fn seal(&self, data: &Map<String, Value>, record: &mut Vec<u8>) -> Result<()> {
        crate::store::names::check_nesting(data, "the document")?;
        DocRecord::begin(record);
        serde_json::to_writer(&mut *record, data).map_err(Error::internal)?;
        let limit = self.store.limits().max_document_bytes;
        if DocRecord::json_of(record).len() > limit {
            return Err(Error::too_large("the document", limit as u64));
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Read internals

    fn docs_table(
        &self,
        txn: &ReadTransaction,
    ) -> Result<redb::ReadOnlyTable<&'static str, &'static [u8]>> {
        validate_collection_name(&self.name)?;
        match schema::open_docs(txn, &self.docs_table) {
            Ok(table) => Ok(table),
            Err(redb::TableError::TableDoesNotExist(_)) => {
                Err(Error::not_found(format!("collection `{}`", self.name)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Runs `op` on a snapshot with the collection's read target: from the cache when no
    /// collection changed since it was loaded, else loaded from this snapshot (and cached).
    fn read_with_target<R>(
        &self,
        op: impl FnOnce(&ReadTransaction, &Target) -> Result<R>,
    ) -> Result<R> {
        let cache = self.store.state::<TargetCache>()?;
        // Read before the snapshot begins: an entry is only ever tagged with a generation no
        // newer than the snapshot it was loaded from.
        let generation = cache.generation.load(Ordering::Acquire);
        self.store.read(|txn| {
            let cached = cache
                .entries
                .read()
                .get(self.name.as_str())
                .filter(|(tag, _)| *tag == generation)
                .map(|(_, target)| Arc::clone(target));
            let target = match cached {
                Some(target) => target,
                None => {
                    let target = Arc::new(Target::load(&txn.open_table(COLLECTIONS)?, &self.name)?);
                    let mut entries = cache.entries.write();
                    if entries.len() >= TARGET_CACHE_ENTRIES {
                        entries.clear();
                    }
                    entries.insert(self.name.clone(), (generation, Arc::clone(&target)));
                    target
                }
            };
            op(txn, &target)
        })
    }

    /// Parses a stored document for the caller: projected by the permit unless it is full.
    fn parse(&self, id: &str, record: &DocRecord<'_>, permit: &Permit) -> Result<Doc<T>> {
        if !permit.full {
            let data = serde_json::from_slice(record.json).map_err(Error::internal)?;
            return self.projected(id, record, data, permit);
        }
        let data: T = serde_json::from_slice(record.json).map_err(|e| {
            Error::with_source(
                ErrorKind::InvalidInput {
                    message: format!(
                        "document `{}` does not match the requested type",
                        id.escape_debug()
                    ),
                },
                e,
            )
        })?;
        Ok(Doc {
            id: id.to_owned(),
            created_at: format_rfc3339(record.created_at),
            updated_at: format_rfc3339(record.updated_at),
            data,
        })
    }

    /// A parsed document as the caller may see it, in the handle's type.
    fn projected(
        &self,
        id: &str,
        record: &DocRecord<'_>,
        mut data: Map<String, Value>,
        permit: &Permit,
    ) -> Result<Doc<T>> {
        permit.project(&mut data);
        let doc = doc_of(
            id.to_owned(),
            record.created_at,
            record.updated_at,
            Value::Object(data),
        );
        self.typed(doc)
    }

    /// [`Collection::typed`] for a batch: one move of the whole vector when `T` is `Value`
    /// (not one box per document).
    fn typed_all(&self, docs: Vec<Doc<Value>>) -> Result<Vec<Doc<T>>> {
        let boxed: Box<dyn Any> = Box::new(docs);
        match boxed.downcast::<Vec<Doc<T>>>() {
            Ok(same) => Ok(*same),
            Err(other) => match other.downcast::<Vec<Doc<Value>>>() {
                Ok(docs) => docs.into_iter().map(|doc| self.typed(doc)).collect(),
                Err(_) => Err(Error::internal(std::io::Error::other("document type"))),
            },
        }
    }

    /// Converts a stored JSON document into the handle's type (a move when `T` is `Value`).
    pub(crate) fn typed(&self, doc: Doc<Value>) -> Result<Doc<T>> {
        let boxed: Box<dyn Any> = Box::new(doc);
        let doc = match boxed.downcast::<Doc<T>>() {
            Ok(same) => return Ok(*same),
            Err(other) => match other.downcast::<Doc<Value>>() {
                Ok(doc) => *doc,
                Err(_) => return Err(Error::internal(std::io::Error::other("document type"))),
            },
        };
        let data = serde_json::from_value(doc.data).map_err(|e| {
            Error::with_source(
                ErrorKind::InvalidInput {
                    message: format!("document `{}` does not match the requested type", doc.id),
                },
                e,
            )
        })?;
        Ok(Doc {
            id: doc.id,
            created_at: doc.created_at,
            updated_at: doc.updated_at,
            data,
        })
    }

    fn index_candidates(
        &self,
        txn: &ReadTransaction,
        target: &Target,
        scan: &IndexScan,
    ) -> Result<Vec<String>> {
        let table = txn.open_table(IndexTable::new(&target.indexes[scan.index].table))?;
        let mut ids = Vec::new();
        index::visit_ranges(&table, &scan.ranges, |id| {
            ids.push(id.to_owned());
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(ids)
    }

    /// Fetches candidates in the given order, keeps the matching ones inside the window.
    fn stream<'i>(
        &self,
        docs: &redb::ReadOnlyTable<&'static str, &'static [u8]>,
        permit: &Permit,
        matcher: &mut Matcher<'_>,
        ids: impl Iterator<Item = &'i str>,
        mut window: Window,
        out: &mut Vec<Doc<T>>,
    ) -> Result<()> {
        for id in ids {
            if self
                .offer(docs, permit, matcher, id, &mut window, out)?
                .is_break()
            {
                break;
            }
        }
        Ok(())
    }

    fn offer(
        &self,
        docs: &redb::ReadOnlyTable<&'static str, &'static [u8]>,
        permit: &Permit,
        matcher: &mut Matcher<'_>,
        id: &str,
        window: &mut Window,
        out: &mut Vec<Doc<T>>,
    ) -> Result<ControlFlow<()>> {
        if let Some(bytes) = docs.get(id)? {
            let record = DocRecord::decode(bytes.value())?;
            if matcher.matches(RowId::Str(id), &record)? {
                if window.take() {
                    out.push(self.parse(id, &record, permit)?);
                }
                if window.done() {
                    return Ok(ControlFlow::Break(()));
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Sorts the matches, then fetches and parses only the page.
    fn sorted_page(
        &self,
        docs: &redb::ReadOnlyTable<&'static str, &'static [u8]>,
        permit: &Permit,
        plan: &Plan,
        mut matches: Vec<(Vec<Vec<u8>>, String)>,
        window: Window,
        out: &mut Vec<Doc<T>>,
    ) -> Result<()> {
        let order = |a: &(Vec<Vec<u8>>, String), b: &(Vec<Vec<u8>>, String)| {
            query::compare_rows(&plan.sort, (&a.0, &a.1), (&b.0, &b.1))
        };
        let end = window.end().min(matches.len());
        if end < matches.len() && end > 0 {
            matches.select_nth_unstable_by(end - 1, order);
            matches.truncate(end);
        }
        matches.sort_unstable_by(order);
        for (_, id) in matches
            .iter()
            .skip(window.offset)
            .take(end.saturating_sub(window.offset))
        {
            if let Some(bytes) = docs.get(id.as_str())? {
                out.push(self.parse(id, &DocRecord::decode(bytes.value())?, permit)?);
            }
        }
        Ok(())
    }

    /// Calls `visit` for every matching document (via an index when one narrows the filter).
    fn visit_matches(
        &self,
        txn: &ReadTransaction,
        target: &Target,
        docs: &redb::ReadOnlyTable<&'static str, &'static [u8]>,
        plan: &Plan,
        mut visit: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut matcher = Matcher::new(plan);
        let mut check = |id: RowId<'_>, bytes: &[u8]| -> Result<()> {
            let record = DocRecord::decode(bytes)?;
            let row = matcher.row(id, &record)?;
            if row.matches(&plan.test) {
                visit(&row)?;
            }
            Ok(())
        };
        match index::choose(&plan.test, &target.indexes, |f| field_path(plan, f)) {
            Some(scan) => {
                for id in self.index_candidates(txn, target, &scan)? {
                    if let Some(bytes) = docs.get(id.as_str())? {
                        check(RowId::Str(&id), bytes.value())?;
                    }
                }
            }
            None => {
                for entry in docs.iter()? {
                    let (id, bytes) = entry?;
                    check(RowId::Key(&id), bytes.value())?;
                }
            }
        }
        Ok(())
    }
}

/// The window `[offset, offset + limit)` of matches to return.
#[derive(Debug, Clone, Copy)]
struct Window {
    offset: usize,
    limit: Option<usize>,
    seen: usize,
}

impl Window {
    fn new(offset: usize, limit: Option<usize>) -> Self {
        Window {
            offset,
            limit,
            seen: 0,
        }
    }
    fn end(&self) -> usize {
        self.limit
            .map_or(usize::MAX, |l| self.offset.saturating_add(l))
    }
    fn is_empty(&self) -> bool {
        self.limit == Some(0)
    }
    /// Counts one match; true if it falls inside the window.
    fn take(&mut self) -> bool {
        let inside = self.seen >= self.offset && self.seen < self.end();
        self.seen += 1;
        inside
    }
    fn done(&self) -> bool {
        self.seen >= self.end()
    }
}

/// Tests documents against a plan, reusing one buffer for the fields it picks.
struct Matcher<'p> {
    plan: &'p Plan,
    picked: Vec<Picked>,
}

impl<'p> Matcher<'p> {
    fn new(plan: &'p Plan) -> Self {
        Matcher {
            plan,
            picked: Vec::with_capacity(plan.slots.len()),
        }
    }

    /// The row of a document, with the plan's fields picked out of its JSON.
    fn row<'a>(&'a mut self, id: RowId<'a>, record: &DocRecord<'_>) -> Result<Row<'a>> {
        if !self.plan.slots.is_empty() {
            query::pick_fields_into(record.json, &self.plan.slots, &mut self.picked)?;
        }
        Ok(Row {
            id,
            created_at: record.created_at,
            updated_at: record.updated_at,
            data: RowData::Picked(&self.picked),
        })
    }

    fn matches(&mut self, id: RowId<'_>, record: &DocRecord<'_>) -> Result<bool> {
        let test = &self.plan.test;
        Ok(self.row(id, record)?.matches(test))
    }

    /// Keeps the sort keys and id of a matching document.
    fn collect(
        &mut self,
        id: RowId<'_>,
        record: &DocRecord<'_>,
        out: &mut Vec<(Vec<Vec<u8>>, String)>,
    ) -> Result<()> {
        let plan = self.plan;
        let row = self.row(id, record)?;
        if row.matches(&plan.test) {
            out.push((row.sort_keys(&plan.sort), id.get().to_owned()));
        }
        Ok(())
    }
}

/// Every field path a filter reads.
fn filter_paths<'f>(filter: &'f query::Filter, out: &mut Vec<&'f str>) {
    use query::Filter;
    match filter {
        Filter::All => {}
        Filter::Compare { path, .. }
        | Filter::In { path, .. }
        | Filter::NotIn { path, .. }
        | Filter::IsNull { path } => out.push(path),
        Filter::And(all) | Filter::Or(all) => all.iter().for_each(|f| filter_paths(f, out)),
        Filter::Not(inner) => filter_paths(inner, out),
    }
}

/// The dotted path a compiled field was written as.
fn field_path(plan: &Plan, field: &FieldRef) -> String {
    match field {
        FieldRef::Meta(MetaField::Id) => "id".into(),
        FieldRef::Meta(MetaField::CreatedAt) => "created_at".into(),
        FieldRef::Meta(MetaField::UpdatedAt) => "updated_at".into(),
        FieldRef::Data { slot, rest } => {
            let mut path = plan.slots.get(*slot).cloned().unwrap_or_default();
            for segment in rest {
                path.push('.');
                path.push_str(segment);
            }
            path
        }
    }
}

fn doc_of(id: String, created_at: i64, updated_at: i64, data: Value) -> Doc<Value> {
    Doc {
        id,
        created_at: format_rfc3339(created_at),
        updated_at: format_rfc3339(updated_at),
        data,
    }
}

/// Converts the caller's value to JSON; a `Value` is cloned directly instead of re-serialized.
fn to_value<T: Serialize + 'static>(doc: &T) -> Result<Value> {
    if let Some(value) = (doc as &dyn Any).downcast_ref::<Value>() {
        return Ok(value.clone());
    }
    serde_json::to_value(doc).map_err(|e| {
        Error::with_source(
            ErrorKind::InvalidInput {
                message: "the document cannot be represented as JSON".into(),
            },
            e,
        )
    })
}

fn not_an_object() -> Error {
    Error::invalid("a document must be a JSON object")
}

/// Prefixes an error from a batch item with its position.
fn at(position: usize, error: Error) -> Error {
    let kind = match error.kind().clone() {
        ErrorKind::InvalidInput { message } => ErrorKind::InvalidInput {
            message: format!("item {position}: {message}"),
        },
        ErrorKind::NotFound { what } => ErrorKind::NotFound {
            what: format!("item {position}: {what}"),
        },
        ErrorKind::AlreadyExists { what } => ErrorKind::AlreadyExists {
            what: format!("item {position}: {what}"),
        },
        ErrorKind::TooLarge { what, limit } => ErrorKind::TooLarge {
            what: format!("item {position}: {what}"),
            limit,
        },
        _ => return error,
    };
    Error::new(kind)
}

/// Checks a caller-chosen document id: 1 to 128 characters of `A-Z a-z 0-9 _ -`.
fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid document id `{}`: use 1 to {MAX_ID_LEN} characters of A-Z, a-z, 0-9, _ and -",
            id.escape_debug()
        )))
    }
}

/// Removes the server-managed fields from an update, refusing any that would change them.
fn strip_server_managed(map: &mut Map<String, Value>, existing: &Existing) -> Result<()> {
    for field in SERVER_MANAGED_FIELDS {
        let current = match field {
            "id" => existing.id.clone(),
            "created_at" => format_rfc3339(existing.created_at),
            _ => format_rfc3339(existing.updated_at),
        };
        match map.remove(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(given)) if given == current => {}
            Some(_) => {
                return Err(Error::invalid(format!(
                    "`{field}` is server-managed and cannot be changed"
                )));
            }
        }
    }
    Ok(())
}

fn prepare_update(value: Value, existing: &Existing) -> Result<Map<String, Value>> {
    let Value::Object(mut map) = value else {
        return Err(not_an_object());
    };
    strip_server_managed(&mut map, existing)?;
    Ok(map)
}

fn apply_patch(patch: &Value, existing: &Existing) -> Result<Map<String, Value>> {
    let Value::Object(patch) = patch else {
        return Err(Error::invalid("a merge patch must be a JSON object"));
    };
    let mut patch = patch.clone();
    strip_server_managed(&mut patch, existing)?;
    let mut data = existing.data.clone();
    merge_patch(&mut data, patch);
    Ok(data)
}

/// RFC 7396 on an object target.
fn merge_patch(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(&key);
            }
            Value::Object(inner) => match target.get_mut(&key) {
                Some(Value::Object(existing)) => merge_patch(existing, inner),
                _ => {
                    let mut fresh = Map::new();
                    merge_patch(&mut fresh, inner);
                    target.insert(key, Value::Object(fresh));
                }
            },
            other => {
                target.insert(key, other);
            }
        }
    }
}

/// Running sum/min/max over numeric values.
#[derive(Default)]
struct Accumulator {
    count: u64,
    int_sum: Option<i64>,
    float_sum: f64,
    all_int: bool,
    min: Option<serde_json::Number>,
    max: Option<serde_json::Number>,
}

impl Accumulator {
    fn add(&mut self, n: &serde_json::Number) {
        if self.count == 0 {
            self.all_int = true;
            self.int_sum = Some(0);
        }
        self.count += 1;
        self.float_sum += n.as_f64().unwrap_or(0.0);
        match n.as_i64() {
            Some(i) => self.int_sum = self.int_sum.and_then(|s| s.checked_add(i)),
            None => self.all_int = false,
        }
        let value = Value::Number(n.clone());
        let below = |current: &serde_json::Number| {
            values::compare_typed(&value, &Value::Number(current.clone()))
                == Some(std::cmp::Ordering::Less)
        };
        if self.min.as_ref().is_none_or(below) {
            self.min = Some(n.clone());
        }
        let above = |current: &serde_json::Number| {
            values::compare_typed(&value, &Value::Number(current.clone()))
                == Some(std::cmp::Ordering::Greater)
        };
        if self.max.as_ref().is_none_or(above) {
            self.max = Some(n.clone());
        }
    }

    fn finish(self, aggregate: &Aggregate) -> Value {
        if self.count == 0 {
            return Value::Null;
        }
        match aggregate {
            Aggregate::Count => Value::from(self.count),
            Aggregate::Sum(_) => match (self.all_int, self.int_sum) {
                (true, Some(sum)) => Value::from(sum),
                _ => float(self.float_sum),
            },
            Aggregate::Avg(_) => float(self.float_sum / self.count as f64),
            Aggregate::Min(_) => self.min.map_or(Value::Null, Value::Number),
            Aggregate::Max(_) => self.max.map_or(Value::Null, Value::Number),
        }
    }
}

fn float(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396_examples() {
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (target, patch, expected) in cases {
            let Value::Object(mut target) = target else {
                unreachable!()
            };
            let Value::Object(patch) = patch else {
                unreachable!()
            };
            merge_patch(&mut target, patch);
            assert_eq!(Value::Object(target), expected);
        }
    }

    #[test]
    fn window_counts_offset_and_limit() {
        let mut window = Window::new(2, Some(3));
        let taken: Vec<bool> = (0..6).map(|_| window.take()).collect();
        assert_eq!(taken, [false, false, true, true, true, false]);
        assert!(window.done());
    }

    #[test]
    fn ids() {
        for ok in ["a", "A-b_9", &"x".repeat(128)] {
            assert!(validate_id(ok).is_ok());
        }
        for bad in ["", "a b", "a/b", "../x", "é", &"x".repeat(129), "a\0"] {
            assert!(validate_id(bad).is_err());
        }
    }
}
