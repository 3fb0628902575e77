//! Files in the same redb file as everything else: named buckets with rules, files stored in
//! chunks beside their metadata, streamed in and out, and one-time upload grants for signed
//! upload URLs.
//!
//! A file's name is generated (`<uuidv7>_<sanitised original name>`); the name the uploader
//! gave is kept as metadata only and never used to find anything. Names that arrive from
//! outside are checked against the generated shape, so traversal (`..`, `/`), absolute paths,
//! NUL bytes and overlong names are refused, never interpreted.
//!
//! An upload writes its chunks in short transactions of their own (the write lock is never held
//! while bytes trickle in from a slow client) into a staging area readers never see; the file
//! appears, with its metadata, in one durable commit at [`Upload::finish`]. An upload dropped
//! unfinished, or cut off by a crash, leaves nothing behind: its staged chunks are removed when
//! it is dropped, and leftovers of a crash are purged on the next open.

use std::io::Read;

use redb::{ReadableDatabase, ReadableMultimapTable, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::access::policy::{self, Action, Permit, Target};
use crate::access::principal::Principal;
use crate::access::rules::{Guard, Rules};
use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;
use crate::store::names::validate_bucket_name;
use crate::store::schema::{
    self, BUCKETS, FILE_CHUNKS, FILE_STAGING, FILES, FILES_BY_ATTACHMENT, FILES_BY_OWNER,
    UPLOAD_GRANTS,
};

/// The size limit of a file unless its bucket or [`DbBuilder::max_file_bytes`](crate::DbBuilder::max_file_bytes)
/// says otherwise: 10 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// Bytes per stored chunk: big enough that a chunk costs one B-tree entry per 256 KiB, small
/// enough that a reader holds little in memory.
const CHUNK_BYTES: usize = 256 * 1024;

/// Longest original filename kept as metadata, in bytes.
const MAX_FILENAME_BYTES: usize = 255;
/// Longest stored name, in bytes (a UUID, `-`, 16 hex digits, `_`, and up to 64 bytes of the
/// original name).
const MAX_NAME_BYTES: usize = 118;
/// The owner field of the spec a bucket's rules are decided with.
const OWNER_FIELD: &str = "owner";
/// A staged upload older than this is abandoned and may be purged by [`Buckets::cleanup`](crate::Buckets::cleanup).
const STAGING_LIFETIME_MICROS: i64 = 3600 * 1_000_000;

/// The configuration of a bucket: what [`Buckets::create`](crate::Buckets::create) and [`Buckets::update`](crate::Buckets::update) take.
///
/// The rules are a collection's: `list` lists files, `view` downloads one, `create` uploads,
/// `delete` deletes (`update` is unused: files are immutable). The owner of a file is the user
/// who uploaded it, so [`Rule::Owner`](crate::Rule::Owner) means "the uploader". A scoped key
/// reaches a bucket through a grant on `files/<bucket>`.
///
/// ```
/// use larder::{BucketSpec, Rule, Rules};
/// let avatars = BucketSpec::new()
///     .rules(Rules { view: Rule::Public, create: Rule::Authenticated, delete: Rule::Owner, ..Rules::default() })
///     .max_file_bytes(2 * 1024 * 1024);
/// assert_eq!(avatars.max_file_bytes, Some(2 * 1024 * 1024));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct BucketSpec {
    /// Who may do what (default: administrators only).
    pub rules: Rules,
    /// The largest file accepted, in bytes (default: the database's limit, 10 MiB unless set).
    pub max_file_bytes: Option<u64>,
    /// Keep files when their uploader's account or the document they were attached to is
    /// deleted (default: delete them with it).
    pub keep_orphans: bool,
}

impl BucketSpec {
    /// The default configuration: admin-only rules, the database's size limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the access rules.
    pub fn rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }

    /// Sets the size limit.
    pub fn max_file_bytes(mut self, bytes: u64) -> Self {
        self.max_file_bytes = Some(bytes);
        self
    }

    /// What the policy decides with: a bucket is a collection of files whose owner field is
    /// the uploader.
    fn guard(&self) -> Guard<'_> {
        Guard {
            rules: &self.rules,
            owner_field: Some(OWNER_FIELD),
            hidden_fields: &[],
        }
    }
}

/// A bucket as stored, with its file count and total size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketInfo {
    /// The bucket's name.
    pub name: String,
    /// Its configuration.
    pub spec: BucketSpec,
    /// Number of files in it.
    pub file_count: u64,
    /// Sum of their sizes, in bytes.
    pub total_bytes: u64,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// A stored file's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    /// The bucket holding it.
    pub bucket: String,
    /// Its generated name, unique in the bucket: `<uuidv7>_<sanitised original name>`.
    pub name: String,
    /// The name the uploader gave (metadata only: never used to find anything).
    pub filename: String,
    /// The content type the uploader declared.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// The id of the user who uploaded it, if a user did.
    pub owner: Option<String>,
    /// The document it belongs to, as `collection/id`, if it was attached to one.
    pub attached_to: Option<String>,
    /// When it was stored (RFC 3339).
    pub created_at: String,
}

impl FileInfo {
    /// `bucket/name`: the path the HTTP front serves it under `/api/files/`.
    pub fn path(&self) -> String {
        format!("{}/{}", self.bucket, self.name)
    }
}

