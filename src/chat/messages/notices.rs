//! `* ` lines: welcomes, confirmations, lists and help.

use super::notice;
use crate::chat::HistoryLimits;

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
