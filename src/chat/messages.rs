//! Every line a user can see, worded once.
//!
//! docs/PROTOCOL.md calls the wording of these lines stable: the desktop client parses them. Each
//! function formats one whole protocol line (CRLF included) into a reused buffer and returns it,
//! so the chat formats a room line once and hands the same bytes to every member. The sample
//! lines in `tests/fixtures/server-lines.txt` are checked against these functions by the chat's
//! tests and against the desktop client's parser by its tests.

use super::HistoryLimits;
use crate::protocol::{LineError, ParseError};

/// Sent (by the poll loop, before closing) to a client that arrives when the server is full.
pub const SERVER_FULL: &[u8] = b"! server full\r\n";

// Lines the poll loop words (its limits), not the chat.

/// Sent (by the poll loop, before closing) to a client whose address already has `max`
/// connections (`--max-per-ip`).
pub(crate) fn too_many_from_address(line: &mut Vec<u8>, max: u32) -> &[u8] {
    let max = max.to_string();
    error(
        line,
        &["too many connections from your address (max ", &max, ")"],
    )
}

/// Sent (by the poll loop, before closing) to a connection without a nick after
/// `--login-timeout` seconds.
pub(crate) fn login_timeout(line: &mut Vec<u8>, seconds: u64) -> &[u8] {
    let unit = if seconds == 1 { " second" } else { " seconds" };
    let seconds = seconds.to_string();
    error(line, &["login timeout: no /nick within ", &seconds, unit])
}

/// Sent (by the poll loop) once per flood episode to a client whose lines are being read more
/// slowly because it sends faster than `--flood-rate` lines a second after a burst of
/// `--flood-burst`.
pub(crate) fn flood_slowed(line: &mut Vec<u8>, rate: u32, burst: u32) -> &[u8] {
    let (rate, burst) = (rate.to_string(), burst.to_string());
    notice(
        line,
        &[
            "You are sending too fast (more than ",
            &rate,
            " lines a second after a burst of ",
            &burst,
            "; /join, /nick, /who and /rooms count extra): your lines are handled more slowly \
             now, in order, none dropped.",
        ],
    )
}

/// How a name must look, said in every "invalid name" error.
const NAME_RULE: &str = "use 1-32 letters, digits, _ or -";

/// The answer to `/help`, one notice a line.
const HELP: &[&str] = &[
    "Commands:",
    "  /nick NAME [PASSWORD] set your nick (restores your rooms if you were here before)",
    "  /join ROOM            join ROOM and make it your active room",
    "  /leave ROOM           leave ROOM (you fall back to main if it was active)",
    "  /rooms                list rooms and their member counts",
    "  /who [ROOM]           list members of ROOM (default: your active room)",
    "  /msg NICK TEXT        private message to NICK (kept for them if they are away)",
    "  /history [ROOM] [N]   the last N messages of ROOM (default: active room, 20)",
    "  /me TEXT              action in your active room",
    "  /register PASSWORD    protect your nick with a password (/password NEW, /unregister)",
    "  /token                a one-use token: /nick NAME TOKEN takes your session back",
    "  /help                 this list",
    "  /quit                 leave (your session stays restorable)",
    "Any other line is a message to your active room; start it with // to send a leading /.",
];

/// Formats `prefix` and `parts` as one line in `line`, reusing its allocation.
fn fill<'b>(line: &'b mut Vec<u8>, prefix: &str, parts: &[&str]) -> &'b [u8] {
    line.clear();
    line.extend_from_slice(prefix.as_bytes());
    for part in parts {
        line.extend_from_slice(part.as_bytes());
    }
    line.extend_from_slice(b"\r\n");
    line
}

/// A `* ` notice.
fn notice<'b>(line: &'b mut Vec<u8>, parts: &[&str]) -> &'b [u8] {
    fill(line, "* ", parts)
}

/// A `! ` error.
fn error<'b>(line: &'b mut Vec<u8>, parts: &[&str]) -> &'b [u8] {
    fill(line, "! ", parts)
}

// Room lines.

/// `[ROOM] NICK: TEXT`: a message in a room, as its other members see it.
pub(crate) fn said<'b>(line: &'b mut Vec<u8>, room: &str, nick: &str, text: &str) -> &'b [u8] {
    fill(line, "[", &[room, "] ", nick, ": ", text])
}

