//! Group commit: concurrent writers share one durable commit.
//!
//! redb has one write transaction at a time, and a durable commit costs two fsyncs (two-phase
//! commit). Writers that arrive while a commit is in flight would each wait for it and then pay
//! for a commit of their own. Here they queue instead: when the commit ends, the queued writers
//! run their operations one after another in one new transaction, and the last of them commits
//! it for all. Each operation runs on its caller's thread (so it may borrow the caller's data),
//! and each caller returns only once the commit holding its writes has ended — acknowledged
//! means durable, exactly as with a commit of one's own.
//!
//! An operation that fails must leave nothing behind, but redb takes savepoints only before a
//! transaction opens any table, so one operation's writes cannot be undone alone. A failing
//! operation therefore aborts the whole transaction, and the operations that had succeeded in it
//! run again in the next one (which is why operations are `FnMut`: they must be re-runnable and
//! have no effect outside the transaction). A lone writer pays nothing for this.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::{Error, ErrorKind, Result};

/// The most operations one transaction takes before the next writers wait for its commit:
/// bounds the latency of the first writer of a batch under a flood of writers.
const MAX_BATCH: usize = 256;

/// How many ended batches remember why they did not commit (followers read it on waking).
const REMEMBERED_FAILURES: usize = 64;

/// The queue of writers of one database (see the module docs).
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    /// Signalled whenever the transaction is handed back, a batch ends or a commit starts.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// The open transaction, while no member is running an operation in it.
    txn: Option<redb::WriteTransaction>,
    /// A member is running its operation (the transaction is out of `txn`).
    lent: bool,
    /// The open batch's transaction is being committed.
    committing: bool,
    /// The id of the open batch; every batch before it has ended.
    batch: u64,
    /// Members of the open batch that have not run their operation yet.
    waiting: usize,
    /// Writers that arrived during a commit (or with the batch full): the next batch.
    queued: usize,
    /// Operations that succeeded in the open transaction.
    succeeded: usize,
    /// Whether a member of the open batch needs its commit durable.
    durable: bool,
    /// Recent batches that ended without committing, and why.
    failures: VecDeque<(u64, Failure)>,
}

#[derive(Clone)]
enum Failure {
    /// An operation failed after others had written: they run again.
    RunAgain,
    /// The commit failed: nothing of the batch was written.
    Commit(ErrorKind),
}

impl Default for GroupCommit {
    fn default() -> Self {
        GroupCommit {
            state: Mutex::new(State {
                batch: 1,
                ..State::default()
            }),
            changed: Condvar::new(),
        }
    }
}

impl State {
    /// Ends the open batch (`failure` says why it did not commit, if it did not); the writers
    /// queued for the next one become its members.
    fn end_batch(&mut self, failure: Option<Failure>) {
        if let Some(failure) = failure {
            self.failures.push_back((self.batch, failure));
            if self.failures.len() > REMEMBERED_FAILURES {
                self.failures.pop_front();
            }
        }
        self.batch += 1;
        self.succeeded = 0;
        self.durable = false;
        self.waiting += std::mem::take(&mut self.queued);
    }

    fn failure_of(&self, batch: u64) -> Option<Failure> {
        self.failures
            .iter()
            .find(|(id, _)| *id == batch)
            .map(|(_, failure)| failure.clone())
    }
}

impl GroupCommit {
    /// Runs `op` in the shared write transaction and returns once a commit holding its writes
    /// has ended: durable (two-phase commit) if `durable` or any other member asked for it,
    /// otherwise without waiting for the disk. If `op` fails, nothing it wrote is kept and its
    /// error is returned.
    pub(crate) fn run<T>(
        &self,
        redb: &redb::Database,
        durable: bool,
        mut op: impl FnMut(&redb::WriteTransaction) -> Result<T>,
    ) -> Result<T> {
        loop {
            let mut state = self.state.lock();
            // Join the open batch, or the next one while this one commits or is full (the
            // batch that ends moves the queued writers into the next).
            if state.committing || state.succeeded + state.waiting >= MAX_BATCH {
                state.queued += 1;
                let next = state.batch + 1;
                self.changed.wait_while(&mut state, |s| s.batch < next);
            } else {
                state.waiting += 1;
            }
            self.changed
                .wait_while(&mut state, |s| s.lent || s.committing);
            state.waiting -= 1;
            let txn = match state.txn.take() {
                Some(txn) => txn,
                None => match begin(redb) {
                    Ok(txn) => txn,
                    Err(error) => {
                        self.changed.notify_all();
                        return Err(error);
                    }
                },
            };
            state.lent = true;
            let batch = state.batch;
            drop(state);

            let outcome = catch_unwind(AssertUnwindSafe(|| op(&txn)));

            let mut state = self.state.lock();
            state.lent = false;
            let value = match outcome {
                Ok(Ok(value)) => value,
                Ok(Err(error)) => {
                    self.abandon(state, txn);
                    return Err(error);
                }
                Err(panic) => {
                    self.abandon(state, txn);
                    resume_unwind(panic);
                }
            };
            state.succeeded += 1;
            state.durable |= durable;
            if state.waiting == 0 {
                // The last member of the batch commits it for all.
                return self.commit(state, txn).map(|()| value);
            }
            state.txn = Some(txn);
            self.changed.notify_all();
            self.changed.wait_while(&mut state, |s| s.batch <= batch);
            match state.failure_of(batch) {
                None => return Ok(value),
                Some(Failure::RunAgain) => continue,
                Some(Failure::Commit(kind)) => return Err(Error::new(kind)),
            }
        }
    }

