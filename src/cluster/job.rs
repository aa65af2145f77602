//! The work the loop hands the Redis worker thread (`worker.rs`).

use crate::chat::{ClientId, NickClaim};

/// A room message for its room's history stream (`chat:history:{room}`).
#[derive(Debug)]
pub struct Entry {
    /// The room's key.
    pub room: String,
    /// The stream entry's fields and values.
    pub fields: [(&'static str, String); 6],
}

/// Work for the Redis worker thread.
#[derive(Debug)]
pub enum Job {
    Publish(String),
    /// A room message: appended to its room's history, then published.
    Post {
        payload: String,
        entry: Box<Entry>,
    },
    Claim {
        client: ClientId,
        nick: String,
        claim: NickClaim,
    },
    Release(String),
    SaveSession {
        nick: String,
        value: String,
    },
    DropSession(String),
    /// Keep a private message (JSON) for a user who is away.
    KeepPrivate {
        to: String,
        value: String,
    },
    /// Forget what was kept for a user.
    ClearPrivates(String),
    /// Re-register every nick this node holds (after Redis came back).
    Register(Vec<String>),
}
