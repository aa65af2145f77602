//! The data dir (`--data-dir`): the chat's durable state on disk, written by a storage thread
//! so the poll loop never waits for the disk.
//!
//! The loop's side is [`Store`]: the chat's [`Change`]s (through `Outbox::store`) are copied
//! into [`OwnedChange`]s and `try_send` into a bounded queue; what the queue cannot take now
//! waits in a bounded backlog that the loop retries every turn. If even the backlog fills (the
//! disk stalled for seconds), it is dropped and the loop hands over the chat's whole state
//! instead ([`Store::resync`]): nothing the chat still holds is lost, and the loop never
//! blocks. The storage thread (`worker.rs`) groups what it takes into a durable commit at
//! least every half second; the database itself is `disk.rs` (the file, its checks and the
//! transaction) and `rows.rs` (the tables' rows). A second thread can write
//! durably and wait for it through a [`StoreWriter`].
//!
//! docs/STORAGE.md has the choice of SQLite with its measurements, the format and the crash
//! behaviour.

mod change;
mod disk;
mod rows;
mod worker;

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{JoinHandle, Thread};

use log::{error, info, warn};
use mio::Waker;

use crate::chat::{Account, Change, Snapshot};
use crate::server::AccountWriter;
use disk::Disk;
use worker::Worker;

pub use change::OwnedChange;
pub use disk::{FILE_NAME, FORMAT};

/// Changes the queue to the storage thread holds: more than a second of the busiest fan-out
/// measured (about 15,000 changes a second), about 2 MB.
const QUEUE: usize = 16_384;
/// Changes waiting in the loop when the queue is full, before the loop gives up on them and
/// hands over the whole state instead (about 7 seconds of that fan-out).
const MAX_BACKLOG: usize = 100_000;
/// The lock file that keeps a second server off the same data dir.
const LOCK_FILE: &str = "lock";

/// What the loop (or a [`StoreWriter`]) asks of the storage thread.
pub(crate) enum Op {
    /// Store one change with the next commit.
    Change(OwnedChange),
    /// Store these changes and commit now; the result goes back on the channel.
    WriteNow(Vec<OwnedChange>, SyncSender<io::Result<()>>),
    /// Replace everything stored with this state, and commit.
    Replace(Box<Snapshot>),
    /// Commit, close the database and end the thread.
    Stop,
}

/// What the storage thread tells the loop.
pub(crate) struct Shared {
    /// The thread wants the whole state (writing failed and it is time to retry).
    wants_state: AtomicBool,
    /// Writing failed and the store is not whole until the state is written again.
    failing: AtomicBool,
    /// Wakes the poll loop when the thread wants the state.
    waker: Option<Arc<Waker>>,
}

/// The loop's side of the store: the queue to the storage thread and the backlog.
pub struct Store {
    queue: SyncSender<Op>,
    /// Ops the queue did not take yet, oldest first.
    backlog: VecDeque<Op>,
    /// The backlog overflowed: changes are not queued until the whole state is handed over.
    needs_state: bool,
    /// Changes not queued since the backlog overflowed.
    skipped: u64,
    /// The storage thread is gone (it cannot be, short of a bug): told once.
    gone: bool,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<io::Result<()>>>,
    /// The storage thread, to wake it when the queue is full or a write cannot wait.
    worker: Thread,
    /// Held (locked) while the store is open.
    _lock: File,
}

impl Store {
    /// Opens the data dir `dir` (created if missing), loads what it holds and starts the
    /// storage thread; `waker` wakes the poll loop when the thread needs it. Fails with a
    /// message naming the file when the dir cannot be used: not writable, locked by another
    /// server, corrupt, or from a newer format.
    pub fn open(dir: &Path, waker: Option<Arc<Waker>>) -> io::Result<(Store, Snapshot)> {
        let lock = lock_dir(dir)?;
        let disk = Disk::open(&dir.join(FILE_NAME))?;
        Self::start(lock, disk, waker)
    }

