//! `/nick NAME`: take a nick (restoring its saved session), or rename.
//!
//! This decides who may have the nick; what taking it means is in `chat::login`.

use std::time::Instant;

use crate::chat::{messages, Chat, ClientId, Outbox};
use crate::protocol::{name_key, validate_name};

/// Takes `name` for client `id`: a first login, a restore, a rename, or (with a shared
/// registry) a claim that the cluster decides.
pub(super) fn nick(chat: &mut Chat, id: ClientId, name: &str, now: Instant, out: &mut impl Outbox) {
    if !validate_name(name) {
        out.send(id, messages::invalid_nick(&mut chat.line, name));
        return;
    }
    let key = name_key(name);
    let current = chat.clients.nick_of(id).map(|n| n.key.clone());
    if current.as_deref() == Some(key.as_str()) {
        chat.rename(id, name, key, out);
    } else if chat.clients.holder(&key).is_some() || chat.remote.user(name).is_some() {
        out.send(id, messages::nick_in_use(&mut chat.line, name));
    } else if chat.config.shared_registry {
        chat.start_claim(id, name, current.is_some(), out);
    } else if current.is_some() {
        if chat.sessions.contains(&key, now) {
            out.send(id, messages::nick_saved(&mut chat.line, name));
        } else {
            chat.rename(id, name, key, out);
        }
    } else {
        let restored = chat.take_session(&key, now, out);
        chat.log_in(id, name, key, restored, now, out);
    }
}
