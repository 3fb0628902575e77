//! The on-disk format: every redb table, the layout of every stored record, and the format
//! version checked on open. Nothing else in the crate names a table or lays out bytes.
//!
//! Table names carry a version suffix (`_v1`), so a later format can add a new table beside an
//! old one and migrate on open.

use redb::{MultimapTableDefinition, TableDefinition};
use serde::Serialize;

use crate::error::{Error, Result};

/// The format version this build writes and the newest it reads.
pub(crate) const FORMAT_VERSION: u64 = 1;

/// `key → u64`. Holds [`FORMAT_KEY`]; its presence marks a larder file.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("larder_meta");
/// The row of [`META`] holding the format version.
pub(crate) const FORMAT_KEY: &str = "format_version";

/// Collection name → a collection's stored configuration (postcard).
pub(crate) const COLLECTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("collections_v1");

/// User id → [`StoredUser`](crate::identity::users::StoredUser) (postcard).
pub(crate) const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users_v1");
/// Case-folded email → user id.
pub(crate) const USERS_BY_EMAIL: TableDefinition<&str, &str> =
    TableDefinition::new("users_by_email_v1");
/// Case-folded username → user id.
pub(crate) const USERS_BY_USERNAME: TableDefinition<&str, &str> =
    TableDefinition::new("users_by_username_v1");

/// Phone number → user id.
pub(crate) const USERS_BY_PHONE: TableDefinition<&str, &str> =
    TableDefinition::new("users_by_phone_v1");
/// Message id → an SMS outbox entry as JSON text.
pub(crate) const SMS_OUTBOX: TableDefinition<&str, &str> = TableDefinition::new("sms_outbox_v1");

/// Session id → [`StoredSession`](crate::identity::sessions::StoredSession) (postcard).
pub(crate) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions_v1");
/// User id → its session ids.
pub(crate) const SESSIONS_BY_USER: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("sessions_by_user_v1");
/// SHA-256 of a refresh token → the session it belongs to. Raw tokens are never stored.
pub(crate) const REFRESH_TOKENS: TableDefinition<&[u8], &str> =
    TableDefinition::new("refresh_tokens_v1");

/// Key id → [`StoredSigningKey`](crate::identity::tokens::StoredSigningKey) (postcard).
pub(crate) const SIGNING_KEYS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("signing_keys_v1");

/// API key id → [`StoredKey`](crate::identity::api_keys::StoredKey) (postcard).
pub(crate) const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys_v1");
/// SHA-256 of a key secret → the key id. Raw secrets are never stored.
pub(crate) const API_KEYS_BY_HASH: TableDefinition<&[u8], &str> =
    TableDefinition::new("api_keys_by_hash_v1");

/// Message id → the outbox entry as JSON text.
pub(crate) const OUTBOX: TableDefinition<&str, &str> = TableDefinition::new("outbox_v1");

/// `purpose:user_id` → the live one-time code of that purpose (postcard).
pub(crate) const OTP_CODES: TableDefinition<&str, &[u8]> = TableDefinition::new("otp_codes_v1");
/// SHA-256 of a link token → the `purpose:user_id` of its code.
pub(crate) const OTP_LINKS: TableDefinition<&[u8], &str> = TableDefinition::new("otp_links_v1");

/// Environment variable name → value.
pub(crate) const ENV_VARS: TableDefinition<&str, &str> = TableDefinition::new("env_vars_v1");

/// Setting name → its value as JSON text.
pub(crate) const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings_v1");

/// Bucket name → a bucket's stored configuration (postcard).
pub(crate) const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets_v1");
/// (bucket, file name) → a file's stored metadata (postcard).
pub(crate) const FILES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("files_v1");
/// (blob id, chunk index) → up to 256 KiB of a file's bytes.
pub(crate) const FILE_CHUNKS: TableDefinition<(&str, u32), &[u8]> =
    TableDefinition::new("file_chunks_v1");
