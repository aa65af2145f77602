//! The storage seam: the chat's durable state leaves it as [`Change`]s through
//! [`Outbox::store`](super::Outbox::store) and comes back, at start, as a [`Snapshot`] through
//! [`Chat::restore`].
//!
//! The chat always holds its whole state in memory (that is the in-memory store: without
//! `--data-dir` nothing else keeps it). An on-disk or Redis store records the changes and hands
//! them back after a restart; it never decides anything.

use std::time::Instant;

use super::history::Taken;
use super::{Account, Chat, KeptPrivate, Outbox, SavedRooms, StoredMessage};

/// A change to the chat's durable state. Nick and room names are their keys (lowercase).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// A message was kept in room `room`'s history.
    Message {
        /// The room's key.
        room: &'a str,
        /// Its number in the room.
        number: u64,
        /// When the server received it, in milliseconds since the Unix epoch (UTC).
        at_ms: u64,
        /// The sender's nick.
        nick: &'a str,
        /// The text.
        text: &'a str,
        /// A `/me` action.
        action: bool,
    },
    /// Room `room` no longer keeps its messages numbered up to `through`.
    Trimmed {
        /// The room's key.
        room: &'a str,
        /// The last number dropped.
        through: u64,
    },
    /// The session of `nick` was saved: its user left, or the server is stopping.
    SessionSaved {
        /// The nick's key.
        nick: &'a str,
        /// Its rooms, marks and the time it was saved.
        session: &'a SavedRooms,
    },
    /// The saved session of `nick` is gone: restored, expired or evicted.
    SessionDropped {
        /// The nick's key.
        nick: &'a str,
    },
    /// A private message was kept for `to`, who is away.
    PrivateKept {
        /// The addressee's nick key.
        to: &'a str,
        /// The message.
        message: &'a KeptPrivate,
    },
    /// Everything kept for `to` was delivered or forgotten.
    PrivatesCleared {
        /// The addressee's nick key.
        to: &'a str,
    },
    /// A nick was registered, or its password changed. A store has usually written this
    /// already, durably, when it did the [`AuthJob::Register`](super::AuthJob::Register) that
    /// led to it; recording it again must be harmless.
    AccountSaved {
        /// The nick's key.
        nick: &'a str,
        /// The account.
        account: &'a Account,
    },
    /// A nick's registration was removed (written durably by the
    /// [`AuthJob::Unregister`](super::AuthJob::Unregister) that led to it).
    AccountRemoved {
        /// The nick's key.
        nick: &'a str,
    },
}

/// One room's history as a store hands it back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomSnapshot {
    /// The room's key.
    pub key: String,
    /// How many messages were ever posted in it.
    pub posted: u64,
    /// Its kept messages, oldest first.
    pub messages: Vec<StoredMessage>,
}

/// Everything a store kept, to start a chat with after a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every room's history.
    pub rooms: Vec<RoomSnapshot>,
    /// Saved sessions by nick key.
    pub sessions: Vec<(String, SavedRooms)>,
    /// Kept private messages by the addressee's nick key, oldest first.
    pub privates: Vec<(String, Vec<KeptPrivate>)>,
    /// Registered nicks by key.
    pub accounts: Vec<(String, Account)>,
}

