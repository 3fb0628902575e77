//! The store layer: the redb file, its tables and record layouts, the one write path with group
//! commit, ids and the clock. It knows nothing of the layers above it: the in-memory state those
//! keep beside the file (caches, throttles, mailers) rides along as typed [`Store::state`]
//! values, so every handle of every layer carries just one `Store`.

pub(crate) mod changes;
pub(crate) mod clock;
pub(crate) mod group_commit;
pub(crate) mod ids;
pub(crate) mod names;
pub(crate) mod schema;

use std::any::Any;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};
use redb::{MultimapTableHandle, ReadableDatabase, ReadableTable, TableHandle};

use crate::error::{Error, ErrorKind, Result};
use changes::{ChangeBatch, FeedSignal, LogState, Retention};
use clock::Clock;
use group_commit::GroupCommit;
use schema::{COLLECTIONS, FORMAT_KEY, FORMAT_VERSION, META};

/// The first bytes of every redb file.
const REDB_MAGIC: &[u8] = b"redb\x1A\x0A\xA9\x0D\x0A";

/// The opened file and what every layer reads of it. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub(crate) struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

struct Inner {
    redb: redb::Database,
    /// The queue through which every write shares commits.
    writers: GroupCommit,
    clock: Arc<dyn Clock>,
    limits: Limits,
    path: Option<PathBuf>,
    ids: Mutex<uuid::ContextV7>,
    /// Where the HTTP front serves this database, once started (for links to its own pages).
    served_url: RwLock<Option<String>>,
    /// Whether redb's integrity check ran on open (and so passed: a failure refuses the open).
    verified_on_open: bool,
    /// Whether a write failed fatally: redb refuses writes from then on until a reopen.
    writes_failed: AtomicBool,
    /// The newest committed change and the wake-up of its subscribers.
    feed: FeedSignal,
    /// The in-memory state of the layers above, one value per type, installed on open.
    states: Vec<Box<dyn Any + Send + Sync>>,
}

/// What must happen in the same transaction when a record goes away that a higher layer keeps
/// references to. The lower layer deletes and calls the hook; the root (`db.rs`) fills the hooks
/// in on open, since a lower layer may not name a higher one.
#[derive(Clone, Copy)]
pub(crate) struct Cascades {
    /// A user was deleted (identity): their uploads go, except files attached to a document
    /// that outlives the account, which lose their owner (files).
    pub(crate) user_deleted: fn(&redb::WriteTransaction, &str) -> Result<()>,
}

/// Size limits on what the store accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The largest document, in bytes of JSON.
    pub(crate) max_document_bytes: usize,
    /// The largest file in a bucket without a limit of its own.
    pub(crate) max_file_bytes: u64,
    /// How much history the change log keeps.
    pub(crate) retention: Retention,
}

/// How a redb database was opened: its file (if any) and whether redb verified it.
pub(crate) struct Opened {
    pub(crate) redb: redb::Database,
    pub(crate) path: Option<PathBuf>,
    /// Whether redb's integrity check ran on open (an in-memory database starts empty, with
    /// nothing to check).
    pub(crate) verified: bool,
}

