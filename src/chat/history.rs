//! Room history: the last messages of every room, kept within three bounds (messages per room,
//! bytes in all, age), for the replay of what a returning user missed and for `/history`.
//!
//! Every room counts the messages ever posted in it; a message keeps its number. A departing
//! user's session remembers each room's count (its mark), so on return the replay is exactly
//! the kept messages numbered after the mark, and the ones numbered after it that are no longer
//! kept are counted as lost. Eviction is always oldest first within a room, so what a room
//! keeps is one run of numbers ending at its count.
//!
//! In a cluster those numbers are this node's own (each node sees the others' messages in its
//! own interleaving), so a session that comes back on another node needs marks that mean the
//! same everywhere: every message also carries its [`Origin`] (the node incarnation that took
//! it in and its number among that node's messages in the room), each room keeps its *clock*
//! (the last number seen from each origin), and a departing user's marks are those clocks.
//! Messages from one origin reach every node in order, so "after the mark" is, per origin, a
//! number above the clock's.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// What one kept message costs besides its text, for the byte bound (strings, numbers, the
/// global order entry).
const OVERHEAD: usize = 96;

/// One kept message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its number in its room (1 for the room's first message).
    pub number: u64,
    /// When the server received it, in milliseconds since the Unix epoch (UTC).
    pub at_ms: u64,
    /// The sender's nick.
    pub nick: String,
    /// The text.
    pub text: String,
    /// A `/me` action rather than a plain message.
    pub action: bool,
    /// In a cluster: the node that took it in, and its number there.
    pub origin: Option<Origin>,
}

/// Where a message of a cluster comes from: the node incarnation that took it in (its name
/// and start time, so a restarted node counts afresh) and the message's number among that
/// incarnation's messages in the room (1 for the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The node incarnation.
    pub node: Arc<str>,
    /// The message's number among that incarnation's messages in its room.
    pub seq: u64,
}

/// When a message was taken in, and (in a cluster) from where.
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    /// Milliseconds since the Unix epoch (UTC).
    pub(crate) at_ms: u64,
    /// In a cluster: the node that took it in, and its number there.
    pub(crate) origin: Option<Origin>,
}

/// A room's clock in a cluster: for each origin, the number of the last of its messages seen
/// in the room. Also a returning user's mark for the room.
pub type RoomClock = Vec<(String, u64)>;

/// Where a returning user left off in a room.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mark<'a> {
    /// The room's count of messages on this server.
    Count(u64),
    /// The room's clock (cluster mode).
    Clock(&'a [(String, u64)]),
}

impl StoredMessage {
    fn cost(&self) -> usize {
        self.nick.len() + self.text.len() + OVERHEAD
    }
}

/// One room's kept messages and its count of all messages ever posted.
#[derive(Debug, Default)]
struct RoomHistory {
    posted: u64,
    messages: VecDeque<StoredMessage>,
    /// Cluster mode: the last number seen from each origin.
    clock: Vec<(Arc<str>, u64)>,
}

impl RoomHistory {
    /// The last number seen from origin `node` (0 for none).
    fn seen(&self, node: &str) -> u64 {
        self.clock
            .iter()
            .find(|(n, _)| &**n == node)
            .map_or(0, |&(_, seq)| seq)
    }

    /// Notes that the message numbered `seq` of origin `node` was seen.
    fn see(&mut self, origin: &Origin) {
        match self.clock.iter_mut().find(|(n, _)| *n == origin.node) {
            Some((_, seq)) => *seq = (*seq).max(origin.seq),
            None => self.clock.push((Arc::clone(&origin.node), origin.seq)),
        }
    }
}

/// The bounds of the history.
#[derive(Debug, Clone, Copy)]
pub struct HistoryLimits {
    /// Messages kept per room; 0 keeps nothing at all.
    pub per_room: usize,
    /// Bytes kept in all rooms together; the oldest message anywhere goes first.
    pub max_bytes: usize,
    /// Messages older than this (milliseconds) are dropped.
    pub max_age_ms: u64,
}

/// What a returning user missed in one room.
#[derive(Debug)]
pub(crate) struct Missed<'a> {
    /// The kept messages numbered after the user's mark, oldest first.
    pub(crate) messages: Vec<&'a StoredMessage>,
    /// Messages posted after the mark that are no longer kept.
    pub(crate) lost: u64,
}

/// The history of every room, by room key.
#[derive(Debug)]
pub(crate) struct History {
    limits: HistoryLimits,
    rooms: HashMap<String, RoomHistory>,
    /// (room key, number) of every kept message in arrival order, for the byte and age bounds;
    /// entries of messages a room already evicted are skipped when they come up.
    order: VecDeque<(String, u64, u64)>,
    /// Entries of `order` whose message is gone; `order` is compacted when they dominate.
    stale: usize,
    bytes: usize,
    /// Rooms that dropped messages since the last [`History::take_trimmed`], with the number
    /// of the last message dropped: what storage must forget too.
    trimmed: Vec<(String, u64)>,
    /// Cluster mode: every origin seen, shared by the messages and clocks that name it.
    origins: Vec<Arc<str>>,
}