/// A one-time permission to upload one file of a declared size and type: the capability behind
/// signed upload URLs (see [`Bucket::grant_upload`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadGrant {
    /// The secret that redeems it (256 random bits, URL-safe); stored only as a hash.
    pub token: String,
    /// The bucket the file will be stored in.
    pub bucket: String,
    /// The name the file will have.
    pub name: String,
    /// When the grant expires (RFC 3339).
    pub expires_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredBucket {
    spec: BucketSpec,
    created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredFile {
    blob: String,
    filename: String,
    content_type: String,
    size: u64,
    sha256: [u8; 32],
    owner: Option<String>,
    attached_to: Option<String>,
    created_at: i64,
    chunk_bytes: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredGrant {
    bucket: String,
    name: String,
    filename: String,
    content_type: String,
    size: u64,
    owner: Option<String>,
    expires_at: i64,
}

impl StoredFile {
    fn info(&self, bucket: &str, name: &str) -> FileInfo {
        FileInfo {
            bucket: bucket.to_owned(),
            name: name.to_owned(),
            filename: self.filename.clone(),
            content_type: self.content_type.clone(),
            size: self.size,
            sha256: hex(&self.sha256),
            owner: self.owner.clone(),
            attached_to: self.attached_to.clone(),
            created_at: crate::store::clock::format_rfc3339(self.created_at),
        }
    }

    /// What the policy sees of a file: its owner.
    fn as_document(&self) -> Map<String, Value> {
        let mut data = Map::new();
        if let Some(owner) = &self.owner {
            data.insert(OWNER_FIELD.into(), Value::String(owner.clone()));
        }
        data
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// `bucket/name`, the key of the secondary tables.
fn path_key(bucket: &str, name: &str) -> String {
    format!("{bucket}/{name}")
}

/// Checks a name that came from outside against the shape larder generates.
pub(crate) fn validate_file_name(name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let well_formed = matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'))
        && name.len() <= MAX_NAME_BYTES
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
        && !name.contains("..");
    if well_formed {
        Ok(())
    } else {
        Err(Error::invalid(
            "not a file name: names are generated by larder (letters, digits, `.`, `_`, `-`)",
        ))
    }
}

/// Checks the uploader's filename (kept as metadata) and content type.
fn validate_metadata(filename: &str, content_type: &str) -> Result<()> {
    if filename.is_empty()
        || filename.len() > MAX_FILENAME_BYTES
        || filename.chars().any(char::is_control)
    {
        return Err(Error::invalid(format!(
            "the filename must be 1 to {MAX_FILENAME_BYTES} bytes without control characters"
        )));
    }
    let well_formed = content_type.len() <= 127
        && content_type.split_once('/').is_some_and(|(kind, sub)| {
            let token = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
            };
            // Parameters (`; charset=utf-8`) are kept as sent, if printable.
            let (sub, params) = sub.split_once(';').unwrap_or((sub, ""));
            token(kind)
                && token(sub.trim_end())
                && params.bytes().all(|b| (0x20..0x7f).contains(&b))
        });
    if !well_formed {
        return Err(Error::invalid(
            "the content type must look like `type/subtype` (e.g. image/png)",
        ));
    }
    Ok(())
}

/// The generated name: a UUIDv7 (unique, time-ordered) and the original's safe characters.
/// The unique part of a stored file's name: a time-ordered id, then 64 random bits. A public
/// bucket's download URL is only as secret as its name, and the id alone is guessable from a
/// neighbouring upload (its random part is small and its counter counts up).
fn file_id(store: &Store) -> Result<String> {
    Ok(format!(
        "{}-{}",
        store.new_id(),
        crate::store::ids::random_hex(8)?
    ))
}

fn generated_name(id: &str, filename: &str) -> String {
    let base = filename
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .trim_start_matches('.');
    let mut safe: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    while safe.contains("..") {
        safe = safe.replace("..", ".");
    }
    if safe.is_empty() {
        safe.push_str("file");
    }
    format!("{id}_{safe}")
}

/// The buckets themselves, signed uploads and cleanup: `db.buckets()`.
#[derive(Debug, Clone, Copy)]
pub struct Buckets<'a> {
    pub(crate) store: &'a Store,
}

impl<'a> Buckets<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Buckets { store }
    }
}