/// `[ROOM] * NICK TEXT`: a `/me` action, as the room's other members see it.
pub(crate) fn acted<'b>(line: &'b mut Vec<u8>, room: &str, nick: &str, text: &str) -> &'b [u8] {
    fill(line, "[", &[room, "] * ", nick, " ", text])
}

/// `You: TEXT`: the echo of the sender's own message.
pub(crate) fn said_echo<'b>(line: &'b mut Vec<u8>, text: &str) -> &'b [u8] {
    fill(line, "You: ", &[text])
}

/// `You: * NICK TEXT`: the echo of the sender's own action.
pub(crate) fn acted_echo<'b>(line: &'b mut Vec<u8>, nick: &str, text: &str) -> &'b [u8] {
    fill(line, "You: * ", &[nick, " ", text])
}

/// `* [ROOM] NICK joined` and the other presence notices.
pub(crate) fn presence<'b>(
    line: &'b mut Vec<u8>,
    room: &str,
    nick: &str,
    change: super::Presence<'_>,
) -> &'b [u8] {
    use super::Presence;
    match change {
        Presence::Joined => notice(line, &["[", room, "] ", nick, " joined"]),
        Presence::Left => notice(line, &["[", room, "] ", nick, " left"]),
        Presence::Disconnected => notice(line, &["[", room, "] ", nick, " disconnected"]),
        Presence::Renamed(old) => notice(line, &["[", room, "] ", old, " is now ", nick]),
    }
}

/// `[ROOM HH:MM] NICK: TEXT` or `[ROOM HH:MM] * NICK TEXT`: a message replayed from history
/// (`stamp` is `HH:MM`, or `YYYY-MM-DD HH:MM` for another day; UTC). The space inside the
/// brackets tells it from a live line.
pub(crate) fn replayed<'b>(
    line: &'b mut Vec<u8>,
    room: &str,
    stamp: &str,
    nick: &str,
    text: &str,
    action: bool,
) -> &'b [u8] {
    if action {
        fill(line, "[", &[room, " ", stamp, "] * ", nick, " ", text])
    } else {
        fill(line, "[", &[room, " ", stamp, "] ", nick, ": ", text])
    }
}

/// Before the replay of a room: how many messages were missed since `since` (a stamp), and
/// how many of them are no longer kept.
pub(crate) fn missed_header<'b>(
    line: &'b mut Vec<u8>,
    room: &str,
    kept: usize,
    since: &str,
    lost: u64,
) -> &'b [u8] {
    let count = messages_count(kept);
    let lost = match lost {
        0 => String::new(),
        1 => "; 1 older one is no longer kept".to_string(),
        n => format!("; {n} older ones are no longer kept"),
    };
    notice(
        line,
        &[
            "Missed in ",
            room,
            ": ",
            &count,
            " since ",
            since,
            " UTC",
            &lost,
            ".",
        ],
    )
}

/// After the replay of a room.
pub(crate) fn missed_end<'b>(line: &'b mut Vec<u8>, room: &str) -> &'b [u8] {
    notice(line, &["End of missed messages in ", room, "."])
}

/// Before the answer to `/history`.
pub(crate) fn history_header<'b>(line: &'b mut Vec<u8>, room: &str, count: usize) -> &'b [u8] {
    let count = messages_count(count);
    notice(line, &["History of ", room, ": the last ", &count, "."])
}

/// After the answer to `/history`.
pub(crate) fn history_end<'b>(line: &'b mut Vec<u8>, room: &str) -> &'b [u8] {
    notice(line, &["End of history of ", room, "."])
}

/// `/history` of a room that keeps nothing.
pub(crate) fn history_empty<'b>(line: &'b mut Vec<u8>, room: &str) -> &'b [u8] {
    notice(line, &["No messages are kept in ", room, "."])
}

/// `1 message`, `3 messages`.
fn messages_count(count: usize) -> String {
    counted(count, "message")
}

/// `1 NOUN`, `3 NOUNs`.
fn counted(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

// Private messages.

/// `(PM) FROM: TEXT`: a private message, as its addressee sees it.
pub(crate) fn private<'b>(line: &'b mut Vec<u8>, from: &str, text: &str) -> &'b [u8] {
    fill(line, "(PM) ", &[from, ": ", text])
}

