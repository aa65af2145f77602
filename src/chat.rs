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

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::protocol::{name_key, strip_controls, validate_name, Command, LineError};
use crate::roster::RemoteRoster;

/// Identifies one client connection; the poll loop uses its slab key.
pub type ClientId = usize;

/// The room every user starts in and falls back to.
pub const MAIN_ROOM: &str = "main";

/// Sent (by the poll loop, before closing) to a client that arrives when the server is full.
pub const SERVER_FULL: &[u8] = b"! server full\r\n";

/// Where the chat's output goes.
pub trait Outbox {
    /// Queues `line` (a whole protocol line, CRLF included) for client `to`.
    fn send(&mut self, to: ClientId, line: &[u8]);
    /// Queues `line` for every client in `members` but `except`: one line for many, which an
    /// outbox can store once.
    fn send_to_all(&mut self, members: &[ClientId], except: Option<ClientId>, line: &[u8]) {
        for &member in members {
            if Some(member) != except {
                self.send(member, line);
            }
        }
    }
    /// Closes client `to` once what was queued for it has been written.
    fn close(&mut self, to: ClientId);
    /// Observes a change that other nodes of a cluster need; standalone ignores it.
    fn publish(&mut self, _event: &Event<'_>) {}
    /// Asks the shared registry whether `client` may take `nick` (only with
    /// [`ChatConfig::shared_registry`]); the answer comes back through [`Chat::finish_claim`].
    fn claim_nick(&mut self, _client: ClientId, _nick: &str, _rename: bool) {}
}

/// A change in the chat that concerns more than this node's own clients.
///
/// Every room line, presence change, private message to an absent user, nick claim and session
/// save leaves the chat as one of these, so a cluster adapter can forward it; events from other
/// nodes come back in through [`Chat::deliver_remote`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// A plain message in a room.
    Said {
        /// The room's display name.
        room: &'a str,
        /// The sender's nick.
        nick: &'a str,
        /// The message text.
        text: &'a str,
    },
    /// A `/me` action in a room.
    Acted {
        /// The room's display name.
        room: &'a str,
        /// The actor's nick.
        nick: &'a str,
        /// The action text.
        text: &'a str,
    },
    /// Someone entered or left a room, or renamed while in it.
    Presence {
        /// The room's display name.
        room: &'a str,
        /// The member's nick (the new one for a rename).
        nick: &'a str,
        /// What happened.
        change: Presence<'a>,
    },
    /// A private message to a nick that has no connection on this node.
    Private {
        /// The sender's nick.
        from: &'a str,
        /// The addressee as typed.
        to: &'a str,
        /// The message text.
        text: &'a str,
    },
    /// A nick is now held by a live connection on this node.
    NickClaimed {
        /// The nick.
        nick: &'a str,
    },
    /// A nick is no longer held by a live connection on this node.
    NickReleased {
        /// The nick.
        nick: &'a str,
    },
    /// The rooms and active room to restore for a nick: published when its user departs and,
    /// with a shared registry, whenever they change, so they survive the loss of this node.
    Session {
        /// The nick.
        nick: &'a str,
        /// The rooms, in join order.
        rooms: &'a [String],
        /// The active room.
        active: &'a str,
    },
    /// A nick's saved rooms are void (its user renamed); only with a shared registry.
    SessionDropped {
        /// The nick.
        nick: &'a str,
    },
    /// A saved session was taken up again (and is no longer saved).
    SessionRestored {
        /// The nick.
        nick: &'a str,
    },
}

/// The kinds of presence change announced to a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence<'a> {
    /// Joined, or re-joined on restore.
    Joined,
    /// Left with `/leave`.
    Left,
    /// The connection ended.
    Disconnected,
    /// Renamed from the given nick.
    Renamed(&'a str),
}

/// The answer of a shared registry to [`Outbox::claim_nick`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The nick is the client's; with the rooms saved for it anywhere in the cluster, if any.
    Granted(Option<SavedRooms>),
    /// A live connection somewhere holds the nick.
    InUse,
    /// A rename onto a nick whose owner is away with a saved session.
    Saved,
}

/// A departed user's rooms, as kept for restoration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedRooms {
    /// The rooms, in join order.
    pub rooms: Vec<String>,
    /// The active room.
    pub active: String,
}

/// Limits the chat logic enforces, and who decides nick ownership.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// How long a departed user's session stays restorable.
    pub session_ttl: Duration,
    /// At most this many saved sessions are kept; the oldest go first.
    pub max_saved_sessions: usize,
    /// The longest accepted line, only used to word the error.
    pub max_line: usize,
    /// The most rooms one user may be in, `main` included.
    pub max_rooms_per_user: usize,
    /// Rooms with more members than this (on every node together) are quiet: arrivals,
    /// departures and renames are not announced in them, since in a big room they would drown
    /// the conversation and cost every member a line per arrival. `/who` still lists everyone.
    pub announce_limit: usize,
    /// Nick claims are decided by a cluster (through [`Outbox::claim_nick`]), and every change
    /// of a user's rooms is published as [`Event::Session`].
    pub shared_registry: bool,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(86_400),
            max_saved_sessions: 100_000,
            max_line: 4096,
            max_rooms_per_user: 100,
            announce_limit: 100,
            shared_registry: false,
        }
    }
}