impl Buckets<'_> {
    /// Creates a bucket.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed name, `AlreadyExists` if it exists.
    ///
    /// ```
    /// # fn main() -> larder::Result<()> {
    /// let db = larder::Db::in_memory()?;
    /// db.buckets().create("reports", larder::BucketSpec::new())?;
    /// let file = db.bucket("reports").put("q3.txt", "text/plain", &b"all good"[..])?;
    /// assert_eq!(file.size, 8);
    /// assert_eq!(db.bucket("reports").read_to_vec(&file.name)?, b"all good");
    /// # Ok(()) }
    /// ```
    pub fn create(&self, name: &str, spec: BucketSpec) -> Result<BucketInfo> {
        validate_bucket_name(name)?;
        let now = self.store.now_micros();
        self.store.write(|txn| {
            let mut buckets = txn.open_table(BUCKETS)?;
            if buckets.get(name)?.is_some() {
                return Err(Error::already_exists(format!("bucket `{name}`")));
            }
            let stored = StoredBucket {
                spec: spec.clone(),
                created_at: now,
            };
            buckets.insert(name, schema::encode(&stored)?.as_slice())?;
            Ok(bucket_info(name, stored, 0, 0))
        })
    }

    /// Creates a bucket unless it exists; either way returns it as stored (an existing
    /// bucket's configuration is not changed).
    ///
    /// # Errors
    /// `InvalidInput` for a malformed name.
    pub fn ensure(&self, name: &str, spec: BucketSpec) -> Result<BucketInfo> {
        self.ensure_exists(name, spec)?;
        self.info(name)
    }

    /// [`Buckets::ensure`](crate::Buckets::ensure) without the usage scan: a read when the bucket exists (the
    /// dialects call it on every upload).
    pub(crate) fn ensure_exists(&self, name: &str, spec: BucketSpec) -> Result<()> {
        validate_bucket_name(name)?;
        if self
            .store
            .read(|txn| Ok(txn.open_table(BUCKETS)?.get(name)?.is_some()))?
        {
            return Ok(());
        }
        match self.create(name, spec) {
            Err(e) if matches!(e.kind(), ErrorKind::AlreadyExists { .. }) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Replaces a bucket's configuration (its files stay).
    ///
    /// # Errors
    /// `NotFound` if it does not exist.
    pub fn update(&self, name: &str, spec: BucketSpec) -> Result<BucketInfo> {
        validate_bucket_name(name)?;
        self.store.write(|txn| {
            let mut buckets = txn.open_table(BUCKETS)?;
            let mut stored = load_bucket(&buckets, name)?;
            stored.spec = spec.clone();
            buckets.insert(name, schema::encode(&stored)?.as_slice())?;
            drop(buckets);
            let (count, bytes) = usage(&txn.open_table(FILES)?, name)?;
            Ok(bucket_info(name, stored, count, bytes))
        })
    }

    /// Deletes a bucket with all its files, in one transaction.
    ///
    /// # Errors
    /// `NotFound` if it does not exist.
    pub fn delete(&self, name: &str) -> Result<()> {
        validate_bucket_name(name)?;
        self.store.write(|txn| {
            let mut buckets = txn.open_table(BUCKETS)?;
            load_bucket(&buckets, name)?;
            buckets.remove(name)?;
            let names: Vec<String> = {
                let files = txn.open_table(FILES)?;
                files
                    .range((name, "")..)?
                    .map_while(|entry| {
                        let (key, _) = entry.ok()?;
                        let (bucket, file) = key.value();
                        (bucket == name).then(|| file.to_owned())
                    })
                    .collect()
            };
            for file in names {
                remove_file(txn, name, &file)?;
            }
            Ok(())
        })
    }

    /// A bucket's configuration and usage.
    ///
    /// # Errors
    /// `NotFound` if it does not exist.
    pub fn info(&self, name: &str) -> Result<BucketInfo> {
        validate_bucket_name(name)?;
        self.store.read(|txn| {
            let stored = load_bucket(&txn.open_table(BUCKETS)?, name)?;
            let (count, bytes) = usage(&txn.open_table(FILES)?, name)?;
            Ok(bucket_info(name, stored, count, bytes))
        })
    }

    /// Every bucket, by name.
    pub fn list(&self) -> Result<Vec<BucketInfo>> {
        self.store.read(|txn| {
            let buckets = txn.open_table(BUCKETS)?;
            let files = txn.open_table(FILES)?;
            let mut out = Vec::new();
            for entry in buckets.iter()? {
                let (name, bytes) = entry?;
                let stored: StoredBucket = schema::decode(bytes.value())?;
                let (count, size) = usage(&files, name.value())?;
                out.push(bucket_info(name.value(), stored, count, size));
            }
            Ok(out)
        })
    }

    /// Stores a file through a grant made by [`Bucket::grant_upload`]. The bytes must match the
    /// declared size and content type exactly. The grant is used up when the file is stored, so
    /// a failed upload (wrong type or size, a broken connection) may be retried with it until
    /// it expires, and only one file is ever stored from it.
    ///
    /// # Errors
    /// `Forbidden` for an unknown, used or expired grant; `InvalidInput` if the type or size
    /// differ from the declared ones; `TooLarge` beyond the bucket's limit.
    pub fn upload_with_grant(
        &self,
        token: &str,
        content_type: &str,
        reader: impl Read,
    ) -> Result<FileInfo> {
        let mut upload = self.redeem_grant(token, content_type)?;
        upload.copy_from(reader)?;
        upload.finish()
    }

    /// Starts the upload a grant allows (see [`Buckets::upload_with_grant`](crate::Buckets::upload_with_grant)); the grant is used up
    /// by the upload's [`Upload::finish`].
    pub fn redeem_grant(&self, token: &str, content_type: &str) -> Result<Upload> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = self.store.now_micros();
        let refused = || Error::forbidden("this upload link is unknown, used or expired");
        let grant: StoredGrant = self.store.read(|txn| {
            let grants = txn.open_table(UPLOAD_GRANTS)?;
            let grant = grants.get(hash.as_slice())?.ok_or_else(refused)?;
            schema::decode(grant.value())
        })?;
        if grant.expires_at < now {
            return Err(refused());
        }
        if !content_type.eq_ignore_ascii_case(&grant.content_type) {
            return Err(Error::invalid(format!(
                "the content type must be the declared `{}`",
                grant.content_type
            )));
        }
        let bucket = Bucket::new(self.store, &grant.bucket, Principal::system());
        let spec = bucket.load()?;
        Ok(Upload::start(
            bucket,
            grant.name,
            grant.filename,
            grant.content_type,
            grant.owner,
            // The bucket's limit now, which may have been lowered since the grant was made.
            spec.max_file_bytes
                .unwrap_or(self.store.limits().max_file_bytes),
            Some(GrantUse {
                hash,
                size: grant.size,
            }),
        ))
    }

    /// Reclaims what abandoned uploads and detached files hold: staged chunks of uploads that
    /// never finished, expired upload grants, and files attached to documents that no longer
    /// exist (unless their bucket keeps orphans). Freed pages are reused by later writes.
    /// Returns the number of files and staged uploads removed.
    pub fn cleanup(&self) -> Result<u64> {
        let now = self.store.now_micros();
        self.store.write(|txn| {
            let mut removed = purge_staging(txn, Some(now - STAGING_LIFETIME_MICROS))?;
            txn.open_table(UPLOAD_GRANTS)?.retain(|_, bytes| {
                schema::decode::<StoredGrant>(bytes).is_ok_and(|g| g.expires_at >= now)
            })?;
            let attachments: Vec<(String, String)> = {
                let table = txn.open_multimap_table(FILES_BY_ATTACHMENT)?;
                let mut out = Vec::new();
                for entry in table.iter()? {
                    let (key, values) = entry?;
                    for value in values {
                        out.push((key.value().to_owned(), value?.value().to_owned()));
                    }
                }
                out
            };
            for (document, path) in attachments {
                if !document_exists(txn, &document)? {
                    removed += remove_detached(txn, &path)?;
                }
            }
            Ok(removed)
        })
    }
}

fn bucket_info(name: &str, stored: StoredBucket, file_count: u64, total_bytes: u64) -> BucketInfo {
    BucketInfo {
        name: name.to_owned(),
        spec: stored.spec,
        file_count,
        total_bytes,
        created_at: crate::store::clock::format_rfc3339(stored.created_at),
    }
}

fn load_bucket<T>(table: &T, name: &str) -> Result<StoredBucket>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    match table.get(name)? {
        Some(bytes) => schema::decode(bytes.value()),
        None => Err(Error::not_found(format!("bucket `{name}`"))),
    }
}

fn usage<T>(files: &T, bucket: &str) -> Result<(u64, u64)>
where
    T: ReadableTable<(&'static str, &'static str), &'static [u8]>,
{
    let (mut count, mut bytes) = (0, 0);
    for entry in files.range((bucket, "")..)? {
        let (key, value) = entry?;
        if key.value().0 != bucket {
            break;
        }
        let file: StoredFile = schema::decode(value.value())?;
        count += 1;
        bytes += file.size;
    }
    Ok((count, bytes))
}

