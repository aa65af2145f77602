//! `! ` lines: what was wrong, said so that the user knows what to do instead.

use super::error;
use crate::protocol::{LineError, ParseError};

/// How a name must look, said in every "invalid name" error.
const NAME_RULE: &str = "use 1-32 letters, digits, _ or -";

/// A line the decoder refused; `max_line` words the length limit.
pub(crate) fn refused_line(line: &mut Vec<u8>, refusal: LineError, max_line: usize) -> &[u8] {
    match refusal {
        LineError::TooLong => {
            let max = max_line.to_string();
            error(
                line,
                &["line too long (max ", &max, " bytes); line discarded"],
            )
        }
        LineError::InvalidUtf8 => error(line, &["invalid UTF-8; line discarded"]),
        LineError::TelnetMangled => error(
            line,
            &[
                "your telnet client garbled non-ASCII text in that line; ",
                "it is now in 8-bit mode, please type the line again",
            ],
        ),
    }
}

/// A line that is not a command, or a command without its argument.
pub(crate) fn bad_command<'b>(line: &'b mut Vec<u8>, parse: &ParseError) -> &'b [u8] {
    match parse {
        ParseError::Unknown(name) => error(line, &["unknown command /", name, " (try /help)"]),
        ParseError::Usage(usage) => error(line, &["usage: ", usage]),
    }
}

/// Too many lines arrived while the shared registry decided a nick.
pub(crate) fn still_claiming(line: &mut Vec<u8>) -> &[u8] {
    error(line, &["still checking your nick; line discarded"])
}

/// Anything but `/nick`, `/help` and `/quit` before a nick.
pub(crate) fn nick_first(line: &mut Vec<u8>) -> &[u8] {
    error(line, &["set a nick first: /nick NAME"])
}

/// A nick that breaks the name rules.
pub(crate) fn invalid_nick<'b>(line: &'b mut Vec<u8>, nick: &str) -> &'b [u8] {
    error(line, &["invalid nick \"", nick, "\": ", NAME_RULE])
}

/// A room name that breaks the name rules.
pub(crate) fn invalid_room<'b>(line: &'b mut Vec<u8>, room: &str) -> &'b [u8] {
    error(line, &["invalid room name \"", room, "\": ", NAME_RULE])
}

/// A bare `/nick` for a registered nick.
pub(crate) fn nick_registered<'b>(line: &'b mut Vec<u8>, nick: &str) -> &'b [u8] {
    error(
        line,
        &[
            "nick ",
            nick,
            " is registered; use /nick ",
            nick,
            " PASSWORD",
        ],
    )
}

/// A wrong password in `/nick NAME PASSWORD`.
pub(crate) fn wrong_password<'b>(line: &'b mut Vec<u8>, nick: &str) -> &'b [u8] {
    error(line, &["wrong password for ", nick])
}

/// Any attempt for a nick locked after too many wrong passwords.
pub(crate) fn locked<'b>(line: &'b mut Vec<u8>, nick: &str, seconds: u64) -> &'b [u8] {
    let seconds = seconds.to_string();
    error(
        line,
        &[
            "too many wrong passwords for ",
            nick,
            "; try again in ",
            &seconds,
            " s",
        ],
    )
}

/// `/nick NAME TOKEN` with a token that is no longer valid.
pub(crate) fn stale_token<'b>(line: &'b mut Vec<u8>, nick: &str) -> &'b [u8] {
    error(
        line,
        &[
            "that resume token is no longer valid (tokens work once); use /nick ",
            nick,
            " PASSWORD",
        ],
    )
}

/// A password of exactly a token's shape.
pub(crate) fn password_like_token(line: &mut Vec<u8>) -> &[u8] {
    error(
        line,
        &["that password looks like a resume token (22 letters, digits, - or _); choose another"],
    )
}

/// `/register` of a nick that is registered already.
pub(crate) fn already_registered<'b>(line: &'b mut Vec<u8>, nick: &str) -> &'b [u8] {
    error(
        line,
        &[
            nick,
            " is already registered; /password NEW changes its password",
        ],
    )
}

/// `/password` or `/unregister` of a nick nobody registered.
pub(crate) fn not_registered<'b>(line: &'b mut Vec<u8>, nick: &str) -> &'b [u8] {
    error(
        line,
        &[nick, " is not registered; /register PASSWORD registers it"],
    )
}

/// A password job the server could not do (storage failed, too busy, no accounts).
pub(crate) fn auth_failed<'b>(line: &'b mut Vec<u8>, reason: &str) -> &'b [u8] {
    error(
        line,
        &["that did not work (", reason, "); please try again"],
    )
}

/// The password worker cannot take the job now (its queue is full): said as any failed
/// password job, so a client retries it the same way.
pub(crate) fn accounts_unavailable(line: &mut Vec<u8>) -> &[u8] {
    auth_failed(line, "too many passwords waiting to be checked")
}

/// A nick held by a live connection.
pub(crate) fn nick_in_use<'b>(line: &'b mut Vec<u8>, nick: &str) -> &'b [u8] {
    error(line, &["nick ", nick, " is in use"])
}

/// A rename onto the nick of a user who is away with a saved session.
pub(crate) fn nick_saved<'b>(line: &'b mut Vec<u8>, nick: &str) -> &'b [u8] {
    error(
        line,
        &[
            "nick ",
            nick,
            " has a saved session; log in as ",
            nick,
            " to restore it",
        ],
    )
}

/// `/join` past `--max-rooms-per-user`.
pub(crate) fn too_many_rooms(line: &mut Vec<u8>, max: usize) -> &[u8] {
    let max = max.to_string();
    error(
        line,
        &[
            "you are in too many rooms (max ",
            &max,
            "); /leave one first",
        ],
    )
}

/// `/join` of a new room past `--max-rooms`.
pub(crate) fn too_many_rooms_on_server(line: &mut Vec<u8>, max: usize) -> &[u8] {
    let max = max.to_string();
    error(line, &["too many rooms on this server (max ", &max, ")"])
}

/// `/leave main`.
pub(crate) fn cannot_leave<'b>(line: &'b mut Vec<u8>, room: &str) -> &'b [u8] {
    error(line, &["you cannot leave ", room])
}

/// `/leave` of a room the user is not in.
pub(crate) fn not_in_room<'b>(line: &'b mut Vec<u8>, room: &str) -> &'b [u8] {
    error(line, &["you are not in ", room])
}

/// `/who` of a room that does not exist.
pub(crate) fn no_such_room<'b>(line: &'b mut Vec<u8>, room: &str) -> &'b [u8] {
    error(line, &["no such room: ", room])
}

/// `/msg` to a nick nobody holds.
pub(crate) fn no_such_user<'b>(line: &'b mut Vec<u8>, nick: &str) -> &'b [u8] {
    error(line, &["no such user: ", nick])
}
