//! `/msg NICK TEXT`: a private message, straight to a local user or through the cluster.

use crate::chat::{messages, Chat, ClientId, Event, Outbox};
use crate::protocol::name_key;

/// Delivers `text` to `to` and echoes it to the sender.
pub(super) fn msg(chat: &mut Chat, id: ClientId, to: &str, text: &str, out: &mut impl Outbox) {
    let from = chat.clients.display_name(id);
    let target_name = if let Some(target) = chat.clients.holder(&name_key(to)) {
        out.send(target, messages::private(&mut chat.line, &from, text));
        chat.clients.display_name(target)
    } else if let Some(user) = chat.remote.user(to) {
        out.publish(&Event::Private {
            from: &from,
            to: &user.nick,
            text,
        });
        user.nick.clone()
    } else {
        out.send(id, messages::no_such_user(&mut chat.line, to));
        return;
    };
    out.send(
        id,
        messages::private_echo(&mut chat.line, &target_name, text),
    );
}