/// Lines a client may send while its nick claim is being decided; they are handled after.
const MAX_LINES_WHILE_CLAIMING: usize = 64;

/// A `/nick` waiting for the shared registry's answer.
#[derive(Debug)]
struct PendingClaim {
    nick: String,
    /// Lines (and refused lines) that arrived meanwhile, handled in order once it is decided.
    queued: Vec<Result<String, LineError>>,
}

type RoomId = usize;

/// A nick as shown and as compared.
#[derive(Debug)]
struct Nick {
    display: String,
    key: String,
}

/// One connected client.
#[derive(Debug)]
struct Client {
    /// `None` until `/nick` succeeds.
    nick: Option<Nick>,
    /// Rooms in join order; `main` first for a fresh session.
    rooms: Vec<RoomId>,
    active: RoomId,
    /// Set while a `/nick` waits for the shared registry.
    claim: Option<Box<PendingClaim>>,
}

#[derive(Debug)]
struct Room {
    name: String,
    key: String,
    members: Vec<ClientId>,
}

/// What is kept of a departed user.
#[derive(Debug)]
struct SavedSession {
    rooms: Vec<String>,
    active: String,
    /// Its place in the expiry order.
    seq: u64,
    saved_at: Instant,
}

/// The state of the whole chat on this node.
#[derive(Debug)]
pub struct Chat {
    config: ChatConfig,
    clients: Vec<Option<Client>>,
    /// Nick key to the live client holding it.
    nicks: HashMap<String, ClientId>,
    rooms: Slab<Room>,
    room_ids: HashMap<String, RoomId>,
    main: RoomId,
    saved: HashMap<String, SavedSession>,
    /// Saved sessions by age: the TTL is fixed, so the oldest expires first.
    expiry: BTreeMap<u64, String>,
    next_seq: u64,
    /// Users on other nodes of a cluster; empty standalone.
    remote: RemoteRoster,
    /// Reused buffer in which each outgoing line is formatted once.
    line: Vec<u8>,
}

const HELP: &[&str] = &[
    "* Commands:",
    "*   /nick NAME       set your nick (restores your rooms if you were here before)",
    "*   /join ROOM       join ROOM and make it your active room",
    "*   /leave ROOM      leave ROOM (you fall back to main if it was active)",
    "*   /rooms           list rooms and their member counts",
    "*   /who [ROOM]      list members of ROOM (default: your active room)",
    "*   /msg NICK TEXT   private message to NICK",
    "*   /me TEXT         action in your active room",
    "*   /help            this list",
    "*   /quit            leave (your session stays restorable)",
    "* Any other line is a message to your active room; start it with // to send a leading /.",
];

/// `/rooms` and `/who` list at most this many entries (`/rooms` the busiest rooms), so their
/// one line stays readable and far below any client's output limit.
const MAX_LISTED: usize = 200;

const NAME_RULE: &str = "use 1-32 letters, digits, _ or -";

impl Chat {
    /// Creates a chat with only the `main` room.
    pub fn new(config: ChatConfig) -> Self {
        let mut rooms = Slab::new();
        let main = rooms.insert(Room {
            name: MAIN_ROOM.to_string(),
            key: MAIN_ROOM.to_string(),
            members: Vec::new(),
        });
        let room_ids = HashMap::from([(MAIN_ROOM.to_string(), main)]);
        Self {
            config,
            clients: Vec::new(),
            nicks: HashMap::new(),
            rooms,
            room_ids,
            main,
            saved: HashMap::new(),
            expiry: BTreeMap::new(),
            next_seq: 0,
            remote: RemoteRoster::default(),
            line: Vec::with_capacity(256),
        }
    }

    /// Number of connected clients, named or not.
    pub fn client_count(&self) -> usize {
        self.clients.iter().filter(|c| c.is_some()).count()
    }

    /// Number of saved (restorable) sessions.
    pub fn saved_count(&self) -> usize {
        self.saved.len()
    }

    /// Number of rooms that exist (have members), `main` always included.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// A new connection: registers it and greets it.
    pub fn connect(&mut self, id: ClientId, out: &mut impl Outbox) {
        if self.clients.len() <= id {
            self.clients.resize_with(id + 1, || None);
        }
        self.clients[id] = Some(Client {
            nick: None,
            rooms: Vec::new(),
            active: self.main,
            claim: None,
        });
        self.notice(
            out,
            id,
            &["Welcome to chat-server. Set your nick with /nick NAME; /help lists the commands."],
        );
    }

