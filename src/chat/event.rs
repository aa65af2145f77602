//! What the chat tells the rest of a cluster, and what a cluster answers.

use super::history::RoomClock;
use super::KeptPrivate;

/// A change in the chat that concerns more than this node's own clients.
///
/// Every room line, presence change, private message to an absent user, nick claim and session
/// save leaves the chat as one of these, so a cluster adapter can forward it; events from other
/// nodes come back in through [`super::Chat::deliver_remote`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// A plain message in a room.
    Said {
        /// The room's display name.
        room: &'a str,
        /// The sender's nick.
        nick: &'a str,
        /// The message text.
        text: &'a str,
        /// When and (in a cluster) where it was taken in.
        stamp: Stamp<'a>,
    },
    /// A `/me` action in a room.
    Acted {
        /// The room's display name.
        room: &'a str,
        /// The actor's nick.
        nick: &'a str,
        /// The action text.
        text: &'a str,
        /// When and (in a cluster) where it was taken in.
        stamp: Stamp<'a>,
    },
    /// Someone entered or left a room, or renamed while in it.
    Presence {
        /// The room's display name.
        room: &'a str,
        /// The member's nick (the new one for a rename).
        nick: &'a str,
        /// What happened.
        change: Presence<'a>,
    },
    /// A private message to a nick that has no connection on this node.
    Private {
        /// The sender's nick.
        from: &'a str,
        /// The addressee as typed.
        to: &'a str,
        /// The message text.
        text: &'a str,
        /// The node the sender's node believes the addressee is on: only that node keeps
        /// the message if the addressee left it meanwhile.
        node: &'a str,
    },
    /// A nick is now held by a live connection on this node.
    NickClaimed {
        /// The nick.
        nick: &'a str,
    },
    /// A nick is no longer held by a live connection on this node.
    NickReleased {
        /// The nick.
        nick: &'a str,
    },
    /// The rooms and active room to restore for a nick: published when its user departs and,
    /// with a shared registry, whenever they change, so they survive the loss of this node.
    Session {
        /// The nick.
        nick: &'a str,
        /// The rooms, in join order.
        rooms: &'a [String],
        /// The active room.
        active: &'a str,
    },
    /// A nick's saved rooms are void (its user renamed); only with a shared registry.
    SessionDropped {
        /// The nick.
        nick: &'a str,
    },
    /// A saved session was taken up again (and is no longer saved).
    SessionRestored {
        /// The nick.
        nick: &'a str,
    },
    /// Another node registered a nick or changed its password (comes in only).
    AccountSaved {
        /// The nick's key.
        nick: &'a str,
        /// The nick as its owner spells it.
        display: &'a str,
        /// The password's argon2id hash.
        password_hash: &'a str,
    },
    /// Another node removed a nick's registration (comes in only).
    AccountRemoved {
        /// The nick's key.
        nick: &'a str,
    },
}

/// A room message or action, whichever of [`Event::Said`] and [`Event::Acted`] it came as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomMessage<'a> {
    /// The room's display name.
    pub room: &'a str,
    /// The sender's nick.
    pub nick: &'a str,
    /// The text.
    pub text: &'a str,
    /// A `/me` action.
    pub action: bool,
    /// When and (in a cluster) where it was taken in.
    pub stamp: Stamp<'a>,
}

impl<'a> Event<'a> {
    /// The room message this event is, if it is one.
    pub fn room_message(&self) -> Option<RoomMessage<'a>> {
        let (room, nick, text, stamp, action) = match *self {
            Event::Said {
                room,
                nick,
                text,
                stamp,
            } => (room, nick, text, stamp, false),
            Event::Acted {
                room,
                nick,
                text,
                stamp,
            } => (room, nick, text, stamp, true),
            _ => return None,
        };
        Some(RoomMessage {
            room,
            nick,
            text,
            action,
            stamp,
        })
    }
}

/// When a room message was taken in, and in a cluster by which node incarnation and with
/// which number among that incarnation's messages in the room (see `history.rs`): what lets
/// any node tell which messages a returning user missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp<'a> {
    /// The node incarnation that took it in; empty standalone.
    pub origin: &'a str,
    /// Its number among that incarnation's messages in the room; 0 standalone.
    pub seq: u64,
    /// When it was taken in, in milliseconds since the Unix epoch (UTC).
    pub at_ms: u64,
}

/// The kinds of presence change announced to a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence<'a> {
    /// Joined, or re-joined on restore.
    Joined,
    /// Left with `/leave`.
    Left,
    /// The connection ended.
    Disconnected,
    /// Renamed from the given nick.
    Renamed(&'a str),
}

/// What a client asks of the shared registry with [`super::Outbox::claim_nick`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NickClaim {
    /// The client has a nick already: a rename (refused onto a nick with a saved session).
    pub rename: bool,
    /// The client proved it owns the nick (its password or a resume token): a registered
    /// nick is not refused.
    pub owner: bool,
}

/// The answer of a shared registry to [`super::Outbox::claim_nick`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The nick is the client's; with what the cluster kept for it.
    Granted(Grant),
    /// A live connection somewhere holds the nick.
    InUse,
    /// A rename onto a nick whose owner is away with a saved session.
    Saved,
    /// The nick is registered and the client did not prove it owns it (this node had not
    /// heard of the registration yet).
    Registered,
}

/// What comes with a granted nick claim: what the cluster kept for the nick's user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    /// The rooms saved for it anywhere in the cluster, if any.
    pub saved: Option<SavedRooms>,
    /// The private messages kept for it, oldest first: taken from the cluster's store with
    /// the grant, so only the node that got the nick delivers them.
    pub kept: Vec<KeptPrivate>,
}

impl Grant {
    /// A grant with session `saved` and nothing else.
    pub fn session(saved: SavedRooms) -> Self {
        Self {
            saved: Some(saved),
            kept: Vec::new(),
        }
    }
}

/// A departed user's rooms, as kept for restoration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SavedRooms {
    /// The rooms, in join order.
    pub rooms: Vec<String>,
    /// The active room.
    pub active: String,
    /// For each of `rooms`, how many messages had been posted in it when the user left: what
    /// came after is replayed on return. Empty when unknown (then nothing is replayed).
    pub marks: Vec<u64>,
    /// When the user left, in milliseconds since the Unix epoch (UTC).
    pub left_at_ms: u64,
    /// Cluster mode: for each of `rooms`, the room's clock when the user left (the last
    /// message seen from each node), which means the same on every node; used instead of
    /// `marks` when present.
    pub clocks: Vec<RoomClock>,
}
