//! `/join ROOM`: enter a room (created on demand) and make it the active one.

use crate::chat::{messages, Chat, ClientId, Outbox, Presence};
use crate::protocol::{name_key, validate_name};

/// Joins `room_name`, or only makes it active if the client is in it already.
pub(super) fn join(chat: &mut Chat, id: ClientId, room_name: &str, out: &mut impl Outbox) {
    if !validate_name(room_name) {
        out.send(id, messages::invalid_room(&mut chat.line, room_name));
        return;
    }
    let key = name_key(room_name);
    if chat.rooms.would_pass(&key, chat.config.max_rooms) {
        let line = messages::too_many_rooms_on_server(&mut chat.line, chat.config.max_rooms);
        out.send(id, line);
        return;
    }
    // A room that already exists on other nodes keeps the spelling it has there.
    let spelling = chat.remote.room_name(&key);
    let room = chat.rooms.get_or_create(room_name, spelling);
    let max_rooms = chat.config.max_rooms_per_user;
    let Some(client) = chat.clients.get_mut(id) else {
        return;
    };
    if client.rooms.contains(&room) {
        client.active = room;
        out.send(
            id,
            messages::active_room(&mut chat.line, chat.rooms.name(room)),
        );
        chat.publish_session(id, out);
        return;
    }
    if client.rooms.len() >= max_rooms {
        chat.rooms.drop_if_empty(room);
        out.send(id, messages::too_many_rooms(&mut chat.line, max_rooms));
        return;
    }
    client.active = room;
    client.rooms.push(room);
    chat.rooms.add_member(room, id);
    out.send(id, messages::joined(&mut chat.line, chat.rooms.name(room)));
    chat.explain_if_quiet(out, id, room);
    let nick = chat.clients.display_name(id);
    chat.announce(out, room, id, &nick, Presence::Joined);
    chat.publish_session(id, out);
}