    /// A line that could not be decoded.
    pub fn reject_line(&mut self, id: ClientId, error: LineError, out: &mut impl Outbox) {
        // While a nick claim is pending, the refusal waits its turn behind the queued lines.
        let claim = self.client_mut(id).and_then(|c| c.claim.as_mut());
        if let Some(claim) = claim {
            if claim.queued.len() < MAX_LINES_WHILE_CLAIMING {
                claim.queued.push(Err(error));
            }
            return;
        }
        match error {
            LineError::TooLong => {
                let max = self.config.max_line.to_string();
                self.error(
                    out,
                    id,
                    &["line too long (max ", &max, " bytes); line discarded"],
                );
            }
            LineError::InvalidUtf8 => self.error(out, id, &["invalid UTF-8; line discarded"]),
            LineError::TelnetMangled => self.error(
                out,
                id,
                &[
                    "your telnet client garbled non-ASCII text in that line; ",
                    "it is now in 8-bit mode, please type the line again",
                ],
            ),
        }
    }

    /// One decoded line from client `id`.
    pub fn handle_line(&mut self, id: ClientId, line: &str, now: Instant, out: &mut impl Outbox) {
        let Some(client) = self.client_mut(id) else {
            return;
        };
        if let Some(claim) = client.claim.as_mut() {
            if claim.queued.len() < MAX_LINES_WHILE_CLAIMING {
                claim.queued.push(Ok(line.to_string()));
            } else {
                self.error(out, id, &["still checking your nick; line discarded"]);
            }
            return;
        }
        let line = strip_controls(line);
        let command = match Command::parse(&line) {
            Ok(command) => command,
            Err(error) => {
                let reason = error.to_string();
                self.error(out, id, &[&reason]);
                return;
            }
        };
        let named = self.nick_of(id).is_some();
        match command {
            Command::Empty => {}
            Command::Help => self.help(id, out),
            Command::Quit => self.quit(id, now, out),
            Command::Nick(name) => self.nick(id, name, now, out),
            _ if !named => self.error(out, id, &["set a nick first: /nick NAME"]),
            Command::Join(room) => self.join(id, room, out),
            Command::Leave(room) => self.leave(id, room, out),
            Command::Rooms => self.list_rooms(id, out),
            Command::Who(room) => self.who(id, room, out),
            Command::Msg(to, text) => self.private(id, to, text, out),
            Command::Me(text) => self.say(id, text, true, out),
            Command::Say(text) => self.say(id, text, false, out),
        }
    }

    /// The connection of `id` is gone: leave its rooms and save its session.
    ///
    /// Safe to call for an id that already left (after `/quit`).
    pub fn disconnect(&mut self, id: ClientId, now: Instant, out: &mut impl Outbox) {
        let Some(client) = self.clients.get_mut(id).and_then(Option::take) else {
            return;
        };
        let Some(nick) = client.nick else {
            return;
        };
        for &room in &client.rooms {
            self.remove_member(room, id);
            self.announce(out, room, id, &nick.display, Presence::Disconnected);
        }
        let rooms: Vec<String> = client
            .rooms
            .iter()
            .map(|&r| self.rooms[r].name.clone())
            .collect();
        let active = self.rooms[client.active].name.clone();
        for &room in &client.rooms {
            self.drop_if_empty(room);
        }
        self.nicks.remove(&nick.key);
        out.publish(&Event::NickReleased {
            nick: &nick.display,
        });
        out.publish(&Event::Session {
            nick: &nick.display,
            rooms: &rooms,
            active: &active,
        });
        self.save_session(nick.key, rooms, active, now);
    }

    /// Drops saved sessions older than the TTL. Cheap when nothing expires.
    pub fn expire_sessions(&mut self, now: Instant) {
        while let Some((&seq, key)) = self.expiry.first_key_value() {
            let expired = self.saved.get(key).is_none_or(|s| {
                s.seq != seq || now.duration_since(s.saved_at) >= self.config.session_ttl
            });
            if !expired {
                return;
            }
            if let Some(key) = self.expiry.remove(&seq) {
                if self.saved.get(&key).is_some_and(|s| s.seq == seq) {
                    self.saved.remove(&key);
                }
            }
        }
    }

    /// The server is stopping: tell everyone and close every connection.
    pub fn shutdown(&mut self, out: &mut impl Outbox) {
        for id in 0..self.clients.len() {
            if self.clients[id].is_some() {
                self.notice(out, id, &["Server shutting down. Bye!"]);
                out.close(id);
            }
        }
    }

