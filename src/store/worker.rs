//! The storage thread: takes [`Op`]s off the bounded queue and commits them durably in groups,
//! [`COMMIT_EVERY`] after the first change of a group; a [`Op::WriteNow`] commits at once.
//!
//! While nothing comes it sleeps in `recv`. The first change wakes it; it then sleeps until the
//! group's commit time and takes everything queued in one go (the loop's `try_send` never wakes
//! it, so the loop pays no system call per change; the loop wakes it early when the queue is
//! full). One burst per group costs about 40% less CPU than taking the queue in small bites,
//! whose cache misses on a core shared with the loop dominated. The thread keeps the process's
//! priority: at a lower one it could be kept off the CPU while holding a lock the loop needs
//! next (the queue's waker, the allocator's), stalling the loop behind other processes.
//!
//! When the disk fails (full, I/O error), the open transaction is rolled back and the thread
//! stops writing: changes are counted and dropped, durable writes are refused. Every
//! [`RETRY_EVERY`] it asks the loop for the whole state ([`Op::Replace`]); once that commits,
//! the store is whole again and carries on with the changes queued after it.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{error, info, warn};

use super::disk::Disk;
use super::{Op, Shared, QUEUE};

/// The longest a change waits before its commit: with the commit's own time, what a SIGKILL
/// or a power cut can lose stays within a second.
const COMMIT_EVERY: Duration = Duration::from_millis(500);
/// Ops applied between two offers of the CPU to the loop (about half a millisecond): on a core
/// shared with the loop, a commit's burst must not keep the loop from its next turn.
const YIELD_EVERY: usize = 256;
/// After a failed write, how long until the whole state is written again.
const RETRY_EVERY: Duration = Duration::from_secs(5);

/// Whether the thread goes on after an op.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// The thread's state: the database and whether writing it failed.
pub(crate) struct Worker {
    disk: Disk,
    shared: Arc<Shared>,
    /// When the whole state is asked for again, while writing fails.
    retry_at: Option<Instant>,
    /// Changes dropped since writing failed.
    dropped: u64,
}

impl Worker {
    pub(crate) fn new(disk: Disk, shared: Arc<Shared>) -> Self {
        Self {
            disk,
            shared,
            retry_at: None,
            dropped: 0,
        }
    }

    /// Runs until [`Op::Stop`] or until the loop's side is gone; commits what it has and closes
    /// the database. An error means something the loop handed over is not on disk.
    pub(crate) fn run(mut self, ops: Receiver<Op>) -> io::Result<()> {
        loop {
            // Checked here too: while changes keep coming, the wait below never times out.
            if self.retry_at.is_some_and(|at| Instant::now() >= at) {
                self.ask_for_state();
            }
            let first = match self.retry_at {
                None => ops.recv().ok(),
                Some(at) => match ops.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(op) => Some(op),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => None,
                },
            };
            let Some(first) = first else {
                return self.finish();
            };
            if self.group(first, &ops) == Flow::Stop {
                return self.finish();
            }
        }
    }

    /// Handles `first` and whatever is queued until [`COMMIT_EVERY`] after it, then commits.
    fn group(&mut self, first: Op, ops: &Receiver<Op>) -> Flow {
        let commit_at = Instant::now() + COMMIT_EVERY;
        let mut next = Some(first);
        // Ops taken after the commit time: past a queue's worth, everything that was queued by
        // then is in, and what keeps coming goes to the next group.
        let mut late = 0;
        let mut handled = 0usize;
        loop {
            if let Some(op) = next.take() {
                if self.handle(op) == Flow::Stop {
                    return Flow::Stop;
                }
                handled += 1;
                if handled % YIELD_EVERY == 0 {
                    std::thread::yield_now();
                }
            }
            let now = Instant::now();
            if now >= commit_at {
                late += 1;
                if late > QUEUE {
                    break;
                }
            }
            match ops.try_recv() {
                Ok(op) => next = Some(op),
                Err(TryRecvError::Empty) if now >= commit_at => break,
                Err(TryRecvError::Empty) => std::thread::park_timeout(commit_at - now),
                Err(TryRecvError::Disconnected) => return Flow::Stop,
            }
        }
        self.commit();
        Flow::Continue
    }

    fn handle(&mut self, op: Op) -> Flow {
        match op {
            Op::Change(change) => {
                if self.retry_at.is_some() {
                    self.dropped += 1;
                } else if let Err(e) = self.disk.apply(&change) {
                    self.failed(&e);
                }
            }
            Op::WriteNow(changes, reply) => {
                let result = self.write_now(&changes);
                // The writer may have given up waiting; then nobody needs the answer.
                let _ = reply.send(result);
            }
            Op::Replace(snapshot) => match self.disk.replace(&snapshot) {
                Ok(()) => {
                    if self.retry_at.take().is_some() {
                        self.shared.failing.store(false, Ordering::SeqCst);
                        info!(
                            "store: {} written whole again ({} changes had been dropped)",
                            self.disk.path().display(),
                            self.dropped
                        );
                        self.dropped = 0;
                    }
                }
                Err(e) => self.failed(&e),
            },
            Op::Stop => return Flow::Stop,
        }
        Flow::Continue
    }

    /// Applies `changes` and commits them with everything before them.
    fn write_now(&mut self, changes: &[super::OwnedChange]) -> io::Result<()> {
        if self.retry_at.is_some() {
            return Err(io::Error::other(format!(
                "{} cannot be written at the moment (see the log)",
                self.disk.path().display()
            )));
        }
        let result = changes
            .iter()
            .try_for_each(|change| self.disk.apply(change))
            .and_then(|()| self.disk.commit());
        if let Err(e) = &result {
            self.failed(e);
        }
        result
    }

    fn commit(&mut self) {
        if let Err(e) = self.disk.commit() {
            self.failed(&e);
        }
    }

    /// Writing failed: what the open transaction held is gone, so the store is no longer
    /// whole; stop writing until the whole state is written again.
    fn failed(&mut self, e: &io::Error) {
        self.disk.rollback();
        if self.retry_at.is_none() {
            error!(
                "store: cannot write: {e}; changes are dropped until the whole state is \
                 written again (tried every {} s)",
                RETRY_EVERY.as_secs()
            );
        }
        self.shared.failing.store(true, Ordering::SeqCst);
        self.retry_at = Some(Instant::now() + RETRY_EVERY);
    }

    /// Asks the loop for the whole state, to write it again.
    fn ask_for_state(&mut self) {
        warn!(
            "store: asking for the whole state to write {} again",
            self.disk.path().display()
        );
        self.retry_at = Some(Instant::now() + RETRY_EVERY);
        self.shared.wants_state.store(true, Ordering::SeqCst);
        if let Some(waker) = &self.shared.waker {
            if let Err(e) = waker.wake() {
                warn!("store: could not wake the poll loop: {e}");
            }
        }
    }

    /// The last commit and the close. Failing to write here is an error for the caller.
    fn finish(mut self) -> io::Result<()> {
        if self.disk.dirty() {
            self.commit();
        }
        if self.retry_at.is_some() {
            return Err(io::Error::other(format!(
                "{} could not be written; {} changes were dropped",
                self.disk.path().display(),
                self.dropped
            )));
        }
        self.disk.close()
    }
}