/// Opens the database file at `path` (creating it when missing), with the format check.
///
/// # Errors
/// - `NotALarderFile` if the file exists and is not a larder database,
/// - `UnsupportedFormat` if it was written by a newer larder,
/// - `Corrupted` if it is a damaged database,
/// - `AlreadyOpen` if it is open already (in this process or another),
/// - `Storage` on I/O errors.
///
/// In the first three cases the file is left byte-identical. A file that was not closed
/// cleanly (a crash, a power loss) is recovered to its last durable commit; a damaged file
/// that was closed cleanly is never "repaired" by rolling it back: it is refused.
pub(crate) fn open_file(path: &Path, cache_bytes: usize, verify: bool) -> Result<Opened> {
    let mut existing = probe_existing_file(path)?;
    if existing == Probe::New {
        create_atomically(path)?;
        // Looked at again: another process may have put a file there meanwhile.
        existing = probe_existing_file(path)?;
    }
    let mut builder = redb::Builder::new();
    builder
        .set_cache_size(cache_bytes)
        .set_check_integrity_on_open(verify);
    if existing == Probe::Larder {
        // A file closed cleanly needs no recovery. If its last commit does not verify, redb
        // would fall back to the commit before it: that is damage, not a crash, and
        // silently dropping a commit is not ours to decide. redb reports that step (and
        // only that one) at progress 0.3.
        builder.set_repair_callback(|session| {
            if (0.2..0.5).contains(&session.progress()) {
                session.abort();
            }
        });
    }
    let redb = match builder.create(path) {
        Ok(redb) => redb,
        Err(e @ redb::DatabaseError::RepairAborted) => {
            return Err(Error::with_source(ErrorKind::Corrupted, e));
        }
        Err(e) => return Err(e.into()),
    };
    if existing == Probe::NeedsRepairCheck {
        // The file is a redb file that was not closed cleanly; redb has repaired it on open,
        // and only now can its tables be read.
        let txn = redb.begin_read()?;
        check_format(&txn)?;
    }
    initialize(&redb)?;
    Ok(Opened {
        redb,
        path: Some(path.to_path_buf()),
        verified: verify,
    })
}

/// Opens (or creates) a database in a custom redb storage backend.
///
/// # Errors
/// `NotALarderFile`, `UnsupportedFormat` or `Corrupted` as for [`open_file`]; `Storage` when
/// the backend fails.
pub(crate) fn open_backend(
    backend: impl redb::StorageBackend,
    cache_bytes: usize,
    verify: bool,
) -> Result<Opened> {
    let redb = redb::Builder::new()
        .set_cache_size(cache_bytes)
        .set_check_integrity_on_open(verify)
        .create_with_backend(backend)?;
    {
        let txn = redb.begin_read()?;
        check_format(&txn)?;
    }
    initialize(&redb)?;
    Ok(Opened {
        redb,
        path: None,
        verified: verify,
    })
}

/// A fresh database held in memory only (redb's in-memory backend).
///
/// # Errors
/// Only storage failures.
pub(crate) fn open_in_memory(cache_bytes: usize) -> Result<Opened> {
    let redb = redb::Builder::new()
        .set_cache_size(cache_bytes)
        .create_with_backend(redb::backends::InMemoryBackend::new())?;
    initialize(&redb)?;
    Ok(Opened {
        redb,
        path: None,
        verified: true,
    })
}

impl Store {
    /// The store over an opened database.
    ///
    /// # Errors
    /// `Storage` if the change log's position cannot be read.
    pub(crate) fn new(opened: Opened, clock: Arc<dyn Clock>, limits: Limits) -> Result<Store> {
        let log = {
            let txn = opened.redb.begin_read()?;
            LogState::read(&txn)?
        };
        Ok(Store {
            inner: Arc::new(Inner {
                redb: opened.redb,
                writers: GroupCommit::default(),
                clock,
                limits,
                path: opened.path,
                ids: Mutex::new(uuid::ContextV7::new()),
                served_url: RwLock::new(None),
                verified_on_open: opened.verified,
                writes_failed: AtomicBool::new(false),
                feed: FeedSignal::new(log.last_seq),
                states: Vec::new(),
            }),
        })
    }

    /// Adds the in-memory state of a layer above (one value per type), while this store is
    /// still being set up.
    ///
    /// # Errors
    /// `Internal` once the store is shared.
    pub(crate) fn install<T: Any + Send + Sync>(&mut self, state: T) -> Result<()> {
        let inner = Arc::get_mut(&mut self.inner)
            .ok_or_else(|| Error::internal(SetUp("state installed after the store was shared")))?;
        inner.states.retain(|s| !s.is::<T>());
        inner.states.push(Box::new(state));
        Ok(())
    }

    /// The state of type `T` a layer installed on open.
    ///
    /// # Errors
    /// `Internal` if no layer installed one (a setup mistake, never a caller's).
    pub(crate) fn state<T: Any + Send + Sync>(&self) -> Result<&T> {
        self.inner
            .states
            .iter()
            .find_map(|s| s.downcast_ref::<T>())
            .ok_or_else(|| Error::internal(SetUp(std::any::type_name::<T>())))
    }

    /// The underlying redb database.
    pub(crate) fn redb(&self) -> &redb::Database {
        &self.inner.redb
    }