    /// Takes in an event that happened on node `node`: delivers what shows on screens to this
    /// node's members and keeps the picture of remote users up to date. Nothing is published.
    pub fn deliver_remote(&mut self, node: &str, event: &Event<'_>, out: &mut impl Outbox) {
        match *event {
            Event::Said { room, nick, text } => {
                if let Some(&room) = self.room_ids.get(&name_key(room)) {
                    let members = &self.rooms[room].members;
                    let parts = ["[", &self.rooms[room].name, "] ", nick, ": ", text];
                    fan_out(&mut self.line, members, None, &parts, out);
                }
            }
            Event::Acted { room, nick, text } => {
                if let Some(&room) = self.room_ids.get(&name_key(room)) {
                    let members = &self.rooms[room].members;
                    let parts = ["[", &self.rooms[room].name, "] * ", nick, " ", text];
                    fan_out(&mut self.line, members, None, &parts, out);
                }
            }
            Event::Presence { room, nick, change } => {
                match change {
                    Presence::Joined => self.remote.joined(node, room, nick),
                    Presence::Left | Presence::Disconnected => self.remote.left(node, room, nick),
                    Presence::Renamed(old) => self.remote.renamed(node, old, nick),
                }
                if let Some(&room) = self.room_ids.get(&name_key(room)) {
                    self.announce_to(out, room, None, nick, change);
                }
            }
            Event::Private { from, to, text } => {
                if let Some(&target) = self.nicks.get(&name_key(to)) {
                    self.send_parts(out, target, &["(PM) ", from, ": ", text]);
                }
            }
            Event::NickClaimed { nick } => self.remote.online(node, nick),
            Event::NickReleased { nick } => self.remote.offline(node, nick),
            Event::Session { .. }
            | Event::SessionDropped { .. }
            | Event::SessionRestored { .. } => {}
        }
    }

    /// This node's rooms with their members, for another node that needs the full picture.
    pub fn local_roster(&self) -> Vec<(String, Vec<String>)> {
        self.rooms
            .iter()
            .filter(|(_, room)| !room.members.is_empty())
            .map(|(_, room)| {
                let nicks = room
                    .members
                    .iter()
                    .filter_map(|&m| self.nick_of(m).map(|n| n.display.clone()))
                    .collect();
                (room.name.clone(), nicks)
            })
            .collect()
    }

    /// The nicks held by this node's connections.
    pub fn local_nicks(&self) -> Vec<String> {
        self.clients
            .iter()
            .flatten()
            .filter_map(|c| c.nick.as_ref().map(|n| n.display.clone()))
            .collect()
    }

    /// Replaces what is known of `node`'s users with its full roster.
    pub fn replace_remote_roster(&mut self, node: &str, rooms: &[(String, Vec<String>)]) {
        self.remote.replace_node(node, rooms);
    }

    /// Forgets the users of `node`, which stopped or lost contact, and tells their rooms here
    /// that they are gone (their node could not say so itself).
    pub fn forget_node(&mut self, node: &str, out: &mut impl Outbox) {
        for (room_key, nick) in self.remote.forget_node(node) {
            if let Some(&room) = self.room_ids.get(&room_key) {
                self.announce_to(out, room, None, &nick, Presence::Disconnected);
            }
        }
    }

    /// Forgets every remote user (this node lost contact with the cluster).
    pub fn forget_remote_users(&mut self) {
        self.remote.clear();
    }

    /// Publishes every named client's rooms again (the cluster's store may have lost them).
    pub fn republish_sessions(&self, out: &mut impl Outbox) {
        for id in 0..self.clients.len() {
            self.publish_session(id, out);
        }
    }

    /// Sends a notice to every named client (cluster status changes).
    pub fn notify_all(&mut self, text: &str, out: &mut impl Outbox) {
        let named: Vec<ClientId> = (0..self.clients.len())
            .filter(|&id| self.nick_of(id).is_some())
            .collect();
        fan_out(&mut self.line, &named, None, &["* ", text], out);
    }

    fn client(&self, id: ClientId) -> Option<&Client> {
        self.clients.get(id).and_then(Option::as_ref)
    }

    fn client_mut(&mut self, id: ClientId) -> Option<&mut Client> {
        self.clients.get_mut(id).and_then(Option::as_mut)
    }

    fn nick_of(&self, id: ClientId) -> Option<&Nick> {
        self.client(id).and_then(|c| c.nick.as_ref())
    }

    fn help(&mut self, id: ClientId, out: &mut impl Outbox) {
        for line in HELP {
            self.send_parts(out, id, &[line]);
        }
    }

    fn quit(&mut self, id: ClientId, now: Instant, out: &mut impl Outbox) {
        match self.nick_of(id).map(|n| n.display.clone()) {
            Some(nick) => self.notice(
                out,
                id,
                &[
                    "Bye, ",
                    &nick,
                    ". Your session is kept; /nick ",
                    &nick,
                    " restores it.",
                ],
            ),
            None => self.notice(out, id, &["Bye."]),
        }
        out.close(id);
        self.disconnect(id, now, out);
    }

    fn nick(&mut self, id: ClientId, name: &str, now: Instant, out: &mut impl Outbox) {
        if !validate_name(name) {
            self.error(out, id, &["invalid nick \"", name, "\": ", NAME_RULE]);
            return;
        }
        let key = name_key(name);
        let current = self.nick_of(id).map(|n| n.key.clone());
        if current.as_deref() == Some(key.as_str()) {
            self.rename(id, name, key, out);
        } else if self.nicks.contains_key(&key) || self.remote.user(name).is_some() {
            self.error(out, id, &["nick ", name, " is in use"]);
        } else if self.config.shared_registry {
            self.start_claim(id, name, current.is_some(), out);
        } else if current.is_some() {
            if self.has_saved_session(&key, now) {
                self.error(
                    out,
                    id,
                    &[
                        "nick ",
                        name,
                        " has a saved session; log in as ",
                        name,
                        " to restore it",
                    ],
                );
            } else {
                self.rename(id, name, key, out);
            }
        } else {
            let restored = self.take_saved_session(&key, now);
            self.log_in(id, name, key, restored, out);
        }
    }

