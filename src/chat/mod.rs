//! The chat itself: sessions, nicks, rooms and commands, with no I/O.
//!
//! [`Chat`] takes events in (a client connected, sent a line, went away, time passed) and answers
//! through an [`Outbox`]: bytes for a client, a request to close one, and an [`Event`] for every
//! change the rest of a cluster would need to know about. The poll loop implements [`Outbox`] on
//! top of its connections; the tests implement it with a recorder; cluster mode wraps it to
//! publish events and feeds other nodes' events back in through [`Chat::deliver_remote`].
//!
//! Fan-out formats each room line once and hands the same bytes to every member; the poll loop
//! stores them once per turn, so a delivery costs a note of which line the member gets.
//!
//! Where things are:
//! - this file: the [`Chat`] facade, connecting, lines in, disconnecting;
//! - `cmd`: one file a command, dispatched from one table;
//! - `login`: taking a nick (fresh, restored, renamed, or decided by a cluster);
//! - `presence`: arrival, departure and rename notices, and quiet rooms;
//! - `remote`: events from other nodes of a cluster and what they need of this one;
//! - `rooms`, `clients`, `sessions`: the state, each owning its own rules;
//! - `messages`: every line a user can see, worded once;
//! - `event`, `outbox`, `config`, `ids`: the types at the seams ([`Event`], [`Outbox`],
//!   [`ChatConfig`], [`ClientId`]), re-exported here.

mod accounts;
mod auth;
mod clients;
mod clock;
mod cmd;
mod config;
mod event;
mod history;
mod ids;
#[cfg(any(test, feature = "fuzzing"))]
mod invariants;
mod login;
mod mailbox;
pub(crate) mod messages;
mod outbox;
mod presence;
mod remote;
mod replay;
mod rooms;
mod roster;
mod sessions;
mod storage;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::protocol::{self, LineError};

use accounts::Accounts;
use clients::{AuthOp, Clients, Waiting, MAX_LINES_WHILE_CLAIMING};
use clock::WallClock;
use history::History;
use mailbox::Mailboxes;
use rooms::Rooms;
use roster::RemoteRoster;
use sessions::SavedSessions;

pub use accounts::{Account, AuthAnswer, AuthJob};
pub use config::ChatConfig;
pub use event::{ClaimOutcome, Event, Grant, NickClaim, Presence, RoomMessage, SavedRooms, Stamp};
pub use history::{HistoryLimits, Origin, RoomClock, StoredMessage};
pub use ids::ClientId;
pub(crate) use ids::RoomId;
pub use mailbox::KeptPrivate;
pub(crate) use mailbox::MAILBOX_LIMIT;
pub use messages::{SERVER_BUSY, SERVER_FULL};
pub use outbox::Outbox;
pub use rooms::MAIN_ROOM;
pub use storage::{Change, RoomSnapshot, Snapshot};

/// The state of the whole chat on this node.
#[derive(Debug)]
pub struct Chat {
    config: ChatConfig,
    clients: Clients,
    rooms: Rooms,
    sessions: SavedSessions,
    /// Users on other nodes of a cluster; empty standalone.
    remote: RemoteRoster,
    /// Every room's last messages.
    history: History,
    /// Private messages kept for users who are away.
    mailboxes: Mailboxes,
    /// Registered nicks, wrong-password counts and resume tokens.
    accounts: Accounts,
    /// Auth jobs handed out and not answered yet, by ticket.
    auth_jobs: HashMap<u64, AuthOp>,
    next_ticket: u64,
    /// Turns the loop's instants into the times stored with messages.
    clock: WallClock,
    /// Cluster mode: this node's name.
    node: Option<String>,
    /// Cluster mode: this node incarnation's name in the origins of its messages.
    origin: Option<Arc<str>>,
    /// Cluster mode: clients whose login waits until this node has seen what they saw
    /// elsewhere (`login.rs`).
    catching_up: Vec<ClientId>,
    /// Reused buffer in which each outgoing line is formatted once.
    line: Vec<u8>,
}

impl Chat {
    /// Creates a chat with only the `main` room.
    pub fn new(config: ChatConfig) -> Self {
        Self {
            sessions: SavedSessions::new(config.session_ttl, config.max_saved_sessions),
            history: History::new(config.history),
            config,
            clients: Clients::default(),
            rooms: Rooms::new(),
            remote: RemoteRoster::default(),
            mailboxes: Mailboxes::default(),
            accounts: Accounts::default(),
            auth_jobs: HashMap::new(),
            next_ticket: 0,
            clock: WallClock::system(),
            node: None,
            origin: None,
            catching_up: Vec::new(),
            line: Vec::with_capacity(256),
        }
    }

    /// Cluster mode: names this node (`node`) and its incarnation (`origin`, in the origins
    /// of its room messages, see `history.rs`), so that every node can tell what a returning
    /// user missed.
    pub fn set_origin(&mut self, node: &str, origin: &str) {
        self.node = Some(node.to_string());
        self.origin = Some(self.history.intern(origin));
    }

    /// Number of connected clients, named or not.
    pub fn client_count(&self) -> usize {
        self.clients.count()
    }

    /// Number of saved (restorable) sessions.
    pub fn saved_count(&self) -> usize {
        self.sessions.len()
    }

    /// Number of rooms that exist (have members), `main` always included.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Whether client `id` has a nick (the loop closes connections that take too long to get
    /// one).
    pub fn has_nick(&self, id: ClientId) -> bool {
        self.clients.nick_of(id).is_some()
    }

