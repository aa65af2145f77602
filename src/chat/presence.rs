//! Telling a room who arrived, left or renamed, and keeping big rooms quiet about it.

use super::{messages, Chat, ClientId, Event, Outbox, Presence, RoomId};

impl Chat {
    /// Tells the other members of `room` about `nick`, and publishes the change.
    pub(super) fn announce(
        &mut self,
        out: &mut impl Outbox,
        room: RoomId,
        except: ClientId,
        nick: &str,
        change: Presence<'_>,
    ) {
        self.announce_to(out, room, Some(except), nick, change);
        out.publish(&Event::Presence {
            room: self.rooms.name(room),
            nick,
            change,
        });
    }

    /// Tells the members of `room` but `except` about `nick`, unless the room is quiet.
    pub(super) fn announce_to(
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
        let room = self.rooms.get(room);
        let line = messages::presence(&mut self.line, &room.name, nick, change);
        out.send_to_all(&room.members, except, line);
    }

    /// Members here and on other nodes.
    pub(super) fn member_count(&self, room: RoomId) -> usize {
        let room = self.rooms.get(room);
        room.members.len() + self.remote.member_count(&room.key)
    }

    /// Tells a user who just entered a quiet room why nobody is told about arrivals there (see
    /// [`super::ChatConfig::announce_limit`]).
    pub(super) fn explain_if_quiet(&mut self, out: &mut impl Outbox, id: ClientId, room: RoomId) {
        let members = self.member_count(room);
        if members <= self.config.announce_limit {
            return;
        }
        let name = self.rooms.name(room);
        let line = messages::quiet_room(&mut self.line, name, members, self.config.announce_limit);
        out.send(id, line);
    }
}
