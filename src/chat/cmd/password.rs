//! `/password NEW`: change the password of the registered nick one holds.

use crate::chat::auth::looks_like_token;
use crate::chat::clients::AuthOp;
use crate::chat::{messages, AuthJob, Chat, ClientId, Outbox};

/// Hashes `password` (off the loop) and makes it the password of the client's nick; only its
/// owner holds a registered nick, so holding it is proof enough.
pub(super) fn password(chat: &mut Chat, id: ClientId, password: &str, out: &mut impl Outbox) {
    let Some(nick) = chat.clients.nick_of(id).cloned() else {
        return;
    };
    if !chat.accounts.is_registered(&nick.key) {
        out.send(id, messages::not_registered(&mut chat.line, &nick.display));
        return;
    }
    if looks_like_token(password) {
        out.send(id, messages::password_like_token(&mut chat.line));
        return;
    }
    let job = AuthJob::Register {
        nick: nick.key.clone(),
        display: nick.display.clone(),
        password: password.to_string(),
    };
    chat.start_auth(id, AuthOp::ChangePassword(nick.key, nick.display), job, out);
}
