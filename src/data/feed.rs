//! Subscriptions to a collection's change feed.
//!
//! A subscription is a position in the change log (`store::changes`) and a view: the
//! subscriber's principal, the collection's rules for it, and a filter. It holds no queue that
//! writers fill. When the log moves it reads the batches after its position from the file, in
//! pages, and keeps what its view lets through. So a subscriber that stops reading costs
//! writers nothing and only lags; when it reads again it catches up from the log, or, if its
//! position has been trimmed away, is told to start over (`Reset`) — never handed a gap.
//!
//! What a subscriber receives follows the rules at delivery time, on the document before and
//! after each change: a change it could see neither before nor after is not sent (a delete of
//! a document it never saw included); one that brings a document into its view (owner rule,
//! filter) arrives as an insert, one that takes it out as a delete. Documents are projected as
//! a list request would return them (hidden fields, a scoped key's field lists).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_listener::Listener;
use redb::ReadTransaction;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::access::policy::{Action, Permit};
use crate::data::collections::{CollectionSpec, Target};
use crate::data::documents::{Collection, Doc};
use crate::data::query::{Filter, Plan, Query, Row, RowData, RowId};
use crate::error::{ErrorKind, Result};
use crate::store::changes::{self, Entry, LogState, ResetReason, What};
use crate::store::clock::format_rfc3339;
use crate::store::schema::{CHANGES, COLLECTIONS, DocRecord, FEED_RESETS};

/// The most batches one read of the log takes (a page).
const PAGE_BATCHES: u64 = 256;
/// A page ends at the first batch boundary after this many rows.
const PAGE_ROWS: usize = 4096;
/// Documents per [`FeedEvent::Snapshot`] event.
const SNAPSHOT_PAGE: usize = 500;
/// How often a waiting subscription checks its credential again even when nothing changed
/// (an expiring session writes nothing to the log).
const RECHECK: Duration = Duration::from_secs(15);
/// The most recent batches kept decoded in memory for all subscribers.
const RING_BATCHES: usize = 4096;
/// The most bytes of stored records the ring keeps (a batch bigger than a tenth of it is read
/// by each subscriber from the file instead).
const RING_BYTES: usize = 64 << 20;

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// With the next change committed after subscribing.
    Now,
    /// With the first change after sequence number `seq` (every one after it, exactly once).
    /// `Seq(0)` is the start of the log.
    Seq(u64),
    /// With the documents the subscriber may see now ([`FeedEvent::Snapshot`] pages, then
    /// [`FeedEvent::Ready`] with the snapshot's sequence), then every change after them: no
    /// gap and no duplicate between the two.
    Snapshot,
}

/// What a change did, as the subscriber sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    /// The document entered the subscriber's view: created, or changed so that it now
    /// matches the view.
    Insert,
    /// The document changed and is still in view.
    Update,
    /// The document left the subscriber's view: deleted, or changed so that it no longer
    /// matches the view.
    Delete,
}

impl ChangeOp {
    /// The operation as the wire formats name it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Insert => "insert",
            ChangeOp::Update => "update",
            ChangeOp::Delete => "delete",
        }
    }
}

/// One document change as one subscriber may see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<T = Value> {
    /// What happened, for this subscriber.
    pub op: ChangeOp,
    /// The document's id.
    pub id: String,
    /// The document after the change, projected for the subscriber (`None` for a delete).
    pub doc: Option<Doc<T>>,
    /// The document before the change, as the subscriber saw it (`None` for an insert).
    pub prev: Option<Doc<T>>,
    /// The stored images behind `doc` and `prev`, when the subscriber sees documents whole:
    /// their JSON is then encoded once for every such subscriber.
    shared: Option<Whole>,
}

/// The images a change's `doc` and `prev` show unchanged (read by the event streams).
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "http"), allow(dead_code))]
struct Whole {
    doc: Option<Arc<Image>>,
    prev: Option<Arc<Image>>,
}

impl PartialEq for Whole {
    /// A cache of what `doc` and `prev` say: it never tells two changes apart.
    fn eq(&self, _: &Whole) -> bool {
        true
    }
}