impl History {
    /// An empty history with these bounds.
    pub(crate) fn new(limits: HistoryLimits) -> Self {
        Self {
            limits,
            rooms: HashMap::new(),
            order: VecDeque::new(),
            stale: 0,
            bytes: 0,
            trimmed: Vec::new(),
            origins: Vec::new(),
        }
    }

    /// The shared name of origin `node` (a handful per cluster: one per node start).
    pub(crate) fn intern(&mut self, node: &str) -> Arc<str> {
        if let Some(known) = self.origins.iter().find(|o| &***o == node) {
            return Arc::clone(known);
        }
        let name: Arc<str> = Arc::from(node);
        self.origins.push(Arc::clone(&name));
        name
    }

    /// The bounds.
    pub(crate) fn limits(&self) -> HistoryLimits {
        self.limits
    }

    /// Whether rooms keep any history.
    pub(crate) fn enabled(&self) -> bool {
        self.limits.per_room > 0
    }

    /// The count of messages ever posted in room `key` (0 for a room without any).
    pub(crate) fn mark(&self, key: &str) -> u64 {
        self.rooms.get(key).map_or(0, |r| r.posted)
    }

    /// Room `key`'s clock (cluster mode): the last number seen from each origin.
    pub(crate) fn clock(&self, key: &str) -> RoomClock {
        self.rooms.get(key).map_or_else(Vec::new, |r| {
            r.clock
                .iter()
                .map(|(node, seq)| (node.to_string(), *seq))
                .collect()
        })
    }

    /// The number the next message of origin `node` in room `key` gets.
    pub(crate) fn next_seq(&self, key: &str, node: &str) -> u64 {
        self.rooms
            .get(key)
            .map_or(0, |r| r.seen(node))
            .saturating_add(1)
    }

    /// Whether message `origin` of room `key` was seen already (a cluster message that came
    /// both from the store at start and from the channel).
    pub(crate) fn has_seen(&self, key: &str, origin: &Origin) -> bool {
        self.rooms
            .get(key)
            .is_some_and(|r| r.seen(&origin.node) >= origin.seq)
    }

    /// Whether a mark taken elsewhere in the cluster is ahead of room `key` here: some
    /// message the user saw has not reached this node yet. Only origins this node has heard
    /// of count: one it never heard of (a node that stopped before this one started, whose
    /// messages are no longer kept) will send nothing more to wait for.
    pub(crate) fn is_behind(&self, key: &str, mark: &[(String, u64)]) -> bool {
        let room = self.rooms.get(key);
        mark.iter().any(|(node, seq)| {
            self.origins.iter().any(|o| **o == **node) && room.map_or(0, |r| r.seen(node)) < *seq
        })
    }

    /// Keeps a message posted in room `key` at `at_ms`; returns its number in the room, and
    /// drops what the bounds no longer allow.
    pub(crate) fn record(
        &mut self,
        key: &str,
        nick: &str,
        text: &str,
        action: bool,
        taken: Taken,
    ) -> u64 {
        let Taken { at_ms, origin } = taken;
        // Looked up before inserting: `entry` would allocate the key for every message.
        if !self.rooms.contains_key(key) {
            self.rooms.insert(key.to_string(), RoomHistory::default());
        }
        let Some(room) = self.rooms.get_mut(key) else {
            return 0;
        };
        room.posted += 1;
        let number = room.posted;
        if let Some(origin) = &origin {
            room.see(origin);
        }
        if self.limits.per_room == 0 {
            return number;
        }
        let message = StoredMessage {
            number,
            at_ms,
            nick: nick.to_string(),
            text: text.to_string(),
            action,
            origin,
        };
        self.bytes += message.cost();
        room.messages.push_back(message);
        self.order.push_back((key.to_string(), number, at_ms));
        if room.messages.len() > self.limits.per_room {
            if let Some(evicted) = room.messages.pop_front() {
                self.bytes -= evicted.cost();
                self.stale += 1;
                note_trimmed(&mut self.trimmed, key, evicted.number);
            }
        }
        self.enforce_bounds(at_ms);
        number
    }

