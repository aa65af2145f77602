//! `/password NEW`: change the password of the registered nick one holds.

use super::register::hash_password;
use crate::chat::clients::AuthOp;
use crate::chat::{messages, Chat, ClientId, Outbox};

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
    let op = AuthOp::ChangePassword(nick.key.clone(), nick.display.clone());
    hash_password(chat, id, &nick, password, op, out);
}
