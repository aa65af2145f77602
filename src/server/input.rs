//! Reading clients: bytes from a socket, through its line decoder, to the chat, within the
//! per-turn budgets that keep one flooding client from starving the others, and within its
//! flood budget (`flood.rs`).
//!
//! A client whose input cannot be taken now is held in one of four ways, and its lines are
//! handled later in the order sent: out of its per-turn budget, it is read again next turn
//! (`unfinished_reads`; one that a full turn left unread at all goes first then,
//! `starved_reads`); out of its flood budget, its socket is left unread until the budget
//! has a token again; while the chat takes no lines from it (a nick claim pending with a full
//! queue), until the chat has decided; in cluster mode, once a line of it was published while
//! the cluster is behind (flow control), until the cluster has caught up (`cluster_news.rs`).
//! Input already read stays in the connection's `unread`, at most one read's worth, because a
//! held socket is not read again before that is used up.

use std::io::{ErrorKind, Read};
use std::time::Instant;

use super::connection::State;
use super::delivery::{Delivery, DropReason};
use super::flood::FloodControl;
use super::metrics::Disconnect;
use super::{Server, LINES_PER_TURN, READ_BUDGET};
use crate::chat::{Chat, ClientId, Outbox};
use crate::cluster::Cluster;
use crate::protocol::{line_cost, Decoded};

/// Why a client's input stopped being taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Everything given was used.
    Done,
    /// The connection is closing or gone: the rest of its input is not worth any work.
    Closed,
    /// A per-turn budget is spent: the rest waits for the next turn.
    Turn,
    /// The flood budget is spent: the rest waits until it has a token again.
    Flood,
    /// The chat takes no more lines from it until its nick claim is decided.
    Chat,
    /// Its line went to the other nodes while the cluster is behind: the rest waits until the
    /// cluster has caught up.
    Paced,
}

/// The parts of the server that feeding lines to the chat needs.
struct Feed<'a> {
    chat: &'a mut Chat,
    delivery: &'a mut Delivery,
    flood: &'a FloodControl,
    max_line: usize,
    now: Instant,
}