impl<T> Change<T> {
    /// `doc` and `prev` as JSON text (ASCII only) shared by every subscriber that sees them
    /// whole: the event streams splice it in instead of encoding the document once per
    /// subscriber. `None` where this subscriber's view projects documents.
    #[cfg(feature = "http")]
    pub(crate) fn shared_json(&self) -> Option<SharedJson> {
        let whole = self.shared.as_ref()?;
        let json = |image: &Option<Arc<Image>>| image.as_ref().map(|image| image.json(&self.id));
        Some(SharedJson {
            doc: json(&whole.doc),
            prev: json(&whole.prev),
        })
    }
}

/// A change's `doc` and `prev` as shared JSON text (see [`Change::shared_json`]).
#[cfg(feature = "http")]
pub(crate) struct SharedJson {
    pub(crate) doc: Option<Arc<str>>,
    pub(crate) prev: Option<Arc<str>>,
}

/// The visible changes of one committed transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch<T = Value> {
    /// The transaction's commit sequence number.
    pub seq: u64,
    /// When it committed (RFC 3339, microseconds).
    pub committed_at: String,
    /// Its changes the subscriber may see, in the order they were made.
    pub changes: Vec<Change<T>>,
}

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent<T = Value> {
    /// A page of the documents the subscriber may see (only with [`Since::Snapshot`]).
    Snapshot {
        /// The position the snapshot was taken at (also in the [`FeedEvent::Ready`] after it).
        seq: u64,
        /// The documents, in id order.
        docs: Vec<Doc<T>>,
    },
    /// The subscriber is at the live edge: everything up to `seq` has been delivered.
    Ready {
        /// The position reached.
        seq: u64,
        /// The log's epoch: positions are only meaningful within one epoch.
        epoch: u64,
    },
    /// One committed transaction's visible changes.
    Batch(Batch<T>),
    /// The subscription cannot go on (see [`ResetReason`]) and has ended: rebuild from a
    /// snapshot.
    Reset {
        /// Why.
        reason: ResetReason,
        /// For [`ResetReason::TooOld`] and [`ResetReason::UnknownPosition`], the oldest batch
        /// the log still keeps (`Since::Seq(seq - 1)` starts there); otherwise the batch that
        /// changed the view.
        seq: u64,
        /// The log's epoch.
        epoch: u64,
    },
}

impl<T: Serialize + DeserializeOwned + 'static> Collection<T> {
    /// Subscribes to the collection's changes, as this handle's principal sees them: the
    /// documents matching `filter` that a list request would return, projected the same way.
    /// See [`Subscription`] and [`Since`].
    ///
    /// # Errors
    /// As [`Collection::find`]: `NotFound` for a missing collection, `Unauthenticated` or
    /// `Forbidden` if the principal may not list it, `InvalidInput` for a malformed filter or
    /// one on a hidden field.
    pub fn subscribe(&self, filter: Filter, since: Since) -> Result<Subscription<T>> {
        Subscription::start(self.clone(), filter, since)
    }
}

