//! How the helper threads hand news to the loop, and the queue levels they share with it.
//!
//! Two channels lead to the loop. Other nodes' messages, and the subscriber's `Up` and `Down`
//! between them (in the order they happened), go through the *data* channel, which the loop
//! takes from at its own pace, a turn's worth at a time; it is bounded by [`Levels`]: at the
//! hard bound the subscriber waits before it hands over more ([`Notifier::send_remote`]).
//! Claim answers and other nodes' flow-control news go through the *control* channel, which
//! the loop empties every turn: a login or a "slow down" never waits behind a backlog.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::warn;
use mio::Waker;

use super::flow::Backlog;
use super::{Incoming, RemoteMessage};

/// How long the subscriber sleeps between looks while the loop's queue is at its bound.
const FULL_WAIT: Duration = Duration::from_millis(1);

/// Queue levels shared by the loop and the helper threads.
#[derive(Debug, Default)]
pub struct Levels {
    /// Other nodes' messages handed to the loop and not yet taken by it.
    remote_messages: AtomicUsize,
    /// Their size on the wire, in bytes.
    remote_bytes: AtomicUsize,
    /// Jobs handed to the worker and not yet taken by it.
    jobs: AtomicUsize,
    /// The subscriber told the other nodes that this one is behind, ahead of the loop (which
    /// only looks once a turn, and a turn fanning out a backlog is long).
    warned: AtomicBool,
    /// Another node said it is behind since the loop last took its control news: clients are
    /// paced at once, not from the loop's next turn on (a turn can read thousands of lines).
    peer_behind: AtomicBool,
}

impl Levels {
    /// Other nodes' messages waiting for the loop.
    pub fn remote(&self) -> Backlog {
        Backlog {
            messages: self.remote_messages.load(Ordering::Relaxed),
            bytes: self.remote_bytes.load(Ordering::Relaxed),
        }
    }

    /// The loop took another node's message of `bytes`.
    pub fn remote_taken(&self, bytes: usize) {
        self.remote_messages.fetch_sub(1, Ordering::Relaxed);
        self.remote_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Whether the subscriber told the other nodes that this one is behind.
    pub fn warned(&self) -> bool {
        self.warned.load(Ordering::Relaxed)
    }

    /// This node has caught up: the subscriber may warn again next time.
    pub fn clear_warning(&self) {
        self.warned.store(false, Ordering::Relaxed);
    }

    /// Whether another node said it is behind since the loop last took its control news.
    pub fn peer_behind(&self) -> bool {
        self.peer_behind.load(Ordering::Relaxed)
    }

    /// The loop takes its control news: what another node said is in its flow control now.
    pub fn clear_peer_behind(&self) {
        self.peer_behind.store(false, Ordering::Relaxed);
    }

    /// Jobs waiting for the worker.
    pub fn jobs(&self) -> usize {
        self.jobs.load(Ordering::Relaxed)
    }

    /// A job is about to be handed to the worker (counted first, so the worker's count down
    /// never passes below zero).
    pub fn job_queued(&self) {
        self.jobs.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` jobs were taken by the worker, or never made it into its queue.
    pub fn jobs_taken(&self, n: usize) {
        self.jobs.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Hands news to the loop and wakes it.
#[derive(Clone)]
pub struct Notifier {
    /// Other nodes' messages, `Up` and `Down`, in order.
    data: Sender<Incoming>,
    /// Claim answers and flow-control news.
    control: Sender<Incoming>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    levels: Arc<Levels>,
}

impl Notifier {
    /// A notifier over the two channels to the loop.
    pub fn new(
        data: Sender<Incoming>,
        control: Sender<Incoming>,
        waker: Arc<Waker>,
        stop: Arc<AtomicBool>,
        levels: Arc<Levels>,
    ) -> Self {
        Self {
            data,
            control,
            waker,
            stop,
            levels,
        }
    }

    /// Hands another node's message (`bytes` on the wire) to the loop. While the loop's queue
    /// is at its hard bound it waits first: meanwhile Redis keeps what follows, and the
    /// senders are being paced. Returns false, without handing it over, if the cluster is
    /// stopping.
    pub fn send_remote(&self, node: String, message: RemoteMessage, bytes: usize) -> bool {
        while self.levels.remote().full() {
            if self.stopping() {
                return false;
            }
            std::thread::sleep(FULL_WAIT);
        }
        self.levels.remote_messages.fetch_add(1, Ordering::Relaxed);
        self.levels.remote_bytes.fetch_add(bytes, Ordering::Relaxed);
        Self::deliver(
            &self.data,
            &self.waker,
            Incoming::Remote {
                node,
                message,
                bytes,
            },
        );
        true
    }

    /// Tells the loop that the subscription is up or down, in order with the messages.
    pub fn send_status(&self, incoming: Incoming) {
        Self::deliver(&self.data, &self.waker, incoming);
    }

    /// Hands the loop news it takes every turn: a claim's answer, a node's flow control.
    pub fn send_control(&self, incoming: Incoming) {
        if matches!(incoming, Incoming::Flow { behind: true, .. }) {
            self.levels.peer_behind.store(true, Ordering::Relaxed);
        }
        Self::deliver(&self.control, &self.waker, incoming);
    }

    /// The worker took `n` jobs from its queue.
    pub fn jobs_taken(&self, n: usize) {
        self.levels.jobs_taken(n);
    }

    /// Whether the subscriber should warn the other nodes now: the loop's queue just passed
    /// the high mark, and nobody warned them yet in this spell.
    pub fn should_warn(&self) -> bool {
        self.levels.remote().over() && !self.levels.warned.swap(true, Ordering::Relaxed)
    }

    /// The queue levels.
    pub fn levels(&self) -> &Levels {
        &self.levels
    }

    fn deliver(channel: &Sender<Incoming>, waker: &Waker, incoming: Incoming) {
        if channel.send(incoming).is_ok() {
            if let Err(e) = waker.wake() {
                warn!("could not wake the poll loop: {e}");
            }
        }
    }

    /// Whether the cluster is stopping.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps for `pause` in short steps, returning early (true) if the cluster is stopping.
    pub fn pause(&self, pause: Duration) -> bool {
        let until = Instant::now() + pause;
        while Instant::now() < until {
            if self.stopping() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
        self.stopping()
    }
}
