//! A real backend fixture for tests (feature `testing`): an in-memory database on a manual
//! clock, served on `127.0.0.1:0`, with a known admin key.

use std::net::SocketAddr;

use serde_json::Value;

use crate::db::Db;
use crate::error::Result;
use crate::http::{Server, ServerHandle};
use crate::identity::api_keys::{KeyKind, NewApiKey};
use crate::identity::sessions::SignedIn;
use crate::identity::throttle::ThrottleConfig;
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
    /// Starts a fresh server (as `TestServer::builder().start()`).
    ///
    /// # Errors
    /// Only if no loopback port can be bound.
    pub fn start() -> Result<TestServer> {
        TestServer::builder().start()
    }

    /// A server set up first: throttles off, settings, an existing database.
    ///
    /// ```
    /// # fn main() -> larder::Result<()> {
    /// use larder::testing::TestServer;
    /// let server = TestServer::builder()
    ///     .without_throttles()
    ///     .settings(serde_json::json!({"ALLOWED_SELF_ROLES": "editor"}))
    ///     .start()?;
    /// assert_eq!(server.db.project().settings()?.allowed_self_roles, ["editor"]);
    /// # Ok(()) }
    /// ```
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::default()
    }

    /// Signs user `user_id` in without a password: their tokens, as a login would give them
    /// (`access_token` for `Authorization: Bearer`).
    ///
    /// # Errors
    /// `NotFound` for an unknown user, `Forbidden` for a disabled one.
    pub fn sign_in_as(&self, user_id: &str) -> Result<SignedIn> {
        self.db.users().session_for(user_id)
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

/// How a [`TestServer`] is set up (see [`TestServer::builder`]).
#[derive(Default)]
pub struct TestServerBuilder {
    db: Option<Db>,
    clock: Option<ManualClock>,
    throttles_off: bool,
    settings: Option<Value>,
}

impl TestServerBuilder {
    /// Serves an existing database instead of a fresh in-memory one; the server's keys are
    /// added to it. Its clock is its own: to move time in the test, build it with
    /// `Db::builder().clock(clock.clone())` and pass the same clock to
    /// [`TestServerBuilder::clock`].
    pub fn db(mut self, db: Db) -> Self {
        self.db = Some(db);
        self
    }

    /// The clock of a fresh database, and the server's `clock` field.
    pub fn clock(mut self, clock: ManualClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Turns the login and signup throttles off (a fresh database only), for tests that sign
    /// in or sign up many times from one address.
    pub fn without_throttles(mut self) -> Self {
        self.throttles_off = true;
        self
    }

    /// Applies settings (a JSON object of setting names, as `Project::update_settings`
    /// takes) before the server starts.
    pub fn settings(mut self, settings: Value) -> Self {
        self.settings = Some(settings);
        self
    }

    /// Starts the server.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed setting; otherwise only if no loopback port can be
    /// bound.
    pub fn start(self) -> Result<TestServer> {
        let clock = self.clock.unwrap_or_default();
        let db = match self.db {
            Some(db) => db,
            None => {
                let mut builder = Db::builder().clock(clock.clone());
                if self.throttles_off {
                    builder = builder.throttle(ThrottleConfig::off());
                }
                builder.in_memory()?
            }
        };
        if let Some(settings) = &self.settings {
            db.project().update_settings(settings)?;
        }
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
}
