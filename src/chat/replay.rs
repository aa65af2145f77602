//! What a returning user missed: each room's messages posted while they were away, and the
//! private messages kept for them, framed by `* ` lines so a client can tell replay from live.

use std::time::Instant;

use super::history::Mark;
use super::{clock, messages, Change, Chat, ClientId, Outbox, SavedRooms};
use crate::protocol::name_key;

impl Chat {
    /// Sends, room by room, the messages posted since the user in `saved` left: exactly those
    /// after the room's mark (its count here, or in a cluster its clock), oldest first, framed,
    /// and the count of those no longer kept. Rooms where nothing was posted are skipped.
    pub(super) fn replay_missed(
        &mut self,
        out: &mut impl Outbox,
        id: ClientId,
        saved: &SavedRooms,
        now: Instant,
    ) {
        let marks: Vec<Mark<'_>> = if saved.clocks.len() == saved.rooms.len() {
            saved
                .clocks
                .iter()
                .map(|clock| Mark::Clock(clock))
                .collect()
        } else if saved.marks.len() == saved.rooms.len() {
            saved
                .marks
                .iter()
                .map(|&count| Mark::Count(count))
                .collect()
        } else {
            return;
        };
        let now_ms = self.clock.unix_ms(now);
        let since = clock::stamp(saved.left_at_ms, now_ms);
        let Some(client) = self.clients.get(id) else {
            return;
        };
        for (name, mark) in saved.rooms.iter().zip(marks) {
            let key = name_key(name);
            // Only rooms the user is back in (the per-user room cap may have left some out).
            let Some(room) = self.rooms.find(&key).filter(|r| client.rooms.contains(r)) else {
                continue;
            };
            let missed = self.history.missed_since(&key, mark);
            if missed.messages.is_empty() && missed.lost == 0 {
                continue;
            }
            let room = self.rooms.name(room);
            let kept = missed.messages.len();
            let line = messages::missed_header(&mut self.line, room, kept, &since, missed.lost);
            out.send(id, line);
            for message in missed.messages {
                let stamp = clock::stamp(message.at_ms, now_ms);
                let (nick, text) = (&message.nick, &message.text);
                let line =
                    messages::replayed(&mut self.line, room, &stamp, nick, text, message.action);
                out.send(id, line);
            }
            out.send(id, messages::missed_end(&mut self.line, room));
        }
    }

    /// Delivers the private messages kept for nick `key` while its user was away.
    pub(super) fn deliver_kept_privates(
        &mut self,
        out: &mut impl Outbox,
        id: ClientId,
        key: &str,
        now: Instant,
    ) {
        let kept = self.mailboxes.take(key);
        if kept.is_empty() {
            return;
        }
        out.store(&Change::PrivatesCleared { to: key });
        let now_ms = self.clock.unix_ms(now);
        out.send(
            id,
            messages::kept_privates_header(&mut self.line, kept.len()),
        );
        for private in &kept {
            let stamp = clock::stamp(private.at_ms, now_ms);
            let line = messages::kept_private(&mut self.line, &stamp, &private.from, &private.text);
            out.send(id, line);
        }
        out.send(id, messages::kept_privates_end(&mut self.line));
    }
}
