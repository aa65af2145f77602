//! Reading clients: bytes from a socket, through its line decoder, to the chat, within the
//! per-turn budgets that keep one flooding client from starving the others.

use std::io::{ErrorKind, Read};
use std::time::Instant;

use super::connection::State;
use super::delivery::{Delivery, DropReason};
use super::{Server, LINES_PER_TURN, READ_BUDGET};
use crate::chat::{Chat, ClientId, Outbox};
use crate::protocol::Decoded;

/// Once this much output has been queued in a turn, the remaining input waits for the next turn,
/// after everything queued has been written. A storm of joins to a big room (every join is a
/// notice to every member) would otherwise build hundreds of megabytes of output buffers in one
/// turn, and the heap would keep them. Far above what a busy room produces in a turn (80 lines
/// to 5,000 members is 26 MB), so it never splits such a turn.
const TURN_OUTPUT: usize = 32 * 1024 * 1024;

impl Server {
    /// Reads from `id` until `WouldBlock`, EOF, an error, or one of the per-turn budgets.
    pub(super) fn read_from(&mut self, id: ClientId, now: Instant) {
        let mut budget = READ_BUDGET;
        let mut lines = LINES_PER_TURN;
        // Once per turn: the per-turn budgets are per client, and a client left over from the
        // last turn may have a readable event in this one too.
        match self.delivery.get_mut(id) {
            Some(conn) if conn.read_in_turn != self.turns => conn.read_in_turn = self.turns,
            _ => return,
        }
        self.readers.push(id);
        if self.delivery.queued() >= TURN_OUTPUT || !self.decode_unread(id, &mut lines, now) {
            self.unfinished_reads.push(id);
            return;
        }
        loop {
            let Some(conn) = self.delivery.get_mut(id) else {
                return;
            };
            if conn.state != State::Open {
                return;
            }
            match conn.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    self.end_of_input(id, now);
                    return;
                }
                Ok(n) => {
                    // Only the size: the bytes may hold a password.
                    log::trace!("client {}: read {n} bytes", id.index());
                    let input = &self.read_buf[..n];
                    let (chat, delivery) = (&mut self.chat, &mut self.delivery);
                    let used = feed_chat(chat, delivery, self.max_line, id, input, &mut lines, now);
                    if used < n {
                        // Out of lines for this turn: the rest waits for the next one.
                        if let Some(conn) = self.delivery.get_mut(id) {
                            conn.unread.extend_from_slice(&self.read_buf[used..n]);
                        }
                        self.unfinished_reads.push(id);
                        return;
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 || self.delivery.queued() >= TURN_OUTPUT {
                        self.unfinished_reads.push(id);
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.delivery.doom(id, DropReason::Error(e.kind()));
                    return;
                }
            }
        }
    }

    /// Decodes input of `id` left over from an earlier turn; false if some is still left.
    fn decode_unread(&mut self, id: ClientId, lines: &mut usize, now: Instant) -> bool {
        let Some(conn) = self.delivery.get_mut(id) else {
            return true;
        };
        if conn.unread.is_empty() {
            return true;
        }
        let mut unread = std::mem::take(&mut conn.unread);
        let (chat, delivery) = (&mut self.chat, &mut self.delivery);
        let used = feed_chat(chat, delivery, self.max_line, id, &unread, lines, now);
        unread.drain(..used);
        let done = unread.is_empty();
        if let Some(conn) = self.delivery.get_mut(id) {
            conn.unread = if done { Vec::new() } else { unread };
        }
        done
    }

    /// The client closed its side. Its last answers may still be queued and it may still be
    /// reading (a half close, as `nc -N` does), so they are written before the connection
    /// closes; the chat lets it go now.
    fn end_of_input(&mut self, id: ClientId, now: Instant) {
        if self.delivery.get_mut(id).map_or(0, |c| c.pending()) == 0 {
            self.delivery.doom(id, DropReason::Eof);
            return;
        }
        self.delivery.close(id);
        self.chat.disconnect(id, now, &mut self.delivery);
    }
}

/// Hands the lines in `input` from client `id` to the chat, at most `lines` of them (taken
/// off that budget); returns how many bytes were used. The rest must be fed again later.
fn feed_chat(
    chat: &mut Chat,
    delivery: &mut Delivery,
    max_line: usize,
    id: ClientId,
    input: &[u8],
    lines: &mut usize,
    now: Instant,
) -> usize {
    let Some(conn) = delivery.get_mut(id) else {
        return input.len();
    };
    // The decoder is taken out so the chat can queue output to this same connection.
    let mut decoder = std::mem::take(&mut conn.decoder);
    let used = decoder.feed_lines(input, max_line, lines, |decoded| {
        // A client dropped in the middle of its input (it overflowed its output buffer) is
        // not worth any more work.
        if !delivery.is_open(id) {
            return;
        }
        match decoded {
            Decoded::Line(text) => chat.handle_line(id, text, now, delivery),
            Decoded::Refused(error) => chat.reject_line(id, error, delivery),
            Decoded::Telnet(answer) => delivery.send(id, answer),
        }
    });
    if let Some(conn) = delivery.get_mut(id) {
        conn.decoder = decoder;
    }
    used
}
