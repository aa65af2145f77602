//! Every line a user can see, worded once.
//!
//! docs/PROTOCOL.md calls the wording of these lines stable: the desktop client parses them. Each
//! function formats one whole protocol line (CRLF included) into a reused buffer and returns it,
//! so the chat formats a room line once and hands the same bytes to every member. The sample
//! lines in `tests/fixtures/server-lines.txt` are checked against these functions by the chat's
//! tests and against the desktop client's parser by its tests
//! (`tests/fixtures/update-server-lines.sh` rewrites it after a change here).
//!
//! - `conversation`: room lines, private messages, and replayed history with its framing;
//! - `notices`: `* ` lines: welcomes, confirmations, lists, help;
//! - `errors`: `! ` lines;
//! - `limits`: the lines the poll loop sends for its own limits.

mod conversation;
mod errors;
mod limits;
mod notices;

pub(crate) use conversation::*;
pub(crate) use errors::*;
pub(crate) use limits::*;
pub(crate) use notices::*;

/// Sent (by the poll loop, before closing) to a client that arrives when the server is full.
pub const SERVER_FULL: &[u8] = b"! server full\r\n";

/// Sent (by the poll loop, before closing) to a client that arrives when the server is near its
/// memory limit.
pub const SERVER_BUSY: &[u8] =
    b"! server busy: too little memory left for new connections; try again later\r\n";

/// Formats `prefix` and `parts` as one line in `line`, reusing its allocation.
pub(super) fn fill<'b>(line: &'b mut Vec<u8>, prefix: &str, parts: &[&str]) -> &'b [u8] {
    line.clear();
    line.extend_from_slice(prefix.as_bytes());
    for part in parts {
        line.extend_from_slice(part.as_bytes());
    }
    line.extend_from_slice(b"\r\n");
    line
}

/// A `* ` notice.
pub(super) fn notice<'b>(line: &'b mut Vec<u8>, parts: &[&str]) -> &'b [u8] {
    fill(line, "* ", parts)
}

/// A `! ` error.
pub(super) fn error<'b>(line: &'b mut Vec<u8>, parts: &[&str]) -> &'b [u8] {
    fill(line, "! ", parts)
}

/// `1 NOUN`, `3 NOUNs`.
pub(super) fn counted(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
