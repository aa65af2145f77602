//! `/who [ROOM]`: the members of a room, here and on other nodes.

use super::MAX_LISTED;
use crate::chat::{messages, Chat, ClientId, Outbox};
use crate::protocol::name_key;

/// Lists the members of `room_name` (default: the active room), sorted, at most [`MAX_LISTED`].
pub(super) fn who(chat: &mut Chat, id: ClientId, room_name: Option<&str>, out: &mut impl Outbox) {
    let key = match room_name {
        None => chat
            .clients
            .get(id)
            .map(|c| chat.rooms.get(c.active).key.clone()),
        Some(name) => Some(name_key(name)),
    };
    let key = key.unwrap_or_default();
    let local = chat.rooms.find(&key).map(|room| chat.rooms.get(room));
    let name = match local {
        Some(room) => room.name.as_str(),
        None => match chat.remote.room_name(&key) {
            Some(name) => name,
            None => {
                let asked = room_name.unwrap_or_default();
                out.send(id, messages::no_such_room(&mut chat.line, asked));
                return;
            }
        },
    };
    let mut nicks: Vec<&str> = local
        .into_iter()
        .flat_map(|room| room.members.iter())
        .filter_map(|&m| chat.clients.nick_of(m).map(|n| n.display.as_str()))
        .chain(chat.remote.members(&key))
        .collect();
    nicks.sort_by_cached_key(|nick| name_key(nick));
    let total = nicks.len();
    let more = total.saturating_sub(MAX_LISTED);
    nicks.truncate(MAX_LISTED);
    let list = nicks.join(", ");
    out.send(
        id,
        messages::member_list(&mut chat.line, name, total, &list, more),
    );
}
