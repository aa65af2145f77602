//! The seam between the chat and the world: where its lines, closes and events go.

use super::{AuthJob, Change, ClientId, Event, NickClaim};

/// Where the chat's output goes.
///
/// The poll loop implements it on top of its connections (and, in cluster mode, Redis); the
/// chat's tests implement it with a recorder.
pub trait Outbox {
    /// Queues `line` (a whole protocol line, CRLF included) for client `to`.
    fn send(&mut self, to: ClientId, line: &[u8]);
    /// Queues `line` for every client in `members` but `except`: one line for many, which an
    /// outbox can store once.
    fn send_to_all(&mut self, members: &[ClientId], except: Option<ClientId>, line: &[u8]) {
        for &member in members {
            if Some(member) != except {
                self.send(member, line);
            }
        }
    }
    /// Closes client `to` once what was queued for it has been written.
    fn close(&mut self, to: ClientId);
    /// Observes a change that other nodes of a cluster need; standalone ignores it.
    fn publish(&mut self, _event: &Event<'_>) {}
    /// Asks the shared registry whether `client` may take `nick` (only with
    /// [`super::ChatConfig::shared_registry`]); the answer comes back through
    /// [`super::Chat::finish_claim`].
    fn claim_nick(&mut self, _client: ClientId, _nick: &str, _claim: NickClaim) {}
    /// Records a change to the chat's durable state; without a store it is only in memory.
    fn store(&mut self, _change: &Change<'_>) {}
    /// Hands out a password job for client `client`; its answer comes back through
    /// [`super::Chat::finish_auth`] with the same `ticket`. False if it cannot be taken (no
    /// accounts here, or too many jobs waiting): the chat tells the client.
    fn authenticate(&mut self, _client: ClientId, _ticket: u64, _job: AuthJob) -> bool {
        false
    }
}
