//! `/leave ROOM`: leave a room; the active room falls back to `main` if it was this one.

use crate::chat::{messages, Chat, ClientId, Outbox, Presence, MAIN_ROOM};
use crate::protocol::{name_key, validate_name};

/// Leaves `room_name`; `main` cannot be left.
pub(super) fn leave(chat: &mut Chat, id: ClientId, room_name: &str, out: &mut impl Outbox) {
    if !validate_name(room_name) {
        out.send(id, messages::invalid_room(&mut chat.line, room_name));
        return;
    }
    let key = name_key(room_name);
    if key == MAIN_ROOM {
        out.send(id, messages::cannot_leave(&mut chat.line, MAIN_ROOM));
        return;
    }
    let main = chat.rooms.main();
    let room = chat.rooms.find(&key);
    let Some(client) = chat.clients.get_mut(id) else {
        return;
    };
    let Some(position) = room.and_then(|r| client.rooms.iter().position(|&x| x == r)) else {
        out.send(id, messages::not_in_room(&mut chat.line, room_name));
        return;
    };
    let room = client.rooms.remove(position);
    if client.active == room {
        client.active = main;
    }
    let active = client.active;
    chat.rooms.remove_member(room, id);
    let (name, active_name) = (chat.rooms.name(room), chat.rooms.name(active));
    out.send(id, messages::left(&mut chat.line, name, active_name));
    let nick = chat.clients.display_name(id);
    chat.announce(out, room, id, &nick, Presence::Left);
    chat.rooms.drop_if_empty(room);
    chat.publish_session(id, out);
}
