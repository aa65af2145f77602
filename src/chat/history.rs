//! Room history: the last messages of every room, kept within three bounds (messages per room,
//! bytes in all, age), for the replay of what a returning user missed and for `/history`.
//!
//! Every room counts the messages ever posted in it; a message keeps its number. A departing
//! user's session remembers each room's count (its mark), so on return the replay is exactly
//! the kept messages numbered after the mark, and the ones numbered after it that are no longer
//! kept are counted as lost. Eviction is always oldest first within a room, so what a room
//! keeps is one run of numbers ending at its count.

use std::collections::{HashMap, VecDeque};

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
        }
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

    /// Keeps a message posted in room `key` at `at_ms`; returns its number in the room, and
    /// drops what the bounds no longer allow.
    pub(crate) fn record(
        &mut self,
        key: &str,
        at_ms: u64,
        nick: &str,
        text: &str,
        action: bool,
    ) -> u64 {
        // Looked up before inserting: `entry` would allocate the key for every message.
        if !self.rooms.contains_key(key) {
            self.rooms.insert(key.to_string(), RoomHistory::default());
        }
        let Some(room) = self.rooms.get_mut(key) else {
            return 0;
        };
        room.posted += 1;
        let number = room.posted;
        if self.limits.per_room == 0 {
            return number;
        }
        let message = StoredMessage {
            number,
            at_ms,
            nick: nick.to_string(),
            text: text.to_string(),
            action,
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
    pub(crate) fn restore(&mut self, key: &str, message: StoredMessage) {
        let enabled = self.enabled();
        let room = self.rooms.entry(key.to_string()).or_default();
        room.posted = room.posted.max(message.number);
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
    pub(crate) fn missed_since(&self, key: &str, mark: u64) -> Missed<'_> {
        let Some(room) = self.rooms.get(key) else {
            return Missed {
                messages: Vec::new(),
                lost: 0,
            };
        };
        let messages: Vec<&StoredMessage> =
            room.messages.iter().filter(|m| m.number > mark).collect();
        let missed = room.posted.saturating_sub(mark);
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
