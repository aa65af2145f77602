//! `/quit`: goodbye, with the session kept for a later `/nick`.

use std::time::Instant;

use crate::chat::{messages, Chat, ClientId, Outbox};

/// Says goodbye, closes the connection once that is written, and saves the session.
pub(super) fn quit(chat: &mut Chat, id: ClientId, now: Instant, out: &mut impl Outbox) {
    let nick = chat.clients.nick_of(id).map(|n| n.display.as_str());
    out.send(id, messages::bye(&mut chat.line, nick));
    out.close(id);
    chat.disconnect(id, now, out);
}