    /// Puts back a message loaded from storage (oldest first per room), keeping the room within
    /// its bound (`--history` may be lower than when it was stored); call
    /// [`History::enforce_bounds`] once all are loaded for the byte and age bounds.
    pub(crate) fn restore(&mut self, key: &str, mut message: StoredMessage) {
        if let Some(origin) = message.origin.as_mut() {
            origin.node = self.intern(&origin.node);
        }
        let enabled = self.enabled();
        let room = self.rooms.entry(key.to_string()).or_default();
        room.posted = room.posted.max(message.number);
        if let Some(origin) = &message.origin {
            room.see(origin);
        }
        if !enabled {
            return;
        }
        self.bytes += message.cost();
        self.order
            .push_back((key.to_string(), message.number, message.at_ms));
        room.messages.push_back(message);
        if room.messages.len() > self.limits.per_room {
            if let Some(evicted) = room.messages.pop_front() {
                self.bytes -= evicted.cost();
                self.stale += 1;
            }
        }
    }

    /// Sets room `key`'s count of posted messages to at least `posted` (loaded from storage).
    pub(crate) fn restore_count(&mut self, key: &str, posted: u64) {
        let room = self.rooms.entry(key.to_string()).or_default();
        room.posted = room.posted.max(posted);
    }

    /// Drops the oldest messages anywhere until the byte bound holds, and everything older
    /// than the age bound at `now_ms`.
    pub(crate) fn enforce_bounds(&mut self, now_ms: u64) {
        let oldest_allowed = now_ms.saturating_sub(self.limits.max_age_ms);
        while let Some((key, number, at_ms)) = self.order.front() {
            let live = self
                .rooms
                .get(key)
                .and_then(|r| r.messages.front())
                .is_some_and(|m| m.number <= *number);
            if live && self.bytes <= self.limits.max_bytes && *at_ms >= oldest_allowed {
                break;
            }
            let Some((key, number, _)) = self.order.pop_front() else {
                break;
            };
            if !live {
                self.stale = self.stale.saturating_sub(1);
                continue;
            }
            if let Some(room) = self.rooms.get_mut(&key) {
                if room.messages.front().is_some_and(|m| m.number == number) {
                    if let Some(evicted) = room.messages.pop_front() {
                        self.bytes -= evicted.cost();
                        note_trimmed(&mut self.trimmed, &key, evicted.number);
                    }
                }
            }
        }
        // Entries of messages their room already evicted are skipped only when they come up
        // front; a busy room under its own bound would pile them up, so compact now and then.
        if self.stale > 1024 && self.stale > self.order.len() / 2 {
            let rooms = &self.rooms;
            self.order.retain(|(key, number, _)| {
                rooms
                    .get(key)
                    .and_then(|r| r.messages.front())
                    .is_some_and(|m| m.number <= *number)
            });
            self.stale = 0;
        }
    }

    /// The rooms that dropped messages since the last call, each with the number of the last
    /// message it dropped.
    pub(crate) fn take_trimmed(&mut self) -> Vec<(String, u64)> {
        std::mem::take(&mut self.trimmed)
    }

    /// What was posted in room `key` after `mark`.
    pub(crate) fn missed_since(&self, key: &str, mark: Mark<'_>) -> Missed<'_> {
        let Some(room) = self.rooms.get(key) else {
            return Missed {
                messages: Vec::new(),
                lost: 0,
            };
        };
        let (messages, missed): (Vec<&StoredMessage>, u64) = match mark {
            Mark::Count(mark) => (
                room.messages.iter().filter(|m| m.number > mark).collect(),
                room.posted.saturating_sub(mark),
            ),
            Mark::Clock(mark) => {
                let seen = |node: &str| {
                    mark.iter()
                        .find(|(n, _)| n == node)
                        .map_or(0, |&(_, seq)| seq)
                };
                let after =
                    |m: &&StoredMessage| m.origin.as_ref().is_some_and(|o| o.seq > seen(&o.node));
                let missed = room
                    .clock
                    .iter()
                    .map(|(node, seq)| seq.saturating_sub(seen(node)))
                    .fold(0u64, u64::saturating_add);
                (room.messages.iter().filter(after).collect(), missed)
            }
        };
        Missed {
            lost: missed.saturating_sub(messages.len() as u64),
            messages,
        }
    }

    /// The last `count` kept messages of room `key`, oldest first.
    pub(crate) fn last(&self, key: &str, count: usize) -> Vec<&StoredMessage> {
        let Some(room) = self.rooms.get(key) else {
            return Vec::new();
        };
        let skip = room.messages.len().saturating_sub(count);
        room.messages.iter().skip(skip).collect()
    }

    /// Every room's kept messages and count, for storage.
    pub(crate) fn rooms(&self) -> impl Iterator<Item = (&str, u64, &VecDeque<StoredMessage>)> {
        self.rooms
            .iter()
            .map(|(key, room)| (key.as_str(), room.posted, &room.messages))
    }
}

/// Notes that room `key` dropped its messages up to `number` (one entry a room).
fn note_trimmed(trimmed: &mut Vec<(String, u64)>, key: &str, number: u64) {
    match trimmed.iter_mut().find(|(room, _)| room == key) {
        Some((_, through)) => *through = (*through).max(number),
        None => trimmed.push((key.to_string(), number)),
    }
}
