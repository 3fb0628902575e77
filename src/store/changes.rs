//! The change log: every committed change to documents, in commit order, written in the same
//! write transaction as the change itself.
//!
//! Each write operation that changes something subscribers care about (see
//! [`ChangeBatch`]) takes the next commit sequence number and stores its changes under it, as
//! rows `(seq, 0..n)` of [`CHANGES`]. Because the number is taken inside the transaction, an
//! operation that aborts leaves no number behind (no gaps), and since redb runs one write
//! transaction at a time, sequence order is commit order. The log's position is its own first
//! and last rows (each row carries its commit time and the running byte total), so a commit
//! writes no other table for the log's sake. Only the number is published in
//! memory after the commit ([`FeedSignal`]); the rows in the file stay the source of truth, so
//! a change cannot exist only in memory and a crash between commit and publish loses nothing.
//!
//! History is bounded ([`Retention`]): each appending operation trims at most
//! [`TRIM_PER_COMMIT`] of the oldest batches over a limit, so trimming never makes one big
//! transaction that writers would queue behind.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::schema::{self, CHANGES, FEED_RESETS, META};

/// The row of [`META`] holding this log's random epoch: positions of another log (a file
/// replaced by an older copy, another database) are told apart by it.
const EPOCH_KEY: &str = "feed_epoch";

/// The most old batches one commit trims.
pub(crate) const TRIM_PER_COMMIT: u64 = 64;

/// What one row of the log says happened.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum What<'a> {
    /// A document was inserted (`before` absent), changed, or deleted (`after` absent). The
    /// images are the stored records, with every field (rules are applied on delivery).
    Document {
        collection: &'a str,
        id: &'a str,
        #[serde(borrow)]
        before: Option<&'a [u8]>,
        #[serde(borrow)]
        after: Option<&'a [u8]>,
    },
    /// A collection's view changed for every subscriber (see [`ResetReason`]).
    Collection { name: &'a str, reason: ResetReason },
    /// A credential changed (session ended, key revoked, user disabled or deleted, roles
    /// changed): never delivered, it makes every subscriber re-check its principal at this
    /// point in the order.
    Access,
}

/// Why a subscriber's view of a collection can no longer be continued and must be rebuilt.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ResetReason {
    /// The position asked for is older than the kept history.
    TooOld,
    /// The position asked for is not one of this database's (another file, a restored copy,
    /// or a number beyond the newest change).
    UnknownPosition,
    /// The collection's rules, hidden fields or owner field changed.
    RulesChanged,
    /// The subscriber's roles changed.
    AccessChanged,
    /// The collection was deleted (or renamed away).
    CollectionDeleted,
    /// The collection was created anew, or another was renamed to its name.
    CollectionReplaced,
}

impl ResetReason {
    /// The reason as the wire formats name it.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetReason::TooOld => "too_old",
            ResetReason::UnknownPosition => "unknown_cursor",
            ResetReason::RulesChanged => "rules_changed",
            ResetReason::AccessChanged => "access_changed",
            ResetReason::CollectionDeleted => "collection_deleted",
            ResetReason::CollectionReplaced => "collection_replaced",
        }
    }
}

/// One decoded row of the log.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    /// When the batch committed (µs, the database clock).
    pub(crate) committed_at: i64,
    /// The bytes the log has taken since it began, up to and including this row (the
    /// retention budget is the difference between the newest and the oldest kept row).
    pub(crate) total: u64,
    pub(crate) what: What<'a>,
}

/// The fixed head of every row: the commit time and the running byte total.
const HEAD: usize = 16;

impl<'a> Entry<'a> {
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Entry<'a>> {
        let corrupt = || Error::internal(schema::CorruptRecord);
        let (stamp, rest) = bytes.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let (total, rest) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
        Ok(Entry {
            committed_at: i64::from_le_bytes(*stamp),
            total: u64::from_le_bytes(*total),
            what: postcard::from_bytes(rest).map_err(Error::internal)?,
        })
    }
}

