//! What a returning user missed: each room's messages posted while they were away, and the
//! private messages kept for them, framed by `* ` lines so a client can tell replay from live.

use std::time::Instant;

use super::history::Mark;
use super::{clock, messages, Change, Chat, ClientId, KeptPrivate, Outbox, SavedRooms};
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

    /// Whether nick `key` belongs to a user who is away: a saved session, or a registered
    /// nick (private messages to them are kept).
    pub(super) fn is_away(&self, key: &str, now: Instant) -> bool {
        self.sessions.contains(key, now) || self.accounts.is_registered(key)
    }

    /// Keeps a private message from `from` for nick `key`, if they are away and their mailbox
    /// has room; returns whether it was kept.
    pub(super) fn keep_private(
        &mut self,
        key: &str,
        from: &str,
        text: &str,
        now: Instant,
        out: &mut impl Outbox,
    ) -> bool {
        if !self.is_away(key, now) || !self.mailboxes.has_room(key) {
            return false;
        }
        let kept = KeptPrivate {
            at_ms: self.clock.unix_ms(now),
            from: from.to_string(),
            text: text.to_string(),
        };
        out.store(&Change::PrivateKept {
            to: key,
            message: &kept,
        });
        self.mailboxes.keep(key, kept)
    }

    /// Cluster mode: what the registry handed over with a nick (taken from Redis with the
    /// grant) replaces this node's copy of what was kept for it: only the node that got the
    /// nick delivers, each message once.
    pub(super) fn take_kept_privates(&mut self, key: &str, kept: Vec<KeptPrivate>) {
        self.mailboxes.forget(key);
        for message in kept {
            self.mailboxes.keep(key, message);
        }
    }

    /// Cluster mode: private messages the registry handed over with a nick that this node
    /// could not give to anyone (the client left, or another took the nick meanwhile): kept
    /// again for their addressee, in Redis and on every node.
    pub(super) fn keep_again(&mut self, nick: &str, kept: Vec<KeptPrivate>, out: &mut impl Outbox) {
        let key = name_key(nick);
        for message in kept {
            out.store(&Change::PrivateKept {
                to: &key,
                message: &message,
            });
            self.mailboxes.keep(&key, message);
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
