//! The database handle: opening (with the format check), the one write path, and ids.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use redb::{MultimapTableHandle, ReadableDatabase, ReadableTable, TableHandle};

use std::time::Duration;

use crate::data::documents::TargetCache;
use crate::error::{Error, ErrorKind, Result};
use crate::identity::api_keys::KeyCache;
use crate::identity::sessions::{DEFAULT_SESSION_LIFETIME, IdentityCache};
use crate::identity::throttle::{Throttle, ThrottleConfig};
use crate::identity::tokens::KeyRing;
use crate::project::mail::{Mailer, SmsSender};
use crate::store::clock::{self, Clock, SystemClock};
use crate::store::group_commit::GroupCommit;
use crate::store::schema::{self, COLLECTIONS, FORMAT_KEY, FORMAT_VERSION, META};

/// The first bytes of every redb file.
const REDB_MAGIC: &[u8] = b"redb\x1A\x0A\xA9\x0D\x0A";

/// Default limit on a document's JSON size.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// A handle to one larder database. Cheap to clone; clones share the database and can be sent
/// to other threads.
///
/// ```
/// # fn main() -> larder::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let db = larder::Db::open(dir.path().join("app.redb"))?;
/// let handle = db.clone();
/// std::thread::spawn(move || handle.list_collections()).join().unwrap()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    redb: redb::Database,
    /// The queue through which every write shares commits.
    writers: GroupCommit,
    /// Collections' read targets, kept between reads.
    targets: TargetCache,
    clock: Arc<dyn Clock>,
    max_document_bytes: usize,
    max_file_bytes: u64,
    path: Option<PathBuf>,
    ids: Mutex<uuid::ContextV7>,
    keys: KeyRing,
    identities: IdentityCache,
    key_cache: KeyCache,
    throttle: Throttle,
    session_lifetime: Duration,
    public_profile_fields: Vec<String>,
    mailer: Option<Arc<dyn Mailer>>,
    sms_sender: Option<Arc<dyn SmsSender>>,
    /// Where the HTTP front serves this database, once started (for links to its own pages).
    served_url: parking_lot::RwLock<Option<String>>,
    /// Whether redb's integrity check ran on open (and so passed: a failure refuses the open).
    verified_on_open: bool,
    /// Whether a write failed fatally: redb refuses writes from then on until a reopen.
    writes_failed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.inner.path)
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

/// Options for opening a [`Db`].
///
/// ```
/// # fn main() -> larder::Result<()> {
/// let clock = larder::ManualClock::new();
/// let db = larder::Db::builder()
///     .clock(clock.clone())
///     .max_document_bytes(64 * 1024)
///     .in_memory()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DbBuilder {
    clock: Arc<dyn Clock>,
    max_document_bytes: usize,
    max_file_bytes: u64,
    cache_bytes: usize,
    verify_on_open: bool,
    throttle: ThrottleConfig,
    session_lifetime: Duration,
    public_profile_fields: Vec<String>,
    mailer: Option<Arc<dyn Mailer>>,
    sms_sender: Option<Arc<dyn SmsSender>>,
}

impl Default for DbBuilder {
    fn default() -> Self {
        DbBuilder {
            clock: Arc::new(SystemClock),
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            max_file_bytes: crate::files::DEFAULT_MAX_FILE_BYTES,
            cache_bytes: 64 * 1024 * 1024,
            verify_on_open: true,
            throttle: ThrottleConfig::default(),
            session_lifetime: DEFAULT_SESSION_LIFETIME,
            public_profile_fields: ["name", "avatarUrl", "bio"].map(String::from).to_vec(),
            mailer: None,
            sms_sender: None,
        }
    }
}

impl DbBuilder {
    /// The clock used for every timestamp and expiry (default: [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The largest document accepted, in bytes of JSON (default 1 MiB).
    pub fn max_document_bytes(mut self, bytes: usize) -> Self {
        self.max_document_bytes = bytes;
        self
    }

    /// The largest file accepted in a bucket without a limit of its own, in bytes (default
    /// 10 MiB).
    pub fn max_file_bytes(mut self, bytes: u64) -> Self {
        self.max_file_bytes = bytes;
        self
    }

    /// Delivers mail beyond the outbox (which records every message whatever the mailer).
    pub fn mailer(mut self, mailer: impl Mailer + 'static) -> Self {
        self.mailer = Some(Arc::new(mailer));
        self
    }

    /// Sends text messages beyond the SMS outbox (phone login codes).
    pub fn sms_sender(mut self, sender: impl SmsSender + 'static) -> Self {
        self.sms_sender = Some(Arc::new(sender));
        self
    }

