//! What this node knows about users on the other nodes of a cluster.
//!
//! Cluster mode keeps, on every node, a picture of who is online elsewhere and in which rooms,
//! built from the presence events the other nodes publish and from the full snapshots they send
//! when a node (re)joins. It answers `/who`, `/rooms` and `/msg` without a round trip to Redis.
//! Standalone it stays empty. Pure data, no I/O.

use std::collections::HashMap;

use crate::protocol::name_key;

/// A user connected to another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUser {
    /// The node the user is connected to.
    pub node: String,
    /// The nick as the user spells it.
    pub nick: String,
}

#[derive(Debug, Default)]
struct RemoteRoom {
    name: String,
    members: Vec<RemoteUser>,
}

/// Users and room memberships on other nodes.
#[derive(Debug, Default)]
pub struct RemoteRoster {
    rooms: HashMap<String, RemoteRoom>,
    users: HashMap<String, RemoteUser>,
}

impl RemoteRoster {
    /// `nick` on `node` is online.
    pub fn online(&mut self, node: &str, nick: &str) {
        self.users.insert(name_key(nick), user(node, nick));
    }

    /// `nick` on `node` went offline (or renamed away from this nick): drop it everywhere.
    pub fn offline(&mut self, node: &str, nick: &str) {
        let key = name_key(nick);
        if self.users.get(&key).is_some_and(|u| u.node == node) {
            self.users.remove(&key);
        }
        self.rooms.retain(|_, room| {
            room.members
                .retain(|m| !(m.node == node && name_key(&m.nick) == key));
            !room.members.is_empty()
        });
    }

    /// `nick` on `node` joined `room`.
    pub fn joined(&mut self, node: &str, room: &str, nick: &str) {
        self.online(node, nick);
        let entry = self.rooms.entry(name_key(room)).or_default();
        if entry.name.is_empty() {
            entry.name = room.to_string();
        }
        let key = name_key(nick);
        if !entry
            .members
            .iter()
            .any(|m| m.node == node && name_key(&m.nick) == key)
        {
            entry.members.push(user(node, nick));
        }
    }

    /// `nick` on `node` left `room`.
    pub fn left(&mut self, node: &str, room: &str, nick: &str) {
        let room_key = name_key(room);
        let key = name_key(nick);
        if let Some(entry) = self.rooms.get_mut(&room_key) {
            entry
                .members
                .retain(|m| !(m.node == node && name_key(&m.nick) == key));
            if entry.members.is_empty() {
                self.rooms.remove(&room_key);
            }
        }
    }

    /// `old` on `node` is now called `new`, in every room.
    pub fn renamed(&mut self, node: &str, old: &str, new: &str) {
        let old_key = name_key(old);
        if self.users.get(&old_key).is_some_and(|u| u.node == node) {
            self.users.remove(&old_key);
        }
        self.online(node, new);
        for room in self.rooms.values_mut() {
            for member in &mut room.members {
                if member.node == node && name_key(&member.nick) == old_key {
                    member.nick = new.to_string();
                }
            }
        }
    }

    /// Replaces everything known about `node` with a full snapshot: rooms with their members.
    pub fn replace_node(&mut self, node: &str, rooms: &[(String, Vec<String>)]) {
        self.forget_node(node);
        for (room, members) in rooms {
            for nick in members {
                self.joined(node, room, nick);
            }
        }
    }

    /// Forgets every user of `node` (it stopped or lost contact), returning the room keys and
    /// nicks of the memberships it had, so their rooms can be told.
    pub fn forget_node(&mut self, node: &str) -> Vec<(String, String)> {
        self.users.retain(|_, u| u.node != node);
        let mut gone = Vec::new();
        self.rooms.retain(|key, room| {
            room.members.retain(|m| {
                if m.node == node {
                    gone.push((key.clone(), m.nick.clone()));
                }
                m.node != node
            });
            !room.members.is_empty()
        });
        gone
    }

    /// Forgets everything (contact with the cluster is lost).
    pub fn clear(&mut self) {
        self.users.clear();
        self.rooms.clear();
    }

    /// The remote user holding `nick`, if any.
    pub fn user(&self, nick: &str) -> Option<&RemoteUser> {
        self.users.get(&name_key(nick))
    }

    /// Nicks of the remote members of the room with key `room_key`.
    pub fn members(&self, room_key: &str) -> impl Iterator<Item = &str> {
        self.rooms
            .get(room_key)
            .into_iter()
            .flat_map(|r| r.members.iter().map(|m| m.nick.as_str()))
    }

    /// How many remote members the room with key `room_key` has.
    pub fn member_count(&self, room_key: &str) -> usize {
        self.rooms.get(room_key).map_or(0, |r| r.members.len())
    }

    /// Rooms with remote members: (key, display name, remote member count).
    pub fn rooms(&self) -> impl Iterator<Item = (&str, &str, usize)> {
        self.rooms
            .iter()
            .map(|(key, r)| (key.as_str(), r.name.as_str(), r.members.len()))
    }

    /// The display name of a room known only remotely.
    pub fn room_name(&self, room_key: &str) -> Option<&str> {
        self.rooms.get(room_key).map(|r| r.name.as_str())
    }
}

fn user(node: &str, nick: &str) -> RemoteUser {
    RemoteUser {
        node: node.to_string(),
        nick: nick.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(roster: &RemoteRoster, room: &str) -> Vec<String> {
        let mut list: Vec<String> = roster.members(room).map(str::to_string).collect();
        list.sort();
        list
    }

    #[test]
    fn tracks_joins_leaves_and_renames() {
        let mut roster = RemoteRoster::default();
        roster.joined("b", "Dev", "carol");
        roster.joined("b", "dev", "Dave");
        roster.joined("c", "main", "erin");
        assert_eq!(members(&roster, "dev"), ["Dave", "carol"]);
        assert_eq!(roster.room_name("dev"), Some("Dev"));
        roster.renamed("b", "carol", "Caroline");
        assert_eq!(members(&roster, "dev"), ["Caroline", "Dave"]);
        assert!(roster.user("carol").is_none());
        assert_eq!(roster.user("CAROLINE").map(|u| u.node.as_str()), Some("b"));
        roster.left("b", "dev", "dave");
        roster.offline("b", "Caroline");
        assert!(roster.room_name("dev").is_none());
        assert_eq!(roster.rooms().count(), 1);
    }

    #[test]
    fn snapshots_replace_and_nodes_are_forgotten() {
        let mut roster = RemoteRoster::default();
        roster.joined("b", "old", "ghost");
        roster.replace_node(
            "b",
            &[
                ("main".into(), vec!["x".into(), "y".into()]),
                ("dev".into(), vec!["x".into()]),
            ],
        );
        assert!(roster.user("ghost").is_none());
        assert_eq!(members(&roster, "main"), ["x", "y"]);
        roster.joined("c", "main", "z");
        let mut gone = roster.forget_node("b");
        gone.sort();
        assert_eq!(
            gone,
            [
                ("dev".to_string(), "x".to_string()),
                ("main".to_string(), "x".to_string()),
                ("main".to_string(), "y".to_string()),
            ]
        );
        assert_eq!(members(&roster, "main"), ["z"]);
        assert!(roster.user("x").is_none());
    }
}
