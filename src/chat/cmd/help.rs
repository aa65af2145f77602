//! `/help`: the list of commands.

use crate::chat::{messages, Chat, ClientId, Outbox};

/// Sends the command list, one notice a line.
pub(super) fn help(chat: &mut Chat, id: ClientId, out: &mut impl Outbox) {
    let mut index = 0;
    while let Some(line) = messages::help(&mut chat.line, index) {
        out.send(id, line);
        index += 1;
    }
}