    /// The path of the database file (`None` in memory or in a custom backend).
    pub(crate) fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The clock of every timestamp and expiry.
    pub(crate) fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    /// Now, in microseconds since the Unix epoch, on the database clock.
    pub(crate) fn now_micros(&self) -> i64 {
        clock::to_micros(self.inner.clock.now())
    }

    /// The size limits.
    pub(crate) fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// Records where the HTTP front serves this database.
    #[cfg(feature = "http")]
    pub(crate) fn set_served_url(&self, url: String) {
        *self.inner.served_url.write() = Some(url);
    }

    /// Where the HTTP front serves this database, if it does.
    pub(crate) fn served_url(&self) -> Option<String> {
        self.inner.served_url.read().clone()
    }

    /// The state of the storage now, for health checks: whether a read succeeds, whether
    /// writes still work (after a fatal I/O error redb refuses them until the file is reopened)
    /// and whether the file passed redb's integrity check when it was opened. Cheap: one read
    /// transaction, no disk scan.
    ///
    /// ```
    /// # fn main() -> larder::Result<()> {
    /// let health = larder::Db::in_memory()?.health();
    /// assert!(health.is_ok() && health.verified_on_open);
    /// # Ok(()) }
    /// ```
    pub(crate) fn health(&self) -> Health {
        let readable = self
            .read(|txn| {
                txn.open_table(schema::META)?;
                Ok(())
            })
            .is_ok();
        Health {
            readable,
            writable: !self.inner.writes_failed.load(Ordering::Relaxed),
            verified_on_open: self.inner.verified_on_open,
        }
    }

    /// Verifies the checksums of the whole file (redb's integrity check). Needs the only handle:
    /// fails with `InvalidInput` while clones of this `Db` are alive.
    ///
    /// # Errors
    /// `InvalidInput` while other handles exist; `Storage` if the file is corrupt beyond repair.
    pub(crate) fn check_integrity(self) -> Result<bool> {
        let mut inner = Arc::try_unwrap(self.inner).map_err(|_| {
            Error::invalid("the integrity check needs the only handle to the database")
        })?;
        inner.redb.check_integrity().map_err(Error::from)
    }

    /// Rewrites the file so that the space freed by deletes (documents, files, cleanup) is
    /// given back to the file system: the file shrinks. Without it freed pages are only reused
    /// by later writes. Needs the only handle, with no reader or upload in progress; returns
    /// whether anything was moved. Run [`Buckets::cleanup`](crate::Buckets::cleanup) first to free what abandoned
    /// uploads hold.
    ///
    /// ```
    /// # fn main() -> larder::Result<()> {
    /// let dir = tempfile::tempdir().expect("a temporary directory");
    /// let mut db = larder::Db::open(dir.path().join("app.redb"))?;
    /// db.compact()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` while other handles (or readers, or unfinished uploads) exist; `Storage`
    /// if the rewrite fails, which leaves the file as it was.
    pub(crate) fn compact(&mut self) -> Result<bool> {
        let busy = || {
            Error::invalid(
                "compaction needs the only handle to the database, with nothing reading or \
                 uploading",
            )
        };
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(busy)?;
        inner.redb.compact().map_err(|error| match error {
            redb::CompactionError::Storage(storage) => Error::from(storage),
            _ => busy(),
        })
    }

