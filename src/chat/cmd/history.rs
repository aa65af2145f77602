//! `/history [ROOM] [N]`: the last messages of a room the user is in.

use std::time::Instant;

use crate::chat::{clock, messages, Chat, ClientId, Outbox};
use crate::protocol::name_key;

/// How many messages `/history` shows when not told.
const DEFAULT_COUNT: usize = 20;

/// Shows the last `count` (default 20, at most the history bound) messages of `room_name`
/// (default: the active room), framed like a replay.
pub(super) fn history(
    chat: &mut Chat,
    id: ClientId,
    room_name: Option<&str>,
    count: Option<usize>,
    now: Instant,
    out: &mut impl Outbox,
) {
    let Some(client) = chat.clients.get(id) else {
        return;
    };
    let room = match room_name {
        None => Some(client.active),
        Some(name) => chat
            .rooms
            .find(&name_key(name))
            .filter(|r| client.rooms.contains(r)),
    };
    let Some(room) = room else {
        let asked = room_name.unwrap_or_default();
        out.send(id, messages::not_in_room(&mut chat.line, asked));
        return;
    };
    let count = count
        .unwrap_or(DEFAULT_COUNT)
        .min(chat.history.limits().per_room);
    let room = chat.rooms.get(room);
    let kept = chat.history.last(&room.key, count);
    if kept.is_empty() {
        out.send(id, messages::history_empty(&mut chat.line, &room.name));
        return;
    }
    let now_ms = chat.clock.unix_ms(now);
    let line = messages::history_header(&mut chat.line, &room.name, kept.len());
    out.send(id, line);
    for message in kept {
        let stamp = clock::stamp(message.at_ms, now_ms);
        let (nick, text) = (&message.nick, &message.text);
        let line = messages::replayed(
            &mut chat.line,
            &room.name,
            &stamp,
            nick,
            text,
            message.action,
        );
        out.send(id, line);
    }
    out.send(id, messages::history_end(&mut chat.line, &room.name));
}