    /// Asks the shared registry for `name`; lines from the client wait until it answers.
    fn start_claim(&mut self, id: ClientId, name: &str, rename: bool, out: &mut impl Outbox) {
        if let Some(client) = self.client_mut(id) {
            client.claim = Some(Box::new(PendingClaim {
                nick: name.to_string(),
                queued: Vec::new(),
            }));
            out.claim_nick(id, name, rename);
        }
    }

    /// The shared registry's answer to a claim of `nick` by client `id`.
    ///
    /// Completes the `/nick` (restoring the rooms the registry had saved, else any saved here),
    /// then handles the lines the client sent meanwhile. A grant for a client that is gone is
    /// given back with [`Event::NickReleased`].
    pub fn finish_claim(
        &mut self,
        id: ClientId,
        nick: &str,
        outcome: ClaimOutcome,
        now: Instant,
        out: &mut impl Outbox,
    ) {
        let claim = self
            .client_mut(id)
            .and_then(|c| c.claim.take_if(|claim| claim.nick == nick));
        let Some(claim) = claim else {
            if matches!(outcome, ClaimOutcome::Granted(_)) {
                out.publish(&Event::NickReleased { nick });
            }
            return;
        };
        let key = name_key(nick);
        let outcome = match outcome {
            // Another local client got it meanwhile; the registry entry is that client's.
            ClaimOutcome::Granted(_) if self.nicks.contains_key(&key) => ClaimOutcome::InUse,
            other => other,
        };
        match outcome {
            ClaimOutcome::Granted(_) if self.nick_of(id).is_some() => {
                self.rename(id, nick, key, out);
            }
            ClaimOutcome::Granted(saved) => {
                let local = self.take_saved_session(&key, now);
                let restored = saved.or(local.map(|s| SavedRooms {
                    rooms: s.rooms,
                    active: s.active,
                }));
                self.log_in(id, nick, key, restored, out);
            }
            ClaimOutcome::InUse => self.error(out, id, &["nick ", nick, " is in use"]),
            ClaimOutcome::Saved => self.error(
                out,
                id,
                &[
                    "nick ",
                    nick,
                    " has a saved session; log in as ",
                    nick,
                    " to restore it",
                ],
            ),
        }
        for line in claim.queued {
            match line {
                Ok(line) => self.handle_line(id, &line, now, out),
                Err(error) => self.reject_line(id, error, out),
            }
        }
    }

    /// Removes and returns the unexpired saved session of nick `key`.
    fn take_saved_session(&mut self, key: &str, now: Instant) -> Option<SavedRooms> {
        if !self.has_saved_session(key, now) {
            return None;
        }
        let saved = self.saved.remove(key)?;
        self.expiry.remove(&saved.seq);
        Some(SavedRooms {
            rooms: saved.rooms,
            active: saved.active,
        })
    }

    fn has_saved_session(&self, key: &str, now: Instant) -> bool {
        self.saved
            .get(key)
            .is_some_and(|s| now.duration_since(s.saved_at) < self.config.session_ttl)
    }

    /// First `/nick` of a connection: restore a saved session or start a fresh one.
    fn log_in(
        &mut self,
        id: ClientId,
        name: &str,
        key: String,
        restored: Option<SavedRooms>,
        out: &mut impl Outbox,
    ) {
        self.nicks.insert(key.clone(), id);
        let (room_names, active_name) = match &restored {
            Some(saved) => (saved.rooms.clone(), saved.active.clone()),
            None => (vec![MAIN_ROOM.to_string()], MAIN_ROOM.to_string()),
        };
        let mut rooms = Vec::with_capacity(room_names.len());
        let cap = self.config.max_rooms_per_user;
        for room_name in room_names.iter().take(cap) {
            let room = self.room_or_create(room_name);
            if !rooms.contains(&room) {
                self.rooms[room].members.push(id);
                rooms.push(room);
            }
        }
        let active = self
            .room_ids
            .get(&name_key(&active_name))
            .copied()
            .filter(|room| rooms.contains(room))
            .unwrap_or(self.main);
        if let Some(client) = self.client_mut(id) {
            client.nick = Some(Nick {
                display: name.to_string(),
                key,
            });
            client.rooms = rooms.clone();
            client.active = active;
        }
        out.publish(&Event::NickClaimed { nick: name });
        if restored.is_some() {
            out.publish(&Event::SessionRestored { nick: name });
        }
        let greeting = if restored.is_some() {
            "Welcome back, "
        } else {
            "Welcome, "
        };
        let list = self.room_list(&rooms);
        let active_name = self.rooms[active].name.clone();
        self.notice(
            out,
            id,
            &[
                greeting,
                name,
                ". Rooms: ",
                &list,
                ". Active room: ",
                &active_name,
                ".",
            ],
        );
        for room in rooms {
            self.explain_if_quiet(out, id, room);
            self.announce(out, room, id, name, Presence::Joined);
        }
        self.publish_session(id, out);
    }

