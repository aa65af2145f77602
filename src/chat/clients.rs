//! This node's connected clients and the nicks they hold.

use std::collections::HashMap;
use std::time::Instant;

use super::{ClientId, RoomId, SavedRooms};
use crate::protocol::LineError;

/// Lines a client may send while a nick claim or a password check is under way; they are
/// handled after. Past it the poll loop stops reading the client until the answer is in
/// (`Chat::wants_input`).
pub(crate) const MAX_LINES_WHILE_CLAIMING: usize = 64;

/// A nick as shown and as compared.
#[derive(Debug, Clone)]
pub(crate) struct Nick {
    /// As the user spelled it.
    pub(crate) display: String,
    /// As compared ([`crate::protocol::name_key`]).
    pub(crate) key: String,
}

/// What a client's command waits for before the client's next lines are handled.
#[derive(Debug)]
pub(crate) enum Waiting {
    /// The shared registry's answer to a claim of this nick.
    Claim(String),
    /// The answer to the auth job with this ticket.
    Auth(u64),
    /// Cluster mode: the nick is granted with a session saved on another node, whose user saw
    /// messages that have not reached this node yet.
    CatchUp(Box<CatchUp>),
}

/// A login waiting for this node to see what its user saw on another node.
#[derive(Debug)]
pub(crate) struct CatchUp {
    /// The nick as granted.
    pub(crate) nick: String,
    /// The session from the registry.
    pub(crate) saved: SavedRooms,
    /// When the login goes ahead anyway (the messages may have been lost on the way).
    pub(crate) until: Instant,
}

/// What to do when a password has been hashed or checked.
#[derive(Debug, Clone)]
pub(crate) enum AuthOp {
    /// `/register`: the client's nick (key, display) is registered.
    Register(String, String),
    /// `/password`: the client's nick (key, display) has a new password.
    ChangePassword(String, String),
    /// `/unregister`: the client's nick (key, display) is no longer registered.
    Unregister(String, String),
    /// `/nick NAME PASSWORD`: log in as NAME (display, key) if the password is right.
    Login(String, String),
}

/// A command waiting for an answer from outside the chat.
#[derive(Debug)]
pub(crate) struct Pending {
    /// What it waits for.
    pub(crate) waiting: Waiting,
    /// Lines (and refused lines) that arrived meanwhile, handled in order once it is decided.
    pub(crate) queued: Vec<Result<String, LineError>>,
}

/// One connected client.
#[derive(Debug)]
pub(crate) struct Client {
    /// `None` until `/nick` succeeds.
    pub(crate) nick: Option<Nick>,
    /// Rooms in join order; `main` first for a fresh session.
    pub(crate) rooms: Vec<RoomId>,
    /// Where plain lines go; always one of `rooms` once named.
    pub(crate) active: RoomId,
    /// Set while a command waits for the shared registry or a password check.
    pub(crate) pending: Option<Box<Pending>>,
}

/// Connected clients by id, and the nicks held by them.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    slots: Vec<Option<Client>>,
    /// Nick key to the live client holding it.
    nicks: HashMap<String, ClientId>,
}

impl Clients {
    /// Registers a new, unnamed client whose active room is `main`.
    pub(crate) fn insert(&mut self, id: ClientId, main: RoomId) {
        let index = id.index();
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        self.slots[index] = Some(Client {
            nick: None,
            rooms: Vec::new(),
            active: main,
            pending: None,
        });
    }

    /// Unregisters `id`, giving its nick back; `None` if it was not connected.
    pub(crate) fn remove(&mut self, id: ClientId) -> Option<Client> {
        let client = self.slots.get_mut(id.index()).and_then(Option::take)?;
        if let Some(nick) = &client.nick {
            self.nicks.remove(&nick.key);
        }
        Some(client)
    }

    /// Number of connected clients, named or not.
    pub(crate) fn count(&self) -> usize {
        self.slots.iter().filter(|c| c.is_some()).count()
    }

    /// The client `id`, if connected.
    pub(crate) fn get(&self, id: ClientId) -> Option<&Client> {
        self.slots.get(id.index()).and_then(Option::as_ref)
    }

    /// The client `id`, if connected, to change.
    pub(crate) fn get_mut(&mut self, id: ClientId) -> Option<&mut Client> {
        self.slots.get_mut(id.index()).and_then(Option::as_mut)
    }

    /// The nick of `id`, if connected and named.
    pub(crate) fn nick_of(&self, id: ClientId) -> Option<&Nick> {
        self.get(id).and_then(|c| c.nick.as_ref())
    }

    /// The nick of `id` as shown, or `""`.
    pub(crate) fn display_name(&self, id: ClientId) -> String {
        self.nick_of(id)
            .map(|n| n.display.clone())
            .unwrap_or_default()
    }

    /// The live client holding the nick whose key is `key`.
    pub(crate) fn holder(&self, key: &str) -> Option<ClientId> {
        self.nicks.get(key).copied()
    }

    /// Gives `id` the nick `nick` (releasing the one it had), and returns the old one.
    pub(crate) fn set_nick(&mut self, id: ClientId, nick: Nick) -> Option<Nick> {
        let client = self.slots.get_mut(id.index()).and_then(Option::as_mut)?;
        let old = client.nick.replace(nick.clone());
        if let Some(old) = &old {
            self.nicks.remove(&old.key);
        }
        self.nicks.insert(nick.key, id);
        old
    }

    /// The ids of every connected client.
    pub(crate) fn ids(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_some())
            .map(|(index, _)| ClientId::new(index))
    }

    /// The ids of every named client.
    pub(crate) fn named(&self) -> Vec<ClientId> {
        self.ids()
            .filter(|&id| self.nick_of(id).is_some())
            .collect()
    }

    /// This table's own rules: the nick registry holds exactly the nicks of the named clients,
    /// each under its key (for [`super::Chat::check_invariants`]).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn check(&self) -> Result<(), String> {
        let mut named = 0;
        for id in self.ids() {
            let Some(nick) = self.nick_of(id) else {
                continue;
            };
            named += 1;
            if nick.key != crate::protocol::name_key(&nick.display) {
                return Err(format!("nick {:?} has key {:?}", nick.display, nick.key));
            }
            if self.holder(&nick.key) != Some(id) {
                return Err(format!(
                    "nick {:?} of {id:?} is not registered to it",
                    nick.key
                ));
            }
        }
        if self.nicks.len() != named {
            let nicks = self.nicks.len();
            return Err(format!("{nicks} nicks registered, {named} clients named"));
        }
        Ok(())
    }

    /// The nicks held by this node's clients.
    pub(crate) fn nicks(&self) -> Vec<String> {
        self.slots
            .iter()
            .flatten()
            .filter_map(|c| c.nick.as_ref().map(|n| n.display.clone()))
            .collect()
    }
}