/// Blob id of an upload in progress → when it started (µs): chunks nobody may read yet.
pub(crate) const FILE_STAGING: TableDefinition<&str, i64> = TableDefinition::new("file_staging_v1");
/// SHA-256 of an upload grant's token → the grant (postcard). Raw tokens are never stored.
pub(crate) const UPLOAD_GRANTS: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("upload_grants_v1");
/// User id → `bucket/name` of each file they uploaded.
pub(crate) const FILES_BY_OWNER: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("files_by_owner_v1");
/// `collection/id` → `bucket/name` of each file attached to that document.
pub(crate) const FILES_BY_ATTACHMENT: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("files_by_attachment_v1");

/// `(seq, position in its batch)` → one change: the commit time (8 bytes, little-endian)
/// followed by a postcard `What` (`changes.rs`).
pub(crate) const CHANGES: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("changes_v1");

/// Collection name → the last change that invalidates a subscriber's view of it (rules,
/// rename, deletion, re-creation): `(seq, reason)` (postcard). A subscriber whose position is
/// older is reset rather than served under rules its view was not built with.
pub(crate) const FEED_RESETS: TableDefinition<&str, &[u8]> = TableDefinition::new("feed_resets_v1");

/// Names of the tables every database has (created on open when missing).
pub(crate) const FIXED_TABLES: &[&str] = &[
    "larder_meta",
    "collections_v1",
    "changes_v1",
    "feed_resets_v1",
    "users_v1",
    "users_by_email_v1",
    "users_by_username_v1",
    "sessions_v1",
    "refresh_tokens_v1",
    "signing_keys_v1",
    "settings_v1",
    "api_keys_v1",
    "api_keys_by_hash_v1",
    "outbox_v1",
    "env_vars_v1",
    "otp_codes_v1",
    "otp_links_v1",
    "users_by_phone_v1",
    "sms_outbox_v1",
    "buckets_v1",
    "files_v1",
    "file_chunks_v1",
    "file_staging_v1",
    "upload_grants_v1",
];
/// Names of the multimap tables every database has.
pub(crate) const FIXED_MULTIMAP_TABLES: &[&str] = &[
    "sessions_by_user_v1",
    "files_by_owner_v1",
    "files_by_attachment_v1",
];

/// The table of one collection's documents: document id → [`DocRecord`] bytes.
pub(super) type DocsTable<'a> = TableDefinition<'a, &'static str, &'static [u8]>;

/// A collection's documents table (named by [`docs_table_name`]) in a read snapshot. Writing
/// goes through `changes::DocsWriter`, which records every change in the change log.
///
/// # Errors
/// redb's, `TableDoesNotExist` for a missing collection included.
pub(crate) fn open_docs(
    txn: &redb::ReadTransaction,
    table: &str,
) -> std::result::Result<redb::ReadOnlyTable<&'static str, &'static [u8]>, redb::TableError> {
    txn.open_table(DocsTable::new(table))
}

/// The table of one index: `sort_key(value) ++ document id` → document id.
pub(crate) type IndexTable<'a> = TableDefinition<'a, &'static [u8], &'static str>;

/// Name of the documents table of collection `collection`.
pub(crate) fn docs_table_name(collection: &str) -> String {
    format!("docs_v1/{collection}")
}

/// Name of the table of the index on `path` in collection `collection`.
pub(crate) fn index_table_name(collection: &str, path: &str) -> String {
    format!("idx_v1/{collection}/{path}")
}

/// Encodes an internal record with postcard.
pub(crate) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(record).map_err(Error::internal)
}

/// Decodes an internal record written by [`encode`].
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(Error::internal)
}

/// A stored document: a fixed header followed by the document's JSON object (without the
/// server-managed `id`, `created_at` and `updated_at`, which live in the key and the header).
///
/// ```text
/// [0]      record version (1)
/// [1..9]   created_at, microseconds since the Unix epoch, i64 little-endian
/// [9..17]  updated_at, same encoding
/// [17..]   the JSON object, UTF-8
/// ```
pub(crate) struct DocRecord<'a> {
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) json: &'a [u8],
}