impl Server {
    /// Reads from `id` until `WouldBlock`, EOF, an error, one of the per-turn budgets, or its
    /// flood budget; a held client is not read at all.
    pub(super) fn read_from(&mut self, id: ClientId, now: Instant) {
        let mut budget = READ_BUDGET;
        let mut lines = LINES_PER_TURN;
        // Once per turn: the per-turn budgets are per client, and a client left over from the
        // last turn may have a readable event in this one too.
        match self.delivery.get_mut(id) {
            Some(conn) if conn.is_held() => {
                // It sent more while it waits for its flood budget: it is being slowed down.
                if conn.flood.waiting {
                    self.tell_slowed(id);
                }
                return;
            }
            Some(conn) if conn.read_in_turn != self.turns => conn.read_in_turn = self.turns,
            _ => return,
        }
        self.readers.push(id);
        if self.delivery.turn_full() {
            // Read first next turn: whoever filled this one goes after it.
            self.starved_reads.push(id);
            return;
        }
        let stop = self.decode_unread(id, &mut lines, now);
        if stop != Stop::Done {
            self.hold(id, stop);
            return;
        }
        loop {
            // Checked before reading, so a client out of budget is left in its socket.
            let stop = self.feed(now).may_take(id);
            if stop != Stop::Done {
                self.hold(id, stop);
                return;
            }
            let Some(conn) = self.delivery.get_mut(id) else {
                return;
            };
            match conn.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    self.end_of_input(id, now);
                    return;
                }
                Ok(n) => {
                    self.delivery.metrics.bytes_received += n as u64;
                    // Only the size: the bytes may hold a password.
                    log::trace!("client {}: read {n} bytes", id.index());
                    let mut feed = Feed {
                        chat: &mut self.chat,
                        delivery: &mut self.delivery,
                        flood: &self.flood,
                        max_line: self.max_line,
                        now,
                    };
                    let (used, stop) = feed.lines(id, &self.read_buf[..n], &mut lines);
                    if used < n {
                        if let Some(conn) = self.delivery.get_mut(id) {
                            conn.unread.extend_from_slice(&self.read_buf[used..n]);
                        }
                    }
                    if stop != Stop::Done {
                        self.hold(id, stop);
                        return;
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 || self.delivery.turn_full() {
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

    /// Connections whose flood wait is over, and those the chat takes lines from again, are
    /// read next (their sockets may hold input that gives no new readiness event).
    pub(super) fn resume_held(&mut self, now: Instant) {
        while let Some(id) = self.flood.next_resumed(now) {
            if let Some(conn) = self.delivery.get_mut(id) {
                if conn.flood.waiting {
                    conn.flood.waiting = false;
                    self.unfinished_reads.push(id);
                }
            }
        }
    }

    /// The chat may take lines from `id` again (its nick claim was decided): read it next turn.
    pub(super) fn resume_if_chat_wants(&mut self, id: ClientId) {
        if let Some(conn) = self.delivery.get_mut(id) {
            if conn.waiting_for_chat && self.chat.wants_input(id) {
                conn.waiting_for_chat = false;
                self.unfinished_reads.push(id);
            }
        }
    }

    /// The parts of the server that feeding lines to the chat at `now` needs.
    fn feed(&mut self, now: Instant) -> Feed<'_> {
        Feed {
            chat: &mut self.chat,
            delivery: &mut self.delivery,
            flood: &self.flood,
            max_line: self.max_line,
            now,
        }
    }

    /// Holds `id` for the reason its input stopped being taken.
    fn hold(&mut self, id: ClientId, stop: Stop) {
        let Some(conn) = self.delivery.get_mut(id) else {
            return;
        };
        match stop {
            Stop::Done | Stop::Closed => {}
            Stop::Turn => self.unfinished_reads.push(id),
            Stop::Chat => conn.waiting_for_chat = true,
            Stop::Paced => {
                conn.waiting_for_cluster = true;
                self.delivery.metrics.cluster_pace_delays += 1;
                if let Some(cluster) = self.delivery.cluster.as_mut() {
                    cluster.hold(id);
                }
            }
            Stop::Flood => {
                self.flood.wait(id, &mut conn.flood);
                let lines_wait = !conn.unread.is_empty();
                self.delivery.metrics.flood_delays += 1;
                // Lines it sent are waiting already: it is being slowed down.
                if lines_wait {
                    self.tell_slowed(id);
                }
            }
        }
    }

    /// Tells `id` it is being slowed down, once a flood.
    fn tell_slowed(&mut self, id: ClientId) {
        let Some(conn) = self.delivery.get_mut(id) else {
            return;
        };
        if let Some(notice) = self.flood.notice_for(&mut conn.flood) {
            self.delivery.send(id, notice);
        }
    }

    /// Decodes input of `id` left over from an earlier turn.
    fn decode_unread(&mut self, id: ClientId, lines: &mut usize, now: Instant) -> Stop {
        let Some(conn) = self.delivery.get_mut(id) else {
            return Stop::Closed;
        };
        if conn.unread.is_empty() {
            return Stop::Done;
        }
        let unread = std::mem::take(&mut conn.unread);
        let (used, stop) = self.feed(now).lines(id, &unread, lines);
        if let Some(conn) = self.delivery.get_mut(id) {
            conn.unread = if used == unread.len() {
                Vec::new()
            } else {
                let mut rest = unread;
                rest.drain(..used);
                rest
            };
        }
        stop
    }

    /// The client closed its side. Its last answers may still be queued and it may still be
    /// reading (a half close, as `nc -N` does), so they are written before the connection
    /// closes; the chat lets it go now.
    fn end_of_input(&mut self, id: ClientId, now: Instant) {
        if self.delivery.get_mut(id).map_or(0, |c| c.pending()) == 0 {
            self.delivery.doom(id, DropReason::Eof);
            return;
        }
        self.delivery.close_for(id, Disconnect::Closed);
        self.chat.disconnect(id, now, &mut self.delivery);
    }
}

impl Feed<'_> {
    /// Whether `id`'s next line may be handled now: it is open, has a flood token, and the
    /// chat takes its lines.
    fn may_take(&mut self, id: ClientId) -> Stop {
        let Some(conn) = self.delivery.get_mut(id) else {
            return Stop::Closed;
        };
        if conn.state != State::Open {
            Stop::Closed
        } else if !self.flood.allows(&conn.flood, self.now) {
            Stop::Flood
        } else if !self.chat.wants_input(id) {
            Stop::Chat
        } else {
            Stop::Done
        }
    }

    /// Hands the lines in `input` from client `id` to the chat while it may send them, at most
    /// `lines` of them (taken off that budget). Returns how many bytes were used (the rest must
    /// be fed again later) and why it stopped.
    fn lines(&mut self, id: ClientId, input: &[u8], lines: &mut usize) -> (usize, Stop) {
        let Some(conn) = self.delivery.get_mut(id) else {
            return (input.len(), Stop::Closed);
        };
        // The decoder is taken out so the chat can queue output to this same connection.
        let mut decoder = std::mem::take(&mut conn.decoder);
        let mut used = 0;
        let stop =
            loop {
                if used == input.len() {
                    break Stop::Done;
                }
                // The turn's output limit is checked line by line, not only between reads: one
                // read (64 KiB) of long lines into a big room is thousands of times its size in
                // output, and the flush copies what sockets do not take into buffers of their
                // own, so a turn allowed to finish that read could pass the memory limit before
                // the budget at the end of the turn saw any of it.
                if *lines == 0 || self.delivery.turn_full() {
                    break Stop::Turn;
                }
                match self.may_take(id) {
                    Stop::Done => {}
                    Stop::Closed => {
                        used = input.len();
                        break Stop::Closed;
                    }
                    stop => break stop,
                }
                // One line at a time: whether the next one may be handled depends on this one.
                let mut one = 1;
                let mut cost = 0;
                let published = self.delivery.metrics.cluster_published;
                let (chat, delivery, now) = (&mut *self.chat, &mut *self.delivery, self.now);
                let priced = self.flood.is_on();
                used += decoder.feed_lines(&input[used..], self.max_line, &mut one, |decoded| {
                    match decoded {
                        Decoded::Line(text) => {
                            cost = if priced { line_cost(text) } else { 1 };
                            delivery.metrics.lines_received += 1;
                            chat.handle_line(id, text, now, delivery);
                        }
                        Decoded::Refused(error) => {
                            cost = 1;
                            delivery.metrics.lines_received += 1;
                            chat.reject_line(id, error, delivery);
                        }
                        Decoded::Telnet(answer) => delivery.send(id, answer),
                    }
                });
                *lines -= 1 - one;
                if let Some(conn) = self.delivery.get_mut(id) {
                    self.flood.charge(&mut conn.flood, cost, self.now);
                }
                // Flow control: one line of a client reaches the other nodes per paced spell.
                if self.delivery.metrics.cluster_published != published
                    && self.delivery.cluster.as_ref().is_some_and(Cluster::pacing)
                {
                    break Stop::Paced;
                }
            };
        if let Some(conn) = self.delivery.get_mut(id) {
            conn.decoder = decoder;
        }
        (used, stop)
    }
}

/// The connections to read at the start of a turn, in order: those the last turn left unread
/// because its output was full, then those that used up their budget in it.
pub(super) fn next_reads(
    starved: &mut Vec<ClientId>,
    unfinished: &mut Vec<ClientId>,
) -> Vec<ClientId> {
    let mut reads = std::mem::take(starved);
    reads.append(unfinished);
    reads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_a_full_turn_left_unread_are_read_before_those_that_filled_it() {
        let (flooder, other_flooder, chatter) =
            (ClientId::new(1), ClientId::new(2), ClientId::new(3));
        let mut starved = vec![chatter];
        let mut unfinished = vec![flooder, other_flooder];
        assert_eq!(
            next_reads(&mut starved, &mut unfinished),
            vec![chatter, flooder, other_flooder]
        );
        assert!(starved.is_empty() && unfinished.is_empty());
    }
}
