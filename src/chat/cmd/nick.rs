//! `/nick NAME`: take a nick (restoring its saved session), or rename.
//!
//! This decides who may have the nick; what taking it means is in `chat::login`.

use std::time::Instant;

use crate::chat::{messages, Chat, ClientId, NickClaim, Outbox};
use crate::protocol::{name_key, validate_name};

/// Takes `name` for client `id`: a first login, a restore, a rename, or (with a shared
/// registry) a claim that the cluster decides. With `secret` (a password or a resume token),
/// a registered nick, or one held by a live connection, can be taken too.
pub(super) fn nick(
    chat: &mut Chat,
    id: ClientId,
    name: &str,
    secret: Option<&str>,
    now: Instant,
    out: &mut impl Outbox,
) {
    if !validate_name(name) {
        out.send(id, messages::invalid_nick(&mut chat.line, name));
        return;
    }
    let key = name_key(name);
    let current = chat.clients.nick_of(id).map(|n| n.key.clone());
    if current.as_deref() == Some(key.as_str()) {
        chat.rename(id, name, key, out);
        return;
    }
    if let Some(secret) = secret {
        if chat.log_in_with_secret(id, name, key.clone(), secret, now, out) {
            return;
        }
    }
    if chat.accounts.is_registered(&key) {
        out.send(id, messages::nick_registered(&mut chat.line, name));
    } else if chat.clients.holder(&key).is_some() {
        out.send(id, messages::nick_in_use(&mut chat.line, name));
    } else if chat.config.shared_registry {
        // The registry decides even for a nick this node sees on another node: what it knows
        // of other nodes' users lags behind the registry (a node that stops frees its nicks
        // in the registry before the others hear it is gone).
        let claim = NickClaim {
            rename: current.is_some(),
            owner: false,
        };
        chat.start_claim(id, name, claim, out);
    } else {
        chat.take_nick(id, name, key, now, out);
    }
}