    /// Loads what `disk` holds and starts the storage thread on it.
    fn start(
        lock: File,
        mut disk: Disk,
        waker: Option<Arc<Waker>>,
    ) -> io::Result<(Store, Snapshot)> {
        let started = std::time::Instant::now();
        let snapshot = disk.load()?;
        info!(
            "store: loaded {} in {} ms: {} rooms, {} messages, {} sessions, {} private messages",
            disk.path().display(),
            started.elapsed().as_millis(),
            snapshot.rooms.len(),
            snapshot
                .rooms
                .iter()
                .map(|r| r.messages.len())
                .sum::<usize>(),
            snapshot.sessions.len(),
            snapshot
                .privates
                .iter()
                .map(|(_, p)| p.len())
                .sum::<usize>(),
        );
        let shared = Arc::new(Shared {
            wants_state: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            waker,
        });
        let (queue, ops) = sync_channel(QUEUE);
        let worker = Worker::new(disk, Arc::clone(&shared));
        let thread = std::thread::Builder::new()
            .name("store".into())
            .spawn(move || worker.run(ops))?;
        let store = Store {
            queue,
            backlog: VecDeque::new(),
            needs_state: false,
            skipped: 0,
            gone: false,
            shared,
            worker: thread.thread().clone(),
            thread: Some(thread),
            _lock: lock,
        };
        Ok((store, snapshot))
    }

    /// Queues `change` for the storage thread; never blocks.
    pub fn record(&mut self, change: &Change<'_>) {
        if self.needs_state || self.gone {
            self.skipped += 1;
            return;
        }
        self.push(Op::Change(OwnedChange::from(change)));
    }

    fn push(&mut self, op: Op) {
        if !self.backlog.is_empty() {
            if self.backlog.len() >= MAX_BACKLOG {
                self.overflowed();
            } else {
                self.backlog.push_back(op);
            }
            return;
        }
        match self.queue.try_send(op) {
            Ok(()) => {}
            Err(TrySendError::Full(op)) => {
                self.backlog.push_back(op);
                // Sleeping until its commit time; the queue is full, so take it now.
                self.worker.unpark();
            }
            Err(TrySendError::Disconnected(_)) => self.thread_gone(),
        }
    }

    /// The backlog is full: the disk has not kept up for seconds. Its changes are dropped and
    /// the whole state is handed over at the end of the turn instead.
    fn overflowed(&mut self) {
        warn!(
            "store: the disk is {} changes behind; writing the whole state instead",
            self.backlog.len()
        );
        self.skipped += self.backlog.len() as u64 + 1;
        self.backlog.clear();
        self.needs_state = true;
    }

    fn thread_gone(&mut self) {
        if !self.gone {
            error!("store: the storage thread stopped; changes are no longer written");
        }
        self.gone = true;
        self.backlog.clear();
    }

    /// Moves what waits in the backlog into the queue, as far as it takes it (each turn).
    pub fn retry(&mut self) {
        while let Some(op) = self.backlog.pop_front() {
            match self.queue.try_send(op) {
                Ok(()) => {}
                Err(TrySendError::Full(op)) => {
                    self.backlog.push_front(op);
                    self.worker.unpark();
                    return;
                }
                Err(TrySendError::Disconnected(_)) => return self.thread_gone(),
            }
        }
    }

    /// Whether ops wait in the backlog (the loop then retries soon even when idle).
    pub fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Whether the store needs the chat's whole state: the backlog overflowed, or writing
    /// failed and the storage thread is ready to try again.
    pub fn wants_state(&self) -> bool {
        self.needs_state || self.shared.wants_state.load(Ordering::SeqCst)
    }

    /// Hands over the chat's whole state, replacing what is stored; the changes still waiting
    /// are part of it, so they are dropped.
    pub fn resync(&mut self, state: Snapshot) {
        if self.skipped > 0 {
            info!(
                "store: {} changes were not queued; the whole state replaces them",
                self.skipped
            );
        }
        self.shared.wants_state.store(false, Ordering::SeqCst);
        self.needs_state = false;
        self.skipped = 0;
        self.backlog.clear();
        self.push(Op::Replace(Box::new(state)));
    }

    /// A handle for durable writes from another thread.
    pub fn writer(&self) -> StoreWriter {
        StoreWriter {
            queue: self.queue.clone(),
            worker: self.worker.clone(),
        }
    }

