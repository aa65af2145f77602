//! The soak test's verdict: who was in which room when, which messages were sent and
//! confirmed, what each connection received, and what of that is a violation. No I/O: the
//! driver (`main.rs`) reports what it did and read, each with its tick; the unit tests in
//! `tests/soak_checker.rs` feed it synthetic sequences.
//!
//! Ticks are microseconds since the start, strictly increasing over all events of the (single
//! threaded) driver, so "before" is well defined: a command is stamped when it is queued (no
//! later than the server can read it), a line when it is read (no earlier than the server
//! wrote it). From that the rules are conservative both ways:
//!
//! - a message M (sent at S, its echo read at E) must reach a connection exactly once if the
//!   connection's arrival in M's room was confirmed before S and its departure (a `/leave`, or
//!   the sync before vanishing) was not started before E. It is judged missing when the answer
//!   to a command the connection sent at or after E arrives without it: the server queues a
//!   connection's lines in order, so M's line comes first;
//! - a room line may only reach a connection that asked to enter the room before E and had not
//!   seen its departure confirmed before S;
//! - no connection gets a message twice, and a sender's messages arrive in the order sent;
//! - a half line (written, then the connection reset or closed) is never delivered.
//!
//! In cluster mode a message crosses to other nodes asynchronously: for a receiver on another
//! node than the sender "before E" becomes "before it was read", a message is owed only if the
//! receiver stays for `grace` after E, and it is judged at the first answer to a command sent
//! after that. Duplicates and order are then judged per connection (a user who reconnects to a
//! node that lags could see a message again), not per user.

use std::collections::{HashMap, HashSet, VecDeque};

/// Microseconds since the start of the run.
pub type Tick = u64;
/// One connection (a session of a user), numbered by the driver.
pub type ConnId = u64;
/// One simulated user, across its sessions.
pub type UserId = u32;

/// A message: its sender and the sender's sequence number (in the text as `~USER.SEQ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgKey {
    /// The sending user.
    pub sender: UserId,
    /// The sender's sequence number, counted over all its sessions.
    pub seq: u32,
}

/// The kinds of violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A member present for a message's whole span did not get it.
    Missing,
    /// A connection (standalone: a user) got a message twice.
    Duplicate,
    /// A sender's messages arrived out of order.
    OutOfOrder,
    /// A room line reached a connection that was not in the room.
    NonMember,
    /// A room line carried a message nobody sent, or a different room, nick or text.
    Garbled,
    /// A half line (never finished by its sender) was delivered.
    HalfLine,
    /// The server broke the protocol: an unexpected line, no answer in time, a connection it
    /// closed, a session not restored as it was.
    Protocol,
}

/// How strict the judgement is.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Cluster mode: how long a message may take to reach another node, in ticks.
    pub grace: Tick,
    /// Judge duplicates and order per connection instead of per user (cluster mode).
    pub per_connection: bool,
}

/// One stay of a connection in a room.
#[derive(Debug, Clone, Copy)]
struct Span {
    /// When it asked to enter (`/join`, or the `/nick` that restored the room).
    asked: Tick,
    /// When the server's confirmation was read.
    confirmed: Option<Tick>,
    /// When it started to leave (`/leave` or the sync before vanishing).
    leaving: Option<Tick>,
    /// When the departure was confirmed, or the connection closed.
    gone: Option<Tick>,
}

/// A message owed to a connection: judged at the first answer to a command sent at or after
/// `due`.
#[derive(Debug, Clone, Copy)]
struct Owed {
    due: Tick,
    key: MsgKey,
}

/// What is known of one connection.
#[derive(Debug)]
struct Conn {
    user: UserId,
    node: usize,
    spans: HashMap<String, Vec<Span>>,
    /// Owed messages from its own node, by echo tick (so in order).
    owed_local: VecDeque<Owed>,
    /// Owed messages from other nodes, by echo tick plus grace (so in order).
    owed_remote: VecDeque<Owed>,
    /// Owed messages not received yet.
    pending: HashSet<MsgKey>,
}

/// A message as sent.
#[derive(Debug)]
struct Msg {
    room: String,
    nick: String,
    text: String,
    conn: ConnId,
    node: usize,
    sent: Tick,
    echoed: Option<Tick>,
    half: bool,
}

