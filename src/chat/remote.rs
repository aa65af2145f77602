//! Cluster mode's side of the chat: events from other nodes, and what other nodes need to know
//! of this one. Standalone none of this is called.

use std::time::Instant;

use super::history::Taken;
use super::{messages, Account, Chat, ClientId, Event, Origin, Outbox, Presence, RoomMessage};
use crate::protocol::name_key;

impl Chat {
    /// Takes in an event that happened on node `node`: delivers what shows on screens to this
    /// node's members and keeps the picture of remote users up to date. Nothing is published.
    ///
    /// Room messages from elsewhere are kept in this node's history too, so `/history` shows
    /// the whole room wherever one asks.
    pub fn deliver_remote(
        &mut self,
        node: &str,
        event: &Event<'_>,
        now: Instant,
        out: &mut impl Outbox,
    ) {
        if let Some(message) = event.room_message() {
            self.deliver_remote_message(message, now, out);
            return;
        }
        match *event {
            Event::Presence { room, nick, change } => {
                match change {
                    Presence::Joined => self.remote.joined(node, room, nick),
                    Presence::Left | Presence::Disconnected => self.remote.left(node, room, nick),
                    Presence::Renamed(old) => self.remote.renamed(node, old, nick),
                }
                if let Some(room) = self.rooms.find(&name_key(room)) {
                    self.announce_to(out, room, None, nick, change);
                }
            }
            Event::Private {
                from,
                to,
                text,
                node,
            } => {
                let key = name_key(to);
                if let Some(target) = self.clients.holder(&key) {
                    out.send(target, messages::private(&mut self.line, from, text));
                } else if self.node.as_deref() == Some(node) {
                    // Its addressee left this node while it was on its way: keep it for them
                    // (only here: every node gets the message).
                    self.keep_private(&key, from, text, now, out);
                }
            }
            Event::NickClaimed { nick } => self.remote.online(node, nick),
            Event::NickReleased { nick } => self.remote.offline(node, nick),
            // Written to Redis by the node that made it; this node's copy follows.
            Event::AccountSaved {
                nick,
                display,
                password_hash,
            } => {
                let account = Account {
                    display: display.to_string(),
                    password_hash: password_hash.to_string(),
                };
                self.accounts.insert(nick.to_string(), account);
            }
            Event::AccountRemoved { nick } => {
                self.accounts.remove(nick);
            }
            // Taken above.
            Event::Said { .. } | Event::Acted { .. } => {}
            Event::Session { .. }
            | Event::SessionDropped { .. }
            | Event::SessionRestored { .. } => {}
        }
    }

    /// Another node's room message: shown to this node's members of the room, and kept in
    /// this node's copy of the history (its own node stored it). Once only: a message loaded
    /// from the store at start may come from the channel too.
    fn deliver_remote_message(
        &mut self,
        message: RoomMessage<'_>,
        now: Instant,
        out: &mut impl Outbox,
    ) {
        let RoomMessage {
            room,
            nick,
            text,
            action,
            stamp,
        } = message;
        let key = name_key(room);
        let origin = (!stamp.origin.is_empty()).then(|| Origin {
            node: self.history.intern(stamp.origin),
            seq: stamp.seq,
        });
        // Seen already: loaded from the store at start while it was on its way.
        if origin
            .as_ref()
            .is_some_and(|o| self.history.has_seen(&key, o))
        {
            return;
        }
        if let Some(room) = self.rooms.find(&key) {
            let room = self.rooms.get(room);
            let line = if action {
                messages::acted(&mut self.line, &room.name, nick, text)
            } else {
                messages::said(&mut self.line, &room.name, nick, text)
            };
            out.send_to_all(&room.members, None, line);
        }
        // Another node's message: its own node stored it; only this node's copy of
        // the history takes it in.
        let at_ms = match stamp.at_ms {
            0 => self.clock.unix_ms(now),
            at_ms => at_ms,
        };
        let taken = Taken { at_ms, origin };
        self.history.record(&key, nick, text, action, taken);
        self.store_trims(out);
    }

    /// This node's rooms with their members, for another node that needs the full picture.
    pub fn local_roster(&self) -> Vec<(String, Vec<String>)> {
        self.rooms
            .iter()
            .filter(|room| !room.members.is_empty())
            .map(|room| {
                let nicks = room
                    .members
                    .iter()
                    .filter_map(|&m| self.clients.nick_of(m).map(|n| n.display.clone()))
                    .collect();
                (room.name.clone(), nicks)
            })
            .collect()
    }

    /// The nicks held by this node's connections.
    pub fn local_nicks(&self) -> Vec<String> {
        self.clients.nicks()
    }

    /// Replaces what is known of `node`'s users with its full roster.
    pub fn replace_remote_roster(&mut self, node: &str, rooms: &[(String, Vec<String>)]) {
        self.remote.replace_node(node, rooms);
    }

    /// Forgets the users of `node`, which stopped or lost contact, and tells their rooms here
    /// that they are gone (their node could not say so itself).
    pub fn forget_node(&mut self, node: &str, out: &mut impl Outbox) {
        for (room_key, nick) in self.remote.forget_node(node) {
            if let Some(room) = self.rooms.find(&room_key) {
                self.announce_to(out, room, None, &nick, Presence::Disconnected);
            }
        }
    }

    /// This node lost contact with the cluster (`up == false`: every remote user is forgotten)
    /// or has it back; every named client is told.
    pub fn cluster_status(&mut self, up: bool, out: &mut impl Outbox) {
        if !up {
            self.remote.clear();
        }
        let named: Vec<ClientId> = self.clients.named();
        out.send_to_all(&named, None, messages::cluster_status(&mut self.line, up));
    }

    /// Publishes every named client's rooms again (the cluster's store may have lost them).
    pub fn republish_sessions(&self, out: &mut impl Outbox) {
        for id in self.clients.ids() {
            self.publish_session(id, out);
        }
    }
}
