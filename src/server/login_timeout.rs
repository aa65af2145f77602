//! `--login-timeout`: a connection that has not set a nick in time is told so and closed, so
//! connections that never log in (forgotten terminals, half-open probes, a slow-loris attack)
//! cannot hold places for ever.
//!
//! Every connection gets one entry in a queue at accept; the timeout is the same for all, so
//! the queue is in deadline order and each turn looks only at its front: cheap with tens of
//! thousands of connections, and nothing is done for the ones that logged in but an entry
//! skipped when its time comes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::debug;

use super::connection::State;
use super::metrics::Disconnect;
use super::Server;
use crate::chat::{messages, ClientId, Outbox};

/// The connections that must have a nick by a deadline, oldest first.
pub(super) struct LoginDeadlines {
    /// `None`: no timeout.
    timeout: Option<Duration>,
    /// When each connection must have a nick, with its peer (slab keys are reused).
    queue: VecDeque<(Instant, ClientId, SocketAddr)>,
    /// `! login timeout: ...`, worded once.
    line: Vec<u8>,
}

impl LoginDeadlines {
    /// Connections must set a nick within `seconds` (0: no limit).
    pub(super) fn new(seconds: u64) -> Self {
        let mut line = Vec::new();
        messages::login_timeout(&mut line, seconds);
        Self {
            timeout: (seconds > 0).then(|| Duration::from_secs(seconds)),
            queue: VecDeque::new(),
            line,
        }
    }

    /// A connection from `peer` was accepted at `now`.
    pub(super) fn start(&mut self, id: ClientId, peer: SocketAddr, now: Instant) {
        // A timeout too long to add to a clock reading is no timeout.
        if let Some(deadline) = self.timeout.and_then(|t| now.checked_add(t)) {
            self.queue.push_back((deadline, id, peer));
        }
    }

    /// The earliest deadline.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.queue.front().map(|&(deadline, _, _)| deadline)
    }

    /// The next connection whose deadline has passed by `now`, with its peer.
    fn next_due(&mut self, now: Instant) -> Option<(ClientId, SocketAddr)> {
        match self.queue.front() {
            Some(&(deadline, id, peer)) if deadline <= now => {
                self.queue.pop_front();
                Some((id, peer))
            }
            _ => None,
        }
    }
}

impl Server {
    /// Tells the connections whose time to log in is up and still have no nick, and closes
    /// them (after the line is written).
    pub(super) fn expire_logins(&mut self, now: Instant) {
        while let Some((id, peer)) = self.logins.next_due(now) {
            let same_connection = self
                .delivery
                .get_mut(id)
                .is_some_and(|c| c.peer == peer && c.state == State::Open);
            if !same_connection || self.chat.has_nick(id) {
                continue;
            }
            debug!("client {} ({peer}): no nick in time; closing", id.index());
            self.delivery.send(id, &self.logins.line);
            self.delivery.close_for(id, Disconnect::LoginTimeout);
            self.chat.disconnect(id, now, &mut self.delivery);
        }
    }
}
