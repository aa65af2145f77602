//! Writing: queueing messages with their send time, and flushing what is queued once per loop
//! turn (or at once, for a closed-loop sender's next messages).

use std::io::{ErrorKind, Write};

use super::{State, Worker};
use crate::cli::Proto;
use crate::payload::write_payload;
use crate::plan::Role;
use crate::shared::Phase;

impl Worker {
    /// Puts `ci` on the list of connections to write at the end of this loop turn.
    pub(super) fn mark_dirty(&mut self, ci: usize) {
        if !self.conns[ci].dirty {
            self.conns[ci].dirty = true;
            self.dirty.push(ci);
        }
    }

    /// Writes every connection on the list.
    pub(super) fn flush(&mut self) {
        for ci in std::mem::take(&mut self.dirty) {
            self.conns[ci].dirty = false;
            self.write_out(ci);
        }
    }

    /// Writes what is queued for `ci` until done or the socket is full.
    pub(super) fn write_out(&mut self, ci: usize) {
        let conn = &mut self.conns[ci];
        let Some(stream) = conn.stream.as_mut() else {
            return;
        };
        while conn.out_pos < conn.out.len() {
            match stream.write(&conn.out[conn.out_pos..]) {
                Ok(n) => conn.out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break, // the read side notices and reports it
            }
        }
        if conn.out_pos == conn.out.len() {
            conn.out.clear();
            conn.out_pos = 0;
        }
    }

    /// Queues one message with the current time in it.
    pub(super) fn send_message(&mut self, ci: usize) {
        let ts = self.cfg.epoch.elapsed().as_nanos() as u64;
        let conn = &mut self.conns[ci];
        if conn.state != State::Ready {
            return;
        }
        conn.seq += 1;
        conn.outstanding += 1;
        if self.cfg.proto == Proto::Irc {
            // Writing into a Vec cannot fail.
            let _ = write!(conn.out, "PRIVMSG {} :", conn.plan.room);
        }
        write_payload(&mut conn.out, conn.plan.gid, ts, self.cfg.payload);
        conn.out.extend_from_slice(match self.cfg.proto {
            Proto::Chat => b"\n",
            Proto::Irc => b"\r\n",
        });
        self.counts.sent += 1;
        self.mark_dirty(ci);
    }

    /// A message of `ci` arrived: a closed-loop sender sends the next, a churner quits.
    pub(super) fn ack(&mut self, ci: usize) {
        let conn = &mut self.conns[ci];
        conn.outstanding = conn.outstanding.saturating_sub(1);
        self.counts.acked += 1;
        if conn.plan.role == Role::Churner {
            if self.cfg.proto == Proto::Chat {
                conn.out.extend_from_slice(b"/quit\n");
                conn.state = State::Quitting;
                self.mark_dirty(ci);
            }
            return;
        }
        if self.cfg.interval.is_none() && self.sending && self.phase < Phase::Drain {
            self.send_message(ci);
        }
    }
}
