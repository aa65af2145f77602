//! One client connection as the poll loop sees it: the socket, its line decoder and its output
//! buffer with a hard limit.
//!
//! Output is appended here by the chat (through the loop's outbox) and written out at most once
//! per loop turn, so many lines queued in one turn leave in one `write()`. A reader that stops
//! reading fills its buffer up to the limit and is then dropped, as Redis does with its client
//! output buffer limits: nobody else ever waits for it.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};

use mio::net::TcpStream;

use crate::protocol::LineDecoder;

/// An output buffer that was used for a burst gives its memory back once it is empty again if its
/// capacity is above this, so idle connections stay small.
const KEEP_CAPACITY: usize = 4096;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Reading and writing normally.
    Open,
    /// The chat said goodbye (`/quit`, shutdown): write what is queued, then close.
    Closing,
    /// Going away without flushing (error, EOF, output limit); the loop reaps it this turn.
    Doomed,
}

/// The outcome of one write attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything queued has been written.
    All,
    /// The socket took part of it; the rest waits for the next writable event.
    Partial,
}

/// A client connection owned by the poll loop.
#[derive(Debug)]
pub struct Connection {
    /// The socket (non-blocking, registered edge-triggered for reading and writing).
    pub stream: TcpStream,
    /// The client's address, for logs.
    pub peer: SocketAddr,
    /// Splits the input into lines.
    pub decoder: LineDecoder,
    /// Where the connection is in its life.
    pub state: State,
    /// Set while the connection is on the loop's list of connections to flush this turn.
    pub dirty: bool,
    out: Vec<u8>,
    /// Bytes of `out` before this have been written already.
    written: usize,
}

impl Connection {
    /// Wraps an accepted socket.
    pub fn new(stream: TcpStream, peer: SocketAddr) -> Self {
        Self {
            stream,
            peer,
            decoder: LineDecoder::new(),
            state: State::Open,
            dirty: false,
            out: Vec::new(),
            written: 0,
        }
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.out.len() - self.written
    }

    /// Queues `line` unless that would take the pending output past `limit`.
    ///
    /// Returns `false` (and queues nothing) when the limit would be passed.
    pub fn queue(&mut self, line: &[u8], limit: usize) -> bool {
        if self.pending() + line.len() > limit {
            return false;
        }
        // Reclaim the written prefix before growing, so the buffer never exceeds about the limit.
        if self.written > 0 && self.out.len() + line.len() > self.out.capacity() {
            self.out.drain(..self.written);
            self.written = 0;
        }
        self.out.extend_from_slice(line);
        true
    }

    /// Forgets everything queued (the connection is being dropped).
    pub fn discard_output(&mut self) {
        self.out = Vec::new();
        self.written = 0;
    }

    /// Writes what is queued with a single `write()` call.
    pub fn flush(&mut self) -> io::Result<Flushed> {
        if self.pending() > 0 {
            match self.stream.write(&self.out[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if is_transient(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if self.pending() > 0 {
            return Ok(Flushed::Partial);
        }
        self.written = 0;
        if self.out.capacity() > KEEP_CAPACITY {
            self.out = Vec::new();
        } else {
            self.out.clear();
        }
        Ok(Flushed::All)
    }

    /// Reads and drops whatever input is waiting, then shuts the socket down.
    ///
    /// Closing a socket with unread input makes the kernel send a reset, which can destroy our
    /// last lines (a goodbye) before the peer reads them; draining first avoids that.
    pub fn close_gracefully(&mut self, scratch: &mut [u8]) {
        // Bounded, so a peer that keeps sending cannot hold the loop here.
        for _ in 0..64 {
            match self.stream.read(scratch) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        // The peer may already be gone; nothing is lost if this fails.
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Errors after which the same call may succeed later.
pub fn is_transient(error: &io::Error) -> bool {
    matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
}