/// A live subscription to one collection's changes: an iterator that blocks until the next
/// event (see the module docs for what it yields). Dropping it unsubscribes.
///
/// ```
/// # fn main() -> larder::Result<()> {
/// use larder::{CollectionSpec, Db, FeedEvent, Filter, Since};
/// let db = Db::in_memory()?;
/// db.collections().create("notes", CollectionSpec::new())?;
/// let notes = db.collection::<serde_json::Value>("notes");
/// let mut feed = notes.subscribe(Filter::eq("done", false), Since::Now)?;
/// assert!(matches!(feed.next(), Some(Ok(FeedEvent::Ready { .. }))));
/// notes.insert(&serde_json::json!({"title": "write docs", "done": false}))?;
/// let Some(Ok(FeedEvent::Batch(batch))) = feed.next() else { panic!() };
/// assert_eq!(batch.changes[0].doc.as_ref().unwrap().data["title"], "write docs");
/// # Ok(()) }
/// ```
pub struct Subscription<T = Value> {
    handle: Collection<T>,
    /// The filter narrowed by the subscriber's owner rule, compiled.
    plan: Plan,
    /// The collection-level decision for the subscriber (rules changes reset the
    /// subscription, and credential changes are checked against it).
    permit: Permit,
    /// The collection's configuration the decision was made on.
    spec: CollectionSpec,
    /// The last batch read from the log (its visible changes may still be in `pending`).
    read_to: u64,
    /// The last batch handed out: everything up to it has been delivered or was invisible.
    cursor: u64,
    epoch: u64,
    /// Whether a `Ready` goes out on reaching the live edge (resumed subscriptions).
    ready_due: bool,
    /// When the credential was last checked.
    checked: Instant,
    pending: VecDeque<Result<FeedEvent<T>>>,
    /// No more events after `pending` (a reset or an error ended it).
    closed: bool,
    /// The wake-up a [`futures_core::Stream`] poll is waiting on.
    #[cfg(feature = "http")]
    listener: Option<event_listener::EventListener>,
}

