//! Shared fixtures for the integration tests.
#![allow(dead_code)]

#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "cli")]
pub mod sdk;
pub mod sim_disk;
#[cfg(feature = "http")]
pub mod sse;
#[cfg(feature = "http")]
pub mod wire;

use std::path::PathBuf;

use larder::{CollectionSpec, Db, ErrorKind, ManualClock};

/// A database on a temporary file, with a manual clock. The directory lives as long as this.
pub struct TestDb {
    pub db: Db,
    pub clock: ManualClock,
    pub path: PathBuf,
    pub dir: tempfile::TempDir,
}

impl TestDb {
    pub fn new() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.redb");
        let clock =
            ManualClock::at(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000));
        let db = Db::builder().clock(clock.clone()).open(&path).unwrap();
        TestDb {
            db,
            clock,
            path,
            dir,
        }
    }

    /// Closes and reopens the file, keeping the clock.
    pub fn reopen(self) -> TestDb {
        let TestDb {
            db,
            clock,
            path,
            dir,
        } = self;
        drop(db);
        let db = Db::builder().clock(clock.clone()).open(&path).unwrap();
        TestDb {
            db,
            clock,
            path,
            dir,
        }
    }

    pub fn with_collection(self, name: &str, spec: CollectionSpec) -> TestDb {
        self.db.collections().create(name, spec).unwrap();
        self
    }
}

/// An in-memory database with a manual clock.
pub fn memory_db() -> (Db, ManualClock) {
    let clock =
        ManualClock::at(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000));
    (
        Db::builder().clock(clock.clone()).in_memory().unwrap(),
        clock,
    )
}

/// The kind of an error result, for terse assertions.
pub fn kind<T: std::fmt::Debug>(result: larder::Result<T>) -> ErrorKind {
    result.expect_err("expected an error").kind().clone()
}

pub fn is_invalid<T: std::fmt::Debug>(result: larder::Result<T>) -> bool {
    matches!(kind(result), ErrorKind::InvalidInput { .. })
}
