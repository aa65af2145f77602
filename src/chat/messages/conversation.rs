//! Room lines, private messages, and replayed history with the lines that frame it.

use super::{counted, error, fill, notice};
use crate::chat::Presence;

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
    change: Presence<'_>,
) -> &'b [u8] {
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