    /// A new UUIDv7 document id from the database clock, monotonic within this handle.
    pub(crate) fn new_id(&self) -> String {
        use uuid::ClockSequence;

        /// OS randomness drawn 256 bytes at a time: `Uuid::new_v7` makes one `getrandom`
        /// system call per id, which was a tenth of a bulk insert.
        struct Pool {
            bytes: [u8; 256],
            used: usize,
        }
        thread_local! {
            static POOL: std::cell::RefCell<Pool> = const {
                std::cell::RefCell::new(Pool { bytes: [0; 256], used: 256 })
            };
        }
        let random = POOL.with_borrow_mut(|pool| {
            if pool.used + 4 > pool.bytes.len() {
                getrandom::fill(&mut pool.bytes).ok()?;
                pool.used = 0;
            }
            let mut word = [0; 4];
            word.copy_from_slice(&pool.bytes[pool.used..pool.used + 4]);
            pool.used += 4;
            Some(u32::from_be_bytes(word))
        });

        let micros = self.now_micros().max(0).unsigned_abs();
        let seconds = micros / 1_000_000;
        let nanos = u32::try_from((micros % 1_000_000) * 1000).unwrap_or(0);
        let context = self.inner.ids.lock();
        let Some(random) = random else {
            // No randomness to buffer: let uuid draw (and report) it itself.
            let timestamp = uuid::Timestamp::from_unix(&*context, seconds, nanos);
            return uuid::Uuid::new_v7(timestamp).to_string();
        };
        // The context keeps ids monotonic: a 42-bit counter, reseeded at random in each new
        // millisecond and incremented within one (its time only moves forwards).
        let (counter, seconds, nanos) = context.generate_timestamp_sequence(seconds, nanos);
        drop(context);
        let millis = seconds
            .saturating_mul(1000)
            .saturating_add(u64::from(nanos / 1_000_000));
        // The bits `Uuid::new_v7` lays out for this context (RFC 9562 "fixed-length dedicated
        // counter"): the counter's top 12 bits in rand_a, its low 30 bits after the variant,
        // then 32 random bits. The builder sets the version and variant.
        let mut rest = [0; 10];
        rest[..2].copy_from_slice(&((counter >> 30) as u16).to_be_bytes());
        rest[2..6].copy_from_slice(&((counter & 0x3FFF_FFFF) as u32).to_be_bytes());
        rest[6..].copy_from_slice(&random.to_be_bytes());
        let uuid = uuid::Builder::from_unix_timestamp_millis(millis, &rest).into_uuid();
        // Formatting into a stack buffer skips `fmt` (to_string).
        let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
        uuid.hyphenated().encode_lower(&mut text).to_owned()
    }

    /// The one write path: runs `op` in a write transaction and returns once it is committed
    /// durably (two-phase commit, fsync). If `op` fails nothing it wrote is kept.
    ///
    /// Concurrent writers share commits (see `group_commit`): `op` may run more than once, each
    /// time in a fresh transaction, so it must not change anything outside the transaction.
    pub(crate) fn write<T>(
        &self,
        op: impl FnMut(&redb::WriteTransaction) -> Result<T>,
    ) -> Result<T> {
        self.noting_failure(self.inner.writers.run(&self.inner.redb, true, op))
    }

    /// [`Store::write`] for an operation that records what it changes in `changes` (see
    /// `changes`): the batch is appended to the change log in the same transaction, and its
    /// sequence number is published to subscribers once the commit has ended.
    pub(crate) fn write_changes<T>(
        &self,
        op: impl FnMut(&redb::WriteTransaction, &mut ChangeBatch) -> Result<T>,
    ) -> Result<T> {
        self.write_changes_then(op, || {})
    }

    /// [`Store::write_changes`], running `committed` after the commit (whether or not it
    /// succeeded) and before subscribers are woken: caches a subscriber reads on waking are
    /// invalidated there, so it never checks a new change against an old cache entry.
    pub(crate) fn write_changes_then<T>(
        &self,
        mut op: impl FnMut(&redb::WriteTransaction, &mut ChangeBatch) -> Result<T>,
        committed: impl FnOnce(),
    ) -> Result<T> {
        let retention = self.inner.limits.retention;
        let outcome = self.write(|txn| {
            let mut batch = ChangeBatch::default();
            let value = op(txn, &mut batch)?;
            let seq = changes::append(txn, &mut batch, self.now_micros(), retention)?;
            Ok((value, seq))
        });
        committed();
        let (value, seq) = outcome?;
        if let Some(seq) = seq {
            self.inner.feed.published(seq);
        }
        Ok(value)
    }

    /// The newest committed change and the wake-up of its subscribers.
    pub(crate) fn feed(&self) -> &FeedSignal {
        &self.inner.feed
    }

    /// Remembers a fatal storage error for [`Db::health`]: writes stay refused until a reopen.
    fn noting_failure<T>(&self, outcome: Result<T>) -> Result<T> {
        if outcome.as_ref().is_err_and(Error::is_fatal) {
            self.inner.writes_failed.store(true, Ordering::Relaxed);
        }
        outcome
    }

