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
//!
//! # Replay of missed messages
//!
//! A user whose session is restored (`* Welcome back`) gets, before any live line, for each
//! room of the session, the messages posted there after the server saw its old connection end
//! (at a moment T the checker does not know), framed by `* Missed in ROOM: N messages ...` and
//! `* End of missed messages in ROOM.`; then the private messages kept for it. The checker
//! knows two bounds of T: it is after the old connection started to vanish (L: its `/quit` or
//! its sync before vanishing was queued), and before G, the first tick at which a line showed
//! that the server had let the connection go: the goodbye or the close read on it, a
//! `* [ROOM] NICK disconnected` read by a connection whose stream was already past L (the
//! answer to a command it sent after L came first), or a complete `/who` list, asked after L,
//! of a room the user was in, without it. The return's `/nick` was queued at R and its welcome
//! read at W. Then, standalone, per user (over its connections):
//!
//! - a replayed message is never one the user got live or in an earlier replay, comes once,
//!   and after every message of the same sender in the same room the user already got (a
//!   sender's messages in their order within a room; rooms are replayed one after the other,
//!   so not across rooms);
//! - a replayed message is from a room of the restored session, inside the frame of that room,
//!   not the user's own, not confirmed by its echo before L (the server had it before T), and
//!   not sent after W (the server had answered the `/nick` by then); a half line never;
//! - a frame's count N is the number of lines that follow it, a room is framed once, the
//!   private messages come after the rooms, and a live line never comes inside a frame;
//! - a message of a room of the session, not the user's, sent after G and confirmed before R,
//!   is owed: it is replayed, or counted among the frame's "K older ones are no longer kept"
//!   (the soak runs its server with a large `--history`, so K stays 0). This is judged at the
//!   first live line after the welcome, which ends the replay.
//!
//! What was sent between L and G (the server may have had it before or after T), or confirmed
//! only after R, may be replayed or not: it is counted as uncertain, not judged; a return whose
//! departure the checker did not see is counted, not judged. In cluster mode a session comes
//! back from Redis with the marks a replay needs, on whichever node the user returns to; a
//! message of another node than the one returned to is owed only if it was confirmed more than
//! `grace` before R (otherwise it may come live instead), "confirmed before L" is judged only
//! for messages of the departure's own node, and besides the per-connection judgement each
//! user gets each message once over all its connections, live and replayed together.

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
    /// A replay of missed messages broke its rules: a count that is not the number of lines
    /// that follow, a room not of the restored session or outside its frame, a message the
    /// server had before the user left or after it returned, the user's own message, a frame
    /// never closed or interrupted by a live line.
    Replay,
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
    /// Whether a restored session owes its user the messages posted while it was away (see
    /// the module documentation for what differs in a cluster).
    pub replay: bool,
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
    /// The latest tick at which a command was queued whose answer has been read: every line
    /// read from now on was written after the server handled that command.
    answered: Tick,
    /// From a login's welcome to the first live line after it: the replay under way.
    replay: Option<Box<Replay>>,
}

/// A user's departure as far as the checker saw it: from its connection starting to vanish
/// until it returns.
#[derive(Debug, Clone)]
struct Departure {
    conn: ConnId,
    node: usize,
    /// When the connection started to vanish (L): what was confirmed earlier, the server had
    /// before it saw the end.
    leaving: Tick,
    /// A tick by which the server had seen the end (G), once a line showed it.
    gone_by: Option<Tick>,
    /// The keys of the rooms it was in.
    rooms: Vec<String>,
}

/// What came after a login's welcome, until the first live line.
#[derive(Debug)]
struct Replay {
    /// Whether the welcome restored a session; only then may rooms be replayed.
    restored: bool,
    /// The keys of the session's rooms.
    rooms: Vec<String>,
    /// When the `/nick` was queued (R) and its welcome read (W).
    asked: Tick,
    welcomed: Tick,
    /// The departure it returns from, if the checker saw it.
    departure: Option<Departure>,
    /// The room frame open.
    frame: Option<Frame>,
    /// The rooms framed so far, with the count of older messages no longer kept.
    lost: HashMap<String, u64>,
    /// The messages replayed.
    replayed: HashSet<MsgKey>,
    /// The kept private messages' frame: the count announced and the lines so far.
    privates: Option<(u64, u64)>,
    /// The kept private messages' frame was closed.
    privates_done: bool,
}

