//! One client connection as the poll loop sees it: the socket, its line decoder and its output
//! buffer with a hard limit.
//!
//! Output is appended here by the chat (through the loop's outbox) and written out at most once
//! per loop turn, so many lines queued in one turn leave in one `write()`. A reader that stops
//! reading fills its buffer up to the limit and is then dropped, as Redis does with its client
//! output buffer limits: nobody else ever waits for it.
//!
//! A connection holds an output buffer only while it has output pending: once everything is
//! written the buffer goes back to a [`BufferPool`] shared by all connections, so an idle
//! connection costs no buffer memory and a busy one reuses a buffer that is already big enough
//! instead of growing a fresh one every turn.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};

use mio::net::TcpStream;

use crate::protocol::LineDecoder;

/// Buffers bigger than this (grown by a burst) are freed instead of pooled.
const POOLED_CAPACITY: usize = 32 * 1024;
/// The pool holds at most this many bytes of buffer capacity.
const POOL_BYTES: usize = 8 * 1024 * 1024;

/// Empty output buffers kept for reuse by whichever connection next has output.
#[derive(Debug, Default)]
pub struct BufferPool {
    free: Vec<Vec<u8>>,
    /// Total capacity of `free`.
    bytes: usize,
}

impl BufferPool {
    /// An empty buffer, with capacity if one was pooled.
    pub fn take(&mut self) -> Vec<u8> {
        match self.free.pop() {
            Some(buf) => {
                self.bytes -= buf.capacity();
                buf
            }
            None => Vec::new(),
        }
    }

    /// Takes back a buffer that is no longer needed; frees it if the pool is full or it is big.
    pub fn give(&mut self, mut buf: Vec<u8>) {
        let capacity = buf.capacity();
        if capacity == 0 || capacity > POOLED_CAPACITY || self.bytes + capacity > POOL_BYTES {
            return;
        }
        buf.clear();
        self.bytes += capacity;
        self.free.push(buf);
    }

    /// Frees every pooled buffer (the server has gone quiet).
    pub fn release(&mut self) {
        self.free = Vec::new();
        self.bytes = 0;
    }

    /// Bytes of buffer capacity held by the pool.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

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
    /// Input read but not yet decoded: the client sent more lines than one turn handles.
    pub unread: Vec<u8>,
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
            unread: Vec::new(),
            out: Vec::new(),
            written: 0,
        }
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.out.len() - self.written
    }

    /// Queues `line` unless that would take the pending output past `limit`; a connection
    /// without a buffer takes one from `pool`.
    ///
    /// Returns `false` (and queues nothing) when the limit would be passed.
    pub fn queue(&mut self, line: &[u8], limit: usize, pool: &mut BufferPool) -> bool {
        if self.pending() + line.len() > limit {
            return false;
        }
        if self.out.capacity() == 0 {
            self.out = pool.take();
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
    pub fn discard_output(&mut self, pool: &mut BufferPool) {
        pool.give(std::mem::take(&mut self.out));
        self.written = 0;
    }

    /// Writes what is queued with a single `write()` call; once everything is written the
    /// buffer goes back to `pool`.
    pub fn flush(&mut self, pool: &mut BufferPool) -> io::Result<Flushed> {
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
        pool.give(std::mem::take(&mut self.out));
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