    /// Runs `op` in a write transaction committed without waiting for the disk: for staged file
    /// chunks, which nobody may read until a later durable commit (`write`) makes them part of a
    /// file. A crash loses them, and the next open purges what it left.
    pub(crate) fn write_unsynced<T>(
        &self,
        op: impl FnMut(&redb::WriteTransaction) -> Result<T>,
    ) -> Result<T> {
        self.noting_failure(self.inner.writers.run(&self.inner.redb, false, op))
    }

    /// Runs `op` on a consistent snapshot.
    pub(crate) fn read<T>(
        &self,
        op: impl FnOnce(&redb::ReadTransaction) -> Result<T>,
    ) -> Result<T> {
        let txn = self.inner.redb.begin_read()?;
        op(&txn)
    }
}

/// A mistake in how the layers set the store up.
#[derive(Debug)]
struct SetUp(&'static str);

impl std::fmt::Display for SetUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the store was not set up: {}", self.0)
    }
}

impl std::error::Error for SetUp {}

/// What `Db::health` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// A new read transaction could be opened and read. After a fatal storage error redb
    /// refuses new ones until the file is reopened (readers already open carry on).
    pub readable: bool,
    /// No write has failed fatally since the file was opened.
    pub writable: bool,
    /// redb's integrity check ran when the file was opened (and passed: a failure refuses the
    /// open). False when it was turned off with `DbBuilder::verify_on_open`.
    pub verified_on_open: bool,
}

impl Health {
    /// Reads and writes both work.
    pub fn is_ok(&self) -> bool {
        self.readable && self.writable
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// No file, or an empty one: a new database.
    New,
    /// A larder file of a supported format.
    Larder,
    /// A redb file that needs crash recovery before its tables can be read.
    NeedsRepairCheck,
}

/// Looks at an existing file without modifying it: the redb magic bytes, then (read-only) the
/// format-version row. Refuses foreign and newer files before redb ever opens them for writing.
fn probe_existing_file(path: &Path) -> Result<Probe> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Probe::New),
        Err(e) => return Err(Error::storage(e)),
    };
    let mut head = Vec::with_capacity(REDB_MAGIC.len());
    (&mut file)
        .take(REDB_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(Error::storage)?;
    drop(file);
    if head.is_empty() {
        return Ok(Probe::New);
    }
    if head != REDB_MAGIC {
        return Err(ErrorKind::NotALarderFile.into());
    }
    let readonly = match redb::Builder::new().open_read_only(path) {
        Ok(db) => db,
        Err(redb::DatabaseError::RepairAborted) => return Ok(Probe::NeedsRepairCheck),
        Err(
            e @ (redb::DatabaseError::DatabaseAlreadyOpen
            | redb::DatabaseError::LockProtocolMismatch),
        ) => {
            return Err(Error::with_source(ErrorKind::AlreadyOpen, e));
        }
        // The magic bytes matched: a redb file that cannot be read is a damaged one.
        Err(e @ redb::DatabaseError::Storage(_)) => {
            return Err(Error::with_source(ErrorKind::Corrupted, e));
        }
        Err(e) => return Err(Error::with_source(ErrorKind::NotALarderFile, e)),
    };
    let txn = readonly.begin_read()?;
    check_format(&txn)?;
    Ok(Probe::Larder)
}

/// Creates a new database file in one step: built and synced under a temporary name beside
/// `path`, then linked into place. redb initialises a file by growing it before it writes its
/// magic bytes, so a crash in between left a zero-filled file that every later open refused as
/// foreign; now a crash leaves no file (or the empty one) and at worst the temporary file, which
/// the next creation replaces.
fn create_atomically(path: &Path) -> Result<()> {
    let mut name = path
        .file_name()
        .ok_or_else(|| Error::invalid("the database path must name a file"))?
        .to_os_string();
    name.push(".larder-creating");
    let temp = path.with_file_name(name);
    match std::fs::remove_file(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::storage(e)),
    }
    {
        let redb = redb::Builder::new()
            .set_cache_size(1024 * 1024)
            .create(&temp)?;
        // Durable commits: the temporary file is complete on disk before it gets its name.
        initialize(&redb)?;
    }
    let placed = match std::fs::hard_link(&temp, path) {
        // No-clobber: if a file appeared meanwhile, it is left alone (unless empty).
        Ok(()) => std::fs::remove_file(&temp).map_err(Error::storage),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
                std::fs::rename(&temp, path).map_err(Error::storage)
            } else {
                std::fs::remove_file(&temp).map_err(Error::storage)
            }
        }
        // File systems without hard links.
        Err(_) => std::fs::rename(&temp, path).map_err(Error::storage),
    };
    placed?;
    // The new name must survive a crash too.
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(Error::storage)
}

