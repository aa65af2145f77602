//! `/unregister`: remove the password protection of the nick one holds.

use crate::chat::clients::AuthOp;
use crate::chat::{messages, AuthJob, Chat, ClientId, Outbox};

/// Removes the registration of the client's nick (the client is told once that is saved).
pub(super) fn unregister(chat: &mut Chat, id: ClientId, out: &mut impl Outbox) {
    let Some(nick) = chat.clients.nick_of(id).cloned() else {
        return;
    };
    if !chat.accounts.is_registered(&nick.key) {
        out.send(id, messages::not_registered(&mut chat.line, &nick.display));
        return;
    }
    let job = AuthJob::Unregister {
        nick: nick.key.clone(),
    };
    chat.start_auth(id, AuthOp::Unregister(nick.key, nick.display), job, out);
}