    /// The size of redb's page cache (default 64 MiB).
    pub fn cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Whether [`open`](Self::open) verifies the checksum of every page of an existing file
    /// (default on). A file damaged outside larder (a bit flip, a truncated copy, a failing
    /// disk) then fails to open with `Corrupted` instead of serving wrong data or failing
    /// later; the price is one read of the whole file per open. Turn it off for very large
    /// files on trusted storage; crash recovery runs either way.
    pub fn verify_on_open(mut self, verify: bool) -> Self {
        self.verify_on_open = verify;
        self
    }

    /// Login and signup throttles (on by default, see [`ThrottleConfig`]).
    pub fn throttle(mut self, config: ThrottleConfig) -> Self {
        self.throttle = config;
        self
    }

    /// The absolute lifetime of a session and its refresh tokens (default 30 days).
    pub fn session_lifetime(mut self, lifetime: Duration) -> Self {
        self.session_lifetime = lifetime;
        self
    }

    /// The profile `data` fields a public profile shows (default: `name`, `avatarUrl`, `bio`).
    pub fn public_profile_fields(
        mut self,
        fields: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.public_profile_fields = fields.into_iter().map(Into::into).collect();
        self
    }

    /// Opens the database file at `path`, creating it when it does not exist.
    ///
    /// # Errors
    /// - `NotALarderFile` if the file exists and is not a larder database,
    /// - `UnsupportedFormat` if it was written by a newer larder,
    /// - `Corrupted` if it is a damaged database (see [`verify_on_open`](Self::verify_on_open)),
    /// - `AlreadyOpen` if it is open already (in this process or another),
    /// - `Storage` on I/O errors.
    ///
    /// In the first three cases the file is left byte-identical. A file that was not closed
    /// cleanly (a crash, a power loss) is recovered to its last durable commit; a damaged file
    /// that was closed cleanly is never "repaired" by rolling it back: it is refused.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Db> {
        let path = path.as_ref();
        let mut existing = probe_existing_file(path)?;
        if existing == Probe::New {
            create_atomically(path)?;
            // Looked at again: another process may have put a file there meanwhile.
            existing = probe_existing_file(path)?;
        }
        let mut builder = redb::Builder::new();
        builder
            .set_cache_size(self.cache_bytes)
            .set_check_integrity_on_open(self.verify_on_open);
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
        let verified = self.verify_on_open;
        self.finish(redb, Some(path.to_path_buf()), verified)
    }

    /// Opens (or creates) a database kept in a custom redb storage backend instead of a file:
    /// your own storage, or one that injects faults in tests. An empty backend becomes a new
    /// database. There is no file to probe first, so a backend holding another redb database is
    /// refused with `NotALarderFile` only after redb opened (and possibly recovered) it.
    ///
    /// ```
    /// # fn main() -> larder::Result<()> {
    /// let db = larder::Db::builder().open_backend(redb::backends::InMemoryBackend::new())?;
    /// assert!(db.list_collections()?.is_empty());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `NotALarderFile`, `UnsupportedFormat` or `Corrupted` as for [`open`](Self::open);
    /// `Storage` when the backend fails.
    pub fn open_backend(self, backend: impl redb::StorageBackend) -> Result<Db> {
        let redb = redb::Builder::new()
            .set_cache_size(self.cache_bytes)
            .set_check_integrity_on_open(self.verify_on_open)
            .create_with_backend(backend)?;
        {
            let txn = redb.begin_read()?;
            check_format(&txn)?;
        }
        let verified = self.verify_on_open;
        self.finish(redb, None, verified)
    }

    /// Opens a fresh database held in memory only (redb's in-memory backend).
    ///
    /// # Errors
    /// Only storage failures.
    pub fn in_memory(self) -> Result<Db> {
        let redb = redb::Builder::new()
            .set_cache_size(self.cache_bytes)
            .create_with_backend(redb::backends::InMemoryBackend::new())?;
        self.finish(redb, None, true)
    }

    /// `verified`: whether redb's integrity check ran on open (an in-memory database starts
    /// empty, with nothing to check).
    fn finish(self, redb: redb::Database, path: Option<PathBuf>, verified: bool) -> Result<Db> {
        initialize(&redb)?;
        purge_unfinished_uploads(&redb)?;
        let keys = KeyRing::load_or_create(&redb, clock::to_micros(self.clock.now()))?;
        Ok(Db {
            inner: Arc::new(Inner {
                redb,
                writers: GroupCommit::default(),
                targets: TargetCache::default(),
                clock: self.clock,
                max_document_bytes: self.max_document_bytes,
                max_file_bytes: self.max_file_bytes,
                path,
                ids: Mutex::new(uuid::ContextV7::new()),
                keys,
                identities: IdentityCache::default(),
                key_cache: KeyCache::default(),
                throttle: Throttle::new(self.throttle),
                session_lifetime: self.session_lifetime,
                public_profile_fields: self.public_profile_fields,
                mailer: self.mailer,
                sms_sender: self.sms_sender,
                served_url: parking_lot::RwLock::new(None),
                verified_on_open: verified,
                writes_failed: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }
}

/// What [`Db::health`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// A new read transaction could be opened and read. After a fatal storage error redb
    /// refuses new ones until the file is reopened (readers already open carry on).
    pub readable: bool,
    /// No write has failed fatally since the file was opened.
    pub writable: bool,
    /// redb's integrity check ran when the file was opened (and passed: a failure refuses the
    /// open). False when it was turned off with [`DbBuilder::verify_on_open`].
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

/// Removes the staged chunks of uploads a crash cut off (writes nothing when there are none).
fn purge_unfinished_uploads(redb: &redb::Database) -> Result<()> {
    use redb::ReadableTableMetadata;
    if redb
        .begin_read()?
        .open_table(schema::FILE_STAGING)?
        .is_empty()?
    {
        return Ok(());
    }
    let mut txn = redb.begin_write()?;
    txn.set_two_phase_commit(true);
    crate::files::purge_staging(&txn, None)?;
    txn.commit()?;
    Ok(())
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
    txn.commit()?;
    Ok(())
}

impl Db {
    /// Opens (or creates) the database file at `path` with default options.
    /// See [`DbBuilder::open`].
    ///
    /// # Errors
    /// As [`DbBuilder::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Db> {
        DbBuilder::default().open(path)
    }

    /// A fresh database in memory, with default options.
    ///
    /// # Errors
    /// Only storage failures.
    pub fn in_memory() -> Result<Db> {
        DbBuilder::default().in_memory()
    }

    /// Options for opening a database.
    pub fn builder() -> DbBuilder {
        DbBuilder::default()
    }

    /// The path of the database file (`None` for an in-memory database).
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The clock this database uses.
    pub fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
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
    pub fn health(&self) -> Health {
        let readable = self
            .read(|txn| {
                txn.open_table(crate::store::schema::META)?;
                Ok(())
            })
            .is_ok();
        Health {
            readable,
            writable: !self
                .inner
                .writes_failed
                .load(std::sync::atomic::Ordering::Relaxed),
            verified_on_open: self.inner.verified_on_open,
        }
    }

    /// Verifies the checksums of the whole file (redb's integrity check). Needs the only handle:
    /// fails with `InvalidInput` while clones of this `Db` are alive.
    ///
    /// # Errors
    /// `InvalidInput` while other handles exist; `Storage` if the file is corrupt beyond repair.
    pub fn check_integrity(self) -> Result<bool> {
        let mut inner = Arc::try_unwrap(self.inner).map_err(|_| {
            Error::invalid("the integrity check needs the only handle to the database")
        })?;
        inner.redb.check_integrity().map_err(Error::from)
    }

    /// Rewrites the file so that the space freed by deletes (documents, files, cleanup) is
    /// given back to the file system: the file shrinks. Without it freed pages are only reused
    /// by later writes. Needs the only handle, with no reader or upload in progress; returns
    /// whether anything was moved. Run [`Db::cleanup_files`] first to free what abandoned
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
    pub fn compact(&mut self) -> Result<bool> {
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

    pub(crate) fn redb(&self) -> &redb::Database {
        &self.inner.redb
    }

    pub(crate) fn now_micros(&self) -> i64 {
        clock::to_micros(self.inner.clock.now())
    }

    pub(crate) fn key_ring(&self) -> &KeyRing {
        &self.inner.keys
    }

    pub(crate) fn identities(&self) -> &IdentityCache {
        &self.inner.identities
    }

    pub(crate) fn targets(&self) -> &TargetCache {
        &self.inner.targets
    }

    pub(crate) fn key_cache(&self) -> &KeyCache {
        &self.inner.key_cache
    }

    pub(crate) fn throttle(&self) -> &Throttle {
        &self.inner.throttle
    }

    pub(crate) fn session_lifetime(&self) -> Duration {
        self.inner.session_lifetime
    }

    pub(crate) fn public_profile_fields(&self) -> &[String] {
        &self.inner.public_profile_fields
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

    pub(crate) fn sms_sender(&self) -> Option<&dyn SmsSender> {
        self.inner.sms_sender.as_deref()
    }

    pub(crate) fn mailer(&self) -> Option<&dyn Mailer> {
        self.inner.mailer.as_deref()
    }

    pub(crate) fn max_document_bytes(&self) -> usize {
        self.inner.max_document_bytes
    }

    pub(crate) fn max_file_bytes(&self) -> u64 {
        self.inner.max_file_bytes
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

    /// Remembers a fatal storage error for [`Db::health`]: writes stay refused until a reopen.
    fn noting_failure<T>(&self, outcome: Result<T>) -> Result<T> {
        if outcome.as_ref().is_err_and(Error::is_fatal) {
            self.inner
                .writes_failed
                .store(true, std::sync::atomic::Ordering::Relaxed);
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