/// Whether `collection/id` names an existing document.
fn document_exists(txn: &WriteTransaction, document: &str) -> Result<bool> {
    let Some((collection, id)) = document.split_once('/') else {
        return Ok(false);
    };
    if txn
        .open_table(schema::COLLECTIONS)?
        .get(collection)?
        .is_none()
    {
        return Ok(false);
    }
    let docs = crate::store::changes::DocsWriter::open(txn, collection)?;
    Ok(docs.get(id)?.is_some())
}

/// Removes one file, its chunks and its index entries; returns it as it was.
fn remove_file(txn: &WriteTransaction, bucket: &str, name: &str) -> Result<Option<StoredFile>> {
    let file: StoredFile = {
        let mut files = txn.open_table(FILES)?;
        let Some(bytes) = files.remove((bucket, name))? else {
            return Ok(None);
        };
        schema::decode(bytes.value())?
    };
    remove_chunks(txn, &file.blob)?;
    let key = path_key(bucket, name);
    if let Some(owner) = &file.owner {
        txn.open_multimap_table(FILES_BY_OWNER)?
            .remove(owner.as_str(), key.as_str())?;
    }
    if let Some(document) = &file.attached_to {
        txn.open_multimap_table(FILES_BY_ATTACHMENT)?
            .remove(document.as_str(), key.as_str())?;
    }
    Ok(Some(file))
}

fn remove_chunks(txn: &WriteTransaction, blob: &str) -> Result<()> {
    txn.open_table(FILE_CHUNKS)?
        .retain_in((blob, 0u32)..=(blob, u32::MAX), |_, _| false)?;
    Ok(())
}

/// Removes a file found through a secondary table unless its bucket keeps orphans.
fn remove_detached(txn: &WriteTransaction, path: &str) -> Result<u64> {
    let Some((bucket, name)) = path.split_once('/') else {
        return Ok(0);
    };
    let keep = match txn.open_table(BUCKETS)?.get(bucket)? {
        Some(bytes) => {
            schema::decode::<StoredBucket>(bytes.value())?
                .spec
                .keep_orphans
        }
        None => false,
    };
    if keep {
        return Ok(0);
    }
    Ok(u64::from(remove_file(txn, bucket, name)?.is_some()))
}

/// The `bucket/name` of each file attached to document `collection/id`.
fn attached_to(txn: &WriteTransaction, collection: &str, id: &str) -> Result<Vec<String>> {
    let document = format!("{collection}/{id}");
    let table = txn.open_multimap_table(FILES_BY_ATTACHMENT)?;
    let paths = table
        .get(document.as_str())?
        .map(|v| v.map(|v| v.value().to_owned()))
        .collect::<std::result::Result<_, _>>()?;
    Ok(paths)
}

/// Deletes the files attached to a document being deleted (called in its transaction).
pub(crate) fn on_document_deleted(
    txn: &WriteTransaction,
    collection: &str,
    id: &str,
) -> Result<()> {
    let paths = attached_to(txn, collection, id)?;
    for path in paths {
        remove_detached(txn, &path)?;
    }
    Ok(())
}

/// Deletes the files attached to a document that an update stopped mentioning (called in the
/// update's transaction): a file attached to a document belongs to it, so the update that
/// replaces or drops its URL takes it, as deleting the document would. Only files the document
/// mentioned before the update go: a file stored for an update still in flight is left alone.
pub(crate) fn on_document_updated(
    txn: &WriteTransaction,
    collection: &str,
    id: &str,
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) -> Result<()> {
    let paths = attached_to(txn, collection, id)?;
    for path in paths {
        let Some((_, name)) = path.split_once('/') else {
            continue;
        };
        if mentions(before, name) && !mentions(after, name) {
            remove_detached(txn, &path)?;
        }
    }
    Ok(())
}

/// Whether any string in `data` contains `name` (a generated file name: unique and made of
/// characters JSON and URLs carry as they are, so a URL holding it names that file).
fn mentions(data: &Map<String, Value>, name: &str) -> bool {
    fn within(value: &Value, name: &str) -> bool {
        match value {
            Value::String(text) => text.contains(name),
            Value::Array(items) => items.iter().any(|item| within(item, name)),
            Value::Object(map) => map.values().any(|item| within(item, name)),
            _ => false,
        }
    }
    data.values().any(|value| within(value, name))
}

/// The files attached to the documents of `collection`, as (`collection/id`, `bucket/name`).
fn attachments_in(txn: &WriteTransaction, collection: &str) -> Result<Vec<(String, String)>> {
    let prefix = format!("{collection}/");
    let table = txn.open_multimap_table(FILES_BY_ATTACHMENT)?;
    let mut out = Vec::new();
    for entry in table.range(prefix.as_str()..)? {
        let (key, values) = entry?;
        if !key.value().starts_with(&prefix) {
            break;
        }
        for value in values {
            out.push((key.value().to_owned(), value?.value().to_owned()));
        }
    }
    Ok(out)
}

/// Deletes the files of a collection's documents when the collection is deleted.
pub(crate) fn on_collection_deleted(txn: &WriteTransaction, collection: &str) -> Result<()> {
    let paths: Vec<String> = attachments_in(txn, collection)?
        .into_iter()
        .map(|(_, path)| path)
        .collect();
    for path in paths {
        remove_detached(txn, &path)?;
    }
    Ok(())
}

/// Deletes the files a user uploaded when the account is deleted (called in its transaction),
/// unless their bucket keeps orphans. A file attached to a document that still exists belongs
/// to that document: it stays, without an owner, so the document's URL keeps working.
pub(crate) fn on_user_deleted(txn: &WriteTransaction, user_id: &str) -> Result<()> {
    let paths: Vec<String> = {
        let table = txn.open_multimap_table(FILES_BY_OWNER)?;
        table
            .get(user_id)?
            .map(|v| v.map(|v| v.value().to_owned()))
            .collect::<std::result::Result<_, _>>()?
    };
    for path in paths {
        let Some((bucket, name)) = path.split_once('/') else {
            continue;
        };
        let stored: Option<StoredFile> = match txn.open_table(FILES)?.get((bucket, name))? {
            Some(bytes) => Some(schema::decode(bytes.value())?),
            None => None,
        };
        match stored {
            Some(mut file)
                if file
                    .attached_to
                    .as_deref()
                    .map(|document| document_exists(txn, document))
                    .transpose()?
                    .unwrap_or(false) =>
            {
                file.owner = None;
                txn.open_table(FILES)?
                    .insert((bucket, name), schema::encode(&file)?.as_slice())?;
            }
            _ => {
                remove_detached(txn, &path)?;
            }
        }
    }
    txn.open_multimap_table(FILES_BY_OWNER)?
        .remove_all(user_id)?;
    Ok(())
}

