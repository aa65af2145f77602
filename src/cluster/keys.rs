//! The Redis keys cluster mode uses (docs/CLUSTER.md, "Keys"), and finding them.

use crate::protocol::name_key;

/// The registry entry of nick `nick`.
pub fn nick_key(nick: &str) -> String {
    format!("chat:nick:{}", name_key(nick))
}

/// The saved session of nick `nick`.
pub fn session_key(nick: &str) -> String {
    format!("{SESSION_PREFIX}{}", name_key(nick))
}

/// What every saved session's key starts with.
pub const SESSION_PREFIX: &str = "chat:session:";

/// The list of private messages kept for nick `nick` (a key).
pub fn privates_key(nick: &str) -> String {
    format!("{PRIVATES_PREFIX}{nick}")
}

/// What every list of kept private messages starts with.
pub const PRIVATES_PREFIX: &str = "chat:privates:";

/// The stream that keeps room `room`'s history (`room` is its key).
pub fn history_key(room: &str) -> String {
    format!("{HISTORY_PREFIX}{room}")
}

/// What every history stream's key starts with.
pub const HISTORY_PREFIX: &str = "chat:history:";

/// Keys asked for per `SCAN` step.
const SCAN_COUNT: usize = 1000;

/// The keys that start with `prefix` and hold a value of Redis type `kind`.
pub fn scan_keys(
    con: &mut redis::Connection,
    prefix: &str,
    kind: &str,
) -> redis::RedisResult<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .arg("TYPE")
            .arg(kind)
            .query(con)?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}
