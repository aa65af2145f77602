//! Reading and writing the database's rows: the whole state at start, one change at a time
//! while the server runs, and the whole state again when the store has to start over.
//!
//! Within a transaction the rooms' posted counts and history trims are only noted and written
//! once a room at commit: each message past a room's bound trims one, and a trim never touches
//! a message posted after it, so deferring them changes nothing but the cost.

use std::collections::HashMap;
use std::io;

use rusqlite::params;

use super::disk::{error_at, Disk};
use super::OwnedChange;
use crate::chat::{KeptPrivate, RoomSnapshot, SavedRooms, Snapshot, StoredMessage};

impl Disk {
    /// Everything stored, as the chat takes it back.
    pub(crate) fn load(&self) -> io::Result<Snapshot> {
        self.read_all().map_err(|e| error_at(&self.path, e))
    }

    fn read_all(&self) -> rusqlite::Result<Snapshot> {
        let mut snapshot = Snapshot::default();
        let mut rooms: HashMap<String, RoomSnapshot> = HashMap::new();
        self.each_row("SELECT room, posted FROM rooms", |row| {
            room_of(&mut rooms, row.get(0)?).posted = row.get(1)?;
            Ok(())
        })?;
        let sql = "SELECT room, number, at_ms, nick, text, action FROM messages \
                   ORDER BY room, number";
        self.each_row(sql, |row| {
            let message = StoredMessage {
                number: row.get(1)?,
                at_ms: row.get(2)?,
                nick: row.get(3)?,
                text: row.get(4)?,
                action: row.get(5)?,
            };
            let room = room_of(&mut rooms, row.get(0)?);
            room.posted = room.posted.max(message.number);
            room.messages.push(message);
            Ok(())
        })?;
        snapshot.rooms = rooms.into_values().collect();
        let sql = "SELECT nick, left_at_ms, active, rooms, marks FROM sessions";
        self.each_row(sql, |row| {
            let session = SavedRooms {
                left_at_ms: row.get(1)?,
                active: row.get(2)?,
                rooms: from_json(row, 3)?,
                marks: from_json(row, 4)?,
            };
            snapshot.sessions.push((row.get(0)?, session));
            Ok(())
        })?;
        let sql = "SELECT recipient, at_ms, sender, text FROM privates ORDER BY recipient, id";
        self.each_row(sql, |row| {
            let to: String = row.get(0)?;
            let message = KeptPrivate {
                at_ms: row.get(1)?,
                from: row.get(2)?,
                text: row.get(3)?,
            };
            match snapshot.privates.last_mut() {
                Some((key, kept)) if *key == to => kept.push(message),
                _ => snapshot.privates.push((to, vec![message])),
            }
            Ok(())
        })?;
        Ok(snapshot)
    }

    /// Runs `sql` and hands every row to `each`.
    fn each_row(
        &self,
        sql: &str,
        mut each: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        let mut query = self.conn.prepare(sql)?;
        let mut rows = query.query([])?;
        while let Some(row) = rows.next()? {
            each(row)?;
        }
        Ok(())
    }

    /// Applies one change inside the open transaction (opening one if needed).
    pub(crate) fn apply(&mut self, change: &OwnedChange) -> io::Result<()> {
        self.begin()
            .and_then(|()| self.write(change))
            .map_err(|e| error_at(&self.path, e))
    }

    fn write(&mut self, change: &OwnedChange) -> rusqlite::Result<()> {
        match change {
            OwnedChange::Message {
                room,
                number,
                at_ms,
                nick,
                text,
                action,
            } => {
                self.conn
                    .prepare_cached(
                        "INSERT OR REPLACE INTO messages VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![room, number, at_ms, nick, text, action])?;
                note_max(&mut self.posted, room, *number);
            }
            OwnedChange::Trimmed { room, through } => note_max(&mut self.trims, room, *through),
            OwnedChange::SessionSaved { nick, session } => {
                self.conn
                    .prepare_cached("INSERT OR REPLACE INTO sessions VALUES (?1, ?2, ?3, ?4, ?5)")?
                    .execute(params![
                        nick,
                        session.left_at_ms,
                        session.active,
                        to_json(&session.rooms)?,
                        to_json(&session.marks)?,
                    ])?;
            }
            OwnedChange::SessionDropped { nick } => {
                self.conn
                    .prepare_cached("DELETE FROM sessions WHERE nick = ?1")?
                    .execute([nick])?;
            }
            OwnedChange::PrivateKept { to, message } => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO privates (recipient, at_ms, sender, text) \
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![to, message.at_ms, message.from, message.text])?;
            }
            OwnedChange::PrivatesCleared { to } => {
                self.conn
                    .prepare_cached("DELETE FROM privates WHERE recipient = ?1")?
                    .execute([to])?;
            }
        }
        Ok(())
    }

    /// Replaces everything the chat stores with `snapshot`, and commits.
    pub(crate) fn replace(&mut self, snapshot: &Snapshot) -> io::Result<()> {
        self.rollback();
        self.begin()
            .and_then(|()| self.write_snapshot(snapshot))
            .map_err(|e| error_at(&self.path, e))?;
        self.commit()
    }

    fn write_snapshot(&mut self, snapshot: &Snapshot) -> rusqlite::Result<()> {
        self.conn.execute_batch(
            "DELETE FROM rooms; DELETE FROM messages; DELETE FROM sessions; DELETE FROM privates;",
        )?;
        for room in &snapshot.rooms {
            note_max(&mut self.posted, &room.key, room.posted);
            for m in &room.messages {
                self.write(&OwnedChange::Message {
                    room: room.key.clone(),
                    number: m.number,
                    at_ms: m.at_ms,
                    nick: m.nick.clone(),
                    text: m.text.clone(),
                    action: m.action,
                })?;
            }
        }
        for (nick, session) in &snapshot.sessions {
            self.write(&OwnedChange::SessionSaved {
                nick: nick.clone(),
                session: session.clone(),
            })?;
        }
        for (to, kept) in &snapshot.privates {
            for message in kept {
                self.write(&OwnedChange::PrivateKept {
                    to: to.clone(),
                    message: message.clone(),
                })?;
            }
        }
        Ok(())
    }

    /// Writes the counts and trims noted in the open transaction.
    pub(super) fn write_noted(&mut self) -> rusqlite::Result<()> {
        for (room, posted) in self.posted.drain() {
            self.conn
                .prepare_cached(
                    "INSERT INTO rooms VALUES (?1, ?2) \
                     ON CONFLICT (room) DO UPDATE SET posted = max(posted, excluded.posted)",
                )?
                .execute(params![room, posted])?;
        }
        for (room, through) in self.trims.drain() {
            self.conn
                .prepare_cached("DELETE FROM messages WHERE room = ?1 AND number <= ?2")?
                .execute(params![room, through])?;
        }
        Ok(())
    }
}

/// Room `key` of `rooms`, added if it is not there yet.
fn room_of(rooms: &mut HashMap<String, RoomSnapshot>, key: String) -> &mut RoomSnapshot {
    rooms.entry(key.clone()).or_insert_with(|| RoomSnapshot {
        key,
        ..RoomSnapshot::default()
    })
}

/// Raises `map[key]` to at least `value`.
fn note_max(map: &mut HashMap<String, u64>, key: &str, value: u64) {
    match map.get_mut(key) {
        Some(v) => *v = (*v).max(value),
        None => {
            map.insert(key.to_string(), value);
        }
    }
}

/// A list stored as a JSON array (a session's rooms and marks).
fn to_json<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))
}

fn from_json<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    index: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, e.into())
    })
}