    /// Stops the storage thread once everything queued is committed (blocking: for the end
    /// of the loop). `state` gives the chat's whole state, asked for only if the store is not
    /// whole (a write failed, or the backlog overflowed). An error means the data dir lacks
    /// some of the last changes.
    pub fn close(mut self, state: impl FnOnce() -> Snapshot) -> io::Result<()> {
        if self.needs_state || self.shared.failing.load(Ordering::SeqCst) {
            self.backlog.clear();
            self.backlog.push_back(Op::Replace(Box::new(state())));
            self.needs_state = false;
        }
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let mut sent = true;
        for op in self.backlog.drain(..).chain([Op::Stop]) {
            // Blocking is fine now: the loop has stopped serving.
            if self.queue.send(op).is_err() {
                sent = false;
                break;
            }
            self.worker.unpark();
        }
        let result = match thread.join() {
            Ok(result) => result,
            Err(_) => Err(io::Error::other("the storage thread panicked")),
        };
        match (result, sent && !self.gone) {
            (Err(e), _) => Err(e),
            (Ok(()), false) => Err(io::Error::other(
                "the storage thread stopped early; the last changes are not stored",
            )),
            (Ok(()), true) => Ok(()),
        }
    }
}

impl Drop for Store {
    /// A store dropped without [`Store::close`] (the loop failed) still commits what it has.
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            error!("store: {e}");
        }
    }
}

impl Store {
    /// The password worker's way to save registrations durably before the user is told.
    pub fn account_writer(&self) -> Box<dyn AccountWriter> {
        Box::new(self.writer())
    }
}

impl AccountWriter for StoreWriter {
    fn save(&mut self, nick: &str, account: &Account) -> io::Result<()> {
        self.write_now(vec![OwnedChange::AccountSaved {
            nick: nick.to_string(),
            account: account.clone(),
        }])
    }

    fn remove(&mut self, nick: &str) -> io::Result<()> {
        self.write_now(vec![OwnedChange::AccountRemoved {
            nick: nick.to_string(),
        }])
    }
}

/// Durable writes from a thread other than the poll loop (which must never wait for the disk).
#[derive(Clone)]
pub struct StoreWriter {
    queue: SyncSender<Op>,
    worker: Thread,
}

impl StoreWriter {
    /// Writes `changes` and returns once they are committed to disk, with everything queued
    /// before them. Blocks: not for the poll loop. Changes still waiting in the loop's backlog
    /// may be committed after these.
    pub fn write_now(&self, changes: Vec<OwnedChange>) -> io::Result<()> {
        let gone = || io::Error::other("the store is closed");
        let (reply, answer) = sync_channel(1);
        self.queue
            .send(Op::WriteNow(changes, reply))
            .map_err(|_| gone())?;
        self.worker.unpark();
        answer.recv().map_err(|_| gone())?
    }
}

/// Creates `dir` if needed and takes its lock, so two servers never write the same data.
fn lock_dir(dir: &Path) -> io::Result<File> {
    let at = |what: &str, e: io::Error| {
        io::Error::new(e.kind(), format!("data dir {}: {what}: {e}", dir.display()))
    };
    if dir.exists() && !dir.is_dir() {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!("data dir {} is not a directory", dir.display()),
        ));
    }
    fs::create_dir_all(dir).map_err(|e| at("cannot create it", e))?;
    let path: PathBuf = dir.join(LOCK_FILE);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| at(&format!("cannot open {}", path.display()), e))?;
    if try_lock(&lock) {
        return Ok(lock);
    }
    let e = io::Error::last_os_error();
    if e.kind() == ErrorKind::WouldBlock {
        return Err(io::Error::new(
            ErrorKind::AddrInUse,
            format!(
                "data dir {} is in use by another chat-server ({} is locked)",
                dir.display(),
                path.display()
            ),
        ));
    }
    Err(at(&format!("cannot lock {}", path.display()), e))
}

/// Takes an exclusive `flock` on `file` without waiting (the kernel drops it when the process
/// ends, however it ends); false with the reason in `errno`.
fn try_lock(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this File owns; it touches no memory.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[cfg(test)]
mod tests;