/// How much history the log keeps: a batch goes once any limit is passed (the newest batch
/// always stays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The most batches kept.
    pub max_batches: u64,
    /// The most bytes the kept batches take (rows and keys).
    pub max_bytes: u64,
    /// The oldest a kept batch may be.
    pub max_age: Duration,
}

impl Default for Retention {
    /// Seven days, a million batches and 256 MiB, whichever comes first.
    fn default() -> Self {
        Retention {
            max_batches: 1_000_000,
            max_bytes: 256 << 20,
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The changes one write operation makes, collected while it runs and appended to the log
/// when it succeeds (see [`Store::write_changes`](crate::store::Store::write_changes)). An
/// operation that changes nothing a subscriber sees takes no sequence number.
#[derive(Debug, Default)]
pub(crate) struct ChangeBatch {
    /// The encoded rows, one after another, each with room for the commit time in front (one
    /// buffer for the whole batch: a bulk insert makes no allocation per row).
    bytes: Vec<u8>,
    /// Where each row ends in `bytes`.
    ends: Vec<usize>,
    /// Collections whose view is reset by this batch, and why.
    resets: Vec<(String, ResetReason)>,
    /// Whether an [`What::Access`] row is in already (one per batch is enough).
    access: bool,
}

impl ChangeBatch {
    /// Records a document change (see [`What::Document`]).
    pub(crate) fn document(
        &mut self,
        collection: &str,
        id: &str,
        before: Option<&[u8]>,
        after: Option<&[u8]>,
    ) -> Result<()> {
        self.push(&What::Document {
            collection,
            id,
            before,
            after,
        })
    }

    /// Records that subscribers of `collection` must start over.
    pub(crate) fn reset(&mut self, collection: &str, reason: ResetReason) -> Result<()> {
        self.resets.push((collection.to_owned(), reason));
        self.push(&What::Collection {
            name: collection,
            reason,
        })
    }

    /// Records that a credential changed (see [`What::Access`]).
    pub(crate) fn access(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.access, true) {
            return Ok(());
        }
        self.push(&What::Access)
    }

    fn push(&mut self, what: &What<'_>) -> Result<()> {
        let mut bytes = std::mem::take(&mut self.bytes);
        bytes.extend_from_slice(&[0; HEAD]);
        self.bytes = postcard::to_extend(what, bytes).map_err(Error::internal)?;
        self.ends.push(self.bytes.len());
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Each row's range in `bytes`.
    fn ranges(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter().copied()).map(|(a, b)| a..b)
    }
}

/// A collection's documents table opened for writing. Every insert and removal goes through
/// here and is recorded in the operation's [`ChangeBatch`], with the record before and after:
/// no document changes without its row in the log.
pub(crate) struct DocsWriter<'txn> {
    table: redb::Table<'txn, &'static str, &'static [u8]>,
    collection: String,
}

impl<'txn> DocsWriter<'txn> {
    /// Opens the documents table of `collection` (creating it, for a new collection).
    pub(crate) fn open(txn: &'txn WriteTransaction, collection: &str) -> Result<DocsWriter<'txn>> {
        Ok(DocsWriter {
            table: txn.open_table(schema::DocsTable::new(&schema::docs_table_name(collection)))?,
            collection: collection.to_owned(),
        })
    }

    /// How many documents it holds.
    pub(crate) fn len(&self) -> Result<u64> {
        Ok(redb::ReadableTableMetadata::len(&self.table)?)
    }

    /// Every document, by id.
    pub(crate) fn iter(&self) -> Result<redb::Range<'_, &'static str, &'static [u8]>> {
        Ok(self.table.iter()?)
    }

    /// The stored record of document `id`.
    pub(crate) fn get(&self, id: &str) -> Result<Option<redb::AccessGuard<'_, &'static [u8]>>> {
        Ok(self.table.get(id)?)
    }

    /// Stores `record` as document `id`; says whether it replaced one.
    pub(crate) fn insert(
        &mut self,
        changes: &mut ChangeBatch,
        id: &str,
        record: &[u8],
    ) -> Result<bool> {
        let old = self.table.insert(id, record)?;
        let before = old.as_ref().map(|guard| guard.value());
        changes.document(&self.collection, id, before, Some(record))?;
        Ok(old.is_some())
    }

