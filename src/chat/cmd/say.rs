//! A plain line or `/me TEXT`: a message or an action in the sender's active room.
//!
//! The hot path of the server: the room line is formatted once and handed to the outbox once
//! for every member.

use std::sync::Arc;
use std::time::Instant;

use crate::chat::history::Taken;
use crate::chat::{messages, Chat, ClientId, Event, Origin, Outbox, Stamp};

/// Sends `text` (an action if `action`) to the other members of the active room, the echo to
/// the sender, and the event to the cluster; keeps it in the room's history.
pub(super) fn say(
    chat: &mut Chat,
    id: ClientId,
    text: &str,
    action: bool,
    now: Instant,
    out: &mut impl Outbox,
) {
    let Some(client) = chat.clients.get(id) else {
        return;
    };
    let Some(nick) = client.nick.as_ref().map(|n| n.display.as_str()) else {
        return;
    };
    let room = chat.rooms.get(client.active);
    // In a cluster the message is numbered among this node's messages in the room, so that
    // every node can tell whether a returning user saw it.
    let origin = chat.origin.as_ref().map(|node| Origin {
        node: Arc::clone(node),
        seq: chat.history.next_seq(&room.key, node),
    });
    let stamp = Stamp {
        origin: chat.origin.as_deref().unwrap_or(""),
        seq: origin.as_ref().map_or(0, |o| o.seq),
        at_ms: chat.clock.unix_ms(now),
    };
    let line = &mut chat.line;
    if action {
        let room_line = messages::acted(line, &room.name, nick, text);
        out.send_to_all(&room.members, Some(id), room_line);
        out.send(id, messages::acted_echo(line, nick, text));
        out.publish(&Event::Acted {
            room: &room.name,
            nick,
            text,
            stamp,
        });
    } else {
        let room_line = messages::said(line, &room.name, nick, text);
        out.send_to_all(&room.members, Some(id), room_line);
        out.send(id, messages::said_echo(line, text));
        out.publish(&Event::Said {
            room: &room.name,
            nick,
            text,
            stamp,
        });
    }
    let (room, nick) = (room.key.clone(), nick.to_string());
    let taken = Taken {
        at_ms: stamp.at_ms,
        origin,
    };
    chat.keep_in_history(&room, &nick, text, action, taken, out);
}
