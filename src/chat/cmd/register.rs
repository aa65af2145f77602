//! `/register PASSWORD`: protect the nick one holds with a password.

use crate::chat::auth::looks_like_token;
use crate::chat::clients::{AuthOp, Nick};
use crate::chat::{messages, AuthJob, Chat, ClientId, Outbox};

/// Hashes `password` (off the loop) and registers the client's nick with it; the client is
/// told once the registration is saved.
pub(super) fn register(chat: &mut Chat, id: ClientId, password: &str, out: &mut impl Outbox) {
    let Some(nick) = chat.clients.nick_of(id).cloned() else {
        return;
    };
    if chat.accounts.is_registered(&nick.key) {
        out.send(
            id,
            messages::already_registered(&mut chat.line, &nick.display),
        );
        return;
    }
    let op = AuthOp::Register(nick.key.clone(), nick.display.clone());
    hash_password(chat, id, &nick, password, op, out);
}

/// Hands `password` to the password worker to become the password of `nick` (for `op`, a
/// registration or a change), unless it has the shape of a resume token.
pub(super) fn hash_password(
    chat: &mut Chat,
    id: ClientId,
    nick: &Nick,
    password: &str,
    op: AuthOp,
    out: &mut impl Outbox,
) {
    if looks_like_token(password) {
        out.send(id, messages::password_like_token(&mut chat.line));
        return;
    }
    let job = AuthJob::Register {
        nick: nick.key.clone(),
        display: nick.display.clone(),
        password: password.to_string(),
    };
    chat.start_auth(id, op, job, out);
}