    /// Removes document `id`; returns its record as it was.
    pub(crate) fn remove(
        &mut self,
        changes: &mut ChangeBatch,
        id: &str,
    ) -> Result<Option<Vec<u8>>> {
        let Some(old) = self.table.remove(id)? else {
            return Ok(None);
        };
        let before = old.value().to_vec();
        drop(old);
        changes.document(&self.collection, id, Some(&before), None)?;
        Ok(Some(before))
    }
}

/// Renames a collection's documents table; its subscribers (and those of `to`) start over.
pub(crate) fn rename_docs(
    txn: &WriteTransaction,
    changes: &mut ChangeBatch,
    from: &str,
    to: &str,
) -> Result<()> {
    txn.rename_table(
        schema::DocsTable::new(&schema::docs_table_name(from)),
        schema::DocsTable::new(&schema::docs_table_name(to)),
    )?;
    changes.reset(from, ResetReason::CollectionDeleted)?;
    changes.reset(to, ResetReason::CollectionReplaced)
}

/// Deletes a collection's documents table: one row in the log for all its documents, and its
/// subscribers start over.
pub(crate) fn delete_docs(
    txn: &WriteTransaction,
    changes: &mut ChangeBatch,
    collection: &str,
) -> Result<()> {
    txn.delete_table(schema::DocsTable::new(&schema::docs_table_name(collection)))?;
    changes.reset(collection, ResetReason::CollectionDeleted)
}

/// Where the log stands, as one read transaction sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogState {
    /// The newest sequence number (0: nothing logged yet).
    pub(crate) last_seq: u64,
    /// The oldest sequence number kept (`last_seq + 1` when nothing is kept).
    pub(crate) first_seq: u64,
    /// The log's epoch.
    pub(crate) epoch: u64,
}

impl LogState {
    /// Where the log stands: its first and last rows (the newest batch is never trimmed, so
    /// the log is empty only before its first batch) and the epoch in `meta`.
    pub(crate) fn read(txn: &redb::ReadTransaction) -> Result<LogState> {
        let changes = txn.open_table(CHANGES)?;
        let meta = txn.open_table(META)?;
        LogState::of(&changes, &meta)
    }

    fn of(
        changes: &impl ReadableTable<(u64, u32), &'static [u8]>,
        meta: &impl ReadableTable<&'static str, u64>,
    ) -> Result<LogState> {
        let last_seq = changes.last()?.map_or(0, |(key, _)| key.value().0);
        let first_seq = changes
            .first()?
            .map_or(last_seq + 1, |(key, _)| key.value().0);
        Ok(LogState {
            last_seq,
            first_seq,
            epoch: meta.get(EPOCH_KEY)?.map_or(0, |v| v.value()),
        })
    }
}

/// Gives a log its epoch when it has none (a new file, or one made before the log existed).
pub(crate) fn ensure_epoch(txn: &WriteTransaction) -> Result<()> {
    let mut meta = txn.open_table(META)?;
    if meta.get(EPOCH_KEY)?.is_none() {
        let bytes = crate::store::ids::random_bytes::<8>()?;
        // Never 0, which stands for "no epoch yet".
        meta.insert(EPOCH_KEY, u64::from_le_bytes(bytes).max(1))?;
    }
    txn.open_table(CHANGES)?;
    txn.open_table(FEED_RESETS)?;
    Ok(())
}

