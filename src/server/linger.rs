//! Sockets the server is done with but does not close yet: clients turned away (`! server
//! full`, too many connections from one address) and answered metrics requests.
//!
//! Closing a socket whose input has not all been read makes the kernel send a reset instead
//! of a FIN, and the reset can destroy our last line before the peer reads it: a client that
//! sent its `/nick` right after connecting never saw `! server full`. So such a socket is shut
//! down for writing (the peer gets the line, then end of file) and kept here, its input read
//! and dropped as it comes, until the peer closes too or [`LINGER`] passes. Each one holds a
//! descriptor, so at most [`MAX_LINGERING`] are kept; past that the oldest goes first.

use std::io::{ErrorKind, Read};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use log::debug;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use slab::Slab;

use super::LINGER_TOKENS;

/// How long a socket is kept for its peer to read our last line and close.
const LINGER: Duration = Duration::from_secs(2);
/// The most sockets kept at once: well inside the descriptors `--max-connections` leaves
/// free (`config::FD_RESERVE`), so lingering never makes the server run out of them.
const MAX_LINGERING: usize = 32;
/// Reads of one socket per readiness event, so a peer that keeps sending cannot hold the loop.
const READS_PER_EVENT: usize = 16;

/// Sockets waiting for their peer to close, each with the time it is closed anyway.
#[derive(Default)]
pub(super) struct Lingering {
    sockets: Slab<(TcpStream, Instant)>,
}

/// What reading a lingering socket found.
#[derive(Debug, PartialEq, Eq)]
enum Drained {
    /// Its input is read; the peer may still send (or close).
    Open,
    /// The peer closed, or the connection failed: nothing is left to wait for.
    Done,
}

impl Lingering {
    /// Keeps `stream`, whose last line has been written, until its peer closes or for
    /// [`LINGER`].
    pub(super) fn hold(&mut self, registry: &Registry, mut stream: TcpStream, now: Instant) {
        // The peer gets end of file after our line, and can close its side in turn.
        let _ = stream.shutdown(Shutdown::Write);
        if drain(&mut stream) == Drained::Done {
            return;
        }
        if self.sockets.len() >= MAX_LINGERING {
            self.close_oldest(registry);
        }
        let entry = self.sockets.vacant_entry();
        let token = Token(LINGER_TOKENS + entry.key());
        if let Err(e) = registry.register(&mut stream, token, Interest::READABLE) {
            debug!("could not keep a socket until its peer closes: {e}");
            return;
        }
        entry.insert((stream, now + LINGER));
    }

    /// Reads (and drops) what the socket of `key` received, and closes it once its peer did.
    pub(super) fn readable(&mut self, registry: &Registry, key: usize) {
        let Some((stream, _)) = self.sockets.get_mut(key) else {
            return;
        };
        if drain(stream) == Drained::Done {
            self.close(registry, key);
        }
    }

    /// When the next socket is closed anyway.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.sockets.iter().map(|(_, &(_, until))| until).min()
    }

    /// Closes the sockets whose peer did not close in time.
    pub(super) fn expire(&mut self, registry: &Registry, now: Instant) {
        let overdue: Vec<usize> = self
            .sockets
            .iter()
            .filter(|(_, &(_, until))| until <= now)
            .map(|(key, _)| key)
            .collect();
        for key in overdue {
            self.close(registry, key);
        }
    }

    /// Makes room by closing the socket that has waited longest.
    fn close_oldest(&mut self, registry: &Registry) {
        let oldest = self
            .sockets
            .iter()
            .min_by_key(|(_, &(_, until))| until)
            .map(|(key, _)| key);
        if let Some(key) = oldest {
            self.close(registry, key);
        }
    }

    fn close(&mut self, registry: &Registry, key: usize) {
        if let Some((mut stream, _)) = self.sockets.try_remove(key) {
            let _ = registry.deregister(&mut stream);
        }
    }
}

/// Reads and drops what `stream` has received, a bounded amount of it.
fn drain(stream: &mut TcpStream) -> Drained {
    let mut scratch = [0; 4096];
    for _ in 0..READS_PER_EVENT {
        match stream.read(&mut scratch) {
            Ok(0) => return Drained::Done,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Drained::Open,
            Err(_) => return Drained::Done,
        }
    }
    Drained::Open
}

/// Reads and drops what `stream` has received so far (bounded), before it is closed at once:
/// for when it cannot be kept (the process is out of descriptors).
pub(super) fn drain_now(stream: &mut TcpStream) {
    drain(stream);
}