/// The messages of one sender seen by one receiver: which sequence numbers, and the highest.
#[derive(Debug, Default)]
struct Seen {
    last: Option<u32>,
    bits: Vec<u64>,
}

impl Seen {
    /// Whether `seq` was seen.
    fn has(&self, seq: u32) -> bool {
        let word = (seq / 64) as usize;
        self.bits
            .get(word)
            .is_some_and(|w| w & (1u64 << (seq % 64)) != 0)
    }

    /// Marks `seq` seen; says whether it was seen before.
    fn mark(&mut self, seq: u32) -> bool {
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        let before = self.bits[word] & bit != 0;
        self.bits[word] |= bit;
        before
    }
}

/// What was counted.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// Messages sent (whole lines).
    pub messages: u64,
    /// Messages whose echo the sender read.
    pub confirmed: u64,
    /// Half lines written before a reset or close.
    pub half_lines: u64,
    /// Room lines received and checked.
    pub deliveries: u64,
    /// Deliveries owed by the rule above.
    pub required: u64,
    /// Owed deliveries that arrived.
    pub required_met: u64,
    /// Owed deliveries that could not be judged (the receiver left before a cross-node
    /// message's grace ran out, or vanished without its sync).
    pub unjudged: u64,
    /// Presence notices received and checked.
    pub presence: u64,
}

/// The bookkeeping; see the module documentation.
#[derive(Debug)]
pub struct Checker {
    config: Config,
    conns: HashMap<ConnId, Conn>,
    msgs: HashMap<MsgKey, Msg>,
    /// Connections confirmed in a room and not leaving it, by room key.
    present: HashMap<String, HashSet<ConnId>>,
    /// (receiver, sender, sender's connection) to what it saw of that sender; standalone the
    /// receiver is a user and the sender's connection 0.
    seen: HashMap<(u64, UserId, u64), Seen>,
    /// What was counted.
    pub counts: Counts,
    /// Violations by kind.
    pub by_kind: HashMap<Kind, u64>,
    /// The first violations of each kind, worded.
    pub first: Vec<String>,
}

/// Violations of one kind kept worded; the rest are only counted.
const WORDED: u64 = 5;

/// The key a room is compared under (the server compares names case-insensitively).
fn room_key(room: &str) -> String {
    room.to_lowercase()
}

