//! Whole chat turns: a script of connects, lines, refused lines, disconnects and time passing
//! for a handful of clients, run against the chat with an outbox that checks every line.
//!
//! After every step: the chat's invariants hold (`Chat::check_invariants_at`); no line went to
//! a client that is not connected or that was closed; every line is one CRLF-terminated line
//! free of control characters and bidirectional overrides; a room line or presence notice went
//! only to members of its room; and a message or action reached every other member of the
//! sender's active room exactly once and nobody else, while the sender got exactly its echo.
//! The limits are small (3 rooms a user, 3 saved sessions, 10 s sessions, rooms quiet above 2
//! members) so that short scripts reach them.

use std::time::{Duration, Instant};

use chat_server::chat::{Chat, ChatConfig, ClientId, Outbox};
use chat_server::protocol::{strip_controls, Command, LineError};

use super::command::forbidden;
use super::Bytes;

/// Clients a script talks for.
pub const CLIENTS: usize = 5;

/// Nicks the scripts use: case variants of one another, Cyrillic, invalid ones.
pub const NICKS: &[&str] = &["alice", "ALICE", "bob", "Вася", "ВАСЯ", "x", "a b", "İ"];

/// Room names the scripts use, likewise.
pub const ROOMS: &[&str] = &["main", "Main", "dev", "DEV", "кухня", "r1", "r2", "[x]"];

/// Message texts: plain, Cyrillic, blank, escaped, with terminal escapes and bidi overrides.
pub const TEXTS: &[&str] = &[
    "hi",
    "Привет, как дела?",
    "  ",
    "//shrug",
    "\u{1b}[31mred",
    "a\u{202e}b\u{2066}c",
    "/frob x",
    "tab\there",
];

/// Kinds of command line that [`command_line`] builds.
pub const COMMAND_KINDS: u8 = 12;

/// One step of a script.
#[derive(Debug, Clone)]
pub enum Op {
    /// Client connects (ignored if it is connected).
    Connect(usize),
    /// Client sends a decoded line.
    Line(usize, String),
    /// Client sends a line the decoder refused.
    Refused(usize, LineError),
    /// Client's connection ends (as the poll loop reports it).
    Disconnect(usize),
    /// Time passes, in seconds.
    Wait(u64),
    /// The poll loop's periodic expiry of saved sessions.
    Expire,
}

/// Builds a command line of kind `kind` (see [`COMMAND_KINDS`]) with a name and a text picked
/// by `a` and `b`.
pub fn command_line(kind: u8, a: u8, b: u8) -> String {
    let nick = NICKS[usize::from(a) % NICKS.len()];
    let room = ROOMS[usize::from(a) % ROOMS.len()];
    let text = TEXTS[usize::from(b) % TEXTS.len()];
    match kind % COMMAND_KINDS {
        0 | 1 => format!("/nick {nick}"),
        2 => format!("/join {room}"),
        3 => format!("/leave {room}"),
        4 => format!("/msg {nick} {text}"),
        5 => text.to_string(),
        6 => format!("/me {text}"),
        7 => "/who".to_string(),
        8 => format!("/who {room}"),
        9 => "/rooms".to_string(),
        10 => "/quit".to_string(),
        _ => "/help".to_string(),
    }
}

/// The chat's limits for scripts: small, so that short scripts reach them.
pub fn config() -> ChatConfig {
    ChatConfig {
        session_ttl: Duration::from_secs(10),
        max_saved_sessions: 3,
        max_rooms_per_user: 3,
        announce_limit: 2,
        ..ChatConfig::default()
    }
}

/// An outbox that records one step's lines and notes every line or close it must not get.
#[derive(Debug, Default)]
pub struct CheckedOutbox {
    connected: [bool; CLIENTS],
    closed: [bool; CLIENTS],
    /// This step's lines: client and line without its CRLF.
    pub lines: Vec<(usize, String)>,
    /// What went wrong this step.
    pub problems: Vec<String>,
}