    /// With a shared registry, publishes the client's current rooms so another node can
    /// restore them even if this one dies.
    fn publish_session(&self, id: ClientId, out: &mut impl Outbox) {
        if !self.config.shared_registry {
            return;
        }
        let Some(client) = self.client(id) else {
            return;
        };
        let Some(nick) = client.nick.as_ref() else {
            return;
        };
        let rooms: Vec<String> = client
            .rooms
            .iter()
            .map(|&r| self.rooms[r].name.clone())
            .collect();
        out.publish(&Event::Session {
            nick: &nick.display,
            rooms: &rooms,
            active: &self.rooms[client.active].name,
        });
    }

    /// `/nick` by a named client: a new nick, or a new spelling of the same one.
    fn rename(&mut self, id: ClientId, name: &str, key: String, out: &mut impl Outbox) {
        let Some(client) = self.client_mut(id) else {
            return;
        };
        let Some(nick) = client.nick.as_mut() else {
            return;
        };
        if nick.display == name {
            self.notice(out, id, &["You are already ", name, "."]);
            return;
        }
        let old = std::mem::replace(
            nick,
            Nick {
                display: name.to_string(),
                key: key.clone(),
            },
        );
        let rooms = client.rooms.clone();
        let renamed_key = old.key != key;
        if renamed_key {
            self.nicks.remove(&old.key);
            self.nicks.insert(key, id);
        }
        self.notice(
            out,
            id,
            &["You are now ", name, " (was ", &old.display, ")."],
        );
        // Presence goes out before the release of the old nick: a node that saw the release
        // first would drop the user from its rosters and have nobody left to rename.
        for room in rooms {
            self.announce(out, room, id, name, Presence::Renamed(&old.display));
        }
        if renamed_key {
            out.publish(&Event::NickReleased { nick: &old.display });
            out.publish(&Event::NickClaimed { nick: name });
            if self.config.shared_registry {
                out.publish(&Event::SessionDropped { nick: &old.display });
            }
        }
        self.publish_session(id, out);
    }

    fn join(&mut self, id: ClientId, room_name: &str, out: &mut impl Outbox) {
        if !validate_name(room_name) {
            self.error(
                out,
                id,
                &["invalid room name \"", room_name, "\": ", NAME_RULE],
            );
            return;
        }
        let room = self.room_or_create(room_name);
        let name = self.rooms[room].name.clone();
        let max_rooms = self.config.max_rooms_per_user;
        let Some(client) = self.client_mut(id) else {
            return;
        };
        if client.rooms.contains(&room) {
            client.active = room;
            self.notice(out, id, &["Active room: ", &name, "."]);
            self.publish_session(id, out);
            return;
        }
        if client.rooms.len() >= max_rooms {
            let max = max_rooms.to_string();
            self.drop_if_empty(room);
            self.error(
                out,
                id,
                &[
                    "you are in too many rooms (max ",
                    &max,
                    "); /leave one first",
                ],
            );
            return;
        }
        client.active = room;
        client.rooms.push(room);
        self.rooms[room].members.push(id);
        self.notice(out, id, &["Joined ", &name, ". Active room: ", &name, "."]);
        self.explain_if_quiet(out, id, room);
        let nick = self
            .nick_of(id)
            .map(|n| n.display.clone())
            .unwrap_or_default();
        self.announce(out, room, id, &nick, Presence::Joined);
        self.publish_session(id, out);
    }

    fn leave(&mut self, id: ClientId, room_name: &str, out: &mut impl Outbox) {
        if !validate_name(room_name) {
            self.error(
                out,
                id,
                &["invalid room name \"", room_name, "\": ", NAME_RULE],
            );
            return;
        }
        let key = name_key(room_name);
        if key == MAIN_ROOM {
            self.error(out, id, &["you cannot leave ", MAIN_ROOM]);
            return;
        }
        let main = self.main;
        let room = self.room_ids.get(&key).copied();
        let Some(client) = self.client_mut(id) else {
            return;
        };
        let Some(position) = room.and_then(|r| client.rooms.iter().position(|&x| x == r)) else {
            self.error(out, id, &["you are not in ", room_name]);
            return;
        };
        let room = client.rooms.remove(position);
        if client.active == room {
            client.active = main;
        }
        let active = client.active;
        self.remove_member(room, id);
        let name = self.rooms[room].name.clone();
        let active_name = self.rooms[active].name.clone();
        self.notice(
            out,
            id,
            &["Left ", &name, ". Active room: ", &active_name, "."],
        );
        let nick = self
            .nick_of(id)
            .map(|n| n.display.clone())
            .unwrap_or_default();
        self.announce(out, room, id, &nick, Presence::Left);
        self.drop_if_empty(room);
        self.publish_session(id, out);
    }