impl Checker {
    /// An empty bookkeeping.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            conns: HashMap::new(),
            msgs: HashMap::new(),
            present: HashMap::new(),
            seen: HashMap::new(),
            counts: Counts::default(),
            by_kind: HashMap::new(),
            first: Vec::new(),
        }
    }

    /// Notes a violation.
    pub fn violation(&mut self, kind: Kind, detail: String) {
        let count = self.by_kind.entry(kind).or_default();
        *count += 1;
        if *count <= WORDED {
            self.first.push(format!("{kind:?}: {detail}"));
        }
    }

    /// All violations so far.
    pub fn violations(&self) -> u64 {
        self.by_kind.values().sum()
    }

    /// A connection of `user` to node `node` opened.
    pub fn open(&mut self, conn: ConnId, user: UserId, node: usize) {
        let state = Conn {
            user,
            node,
            spans: HashMap::new(),
            owed_local: VecDeque::new(),
            owed_remote: VecDeque::new(),
            pending: HashSet::new(),
        };
        self.conns.insert(conn, state);
    }

    /// `conn` asked to enter `room` at `at`.
    pub fn entering(&mut self, conn: ConnId, room: &str, at: Tick) {
        if let Some(c) = self.conns.get_mut(&conn) {
            let span = Span {
                asked: at,
                confirmed: None,
                leaving: None,
                gone: None,
            };
            c.spans.entry(room_key(room)).or_default().push(span);
        }
    }

    /// The server confirmed that `conn` is in `room` (read at `at`).
    pub fn entered(&mut self, conn: ConnId, room: &str, at: Tick) {
        let key = room_key(room);
        let span = self.open_span(conn, &key);
        match span {
            Some(span) if span.confirmed.is_none() => span.confirmed = Some(at),
            _ => {
                let detail = format!("conn {conn}: entered {room} without asking");
                return self.violation(Kind::Protocol, detail);
            }
        }
        self.present.entry(key).or_default().insert(conn);
    }

    /// The latest stay of `conn` in room `key`, if it has not started leaving.
    fn open_span(&mut self, conn: ConnId, key: &str) -> Option<&mut Span> {
        let spans = self.conns.get_mut(&conn)?.spans.get_mut(key)?;
        spans.last_mut().filter(|s| s.leaving.is_none())
    }

    /// `conn` started to leave `room` at `at`: it is owed nothing echoed from now on there.
    pub fn leaving(&mut self, conn: ConnId, room: &str, at: Tick) {
        let key = room_key(room);
        let Some(span) = self.open_span(conn, &key) else {
            return;
        };
        span.leaving = Some(at);
        if let Some(members) = self.present.get_mut(&key) {
            members.remove(&conn);
        }
        // A cross-node message whose grace outlasts the stay cannot be judged.
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let msgs = &self.msgs;
        let mut unjudged = 0;
        c.owed_remote.retain(|owed| {
            let here = msgs.get(&owed.key).is_some_and(|m| m.room == key);
            let drop = here && owed.due > at && c.pending.remove(&owed.key);
            unjudged += u64::from(drop);
            !drop
        });
        self.counts.unjudged += unjudged;
    }

    /// `conn` starts vanishing at `at`: it leaves every room.
    pub fn leaving_all(&mut self, conn: ConnId, at: Tick) {
        let rooms: Vec<String> = match self.conns.get(&conn) {
            Some(c) => c.spans.keys().cloned().collect(),
            None => return,
        };
        for room in rooms {
            self.leaving(conn, &room, at);
        }
    }

    /// The server confirmed that `conn` left `room` (read at `at`), or refused to let it in.
    pub fn left(&mut self, conn: ConnId, room: &str, at: Tick) {
        self.leaving(conn, room, at);
        let spans = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.spans.get_mut(&room_key(room)));
        if let Some(span) = spans.and_then(|s| s.last_mut()) {
            span.gone.get_or_insert(at);
        }
    }

    /// `conn` is closed at `at`: nothing more can arrive on it.
    pub fn closed(&mut self, conn: ConnId, at: Tick) {
        self.leaving_all(conn, at);
        if let Some(c) = self.conns.remove(&conn) {
            self.counts.unjudged += c.pending.len() as u64;
        }
    }

    /// `conn` of the sender sent message `key` as `nick` into `room` at `at`: with `text`, or
    /// with `None` for a half line (written, then the connection reset or closed), which must
    /// never be delivered.
    pub fn sent(
        &mut self,
        conn: ConnId,
        key: MsgKey,
        (room, nick, text): (&str, &str, Option<&str>),
        at: Tick,
    ) {
        match text {
            Some(_) => self.counts.messages += 1,
            None => self.counts.half_lines += 1,
        }
        let node = self.conns.get(&conn).map_or(0, |c| c.node);
        let msg = Msg {
            room: room_key(room),
            nick: nick.to_string(),
            text: text.unwrap_or_default().to_string(),
            conn,
            node,
            sent: at,
            echoed: None,
            half: text.is_none(),
        };
        if self.msgs.insert(key, msg).is_some() {
            self.violation(Kind::Protocol, format!("driver sent {key:?} twice"));
        }
    }

    /// The sender read the echo of `key` at `at`: the server handled it before then. Every
    /// connection confirmed in the room before it was sent and not leaving is now owed it.
    pub fn echoed(&mut self, key: MsgKey, at: Tick) {
        let Some(msg) = self.msgs.get_mut(&key) else {
            return self.violation(Kind::Garbled, format!("echo of unsent {key:?}"));
        };
        if msg.echoed.replace(at).is_some() {
            return self.violation(Kind::Duplicate, format!("second echo of {key:?}"));
        }
        self.counts.confirmed += 1;
        let (room, sent, node, sender_conn) = (msg.room.clone(), msg.sent, msg.node, msg.conn);
        let members: Vec<ConnId> = self
            .present
            .get(&room)
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default();
        for member in members {
            let Some(c) = self.conns.get_mut(&member) else {
                continue;
            };
            let span = c.spans.get(&room).and_then(|s| s.last());
            let settled = span.is_some_and(|s| s.confirmed.is_some_and(|t| t <= sent));
            if member == sender_conn || c.user == key.sender || !settled {
                continue;
            }
            // The sender's echo and the room lines go out in the same turn; the member's copy
            // may well have been read first.
            let scope = Self::scope(&self.config, member, c.user, key, sender_conn);
            if self.seen.get(&scope).is_some_and(|seen| seen.has(key.seq)) {
                self.counts.required += 1;
                self.counts.required_met += 1;
                continue;
            }
            if c.node == node {
                c.owed_local.push_back(Owed { due: at, key });
            } else {
                let due = at + self.config.grace;
                c.owed_remote.push_back(Owed { due, key });
            }
            c.pending.insert(key);
            self.counts.required += 1;
        }
    }

    /// `conn` read, at `at`, message `key` as a line of `room` from `nick` with `text`.
    pub fn delivered(
        &mut self,
        conn: ConnId,
        key: MsgKey,
        (room, nick, text): (&str, &str, &str),
        at: Tick,
    ) {
        self.counts.deliveries += 1;
        let Some(msg) = self.msgs.get(&key) else {
            return self.violation(Kind::Garbled, format!("conn {conn} got unsent {key:?}"));
        };
        if msg.half {
            return self.violation(Kind::HalfLine, format!("conn {conn} got half line {key:?}"));
        }
        if msg.room != room_key(room) || msg.nick != nick || msg.text != text {
            let detail = format!("conn {conn} got {key:?} as [{room}] {nick}: {text}");
            return self.violation(Kind::Garbled, detail);
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        // Within a node the message was handled before its echo was read; across nodes only
        // before this line was read.
        let before = if c.node == msg.node {
            msg.echoed.unwrap_or(Tick::MAX)
        } else {
            at
        };
        let spans = c
            .spans
            .get(&msg.room)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let member = spans
            .iter()
            .any(|s| s.asked < before && s.gone.is_none_or(|gone| gone > msg.sent));
        let scope = Self::scope(&self.config, conn, c.user, key, msg.conn);
        let met = c.pending.remove(&key);
        self.counts.required_met += u64::from(met);
        if !member {
            let detail = format!("conn {conn} got {key:?} in {room}, not being in it");
            self.violation(Kind::NonMember, detail);
        }
        let seen = self.seen.entry(scope).or_default();
        let again = seen.mark(key.seq);
        let earlier = seen.last.is_some_and(|last| key.seq < last);
        seen.last = seen.last.max(Some(key.seq));
        if again {
            self.violation(Kind::Duplicate, format!("conn {conn} got {key:?} again"));
        } else if earlier {
            self.violation(Kind::OutOfOrder, format!("conn {conn} got {key:?} late"));
        }
    }

    /// Whose deliveries of `key` are judged together: standalone one user's (over its
    /// connections), in a cluster one connection's from one connection of the sender.
    fn scope(
        config: &Config,
        conn: ConnId,
        user: UserId,
        key: MsgKey,
        sender_conn: ConnId,
    ) -> (u64, UserId, u64) {
        if config.per_connection {
            (conn, key.sender, sender_conn)
        } else {
            (u64::from(user), key.sender, 0)
        }
    }

    /// `conn` read, at `at`, a presence notice of `room`: it must have asked to be there.
    pub fn presence(&mut self, conn: ConnId, room: &str, at: Tick) {
        self.counts.presence += 1;
        let asked = self
            .conns
            .get(&conn)
            .and_then(|c| c.spans.get(&room_key(room)))
            .is_some_and(|spans| spans.iter().any(|s| s.asked < at));
        if !asked {
            let detail = format!("conn {conn} got a presence notice of {room}, never in it");
            self.violation(Kind::NonMember, detail);
        }
    }

    /// `conn` read the answer to a command it sent at `asked`: everything owed to it that was
    /// due by then has arrived, or is missing.
    pub fn answered(&mut self, conn: ConnId, asked: Tick) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let mut missing = Vec::new();
        for owed in [&mut c.owed_local, &mut c.owed_remote] {
            while owed.front().is_some_and(|o| o.due <= asked) {
                if let Some(o) = owed.pop_front() {
                    if c.pending.remove(&o.key) {
                        missing.push(o.key);
                    }
                }
            }
        }
        for key in missing {
            self.violation(Kind::Missing, format!("conn {conn} never got {key:?}"));
        }
    }

    /// The end of the run: what is still owed cannot be judged any more.
    pub fn finish(&mut self) {
        let pending: usize = self.conns.values().map(|c| c.pending.len()).sum();
        self.counts.unjudged += pending as u64;
        for c in self.conns.values_mut() {
            c.pending.clear();
        }
    }
}
