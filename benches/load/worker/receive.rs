//! Reading: splitting what arrives into lines, timing the messages that carry a payload,
//! acknowledging senders, and following the server's registration and error lines.

use std::io::{ErrorKind, Read, Write};

use super::{State, Worker};
use crate::cli::Proto;
use crate::payload::{payload_start, Header};
use crate::plan::Role;
use crate::shared::Phase;

impl Worker {
    /// Reads what `ci` has; to the end of the stream if the peer closed it (`closing`).
    pub(super) fn read(&mut self, ci: usize, closing: bool) {
        let mut buf = std::mem::take(&mut self.buf);
        while let Some(stream) = self.conns[ci].stream.as_mut() {
            match stream.read(&mut buf) {
                Ok(0) => {
                    self.closed(ci, "closed by the server");
                    break;
                }
                Ok(n) => {
                    self.now_ns = self.cfg.epoch.elapsed().as_nanos() as u64;
                    self.input(ci, &buf[..n]);
                    // A short read drained the socket; new data raises a new edge. This saves
                    // the read that would only say WouldBlock. (Not so for the end of the
                    // stream: it raises no new edge, so a closed socket is read to the end.)
                    if n < buf.len() && !closing {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.closed(ci, &format!("read: {e}"));
                    break;
                }
            }
        }
        self.buf = buf;
        // Answer at once (a closed-loop sender's next messages), not after the whole batch.
        if self.conns[ci].out_pos < self.conns[ci].out.len() {
            self.write_out(ci);
        }
    }

    /// Splits `data` into lines, joining the unfinished line of the last read.
    fn input(&mut self, ci: usize, data: &[u8]) {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            if self.conns[ci].partial.is_empty() {
                self.line(ci, &data[start..nl]);
            } else {
                let mut line = std::mem::take(&mut self.conns[ci].partial);
                line.extend_from_slice(&data[start..nl]);
                self.line(ci, &line);
                line.clear();
                self.conns[ci].partial = line;
            }
            start = nl + 1;
        }
        if start < data.len() {
            self.conns[ci].partial.extend_from_slice(&data[start..]);
        }
    }

    /// One line from the server: a message with a payload, or a line of the protocol.
    fn line(&mut self, ci: usize, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(at) = payload_start(line, self.cfg.payload) {
            return self.message(ci, line, at);
        }
        match self.cfg.proto {
            Proto::Chat => self.chat_line(ci, line),
            Proto::Irc => self.irc_line(ci, line),
        }
    }

    /// A room message carrying our payload.
    fn message(&mut self, ci: usize, line: &[u8], at: usize) {
        let header = Header::at(line, at);
        let Some(ts) = header.nanos() else {
            return;
        };
        self.counts.deliveries += 1;
        if self.phase == Phase::Measure {
            let _ = self.hist.record(self.now_ns.saturating_sub(ts).max(1_000));
        }
        // The sender is only needed for an acknowledgement, so most lines skip parsing it.
        let acked = match self.cfg.proto {
            // chat-server echoes a sender's own message as "You: ...".
            Proto::Chat
                if line.starts_with(b"You: ")
                    && header.sender() == Some(self.conns[ci].plan.gid) =>
            {
                Some(ci)
            }
            Proto::Chat => None,
            // IRC does not echo: this worker's first receiver in the room stands in.
            Proto::Irc if self.conns[ci].probe => header
                .sender()
                .and_then(|gid| self.senders_by_gid.get(&gid).copied()),
            Proto::Irc => None,
        };
        if let Some(sender) = acked {
            self.ack(sender);
        }
    }

    /// An error from the server: counted, and kept as a sample.
    fn error_line(&mut self, ci: usize, line: &[u8]) {
        self.counts.errors += 1;
        let nick = self.conns[ci].nick.clone();
        self.shared
            .note_error(format!("{nick}: {}", String::from_utf8_lossy(line)));
    }

    /// A chat-server line that is not a message: errors, and the answers that end registration.
    fn chat_line(&mut self, ci: usize, line: &[u8]) {
        if line.starts_with(b"! ") {
            return self.error_line(ci, line);
        }
        let conn = &self.conns[ci];
        if conn.state != State::Registering {
            return;
        }
        let main = conn.plan.room == "main";
        if line.starts_with(b"* Welcome, ") || line.starts_with(b"* Welcome back, ") {
            if main {
                self.registered(ci);
            }
        } else if !main
            && (line.starts_with(b"* Joined ") || line.starts_with(b"* Active room: "))
            && line.ends_with(format!(" {}.", conn.plan.room).as_bytes())
        {
            self.registered(ci);
        }
    }

    /// An IRC line that is not a message: PING, the numerics of registration, errors.
    fn irc_line(&mut self, ci: usize, line: &[u8]) {
        let mut words = line.split(|&b| b == b' ');
        let first = words.next().unwrap_or_default();
        let command = if first.starts_with(b":") {
            words.next().unwrap_or_default()
        } else {
            first
        };
        match command {
            b"PING" => {
                let conn = &mut self.conns[ci];
                conn.out.extend_from_slice(b"PONG");
                conn.out.extend_from_slice(&line[4..]);
                conn.out.extend_from_slice(b"\r\n");
                self.mark_dirty(ci);
            }
            b"001" if self.conns[ci].state == State::Registering => {
                let conn = &mut self.conns[ci];
                conn.state = State::Joining;
                // Writing into a Vec cannot fail.
                if let (Some((name, password)), Role::Sender) = (&self.cfg.oper, conn.plan.role) {
                    let _ = write!(
                        conn.out,
                        "OPER {name} {password}\r\nMODE {} +F\r\n",
                        conn.nick
                    );
                }
                let _ = write!(conn.out, "JOIN {}\r\n", conn.plan.room);
                self.mark_dirty(ci);
            }
            b"366" if self.conns[ci].state == State::Joining => self.registered(ci),
            b"ERROR" if self.conns[ci].state == State::Quitting => {}
            b"ERROR" => self.error_line(ci, line),
            // ERR_NOMOTD is harmless; other 4xx and 5xx numerics are errors.
            b"422" => {}
            [b'4' | b'5', b'0'..=b'9', b'0'..=b'9'] => self.error_line(ci, line),
            _ => {}
        }
    }
}