    /// `/rooms`: every room with members here or, in a cluster, on other nodes.
    fn list_rooms(&mut self, id: ClientId, out: &mut impl Outbox) {
        let mut rooms: HashMap<&str, (&str, usize)> = self
            .rooms
            .iter()
            .map(|(_, r)| (r.key.as_str(), (r.name.as_str(), r.members.len())))
            .collect();
        for (key, name, count) in self.remote.rooms() {
            rooms.entry(key).or_insert((name, 0)).1 += count;
        }
        let mut rooms: Vec<(&str, (&str, usize))> = rooms.into_iter().collect();
        let count = rooms.len().to_string();
        // A line stays readable (and far below any output limit): the busiest rooms only.
        if rooms.len() > MAX_LISTED {
            rooms.select_nth_unstable_by_key(MAX_LISTED, |&(key, (_, n))| (Reverse(n), key));
        }
        let more = rooms.len().saturating_sub(MAX_LISTED);
        rooms.truncate(MAX_LISTED);
        rooms.sort_unstable_by_key(|&(key, _)| key);
        let list = rooms
            .iter()
            .map(|(_, (name, count))| format!("{name} ({count})"))
            .collect::<Vec<_>>()
            .join(", ");
        let more = and_more(more);
        self.notice(out, id, &["Rooms (", &count, "): ", &list, &more]);
    }

    /// `/who`: the members of a room, here and on other nodes.
    fn who(&mut self, id: ClientId, room_name: Option<&str>, out: &mut impl Outbox) {
        let key = match room_name {
            None => self.client(id).map(|c| self.rooms[c.active].key.clone()),
            Some(name) => Some(name_key(name)),
        };
        let key = key.unwrap_or_default();
        let local = self.room_ids.get(&key).map(|&room| &self.rooms[room]);
        let name = match local {
            Some(room) => room.name.as_str(),
            None => match self.remote.room_name(&key) {
                Some(name) => name,
                None => {
                    self.error(out, id, &["no such room: ", room_name.unwrap_or_default()]);
                    return;
                }
            },
        };
        let mut nicks: Vec<&str> = local
            .into_iter()
            .flat_map(|room| room.members.iter())
            .filter_map(|&m| self.nick_of(m).map(|n| n.display.as_str()))
            .chain(self.remote.members(&key))
            .collect();
        nicks.sort_by_cached_key(|nick| name_key(nick));
        let count = nicks.len().to_string();
        let more = and_more(nicks.len().saturating_sub(MAX_LISTED));
        nicks.truncate(MAX_LISTED);
        let list = nicks.join(", ");
        let name = name.to_string();
        self.notice(
            out,
            id,
            &["Members of ", &name, " (", &count, "): ", &list, &more],
        );
    }

    /// `/msg`: straight to a local user, through the cluster to a remote one.
    fn private(&mut self, id: ClientId, to: &str, text: &str, out: &mut impl Outbox) {
        let from = self
            .nick_of(id)
            .map(|n| n.display.clone())
            .unwrap_or_default();
        let target_name = if let Some(&target) = self.nicks.get(&name_key(to)) {
            let target_name = self
                .nick_of(target)
                .map(|n| n.display.clone())
                .unwrap_or_default();
            self.send_parts(out, target, &["(PM) ", &from, ": ", text]);
            target_name
        } else if let Some(user) = self.remote.user(to) {
            let target_name = user.nick.clone();
            out.publish(&Event::Private {
                from: &from,
                to: &target_name,
                text,
            });
            target_name
        } else {
            self.error(out, id, &["no such user: ", to]);
            return;
        };
        self.send_parts(out, id, &["(PM to ", &target_name, ") You: ", text]);
    }

    /// A plain message or an action in the sender's active room.
    fn say(&mut self, id: ClientId, text: &str, action: bool, out: &mut impl Outbox) {
        let Some(Some(client)) = self.clients.get(id) else {
            return;
        };
        let Some(nick) = client.nick.as_ref().map(|n| n.display.as_str()) else {
            return;
        };
        let room = &self.rooms[client.active];
        let (room_line, own_line, event) = if action {
            (
                ["[", &room.name, "] * ", nick, " ", text],
                ["You: * ", nick, " ", text],
                Event::Acted {
                    room: &room.name,
                    nick,
                    text,
                },
            )
        } else {
            (
                ["[", &room.name, "] ", nick, ": ", text],
                ["You: ", text, "", ""],
                Event::Said {
                    room: &room.name,
                    nick,
                    text,
                },
            )
        };
        fan_out(&mut self.line, &room.members, Some(id), &room_line, out);
        fill_line(&mut self.line, &own_line);
        out.send(id, &self.line);
        out.publish(&event);
    }

    /// Tells the other members of `room` about `nick`, and publishes the change.
    fn announce(
        &mut self,
        out: &mut impl Outbox,
        room: RoomId,
        except: ClientId,
        nick: &str,
        change: Presence<'_>,
    ) {
        self.announce_to(out, room, Some(except), nick, change);
        out.publish(&Event::Presence {
            room: &self.rooms[room].name,
            nick,
            change,
        });
    }