    /// Drops the transaction after a failed operation; the operations that had succeeded in it
    /// run again, and the members still waiting go on in a fresh transaction.
    fn abandon(&self, mut state: MutexGuard<'_, State>, txn: redb::WriteTransaction) {
        // After an I/O error redb refuses the abort too; the transaction is gone either way.
        let _ = txn.abort();
        if state.succeeded > 0 {
            state.end_batch(Some(Failure::RunAgain));
        }
        self.changed.notify_all();
    }

    fn commit(
        &self,
        mut state: MutexGuard<'_, State>,
        mut txn: redb::WriteTransaction,
    ) -> Result<()> {
        state.committing = true;
        let durable = state.durable;
        drop(state);

        let committed = set_durability(&mut txn, durable).and_then(|()| Ok(txn.commit()?));

        let mut state = self.state.lock();
        state.committing = false;
        state.end_batch(
            committed
                .as_ref()
                .err()
                .map(|error| Failure::Commit(error.kind().clone())),
        );
        self.changed.notify_all();
        committed
    }
}

fn begin(redb: &redb::Database) -> Result<redb::WriteTransaction> {
    Ok(redb.begin_write()?)
}

fn set_durability(txn: &mut redb::WriteTransaction, durable: bool) -> Result<()> {
    if durable {
        txn.set_two_phase_commit(true);
        Ok(())
    } else {
        txn.set_durability(redb::Durability::None)
            .map_err(|e| Error::internal(std::io::Error::other(e.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};
    use std::sync::Barrier;

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    fn database() -> (tempfile::TempDir, redb::Database) {
        let dir = tempfile::tempdir().unwrap();
        let redb = redb::Database::create(dir.path().join("g.redb")).unwrap();
        (dir, redb)
    }

    fn count(redb: &redb::Database) -> u64 {
        let txn = redb.begin_read().unwrap();
        txn.open_table(T).map(|t| t.len().unwrap()).unwrap_or(0)
    }

    #[test]
    fn a_panicking_operation_leaves_the_queue_working_and_writes_nothing() {
        let (_dir, redb) = database();
        let group = GroupCommit::default();
        let panicked = std::panic::catch_unwind(AssertUnwindSafe(|| {
            group.run(&redb, true, |txn| -> Result<()> {
                txn.open_table(T)?.insert(1, 1)?;
                panic!("operation failed");
            })
        }));
        assert!(panicked.is_err());
        group
            .run(&redb, true, |txn| {
                Ok(txn.open_table(T)?.insert(2, 2).map(|_| ())?)
            })
            .unwrap();
        let txn = redb.begin_read().unwrap();
        let table = txn.open_table(T).unwrap();
        assert!(table.get(1).unwrap().is_none());
        assert_eq!(table.get(2).unwrap().unwrap().value(), 2);
    }

    /// Sixteen threads, some of whose operations write and then fail or panic: every success
    /// is kept, every failure leaves nothing, and operations run again only in fresh
    /// transactions.
    #[test]
    fn failures_and_panics_among_concurrent_writers_touch_only_their_own_writes() {
        let (_dir, redb) = database();
        let group = GroupCommit::default();
        let start = Barrier::new(16);
        let kept: Vec<u64> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..16u64)
                .map(|thread| {
                    let (group, redb, start) = (&group, &redb, &start);
                    scope.spawn(move || {
                        start.wait();
                        let mut kept = Vec::new();
                        for i in 0..30u64 {
                            let key = thread * 1000 + i;
                            let fate = (thread + i) % 5;
                            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                                group.run(redb, fate != 4, |txn| {
                                    txn.open_table(T)?.insert(key, key)?;
                                    match fate {
                                        0 => Err(Error::invalid("refused after writing")),
                                        1 => panic!("panicked after writing"),
                                        _ => Ok(key),
                                    }
                                })
                            }));
                            if let Ok(Ok(key)) = outcome {
                                kept.push(key);
                            }
                        }
                        kept
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(kept.len(), 16 * 30 * 3 / 5);
        assert_eq!(count(&redb), kept.len() as u64);
        let txn = redb.begin_read().unwrap();
        let table = txn.open_table(T).unwrap();
        for key in kept {
            assert_eq!(table.get(key).unwrap().unwrap().value(), key);
        }
    }
}