/// One room's replay frame, as far as it came.
#[derive(Debug)]
struct Frame {
    room: String,
    announced: u64,
    lines: u64,
    /// The last sequence number replayed per sender (scope), for the order within the frame.
    last: HashMap<(u64, UserId, u64), u32>,
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
    /// The word of `bits[0]`: a short-lived connection sees a narrow window of a sender's
    /// sequence numbers, so the bitmap starts where they start.
    base: usize,
    bits: VecDeque<u64>,
}

impl Seen {
    /// Whether `seq` was seen.
    fn has(&self, seq: u32) -> bool {
        let word = (seq / 64) as usize;
        word.checked_sub(self.base)
            .and_then(|i| self.bits.get(i))
            .is_some_and(|w| w & (1u64 << (seq % 64)) != 0)
    }

    /// Marks `seq` seen; says whether it was seen before.
    fn mark(&mut self, seq: u32) -> bool {
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if self.bits.is_empty() {
            self.base = word;
        }
        while word < self.base {
            self.bits.push_front(0);
            self.base -= 1;
        }
        let index = word - self.base;
        if self.bits.len() <= index {
            self.bits.resize(index + 1, 0);
        }
        let before = self.bits[index] & bit != 0;
        self.bits[index] |= bit;
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
    /// Returns (restored sessions) whose replay was judged, and those that could not be (the
    /// departure unseen, or the connection gone before a live line); standalone only.
    pub restores_judged: u64,
    pub restores_unjudged: u64,
    /// Rooms replayed (a frame each), the lines in them, and the older messages their frames
    /// said are no longer kept.
    pub replay_rooms: u64,
    pub replayed: u64,
    pub replay_lost: u64,
    /// Messages owed in a replay (see the module documentation), those replayed, and those
    /// counted among the ones no longer kept.
    pub replay_owed: u64,
    pub replay_owed_met: u64,
    pub replay_owed_lost: u64,
    /// Messages of a returning user's rooms sent while the server may or may not have seen
    /// the departure (between L and G) or confirmed only after the return, and of them those
    /// replayed: not judged.
    pub replay_uncertain: u64,
    pub replay_uncertain_replayed: u64,
    /// Kept private messages replayed (framed and counted).
    pub privates_replayed: u64,
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
    seen: HashMap<u64, HashMap<(UserId, u64), Seen>>,
    /// Cluster mode: (receiver, sender) to what the receiving user saw of that sender over
    /// all its connections, live or replayed: each message once per user.
    user_seen: HashMap<(UserId, UserId), Seen>,
    /// Departures under way, by user.
    departures: HashMap<UserId, Departure>,
    /// Every message in the order sent (its tick, increasing): the replay judgement looks up
    /// what was sent while a user was away.
    log: Vec<(Tick, MsgKey)>,
    /// Room keys numbered, for `room_last`.
    room_numbers: HashMap<String, u32>,
    /// Standalone: (user, sender, room number) to the highest sequence number of the sender
    /// that the user got in that room, live or replayed.
    room_last: HashMap<(UserId, UserId, u32), u32>,
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
            user_seen: HashMap::new(),
            departures: HashMap::new(),
            log: Vec::new(),
            room_numbers: HashMap::new(),
            room_last: HashMap::new(),
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
            answered: 0,
            replay: None,
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

    /// `conn` starts vanishing at `at`: it leaves every room. The first call for a logged-in
    /// connection is its user's departure (L).
    pub fn leaving_all(&mut self, conn: ConnId, at: Tick) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let rooms: Vec<String> = c.spans.keys().cloned().collect();
        let known = self.departures.get(&c.user).is_some_and(|d| d.conn == conn);
        if !known && !rooms.is_empty() {
            let inside = c.spans.iter().filter(|(_, spans)| {
                spans.last().is_some_and(|s| {
                    s.confirmed.is_some() && s.leaving.is_none() && s.gone.is_none()
                })
            });
            let departure = Departure {
                conn,
                node: c.node,
                leaving: at,
                gone_by: None,
                rooms: inside.map(|(room, _)| room.clone()).collect(),
            };
            self.departures.insert(c.user, departure);
        }
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
        if self.config.per_connection {
            // Nothing more arrives on it: what it saw is only needed per user from now on.
            self.seen.remove(&conn);
        }
        if let Some(c) = self.conns.remove(&conn) {
            self.counts.unjudged += c.pending.len() as u64;
            if c.replay.is_some_and(|r| r.restored && self.config.replay) {
                self.counts.restores_unjudged += 1;
            }
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
        self.log.push((at, key));
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
            let (receiver, from, from_conn) = scope;
            let already = self
                .seen
                .get(&receiver)
                .and_then(|by_sender| by_sender.get(&(from, from_conn)))
                .is_some_and(|seen| seen.has(key.seq));
            if already {
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
        let user = c.user;
        let scope = Self::scope(&self.config, conn, user, key, msg.conn);
        let met = c.pending.remove(&key);
        let number = Self::room_number(&self.config, &mut self.room_numbers, &msg.room);
        self.counts.required_met += u64::from(met);
        if !member {
            let detail = format!("conn {conn} got {key:?} in {room}, not being in it");
            self.violation(Kind::NonMember, detail);
        }
        let seen = self.seen_mut(scope);
        let again = seen.mark(key.seq);
        let earlier = seen.last.is_some_and(|last| key.seq < last);
        seen.last = seen.last.max(Some(key.seq));
        self.note_in_room(user, key, number);
        if again {
            self.violation(Kind::Duplicate, format!("conn {conn} got {key:?} again"));
        } else if self.seen_by_user(user, key) {
            let detail = format!("conn {conn} got {key:?}, which user {user} had got already");
            self.violation(Kind::Duplicate, detail);
        } else if earlier {
            self.violation(Kind::OutOfOrder, format!("conn {conn} got {key:?} late"));
        }
    }

    /// What the receiver of `scope` saw of its sender (see [`Checker::scope`]), to mark.
    fn seen_mut(&mut self, (receiver, sender, sender_conn): (u64, UserId, u64)) -> &mut Seen {
        let by_sender = self.seen.entry(receiver).or_default();
        by_sender.entry((sender, sender_conn)).or_default()
    }

    /// Cluster mode: notes that `user` got `key` (on any of its connections); says whether it
    /// had got it before. Standalone the scope is the user already.
    fn seen_by_user(&mut self, user: UserId, key: MsgKey) -> bool {
        self.config.per_connection
            && self
                .user_seen
                .entry((user, key.sender))
                .or_default()
                .mark(key.seq)
    }

    /// Standalone: the number of room `key` in `room_last` (numbered on first sight). Takes
    /// the fields it needs so that a message borrowed from `msgs` can name the room.
    fn room_number(config: &Config, numbers: &mut HashMap<String, u32>, key: &str) -> Option<u32> {
        if config.per_connection {
            return None;
        }
        if let Some(&number) = numbers.get(key) {
            return Some(number);
        }
        let next = u32::try_from(numbers.len()).unwrap_or(u32::MAX);
        numbers.insert(key.to_string(), next);
        Some(next)
    }

    /// Standalone (`number` given): notes that `user` got `key` in room `number`; returns the
    /// highest sequence number of the same sender it had got there before.
    fn note_in_room(&mut self, user: UserId, key: MsgKey, number: Option<u32>) -> Option<u32> {
        let number = number?;
        let last = self
            .room_last
            .entry((user, key.sender, number))
            .or_insert(0);
        let before = (*last > 0).then_some(*last);
        *last = (*last).max(key.seq);
        before
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
        c.answered = c.answered.max(asked);
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
        let replays = self.conns.values().filter(|c| {
            c.replay
                .as_ref()
                .is_some_and(|r| r.restored && self.config.replay)
        });
        self.counts.restores_unjudged += replays.count() as u64;
        for c in self.conns.values_mut() {
            c.pending.clear();
            c.replay = None;
        }
    }
}

/// Replay of missed messages: see the module documentation.
impl Checker {
    /// The server let `conn` go by `at`: its goodbye, or the server's close, was read then.
    pub fn gone_by(&mut self, conn: ConnId, at: Tick) {
        let Some(user) = self.conns.get(&conn).map(|c| c.user) else {
            return;
        };
        if let Some(d) = self.departures.get_mut(&user).filter(|d| d.conn == conn) {
            d.gone_by = Some(d.gone_by.map_or(at, |g| g.min(at)));
        }
    }

    /// `conn` read, at `at`, that `user` disconnected (a presence notice). It is about the
    /// departure under way if the server wrote it after that departure started: after the
    /// answer to a command `conn` sent later than that. A notice on another node may be a late
    /// echo of an earlier departure, so only the departure's own node counts.
    pub fn disconnect_seen(&mut self, conn: ConnId, user: UserId, at: Tick) {
        let Some((answered, node)) = self.conns.get(&conn).map(|c| (c.answered, c.node)) else {
            return;
        };
        if let Some(d) = self.departures.get_mut(&user) {
            if answered > d.leaving && node == d.node {
                d.gone_by = Some(d.gone_by.map_or(at, |g| g.min(at)));
            }
        }
    }

    /// `conn` read, at `at`, the whole member list of `room` (`listed`: the users in it) in
    /// answer to a `/who` sent at `asked`: a departing user that was in the room and is not
    /// listed had been let go by then, if the departure started before `asked`. Only lists of
    /// the departure's own node count (another node may not know yet that the user is back).
    pub fn members(
        &mut self,
        conn: ConnId,
        room: &str,
        listed: &HashSet<UserId>,
        asked: Tick,
        at: Tick,
    ) {
        let Some(node) = self.conns.get(&conn).map(|c| c.node) else {
            return;
        };
        let key = room_key(room);
        for (user, d) in &mut self.departures {
            if d.leaving < asked
                && d.node == node
                && !listed.contains(user)
                && d.rooms.contains(&key)
            {
                d.gone_by = Some(d.gone_by.map_or(at, |g| g.min(at)));
            }
        }
    }

    /// `conn` read, at `at`, the welcome to the `/nick` it sent at `asked`: `restored` (a
    /// session with `rooms` given back, whose missed messages may follow) or fresh (only kept
    /// private messages may follow). What follows up to the first live line is its replay.
    pub fn logged_in(
        &mut self,
        conn: ConnId,
        restored: bool,
        rooms: &[&str],
        asked: Tick,
        at: Tick,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let departure = self.departures.remove(&c.user).filter(|_| restored);
        c.replay = Some(Box::new(Replay {
            restored,
            rooms: rooms.iter().map(|r| room_key(r)).collect(),
            asked,
            welcomed: at,
            departure,
            frame: None,
            lost: HashMap::new(),
            replayed: HashSet::new(),
            privates: None,
            privates_done: false,
        }));
    }

    /// The replay under way on `conn`, or a violation saying that `what` came outside one.
    fn replay_of(&mut self, conn: ConnId, what: &str) -> Option<&mut Replay> {
        let open = self.conns.get(&conn).is_some_and(|c| c.replay.is_some());
        if !open {
            let detail =
                format!("conn {conn}: {what} outside a replay (not right after a welcome)");
            self.violation(Kind::Replay, detail);
            return None;
        }
        self.conns.get_mut(&conn)?.replay.as_deref_mut()
    }

    /// `conn` read `* Missed in ROOM: N messages since ...[; K older ones are no
    /// longer kept].`: `announced` is N, `lost` K.
    pub fn replay_header(&mut self, conn: ConnId, room: &str, announced: u64, lost: u64) {
        let key = room_key(room);
        let Some(replay) = self.replay_of(conn, "a replay header") else {
            return;
        };
        let mut problems = Vec::new();
        if let Some(frame) = replay.frame.take() {
            problems.push(format!("the replay of {} has no end", frame.room));
        }
        if !replay.restored {
            problems.push(format!("a replay of {room} after a fresh welcome"));
        } else if !replay.rooms.contains(&key) {
            problems.push(format!(
                "a replay of {room}, not a room of the restored session"
            ));
        }
        if replay.privates.is_some() {
            problems.push(format!(
                "a replay of {room} after the kept private messages"
            ));
        }
        if replay.lost.insert(key.clone(), lost).is_some() {
            problems.push(format!("a second replay of {room}"));
        }
        if announced == 0 && lost == 0 {
            problems.push(format!("a replay of {room} with nothing missed"));
        }
        replay.frame = Some(Frame {
            room: key,
            announced,
            lines: 0,
            last: HashMap::new(),
        });
        self.counts.replay_rooms += 1;
        self.counts.replay_lost += lost;
        for problem in problems {
            self.violation(Kind::Replay, format!("conn {conn}: {problem}"));
        }
    }

    /// `conn` read `* End of missed messages in ROOM.`: the frame's count must be the
    /// lines that came in it.
    pub fn replay_end(&mut self, conn: ConnId, room: &str) {
        let key = room_key(room);
        let Some(replay) = self.replay_of(conn, "the end of a room's replay") else {
            return;
        };
        let problem = match replay.frame.take() {
            None => Some(format!("the end of a replay of {room} that never started")),
            Some(frame) if frame.room != key => Some(format!(
                "the end of a replay of {room} inside that of {}",
                frame.room
            )),
            Some(frame) if frame.lines != frame.announced => Some(format!(
                "{} messages announced in the replay of {room}, {} came",
                frame.announced, frame.lines
            )),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            self.violation(Kind::Replay, format!("conn {conn}: {problem}"));
        }
    }

    /// `conn` read message `key` replayed as a line of `room` from `nick` with `text`.
    pub fn replayed(&mut self, conn: ConnId, key: MsgKey, (room, nick, text): (&str, &str, &str)) {
        self.counts.replayed += 1;
        let Some(msg) = self.msgs.get(&key) else {
            let detail = format!("conn {conn} got unsent {key:?} replayed");
            return self.violation(Kind::Garbled, detail);
        };
        if msg.half {
            let detail = format!("conn {conn} got half line {key:?} replayed");
            return self.violation(Kind::HalfLine, detail);
        }
        if msg.room != room_key(room) || msg.nick != nick || msg.text != text {
            let detail = format!("conn {conn} got {key:?} replayed as [{room}] {nick}: {text}");
            return self.violation(Kind::Garbled, detail);
        }
        let (msg_room, msg_node, msg_conn) = (msg.room.clone(), msg.node, msg.conn);
        let (sent, echoed) = (msg.sent, msg.echoed);
        let Some((user, node)) = self.conns.get(&conn).map(|c| (c.user, c.node)) else {
            return;
        };
        let scope = Self::scope(&self.config, conn, user, key, msg_conn);
        let Some(replay) = self.replay_of(conn, "a replayed line") else {
            return;
        };
        let mut problems = Vec::new();
        let mut late = false;
        match replay.frame.as_mut() {
            None => problems.push(format!("{key:?} replayed outside a room's frame")),
            Some(frame) if frame.room != msg_room => {
                problems.push(format!("{key:?} of {room} in the replay of {}", frame.room))
            }
            Some(frame) => {
                frame.lines += 1;
                let last = frame.last.entry(scope).or_insert(key.seq);
                late = key.seq < *last;
                *last = (*last).max(key.seq);
            }
        }
        replay.replayed.insert(key);
        if key.sender == user {
            problems.push(format!("its own {key:?} replayed"));
        }
        if sent >= replay.welcomed {
            problems.push(format!("{key:?} replayed, sent after the welcome"));
        }
        // The server had a message of the departure's own node before the end if its echo was
        // read before the departure started; another node's may have come later.
        let before = replay.departure.as_ref().is_some_and(|d| {
            d.node == node && msg_node == node && echoed.is_some_and(|e| e < d.leaving)
        });
        if before {
            problems.push(format!(
                "{key:?} replayed, confirmed before the connection started to vanish"
            ));
        }
        for problem in problems {
            self.violation(Kind::Replay, format!("conn {conn}: {problem}"));
        }
        let seen = self.seen_mut(scope);
        let again = seen.mark(key.seq);
        seen.last = seen.last.max(Some(key.seq));
        let number = Self::room_number(&self.config, &mut self.room_numbers, &msg_room);
        let earlier = self.note_in_room(user, key, number);
        late |= earlier.is_some_and(|last| key.seq < last);
        let again = again || self.seen_by_user(user, key);
        if again {
            let detail = format!("conn {conn} got {key:?} replayed, having got it already");
            self.violation(Kind::Duplicate, detail);
        } else if late {
            let detail =
                format!("conn {conn} got {key:?} replayed after a later one of its sender");
            self.violation(Kind::OutOfOrder, detail);
        }
    }

    /// `conn` read `* Missed while you were away: N private messages.`.
    pub fn privates_header(&mut self, conn: ConnId, announced: u64) {
        let Some(replay) = self.replay_of(conn, "a kept private messages' header") else {
            return;
        };
        let mut problems = Vec::new();
        if let Some(frame) = replay.frame.take() {
            problems.push(format!("the replay of {} has no end", frame.room));
        }
        if replay.privates.replace((announced, 0)).is_some() {
            problems.push("a second header of kept private messages".to_string());
        }
        if announced == 0 {
            problems.push("kept private messages announced: none".to_string());
        }
        for problem in problems {
            self.violation(Kind::Replay, format!("conn {conn}: {problem}"));
        }
    }

    /// `conn` read a kept private message `(PM TIME) NICK: TEXT`.
    pub fn private_replayed(&mut self, conn: ConnId) {
        self.counts.privates_replayed += 1;
        let Some(replay) = self.replay_of(conn, "a kept private message") else {
            return;
        };
        let problem = match replay.privates.as_mut() {
            Some((_, lines)) if !replay.privates_done => {
                *lines += 1;
                None
            }
            _ => Some("a kept private message outside its frame"),
        };
        if let Some(problem) = problem {
            self.violation(Kind::Replay, format!("conn {conn}: {problem}"));
        }
    }

    /// `conn` read `* End of missed private messages.`.
    pub fn privates_end(&mut self, conn: ConnId) {
        let Some(replay) = self.replay_of(conn, "the end of kept private messages") else {
            return;
        };
        let problem = match replay.privates {
            Some(_) if replay.privates_done => Some("a second end of kept private messages".into()),
            Some((announced, lines)) if announced != lines => Some(format!(
                "{announced} kept private messages announced, {lines} came"
            )),
            Some(_) => None,
            None => Some("the end of kept private messages that never started".into()),
        };
        replay.privates_done = true;
        if let Some(problem) = problem {
            self.violation(Kind::Replay, format!("conn {conn}: {problem}"));
        }
    }

    /// `conn` read a line that is not part of a replay: a replay under way is over, and is
    /// judged.
    pub fn live(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(replay) = c.replay.take() else {
            return;
        };
        let (user, node) = (c.user, c.node);
        self.judge_replay(conn, (user, node), *replay);
    }

    /// The replay on `conn` of `user` is over: its frames must be closed and, standalone,
    /// every message owed to it must have come (or be counted as no longer kept).
    fn judge_replay(&mut self, conn: ConnId, (user, node): (UserId, usize), replay: Replay) {
        if let Some(frame) = &replay.frame {
            let detail = format!("conn {conn}: the replay of {} has no end", frame.room);
            self.violation(Kind::Replay, detail);
        }
        if replay.privates.is_some() && !replay.privates_done {
            let detail = format!("conn {conn}: the kept private messages have no end");
            self.violation(Kind::Replay, detail);
        }
        if !replay.restored || !self.config.replay {
            return;
        }
        let Some(departure) = replay.departure else {
            self.counts.restores_unjudged += 1;
            return;
        };
        self.counts.restores_judged += 1;
        // Everything owed was sent after G, which is after L; what was sent before L is never
        // owed.
        let start = self
            .log
            .partition_point(|&(sent, _)| sent < departure.leaving);
        let mut missing: Vec<(String, MsgKey)> = Vec::new();
        for &(sent, key) in &self.log[start..] {
            if sent >= replay.asked {
                break;
            }
            let Some(msg) = self.msgs.get(&key) else {
                continue;
            };
            if msg.half || key.sender == user || !replay.rooms.contains(&msg.room) {
                continue;
            }
            let replayed = replay.replayed.contains(&key);
            let after_the_end = departure.gone_by.is_some_and(|gone| sent > gone);
            // In a cluster another node's message must also have had time to reach the node
            // returned to; one that came later was live there.
            let reached = |echo: Tick| msg.node == node || echo + self.config.grace < replay.asked;
            let before_the_return = msg
                .echoed
                .is_some_and(|echo| echo < replay.asked && reached(echo));
            if after_the_end && before_the_return {
                self.counts.replay_owed += 1;
                if replayed {
                    self.counts.replay_owed_met += 1;
                } else {
                    missing.push((msg.room.clone(), key));
                }
            } else {
                self.counts.replay_uncertain += 1;
                self.counts.replay_uncertain_replayed += u64::from(replayed);
            }
        }
        // What a frame says is no longer kept are the oldest messages missed in its room.
        let mut excused: HashMap<String, u64> = replay.lost;
        for (room, key) in missing {
            match excused.get_mut(&room).filter(|lost| **lost > 0) {
                Some(lost) => {
                    *lost -= 1;
                    self.counts.replay_owed_lost += 1;
                }
                None => {
                    let detail = format!(
                        "conn {conn} never got {key:?} of {room} in its replay (sent after the \
                         server saw the departure, confirmed before the return)"
                    );
                    self.violation(Kind::Missing, detail);
                }
            }
        }
    }
}
