//! The messages nodes exchange on the events channel, and the stored session format.

use serde::{Deserialize, Serialize};

use super::accounts::StoredAccount;
use super::kept::StoredPrivate;
use crate::chat::{Event, Presence, RoomClock, SavedRooms, Stamp};

/// What travels on the events channel: the sending node and what happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending node.
    pub node: String,
    /// What it says.
    #[serde(flatten)]
    pub body: Wire,
}

/// An [`Event`] (or a cluster housekeeping message) in owned, serialisable form.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Wire {
    Said {
        room: String,
        nick: String,
        text: String,
        #[serde(flatten)]
        stamp: WireStamp,
    },
    Acted {
        room: String,
        nick: String,
        text: String,
        #[serde(flatten)]
        stamp: WireStamp,
    },
    Presence {
        room: String,
        nick: String,
        change: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        old: Option<String>,
    },
    Private {
        from: String,
        to: String,
        text: String,
        /// The node the addressee is on (the envelope's `node` is the sender's).
        #[serde(default, rename = "on")]
        node: String,
    },
    NickClaimed {
        nick: String,
    },
    NickReleased {
        nick: String,
    },
    /// A nick was registered (or its password changed) on the sending node.
    AccountSaved {
        nick: String,
        account: StoredAccount,
    },
    /// A nick's registration was removed on the sending node.
    AccountRemoved {
        nick: String,
    },
    /// A user left the sending node: their saved session.
    SessionSaved {
        nick: String,
        session: StoredSession,
    },
    /// A saved session was restored, expired or evicted on the sending node.
    SessionDropped {
        nick: String,
    },
    /// A private message was kept for a user who is away.
    PrivateKept {
        to: String,
        message: StoredPrivate,
    },
    /// What was kept for a user was delivered or forgotten.
    PrivatesCleared {
        to: String,
    },
    /// A node (re)joined and asks the others for their rosters.
    Hello,
    /// A node's full picture of its rooms and members.
    Roster {
        rooms: Vec<(String, Vec<String>)>,
    },
    /// A node is alive.
    Beat,
    /// A node is stopping.
    Bye,
    /// Flow control: the node is behind in delivering the others' messages and asks them to
    /// pace their clients (`true`, renewed while it lasts), or has caught up.
    Flow {
        behind: bool,
    },
}

/// A room message's [`Stamp`] on the wire (absent from a node that does not send it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireStamp {
    /// The node incarnation that took the message in.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub origin: String,
    /// Its number among that incarnation's messages in the room.
    #[serde(default)]
    pub seq: u64,
    /// When, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub at: u64,
}

impl WireStamp {
    fn of(stamp: &Stamp<'_>) -> Self {
        Self {
            origin: stamp.origin.to_string(),
            seq: stamp.seq,
            at: stamp.at_ms,
        }
    }

    fn as_stamp(&self) -> Stamp<'_> {
        Stamp {
            origin: &self.origin,
            seq: self.seq,
            at_ms: self.at,
        }
    }
}

impl Wire {
    /// The owned form of an event worth sending to other nodes.
    pub fn from_event(event: &Event<'_>) -> Option<Wire> {
        let owned = |s: &str| s.to_string();
        Some(match *event {
            Event::Said {
                room,
                nick,
                text,
                stamp,
            } => Wire::Said {
                room: owned(room),
                nick: owned(nick),
                text: owned(text),
                stamp: WireStamp::of(&stamp),
            },
            Event::Acted {
                room,
                nick,
                text,
                stamp,
            } => Wire::Acted {
                room: owned(room),
                nick: owned(nick),
                text: owned(text),
                stamp: WireStamp::of(&stamp),
            },
            Event::Presence { room, nick, change } => {
                let (change, old) = match change {
                    Presence::Joined => ("joined", None),
                    Presence::Left => ("left", None),
                    Presence::Disconnected => ("disconnected", None),
                    Presence::Renamed(old) => ("renamed", Some(owned(old))),
                };
                Wire::Presence {
                    room: owned(room),
                    nick: owned(nick),
                    change: change.to_string(),
                    old,
                }
            }
            Event::Private {
                from,
                to,
                text,
                node,
            } => Wire::Private {
                from: owned(from),
                to: owned(to),
                text: owned(text),
                node: owned(node),
            },
            Event::NickClaimed { nick } => Wire::NickClaimed { nick: owned(nick) },
            Event::NickReleased { nick } => Wire::NickReleased { nick: owned(nick) },
            // Registrations travel as the store's changes (`Cluster::store`).
            Event::Session { .. }
            | Event::SessionDropped { .. }
            | Event::SessionRestored { .. }
            | Event::AccountSaved { .. }
            | Event::AccountRemoved { .. } => return None,
        })
    }

