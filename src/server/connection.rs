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
use std::time::Instant;

use mio::net::TcpStream;

use super::flood::FloodBudget;
use super::metrics::Disconnect;
use super::output::{BufferPool, Span, TurnOutput};
use crate::protocol::LineDecoder;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Reading and writing normally.
    Open,
    /// The chat said goodbye (`/quit`, shutdown): write what is queued, then close.
    Closing,
    /// Going away without flushing (error, EOF, output limit); the loop reaps it this turn.
    Doomed,
}

/// The outcome of one write attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// Everything queued has been written.
    All,
    /// The socket took part of it; the rest waits for the next writable event.
    Partial,
}

/// A client connection owned by the poll loop.
#[derive(Debug)]
pub(crate) struct Connection {
    /// The socket (non-blocking, registered edge-triggered for reading and writing).
    pub(crate) stream: TcpStream,
    /// The client's address, for logs.
    pub(crate) peer: SocketAddr,
    /// Splits the input into lines.
    pub(crate) decoder: LineDecoder,
    /// Where the connection is in its life.
    pub(crate) state: State,
    /// Once it is closing: why, for the metrics.
    pub(crate) ending: Disconnect,
    /// Set while the connection is on the loop's list of connections to flush this turn.
    pub(crate) dirty: bool,
    /// Input read but not yet decoded: the client sent more lines than one turn handles, or
    /// than flood control or the chat take now. At most one read's worth: the socket is not
    /// read again until this is used up.
    pub(crate) unread: Vec<u8>,
    /// Flood control: how many lines the client may still send now.
    pub(crate) flood: FloodBudget,
    /// Not read until the chat takes lines again (its nick claim is pending with a full queue).
    pub(crate) waiting_for_chat: bool,
    /// Not read until the cluster has caught up (flow control between nodes).
    pub(crate) waiting_for_cluster: bool,
    /// The loop turn in which the connection was last read.
    pub(crate) read_in_turn: u64,
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
    /// Wraps a socket accepted at `now`.
    pub(crate) fn new(stream: TcpStream, peer: SocketAddr, now: Instant) -> Self {
        Self {
            stream,
            peer,
            decoder: LineDecoder::new(),
            state: State::Open,
            ending: Disconnect::Quit,
            dirty: false,
            unread: Vec::new(),
            flood: FloodBudget::new(now),
            waiting_for_chat: false,
            waiting_for_cluster: false,
            read_in_turn: 0,
            out: Vec::new(),
            written: 0,
            spans: Vec::new(),
            span_bytes: 0,
        }
    }

    /// Whether the loop leaves the socket unread for now (flood control, the chat, or the
    /// cluster's flow control).
    pub(crate) fn is_held(&self) -> bool {
        self.flood.waiting || self.waiting_for_chat || self.waiting_for_cluster
    }

    /// Bytes queued and not yet written.
    pub(crate) fn pending(&self) -> usize {
        self.out.len() - self.written + self.span_bytes
    }

    /// Bytes of memory the connection's own output buffer holds (its capacity: a buffer that
    /// grew keeps it until it is emptied).
    pub(crate) fn buffer_bytes(&self) -> usize {
        self.out.capacity()
    }

    /// What dropping the connection would free of the output path: its buffer, and the lines of
    /// this turn that the flush would otherwise copy into it.
    pub(crate) fn output_held(&self) -> usize {
        self.out.capacity() + self.span_bytes
    }

