//! The lines the poll loop sends for its own limits (flood control, the per-address limit, the
//! login timeout), worded here with the rest.

use super::{error, notice};

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
