//! The composition root: [`Db`] opens the store, installs the state of every layer and hands
//! out the capability handles. Nothing below imports it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::access::principal::Principal;
use crate::data::collections::TargetCache;
use crate::error::Result;
use crate::identity::api_keys::KeyCache;
use crate::identity::sessions::{DEFAULT_SESSION_LIFETIME, IdentityCache};
use crate::identity::throttle::{Throttle, ThrottleConfig};
use crate::identity::tokens::KeyRing;
use crate::project::mail::{Mailer, SmsSender};
use crate::store::changes::Retention;
use crate::store::clock::{Clock, SystemClock};
use crate::store::{self, Cascades, Health, Limits, Opened, Store};

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
/// std::thread::spawn(move || handle.collections().list()).join().unwrap()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Db {
    store: Store,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.store.path())
            .field("clock", &self.store.clock())
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
    retention: Retention,
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
            retention: Retention::default(),
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

    /// How much history the change feed keeps for subscribers that resume from a position
    /// (default: seven days, a million batches and 256 MiB, whichever comes first). A
    /// subscriber resuming from further back is told to start over (`Reset`), never served a
    /// gap.
    pub fn feed_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
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
        let opened = store::open_file(path.as_ref(), self.cache_bytes, self.verify_on_open)?;
        self.finish(opened)
    }

    /// Opens (or creates) a database kept in a custom redb storage backend instead of a file:
    /// your own storage, or one that injects faults in tests. An empty backend becomes a new
    /// database. There is no file to probe first, so a backend holding another redb database is
    /// refused with `NotALarderFile` only after redb opened (and possibly recovered) it.
    ///
    /// ```
    /// # fn main() -> larder::Result<()> {
    /// let db = larder::Db::builder().open_backend(redb::backends::InMemoryBackend::new())?;
    /// assert!(db.collections().list()?.is_empty());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `NotALarderFile`, `UnsupportedFormat` or `Corrupted` as for [`open`](Self::open);
    /// `Storage` when the backend fails.
    pub fn open_backend(self, backend: impl redb::StorageBackend) -> Result<Db> {
        let opened = store::open_backend(backend, self.cache_bytes, self.verify_on_open)?;
        self.finish(opened)
    }

    /// Opens a fresh database held in memory only (redb's in-memory backend).
    ///
    /// # Errors
    /// Only storage failures.
    pub fn in_memory(self) -> Result<Db> {
        let opened = store::open_in_memory(self.cache_bytes)?;
        self.finish(opened)
    }

    /// Sets the store up: the uploads a crash cut off are purged, and every layer's in-memory
    /// state is installed.
    fn finish(self, opened: Opened) -> Result<Db> {
        crate::files::purge_unfinished_uploads(&opened.redb)?;
        let limits = Limits {
            max_document_bytes: self.max_document_bytes,
            max_file_bytes: self.max_file_bytes,
            retention: self.retention,
        };
        let mut store = Store::new(opened, self.clock, limits)?;
        let ring = KeyRing::load_or_create(store.redb(), store.now_micros())?;
        store.install(ring)?;
        store.install(IdentityCache::default())?;
        store.install(KeyCache::default())?;
        store.install(Throttle::new(self.throttle))?;
        store.install(crate::identity::sessions::SessionConfig {
            lifetime: self.session_lifetime,
            public_profile_fields: self.public_profile_fields,
        })?;
        store.install(crate::project::mail::Mailers {
            mailer: self.mailer,
            sms_sender: self.sms_sender,
        })?;
        store.install(TargetCache::default())?;
        store.install(crate::data::feed::FeedRing::default())?;
        store.install(Cascades {
            user_deleted: crate::files::on_user_deleted,
        })?;
        Ok(Db { store })
    }
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
        self.store.path()
    }

    /// The clock this database uses.
    pub fn clock(&self) -> &dyn Clock {
        self.store.clock()
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
        self.store.health()
    }

    /// Verifies the checksums of the whole file (redb's integrity check). Needs the only handle:
    /// fails with `InvalidInput` while clones of this `Db` are alive.
    ///
    /// # Errors
    /// `InvalidInput` while other handles exist; `Storage` if the file is corrupt beyond repair.
    pub fn check_integrity(self) -> Result<bool> {
        self.store.check_integrity()
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
    pub fn compact(&mut self) -> Result<bool> {
        self.store.compact()
    }

    /// The project's settings and environment variables.
    pub fn project(&self) -> crate::project::settings::Project<'_> {
        crate::project::settings::Project::new(&self.store)
    }

    /// Outgoing mail and text messages, and their outboxes.
    pub fn mail(&self) -> crate::project::mail::Mail<'_> {
        crate::project::mail::Mail::new(&self.store)
    }

    /// App users' accounts: signup, login, profiles, one-time codes and administration.
    pub fn users(&self) -> crate::identity::accounts::Users<'_> {
        crate::identity::accounts::Users::new(&self.store)
    }

    /// Sessions and their tokens.
    pub fn sessions(&self) -> crate::identity::sessions::Sessions<'_> {
        crate::identity::sessions::Sessions::new(&self.store)
    }

    /// API keys and their grants.
    pub fn keys(&self) -> crate::identity::api_keys::Keys<'_> {
        crate::identity::api_keys::Keys::new(&self.store)
    }

    /// The keys that sign access tokens, and their public JWKS.
    pub fn signing_keys(&self) -> crate::identity::tokens::SigningKeys<'_> {
        crate::identity::tokens::SigningKeys::new(&self.store)
    }

    /// The collections themselves: create, change, rename, list, delete.
    pub fn collections(&self) -> crate::data::collections::Collections<'_> {
        crate::data::collections::Collections::new(&self.store)
    }

    /// A handle to the documents of collection `name`, as values of type `T`
    /// (`serde_json::Value` when unannotated: `let notes: Collection = db.collection("notes")`),
    /// with the embedding program's full rights.
    pub fn collection<T: serde::Serialize + serde::de::DeserializeOwned + 'static>(
        &self,
        name: &str,
    ) -> crate::data::documents::Collection<T> {
        crate::data::documents::Collection::new(&self.store, name, Principal::system())
    }

    /// The buckets themselves, signed uploads and cleanup.
    pub fn buckets(&self) -> crate::files::Buckets<'_> {
        crate::files::Buckets::new(&self.store)
    }

    /// A handle to the files of bucket `name`, with the embedding program's full rights.
    pub fn bucket(&self, name: &str) -> crate::files::Bucket {
        crate::files::Bucket::new(&self.store, name, Principal::system())
    }

    /// A collection's documents, acting as `principal` (see [`Actor`](crate::Actor)).
    pub(crate) fn collection_as<T: serde::Serialize + serde::de::DeserializeOwned + 'static>(
        &self,
        name: &str,
        principal: Principal,
    ) -> crate::data::documents::Collection<T> {
        crate::data::documents::Collection::new(&self.store, name, principal)
    }

    /// A bucket's files, acting as `principal`.
    pub(crate) fn bucket_as(&self, name: &str, principal: Principal) -> crate::files::Bucket {
        crate::files::Bucket::new(&self.store, name, principal)
    }

    /// The store under this database.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }
}
