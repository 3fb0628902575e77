//! The one error type of the crate.
//!
//! Every fallible call returns [`Error`]; [`Error::kind`] tells the caller what happened in terms
//! of what they can do about it. Messages are written for the caller: they never carry storage
//! internals, file paths of other tables, or secrets. The underlying cause of a storage failure
//! stays reachable through [`std::error::Error::source`] for logging by the embedding program.

use std::fmt;

/// The result type of every fallible larder call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from larder. Cheap to move (one pointer); inspect it with [`Error::kind`].
pub struct Error(Box<Inner>);

struct Inner {
    kind: ErrorKind,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// What went wrong, named for what the caller can do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input was refused; fix it and retry. Nothing was changed.
    InvalidInput {
        /// Why the input was refused, in words meant for the caller.
        message: String,
    },
    /// The named thing does not exist (or is not visible to the caller).
    NotFound {
        /// What was looked for, e.g. ``collection `notes` ``.
        what: String,
    },
    /// The named thing exists already; nothing was overwritten.
    AlreadyExists {
        /// What clashed, e.g. ``document `abc` in `notes` ``.
        what: String,
    },
    /// The input is larger than the configured limit.
    TooLarge {
        /// What was too large.
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The database file is already open, in this process or another one.
    AlreadyOpen,
    /// No valid credential was presented (missing, malformed, expired or revoked token or key,
    /// or a wrong password). The message never says which.
    Unauthenticated {
        /// A generic reason, safe to show.
        message: String,
    },
    /// The caller is known but not allowed to do this.
    Forbidden {
        /// Why, in words safe to show.
        message: String,
    },
    /// The password was right, and the account needs a second factor: a code was mailed to it;
    /// finish with [`Users::complete_second_factor`](crate::Users::complete_second_factor).
    SecondFactorRequired,
    /// The account exists (or the address is taken) but must confirm its email first: check the
    /// mailbox, confirm with the code, then sign in. (Signup with email verification on.)
    VerificationRequired,
    /// Too many attempts; retry after the given number of seconds.
    RateLimited {
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
    },
    /// The file exists but is not a larder database; it was left untouched.
    NotALarderFile,
    /// The file was written by a newer larder with a format this version cannot read; it was
    /// left untouched.
    UnsupportedFormat {
        /// The format version found in the file.
        found: u64,
        /// The newest format version this build reads.
        supported: u64,
    },
    /// The disk is full, or the file reached the size the system allows it. Nothing was
    /// written; free space, then reopen the database (the failed write left it refusing
    /// writes, see [`Error::is_fatal`]).
    StorageFull,
    /// The file is damaged: changed outside larder, truncated, or hit by a disk fault. It was
    /// not repaired, so nothing in it was rolled back or dropped; restore it from a backup.
    Corrupted,
    /// The storage failed (I/O error, corruption, full disk). If [`Error::is_fatal`] is true the
    /// database refuses further writes until it is reopened.
    Storage {
        /// Whether the database must be reopened before it accepts writes again.
        fatal: bool,
    },
    /// A feature of a hosted service that larder does not offer (it needs the network, or
    /// larder has no such store). Nothing was changed.
    Unsupported {
        /// What is not offered, and what to do instead, in words meant for the caller.
        message: String,
    },
    /// A bug in larder; please report it. No state was changed.
    Internal,
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// Whether the database must be closed and reopened before it accepts writes again (a commit
    /// failed half-way; redb refuses writes until repaired by a reopen).
    pub fn is_fatal(&self) -> bool {
        matches!(self.0.kind, ErrorKind::Storage { fatal: true })
    }

    pub(crate) fn new(kind: ErrorKind) -> Self {
        Error(Box::new(Inner { kind, source: None }))
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error(Box::new(Inner {
            kind,
            source: Some(Box::new(source)),
        }))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput {
            message: message.into(),
        })
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound { what: what.into() })
    }

    pub(crate) fn already_exists(what: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists { what: what.into() })
    }

    pub(crate) fn too_large(what: impl Into<String>, limit: u64) -> Self {
        Self::new(ErrorKind::TooLarge {
            what: what.into(),
            limit,
        })
    }

    pub(crate) fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated {
            message: message.into(),
        })
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden {
            message: message.into(),
        })
    }

    /// Only the dialects meet features of hosted services that larder does not offer.
    #[cfg(feature = "http")]
    pub(crate) fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported {
            message: message.into(),
        })
    }

    pub(crate) fn rate_limited(retry_after_secs: u64) -> Self {
        Self::new(ErrorKind::RateLimited {
            retry_after_secs: retry_after_secs.max(1),
        })
    }

    pub(crate) fn storage(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::with_source(ErrorKind::Storage { fatal: false }, source)
    }

    pub(crate) fn fatal_storage(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::with_source(ErrorKind::Storage { fatal: true }, source)
    }

    pub(crate) fn internal(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::with_source(ErrorKind::Internal, source)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::InvalidInput { message } => write!(f, "{message}"),
            ErrorKind::NotFound { what } => write!(f, "{what} not found"),
            ErrorKind::AlreadyExists { what } => write!(f, "{what} already exists"),
            ErrorKind::TooLarge { what, limit } => {
                write!(f, "{what} is larger than the limit of {limit} bytes")
            }
            ErrorKind::Unauthenticated { message }
            | ErrorKind::Forbidden { message }
            | ErrorKind::Unsupported { message } => write!(f, "{message}"),
            ErrorKind::RateLimited { retry_after_secs } => {
                write!(f, "too many attempts; retry in {retry_after_secs} s")
            }
            ErrorKind::VerificationRequired => {
                write!(f, "check your mailbox to confirm the address, then sign in")
            }
            ErrorKind::SecondFactorRequired => {
                write!(
                    f,
                    "a second factor is required: enter the code sent by mail"
                )
            }
            ErrorKind::AlreadyOpen => write!(
                f,
                "the database file is already open (in this process or another one)"
            ),
            ErrorKind::NotALarderFile => {
                write!(
                    f,
                    "the file is not a larder database; it was left untouched"
                )
            }
            ErrorKind::UnsupportedFormat { found, supported } => write!(
                f,
                "the file has format version {found}, newer than the supported version \
                 {supported}; upgrade larder to open it (the file was left untouched)"
            ),
            ErrorKind::StorageFull => write!(f, "no space left for the database file"),
            ErrorKind::Corrupted => write!(
                f,
                "the database file is damaged; it was left as it is (restore it from a backup)"
            ),
            ErrorKind::Storage { fatal: false } => write!(f, "storage error"),
            ErrorKind::Storage { fatal: true } => write!(
                f,
                "storage error; the database refuses writes until it is reopened"
            ),
            ErrorKind::Internal => write!(f, "internal error"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.kind.fmt(f)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Error");
        debug.field("kind", &self.0.kind);
        if let Some(source) = &self.0.source {
            debug.field("source", source);
        }
        debug.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error::new(kind)
    }
}

