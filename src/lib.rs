//! # larder — a backend in one file
//!
//! larder keeps an application's backend — users, sessions, API keys, per-collection
//! permissions, JSON documents, files and settings — in **one [redb] file**. Link it as a
//! library, embed it in a desktop app, or start it as a fixture in a test suite: there is no
//! server to install. With the `http` feature, the same database serves HTTP from inside the
//! process, in four dialects (Cocobase, urBackend, ekoDB, Cobru) beside a native admin API, all
//! under the same rules as the library.
//!
//! Every write is one transaction, acknowledged only after a durable commit. Documents are JSON
//! objects with server-assigned UUIDv7 ids and RFC 3339 timestamps; queries filter with typed
//! comparison (`"30"` matches `30`, `"True"` matches `true`), sort on several keys, page, count
//! and aggregate, and use secondary indexes where declared.
//!
//! [`Db`] opens the file and hands out one handle per capability: [`Db::collection`] and
//! [`Db::collections`] (documents and collections), [`Db::bucket`] and [`Db::buckets`] (files),
//! [`Db::users`], [`Db::sessions`], [`Db::keys`] and [`Db::signing_keys`] (accounts and
//! credentials), [`Db::project`] and [`Db::mail`] (settings and mail). [`Db::as_user`],
//! [`Db::with_key`] and [`Db::anonymous`] give an [`Actor`]: the same handles as that caller,
//! under the same rules as HTTP.
//!
//! ## Quick start
//!
//! ```
//! use larder::{CollectionSpec, Db, Filter, Query};
//! use serde_json::json;
//!
//! # fn main() -> larder::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("app.redb");
//! let db = Db::open(&path)?; // creates the file on first use
//! db.collections().create("tasks", CollectionSpec::new().index("priority"))?;
//!
//! let tasks: larder::Collection = db.collection("tasks");
//! let first = tasks.insert(&json!({"title": "write docs", "priority": 2, "done": false}))?;
//! tasks.insert(&json!({"title": "ship", "priority": 5, "done": false}))?;
//! tasks.patch(&first.id, &json!({"done": true}))?;
//!
//! let urgent = tasks.find(
//!     &Query::new()
//!         .filter(Filter::gte("priority", "3").and(Filter::eq("done", "False")))
//!         .sort_desc("priority")
//!         .limit(10),
//! )?;
//! assert_eq!(urgent.len(), 1);
//! assert_eq!(urgent[0].data["title"], "ship");
//! assert_eq!(tasks.count(&Filter::eq("done", true))?, 1);
//! # Ok(()) }
//! ```
//!
//! Typed access works with your own structs through serde: see [`Collection`].
//!
//! ## Errors
//!
//! Every fallible call returns [`Error`]; [`Error::kind`] says what the caller can do
//! ([`ErrorKind`]). Refused input changes nothing.
//!
//! [redb]: https://docs.rs/redb

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod actor;
mod data;
mod db;
mod error;
mod files;
#[cfg(feature = "http")]
mod http;
mod identity;
mod project;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use access::auth::Credentials;
pub use access::policy::{Action, Decision};
pub use access::principal::Principal;
pub use access::rules::{Rule, Rules};
pub use actor::Actor;
pub use data::collections::{CollectionInfo, CollectionSpec, Collections};
pub use data::documents::{Collection, Doc};
pub use data::feed::{Batch, Change, ChangeOp, FeedEvent, Since, Subscription};
pub use data::query::{Aggregate, Filter, Op, Order, Query, Sort};
pub use db::{DEFAULT_MAX_DOCUMENT_BYTES, Db, DbBuilder};
pub use error::{Error, ErrorKind, Result};
pub use files::{
    Bucket, BucketInfo, BucketSpec, Buckets, DEFAULT_MAX_FILE_BYTES, FileInfo, FileReader, Upload,
    UploadGrant,
};
#[cfg(feature = "http")]
pub use http::{Server, ServerConfig, ServerHandle, Stopper, router};
pub use identity::accounts::Users;
pub use identity::api_keys::{
    ApiKeyInfo, Grant, GrantChange, GrantPatch, IssuedKey, KeyIdentity, KeyKind, Keys, NewApiKey,
};
pub use identity::otp::{CODE_LIFETIME, MAX_ATTEMPTS};
pub use identity::password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};
pub use identity::sessions::{DEFAULT_SESSION_LIFETIME, Sessions, SignedIn, UserSession};
pub use identity::throttle::{REQUEST_COOLDOWN, ThrottleConfig};
pub use identity::tokens::SigningKeys;
pub use identity::users::{Client, NewUser, PublicProfile, User};
pub use project::env_vars::EnvVarInfo;
pub use project::mail::{Mail, MailMessage, Mailer, OutboxMessage, SmsMessage, SmsSender};
pub use project::settings::{DEFAULT_ROLE, PRIVILEGED_ROLES, Project, Settings};
#[cfg(feature = "smtp")]
pub use project::smtp::{SmtpMailer, SmtpSecurity};
pub use store::Health;
pub use store::changes::{ResetReason, Retention};
pub use store::clock::{Clock, ManualClock, SystemClock};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