impl Outbox for CheckedOutbox {
    fn send(&mut self, to: ClientId, line: &[u8]) {
        let index = to.index();
        if !self.connected.get(index).copied().unwrap_or(false) {
            self.problems
                .push(format!("a line for client {index}, not connected"));
            return;
        }
        if self.closed[index] {
            self.problems
                .push(format!("a line for client {index} after its close"));
        }
        let Ok(text) = std::str::from_utf8(line) else {
            self.problems
                .push(format!("a line that is not UTF-8: {line:?}"));
            return;
        };
        let body = text.strip_suffix("\r\n").unwrap_or(text);
        if body.len() == text.len() || body.contains(forbidden) {
            self.problems.push(format!("a malformed line: {text:?}"));
        }
        self.lines.push((index, body.to_string()));
    }

    fn close(&mut self, to: ClientId) {
        let index = to.index();
        if !self.connected.get(index).copied().unwrap_or(false) {
            self.problems
                .push(format!("close of client {index}, not connected"));
            return;
        }
        self.closed[index] = true;
    }
}

/// The room a room line or presence notice is about: `[ROOM] ...` or `* [ROOM] ...`.
fn room_of_line(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("* ").unwrap_or(line).strip_prefix('[')?;
    // A replayed line carries its time after the room (`[dev 14:05] ...`): names have no
    // spaces, so the room is the first word.
    let (inside, _) = rest.split_once("] ")?;
    inside.split(' ').next()
}

/// A chat being driven by a script, with the clock the script moves.
pub struct Run {
    /// The chat under test.
    pub chat: Chat,
    /// Its checking outbox.
    pub out: CheckedOutbox,
    now: Instant,
}

impl Default for Run {
    fn default() -> Self {
        Self::new(config())
    }
}

impl Run {
    /// A fresh chat with `config`.
    pub fn new(config: ChatConfig) -> Self {
        Self {
            chat: Chat::new(config),
            out: CheckedOutbox::default(),
            now: Instant::now(),
        }
    }

    /// Whether client `index` is connected and not closed (what the poll loop would read).
    fn live(&self, index: usize) -> bool {
        index < CLIENTS && self.out.connected[index] && !self.out.closed[index]
    }

    /// For a message or action of `from`: the room it goes to and who else must get it.
    fn audience(&self, from: usize, line: &str) -> Option<(String, Vec<usize>)> {
        let stripped = strip_controls(line);
        if !matches!(
            Command::parse(&stripped),
            Ok(Command::Say(_) | Command::Me(_))
        ) {
            return None;
        }
        let (_, active) = self.chat.rooms_of(ClientId::new(from))?;
        let members = (0..CLIENTS)
            .filter(|&j| j != from && self.live(j))
            .filter(|&j| {
                let rooms = self.chat.rooms_of(ClientId::new(j));
                rooms.is_some_and(|(rooms, _)| rooms.contains(&active))
            })
            .collect();
        Some((active, members))
    }

    /// Applies one step and checks everything the module documentation lists.
    pub fn apply(&mut self, op: &Op) -> Result<(), String> {
        self.out.lines.clear();
        let mut audience = None;
        match *op {
            Op::Connect(i) if i < CLIENTS && !self.out.connected[i] => {
                self.out.connected[i] = true;
                self.out.closed[i] = false;
                self.chat.connect(ClientId::new(i), &mut self.out);
            }
            Op::Line(i, ref line) if self.live(i) => {
                audience = self.audience(i, line).map(|a| (i, a));
                let id = ClientId::new(i);
                self.chat.handle_line(id, line, self.now, &mut self.out);
            }
            Op::Refused(i, error) if self.live(i) => {
                self.chat
                    .reject_line(ClientId::new(i), error, &mut self.out);
            }
            Op::Disconnect(i) if i < CLIENTS && self.out.connected[i] => {
                self.chat
                    .disconnect(ClientId::new(i), self.now, &mut self.out);
                self.out.connected[i] = false;
                self.out.closed[i] = false;
            }
            Op::Wait(seconds) => self.now += Duration::from_secs(seconds),
            Op::Expire => self.chat.expire_sessions(self.now, &mut self.out),
            _ => {}
        }
        if let Some(problem) = self.out.problems.first() {
            return Err(format!("{op:?}: {problem}"));
        }
        self.check_room_lines(op)?;
        if let Some((from, (room, members))) = audience {
            self.check_fan_out(from, &room, &members)
                .map_err(|e| format!("{op:?}: {e}"))?;
        }
        self.chat
            .check_invariants_at(self.now)
            .map_err(|e| format!("after {op:?}: {e}"))
    }