impl Snapshot {
    /// Applies one change: what each change means to a store that keeps everything (a store
    /// that applies every change the chat makes holds what [`Chat::snapshot`] returns).
    pub fn apply(&mut self, change: &Change<'_>) {
        match *change {
            Change::Message {
                room,
                number,
                at_ms,
                nick,
                text,
                action,
            } => {
                let room = self.room_mut(room);
                room.posted = room.posted.max(number);
                room.messages.push(StoredMessage {
                    number,
                    at_ms,
                    nick: nick.to_string(),
                    text: text.to_string(),
                    action,
                    origin: None,
                });
            }
            Change::Trimmed { room, through } => {
                self.room_mut(room).messages.retain(|m| m.number > through);
            }
            Change::SessionSaved { nick, session } => {
                self.sessions.retain(|(key, _)| key != nick);
                self.sessions.push((nick.to_string(), session.clone()));
            }
            Change::SessionDropped { nick } => self.sessions.retain(|(key, _)| key != nick),
            Change::PrivateKept { to, message } => {
                match self.privates.iter_mut().find(|(key, _)| key == to) {
                    Some((_, kept)) => kept.push(message.clone()),
                    None => self.privates.push((to.to_string(), vec![message.clone()])),
                }
            }
            Change::PrivatesCleared { to } => self.privates.retain(|(key, _)| key != to),
            Change::AccountSaved { nick, account } => {
                self.accounts.retain(|(key, _)| key != nick);
                self.accounts.push((nick.to_string(), account.clone()));
            }
            Change::AccountRemoved { nick } => self.accounts.retain(|(key, _)| key != nick),
        }
    }

    /// Sorts every list by key, so two snapshots of the same state compare equal.
    pub fn normalize(&mut self) {
        self.rooms.retain(|r| r.posted > 0);
        self.rooms.sort_by(|a, b| a.key.cmp(&b.key));
        self.sessions.sort_by(|a, b| a.0.cmp(&b.0));
        self.privates.sort_by(|a, b| a.0.cmp(&b.0));
        self.accounts.sort_by(|a, b| a.0.cmp(&b.0));
    }

    fn room_mut(&mut self, key: &str) -> &mut RoomSnapshot {
        let index = match self.rooms.iter().position(|r| r.key == key) {
            Some(index) => index,
            None => {
                self.rooms.push(RoomSnapshot {
                    key: key.to_string(),
                    ..RoomSnapshot::default()
                });
                self.rooms.len() - 1
            }
        };
        &mut self.rooms[index]
    }
}

impl Chat {
    /// Takes back what a store kept (the chat must be new). Sessions keep their age: one saved
    /// an hour before the restart expires an hour sooner. Bounds that shrank since are applied.
    pub fn restore(&mut self, snapshot: Snapshot, now: Instant) {
        let now_ms = self.clock.unix_ms(now);
        // Accounts first: a registered nick's session is pinned.
        for (key, account) in snapshot.accounts {
            self.accounts.insert(key, account);
        }
        for room in snapshot.rooms {
            self.history.restore_count(&room.key, room.posted);
            for message in room.messages {
                self.history.restore(&room.key, message);
            }
        }
        self.history.enforce_bounds(now_ms);
        // Dropped at load: the store learns it with the next trim of those rooms.
        self.history.take_trimmed();
        let mut sessions = snapshot.sessions;
        sessions.sort_by_key(|(_, session)| session.left_at_ms);
        for (key, session) in sessions {
            let age = std::time::Duration::from_millis(now_ms.saturating_sub(session.left_at_ms));
            let saved_at = now.checked_sub(age).unwrap_or(now);
            let pinned = self.accounts.is_registered(&key);
            for evicted in self.sessions.save(key, session, saved_at, pinned) {
                self.mailboxes.forget(&evicted);
            }
        }
        for (key, kept) in snapshot.privates {
            for message in kept {
                self.mailboxes.keep(&key, message);
            }
        }
    }

    /// Cluster mode: takes in a change another node made to the state every node keeps (a
    /// session saved or dropped, a private message kept or delivered), so that a user who is
    /// away is known as such everywhere, and what was kept for them is delivered on whichever
    /// node they come back to. Nothing is stored or published again.
    pub fn apply_remote_change(&mut self, change: &Change<'_>, now: Instant) {
        match *change {
            Change::SessionSaved { nick, session } => {
                // The user may be back here already (the change was on its way).
                if self.clients.holder(nick).is_some() {
                    return;
                }
                let now_ms = self.clock.unix_ms(now);
                let age =
                    std::time::Duration::from_millis(now_ms.saturating_sub(session.left_at_ms));
                let saved_at = now.checked_sub(age).unwrap_or(now);
                let pinned = self.accounts.is_registered(nick);
                let key = nick.to_string();
                for evicted in self.sessions.save(key, session.clone(), saved_at, pinned) {
                    self.mailboxes.forget(&evicted);
                }
            }
            Change::SessionDropped { nick } => {
                self.sessions.take(nick, now);
            }
            Change::PrivateKept { to, message } => {
                self.mailboxes.keep(to, message.clone());
            }
            Change::PrivatesCleared { to } => {
                self.mailboxes.forget(to);
            }
            // History comes with the room messages; registrations as their own events.
            _ => {}
        }
    }