    /// The borrowed [`Event`] this message stands for, if it is one.
    pub fn as_event(&self) -> Option<Event<'_>> {
        Some(match self {
            Wire::Said {
                room,
                nick,
                text,
                stamp,
            } => Event::Said {
                room,
                nick,
                text,
                stamp: stamp.as_stamp(),
            },
            Wire::Acted {
                room,
                nick,
                text,
                stamp,
            } => Event::Acted {
                room,
                nick,
                text,
                stamp: stamp.as_stamp(),
            },
            Wire::Presence {
                room,
                nick,
                change,
                old,
            } => {
                let change = match (change.as_str(), old) {
                    ("joined", _) => Presence::Joined,
                    ("left", _) => Presence::Left,
                    ("disconnected", _) => Presence::Disconnected,
                    ("renamed", Some(old)) => Presence::Renamed(old),
                    _ => return None,
                };
                Event::Presence { room, nick, change }
            }
            Wire::Private {
                from,
                to,
                text,
                node,
            } => Event::Private {
                from,
                to,
                text,
                node,
            },
            Wire::NickClaimed { nick } => Event::NickClaimed { nick },
            Wire::NickReleased { nick } => Event::NickReleased { nick },
            Wire::AccountSaved { nick, account } => Event::AccountSaved {
                nick,
                display: &account.display,
                password_hash: &account.hash,
            },
            Wire::AccountRemoved { nick } => Event::AccountRemoved { nick },
            Wire::Hello
            | Wire::Roster { .. }
            | Wire::Beat
            | Wire::Bye
            | Wire::Flow { .. }
            | Wire::SessionSaved { .. }
            | Wire::SessionDropped { .. }
            | Wire::PrivateKept { .. }
            | Wire::PrivatesCleared { .. } => return None,
        })
    }
}

/// The saved-session value stored in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSession {
    /// The rooms, in join order.
    pub rooms: Vec<String>,
    /// The active room.
    pub active: String,
    /// For each room, its clock when the user left (absent while the user is online, or
    /// from a node that does not write it: then nothing is replayed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clocks: Vec<RoomClock>,
    /// When the user left, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub left_at_ms: u64,
}

impl StoredSession {
    /// What is stored of `saved`.
    pub fn of(saved: &SavedRooms) -> Self {
        Self {
            rooms: saved.rooms.clone(),
            active: saved.active.clone(),
            clocks: saved.clocks.clone(),
            left_at_ms: saved.left_at_ms,
        }
    }

    /// The session to restore.
    pub fn into_saved(self) -> SavedRooms {
        SavedRooms {
            rooms: self.rooms,
            active: self.active,
            clocks: self.clocks,
            left_at_ms: self.left_at_ms,
            // Counts are one server's own; a cluster's marks are the clocks.
            marks: Vec::new(),
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_the_wire() {
        let events = [
            Event::Said {
                room: "кухня",
                nick: "Вася",
                text: "привет \"всем\"",
                stamp: Stamp {
                    origin: "n1@1",
                    seq: 7,
                    at_ms: 1_700_000_000_000,
                },
            },
            Event::Acted {
                room: "main",
                nick: "a",
                text: "waves",
                stamp: Stamp::default(),
            },
            Event::Presence {
                room: "main",
                nick: "new",
                change: Presence::Renamed("old"),
            },
            Event::Presence {
                room: "dev",
                nick: "x",
                change: Presence::Disconnected,
            },
            Event::Private {
                from: "a",
                to: "b",
                text: "psst",
                node: "n2",
            },
            Event::NickClaimed { nick: "a" },
        ];
        for event in events {
            let wire = Wire::from_event(&event).expect("travels");
            let envelope = Envelope {
                node: "n1".into(),
                body: wire,
            };
            let json = serde_json::to_string(&envelope).expect("encodes");
            let back: Envelope = serde_json::from_str(&json).expect("decodes");
            assert_eq!(back.node, "n1");
            assert_eq!(back.body.as_event(), Some(event));
        }
    }

    #[test]
    fn local_only_events_do_not_travel() {
        let rooms = vec!["main".to_string()];
        let session = Event::Session {
            nick: "a",
            rooms: &rooms,
            active: "main",
        };
        assert!(Wire::from_event(&session).is_none());
    }

    #[test]
    fn garbage_on_the_channel_is_rejected() {
        for junk in ["", "{}", r#"{"node":"x","type":"nope"}"#, "[1,2]"] {
            assert!(serde_json::from_str::<Envelope>(junk).is_err(), "{junk}");
        }
    }
}
