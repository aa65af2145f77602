//! This node's rooms: their names, their local members, and `main`, which always exists.

use std::collections::HashMap;

use slab::Slab;

use super::{ClientId, RoomId};
use crate::protocol::name_key;

/// The room every user starts in and falls back to.
pub const MAIN_ROOM: &str = "main";

/// One room with members on this node.
#[derive(Debug)]
pub(crate) struct Room {
    /// The name as its creator spelled it.
    pub(crate) name: String,
    /// The name as compared ([`name_key`]).
    pub(crate) key: String,
    /// Local members, in no particular order.
    pub(crate) members: Vec<ClientId>,
}

/// The rooms of this node, by id and by name.
#[derive(Debug)]
pub(crate) struct Rooms {
    rooms: Slab<Room>,
    by_key: HashMap<String, RoomId>,
    main: RoomId,
}

impl Rooms {
    /// Only `main`, empty.
    pub(crate) fn new() -> Self {
        let mut rooms = Slab::new();
        let main = RoomId(rooms.insert(Room {
            name: MAIN_ROOM.to_string(),
            key: MAIN_ROOM.to_string(),
            members: Vec::new(),
        }));
        let by_key = HashMap::from([(MAIN_ROOM.to_string(), main)]);
        Self {
            rooms,
            by_key,
            main,
        }
    }

    /// The `main` room.
    pub(crate) fn main(&self) -> RoomId {
        self.main
    }

    /// Number of rooms, `main` included.
    pub(crate) fn len(&self) -> usize {
        self.rooms.len()
    }

    /// The room `id`. Ids come from this table and rooms with members are never removed, so
    /// an id held by a member is always valid.
    pub(crate) fn get(&self, id: RoomId) -> &Room {
        &self.rooms[id.0]
    }

    /// The room's name as shown.
    pub(crate) fn name(&self, id: RoomId) -> &str {
        &self.get(id).name
    }

    /// The room whose key is `key`, if it exists here.
    pub(crate) fn find(&self, key: &str) -> Option<RoomId> {
        self.by_key.get(key).copied()
    }

    /// Every room.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Room> {
        self.rooms.iter().map(|(_, room)| room)
    }

    /// Whether a room with key `key` would be a new one past `max_rooms` rooms in all.
    pub(crate) fn would_pass(&self, key: &str, max_rooms: usize) -> bool {
        self.len() >= max_rooms && self.find(key).is_none()
    }

    /// The room named `name`, created with the spelling `spelling` if it does not exist.
    pub(crate) fn get_or_create(&mut self, name: &str, spelling: Option<&str>) -> RoomId {
        let key = name_key(name);
        if let Some(room) = self.find(&key) {
            return room;
        }
        let room = RoomId(self.rooms.insert(Room {
            name: spelling.unwrap_or(name).to_string(),
            key: key.clone(),
            members: Vec::new(),
        }));
        self.by_key.insert(key, room);
        room
    }

    /// Adds `client` to the members of `room`.
    pub(crate) fn add_member(&mut self, room: RoomId, client: ClientId) {
        self.rooms[room.0].members.push(client);
    }

    /// Removes `client` from the members of `room`.
    pub(crate) fn remove_member(&mut self, room: RoomId, client: ClientId) {
        let members = &mut self.rooms[room.0].members;
        if let Some(position) = members.iter().position(|&m| m == client) {
            members.swap_remove(position);
        }
    }

    /// Forgets a room nobody is in any more (saved sessions keep rooms by name).
    pub(crate) fn drop_if_empty(&mut self, room: RoomId) {
        if room != self.main && self.rooms.get(room.0).is_some_and(|r| r.members.is_empty()) {
            let removed = self.rooms.remove(room.0);
            self.by_key.remove(&removed.key);
        }
    }

    /// Every room with its id (for [`super::Chat::check_invariants`]).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn entries(&self) -> impl Iterator<Item = (RoomId, &Room)> {
        self.rooms.iter().map(|(index, room)| (RoomId(index), room))
    }

    /// Whether `id` names a room (for [`super::Chat::check_invariants`], which must not
    /// panic on a dangling id the way [`Rooms::get`] would).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn exists(&self, id: RoomId) -> bool {
        self.rooms.contains(id.0)
    }

    /// This table's own rules: the name index and the slab agree, `main` exists, keys are the
    /// names' keys, no member is listed twice, and no room but `main` is empty.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.rooms.get(self.main.0).map(|r| r.key.as_str()) != Some(MAIN_ROOM) {
            return Err("the main room is missing".into());
        }
        if self.by_key.len() != self.rooms.len() {
            let (keys, rooms) = (self.by_key.len(), self.rooms.len());
            return Err(format!("{keys} room keys for {rooms} rooms"));
        }
        for (index, room) in &self.rooms {
            if room.key != name_key(&room.name) {
                return Err(format!("room {:?} has key {:?}", room.name, room.key));
            }
            if self.by_key.get(&room.key) != Some(&RoomId(index)) {
                return Err(format!("room {:?} is not indexed under its key", room.name));
            }
            if index != self.main.0 && room.members.is_empty() {
                return Err(format!("empty room {:?} kept", room.name));
            }
            let mut members = room.members.clone();
            members.sort_unstable();
            members.dedup();
            if members.len() != room.members.len() {
                return Err(format!("room {:?} lists a member twice", room.name));
            }
        }
        Ok(())
    }

    /// The names of `rooms`, joined with `, `.
    pub(crate) fn list(&self, rooms: &[RoomId]) -> String {
        rooms
            .iter()
            .map(|&r| self.name(r))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