    /// Whether the chat takes more lines from client `id` now. False while its nick claim is
    /// pending and [`MAX_LINES_WHILE_CLAIMING`] lines already wait for it: the loop then stops
    /// reading the client (TCP slows the sender) until the claim is decided, instead of the
    /// chat dropping lines.
    pub fn wants_input(&self, id: ClientId) -> bool {
        self.clients
            .get(id)
            .and_then(|c| c.pending.as_ref())
            .is_none_or(|pending| pending.queued.len() < MAX_LINES_WHILE_CLAIMING)
    }

    /// A new connection: registers it and greets it.
    pub fn connect(&mut self, id: ClientId, out: &mut impl Outbox) {
        self.clients.insert(id, self.rooms.main());
        let history = self.history.limits();
        out.send(id, messages::greeting(&mut self.line, history));
    }

    /// A line that could not be decoded.
    pub fn reject_line(&mut self, id: ClientId, error: LineError, out: &mut impl Outbox) {
        // While a command waits, the refusal waits its turn behind the queued lines.
        let pending = self.clients.get_mut(id).and_then(|c| c.pending.as_mut());
        if let Some(pending) = pending {
            if pending.queued.len() < MAX_LINES_WHILE_CLAIMING {
                pending.queued.push(Err(error));
            } else {
                // Only a caller that ignores `wants_input` gets here (the poll loop does not).
                out.send(id, messages::still_claiming(&mut self.line));
            }
            return;
        }
        let line = messages::refused_line(&mut self.line, error, self.config.max_line);
        out.send(id, line);
    }

    /// One decoded line from client `id`.
    pub fn handle_line(&mut self, id: ClientId, line: &str, now: Instant, out: &mut impl Outbox) {
        let Some(client) = self.clients.get_mut(id) else {
            return;
        };
        if let Some(pending) = client.pending.as_mut() {
            if pending.queued.len() < MAX_LINES_WHILE_CLAIMING {
                pending.queued.push(Ok(line.to_string()));
            } else {
                // Only a caller that ignores `wants_input` gets here (the poll loop does not).
                out.send(id, messages::still_claiming(&mut self.line));
            }
            return;
        }
        cmd::run(self, id, line, now, out);
    }

    /// The connection of `id` is gone: leave its rooms and save its session.
    ///
    /// Safe to call for an id that already left (after `/quit`).
    pub fn disconnect(&mut self, id: ClientId, now: Instant, out: &mut impl Outbox) {
        let Some(client) = self.clients.remove(id) else {
            return;
        };
        let Some(nick) = client.nick else {
            // A login granted by the registry but still catching up: give the nick back.
            if let Some(Waiting::CatchUp(catch_up)) = client.pending.map(|p| p.waiting) {
                let key = protocol::name_key(&catch_up.nick);
                let kept = self.mailboxes.take(&key);
                self.keep_again(&catch_up.nick, kept, out);
                out.publish(&Event::NickReleased {
                    nick: &catch_up.nick,
                });
            }
            return;
        };
        for &room in &client.rooms {
            self.rooms.remove_member(room, id);
            self.announce(out, room, id, &nick.display, Presence::Disconnected);
        }
        let saved = self.session_of(&client.rooms, client.active, now);
        for &room in &client.rooms {
            self.rooms.drop_if_empty(room);
        }
        // Saved before the nick is released: a claim on another node that follows the
        // release must find the session of the departure (with the marks a replay needs).
        self.save_session(nick.key, saved, now, out);
        out.publish(&Event::NickReleased {
            nick: &nick.display,
        });
    }

    /// What is saved of a user in `rooms` with `active` leaving at `now`.
    fn session_of(&self, rooms: &[RoomId], active: RoomId, now: Instant) -> SavedRooms {
        let keys = rooms.iter().map(|&r| self.rooms.get(r).key.as_str());
        // A cluster's marks must mean the same on every node: the rooms' clocks.
        let (marks, clocks) = if self.origin.is_some() {
            (
                Vec::new(),
                keys.map(|key| self.history.clock(key)).collect(),
            )
        } else {
            (keys.map(|key| self.history.mark(key)).collect(), Vec::new())
        };
        SavedRooms {
            rooms: rooms
                .iter()
                .map(|&r| self.rooms.name(r).to_string())
                .collect(),
            active: self.rooms.name(active).to_string(),
            marks,
            clocks,
            left_at_ms: self.clock.unix_ms(now),
        }
    }

    /// Drops saved sessions older than the TTL (and what was kept for them), and history past
    /// its age. Cheap when nothing expires.
    pub fn expire_sessions(&mut self, now: Instant, out: &mut impl Outbox) {
        self.expire_saved_sessions(now, out);
        self.accounts.expire_attempts(now);
        self.history.enforce_bounds(self.clock.unix_ms(now));
        self.store_trims(out);
    }

    /// Pins the wall clock: `unix_ms` at `now` (tests, and a server restoring stored times).
    pub fn set_wall_clock(&mut self, now: Instant, unix_ms: u64) {
        self.clock = WallClock::pinned(now, unix_ms);
    }

    /// The server is stopping: tell everyone, close every connection, and save the sessions
    /// of the users who were online, so that a store has them after a restart.
    pub fn shutdown(&mut self, now: Instant, out: &mut impl Outbox) {
        let everyone: Vec<ClientId> = self.clients.ids().collect();
        let line = messages::shutting_down(&mut self.line);
        for &id in &everyone {
            out.send(id, line);
            out.close(id);
        }
        for id in everyone {
            let Some(client) = self.clients.get(id) else {
                continue;
            };
            let Some(nick) = &client.nick else {
                continue;
            };
            let (key, saved) = (
                nick.key.clone(),
                self.session_of(&client.rooms, client.active, now),
            );
            self.save_session(key, saved, now, out);
        }
    }
}

#[cfg(test)]
mod tests;