/// Removes staged uploads started before `older_than` (all of them if `None`, as on open).
pub(crate) fn purge_staging(txn: &WriteTransaction, older_than: Option<i64>) -> Result<u64> {
    let stale: Vec<String> = {
        let staging = txn.open_table(FILE_STAGING)?;
        let mut out = Vec::new();
        for entry in staging.iter()? {
            let (blob, started) = entry?;
            if older_than.is_none_or(|limit| started.value() < limit) {
                out.push(blob.value().to_owned());
            }
        }
        out
    };
    let mut staging = txn.open_table(FILE_STAGING)?;
    for blob in &stale {
        staging.remove(blob.as_str())?;
        remove_chunks(txn, blob)?;
    }
    Ok(stale.len() as u64)
}

/// The files of one bucket, as seen by one principal. Made by [`Db::bucket`](crate::Db::bucket) or
/// [`Actor::bucket`](crate::Actor::bucket).
#[derive(Clone)]
pub struct Bucket {
    store: Store,
    name: String,
    principal: Principal,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket").field("name", &self.name).finish()
    }
}

impl Bucket {
    /// A handle to bucket `name` acting as `principal`.
    pub(crate) fn new(store: &Store, name: &str, principal: Principal) -> Self {
        Bucket {
            store: store.clone(),
            name: name.to_owned(),
            principal,
        }
    }
}

impl Bucket {
    #[cfg(feature = "http")]
    /// Undoes the uploads a request made before it failed: deletes each of `stored` that is
    /// still exactly as stored (same name, size, checksum and time, which only its upload
    /// handed out), whatever the caller's delete rights, so a refused request leaves nothing
    /// behind. Best effort: a file that cannot be removed stays.
    pub(crate) fn discard(&self, stored: &[FileInfo]) {
        for info in stored.iter().filter(|info| info.bucket == self.name) {
            let _ = self.store.write(|txn| {
                let current: Option<StoredFile> = txn
                    .open_table(FILES)?
                    .get((info.bucket.as_str(), info.name.as_str()))?
                    .map(|bytes| schema::decode(bytes.value()))
                    .transpose()?;
                match current {
                    Some(file) if file.info(&info.bucket, &info.name) == *info => {
                        remove_file(txn, &info.bucket, &info.name).map(|_| ())
                    }
                    _ => Ok(()),
                }
            });
        }
    }
}

impl Bucket {
    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn load(&self) -> Result<BucketSpec> {
        self.store
            .read(|txn| self.spec_in(&txn.open_table(BUCKETS)?))
    }

    /// The bucket's spec, read through a table of the caller's transaction.
    fn spec_in<T>(&self, buckets: &T) -> Result<BucketSpec>
    where
        T: ReadableTable<&'static str, &'static [u8]>,
    {
        validate_bucket_name(&self.name)?;
        Ok(load_bucket(buckets, &self.name)?.spec)
    }

    fn policy_name(&self) -> String {
        format!("files/{}", self.name)
    }

