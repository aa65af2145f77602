//! `/token`: a one-use resume token for the nick one holds, so that a client can take its
//! session back (even from a live, half-open connection) without a password.

use crate::chat::{messages, Chat, ClientId, Outbox};

/// Answers `* Resume token: TOKEN`.
pub(super) fn token(chat: &mut Chat, id: ClientId, out: &mut impl Outbox) {
    let Some(nick) = chat.clients.nick_of(id) else {
        return;
    };
    let key = nick.key.clone();
    match chat.accounts.new_token(&key) {
        Some(token) => out.send(id, messages::resume_token(&mut chat.line, &token)),
        None => out.send(id, messages::auth_failed(&mut chat.line, "no randomness")),
    }
}
