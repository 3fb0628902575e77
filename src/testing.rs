//! A real backend fixture for tests (feature `testing`): an in-memory database on a manual
//! clock, served on `127.0.0.1:0`, with a known admin key.

use std::net::SocketAddr;

use crate::db::Db;
use crate::error::Result;
use crate::http::{Server, ServerHandle};
use crate::identity::api_keys::{KeyKind, NewApiKey};
use crate::store::clock::ManualClock;

/// An in-process larder for downstream tests: in memory, on `127.0.0.1:0`, on a manual clock
/// (move time with `server.clock.advance(…)` instead of sleeping), with a secret key at hand.
///
/// ```
/// # fn main() -> larder::Result<()> {
/// let server = larder::testing::TestServer::start()?;
/// assert!(server.url().starts_with("http://127.0.0.1:"));
/// assert!(server.admin_key.starts_with("sk_live_"));
/// # Ok(()) }
/// ```
pub struct TestServer {
    /// The database behind the server, for setting up and checking state directly.
    pub db: Db,
    /// The clock every timestamp and expiry uses.
    pub clock: ManualClock,
    /// A secret (admin) key valid on this server.
    pub admin_key: String,
    /// A publishable key valid on this server.
    pub publishable_key: String,
    handle: ServerHandle,
}

impl TestServer {
    /// Starts a fresh server.
    ///
    /// # Errors
    /// Only if no loopback port can be bound.
    pub fn start() -> Result<TestServer> {
        let clock = ManualClock::new();
        let db = Db::builder().clock(clock.clone()).in_memory()?;
        let admin_key = db
            .keys()
            .create(NewApiKey::new(KeyKind::Secret, "test admin"))?
            .secret;
        let publishable_key = db
            .keys()
            .create(NewApiKey::new(KeyKind::Publishable, "test client"))?
            .secret;
        let handle = Server::start(db.clone(), "127.0.0.1:0")?;
        Ok(TestServer {
            db,
            clock,
            admin_key,
            publishable_key,
            handle,
        })
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        self.handle.url()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.handle.addr()
    }

    /// Every mail message the server sent (one-time codes, verification links, …).
    ///
    /// # Errors
    /// Only storage failures.
    pub fn outbox(&self) -> Result<Vec<crate::project::mail::OutboxMessage>> {
        self.db.mail().outbox()
    }

    /// Stops the server (dropping it does the same).
    pub fn shutdown(self) {
        self.handle.shutdown();
    }
}