    /// The decision for an action on the bucket or, with `file`, on one of its files.
    fn permit(
        &self,
        spec: &BucketSpec,
        action: Action,
        file: Option<&StoredFile>,
    ) -> Result<Permit> {
        crate::access::auth::still_valid(&self.store, &self.principal)?;
        let name = self.policy_name();
        match file {
            None => policy::authorize(
                &self.principal,
                action,
                &Target::Collection {
                    name: &name,
                    spec: spec.guard(),
                },
            ),
            Some(file) => policy::authorize(
                &self.principal,
                action,
                &Target::Document {
                    name: &name,
                    spec: spec.guard(),
                    data: &file.as_document(),
                },
            ),
        }
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound { .. } => Error::not_found("file"),
            _ => e,
        })
    }

    /// Starts an upload; write its bytes with [`Upload::write`] and store it with
    /// [`Upload::finish`]. The uploader (if a user) becomes the file's owner.
    ///
    /// # Errors
    /// `NotFound` for a missing bucket, `InvalidInput` for a malformed filename or content type,
    /// `Unauthenticated`/`Forbidden` if the bucket's `create` rule refuses the caller.
    pub fn upload(&self, filename: &str, content_type: &str) -> Result<Upload> {
        validate_metadata(filename, content_type)?;
        let spec = self.load()?;
        self.permit(&spec, Action::Create, None)?;
        let name = generated_name(&file_id(&self.store)?, filename);
        Ok(Upload::start(
            self.clone(),
            name,
            filename.to_owned(),
            content_type.to_owned(),
            self.principal.user().map(|u| u.id.clone()),
            spec.max_file_bytes
                .unwrap_or(self.store.limits().max_file_bytes),
            None,
        ))
    }

    /// Stores a file read from `reader` (streamed in chunks, never held whole in memory).
    ///
    /// # Errors
    /// As [`Bucket::upload`]; `TooLarge` beyond the size limit (nothing is stored).
    pub fn put(&self, filename: &str, content_type: &str, reader: impl Read) -> Result<FileInfo> {
        let mut upload = self.upload(filename, content_type)?;
        upload.copy_from(reader)?;
        upload.finish()
    }

    /// A one-time grant to upload one file of exactly `size` bytes and type `content_type`
    /// within `lifetime`, checked against the bucket's `create` rule now, redeemed later by
    /// anyone holding its token ([`Buckets::upload_with_grant`](crate::Buckets::upload_with_grant)): the capability behind signed
    /// upload URLs.
    ///
    /// # Errors
    /// As [`Bucket::upload`]; `TooLarge` if `size` is over the limit, `InvalidInput` if zero.
    pub fn grant_upload(
        &self,
        filename: &str,
        content_type: &str,
        size: u64,
        lifetime: std::time::Duration,
    ) -> Result<UploadGrant> {
        validate_metadata(filename, content_type)?;
        let spec = self.load()?;
        self.permit(&spec, Action::Create, None)?;
        let limit = spec
            .max_file_bytes
            .unwrap_or(self.store.limits().max_file_bytes);
        if size == 0 {
            return Err(Error::invalid("the size must be positive"));
        }
        if size > limit {
            return Err(Error::too_large("file", limit));
        }
        let token = crate::store::ids::random_secret()?;
        let name = generated_name(&file_id(&self.store)?, filename);
        let expires_at = self
            .store
            .now_micros()
            .saturating_add(i64::try_from(lifetime.as_micros()).unwrap_or(i64::MAX));
        let grant = StoredGrant {
            bucket: self.name.clone(),
            name: name.clone(),
            filename: filename.to_owned(),
            content_type: content_type.to_owned(),
            size,
            owner: self.principal.user().map(|u| u.id.clone()),
            expires_at,
        };
        let hash = Sha256::digest(token.as_bytes());
        let now = self.store.now_micros();
        self.store.write(|txn| {
            let mut grants = txn.open_table(UPLOAD_GRANTS)?;
            // Expired grants go as new ones come, so unused links never pile up.
            grants.retain(|_, bytes| {
                schema::decode::<StoredGrant>(bytes).is_ok_and(|g| g.expires_at >= now)
            })?;
            grants.insert(hash.as_slice(), schema::encode(&grant)?.as_slice())?;
            Ok(())
        })?;
        Ok(UploadGrant {
            token,
            bucket: self.name.clone(),
            name,
            expires_at: crate::store::clock::format_rfc3339(expires_at),
        })
    }

    fn stored(&self, txn: &redb::ReadTransaction, name: &str) -> Result<StoredFile> {
        match txn.open_table(FILES)?.get((self.name.as_str(), name))? {
            Some(bytes) => schema::decode(bytes.value()),
            None => Err(Error::not_found("file")),
        }
    }

    /// A file's metadata.
    ///
    /// # Errors
    /// `InvalidInput` for a name larder could not have generated; `NotFound` for a missing
    /// bucket or file, or one the `view` rule hides from the caller.
    pub fn info(&self, name: &str) -> Result<FileInfo> {
        Ok(self.open(name)?.info)
    }

    /// Opens a file for reading: a [`FileReader`] streams it chunk by chunk from one consistent
    /// snapshot (a file deleted meanwhile is still read whole).
    ///
    /// # Errors
    /// As [`Bucket::info`].
    pub fn open(&self, name: &str) -> Result<FileReader> {
        validate_file_name(name)?;
        let txn = self.store.redb().begin_read()?;
        let spec = self.spec_in(&txn.open_table(BUCKETS)?)?;
        let file = self.stored(&txn, name)?;
        self.permit(&spec, Action::View, Some(&file))?;
        let chunks = txn.open_table(FILE_CHUNKS)?;
        Ok(FileReader {
            info: file.info(&self.name, name),
            chunks,
            blob: file.blob,
            chunk_bytes: u64::from(file.chunk_bytes.max(1)),
            position: 0,
            end: file.size,
            current: Vec::new(),
            current_index: None,
        })
    }

    /// A whole file in memory (convenient for small files; use [`Bucket::open`] to stream).
    ///
    /// # Errors
    /// As [`Bucket::info`].
    pub fn read_to_vec(&self, name: &str) -> Result<Vec<u8>> {
        let mut reader = self.open(name)?;
        let mut out = Vec::with_capacity(usize::try_from(reader.info.size).unwrap_or(0));
        reader.read_to_end(&mut out).map_err(Error::storage)?;
        Ok(out)
    }

    /// Deletes a file and returns its metadata.
    ///
    /// # Errors
    /// As [`Bucket::info`]; `Forbidden` if the `delete` rule refuses the caller.
    pub fn delete(&self, name: &str) -> Result<FileInfo> {
        validate_file_name(name)?;
        self.store.write(|txn| {
            let spec = self.spec_in(&txn.open_table(BUCKETS)?)?;
            let file: StoredFile = match txn.open_table(FILES)?.get((self.name.as_str(), name))? {
                Some(bytes) => schema::decode(bytes.value())?,
                None => return Err(Error::not_found("file")),
            };
            // The policy also hides a file the caller may not see (404, not 403).
            self.permit(&spec, Action::Delete, Some(&file))?;
            remove_file(txn, &self.name, name)?;
            Ok(file.info(&self.name, name))
        })
    }

    /// The files the caller may list, oldest first (an owner rule narrows the list to the
    /// caller's own files).
    ///
    /// # Errors
    /// `NotFound` for a missing bucket; refusals of the `list` rule.
    pub fn list(&self) -> Result<Vec<FileInfo>> {
        let spec = self.load()?;
        let permit = self.permit(&spec, Action::List, None)?;
        let only = permit.owner_filter.map(|(_, user)| user);
        self.store.read(|txn| {
            let files = txn.open_table(FILES)?;
            let mut out = Vec::new();
            for entry in files.range((self.name.as_str(), "")..)? {
                let (key, value) = entry?;
                let (bucket, name) = key.value();
                if bucket != self.name {
                    break;
                }
                let file: StoredFile = schema::decode(value.value())?;
                if only.is_none() || file.owner == only {
                    out.push(file.info(bucket, name));
                }
            }
            Ok(out)
        })
    }
}

/// An upload in progress (see [`Bucket::upload`]). Bytes are hashed and staged chunk by chunk;
/// [`Upload::finish`] stores the file in one durable commit. Dropped unfinished, it removes what
/// it staged.
pub struct Upload {
    bucket: Bucket,
    name: String,
    filename: String,
    content_type: String,
    owner: Option<String>,
    attached_to: Option<String>,
    limit: u64,
    /// The grant this upload redeems, if any: used up by `finish`.
    grant: Option<GrantUse>,
    blob: String,
    size: u64,
    chunks: u32,
    hasher: Sha256,
    buffer: Vec<u8>,
    staged: bool,
    done: bool,
}

/// The grant an upload redeems: the hash it is stored under and the size it declared.
struct GrantUse {
    hash: [u8; 32],
    size: u64,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("bucket", &self.bucket.name)
            .field("name", &self.name)
            .field("size", &self.size)
            .finish()
    }
}