/// `(PM to NICK) You: TEXT`: the echo of a private message.
pub(crate) fn private_echo<'b>(line: &'b mut Vec<u8>, to: &str, text: &str) -> &'b [u8] {
    fill(line, "(PM to ", &[to, ") You: ", text])
}

/// `(PM HH:MM) FROM: TEXT`: a private message kept while the addressee was away.
pub(crate) fn kept_private<'b>(
    line: &'b mut Vec<u8>,
    stamp: &str,
    from: &str,
    text: &str,
) -> &'b [u8] {
    fill(line, "(PM ", &[stamp, ") ", from, ": ", text])
}

/// Before the private messages kept for a returning user.
pub(crate) fn kept_privates_header(line: &mut Vec<u8>, count: usize) -> &[u8] {
    let count = counted(count, "private message");
    notice(line, &["Missed while you were away: ", &count, "."])
}

/// After the private messages kept for a returning user.
pub(crate) fn kept_privates_end(line: &mut Vec<u8>) -> &[u8] {
    notice(line, &["End of missed private messages."])
}

/// To the sender of a private message to someone who is away.
pub(crate) fn private_kept<'b>(line: &'b mut Vec<u8>, to: &str) -> &'b [u8] {
    notice(
        line,
        &[
            to,
            " is away; your message will be delivered when they return.",
        ],
    )
}

/// A private message to someone away whose mailbox is full.
pub(crate) fn mailbox_full<'b>(line: &'b mut Vec<u8>, to: &str, max: usize) -> &'b [u8] {
    let max = max.to_string();
    error(
        line,
        &[
            to,
            " is away and has ",
            &max,
            " messages waiting; message not kept",
        ],
    )
}

// Notices.

/// The first line of every connection; it says how much history rooms keep, if any.
pub(crate) fn greeting(line: &mut Vec<u8>, history: HistoryLimits) -> &[u8] {
    let welcome =
        "Welcome to chat-server. Set your nick with /nick NAME; /help lists the commands.";
    if history.per_room == 0 {
        return notice(line, &[welcome]);
    }
    let (count, days) = (
        history.per_room.to_string(),
        (history.max_age_ms / 86_400_000).to_string(),
    );
    notice(
        line,
        &[
            welcome,
            " Rooms keep their last ",
            &count,
            " messages for up to ",
            &days,
            " days: come back with the same nick to get what you missed; /history shows more.",
        ],
    )
}

/// One line of the `/help` answer; `None` past the last.
pub(crate) fn help(line: &mut Vec<u8>, index: usize) -> Option<&[u8]> {
    HELP.get(index).map(|text| notice(line, &[text]))
}

/// `* Welcome, NICK. ...` for a fresh session, `* Welcome back, NICK. ...` for a restored one.
pub(crate) fn welcome<'b>(
    line: &'b mut Vec<u8>,
    restored: bool,
    nick: &str,
    rooms: &str,
    active: &str,
) -> &'b [u8] {
    let greeting = if restored {
        "Welcome back, "
    } else {
        "Welcome, "
    };
    notice(
        line,
        &[
            greeting,
            nick,
            ". Rooms: ",
            rooms,
            ". Active room: ",
            active,
            ".",
        ],
    )
}

/// `/join` of a room the user is already in.
pub(crate) fn active_room<'b>(line: &'b mut Vec<u8>, room: &str) -> &'b [u8] {
    notice(line, &["Active room: ", room, "."])
}

/// `/join` of a new room.
pub(crate) fn joined<'b>(line: &'b mut Vec<u8>, room: &str) -> &'b [u8] {
    notice(line, &["Joined ", room, ". Active room: ", room, "."])
}

/// `/leave`.
pub(crate) fn left<'b>(line: &'b mut Vec<u8>, room: &str, active: &str) -> &'b [u8] {
    notice(line, &["Left ", room, ". Active room: ", active, "."])
}

/// `/nick` with the nick the user already has.
pub(crate) fn already_named<'b>(line: &'b mut Vec<u8>, nick: &str) -> &'b [u8] {
    notice(line, &["You are already ", nick, "."])
}

/// `/nick NEW` by a named user.
pub(crate) fn renamed<'b>(line: &'b mut Vec<u8>, new: &str, old: &str) -> &'b [u8] {
    notice(line, &["You are now ", new, " (was ", old, ")."])
}

