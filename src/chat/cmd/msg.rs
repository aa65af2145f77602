//! `/msg NICK TEXT`: a private message, straight to a local user or through the cluster.

use std::time::Instant;

use crate::chat::mailbox::MAILBOX_LIMIT;
use crate::chat::{messages, Chat, ClientId, Event, Outbox};
use crate::protocol::name_key;

/// Delivers `text` to `to` and echoes it to the sender; keeps it for `to` if they are away
/// (a saved session, or a registered nick).
pub(super) fn msg(
    chat: &mut Chat,
    id: ClientId,
    to: &str,
    text: &str,
    now: Instant,
    out: &mut impl Outbox,
) {
    let from = chat.clients.display_name(id);
    let key = name_key(to);
    let target_name = if let Some(target) = chat.clients.holder(&key) {
        out.send(target, messages::private(&mut chat.line, &from, text));
        chat.clients.display_name(target)
    } else if let Some(user) = chat
        .remote
        .user(to)
        // A saved session means the user left, even if their node's release is still on
        // its way here.
        .filter(|_| !chat.sessions.contains(&key, now))
    {
        out.publish(&Event::Private {
            from: &from,
            to: &user.nick,
            text,
            node: &user.node,
        });
        user.nick.clone()
    } else if chat.is_away(&key, now) {
        if !chat.keep_private(&key, &from, text, now, out) {
            out.send(
                id,
                messages::mailbox_full(&mut chat.line, to, MAILBOX_LIMIT),
            );
            return;
        }
        out.send(id, messages::private_echo(&mut chat.line, to, text));
        out.send(id, messages::private_kept(&mut chat.line, to));
        return;
    } else {
        out.send(id, messages::no_such_user(&mut chat.line, to));
        return;
    };
    out.send(
        id,
        messages::private_echo(&mut chat.line, &target_name, text),
    );
}
