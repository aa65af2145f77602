//! The chat's invariants, checked from the outside of every step by the property tests and the
//! fuzz targets (`fuzz/`); compiled only for tests and with the `fuzzing` feature.
//!
//! The chat keeps the same facts in several places for speed (a client's rooms and a room's
//! members, the nick registry and the clients' nicks, saved sessions and their expiry order);
//! these checks say that the copies never disagree, whatever the sequence of inputs.

use std::time::Instant;

use super::{Chat, ClientId};

impl Chat {
    /// Checks the invariants that hold at every moment:
    ///
    /// - each table's own rules (rooms and their name index, the nick registry, saved sessions
    ///   and their expiry index);
    /// - membership is the same seen from the rooms and from the clients;
    /// - every named client is in `main`, its active room is one of its rooms, and it is in
    ///   at most `max_rooms_per_user` rooms; an unnamed client is in none.
    ///
    /// Returns the first broken rule, worded.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.rooms.check()?;
        self.clients.check()?;
        self.sessions.check()?;
        let main = self.rooms.main();
        for id in self.clients.ids() {
            let Some(client) = self.clients.get(id) else {
                return Err(format!("{id:?} is listed but not connected"));
            };
            if client.nick.is_none() {
                if !client.rooms.is_empty() {
                    return Err(format!("unnamed {id:?} is in rooms"));
                }
                continue;
            }
            if !client.rooms.contains(&main) {
                return Err(format!("{id:?} is not in main"));
            }
            if !client.rooms.contains(&client.active) {
                return Err(format!("{id:?} is active in a room it is not in"));
            }
            if client.rooms.len() > self.config.max_rooms_per_user {
                return Err(format!("{id:?} is in {} rooms", client.rooms.len()));
            }
            for (position, &room) in client.rooms.iter().enumerate() {
                if client.rooms[..position].contains(&room) {
                    return Err(format!("{id:?} lists a room twice"));
                }
                if !self.rooms.exists(room) {
                    return Err(format!("{id:?} is in a room that does not exist"));
                }
                if !self.rooms.get(room).members.contains(&id) {
                    let name = self.rooms.name(room);
                    return Err(format!("{id:?} is in {name:?}, which does not list it"));
                }
            }
        }
        for (room_id, room) in self.rooms.entries() {
            for &member in &room.members {
                let in_room = self
                    .clients
                    .get(member)
                    .is_some_and(|c| c.nick.is_some() && c.rooms.contains(&room_id));
                if !in_room {
                    let name = &room.name;
                    return Err(format!("{name:?} lists {member:?}, which is not in it"));
                }
            }
        }
        Ok(())
    }

    /// [`Chat::check_invariants`], and the rule that depends on the time: standalone, no nick
    /// held by a connected client also has an unexpired saved session (logging in takes the
    /// session, renaming onto a saved nick is refused).
    pub fn check_invariants_at(&self, now: Instant) -> Result<(), String> {
        self.check_invariants()?;
        if self.config.shared_registry {
            return Ok(());
        }
        for key in self.sessions.keys() {
            if self.clients.holder(key).is_some() && self.sessions.contains(key, now) {
                return Err(format!("nick {key:?} is held and also has a saved session"));
            }
        }
        Ok(())
    }

    /// The rooms of client `id` in join order and its active room, by name, if it is
    /// connected and named: what the checks of who may get a room line compare against.
    pub fn rooms_of(&self, id: ClientId) -> Option<(Vec<String>, String)> {
        let client = self.clients.get(id)?;
        client.nick.as_ref()?;
        let name = |room| {
            self.rooms
                .exists(room)
                .then(|| self.rooms.name(room).to_string())
        };
        let rooms = client
            .rooms
            .iter()
            .map(|&room| name(room))
            .collect::<Option<_>>()?;
        Some((rooms, name(client.active)?))
    }
}