/// Why nobody is told about arrivals in a room bigger than `--announce-limit`.
pub(crate) fn quiet_room<'b>(
    line: &'b mut Vec<u8>,
    room: &str,
    members: usize,
    limit: usize,
) -> &'b [u8] {
    let (members, limit) = (members.to_string(), limit.to_string());
    notice(
        line,
        &[
            room,
            " has ",
            &members,
            " members: arrivals and departures are not announced in rooms of more than ",
            &limit,
            "; /who ",
            room,
            " lists them.",
        ],
    )
}

/// `/rooms`: `entries` already formatted as `NAME (COUNT)`, `more` cut off the list.
pub(crate) fn room_list<'b>(
    line: &'b mut Vec<u8>,
    total: usize,
    entries: &str,
    more: usize,
) -> &'b [u8] {
    let (total, more) = (total.to_string(), and_more(more));
    notice(line, &["Rooms (", &total, "): ", entries, &more])
}

/// `/who`: `nicks` already joined with `, `, `more` cut off the list.
pub(crate) fn member_list<'b>(
    line: &'b mut Vec<u8>,
    room: &str,
    total: usize,
    nicks: &str,
    more: usize,
) -> &'b [u8] {
    let (total, more) = (total.to_string(), and_more(more));
    notice(
        line,
        &["Members of ", room, " (", &total, "): ", nicks, &more],
    )
}

/// The tail of a cut list: `", and 12 more"`, or nothing.
fn and_more(more: usize) -> String {
    if more == 0 {
        String::new()
    } else {
        format!(", and {more} more")
    }
}

/// `/quit`: `nick` is `None` for a client that never set one.
pub(crate) fn bye<'b>(line: &'b mut Vec<u8>, nick: Option<&str>) -> &'b [u8] {
    match nick {
        Some(nick) => notice(
            line,
            &[
                "Bye, ",
                nick,
                ". Your session is kept; /nick ",
                nick,
                " restores it.",
            ],
        ),
        None => notice(line, &["Bye."]),
    }
}

/// `/register` done: the registration is saved.
pub(crate) fn registered<'b>(line: &'b mut Vec<u8>, nick: &str) -> &'b [u8] {
    notice(
        line,
        &[
            nick,
            " is now registered: from now on /nick ",
            nick,
            " PASSWORD logs in as ",
            nick,
            ".",
        ],
    )
}

/// `/password` done.
pub(crate) fn password_changed<'b>(line: &'b mut Vec<u8>, nick: &str) -> &'b [u8] {
    notice(line, &["The password of ", nick, " is changed."])
}

/// `/unregister` done.
pub(crate) fn unregistered<'b>(line: &'b mut Vec<u8>, nick: &str) -> &'b [u8] {
    notice(line, &[nick, " is no longer registered."])
}

/// The answer to `/token`.
pub(crate) fn resume_token<'b>(line: &'b mut Vec<u8>, token: &str) -> &'b [u8] {
    notice(line, &["Resume token: ", token])
}

/// To a connection whose nick was taken by its owner from another connection.
pub(crate) fn taken_over<'b>(line: &'b mut Vec<u8>, nick: &str) -> &'b [u8] {
    notice(
        line,
        &[
            nick,
            " logged in from another connection; this one is closed.",
        ],
    )
}

/// The server is stopping.
pub(crate) fn shutting_down(line: &mut Vec<u8>) -> &[u8] {
    notice(line, &["Server shutting down. Bye!"])
}

/// Cluster mode: this node lost Redis (`up == false`) or has it back.
pub(crate) fn cluster_status(line: &mut Vec<u8>, up: bool) -> &[u8] {
    if up {
        notice(line, &["Cross-node delivery restored."])
    } else {
        notice(
            line,
            &[
                "Cross-node delivery paused: this server lost contact with the cluster. \
               Your rooms keep working here; it will reconnect by itself.",
            ],
        )
    }
}

// Errors.

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

/// Accounts are not available on this server (cluster mode).
pub(crate) fn accounts_unavailable(line: &mut Vec<u8>) -> &[u8] {
    error(
        line,
        &["registered nicks are not available on this server (cluster mode)"],
    )
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