const DOC_RECORD_VERSION: u8 = 1;
const DOC_HEADER_LEN: usize = 17;

impl<'a> DocRecord<'a> {
    /// Starts a record in `out` (cleared): room for the header, then the caller writes the JSON
    /// straight after it (no second copy) and fills the header in with [`DocRecord::finish`].
    pub(crate) fn begin(out: &mut Vec<u8>) {
        out.clear();
        out.resize(DOC_HEADER_LEN, 0);
    }

    /// The JSON written after the header of a record started with [`DocRecord::begin`].
    pub(crate) fn json_of(record: &[u8]) -> &[u8] {
        &record[DOC_HEADER_LEN..]
    }

    /// Writes the header of a record started with [`DocRecord::begin`].
    pub(crate) fn finish(record: &mut [u8], created_at: i64, updated_at: i64) {
        record[0] = DOC_RECORD_VERSION;
        record[1..9].copy_from_slice(&created_at.to_le_bytes());
        record[9..17].copy_from_slice(&updated_at.to_le_bytes());
    }

    #[cfg(test)]
    pub(crate) fn encode(created_at: i64, updated_at: i64, json: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        Self::begin(&mut bytes);
        bytes.extend_from_slice(json);
        Self::finish(&mut bytes, created_at, updated_at);
        bytes
    }

    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self> {
        let corrupt = || Error::internal(CorruptRecord);
        if bytes.len() < DOC_HEADER_LEN || bytes[0] != DOC_RECORD_VERSION {
            return Err(corrupt());
        }
        let created_at = i64::from_le_bytes(bytes[1..9].try_into().map_err(|_| corrupt())?);
        let updated_at = i64::from_le_bytes(bytes[9..17].try_into().map_err(|_| corrupt())?);
        Ok(DocRecord {
            created_at,
            updated_at,
            json: &bytes[DOC_HEADER_LEN..],
        })
    }
}

#[derive(Debug)]
pub(crate) struct CorruptRecord;

impl std::fmt::Display for CorruptRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a stored document record has an unknown layout")
    }
}

impl std::error::Error for CorruptRecord {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_table_lists_name_every_fixed_table() {
        use redb::{MultimapTableHandle, TableHandle};
        let names = [
            META.name(),
            COLLECTIONS.name(),
            CHANGES.name(),
            FEED_RESETS.name(),
            USERS.name(),
            USERS_BY_EMAIL.name(),
            USERS_BY_USERNAME.name(),
            SESSIONS.name(),
            REFRESH_TOKENS.name(),
            SIGNING_KEYS.name(),
            SETTINGS.name(),
            API_KEYS.name(),
            API_KEYS_BY_HASH.name(),
            OUTBOX.name(),
            ENV_VARS.name(),
            OTP_CODES.name(),
            OTP_LINKS.name(),
            USERS_BY_PHONE.name(),
            SMS_OUTBOX.name(),
            BUCKETS.name(),
            FILES.name(),
            FILE_CHUNKS.name(),
            FILE_STAGING.name(),
            UPLOAD_GRANTS.name(),
        ];
        assert_eq!(FIXED_TABLES, names);
        assert_eq!(
            FIXED_MULTIMAP_TABLES,
            [
                SESSIONS_BY_USER.name(),
                FILES_BY_OWNER.name(),
                FILES_BY_ATTACHMENT.name()
            ]
        );
    }

    #[test]
    fn doc_record_round_trips() {
        let bytes = DocRecord::encode(-3, 7, br#"{"a":1}"#);
        let record = DocRecord::decode(&bytes).unwrap();
        assert_eq!(record.created_at, -3);
        assert_eq!(record.updated_at, 7);
        assert_eq!(record.json, br#"{"a":1}"#);
    }

    #[test]
    fn unknown_record_layout_is_an_error_not_a_panic() {
        assert!(DocRecord::decode(b"").is_err());
        assert!(DocRecord::decode(&[9; 40]).is_err());
    }
}
