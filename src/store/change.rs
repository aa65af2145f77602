//! The owned form of a [`Change`]: what crosses from the poll loop to the storage thread.
//!
//! The chat hands its changes over borrowed (no allocation when nothing stores them); the store
//! needs them after the loop's turn is over, so each is copied once into an [`OwnedChange`].

use crate::chat::{Account, Change, KeptPrivate, SavedRooms};

/// A [`Change`] that owns its strings. Nick and room names are their keys (lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedChange {
    /// A message was kept in room `room`'s history.
    Message {
        /// The room's key.
        room: String,
        /// Its number in the room.
        number: u64,
        /// When the server received it, in milliseconds since the Unix epoch (UTC).
        at_ms: u64,
        /// The sender's nick.
        nick: String,
        /// The text.
        text: String,
        /// A `/me` action.
        action: bool,
    },
    /// Room `room` no longer keeps its messages numbered up to `through`.
    Trimmed {
        /// The room's key.
        room: String,
        /// The last number dropped.
        through: u64,
    },
    /// The session of `nick` was saved.
    SessionSaved {
        /// The nick's key.
        nick: String,
        /// Its rooms, marks and the time it was saved.
        session: SavedRooms,
    },
    /// The saved session of `nick` is gone.
    SessionDropped {
        /// The nick's key.
        nick: String,
    },
    /// A private message was kept for `to`, who is away.
    PrivateKept {
        /// The addressee's nick key.
        to: String,
        /// The message.
        message: KeptPrivate,
    },
    /// Everything kept for `to` was delivered or forgotten.
    PrivatesCleared {
        /// The addressee's nick key.
        to: String,
    },
    /// A nick was registered, or its password changed.
    AccountSaved {
        /// The nick's key.
        nick: String,
        /// The account.
        account: Account,
    },
    /// A nick's registration was removed.
    AccountRemoved {
        /// The nick's key.
        nick: String,
    },
}

impl From<&Change<'_>> for OwnedChange {
    fn from(change: &Change<'_>) -> Self {
        match *change {
            Change::Message {
                room,
                number,
                at_ms,
                nick,
                text,
                action,
            } => Self::Message {
                room: room.to_string(),
                number,
                at_ms,
                nick: nick.to_string(),
                text: text.to_string(),
                action,
            },
            Change::Trimmed { room, through } => Self::Trimmed {
                room: room.to_string(),
                through,
            },
            Change::SessionSaved { nick, session } => Self::SessionSaved {
                nick: nick.to_string(),
                session: session.clone(),
            },
            Change::SessionDropped { nick } => Self::SessionDropped {
                nick: nick.to_string(),
            },
            Change::PrivateKept { to, message } => Self::PrivateKept {
                to: to.to_string(),
                message: message.clone(),
            },
            Change::PrivatesCleared { to } => Self::PrivatesCleared { to: to.to_string() },
            Change::AccountSaved { nick, account } => Self::AccountSaved {
                nick: nick.to_string(),
                account: account.clone(),
            },
            Change::AccountRemoved { nick } => Self::AccountRemoved {
                nick: nick.to_string(),
            },
        }
    }
}

impl OwnedChange {
    /// The borrowed form, to apply to a [`crate::chat::Snapshot`] as the chat would have.
    pub fn as_change(&self) -> Change<'_> {
        match self {
            Self::Message {
                room,
                number,
                at_ms,
                nick,
                text,
                action,
            } => Change::Message {
                room,
                number: *number,
                at_ms: *at_ms,
                nick,
                text,
                action: *action,
            },
            Self::Trimmed { room, through } => Change::Trimmed {
                room,
                through: *through,
            },
            Self::SessionSaved { nick, session } => Change::SessionSaved { nick, session },
            Self::SessionDropped { nick } => Change::SessionDropped { nick },
            Self::PrivateKept { to, message } => Change::PrivateKept { to, message },
            Self::PrivatesCleared { to } => Change::PrivatesCleared { to },
            Self::AccountSaved { nick, account } => Change::AccountSaved { nick, account },
            Self::AccountRemoved { nick } => Change::AccountRemoved { nick },
        }
    }
}