/// Checks the format-version row of an existing, non-empty database.
fn check_format(txn: &redb::ReadTransaction) -> Result<()> {
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) => {
            // An empty redb file (no tables at all) is a database we created but never
            // initialised, e.g. a crash right after creation; anything else is foreign.
            let empty = txn.list_tables()?.next().is_none();
            return if empty {
                Ok(())
            } else {
                Err(ErrorKind::NotALarderFile.into())
            };
        }
        Err(e) => return Err(Error::with_source(ErrorKind::NotALarderFile, e)),
    };
    match meta.get(FORMAT_KEY)?.map(|v| v.value()) {
        Some(found) if found > FORMAT_VERSION => Err(ErrorKind::UnsupportedFormat {
            found,
            supported: FORMAT_VERSION,
        }
        .into()),
        Some(_) => Ok(()),
        None => Err(ErrorKind::NotALarderFile.into()),
    }
}

/// Writes the format row and the fixed tables of a new database (no-op on an existing one).
fn initialize(redb: &redb::Database) -> Result<()> {
    {
        // Opening an up-to-date file writes nothing.
        let txn = redb.begin_read()?;
        let existing: std::collections::HashSet<String> =
            txn.list_tables()?.map(|t| t.name().to_owned()).collect();
        let multimaps: std::collections::HashSet<String> = txn
            .list_multimap_tables()?
            .map(|t| t.name().to_owned())
            .collect();
        if schema::FIXED_TABLES
            .iter()
            .all(|name| existing.contains(*name))
            && schema::FIXED_MULTIMAP_TABLES
                .iter()
                .all(|name| multimaps.contains(*name))
        {
            return Ok(());
        }
    }
    let mut txn = redb.begin_write()?;
    txn.set_two_phase_commit(true);
    {
        let mut meta = txn.open_table(META)?;
        if meta.get(FORMAT_KEY)?.is_none() {
            meta.insert(FORMAT_KEY, FORMAT_VERSION)?;
        }
        txn.open_table(COLLECTIONS)?;
        txn.open_table(schema::USERS)?;
        txn.open_table(schema::USERS_BY_EMAIL)?;
        txn.open_table(schema::USERS_BY_USERNAME)?;
        txn.open_table(schema::SESSIONS)?;
        txn.open_multimap_table(schema::SESSIONS_BY_USER)?;
        txn.open_table(schema::REFRESH_TOKENS)?;
        txn.open_table(schema::SIGNING_KEYS)?;
        txn.open_table(schema::SETTINGS)?;
        txn.open_table(schema::API_KEYS)?;
        txn.open_table(schema::API_KEYS_BY_HASH)?;
        txn.open_table(schema::OUTBOX)?;
        txn.open_table(schema::ENV_VARS)?;
        txn.open_table(schema::OTP_CODES)?;
        txn.open_table(schema::OTP_LINKS)?;
        txn.open_table(schema::USERS_BY_PHONE)?;
        txn.open_table(schema::SMS_OUTBOX)?;
        txn.open_table(schema::BUCKETS)?;
        txn.open_table(schema::FILES)?;
        txn.open_table(schema::FILE_CHUNKS)?;
        txn.open_table(schema::FILE_STAGING)?;
        txn.open_table(schema::UPLOAD_GRANTS)?;
        txn.open_multimap_table(schema::FILES_BY_OWNER)?;
        txn.open_multimap_table(schema::FILES_BY_ATTACHMENT)?;
    }
    changes::ensure_epoch(&txn)?;
    txn.commit()?;
    Ok(())
}
