//! Reading and writing the database's rows: the whole state at start, one change at a time
//! while the server runs, and the whole state again when the store has to start over.
//!
//! Messages are rows in the order they were posted, with no index: a commit appends at the
//! table's end and trims near its start, touching a few pages instead of two of every busy room
//! (500 rooms at 5,000 messages a second wrote about 4 MB to the log per commit when the table
//! was ordered by room). [`Disk::kept`] knows each kept message's row id, so a trim deletes by
//! row id. Within a transaction the rooms' posted counts and trims are only noted and written
//! once a room at commit: each message past a room's bound trims one, and a trim never touches
//! a message posted after it, so deferring them changes nothing but the cost.

use std::collections::{HashMap, VecDeque};
use std::io;

use rusqlite::params;

use super::disk::{error_at, Disk};
use super::OwnedChange;
use crate::chat::{Account, KeptPrivate, RoomSnapshot, SavedRooms, Snapshot, StoredMessage};

impl Disk {
    /// Everything stored, as the chat takes it back; notes the kept messages' row ids.
    pub(crate) fn load(&mut self) -> io::Result<Snapshot> {
        let mut kept = HashMap::new();
        let snapshot = self
            .read_all(&mut kept)
            .map_err(|e| error_at(&self.path, e))?;
        self.kept = kept;
        Ok(snapshot)
    }

    fn read_all(&self, kept: &mut HashMap<String, VecDeque<Kept>>) -> rusqlite::Result<Snapshot> {
        let mut snapshot = Snapshot::default();
        let mut rooms: HashMap<String, RoomSnapshot> = HashMap::new();
        self.each_row("SELECT room, posted FROM rooms", |row| {
            room_of(&mut rooms, row.get(0)?).posted = row.get(1)?;
            Ok(())
        })?;
        let sql = "SELECT id, room, number, at_ms, nick, text, action FROM messages ORDER BY id";
        self.each_row(sql, |row| {
            let message = StoredMessage {
                number: row.get(2)?,
                at_ms: row.get(3)?,
                nick: row.get(4)?,
                text: row.get(5)?,
                action: row.get(6)?,
                origin: None,
            };
            let room = room_of(&mut rooms, row.get(1)?);
            let id = row.get(0)?;
            push_kept(
                kept,
                &room.key,
                Kept {
                    number: message.number,
                    id,
                },
            );
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
                clocks: Vec::new(),
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
        self.each_row("SELECT nick, display, hash FROM accounts", |row| {
            let account = Account {
                display: row.get(1)?,
                password_hash: row.get(2)?,
            };
            snapshot.accounts.push((row.get(0)?, account));
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
                        "INSERT INTO messages (room, number, at_ms, nick, text, action) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![room, number, at_ms, nick, text, action])?;
                let id = self.conn.last_insert_rowid();
                let number = *number;
                push_kept(&mut self.kept, room, Kept { number, id });
                note_max(&mut self.posted, room, number);
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
            OwnedChange::AccountSaved { nick, account } => {
                self.conn
                    .prepare_cached("INSERT OR REPLACE INTO accounts VALUES (?1, ?2, ?3)")?
                    .execute(params![nick, account.display, account.password_hash])?;
            }
            OwnedChange::AccountRemoved { nick } => {
                self.conn
                    .prepare_cached("DELETE FROM accounts WHERE nick = ?1")?
                    .execute([nick])?;
            }
        }
        Ok(())
    }

    /// Replaces everything the chat stores with `snapshot`, and commits. The only way to write
    /// after a rollback: [`Disk::kept`] may then name rows that are not there, or miss some.
    pub(crate) fn replace(&mut self, snapshot: &Snapshot) -> io::Result<()> {
        self.rollback();
        self.begin()
            .and_then(|()| self.write_snapshot(snapshot))
            .map_err(|e| error_at(&self.path, e))?;
        self.commit()
    }

    fn write_snapshot(&mut self, snapshot: &Snapshot) -> rusqlite::Result<()> {
        self.conn.execute_batch(
            "DELETE FROM rooms; DELETE FROM messages; DELETE FROM sessions; DELETE FROM privates; \
             DELETE FROM accounts;",
        )?;
        self.kept.clear();
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
        for (nick, account) in &snapshot.accounts {
            self.write(&OwnedChange::AccountSaved {
                nick: nick.clone(),
                account: account.clone(),
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
            let Some(kept) = self.kept.get_mut(&room) else {
                continue;
            };
            let mut delete = self
                .conn
                .prepare_cached("DELETE FROM messages WHERE id = ?1")?;
            while let Some(oldest) = kept.front().filter(|k| k.number <= through) {
                delete.execute([oldest.id])?;
                kept.pop_front();
            }
            if kept.is_empty() {
                self.kept.remove(&room);
            }
        }
        Ok(())
    }
}

/// A kept message of a room: its number and its row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kept {
    number: u64,
    id: i64,
}

/// Notes `message` as the newest kept message of room `key`.
fn push_kept(kept: &mut HashMap<String, VecDeque<Kept>>, key: &str, message: Kept) {
    match kept.get_mut(key) {
        Some(room) => room.push_back(message),
        None => {
            kept.insert(key.to_string(), VecDeque::from([message]));
        }
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
