//! One client connection as the poll loop sees it: the socket, its line decoder and its output
//! buffer with a hard limit.
//!
//! Output is queued here by the chat (through the loop's outbox) and written out once per loop
//! turn, so many lines queued in one turn leave in one `write()` (the one exception: a buffer
//! about to pass its limit is written at once, before its reader is called slow). A reader that stops
//! reading fills its buffer up to the limit and is then dropped, as Redis does with its client
//! output buffer limits: nobody else ever waits for it.
//!
//! The lines of a turn are stored once, in the loop's [`TurnOutput`]; a connection only notes
//! which of them it gets ([`Span`]s). At the end of the turn its spans are gathered into one
//! scratch buffer shared by all connections and written with one `write()`. A line fanned out to
//! a thousand members is copied once into the turn and once per member at write time, member
//! after member, so the copying streams through the cache instead of appending to a thousand
//! scattered buffers per line.
//!
//! Only what the socket did not take stays with the connection, in its own buffer (from a
//! [`BufferPool`] shared by all, given back once everything is written), so an idle connection
//! holds no output memory at all.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};

use mio::net::TcpStream;

use crate::protocol::LineDecoder;

/// Buffers bigger than this (grown by a burst) are freed instead of pooled.
const POOLED_CAPACITY: usize = 32 * 1024;
/// The pool holds at most this many bytes of buffer capacity.
const POOL_BYTES: usize = 8 * 1024 * 1024;
/// Span lists longer than this are freed instead of pooled.
const POOLED_SPANS: usize = 1024;
/// The pool holds at most this many span lists: more than the connections a process can have, so
/// a burst that reaches every connection each turn (a join storm in a big room) reuses lists
/// instead of churning the heap, which left it fragmented and the RSS of 19,000 idle connections
/// a third higher. The pool only ever holds lists that were in use in one turn, so it never
/// raises the peak, and it is freed after a quiet second.
const POOL_LISTS: usize = 65_536;

/// Empty output buffers kept for reuse by whichever connection next has output.
#[derive(Debug, Default)]
pub struct BufferPool {
    free: Vec<Vec<u8>>,
    /// Total capacity of `free`.
    bytes: usize,
    /// Empty span lists, likewise.
    spans: Vec<Vec<Span>>,
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

    /// An empty span list, with capacity if one was pooled.
    pub fn take_spans(&mut self) -> Vec<Span> {
        self.spans.pop().unwrap_or_default()
    }

    /// Takes back a span list; frees it if the pool has enough or it is big.
    pub fn give_spans(&mut self, mut spans: Vec<Span>) {
        if spans.capacity() == 0
            || spans.capacity() > POOLED_SPANS
            || self.spans.len() >= POOL_LISTS
        {
            return;
        }
        spans.clear();
        self.spans.push(spans);
    }

    /// Frees every pooled buffer (the server has gone quiet).
    pub fn release(&mut self) {
        self.free = Vec::new();
        self.bytes = 0;
        self.spans = Vec::new();
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

/// The lines queued in one loop turn, each stored once however many connections get it.
#[derive(Debug, Default)]
pub struct TurnOutput {
    bytes: Vec<u8>,
    /// The line stored last: a fan-out sends the same line to every member in a row.
    last: Span,
}

/// Where a line lies in the [`TurnOutput`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    start: usize,
    len: usize,
}

impl TurnOutput {
    /// Stores `line` for this turn, or finds it if it is the line stored last.
    pub fn store(&mut self, line: &[u8]) -> Span {
        let last = &self.bytes[self.last.start..self.last.start + self.last.len];
        if !line.is_empty() && last == line {
            return self.last;
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(line);
        self.last = Span {
            start,
            len: line.len(),
        };
        self.last
    }

    fn get(&self, span: Span) -> &[u8] {
        &self.bytes[span.start..span.start + span.len]
    }

    /// Forgets the turn's lines; every connection has taken its spans by now.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.last = Span::default();
    }
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
    /// The loop turn in which the connection was last read.
    pub read_in_turn: u64,
    /// Output left over from earlier turns (the socket did not take all of it).
    out: Vec<u8>,
    /// Bytes of `out` before this have been written already.
    written: usize,
    /// This turn's lines for this connection, to go after `out`.
    spans: Vec<Span>,
    /// Bytes in `spans`.
    span_bytes: usize,
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
            read_in_turn: 0,
            out: Vec::new(),
            written: 0,
            spans: Vec::new(),
            span_bytes: 0,
        }
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.out.len() - self.written + self.span_bytes
    }

    /// Queues the line at `span` of this turn's output unless that would take the pending
    /// output past `limit`; a connection without a span list takes one from `pool`.
    ///
    /// Returns `false` (and queues nothing) when the limit would be passed.
    pub fn queue(&mut self, span: Span, limit: usize, pool: &mut BufferPool) -> bool {
        if self.pending() + span.len > limit {
            return false;
        }
        self.span_bytes += span.len;
        match self.spans.last_mut() {
            // Lines stored one after the other are one span.
            Some(last) if last.start + last.len == span.start => last.len += span.len,
            Some(_) => self.spans.push(span),
            None => {
                if self.spans.capacity() == 0 {
                    self.spans = pool.take_spans();
                }
                self.spans.push(span);
            }
        }
        true
    }

    /// Forgets everything queued (the connection is being dropped).
    pub fn discard_output(&mut self, pool: &mut BufferPool) {
        pool.give(std::mem::take(&mut self.out));
        pool.give_spans(std::mem::take(&mut self.spans));
        self.span_bytes = 0;
        self.written = 0;
    }

    /// Writes what is queued with a single `write()` call: this turn's lines from `turn`,
    /// gathered in `scratch`, behind whatever earlier turns left. What the socket does not take
    /// stays in the connection's own buffer (from `pool`, given back once it is all written).
    pub fn flush(
        &mut self,
        turn: &TurnOutput,
        scratch: &mut Vec<u8>,
        pool: &mut BufferPool,
    ) -> io::Result<Flushed> {
        if !self.spans.is_empty() {
            let spans = std::mem::take(&mut self.spans);
            self.span_bytes = 0;
            if self.out.len() > self.written {
                // Earlier output is still waiting: this turn's lines go behind it.
                if self.written > 0 {
                    self.out.drain(..self.written);
                    self.written = 0;
                }
                for &span in &spans {
                    self.out.extend_from_slice(turn.get(span));
                }
            } else {
                scratch.clear();
                for &span in &spans {
                    scratch.extend_from_slice(turn.get(span));
                }
                pool.give_spans(spans);
                let written = match self.stream.write(scratch) {
                    Ok(n) => n,
                    Err(e) if is_transient(&e) => 0,
                    Err(e) => return Err(e),
                };
                if written == scratch.len() {
                    return Ok(Flushed::All);
                }
                if self.out.capacity() == 0 {
                    self.out = pool.take();
                }
                self.out.clear();
                self.written = 0;
                self.out.extend_from_slice(&scratch[written..]);
                return Ok(Flushed::Partial);
            }
            pool.give_spans(spans);
        }
        if self.out.len() > self.written {
            match self.stream.write(&self.out[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if is_transient(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if self.out.len() > self.written {
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
