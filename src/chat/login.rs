//! Taking a nick: a fresh session, a restored one, a rename, and claims decided by a cluster.

use std::time::{Duration, Instant};

/// How long a login waits at most for the messages its user saw on another node (see
/// [`Chat::catch_up`]); they normally arrive within milliseconds.
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

use super::clients::{CatchUp, Nick, Pending, Waiting};
use super::{
    messages, Chat, ClaimOutcome, ClientId, Event, NickClaim, Outbox, Presence, SavedRooms,
};
use crate::protocol::{name_key, LineError};

impl Chat {
    /// Asks the shared registry for `name`; lines from the client wait until it answers.
    pub(super) fn start_claim(
        &mut self,
        id: ClientId,
        name: &str,
        claim: NickClaim,
        out: &mut impl Outbox,
    ) {
        if let Some(client) = self.clients.get_mut(id) {
            client.pending = Some(Box::new(Pending {
                waiting: Waiting::Claim(name.to_string()),
                queued: Vec::new(),
            }));
            out.claim_nick(id, name, claim);
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
        let claim = self.clients.get_mut(id).and_then(|c| {
            c.pending
                .take_if(|p| matches!(&p.waiting, Waiting::Claim(claimed) if claimed == nick))
        });
        let Some(claim) = claim else {
            if let ClaimOutcome::Granted(grant) = outcome {
                self.keep_again(nick, grant.kept, out);
                out.publish(&Event::NickReleased { nick });
            }
            return;
        };
        let key = name_key(nick);
        let outcome = match outcome {
            // Another local client got it meanwhile (or is about to: it waits to catch up);
            // the registry entry is that client's.
            ClaimOutcome::Granted(grant)
                if self.clients.holder(&key).is_some() || self.is_catching_up(&key) =>
            {
                self.keep_again(nick, grant.kept, out);
                ClaimOutcome::InUse
            }
            other => other,
        };
        match outcome {
            ClaimOutcome::Granted(grant) if self.clients.nick_of(id).is_some() => {
                self.take_kept_privates(&key, grant.kept);
                self.rename(id, nick, key, out);
            }
            ClaimOutcome::Granted(grant) => {
                self.take_kept_privates(&key, grant.kept);
                match grant.saved {
                    Some(saved) if self.is_behind(&saved) => {
                        self.wait_to_catch_up(id, nick, saved, claim.queued, now);
                        return;
                    }
                    saved => self.log_in_granted(id, nick, key, saved, now, out),
                }
            }
            ClaimOutcome::InUse => out.send(id, messages::nick_in_use(&mut self.line, nick)),
            ClaimOutcome::Saved => out.send(id, messages::nick_saved(&mut self.line, nick)),
            ClaimOutcome::Registered => {
                out.send(id, messages::nick_registered(&mut self.line, nick));
            }
        }
        self.handle_queued(id, claim.queued, now, out);
    }

    /// Logs client `id` in with the nick the registry granted, restoring `saved` (the
    /// registry's session) or else any session saved here.
    fn log_in_granted(
        &mut self,
        id: ClientId,
        nick: &str,
        key: String,
        saved: Option<SavedRooms>,
        now: Instant,
        out: &mut impl Outbox,
    ) {
        // Any session saved here is void once the nick is taken, whichever is restored.
        let local = self.take_session(&key, now, out);
        let restored = saved.or(local);
        self.log_in(id, nick, key, restored, now, out);
    }

    /// Whether a session saved on another node marks messages this node has not seen yet.
    fn is_behind(&self, saved: &SavedRooms) -> bool {
        saved
            .rooms
            .iter()
            .zip(&saved.clocks)
            .any(|(room, clock)| self.history.is_behind(&name_key(room), clock))
    }

    /// Holds the login of client `id` (its lines wait) until this node has seen every message
    /// its user saw on the node it left, or [`CATCH_UP_WAIT`] passed: otherwise those would
    /// come live after a replay that rightly skipped them, and the user would see them twice.
    fn wait_to_catch_up(
        &mut self,
        id: ClientId,
        nick: &str,
        saved: SavedRooms,
        queued: Vec<Result<String, LineError>>,
        now: Instant,
    ) {
        let Some(client) = self.clients.get_mut(id) else {
            return;
        };
        let catch_up = CatchUp {
            nick: nick.to_string(),
            saved,
            until: now + CATCH_UP_WAIT,
        };
        client.pending = Some(Box::new(Pending {
            waiting: Waiting::CatchUp(Box::new(catch_up)),
            queued,
        }));
        self.catching_up.push(id);
    }

    /// Cluster mode: completes the logins that were waiting for messages to arrive, once they
    /// have (or waited long enough). Called after other nodes' messages are taken in.
    pub fn catch_up(&mut self, now: Instant, out: &mut impl Outbox) {
        if self.catching_up.is_empty() {
            return;
        }
        for id in std::mem::take(&mut self.catching_up) {
            let ready = |c: &CatchUp| now >= c.until || !self.is_behind(&c.saved);
            let waiting = match self.clients.get(id).and_then(|c| c.pending.as_ref()) {
                Some(pending) => match &pending.waiting {
                    Waiting::CatchUp(catch_up) => ready(catch_up),
                    _ => continue,
                },
                None => continue,
            };
            if !waiting {
                self.catching_up.push(id);
                continue;
            }
            let Some(pending) = self.clients.get_mut(id).and_then(|c| c.pending.take()) else {
                continue;
            };
            let Waiting::CatchUp(catch_up) = pending.waiting else {
                continue;
            };
            let CatchUp { nick, saved, .. } = *catch_up;
            let key = name_key(&nick);
            self.log_in_granted(id, &nick, key, Some(saved), now, out);
            self.handle_queued(id, pending.queued, now, out);
        }
    }

    /// Whether a login of nick `key` waits to catch up.
    fn is_catching_up(&self, key: &str) -> bool {
        self.catching_up.iter().any(|&id| {
            self.clients
                .get(id)
                .and_then(|c| c.pending.as_ref())
                .is_some_and(
                    |p| matches!(&p.waiting, Waiting::CatchUp(c) if name_key(&c.nick) == key),
                )
        })
    }

    /// When the first login waiting to catch up goes ahead anyway.
    pub fn next_catch_up_deadline(&self) -> Option<Instant> {
        self.catching_up
            .iter()
            .filter_map(
                |&id| match &self.clients.get(id)?.pending.as_ref()?.waiting {
                    Waiting::CatchUp(catch_up) => Some(catch_up.until),
                    _ => None,
                },
            )
            .min()
    }

    /// Handles, in order, the lines a client sent while its command waited.
    pub(super) fn handle_queued(
        &mut self,
        id: ClientId,
        queued: Vec<Result<String, LineError>>,
        now: Instant,
        out: &mut impl Outbox,
    ) {
        for line in queued {
            match line {
                Ok(line) => self.handle_line(id, &line, now, out),
                Err(error) => self.reject_line(id, error, out),
            }
        }
    }

    /// Gives client `id` the free nick `name`: its first nick (restoring a saved session) or
    /// a rename, which is refused onto a nick whose user is away with a saved session.
    pub(super) fn take_nick(
        &mut self,
        id: ClientId,
        name: &str,
        key: String,
        now: Instant,
        out: &mut impl Outbox,
    ) {
        if self.clients.nick_of(id).is_none() {
            let restored = self.take_session(&key, now, out);
            self.log_in(id, name, key, restored, now, out);
        } else if self.sessions.contains(&key, now) {
            out.send(id, messages::nick_saved(&mut self.line, name));
        } else {
            self.rename(id, name, key, out);
        }
    }

    /// First `/nick` of a connection: restore a saved session or start a fresh one.
    pub(super) fn log_in(
        &mut self,
        id: ClientId,
        name: &str,
        key: String,
        restored: Option<SavedRooms>,
        now: Instant,
        out: &mut impl Outbox,
    ) {
        let is_restore = restored.is_some();
        let saved = restored.unwrap_or_else(|| SavedRooms {
            rooms: vec![super::MAIN_ROOM.to_string()],
            active: super::MAIN_ROOM.to_string(),
            ..SavedRooms::default()
        });
        let mut rooms = Vec::with_capacity(saved.rooms.len());
        // A restore does not get around --max-rooms: rooms it would create past the limit are
        // left out, and the user is told after the welcome.
        let mut left_out = false;
        for room_name in saved.rooms.iter().take(self.config.max_rooms_per_user) {
            let key = name_key(room_name);
            if self.rooms.would_pass(&key, self.config.max_rooms) {
                left_out = true;
                continue;
            }
            let spelling = self.remote.room_name(&key);
            let room = self.rooms.get_or_create(room_name, spelling);
            if !rooms.contains(&room) {
                self.rooms.add_member(room, id);
                rooms.push(room);
            }
        }
        let active = self
            .rooms
            .find(&name_key(&saved.active))
            .filter(|room| rooms.contains(room))
            .unwrap_or(self.rooms.main());
        let display = name.to_string();
        self.clients.set_nick(
            id,
            Nick {
                display,
                key: key.clone(),
            },
        );
        if let Some(client) = self.clients.get_mut(id) {
            client.rooms = rooms.clone();
            client.active = active;
        }
        out.publish(&Event::NickClaimed { nick: name });
        if is_restore {
            out.publish(&Event::SessionRestored { nick: name });
        }
        let (list, active_name) = (self.rooms.list(&rooms), self.rooms.name(active));
        let line = messages::welcome(&mut self.line, is_restore, name, &list, active_name);
        out.send(id, line);
        // What was missed comes before any live line of those rooms.
        if is_restore {
            self.replay_missed(out, id, &saved, now);
        }
        self.deliver_kept_privates(out, id, &key, now);
        if left_out {
            let max_rooms = self.config.max_rooms;
            out.send(
                id,
                messages::too_many_rooms_on_server(&mut self.line, max_rooms),
            );
        }
        for room in rooms {
            self.explain_if_quiet(out, id, room);
            self.announce(out, room, id, name, Presence::Joined);
        }
        self.publish_session(id, out);
    }

    /// `/nick` by a named client: a new nick, or a new spelling of the same one.
    pub(super) fn rename(&mut self, id: ClientId, name: &str, key: String, out: &mut impl Outbox) {
        let Some(current) = self.clients.nick_of(id) else {
            return;
        };
        if current.display == name {
            out.send(id, messages::already_named(&mut self.line, name));
            return;
        }
        let renamed_key = current.key != key;
        let display = name.to_string();
        let Some(old) = self.clients.set_nick(id, Nick { display, key }) else {
            return;
        };
        let rooms = self
            .clients
            .get(id)
            .map(|c| c.rooms.clone())
            .unwrap_or_default();
        out.send(id, messages::renamed(&mut self.line, name, &old.display));
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

    /// With a shared registry, publishes the client's current rooms so another node can
    /// restore them even if this one dies.
    pub(super) fn publish_session(&self, id: ClientId, out: &mut impl Outbox) {
        if !self.config.shared_registry {
            return;
        }
        let Some(client) = self.clients.get(id) else {
            return;
        };
        let Some(nick) = client.nick.as_ref() else {
            return;
        };
        let rooms: Vec<String> = client
            .rooms
            .iter()
            .map(|&r| self.rooms.name(r).to_string())
            .collect();
        out.publish(&Event::Session {
            nick: &nick.display,
            rooms: &rooms,
            active: self.rooms.name(client.active),
        });
    }
}