/// Appends `batch` to the log under the next sequence number and trims old history; returns
/// the number taken, or `None` for an empty batch.
pub(crate) fn append(
    txn: &WriteTransaction,
    batch: &mut ChangeBatch,
    now: i64,
    retention: Retention,
) -> Result<Option<u64>> {
    if batch.is_empty() {
        return Ok(None);
    }
    let mut changes = txn.open_table(CHANGES)?;
    // Where the log stands, from its own first and last rows: a commit changes no other
    // table for the log's sake.
    let (last_seq, mut total) = match changes.last()? {
        Some((key, row)) => (key.value().0, Entry::decode(row.value())?.total),
        None => (0, 0),
    };
    let seq = last_seq + 1;
    let ranges: Vec<_> = batch.ranges().collect();
    for (position, range) in ranges.into_iter().enumerate() {
        total += row_cost(range.len());
        batch.bytes[range.start..range.start + 8].copy_from_slice(&now.to_le_bytes());
        batch.bytes[range.start + 8..range.start + HEAD].copy_from_slice(&total.to_le_bytes());
        let position = u32::try_from(position).map_err(|_| Error::too_large("a batch", 0))?;
        changes.insert((seq, position), &batch.bytes[range])?;
    }
    if !batch.resets.is_empty() {
        let mut resets = txn.open_table(FEED_RESETS)?;
        for (collection, reason) in &batch.resets {
            let value = postcard::to_allocvec(&(seq, *reason)).map_err(Error::internal)?;
            resets.insert(collection.as_str(), value.as_slice())?;
        }
    }
    let oldest_allowed = now.saturating_sub(micros(retention.max_age));
    for _ in 0..TRIM_PER_COMMIT {
        let Some((key, row)) = changes.first()? else {
            break;
        };
        let first = key.value().0;
        if first >= seq {
            break; // the newest batch always stays
        }
        let entry = Entry::decode(row.value())?;
        // The bytes kept: everything after the oldest row, and that row itself.
        let kept = total - entry.total + row_cost(row.value().len());
        let over_count = seq - first + 1 > retention.max_batches;
        let too_old = entry.committed_at < oldest_allowed;
        drop((key, row));
        if !(over_count || kept > retention.max_bytes || too_old) {
            break;
        }
        for removed in changes.extract_from_if((first, 0)..(first + 1, 0), |_, _| true)? {
            removed?;
        }
    }
    Ok(Some(seq))
}

/// The last reset of `collection`'s view: `(seq, reason)`, if any was logged.
pub(crate) fn last_reset(
    resets: &impl ReadableTable<&'static str, &'static [u8]>,
    collection: &str,
) -> Result<Option<(u64, ResetReason)>> {
    resets
        .get(collection)?
        .map(|v| postcard::from_bytes(v.value()).map_err(Error::internal))
        .transpose()
}

/// The room one row takes in the byte budget: its value and its key.
fn row_cost(len: usize) -> u64 {
    len as u64 + 12
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// The in-memory side of the log: the newest committed sequence number, and the event that
/// wakes subscribers when it moves. Writers only store a number and notify; they never wait
/// for a subscriber.
#[derive(Debug)]
pub(crate) struct FeedSignal {
    high_water: AtomicU64,
    moved: event_listener::Event,
}

impl FeedSignal {
    pub(crate) fn new(last_seq: u64) -> FeedSignal {
        FeedSignal {
            high_water: AtomicU64::new(last_seq),
            moved: event_listener::Event::new(),
        }
    }

    /// The newest sequence number known to be committed.
    pub(crate) fn high_water(&self) -> u64 {
        self.high_water.load(Ordering::Acquire)
    }

    /// Publishes that batch `seq` (and so every one before it) has committed.
    pub(crate) fn published(&self, seq: u64) {
        self.high_water.fetch_max(seq, Ordering::AcqRel);
        self.moved.notify(usize::MAX);
    }

    /// A listener that fires on the next publish. Register it, then re-check
    /// [`FeedSignal::high_water`], then wait: a publish in between is not missed.
    pub(crate) fn listen(&self) -> event_listener::EventListener {
        self.moved.listen()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip() {
        let mut batch = ChangeBatch::default();
        batch.document("notes", "a", None, Some(b"after")).unwrap();
        batch.reset("notes", ResetReason::RulesChanged).unwrap();
        batch.access().unwrap();
        batch.access().unwrap();
        assert_eq!(batch.ends.len(), 3, "one access row per batch");
        let first = batch.ranges().next().unwrap();
        let entry = Entry::decode(&batch.bytes[first]).unwrap();
        assert_eq!(
            entry.what,
            What::Document {
                collection: "notes",
                id: "a",
                before: None,
                after: Some(b"after")
            }
        );
        assert!(Entry::decode(b"short").is_err());
    }
}
