//! What is kept for users who are away, in Redis and on every node: saved sessions (the
//! `chat:session:{nick}` keys, with the marks a replay needs) and private messages
//! (`chat:privates:{nick}`, a list of JSON entries, at most as many as a mailbox holds).
//!
//! Every node keeps a copy of both in memory, so that a user who left any node is known to be
//! away everywhere (`/msg` keeps a message for them), and what was kept for them is delivered on
//! whichever node they come back to: the node that makes a change writes it to Redis and
//! announces it on the events channel ([`RemoteChange`]), and a node reads both at start.

use log::{info, warn};
use serde::{Deserialize, Serialize};

use super::wire::StoredSession;
use super::{scan_keys, PRIVATES_PREFIX, SESSION_PREFIX};
use crate::chat::{Change, KeptPrivate, SavedRooms};

/// A kept private message as stored in Redis and sent to other nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPrivate {
    /// When it was sent, in milliseconds since the Unix epoch.
    pub at: u64,
    /// The sender's nick.
    pub from: String,
    /// The text.
    pub text: String,
}

impl StoredPrivate {
    /// What is stored of `message`.
    pub fn of(message: &KeptPrivate) -> Self {
        Self {
            at: message.at_ms,
            from: message.from.clone(),
            text: message.text.clone(),
        }
    }

    /// The kept message.
    pub fn into_kept(self) -> KeptPrivate {
        KeptPrivate {
            at_ms: self.at,
            from: self.from,
            text: self.text,
        }
    }
}

/// Another node's change to what is kept for users who are away, owned, to hand to the chat.
#[derive(Debug)]
pub enum RemoteChange {
    /// A user left: their session, by nick key.
    SessionSaved(String, SavedRooms),
    /// A saved session was restored, expired or evicted.
    SessionDropped(String),
    /// A private message was kept for a user who is away.
    PrivateKept(String, KeptPrivate),
    /// What was kept for a user was delivered or forgotten.
    PrivatesCleared(String),
}

impl RemoteChange {
    /// The change as the chat takes it.
    pub fn as_change(&self) -> Change<'_> {
        match self {
            RemoteChange::SessionSaved(nick, session) => Change::SessionSaved { nick, session },
            RemoteChange::SessionDropped(nick) => Change::SessionDropped { nick },
            RemoteChange::PrivateKept(to, message) => Change::PrivateKept { to, message },
            RemoteChange::PrivatesCleared(to) => Change::PrivatesCleared { to },
        }
    }
}

/// The sessions of users who left (those of users online somewhere carry no departure time,
/// and are not "away"), by nick key.
pub fn load_sessions(con: &mut redis::Connection) -> redis::RedisResult<Vec<(String, SavedRooms)>> {
    let mut sessions = Vec::new();
    for key in scan_keys(con, SESSION_PREFIX, "string")? {
        let value: Option<String> = redis::cmd("GET").arg(&key).query(con)?;
        let Some(value) = value else {
            continue; // expired meanwhile
        };
        match serde_json::from_str::<StoredSession>(&value) {
            Ok(session) if session.left_at_ms > 0 => {
                let nick = key.trim_start_matches(SESSION_PREFIX).to_string();
                sessions.push((nick, session.into_saved()));
            }
            Ok(_) => {}
            Err(e) => warn!("cluster: session {key} unreadable in Redis ({e}); skipped"),
        }
    }
    info!("cluster: {} saved sessions in Redis", sessions.len());
    Ok(sessions)
}

/// The private messages kept for users who are away, by nick key, oldest first.
pub fn load_privates(
    con: &mut redis::Connection,
) -> redis::RedisResult<Vec<(String, Vec<KeptPrivate>)>> {
    let mut privates = Vec::new();
    for key in scan_keys(con, PRIVATES_PREFIX, "list")? {
        let values: Vec<String> = redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query(con)?;
        let kept: Vec<KeptPrivate> = values
            .iter()
            .filter_map(|value| match serde_json::from_str::<StoredPrivate>(value) {
                Ok(message) => Some(message.into_kept()),
                Err(e) => {
                    warn!("cluster: a private message in {key} unreadable ({e}); skipped");
                    None
                }
            })
            .collect();
        let nick = key.trim_start_matches(PRIVATES_PREFIX).to_string();
        privates.push((nick, kept));
    }
    Ok(privates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_message_survives_its_stored_form() {
        let kept = KeptPrivate {
            at_ms: 1_795_701_900_000,
            from: "Алиса".into(),
            text: "ты где?".into(),
        };
        let json = serde_json::to_string(&StoredPrivate::of(&kept)).expect("encodes");
        let back: StoredPrivate = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back.into_kept(), kept);
    }

    #[test]
    fn remote_changes_are_the_chats_changes() {
        let change = RemoteChange::PrivatesCleared("вася".into());
        assert_eq!(change.as_change(), Change::PrivatesCleared { to: "вася" });
    }
}