    fn announce_to(
        &mut self,
        out: &mut impl Outbox,
        room: RoomId,
        except: Option<ClientId>,
        nick: &str,
        change: Presence<'_>,
    ) {
        // Someone who left is counted as still there, so that a departure is announced exactly
        // where the arrival was.
        let gone = matches!(change, Presence::Left | Presence::Disconnected);
        if self.member_count(room) + usize::from(gone) > self.config.announce_limit {
            return;
        }
        let room = &self.rooms[room];
        let parts = match change {
            Presence::Joined => ["* [", &room.name, "] ", nick, " joined", ""],
            Presence::Left => ["* [", &room.name, "] ", nick, " left", ""],
            Presence::Disconnected => ["* [", &room.name, "] ", nick, " disconnected", ""],
            Presence::Renamed(old) => ["* [", &room.name, "] ", old, " is now ", nick],
        };
        fan_out(&mut self.line, &room.members, except, &parts, out);
    }

    /// Members here and on other nodes.
    fn member_count(&self, room: RoomId) -> usize {
        let room = &self.rooms[room];
        room.members.len() + self.remote.member_count(&room.key)
    }

    /// A room too big for presence notices (see [`ChatConfig::announce_limit`]).
    fn is_quiet(&self, room: RoomId) -> bool {
        self.member_count(room) > self.config.announce_limit
    }

    /// Tells a user who just entered a quiet room why nobody is told about arrivals there.
    fn explain_if_quiet(&mut self, out: &mut impl Outbox, id: ClientId, room: RoomId) {
        if !self.is_quiet(room) {
            return;
        }
        let count = self.member_count(room).to_string();
        let limit = self.config.announce_limit.to_string();
        let name = self.rooms[room].name.clone();
        self.notice(
            out,
            id,
            &[
                &name,
                " has ",
                &count,
                " members: arrivals and departures are not announced in rooms of more than ",
                &limit,
                "; /who ",
                &name,
                " lists them.",
            ],
        );
    }

    fn room_or_create(&mut self, name: &str) -> RoomId {
        let key = name_key(name);
        if let Some(&room) = self.room_ids.get(&key) {
            return room;
        }
        // A room that already exists on other nodes keeps the spelling it has there.
        let name = self.remote.room_name(&key).unwrap_or(name).to_string();
        let room = self.rooms.insert(Room {
            name,
            key: key.clone(),
            members: Vec::new(),
        });
        self.room_ids.insert(key, room);
        room
    }

    fn remove_member(&mut self, room: RoomId, id: ClientId) {
        let members = &mut self.rooms[room].members;
        if let Some(position) = members.iter().position(|&m| m == id) {
            members.swap_remove(position);
        }
    }

    /// Forgets a room nobody is in any more (saved sessions keep rooms by name).
    fn drop_if_empty(&mut self, room: RoomId) {
        if room != self.main && self.rooms.get(room).is_some_and(|r| r.members.is_empty()) {
            let removed = self.rooms.remove(room);
            self.room_ids.remove(&removed.key);
        }
    }

    fn room_list(&self, rooms: &[RoomId]) -> String {
        rooms
            .iter()
            .map(|&r| self.rooms[r].name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn save_session(&mut self, key: String, rooms: Vec<String>, active: String, now: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(old) = self.saved.insert(
            key.clone(),
            SavedSession {
                rooms,
                active,
                seq,
                saved_at: now,
            },
        ) {
            self.expiry.remove(&old.seq);
        }
        self.expiry.insert(seq, key);
        while self.saved.len() > self.config.max_saved_sessions {
            let Some((_, oldest)) = self.expiry.pop_first() else {
                break;
            };
            self.saved.remove(&oldest);
        }
    }

    fn send_parts(&mut self, out: &mut impl Outbox, id: ClientId, parts: &[&str]) {
        fill_line(&mut self.line, parts);
        out.send(id, &self.line);
    }

    fn notice(&mut self, out: &mut impl Outbox, id: ClientId, parts: &[&str]) {
        self.send_parts(out, id, &[&["* "], parts].concat());
    }

    fn error(&mut self, out: &mut impl Outbox, id: ClientId, parts: &[&str]) {
        self.send_parts(out, id, &[&["! "], parts].concat());
    }
}

/// The tail of a list cut at [`MAX_LISTED`] entries: `", and 12 more"`, or nothing.
fn and_more(more: usize) -> String {
    if more == 0 {
        String::new()
    } else {
        format!(", and {more} more")
    }
}

/// Formats one line and queues it for every member but `except`: the bytes are made once.
fn fan_out(
    line: &mut Vec<u8>,
    members: &[ClientId],
    except: Option<ClientId>,
    parts: &[&str],
    out: &mut impl Outbox,
) {
    fill_line(line, parts);
    out.send_to_all(members, except, line);
}

/// Formats one protocol line (CRLF included) into `line`, reusing its allocation.
fn fill_line(line: &mut Vec<u8>, parts: &[&str]) {
    line.clear();
    for part in parts {
        line.extend_from_slice(part.as_bytes());
    }
    line.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[path = "chat_tests.rs"]
mod tests;