// redb's error family. Every one of them is a storage failure from the caller's point of view,
// except the few that our own code prevents (a table type mismatch means a bug in `store/schema.rs`).

impl From<redb::StorageError> for Error {
    fn from(error: redb::StorageError) -> Self {
        match error {
            redb::StorageError::ValueTooLarge(limit) => Error::with_source(
                ErrorKind::TooLarge {
                    what: "the value".into(),
                    limit: limit as u64,
                },
                error,
            ),
            redb::StorageError::Io(ref io) if no_space(io) => {
                Error::with_source(ErrorKind::StorageFull, error)
            }
            redb::StorageError::Corrupted(_) => Error::with_source(ErrorKind::Corrupted, error),
            // After a failed write redb poisons the database until it is reopened.
            redb::StorageError::PreviousIo | redb::StorageError::LockPoisoned(_) => {
                Error::fatal_storage(error)
            }
            other => Error::storage(other),
        }
    }
}

impl From<redb::TransactionError> for Error {
    fn from(error: redb::TransactionError) -> Self {
        match error {
            redb::TransactionError::Storage(storage) => storage.into(),
            other => Error::internal(other),
        }
    }
}

impl From<redb::TableError> for Error {
    fn from(error: redb::TableError) -> Self {
        match error {
            redb::TableError::Storage(storage) => storage.into(),
            other => Error::internal(other),
        }
    }
}

impl From<redb::CommitError> for Error {
    fn from(error: redb::CommitError) -> Self {
        match error {
            redb::CommitError::Storage(redb::StorageError::Io(ref io)) if no_space(io) => {
                Error::with_source(ErrorKind::StorageFull, error)
            }
            // A failed commit leaves redb refusing writes until the database is reopened.
            other => Error::fatal_storage(other),
        }
    }
}

/// A full disk (`ENOSPC`) or a file over its size limit (`EFBIG`, e.g. `RLIMIT_FSIZE`): the
/// caller's operator can act on these, unlike other I/O errors.
fn no_space(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull
            | std::io::ErrorKind::FileTooLarge
            | std::io::ErrorKind::QuotaExceeded
    )
}

impl From<redb::DatabaseError> for Error {
    fn from(error: redb::DatabaseError) -> Self {
        match error {
            redb::DatabaseError::DatabaseAlreadyOpen
            | redb::DatabaseError::LockProtocolMismatch => {
                Error::with_source(ErrorKind::AlreadyOpen, error)
            }
            redb::DatabaseError::Storage(storage) => storage.into(),
            other => Error::storage(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_one_pointer() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn storage_message_hides_the_cause_but_keeps_it_as_source() {
        let io = std::io::Error::other("/secret/path exploded");
        let error: Error = redb::StorageError::Io(io).into();
        assert_eq!(error.to_string(), "storage error");
        assert!(!error.is_fatal());
        let source = std::error::Error::source(&error).map(ToString::to_string);
        assert!(source.is_some_and(|s| s.contains("exploded")));
    }

    #[test]
    fn a_full_disk_is_its_own_kind() {
        for code in [28, 27] {
            // ENOSPC, EFBIG
            let io = std::io::Error::from_raw_os_error(code);
            let error: Error = redb::StorageError::Io(io).into();
            assert_eq!(*error.kind(), ErrorKind::StorageFull);
            let io = std::io::Error::from_raw_os_error(code);
            let error: Error = redb::CommitError::Storage(redb::StorageError::Io(io)).into();
            assert_eq!(*error.kind(), ErrorKind::StorageFull);
        }
    }

    #[test]
    fn failed_commit_is_fatal() {
        let error: Error = redb::CommitError::TransactionPoisoned.into();
        assert!(error.is_fatal());
    }
}
