//! Room history in Redis: one stream a room (`chat:history:{room}`), appended to by the node
//! that took each message in (`XADD ... MAXLEN ~`, see `worker.rs`), read back by every node
//! at start. Each entry carries the message's origin and number there (`history.rs` in the
//! chat), so any node can tell what a returning user missed, whichever node they left.

use std::collections::HashSet;
use std::sync::Arc;

use log::{info, warn};

use super::job::Entry;
use super::{history_key, scan_keys, HISTORY_PREFIX};
use crate::chat::{HistoryLimits, Origin, RoomMessage, RoomSnapshot, Snapshot, StoredMessage};
use crate::protocol::name_key;

/// The worker's side of the streams: appending, and trimming by age.
pub struct Streams {
    /// The rooms' history bounds.
    limits: HistoryLimits,
    /// Streams appended to since they were last trimmed by age.
    written: HashSet<String>,
}

impl Streams {
    /// Streams kept within `limits`.
    pub fn new(limits: HistoryLimits) -> Self {
        Self {
            limits,
            written: HashSet::new(),
        }
    }

    /// Appends a room message to its room's stream, capped at the rooms' bound (`~`: Redis
    /// trims whole nodes of the stream, so a little more may be kept).
    pub fn append(&mut self, pipe: &mut redis::Pipeline, entry: &Entry) {
        if self.limits.per_room == 0 {
            return;
        }
        let key = history_key(&entry.room);
        let xadd = pipe.cmd("XADD").arg(&key).arg("MAXLEN").arg("~");
        xadd.arg(self.limits.per_room).arg("*");
        for (field, value) in &entry.fields {
            xadd.arg(*field).arg(value);
        }
        xadd.ignore();
        // A room that falls silent is gone from Redis once its last message is too old.
        pipe.cmd("PEXPIRE")
            .arg(&key)
            .arg(self.limits.max_age_ms)
            .ignore();
        self.written.insert(key);
    }

    /// Drops history older than the age bound from the streams written since the last call
    /// (the count bound is kept by every `XADD`).
    pub fn trim_by_age(&mut self, con: &mut redis::Connection) -> redis::RedisResult<()> {
        if self.written.is_empty() {
            return Ok(());
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let oldest = now_ms.saturating_sub(self.limits.max_age_ms.into());
        let mut pipe = redis::pipe();
        for key in self.written.drain() {
            pipe.cmd("XTRIM")
                .arg(key)
                .arg("MINID")
                .arg("~")
                .arg(oldest.to_string())
                .ignore();
        }
        pipe.exec(con)
    }
}

/// The stream entry for a room message.
pub fn entry(message: &RoomMessage<'_>) -> Entry {
    let stamp = &message.stamp;
    Entry {
        room: name_key(message.room),
        fields: [
            ("o", stamp.origin.to_string()),
            ("s", stamp.seq.to_string()),
            ("t", stamp.at_ms.to_string()),
            ("n", message.nick.to_string()),
            ("x", message.text.to_string()),
            ("a", if message.action { "1" } else { "0" }.to_string()),
        ],
    }
}

/// Every room's last `per_room` messages, oldest first, numbered in that order (the numbers
/// are this node's own). Entries that cannot be read are skipped with a warning.
pub fn load(con: &mut redis::Connection, per_room: usize) -> redis::RedisResult<Snapshot> {
    let mut snapshot = Snapshot::default();
    if per_room == 0 {
        return Ok(snapshot);
    }
    let mut origins: Vec<Arc<str>> = Vec::new();
    let mut skipped = 0usize;
    for key in scan_keys(con, HISTORY_PREFIX, "stream")? {
        let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XREVRANGE")
            .arg(&key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(per_room)
            .query(con)?;
        let mut messages = Vec::with_capacity(entries.len());
        for (_, fields) in entries.into_iter().rev() {
            match message(&fields, &mut origins) {
                Some(mut message) => {
                    message.number = messages.len() as u64 + 1;
                    messages.push(message);
                }
                None => skipped += 1,
            }
        }
        let room = key.trim_start_matches(HISTORY_PREFIX).to_string();
        snapshot.rooms.push(RoomSnapshot {
            key: room,
            posted: messages.len() as u64,
            messages,
        });
    }
    if skipped > 0 {
        warn!("cluster: {skipped} history entries in Redis could not be read; skipped");
    }
    let total: usize = snapshot.rooms.iter().map(|r| r.messages.len()).sum();
    info!(
        "cluster: loaded {total} messages of history in {} rooms from Redis",
        snapshot.rooms.len()
    );
    Ok(snapshot)
}

/// The message in a stream entry's `fields` (name, value, name, value, ...).
fn message(fields: &[Vec<u8>], origins: &mut Vec<Arc<str>>) -> Option<StoredMessage> {
    let field = |name: &str| {
        fields
            .chunks_exact(2)
            .find(|pair| pair[0] == name.as_bytes())
            .and_then(|pair| std::str::from_utf8(&pair[1]).ok())
    };
    let origin = field("o").filter(|o| !o.is_empty())?;
    let node = match origins.iter().find(|o| &***o == origin) {
        Some(known) => Arc::clone(known),
        None => {
            let node: Arc<str> = Arc::from(origin);
            origins.push(Arc::clone(&node));
            node
        }
    };
    Some(StoredMessage {
        number: 0,
        at_ms: field("t")?.parse().ok()?,
        nick: field("n")?.to_string(),
        text: field("x")?.to_string(),
        action: field("a")? == "1",
        origin: Some(Origin {
            node,
            seq: field("s")?.parse().ok()?,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Stamp;

    fn fields(entry: &Entry) -> Vec<Vec<u8>> {
        entry
            .fields
            .iter()
            .flat_map(|(name, value)| [name.as_bytes().to_vec(), value.as_bytes().to_vec()])
            .collect()
    }

    #[test]
    fn an_entry_reads_back_as_the_message() {
        let stamp = Stamp {
            origin: "n1@5",
            seq: 42,
            at_ms: 1_700_000_000_123,
        };
        let entry = entry(&RoomMessage {
            room: "Кухня",
            nick: "Вася",
            text: "привет, * всем",
            action: true,
            stamp,
        });
        assert_eq!(entry.room, "кухня");
        let mut origins = Vec::new();
        let message = message(&fields(&entry), &mut origins).expect("readable");
        assert_eq!(message.nick, "Вася");
        assert_eq!(message.text, "привет, * всем");
        assert!(message.action);
        assert_eq!(message.at_ms, 1_700_000_000_123);
        let origin = message.origin.expect("has an origin");
        assert_eq!((&*origin.node, origin.seq), ("n1@5", 42));
    }

    #[test]
    fn unreadable_entries_are_skipped() {
        let stamp = Stamp {
            origin: "n1@5",
            seq: 1,
            at_ms: 1,
        };
        let mut good = fields(&entry(&RoomMessage {
            room: "main",
            nick: "a",
            text: "b",
            action: false,
            stamp,
        }));
        let mut origins = Vec::new();
        good[3] = b"not a number".to_vec();
        assert!(message(&good, &mut origins).is_none());
        assert!(message(&[b"o".to_vec()], &mut origins).is_none());
        assert!(message(&[], &mut origins).is_none());
    }
}
