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
//! which of them it gets ([`Span`]s). Lines for a whole room and lines for one client are kept
//! apart, so the room lines of a turn lie next to each other: a member of the one busy room gets
//! a single span and is written straight from the turn's buffer. A connection with several
//! spans has them gathered into one scratch buffer shared by all connections, member after
//! member, so the copying streams through the cache instead of appending to a thousand
//! scattered buffers per line; either way it is one `write()` per connection per turn.
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
    /// Lines for many connections (room lines, presence), in the order they were made.
    shared: Vec<u8>,
    /// Lines for one connection (echoes, answers, errors), kept out of `shared` so that they do
    /// not split the room lines of a turn into one span each.
    direct: Vec<u8>,
}

/// Where a line lies in the [`TurnOutput`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    start: usize,
    len: u32,
    direct: bool,
}

impl Span {
    /// The length in bytes.
    pub(crate) fn len(self) -> usize {
        self.len as usize
    }

    /// `next` if it continues this span in the same buffer, merged into it.
    fn merge(&mut self, next: Span) -> bool {
        if self.direct == next.direct && self.start + self.len() == next.start {
            self.len += next.len;
            return true;
        }
        false
    }
}

impl TurnOutput {
    /// Stores `line` (for many connections) for this turn.
    pub fn store_shared(&mut self, line: &[u8]) -> Span {
        store_in(&mut self.shared, line, false)
    }

    /// Stores `line` (for one connection) for this turn.
    pub fn store_direct(&mut self, line: &[u8]) -> Span {
        store_in(&mut self.direct, line, true)
    }

    fn get(&self, span: Span) -> &[u8] {
        let bytes = if span.direct {
            &self.direct
        } else {
            &self.shared
        };
        &bytes[span.start..span.start + span.len()]
    }

    /// Forgets the turn's lines; every connection has taken its spans by now.
    pub fn clear(&mut self) {
        self.shared.clear();
        self.direct.clear();
    }
}

fn store_in(bytes: &mut Vec<u8>, line: &[u8], direct: bool) -> Span {
    let start = bytes.len();
    bytes.extend_from_slice(line);
    Span {
        start,
        // A line is at most --max-line (1 MiB) plus a prefix, or a list of 200 names: far below
        // 4 GiB, so the length always fits.
        len: u32::try_from(line.len()).unwrap_or(u32::MAX),
        direct,
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
        if self.pending() + span.len() > limit {
            return false;
        }
        self.span_bytes += span.len();
        match self.spans.last_mut() {
            // Lines stored one after the other are one span.
            Some(last) => {
                if !last.merge(span) {
                    self.spans.push(span);
                }
            }
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
                // One span is written from the turn's buffer as it is; several are gathered.
                let bytes = match spans.as_slice() {
                    [span] => turn.get(*span),
                    _ => {
                        scratch.clear();
                        for &span in &spans {
                            scratch.extend_from_slice(turn.get(span));
                        }
                        scratch.as_slice()
                    }
                };
                pool.give_spans(spans);
                let written = match self.stream.write(bytes) {
                    Ok(n) => n,
                    Err(e) if is_transient(&e) => 0,
                    Err(e) => return Err(e),
                };
                if written == bytes.len() {
                    return Ok(Flushed::All);
                }
                if self.out.capacity() == 0 {
                    self.out = pool.take();
                }
                self.out.clear();
                self.written = 0;
                self.out.extend_from_slice(&bytes[written..]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream as StdStream};

    /// A connection over a real loopback socket, and the peer end that reads what it writes.
    fn connection_pair() -> io::Result<(Connection, StdStream)> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let peer = StdStream::connect(listener.local_addr()?)?;
        let (accepted, addr) = listener.accept()?;
        accepted.set_nonblocking(true)?;
        Ok((Connection::new(TcpStream::from_std(accepted), addr), peer))
    }

    fn read_exactly(peer: &mut StdStream, len: usize) -> io::Result<Vec<u8>> {
        let mut bytes = vec![0; len];
        peer.read_exact(&mut bytes)?;
        Ok(bytes)
    }

    #[test]
    fn room_lines_form_one_span_and_direct_lines_keep_their_place() -> io::Result<()> {
        let (mut member, mut member_peer) = connection_pair()?;
        let (mut sender, mut sender_peer) = connection_pair()?;
        let mut turn = TurnOutput::default();
        let mut pool = BufferPool::default();
        for (room_line, echo) in [
            (&b"[r] s: one\r\n"[..], &b"You: one\r\n"[..]),
            (b"[r] s: two\r\n", b"You: two\r\n"),
        ] {
            let shared = turn.store_shared(room_line);
            assert!(member.queue(shared, 1 << 20, &mut pool));
            let direct = turn.store_direct(echo);
            assert!(sender.queue(direct, 1 << 20, &mut pool));
            let seen = turn.store_shared(b"* [r] x joined\r\n");
            assert!(sender.queue(seen, 1 << 20, &mut pool));
            assert!(member.queue(seen, 1 << 20, &mut pool));
        }
        assert_eq!(member.spans.len(), 1, "a room member's lines are one span");
        assert_eq!(sender.spans.len(), 4);
        let mut scratch = Vec::new();
        assert_eq!(member.flush(&turn, &mut scratch, &mut pool)?, Flushed::All);
        assert_eq!(sender.flush(&turn, &mut scratch, &mut pool)?, Flushed::All);
        let member_expected = b"[r] s: one\r\n* [r] x joined\r\n[r] s: two\r\n* [r] x joined\r\n";
        let sender_expected = b"You: one\r\n* [r] x joined\r\nYou: two\r\n* [r] x joined\r\n";
        assert_eq!(
            read_exactly(&mut member_peer, member_expected.len())?,
            member_expected
        );
        assert_eq!(
            read_exactly(&mut sender_peer, sender_expected.len())?,
            sender_expected
        );
        assert_eq!(member.pending() + sender.pending(), 0);
        Ok(())
    }

    #[test]
    fn the_limit_refuses_a_line_that_would_pass_it() -> io::Result<()> {
        let (mut conn, _peer) = connection_pair()?;
        let mut turn = TurnOutput::default();
        let mut pool = BufferPool::default();
        let line = turn.store_shared(&[b'x'; 100]);
        assert!(conn.queue(line, 250, &mut pool));
        assert!(conn.queue(line, 250, &mut pool));
        assert!(!conn.queue(line, 250, &mut pool));
        assert_eq!(conn.pending(), 200);
        Ok(())
    }
}
