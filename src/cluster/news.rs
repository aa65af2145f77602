//! What the helper threads tell the loop, and how the loop takes it: claim answers and flow
//! control every turn, other nodes' messages one at a time, a turn's worth ([`TurnBudget`]).

use std::time::Instant;

use super::kept::RemoteChange;
use super::wire::Wire;
use super::Cluster;
use crate::chat::{ClaimOutcome, ClientId, Event};

/// Other nodes' messages one loop turn takes at most.
const MESSAGES_PER_TURN: usize = 1024;
/// Their bytes (on the wire) one loop turn takes at most: what one member of a room can get
/// from them in a turn, so a backlog never piles up near `--sendq` in a single turn.
const BYTES_PER_TURN: usize = 128 << 10;

/// How much of other nodes' traffic is left for this turn: the loop takes a turn's worth, so
/// that a backlog never becomes one huge turn, yet each member's write carries many lines.
#[derive(Debug)]
pub struct TurnBudget {
    messages: usize,
    bytes: usize,
}

impl Default for TurnBudget {
    fn default() -> Self {
        Self {
            messages: MESSAGES_PER_TURN,
            bytes: BYTES_PER_TURN,
        }
    }
}

/// What the helper threads tell the loop.
#[derive(Debug)]
pub enum Incoming {
    /// Another node's message.
    Remote {
        /// The sending node.
        node: String,
        /// Its message.
        message: RemoteMessage,
        /// Its size on the wire.
        bytes: usize,
    },
    /// Another node is behind in delivering (`true`) or has caught up.
    Flow {
        /// The node.
        node: String,
        /// Whether it asks to be waited for.
        behind: bool,
    },
    /// The answer to a nick claim.
    Claimed {
        /// The client that asked.
        client: ClientId,
        /// The nick it asked for.
        nick: String,
        /// The registry's answer.
        outcome: ClaimOutcome,
    },
    /// The subscriber is connected: cross-node delivery works.
    Up,
    /// The subscriber lost Redis: cross-node delivery is paused.
    Down,
}

/// A message from another node, decoded.
#[derive(Debug)]
pub struct RemoteMessage(pub(super) Wire);

/// What the loop should do about a message from the helper threads.
pub enum Action {
    /// Hand this event from `node` to the chat.
    Deliver(String, RemoteMessage),
    /// Complete a nick claim.
    FinishClaim(ClientId, String, ClaimOutcome),
    /// Replace `node`'s roster.
    Roster(String, Vec<(String, Vec<String>)>),
    /// Forget `node`'s users.
    ForgetNode(String),
    /// Contact restored (not the first time): tell users, re-register nicks, swap rosters.
    Restored,
    /// Contact established for the first time: register, swap rosters quietly.
    Connected,
    /// Contact lost: tell users, forget remote users.
    Lost,
    /// Another node asks for rosters.
    SendRoster,
    /// Take in another node's change to what is kept for users who are away.
    Change(RemoteChange),
}

impl RemoteMessage {
    /// The chat event this message carries, if it carries one.
    pub fn event(&self) -> Option<Event<'_>> {
        self.0.as_event()
    }
}

impl Cluster {
    /// Takes the news that cannot wait behind other nodes' messages: claim answers, and
    /// other nodes' flow control. Called every turn.
    pub fn drain_control(&mut self, now: Instant) -> Vec<Action> {
        self.outgoing.retry();
        self.levels.clear_peer_behind();
        let control: Vec<Incoming> = self.control.try_iter().collect();
        control
            .into_iter()
            .filter_map(|incoming| self.action(incoming, now))
            .collect()
    }

    /// The next of other nodes' messages (or a change of contact) for the loop, if one is
    /// waiting and `budget` is not spent; the rest wait for the next turn.
    pub fn next_news(&mut self, now: Instant, budget: &mut TurnBudget) -> Option<Action> {
        loop {
            if budget.messages == 0 || budget.bytes == 0 {
                return None;
            }
            let incoming = match self.early.pop_front() {
                Some(incoming) => incoming,
                None => self.incoming.try_recv().ok()?,
            };
            if let Incoming::Remote { bytes, .. } = &incoming {
                budget.messages -= 1;
                budget.bytes = budget.bytes.saturating_sub(*bytes);
            }
            if let Some(action) = self.action(incoming, now) {
                return Some(action);
            }
        }
    }

    /// What the loop should do about `incoming` (from either channel), if anything.
    fn action(&mut self, incoming: Incoming, now: Instant) -> Option<Action> {
        match incoming {
            Incoming::Remote {
                node,
                message,
                bytes,
            } => {
                self.levels.remote_taken(bytes);
                let known = self.last_heard.insert(node.clone(), now).is_some();
                match message.0 {
                    Wire::Hello => Some(Action::SendRoster),
                    Wire::Roster { rooms } => Some(Action::Roster(node, rooms)),
                    Wire::Bye => {
                        self.last_heard.remove(&node);
                        self.flow.forget(&node);
                        Some(Action::ForgetNode(node))
                    }
                    // A node we had not heard of (or had given up on): it missed our roster,
                    // and we have none of its users.
                    Wire::Beat if !known => {
                        self.broadcast(Wire::Hello);
                        Some(Action::SendRoster)
                    }
                    Wire::Beat | Wire::Flow { .. } => None,
                    Wire::SessionSaved { nick, session } => Some(Action::Change(
                        RemoteChange::SessionSaved(nick, session.into_saved()),
                    )),
                    Wire::SessionDropped { nick } => {
                        Some(Action::Change(RemoteChange::SessionDropped(nick)))
                    }
                    Wire::PrivateKept { to, message } => Some(Action::Change(
                        RemoteChange::PrivateKept(to, message.into_kept()),
                    )),
                    Wire::PrivatesCleared { to } => {
                        Some(Action::Change(RemoteChange::PrivatesCleared(to)))
                    }
                    wire => Some(Action::Deliver(node, RemoteMessage(wire))),
                }
            }
            Incoming::Up => {
                self.up = true;
                let first = !self.ever_up;
                self.ever_up = true;
                Some(if first {
                    Action::Connected
                } else {
                    Action::Restored
                })
            }
            Incoming::Down => {
                let was_up = std::mem::replace(&mut self.up, false);
                self.last_heard.clear();
                // Their claims can be neither renewed nor lifted through a lost subscription.
                self.flow.forget_peers();
                was_up.then_some(Action::Lost)
            }
            Incoming::Claimed {
                client,
                nick,
                outcome,
            } => Some(Action::FinishClaim(client, nick, outcome)),
            Incoming::Flow { node, behind } => {
                self.flow.peer_said(&node, behind, now);
                None
            }
        }
    }
}
