//! The messages nodes exchange on the events channel, and the stored session format.

use serde::{Deserialize, Serialize};

use crate::chat::{Event, Presence};

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
    },
    Acted {
        room: String,
        nick: String,
        text: String,
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
    },
    NickClaimed {
        nick: String,
    },
    NickReleased {
        nick: String,
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

impl Wire {
    /// The owned form of an event worth sending to other nodes.
    pub fn from_event(event: &Event<'_>) -> Option<Wire> {
        let owned = |s: &str| s.to_string();
        Some(match *event {
            Event::Said { room, nick, text } => Wire::Said {
                room: owned(room),
                nick: owned(nick),
                text: owned(text),
            },
            Event::Acted { room, nick, text } => Wire::Acted {
                room: owned(room),
                nick: owned(nick),
                text: owned(text),
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
            Event::Private { from, to, text } => Wire::Private {
                from: owned(from),
                to: owned(to),
                text: owned(text),
            },
            Event::NickClaimed { nick } => Wire::NickClaimed { nick: owned(nick) },
            Event::NickReleased { nick } => Wire::NickReleased { nick: owned(nick) },
            Event::Session { .. }
            | Event::SessionDropped { .. }
            | Event::SessionRestored { .. } => return None,
        })
    }

    /// The borrowed [`Event`] this message stands for, if it is one.
    pub fn as_event(&self) -> Option<Event<'_>> {
        Some(match self {
            Wire::Said { room, nick, text } => Event::Said { room, nick, text },
            Wire::Acted { room, nick, text } => Event::Acted { room, nick, text },
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
            Wire::Private { from, to, text } => Event::Private { from, to, text },
            Wire::NickClaimed { nick } => Event::NickClaimed { nick },
            Wire::NickReleased { nick } => Event::NickReleased { nick },
            Wire::Hello | Wire::Roster { .. } | Wire::Beat | Wire::Bye | Wire::Flow { .. } => {
                return None
            }
        })
    }
}

/// The saved-session value stored in Redis.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredSession {
    /// The rooms, in join order.
    pub rooms: Vec<String>,
    /// The active room.
    pub active: String,
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
            },
            Event::Acted {
                room: "main",
                nick: "a",
                text: "waves",
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