impl Upload {
    fn start(
        bucket: Bucket,
        name: String,
        filename: String,
        content_type: String,
        owner: Option<String>,
        limit: u64,
        grant: Option<GrantUse>,
    ) -> Upload {
        let blob = bucket.store.new_id();
        Upload {
            bucket,
            name,
            filename,
            content_type,
            owner,
            attached_to: None,
            limit,
            grant,
            blob,
            size: 0,
            chunks: 0,
            hasher: Sha256::new(),
            buffer: Vec::new(),
            staged: false,
            done: false,
        }
    }

    /// The name the file will have.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The size limit this upload is held to.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Attaches the file to a document: it is deleted with the document (or its collection)
    /// unless its bucket keeps orphans.
    pub fn attach_to(&mut self, collection: &str, id: &str) {
        self.attached_to = Some(format!("{collection}/{id}"));
    }

    /// Adds bytes. Full chunks are staged in their own short transactions.
    ///
    /// # Errors
    /// `TooLarge` past the size limit (the upload is then abandoned).
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        let size = self.size.saturating_add(bytes.len() as u64);
        if size > self.limit {
            return Err(Error::too_large("file", self.limit));
        }
        if let Some(grant) = &self.grant
            && size > grant.size
        {
            return Err(Error::invalid(format!(
                "the upload is longer than the declared {} bytes",
                grant.size
            )));
        }
        self.size += bytes.len() as u64;
        self.hasher.update(bytes);
        while !bytes.is_empty() {
            let room = CHUNK_BYTES - self.buffer.len();
            let (head, rest) = bytes.split_at(room.min(bytes.len()));
            self.buffer.extend_from_slice(head);
            bytes = rest;
            if self.buffer.len() == CHUNK_BYTES {
                self.stage_chunk()?;
            }
        }
        Ok(())
    }

    /// Reads `reader` to its end into the upload.
    ///
    /// # Errors
    /// As [`Upload::write`]; a read error is a storage error.
    pub fn copy_from(&mut self, mut reader: impl Read) -> Result<()> {
        let mut block = vec![0; 64 * 1024];
        loop {
            let read = match reader.read(&mut block) {
                Ok(0) => return Ok(()),
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::storage(e)),
            };
            self.write(&block[..read])?;
        }
    }

    /// Writes the buffered chunk in a transaction of its own. It is not made durable on its
    /// own: the final commit of [`Upload::finish`] makes every chunk durable with the file.
    /// The staging entry records the last progress, so cleanup spares an upload still moving.
    fn stage_chunk(&mut self) -> Result<()> {
        let index = self.chunks;
        let now = self.bucket.store.now_micros();
        self.bucket.store.write_unsynced(|txn| {
            txn.open_table(FILE_STAGING)?
                .insert(self.blob.as_str(), now)?;
            txn.open_table(FILE_CHUNKS)?
                .insert((self.blob.as_str(), index), self.buffer.as_slice())?;
            Ok(())
        })?;
        self.staged = true;
        self.chunks += 1;
        self.buffer.clear();
        Ok(())
    }

    /// Stores the file: metadata, last chunk and index entries in one durable commit.
    ///
    /// # Errors
    /// `InvalidInput` if a grant's declared size was not reached, or if the upload sat idle so
    /// long that [`Buckets::cleanup`](crate::Buckets::cleanup) removed its bytes; `Forbidden` if its grant was used
    /// meanwhile; `NotFound` if the bucket was deleted meanwhile; `AlreadyExists` if the name
    /// was taken meanwhile.
    pub fn finish(mut self) -> Result<FileInfo> {
        if let Some(grant) = &self.grant
            && self.size != grant.size
        {
            return Err(Error::invalid(format!(
                "the upload has {} bytes, not the declared {}",
                self.size, grant.size
            )));
        }
        let stored = StoredFile {
            blob: self.blob.clone(),
            filename: self.filename.clone(),
            content_type: self.content_type.clone(),
            size: self.size,
            sha256: self.hasher.clone().finalize().into(),
            owner: self.owner.clone(),
            attached_to: self.attached_to.clone(),
            created_at: self.bucket.store.now_micros(),
            chunk_bytes: CHUNK_BYTES as u32,
        };
        let bucket = self.bucket.name.clone();
        let key = path_key(&bucket, &self.name);
        let info = self.bucket.store.write(|txn| {
            load_bucket(&txn.open_table(BUCKETS)?, &bucket)?;
            if let Some(grant) = &self.grant
                && txn
                    .open_table(UPLOAD_GRANTS)?
                    .remove(grant.hash.as_slice())?
                    .is_none()
            {
                return Err(Error::forbidden(
                    "this upload link is unknown, used or expired",
                ));
            }
            let mut files = txn.open_table(FILES)?;
            if files.get((bucket.as_str(), self.name.as_str()))?.is_some() {
                return Err(Error::already_exists("file"));
            }
            files.insert(
                (bucket.as_str(), self.name.as_str()),
                schema::encode(&stored)?.as_slice(),
            )?;
            if !self.buffer.is_empty() {
                txn.open_table(FILE_CHUNKS)?
                    .insert((self.blob.as_str(), self.chunks), self.buffer.as_slice())?;
            }
            let was_staged = txn
                .open_table(FILE_STAGING)?
                .remove(self.blob.as_str())?
                .is_some();
            if self.staged && !was_staged {
                return Err(Error::invalid(
                    "the upload sat idle too long and its bytes were cleaned up; upload again",
                ));
            }
            if let Some(owner) = &stored.owner {
                txn.open_multimap_table(FILES_BY_OWNER)?
                    .insert(owner.as_str(), key.as_str())?;
            }
            if let Some(document) = &stored.attached_to {
                txn.open_multimap_table(FILES_BY_ATTACHMENT)?
                    .insert(document.as_str(), key.as_str())?;
            }
            Ok(stored.info(&bucket, &self.name))
        })?;
        self.done = true;
        Ok(info)
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.done || !self.staged {
            return;
        }
        // Best effort: if this fails too, the next open or `cleanup_files` purges the chunks.
        let blob = self.blob.clone();
        let _ = self.bucket.store.write_unsynced(|txn| {
            txn.open_table(FILE_STAGING)?.remove(blob.as_str())?;
            remove_chunks(txn, &blob)
        });
    }
}

