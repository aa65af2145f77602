//! The commands, one file each, and the table that dispatches a parsed line to them.
//!
//! Each command is one function `fn(&mut Chat, ClientId, args.., &mut impl Outbox)`; parsing
//! (names, aliases, usage lines) is [`crate::protocol::Command`]'s job, wording the answers
//! [`super::messages`]'s.

mod help;
mod history;
mod join;
mod leave;
mod msg;
mod nick;
mod password;
mod quit;
mod register;
mod rooms;
mod say;
mod token;
mod unregister;
mod who;

use std::time::Instant;

use super::{messages, Chat, ClientId, Outbox};
use crate::protocol::{strip_controls, Command};

/// `/rooms` and `/who` list at most this many entries (`/rooms` the busiest rooms), so their
/// one line stays readable and far below any client's output limit.
pub(crate) const MAX_LISTED: usize = 200;

/// Parses one line of client `id` and runs its command.
pub(super) fn run(chat: &mut Chat, id: ClientId, line: &str, now: Instant, out: &mut impl Outbox) {
    let line = strip_controls(line);
    let command = match Command::parse(&line) {
        Ok(command) => command,
        Err(error) => {
            out.send(id, messages::bad_command(&mut chat.line, &error));
            return;
        }
    };
    let named = chat.clients.nick_of(id).is_some();
    match command {
        Command::Empty => {}
        Command::Help => help::help(chat, id, out),
        Command::Quit => quit::quit(chat, id, now, out),
        Command::Nick(name, secret) => nick::nick(chat, id, name, secret, now, out),
        _ if !named => out.send(id, messages::nick_first(&mut chat.line)),
        Command::Join(room) => join::join(chat, id, room, out),
        Command::Leave(room) => leave::leave(chat, id, room, out),
        Command::Rooms => rooms::rooms(chat, id, out),
        Command::Who(room) => who::who(chat, id, room, out),
        Command::Msg(to, text) => msg::msg(chat, id, to, text, now, out),
        Command::History(room, count) => history::history(chat, id, room, count, now, out),
        Command::Register(password) => register::register(chat, id, password, out),
        Command::Password(new) => password::password(chat, id, new, out),
        Command::Unregister => unregister::unregister(chat, id, out),
        Command::Token => token::token(chat, id, out),
        Command::Me(text) => say::say(chat, id, text, true, now, out),
        Command::Say(text) => say::say(chat, id, text, false, now, out),
    }
}
