//! This node's connected clients and the nicks they hold.

use std::collections::HashMap;

use super::{ClientId, RoomId};
use crate::protocol::LineError;

/// Lines a client may send while its nick claim is being decided; they are handled after. Past
/// it the poll loop stops reading the client until the claim is decided (`Chat::wants_input`).
pub(crate) const MAX_LINES_WHILE_CLAIMING: usize = 64;

/// A nick as shown and as compared.
#[derive(Debug, Clone)]
pub(crate) struct Nick {
    /// As the user spelled it.
    pub(crate) display: String,
    /// As compared ([`crate::protocol::name_key`]).
    pub(crate) key: String,
}

/// A `/nick` waiting for the shared registry's answer.
#[derive(Debug)]
pub(crate) struct PendingClaim {
    /// The nick asked for.
    pub(crate) nick: String,
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
    /// Set while a `/nick` waits for the shared registry.
    pub(crate) claim: Option<Box<PendingClaim>>,
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
            claim: None,
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

    /// The nicks held by this node's clients.
    pub(crate) fn nicks(&self) -> Vec<String> {
        self.slots
            .iter()
            .flatten()
            .filter_map(|c| c.nick.as_ref().map(|n| n.display.clone()))
            .collect()
    }
}
