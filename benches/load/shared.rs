//! What the main thread and the worker threads share: the run's phase, which the main thread
//! moves on and the workers watch, and the counters the workers add to.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

/// The phases of a run, in order; the workers compare them (`phase >= Phase::Drain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// Clients connect and register; no traffic yet.
    Setup = 0,
    /// Traffic flows but is not counted.
    Warmup = 1,
    /// Traffic flows and latencies are recorded.
    Measure = 2,
    /// No new messages; those in flight may still arrive.
    Drain = 3,
    /// The workers stop.
    Done = 4,
}

impl From<Phase> for u8 {
    fn from(phase: Phase) -> u8 {
        phase as u8
    }
}

impl TryFrom<u8> for Phase {
    /// The value that is no phase.
    type Error = u8;

    fn try_from(value: u8) -> Result<Self, u8> {
        match value {
            0 => Ok(Phase::Setup),
            1 => Ok(Phase::Warmup),
            2 => Ok(Phase::Measure),
            3 => Ok(Phase::Drain),
            4 => Ok(Phase::Done),
            other => Err(other),
        }
    }
}

/// A [`Phase`] in an atomic, so that the workers can read it every loop turn without a lock.
#[derive(Debug)]
pub struct AtomicPhase(AtomicU8);

impl Default for AtomicPhase {
    fn default() -> Self {
        Self(AtomicU8::new(Phase::Setup.into()))
    }
}

impl AtomicPhase {
    /// The current phase.
    pub fn load(&self) -> Phase {
        // Only `store` writes the atomic, so every value is a phase; were it not, stopping the
        // workers is the safe reading.
        Phase::try_from(self.0.load(Relaxed)).unwrap_or(Phase::Done)
    }

    /// Moves the run to `phase`.
    pub fn store(&self, phase: Phase) {
        self.0.store(phase.into(), Relaxed);
    }
}

/// The phase, and the counters the workers share (each adds its local counts once per loop
/// turn).
#[derive(Default)]
pub struct Shared {
    /// Where the run stands; set by the main thread.
    pub phase: AtomicPhase,
    registered: AtomicU64,
    failed: AtomicU64,
    errors: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
    deliveries: AtomicU64,
    sessions: AtomicU64,
    error_samples: Mutex<Vec<String>>,
}

/// A snapshot of [`Shared`]'s counters, or a worker's counts not yet added to them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Clients that finished registering (joined their room).
    pub registered: u64,
    /// Clients that gave up connecting or registering.
    pub failed: u64,
    /// Error lines from the server, and connections lost once registered.
    pub errors: u64,
    /// Messages queued by senders.
    pub sent: u64,
    /// Messages acknowledged to their sender (its echo, or for IRC a stand-in receiver's copy).
    pub acked: u64,
    /// Message lines that arrived at a client.
    pub deliveries: u64,
    /// Churn sessions completed.
    pub sessions: u64,
}

impl Shared {
    /// The counters as they are now.
    pub fn counts(&self) -> Counts {
        Counts {
            registered: self.registered.load(Relaxed),
            failed: self.failed.load(Relaxed),
            errors: self.errors.load(Relaxed),
            sent: self.sent.load(Relaxed),
            acked: self.acked.load(Relaxed),
            deliveries: self.deliveries.load(Relaxed),
            sessions: self.sessions.load(Relaxed),
        }
    }

    /// Adds a worker's counts (only the non-zero ones: most turns touch one or two counters).
    pub fn add(&self, c: &Counts) {
        for (atomic, n) in [
            (&self.registered, c.registered),
            (&self.failed, c.failed),
            (&self.errors, c.errors),
            (&self.sent, c.sent),
            (&self.acked, c.acked),
            (&self.deliveries, c.deliveries),
            (&self.sessions, c.sessions),
        ] {
            if n > 0 {
                atomic.fetch_add(n, Relaxed);
            }
        }
    }

    /// Keeps the first few errors to show in the report.
    pub fn note_error(&self, what: String) {
        let mut samples = self
            .error_samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if samples.len() < 5 {
            samples.push(what);
        }
    }

    /// The errors kept by [`Shared::note_error`].
    pub fn error_samples(&self) -> Vec<String> {
        self.error_samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
