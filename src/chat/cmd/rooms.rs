//! `/rooms`: every room with members here or, in a cluster, on other nodes.

use std::cmp::Reverse;
use std::collections::HashMap;

use super::MAX_LISTED;
use crate::chat::{messages, Chat, ClientId, Outbox};

/// Lists the rooms by name with their member counts (the busiest [`MAX_LISTED`] of them).
pub(super) fn rooms(chat: &mut Chat, id: ClientId, out: &mut impl Outbox) {
    let mut rooms: HashMap<&str, (&str, usize)> = chat
        .rooms
        .iter()
        .map(|r| (r.key.as_str(), (r.name.as_str(), r.members.len())))
        .collect();
    for (key, name, count) in chat.remote.rooms() {
        rooms.entry(key).or_insert((name, 0)).1 += count;
    }
    let mut rooms: Vec<(&str, (&str, usize))> = rooms.into_iter().collect();
    let total = rooms.len();
    if rooms.len() > MAX_LISTED {
        rooms.select_nth_unstable_by_key(MAX_LISTED, |&(key, (_, n))| (Reverse(n), key));
    }
    let more = rooms.len().saturating_sub(MAX_LISTED);
    rooms.truncate(MAX_LISTED);
    rooms.sort_unstable_by_key(|&(key, _)| key);
    let entries = rooms
        .iter()
        .map(|(_, (name, count))| format!("{name} ({count})"))
        .collect::<Vec<_>>()
        .join(", ");
    out.send(
        id,
        messages::room_list(&mut chat.line, total, &entries, more),
    );
}