    /// How many messages, saved sessions and kept private messages the chat holds: a store
    /// compares them with what it loaded to learn whether [`Chat::restore`] dropped any.
    pub fn stored_counts(&self) -> (usize, usize, usize) {
        (
            self.history.rooms().map(|(_, _, m)| m.len()).sum(),
            self.sessions.len(),
            self.mailboxes.iter().map(|(_, kept)| kept.len()).sum(),
        )
    }

    /// The whole durable state, as a store would hand it back (for a store that writes a full
    /// copy, and for tests).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            rooms: self
                .history
                .rooms()
                .map(|(key, posted, messages)| RoomSnapshot {
                    key: key.to_string(),
                    posted,
                    messages: messages.iter().cloned().collect(),
                })
                .collect(),
            sessions: self.sessions.all(),
            privates: self
                .mailboxes
                .iter()
                .map(|(key, kept)| (key.to_string(), kept.iter().cloned().collect()))
                .collect(),
            accounts: self
                .accounts
                .iter()
                .map(|(key, account)| (key.to_string(), account.clone()))
                .collect(),
        }
    }

    /// Keeps a message posted on this node in room `room` (a key) at `at_ms` in its history,
    /// and tells the store what was kept and what the bounds dropped.
    pub(super) fn keep_in_history(
        &mut self,
        room: &str,
        nick: &str,
        text: &str,
        action: bool,
        taken: Taken,
        out: &mut impl Outbox,
    ) {
        let at_ms = taken.at_ms;
        let number = self.history.record(room, nick, text, action, taken);
        if self.history.enabled() {
            out.store(&Change::Message {
                room,
                number,
                at_ms,
                nick,
                text,
                action,
            });
        }
        self.store_trims(out);
    }

    /// Tells the store which rooms dropped history since the last call.
    pub(super) fn store_trims(&mut self, out: &mut impl Outbox) {
        for (room, through) in self.history.take_trimmed() {
            out.store(&Change::Trimmed {
                room: &room,
                through,
            });
        }
    }

    /// Saves the session of nick `key`, forgetting (and telling the store) what the cap on
    /// saved sessions evicts.
    pub(super) fn save_session(
        &mut self,
        key: String,
        session: SavedRooms,
        now: Instant,
        out: &mut impl Outbox,
    ) {
        out.store(&Change::SessionSaved {
            nick: &key,
            session: &session,
        });
        let pinned = self.accounts.is_registered(&key);
        for evicted in self.sessions.save(key, session, now, pinned) {
            self.forget_session(&evicted, out);
        }
    }

    /// Takes the unexpired saved session of nick `key` for a login.
    pub(super) fn take_session(
        &mut self,
        key: &str,
        now: Instant,
        out: &mut impl Outbox,
    ) -> Option<SavedRooms> {
        let session = self.sessions.take(key, now)?;
        out.store(&Change::SessionDropped { nick: key });
        Some(session)
    }

    /// Drops the sessions past their TTL and what was kept for their users.
    pub(super) fn expire_saved_sessions(&mut self, now: Instant, out: &mut impl Outbox) {
        for expired in self.sessions.expire(now) {
            self.forget_session(&expired, out);
        }
    }

    /// The session of nick `key` was evicted or expired: a newcomer taking the nick must not
    /// read what was kept for its old user.
    fn forget_session(&mut self, key: &str, out: &mut impl Outbox) {
        out.store(&Change::SessionDropped { nick: key });
        if self.mailboxes.forget(key) {
            out.store(&Change::PrivatesCleared { to: key });
        }
    }
}