    /// Queues the line at `span` of this turn's output unless that would take the pending
    /// output past `limit`; a connection without a span list takes one from `pool`.
    ///
    /// Returns `false` (and queues nothing) when the limit would be passed.
    pub(crate) fn queue(&mut self, span: Span, limit: usize, pool: &mut BufferPool) -> bool {
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
    pub(crate) fn discard_output(&mut self, pool: &mut BufferPool) {
        pool.give(std::mem::take(&mut self.out));
        pool.give_spans(std::mem::take(&mut self.spans));
        self.span_bytes = 0;
        self.written = 0;
    }

    /// Writes what is queued with a single `write()` call: this turn's lines from `turn`,
    /// gathered in `scratch`, behind whatever earlier turns left. What the socket does not take
    /// stays in the connection's own buffer (from `pool`, given back once it is all written).
    pub(crate) fn flush(
        &mut self,
        turn: &TurnOutput,
        scratch: &mut Vec<u8>,
        pool: &mut BufferPool,
    ) -> io::Result<Flushed> {
        if !self.spans.is_empty() {
            let spans = std::mem::take(&mut self.spans);
            let span_bytes = std::mem::take(&mut self.span_bytes);
            if self.out.len() > self.written {
                // Earlier output is still waiting: this turn's lines go behind it.
                if self.written > 0 {
                    self.out.drain(..self.written);
                    self.written = 0;
                }
                make_room(&mut self.out, span_bytes);
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
                let written = write_once(&mut self.stream, bytes)?;
                if written == bytes.len() {
                    return Ok(Flushed::All);
                }
                if self.out.capacity() == 0 {
                    self.out = pool.take();
                }
                self.out.clear();
                self.written = 0;
                make_room(&mut self.out, bytes.len() - written);
                self.out.extend_from_slice(&bytes[written..]);
                return Ok(Flushed::Partial);
            }
            pool.give_spans(spans);
        }
        if self.out.len() > self.written {
            self.written += write_once(&mut self.stream, &self.out[self.written..])?;
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
    pub(crate) fn close_gracefully(&mut self, scratch: &mut [u8]) {
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

/// Makes room for `extra` more bytes in a connection's output buffer, growing it by a quarter
/// more than it needs rather than doubling it: the connections that stop reading in a busy room
/// grow their buffers in step, and doubled buffers would hold up to twice what they have
/// queued, all at once. The memory budget counts the capacity, so slack is memory lost to
/// clients that read.
fn make_room(out: &mut Vec<u8>, extra: usize) {
    let needed = out.len().saturating_add(extra);
    if needed > out.capacity() {
        out.reserve_exact(needed.saturating_add(needed / 4) - out.len());
    }
}

/// One `write()` of `bytes`, made again if a signal interrupted it; `Ok(0)` if the socket takes
/// nothing now.
///
/// An interrupted write must not count as "would block": the loop would then wait for a
/// writable event that never comes (the socket is writable already, and readiness is
/// edge-triggered), and the connection would stall with its output queued.
fn write_once(writer: &mut impl Write, bytes: &[u8]) -> io::Result<usize> {
    loop {
        match writer.write(bytes) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(0),
            result => return result,
        }
    }
}

/// Errors after which the same call may succeed later.
pub(crate) fn is_transient(error: &io::Error) -> bool {
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
        let stream = TcpStream::from_std(accepted);
        Ok((Connection::new(stream, addr, Instant::now()), peer))
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

    /// A writer whose first calls fail with `first_errors`, then take everything.
    struct Flaky {
        first_errors: Vec<ErrorKind>,
        taken: Vec<u8>,
    }

    impl Write for Flaky {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if let Some(kind) = self.first_errors.pop() {
                return Err(kind.into());
            }
            self.taken.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_interrupted_by_a_signal_is_made_again() -> io::Result<()> {
        let mut writer = Flaky {
            first_errors: vec![ErrorKind::Interrupted, ErrorKind::Interrupted],
            taken: Vec::new(),
        };
        assert_eq!(write_once(&mut writer, b"hello\r\n")?, 7);
        assert_eq!(writer.taken, b"hello\r\n");
        let mut full = Flaky {
            first_errors: vec![ErrorKind::WouldBlock],
            taken: Vec::new(),
        };
        assert_eq!(
            write_once(&mut full, b"x")?,
            0,
            "would block: nothing taken"
        );
        let mut broken = Flaky {
            first_errors: vec![ErrorKind::BrokenPipe],
            taken: Vec::new(),
        };
        assert!(write_once(&mut broken, b"x").is_err());
        Ok(())
    }

    #[test]
    fn an_output_buffer_grows_by_a_quarter_beyond_what_it_holds_not_double() {
        let mut out = Vec::new();
        for _ in 0..200 {
            make_room(&mut out, 1000);
            let before = out.capacity();
            out.extend_from_slice(&[b'x'; 1000]);
            assert_eq!(out.capacity(), before, "make_room made all the room needed");
            assert!(
                out.capacity() <= out.len() + out.len() / 4,
                "capacity {} for {} bytes",
                out.capacity(),
                out.len()
            );
        }
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