    /// Every room line or presence notice of this step went to a member of its room.
    fn check_room_lines(&self, op: &Op) -> Result<(), String> {
        for (to, line) in &self.out.lines {
            let Some(room) = room_of_line(line) else {
                continue;
            };
            let rooms = self.chat.rooms_of(ClientId::new(*to));
            if !rooms.is_some_and(|(rooms, _)| rooms.iter().any(|r| r == room)) {
                return Err(format!("{op:?}: {line:?} went to {to}, not in {room}"));
            }
        }
        Ok(())
    }

    /// A message to `room` by `from` reached each of `members` once, nobody else, and its
    /// sender got exactly the echo.
    fn check_fan_out(&self, from: usize, room: &str, members: &[usize]) -> Result<(), String> {
        let prefix = format!("[{room}] ");
        for client in 0..CLIENTS {
            let got = self.out.lines.iter().filter(|(to, _)| *to == client);
            if client == from {
                let lines: Vec<&String> = got.map(|(_, line)| line).collect();
                if lines.len() != 1 || !lines[0].starts_with("You: ") {
                    return Err(format!("the sender got {lines:?}"));
                }
                continue;
            }
            let copies = got.filter(|(_, line)| line.starts_with(&prefix)).count();
            let wanted = usize::from(members.contains(&client));
            if copies != wanted {
                return Err(format!("client {client} got {copies} copies, not {wanted}"));
            }
        }
        Ok(())
    }
}

/// Decodes a fuzz input into a script: each step is one byte (its high bits pick the client,
/// its low bits the kind of step) and the bytes its kind needs.
pub fn decode(data: &[u8]) -> Vec<Op> {
    let mut bytes = Bytes::new(data);
    let mut script = Vec::new();
    while !bytes.is_empty() {
        let step = bytes.byte();
        let client = usize::from(step >> 4) % CLIENTS;
        script.push(match step % 16 {
            0 | 1 => Op::Connect(client),
            2..=9 => {
                let (kind, a, b) = (bytes.byte(), bytes.byte(), bytes.byte());
                Op::Line(client, command_line(kind, a, b))
            }
            10 => {
                let length = usize::from(bytes.byte() % 48);
                let raw = String::from_utf8_lossy(bytes.take(length)).replace('\n', "");
                Op::Line(client, raw)
            }
            11 => Op::Refused(
                client,
                [
                    LineError::TooLong,
                    LineError::InvalidUtf8,
                    LineError::TelnetMangled,
                ][usize::from(bytes.byte() % 3)],
            ),
            12 => Op::Disconnect(client),
            13 => Op::Wait(u64::from(bytes.byte() % 8)),
            14 => Op::Expire,
            _ => Op::Line(client, format!("/nick {}", NICKS[client % NICKS.len()])),
        });
    }
    script
}

/// The fuzz target: runs the script, then disconnects everyone; panics on the first problem.
pub fn run(data: &[u8]) {
    let mut run = Run::default();
    let ending = (0..CLIENTS).map(Op::Disconnect);
    for op in decode(data).into_iter().chain(ending) {
        if let Err(problem) = run.apply(&op) {
            panic!("chat: {problem}");
        }
    }
}
