//! A client's life cycle: connecting (with retries), registering with the server, and what
//! happens when its connection closes.

use std::cmp::Reverse;
use std::io::{ErrorKind, Write};
use std::time::{Duration, Instant};

use mio::{Interest, Token};

use super::{State, Timer, Worker};
use crate::cli::Proto;
use crate::net::{connect_nonblocking, set_int_option};
use crate::payload::base36;
use crate::plan::Role;
use crate::shared::Phase;

impl Worker {
    /// Starts connecting queued clients while fewer than `inflight` are being set up.
    pub(super) fn connect_more(&mut self) {
        while self.connecting < self.inflight {
            let Some(ci) = self.to_connect.pop_front() else {
                return;
            };
            self.connect(ci);
        }
    }

    /// Starts a connection for client `ci` (a churner's next session under a new nick).
    fn connect(&mut self, ci: usize) {
        let conn = &mut self.conns[ci];
        conn.attempts += 1;
        conn.partial.clear();
        conn.out.clear();
        conn.out_pos = 0;
        conn.outstanding = 0;
        if conn.plan.role == Role::Churner {
            // Every session under a new nick.
            conn.sessions += 1;
            conn.nick = format!(
                "{}{}_{}",
                self.cfg.nick_prefix,
                base36(conn.plan.gid),
                base36(conn.sessions)
            );
        }
        match connect_nonblocking(conn.plan.addr, conn.plan.gid) {
            Ok(mut stream) => {
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = self
                    .poll
                    .registry()
                    .register(&mut stream, Token(ci), interest)
                {
                    self.connect_failed(ci, &format!("register: {e}"));
                    return;
                }
                let conn = &mut self.conns[ci];
                conn.stream = Some(stream);
                conn.state = State::Connecting;
                self.connecting += 1;
            }
            Err(e) => self.connect_failed(ci, &format!("connect: {e}")),
        }
    }

    /// A connect failed: retry later with a growing pause, or after 20 attempts give up.
    fn connect_failed(&mut self, ci: usize, why: &str) {
        let conn = &mut self.conns[ci];
        if conn.state == State::Connecting {
            self.connecting -= 1;
        }
        conn.stream = None;
        conn.state = State::Waiting;
        if conn.attempts < 20 && self.phase < Phase::Drain {
            let at = Instant::now() + Duration::from_millis(50 * conn.attempts as u64);
            self.timers.push(Reverse((at, Timer::Retry(ci))));
        } else {
            conn.state = State::Dead;
            self.counts.failed += 1;
            self.shared.note_error(format!("{}: {why}", conn.nick));
        }
    }

    /// The socket of a connecting client became writable: connected (then register) or not.
    pub(super) fn finish_connect(&mut self, ci: usize) {
        let conn = &mut self.conns[ci];
        let Some(stream) = conn.stream.as_ref() else {
            return;
        };
        match stream.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => return self.connect_failed(ci, &format!("connect: {e}")),
        }
        if let Err(e) = stream.peer_addr() {
            if e.kind() == ErrorKind::NotConnected {
                return; // still in progress
            }
            return self.connect_failed(ci, &format!("connect: {e}"));
        }
        let _ = stream.set_nodelay(true);
        conn.state = State::Registering;
        // Writing into a Vec cannot fail.
        match self.cfg.proto {
            Proto::Chat => {
                let _ = writeln!(conn.out, "/nick {}", conn.nick);
                if conn.plan.room != "main" {
                    let _ = writeln!(conn.out, "/join {}", conn.plan.room);
                }
            }
            Proto::Irc => {
                let _ = write!(conn.out, "NICK {0}\r\nUSER {0} 0 * :{0}\r\n", conn.nick);
            }
        }
        self.mark_dirty(ci);
    }

    /// Client `ci` is registered and in its room: senders start, churners talk and quit.
    pub(super) fn registered(&mut self, ci: usize) {
        let conn = &mut self.conns[ci];
        conn.state = State::Ready;
        self.connecting -= 1;
        if self.cfg.rcvlowat > 0 && conn.plan.role == Role::Receiver && !conn.probe {
            if let Some(stream) = conn.stream.as_ref() {
                set_int_option(
                    stream,
                    libc::SOL_SOCKET,
                    libc::SO_RCVLOWAT,
                    self.cfg.rcvlowat,
                );
            }
        }
        if conn.plan.role == Role::Churner {
            self.send_message(ci);
            if self.cfg.proto == Proto::Irc {
                // No echo to wait for: quit right behind the message.
                let conn = &mut self.conns[ci];
                conn.out.extend_from_slice(b"QUIT :bye\r\n");
                conn.state = State::Quitting;
            }
            return;
        }
        self.counts.registered += 1;
        if self.sending && conn.plan.role == Role::Sender && self.cfg.interval.is_none() {
            for _ in 0..self.cfg.window {
                self.send_message(ci);
            }
        }
    }

    /// The connection of `ci` closed (`why`): a churner's session ends, anything else is
    /// counted as a failure or an error by the state it was in.
    pub(super) fn closed(&mut self, ci: usize, why: &str) {
        let conn = &mut self.conns[ci];
        let state = conn.state;
        if let Some(mut stream) = conn.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        conn.state = State::Dead;
        match state {
            State::Quitting => {
                self.counts.sessions += 1;
                if self.phase < Phase::Drain {
                    self.conns[ci].attempts = 0;
                    self.to_connect.push_back(ci);
                }
            }
            State::Connecting => self.connect_failed(ci, why),
            State::Registering | State::Joining => {
                self.connecting -= 1;
                self.counts.failed += 1;
                let nick = self.conns[ci].nick.clone();
                self.shared
                    .note_error(format!("{nick}: {why} during registration"));
            }
            _ if self.phase < Phase::Done => {
                self.counts.errors += 1;
                let nick = self.conns[ci].nick.clone();
                self.shared.note_error(format!("{nick}: {why}"));
            }
            _ => {}
        }
    }
}