/// Reads a stored file chunk by chunk from one snapshot (see [`Bucket::open`]). Implements
/// [`Read`]; [`FileReader::set_range`] narrows it to a byte range (HTTP range requests).
pub struct FileReader {
    info: FileInfo,
    chunks: redb::ReadOnlyTable<(&'static str, u32), &'static [u8]>,
    blob: String,
    chunk_bytes: u64,
    position: u64,
    end: u64,
    current: Vec<u8>,
    current_index: Option<u32>,
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("info", &self.info)
            .field("position", &self.position)
            .field("end", &self.end)
            .finish()
    }
}

impl FileReader {
    /// The file's metadata.
    pub fn info(&self) -> &FileInfo {
        &self.info
    }

    /// Restricts reading to bytes `start..end` of the file.
    ///
    /// # Errors
    /// `InvalidInput` unless `start <= end <= size`.
    pub fn set_range(&mut self, start: u64, end: u64) -> Result<()> {
        if start > end || end > self.info.size {
            return Err(Error::invalid("the range is outside the file"));
        }
        self.position = start;
        self.end = end;
        Ok(())
    }

    /// Bytes left to read.
    pub fn remaining(&self) -> u64 {
        self.end - self.position
    }

    /// The next piece of the file (up to the end of the current chunk), or `None` at the end.
    ///
    /// # Errors
    /// A storage error, or a missing chunk (a damaged file).
    pub fn next_piece(&mut self) -> Result<Option<Vec<u8>>> {
        let mut piece = vec![0; CHUNK_BYTES];
        let read = self.fill(&mut piece)?;
        if read == 0 {
            return Ok(None);
        }
        piece.truncate(read);
        Ok(Some(piece))
    }

    fn fill(&mut self, out: &mut [u8]) -> Result<usize> {
        if self.position >= self.end || out.is_empty() {
            return Ok(0);
        }
        let index = u32::try_from(self.position / self.chunk_bytes)
            .map_err(|_| Error::internal(std::io::Error::other("file offset out of range")))?;
        if self.current_index != Some(index) {
            let chunk = self
                .chunks
                .get((self.blob.as_str(), index))?
                .ok_or_else(|| Error::internal(std::io::Error::other("a file chunk is missing")))?;
            self.current.clear();
            self.current.extend_from_slice(chunk.value());
            self.current_index = Some(index);
        }
        let offset = usize::try_from(self.position % self.chunk_bytes).unwrap_or(usize::MAX);
        let available = self.current.get(offset..).unwrap_or_default();
        let wanted = usize::try_from(self.end - self.position).unwrap_or(usize::MAX);
        let count = available.len().min(out.len()).min(wanted);
        if count == 0 {
            return Err(Error::internal(std::io::Error::other(
                "a file chunk is short",
            )));
        }
        out[..count].copy_from_slice(&available[..count]);
        self.position += count as u64;
        Ok(count)
    }
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.fill(buf).map_err(std::io::Error::other)
    }
}

/// Re-keys the files attached to a renamed collection's documents (called in the rename's
/// transaction): their `collection/id` entries and each file's `attached_to`, so they still go
/// with their documents.
pub(crate) fn on_collection_renamed(txn: &WriteTransaction, from: &str, to: &str) -> Result<()> {
    let attached = attachments_in(txn, from)?;
    let mut attachments = txn.open_multimap_table(FILES_BY_ATTACHMENT)?;
    let mut files = txn.open_table(FILES)?;
    for (document, path) in attached {
        let moved = format!("{to}/{}", &document[from.len() + 1..]);
        attachments.remove(document.as_str(), path.as_str())?;
        attachments.insert(moved.as_str(), path.as_str())?;
        let Some((bucket, name)) = path.split_once('/') else {
            continue;
        };
        let file: Option<StoredFile> = files
            .get((bucket, name))?
            .map(|bytes| schema::decode(bytes.value()))
            .transpose()?;
        if let Some(mut file) = file {
            file.attached_to = Some(moved);
            files.insert((bucket, name), schema::encode(&file)?.as_slice())?;
        }
    }
    Ok(())
}

/// Removes the staged chunks of uploads a crash cut off (writes nothing when there are none).
pub(crate) fn purge_unfinished_uploads(redb: &redb::Database) -> Result<()> {
    use redb::ReadableTableMetadata;
    if redb
        .begin_read()?
        .open_table(crate::store::schema::FILE_STAGING)?
        .is_empty()?
    {
        return Ok(());
    }
    let mut txn = redb.begin_write()?;
    txn.set_two_phase_commit(true);
    purge_staging(&txn, None)?;
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_keep_only_safe_characters() {
        assert_eq!(generated_name("id", "photo.png"), "id_photo.png");
        assert_eq!(generated_name("id", "../../etc/passwd"), "id_passwd");
        assert_eq!(generated_name("id", "C:\\Users\\me\\a b.txt"), "id_a_b.txt");
        assert_eq!(generated_name("id", "..."), "id_file");
        assert_eq!(generated_name("id", "é€.pdf"), "id___.pdf");
        assert!(validate_file_name(&generated_name("0192", &"x".repeat(300))).is_ok());
    }

    #[test]
    fn names_from_outside_must_have_the_generated_shape() {
        for bad in [
            "",
            "..",
            "../x",
            "/etc/passwd",
            "a/b",
            "a\0b",
            ".hidden",
            "a..b",
            &"a".repeat(200),
        ] {
            assert!(validate_file_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_file_name("0192e5a0-7c2b-7def-8a00-000000000001_a.png").is_ok());
    }

    #[test]
    fn content_types_are_checked() {
        for good in [
            "image/png",
            "text/plain; charset=utf-8",
            "application/vnd.api+json",
        ] {
            assert!(validate_metadata("a", good).is_ok(), "{good}");
        }
        for bad in ["", "png", "text/", "/x", "text/plain\r\nX-Evil: 1", "a b/c"] {
            assert!(validate_metadata("a", bad).is_err(), "{bad:?}");
        }
        assert!(validate_metadata("a\0b", "text/plain").is_err());
        assert!(validate_metadata(&"a".repeat(256), "text/plain").is_err());
    }
}