impl<T: Serialize + DeserializeOwned + 'static> std::fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("collection", &self.handle.name())
            .field("cursor", &self.read_to)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Subscription<T> {
    /// Subscribes `handle`'s principal to its collection (see [`Collection::subscribe`]).
    pub(crate) fn start(handle: Collection<T>, filter: Filter, since: Since) -> Result<Self> {
        // Malformed filters are refused before anything is looked up.
        Plan::compile(&filter, &[])?;
        let store = handle.store().clone();
        store.read(|txn| {
            let log = LogState::read(txn)?;
            let target = Target::load(&txn.open_table(COLLECTIONS)?, handle.name())?;
            let permit = handle.permit(Action::List, &target.spec)?;
            let narrowed = handle.visible_filter(&permit, &filter, std::iter::empty())?;
            let plan = Plan::compile(narrowed.as_ref().unwrap_or(&filter), &[])?;
            let mut pending = VecDeque::new();
            let cursor = match since {
                Since::Now => log.last_seq,
                Since::Seq(seq) => seq,
                Since::Snapshot => {
                    let query = Query::new().filter(filter.clone());
                    let docs = handle.find_in(txn, &target, &plan, &query, &mut None)?;
                    let mut docs = docs.into_iter().peekable();
                    while docs.peek().is_some() {
                        let page = docs.by_ref().take(SNAPSHOT_PAGE).collect();
                        pending.push_back(Ok(FeedEvent::Snapshot {
                            seq: log.last_seq,
                            docs: page,
                        }));
                    }
                    log.last_seq
                }
            };
            let mut subscription = Subscription {
                handle: handle.clone(),
                plan,
                permit,
                spec: target.spec.clone(),
                read_to: cursor,
                cursor,
                epoch: log.epoch,
                ready_due: matches!(since, Since::Seq(_)),
                checked: Instant::now(),
                pending,
                closed: false,
                #[cfg(feature = "http")]
                listener: None,
            };
            let reset = changes::last_reset(&txn.open_table(FEED_RESETS)?, handle.name())?;
            if cursor > log.last_seq {
                subscription.reset(ResetReason::UnknownPosition, log.first_seq);
            } else if let Some((seq, reason)) = reset
                && seq > cursor
            {
                // The view changed since that position: it cannot be continued.
                subscription.reset(reason, log.first_seq);
            } else if !subscription.ready_due || cursor == log.last_seq {
                subscription.ready_due = false;
                subscription.pending.push_back(Ok(FeedEvent::Ready {
                    seq: cursor,
                    epoch: log.epoch,
                }));
            }
            Ok(subscription)
        })
    }

    /// The position reached: every batch up to it has been delivered (or was invisible to
    /// the subscriber). Resume from it with [`Since::Seq`].
    pub fn cursor(&self) -> u64 {
        if self.pending.is_empty() {
            self.read_to
        } else {
            self.cursor
        }
    }

    /// Whether the subscription has ended (after a reset or an error, once those were taken).
    pub fn is_closed(&self) -> bool {
        self.closed && self.pending.is_empty()
    }

    /// The next event, blocking until there is one; `None` once the subscription has ended.
    #[allow(clippy::should_implement_trait)] // also the Iterator impl; callable without the trait
    pub fn next(&mut self) -> Option<Result<FeedEvent<T>>> {
        self.next_before(None)
    }

    /// The next event if one comes within `timeout`; `None` if none did or the subscription
    /// has ended ([`Subscription::is_closed`] tells which).
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<FeedEvent<T>>> {
        self.next_before(Some(Instant::now() + timeout))
    }

    /// The next event, waiting without blocking a thread; `None` once the subscription has
    /// ended. Revocations end it at once; a credential that merely expires is noticed at the
    /// next change, or when `recv` is called again (the blocking calls and the `Stream` also
    /// look every 15 s while they wait).
    pub async fn recv(&mut self) -> Option<Result<FeedEvent<T>>> {
        loop {
            if let Some(event) = self.take() {
                return event;
            }
            let listener = self.handle.store().feed().listen();
            if self.fill() {
                continue;
            }
            listener.await;
        }
    }

    fn next_before(&mut self, deadline: Option<Instant>) -> Option<Result<FeedEvent<T>>> {
        loop {
            if let Some(event) = self.take() {
                return event;
            }
            // Listen before looking, so a commit in between wakes us.
            let listener = self.handle.store().feed().listen();
            if self.fill() {
                continue;
            }
            // Waits are capped so that a credential that merely expires is noticed too.
            let recheck = Instant::now() + RECHECK;
            match deadline {
                Some(deadline) if deadline <= recheck => {
                    listener.wait_deadline(deadline)?;
                }
                _ => {
                    let _ = listener.wait_deadline(recheck);
                }
            }
        }
    }

    /// An event ready to hand out (`Some(None)`: the subscription has ended).
    fn take(&mut self) -> Option<Option<Result<FeedEvent<T>>>> {
        match self.pending.pop_front() {
            Some(event) => {
                if self.pending.is_empty() {
                    self.cursor = self.read_to;
                } else if let Ok(FeedEvent::Batch(batch)) = &event {
                    self.cursor = batch.seq;
                }
                Some(Some(event))
            }
            None if self.closed => Some(None),
            None => None,
        }
    }

    /// Reads the batches after the cursor if the log moved past it (shared decoded batches
    /// when other subscribers read them already, else the file); whether there is anything
    /// to hand out now.
    fn fill(&mut self) -> bool {
        let high = self.handle.store().feed().high_water();
        let outcome = (|| {
            if self.checked.elapsed() >= RECHECK {
                self.check_access()?;
            }
            // Pages until something is to hand out or the log is read up to `high`: a page
            // of changes the subscriber may not see must not leave it waiting for the next
            // write.
            while high > self.read_to && self.pending.is_empty() && !self.closed {
                let batches = self.batches_after(high)?;
                if batches.is_empty() {
                    break;
                }
                for batch in batches {
                    if self.closed {
                        break;
                    }
                    self.apply(&batch)?;
                }
            }
            if self.ready_due && self.read_to >= high && !self.closed {
                self.ready_due = false;
                self.pending.push_back(Ok(FeedEvent::Ready {
                    seq: self.read_to,
                    epoch: self.epoch,
                }));
            }
            Ok(())
        })();
        if let Err(error) = outcome {
            self.pending.push_back(Err(error));
            self.closed = true;
        }
        !self.pending.is_empty() || self.closed
    }

    /// The credential behind the subscription, checked again: a revoked key, an ended
    /// session or a disabled user ends the stream.
    fn check_access(&mut self) -> Result<()> {
        self.checked = Instant::now();
        match self.handle.current_permit(Action::List, &self.spec) {
            Ok(permit) if permit == self.permit => Ok(()),
            Err(error) if matches!(error.kind(), ErrorKind::Unauthenticated { .. }) => Err(error),
            // Roles or grants changed: the view this subscription was built on is gone.
            _ => {
                self.reset(ResetReason::AccessChanged, self.read_to);
                Ok(())
            }
        }
    }

    /// The next batches after `read_to`, up to `high`: from the ring when it holds them,
    /// else one page read from the log (and kept in the ring for the others).
    fn batches_after(&mut self, high: u64) -> Result<Vec<Arc<Decoded>>> {
        let ring = self.handle.store().state::<FeedRing>()?;
        if let Some(batches) = ring.range(self.read_to + 1, high) {
            return Ok(batches);
        }
        let store = self.handle.store().clone();
        let (log, batches) = store.read(|txn| {
            let log = LogState::read(txn)?;
            let batches = if self.read_to + 1 < log.first_seq {
                Vec::new()
            } else {
                read_batches(txn, self.read_to + 1, high.min(log.last_seq))?
            };
            Ok((log, batches))
        })?;
        if self.read_to + 1 < log.first_seq {
            self.reset(ResetReason::TooOld, log.first_seq);
            return Ok(Vec::new());
        }
        ring.keep(&batches);
        Ok(batches)
    }

    /// Takes one batch: its visible changes become an event; a reset of the collection ends
    /// the subscription; a credential change is checked at once.
    fn apply(&mut self, batch: &Decoded) -> Result<()> {
        let name = self.handle.name().to_owned();
        let mut changes = Vec::new();
        for row in &batch.rows {
            match row {
                DecodedRow::Document {
                    collection,
                    id,
                    before,
                    after,
                } if *collection == name => {
                    if let Some(change) = self.view(id, before.as_ref(), after.as_ref())? {
                        changes.push(change);
                    }
                }
                DecodedRow::Reset { collection, reason } if *collection == name => {
                    let reason = *reason;
                    self.reset(reason, batch.seq);
                    return Ok(());
                }
                DecodedRow::Access => {
                    self.check_access()?;
                    if self.closed {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        self.read_to = batch.seq;
        if !changes.is_empty() {
            self.pending.push_back(Ok(FeedEvent::Batch(Batch {
                seq: batch.seq,
                committed_at: format_rfc3339(batch.committed_at),
                changes,
            })));
        }
        Ok(())
    }

    /// The change as this subscriber sees it, if it sees it at all.
    fn view(
        &self,
        id: &str,
        before: Option<&Arc<Image>>,
        after: Option<&Arc<Image>>,
    ) -> Result<Option<Change<T>>> {
        let shared = self.permit.projects_nothing().then_some((before, after));
        let before_doc = self.visible(id, before.map(|image| &**image));
        let after_doc = self.visible(id, after.map(|image| &**image));
        let shared = shared.map(|(before_image, after_image)| Whole {
            doc: after_image.filter(|_| after_doc.is_some()).cloned(),
            prev: before_image.filter(|_| before_doc.is_some()).cloned(),
        });
        let (before, after) = (before_doc, after_doc);
        let op = match (&before, &after) {
            (None, None) => return Ok(None),
            (None, Some(_)) => ChangeOp::Insert,
            (Some(_), Some(_)) => ChangeOp::Update,
            (Some(_), None) => ChangeOp::Delete,
        };
        let doc = after.map(|doc| self.handle.typed(doc)).transpose()?;
        let prev = before.map(|doc| self.handle.typed(doc)).transpose()?;
        Ok(Some(Change {
            op,
            id: id.to_owned(),
            doc,
            prev,
            shared,
        }))
    }

    /// A stored image, projected, if it is in the subscriber's view.
    fn visible(&self, id: &str, image: Option<&Image>) -> Option<Doc<Value>> {
        let image = image?;
        let row = Row {
            id: RowId::Str(id),
            created_at: image.created_at,
            updated_at: image.updated_at,
            data: RowData::Full(&image.data, &self.plan.slots),
        };
        if !row.matches(&self.plan.test) {
            return None;
        }
        let mut data = image.data.clone();
        self.permit.project(&mut data);
        Some(Doc {
            id: id.to_owned(),
            created_at: format_rfc3339(image.created_at),
            updated_at: format_rfc3339(image.updated_at),
            data: Value::Object(data),
        })
    }

    /// Ends the subscription with a reset.
    fn reset(&mut self, reason: ResetReason, seq: u64) {
        self.pending.push_back(Ok(FeedEvent::Reset {
            reason,
            seq,
            epoch: self.epoch,
        }));
        self.closed = true;
    }
}

// Nothing in a subscription is pinned in place (the listener is boxed by its crate), whatever
// the document type.
impl<T> Unpin for Subscription<T> {}

/// With the `http` feature: the subscription as an async stream of events (as
/// [`Subscription::recv`]).
#[cfg(feature = "http")]
impl<T: Serialize + DeserializeOwned + 'static> futures_core::Stream for Subscription<T> {
    type Item = Result<FeedEvent<T>>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::future::Future;
        let this = self.get_mut();
        if this.checked.elapsed() >= RECHECK {
            // A credential that merely expires writes nothing to the log: look again now and
            // then even while waiting.
            this.fill();
        }
        loop {
            if let Some(event) = this.take() {
                this.listener = None;
                return std::task::Poll::Ready(event);
            }
            match this.listener.as_mut() {
                None => {
                    // Listen before looking, so a commit in between wakes the task.
                    this.listener = Some(this.handle.store().feed().listen());
                    this.fill();
                }
                Some(listener) => match std::pin::Pin::new(listener).poll(cx) {
                    std::task::Poll::Ready(()) => {
                        this.listener = None;
                        this.fill();
                    }
                    std::task::Poll::Pending => return std::task::Poll::Pending,
                },
            }
        }
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Iterator for Subscription<T> {
    type Item = Result<FeedEvent<T>>;

    /// Blocks until the next event; `None` once the subscription has ended.
    fn next(&mut self) -> Option<Self::Item> {
        Subscription::next(self)
    }
}

/// A batch of the log, decoded once (images parsed) and shared by every subscriber.
#[derive(Debug)]
pub(crate) struct Decoded {
    seq: u64,
    committed_at: i64,
    rows: Vec<DecodedRow>,
    /// The stored bytes it was decoded from (the ring's budget).
    bytes: usize,
}

#[derive(Debug)]
enum DecodedRow {
    Document {
        collection: String,
        id: String,
        before: Option<Arc<Image>>,
        after: Option<Arc<Image>>,
    },
    Reset {
        collection: String,
        reason: ResetReason,
    },
    Access,
}

/// A stored document, parsed.
#[derive(Debug)]
struct Image {
    created_at: i64,
    updated_at: i64,
    data: Map<String, Value>,
    /// The whole document as JSON (ASCII only), made on first use and shared by every
    /// subscriber that sees it whole.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    json: std::sync::OnceLock<Arc<str>>,
}

impl Image {
    fn decode(bytes: Option<&[u8]>) -> Result<Option<Arc<Image>>> {
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let record = DocRecord::decode(bytes)?;
        Ok(Some(Arc::new(Image {
            created_at: record.created_at,
            updated_at: record.updated_at,
            data: serde_json::from_slice(record.json).map_err(crate::error::Error::internal)?,
            json: std::sync::OnceLock::new(),
        })))
    }

    /// The document `id` as JSON with non-ASCII characters escaped, encoded once.
    #[cfg(feature = "http")]
    fn json(&self, id: &str) -> Arc<str> {
        Arc::clone(self.json.get_or_init(|| {
            let doc = Doc {
                id: id.to_owned(),
                created_at: format_rfc3339(self.created_at),
                updated_at: format_rfc3339(self.updated_at),
                data: &self.data,
            };
            let text = serde_json::to_string(&doc).unwrap_or_else(|_| "null".to_owned());
            Arc::from(ascii_json(&text))
        }))
    }
}

/// The batches `from..=to` of the log (at most a page: whole batches, up to
/// [`PAGE_BATCHES`] of them or the first batch boundary after [`PAGE_ROWS`] rows).
fn read_batches(txn: &ReadTransaction, from: u64, to: u64) -> Result<Vec<Arc<Decoded>>> {
    let to = to.min(from.saturating_add(PAGE_BATCHES - 1));
    let rows = txn.open_table(CHANGES)?;
    let mut out: Vec<Arc<Decoded>> = Vec::new();
    let mut current: Option<Decoded> = None;
    for (read, row) in rows.range((from, 0)..=(to, u32::MAX))?.enumerate() {
        let (key, value) = row?;
        let (seq, _) = key.value();
        if current.as_ref().is_some_and(|batch| batch.seq != seq) {
            out.extend(current.take().map(Arc::new));
            if read >= PAGE_ROWS {
                break;
            }
        }
        let entry = Entry::decode(value.value())?;
        let batch = current.get_or_insert_with(|| Decoded {
            seq,
            committed_at: entry.committed_at,
            rows: Vec::new(),
            bytes: 0,
        });
        batch.bytes += value.value().len();
        batch.rows.push(match entry.what {
            What::Document {
                collection,
                id,
                before,
                after,
            } => DecodedRow::Document {
                collection: collection.to_owned(),
                id: id.to_owned(),
                before: Image::decode(before)?,
                after: Image::decode(after)?,
            },
            What::Collection { name, reason } => DecodedRow::Reset {
                collection: name.to_owned(),
                reason,
            },
            What::Access => DecodedRow::Access,
        });
    }
    out.extend(current.map(Arc::new));
    Ok(out)
}

/// The newest batches read from the log, decoded once for all subscribers (installed on open).
/// Subscribers at the live edge read here and not from the file; one that fell behind it reads
/// the file, and the newest batches it reads are kept here for the others.
#[derive(Debug, Default)]
pub(crate) struct FeedRing {
    inner: parking_lot::RwLock<RingInner>,
}

#[derive(Debug, Default)]
struct RingInner {
    batches: VecDeque<Arc<Decoded>>,
    bytes: usize,
}

impl FeedRing {
    /// The batches from `from` on (up to `to`, at most a page), if the ring holds `from`.
    fn range(&self, from: u64, to: u64) -> Option<Vec<Arc<Decoded>>> {
        let inner = self.inner.read();
        let first = inner.batches.front()?.seq;
        if from < first || from > inner.batches.back()?.seq {
            return None;
        }
        let start = usize::try_from(from - first).ok()?;
        Some(
            inner
                .batches
                .iter()
                .skip(start)
                .take_while(|batch| batch.seq <= to)
                .take(PAGE_BATCHES as usize)
                .cloned()
                .collect(),
        )
    }

    /// Keeps batches just read from the log when they continue the ring (or start it anew
    /// past its end); older ones are not kept.
    fn keep(&self, batches: &[Arc<Decoded>]) {
        let mut inner = self.inner.write();
        for batch in batches {
            let next = inner.batches.back().map(|b| b.seq + 1);
            match next {
                Some(next) if batch.seq < next => continue,
                Some(next) if batch.seq > next => {
                    inner.batches.clear();
                    inner.bytes = 0;
                }
                _ => {}
            }
            if batch.bytes > RING_BYTES / 10 {
                // Too big to keep: the ring restarts after it.
                inner.batches.clear();
                inner.bytes = 0;
                continue;
            }
            inner.bytes += batch.bytes;
            inner.batches.push_back(Arc::clone(batch));
            while inner.batches.len() > RING_BATCHES || inner.bytes > RING_BYTES {
                let Some(old) = inner.batches.pop_front() else {
                    break;
                };
                inner.bytes -= old.bytes;
            }
        }
    }
}

/// JSON text with every non-ASCII character escaped (`\uXXXX`, surrogate pairs beyond the
/// basic plane): still the same JSON, and every byte ASCII, which every event-stream parser
/// reads alike (some decode each network chunk on its own).
#[cfg(feature = "http")]
pub(crate) fn ascii_json(json: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out
}
