//! Flow control between nodes: while any node is behind in delivering what the others publish,
//! every node paces its own clients, so that nothing has to be dropped anywhere.
//!
//! Every published room line lands in every other node's queue (one global channel), so a node
//! that fans out more slowly than the cluster publishes sees its queue of other nodes' messages
//! grow. Past [`BEHIND_MESSAGES`] (or [`BEHIND_BYTES`]) it says so on the channel (`flow`,
//! `behind: true`: the subscriber thread, the moment it sees the queue pass the mark, or else
//! the loop at the end of its turn), again every [`RENEW`] while it stays behind, and says
//! `behind: false` once
//! the queue is back under [`CAUGHT_UP_MESSAGES`] and [`CAUGHT_UP_BYTES`]: the gap between the
//! two marks keeps the node busy while the senders start again. Every node (this one included)
//! paces its clients while any such claim holds: a client whose line was published is not read
//! again until the pacing ends, so each client gets at most one cross-node line through per
//! paced spell and the rest waits in its socket, where TCP slows the sender down.
//!
//! A claim lapses [`CLAIM_TTL`] after its last renewal, so a node that dies while behind holds
//! nobody up for long; and a node is waited for at most [`PACE_LIMIT`] at a stretch: one that
//! cannot get back under its low mark by then is too slow for the cluster and is no longer
//! waited for until it has caught up (its queue then fills to its hard bound and Redis holds
//! the rest, see docs/CLUSTER.md).
//!
//! A node also paces its clients while its own publications pile up in front of its Redis
//! worker (past [`PUBLISH_HIGH`] jobs, until back under [`PUBLISH_LOW`]), so the publications
//! in flight towards a slow node stay few.
//!
//! This file is the decisions only, on instants it is given, so they can be tested without
//! Redis or a clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use log::warn;

use crate::chat::ClientId;

/// Other nodes' messages waiting for the loop past which this node asks to be waited for.
pub const BEHIND_MESSAGES: usize = 2_000;
/// The same in bytes of their encoded form.
pub const BEHIND_BYTES: usize = 2 << 20;
/// A node that asked to be waited for has caught up once its queue is back under this many
/// messages (and [`CAUGHT_UP_BYTES`]); far enough above zero that it still has work while the
/// senders' next lines come through Redis.
pub const CAUGHT_UP_MESSAGES: usize = 500;
/// The same in bytes.
pub const CAUGHT_UP_BYTES: usize = 512 << 10;
/// The hard bound: with this many messages (or [`QUEUE_BYTES`]) waiting, the subscriber stops
/// reading from Redis until the loop has taken some. Far above [`BEHIND_MESSAGES`], so that it
/// is only reached by what was in flight when the senders were told, from many nodes at once.
pub const QUEUE_MESSAGES: usize = 20_000;
/// The hard bound in bytes.
pub const QUEUE_BYTES: usize = 16 << 20;
/// Jobs waiting for this node's Redis worker past which its clients are paced.
pub const PUBLISH_HIGH: usize = 2_048;
/// Jobs waiting below which that pacing ends.
pub const PUBLISH_LOW: usize = 512;
/// How often a node that is behind says so again.
pub const RENEW: Duration = Duration::from_millis(500);
/// How long a claim holds without renewal: a few renewals may be late, a dead node's claim
/// lapses quickly.
pub const CLAIM_TTL: Duration = Duration::from_secs(2);
/// The longest a node is waited for at a stretch.
pub const PACE_LIMIT: Duration = Duration::from_secs(30);
/// While pacing for the node's own publications, how often their queue is looked at again
/// (the worker does not wake the loop when it has caught up).
const PUBLISH_RECHECK: Duration = Duration::from_millis(5);

/// How much of other nodes' traffic waits for this node's loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Messages.
    pub messages: usize,
    /// Bytes of their encoded form.
    pub bytes: usize,
}

impl Backlog {
    /// Over the high mark: the node asks to be waited for.
    pub fn over(self) -> bool {
        self.messages >= BEHIND_MESSAGES || self.bytes >= BEHIND_BYTES
    }

    /// Under the low mark: the node has caught up.
    fn under(self) -> bool {
        self.messages <= CAUGHT_UP_MESSAGES && self.bytes <= CAUGHT_UP_BYTES
    }

    /// At the hard bound: the subscriber waits before it takes more.
    pub fn full(self) -> bool {
        self.messages >= QUEUE_MESSAGES || self.bytes >= QUEUE_BYTES
    }
}

/// A node's request to be waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Claim {
    /// When it started (renewals keep it).
    since: Instant,
    /// When it lapses unless renewed.
    until: Instant,
    /// Whether the log said it is no longer waited for.
    told: bool,
}

impl Claim {
    fn new(now: Instant) -> Self {
        Self {
            since: now,
            until: now + CLAIM_TTL,
            told: false,
        }
    }

    /// When it stops being waited for: it lapsed, or it has been waited for long enough.
    fn ends(self) -> Instant {
        self.until.min(self.since + PACE_LIMIT)
    }

    fn honoured(self, now: Instant) -> bool {
        now < self.ends()
    }
}

/// Flow control's state on one node.
#[derive(Debug, Default)]
pub struct Flow {
    /// This node's own claim while its backlog is over the high mark (until it is back under
    /// the low one); never lapses, it is this node's own knowledge.
    behind_since: Option<Instant>,
    /// Whether the log said that this node is no longer waited for, in this spell.
    told_given_up: bool,
    /// When this node next tells the others it is still behind.
    next_renewal: Option<Instant>,
    /// This node's publications passed [`PUBLISH_HIGH`] and are not yet under [`PUBLISH_LOW`].
    publishing_behind: bool,
    /// Other nodes' claims, by node name.
    peers: HashMap<String, Claim>,
    /// Whether this node's clients are paced, as of the last [`Flow::update`].
    paced: bool,
    /// Clients held until the pacing ends.
    held: Vec<ClientId>,
}

impl Flow {
    /// Takes the size of this node's backlog at `now`, and whether the subscriber `warned`
    /// the others already that this node is behind (then it is, whatever the level is now).
    /// Returns what the other nodes must be told: `Some(true)` when this node falls behind
    /// and each [`RENEW`] while it stays behind, `Some(false)` once when it has caught up.
    pub fn backlog(&mut self, level: Backlog, warned: bool, now: Instant) -> Option<bool> {
        match self.behind_since {
            None if level.over() || warned => {
                self.behind_since = Some(now);
                self.next_renewal = Some(now + RENEW);
                Some(true)
            }
            Some(_) if level.under() => {
                self.behind_since = None;
                self.next_renewal = None;
                self.told_given_up = false;
                Some(false)
            }
            Some(_) if self.next_renewal.is_some_and(|at| now >= at) => {
                self.next_renewal = Some(now + RENEW);
                Some(true)
            }
            _ => None,
        }
    }

    /// Takes the number of jobs waiting for this node's Redis worker.
    pub fn publish_queue(&mut self, jobs: usize) {
        if jobs >= PUBLISH_HIGH {
            self.publishing_behind = true;
        } else if jobs <= PUBLISH_LOW {
            self.publishing_behind = false;
        }
    }

    /// Node `node` said at `now` that it is behind (`true`) or has caught up.
    pub fn peer_said(&mut self, node: &str, behind: bool, now: Instant) {
        if !behind {
            self.peers.remove(node);
            return;
        }
        match self.peers.get_mut(node) {
            // A renewal keeps the claim's start, so that it is waited for at most PACE_LIMIT.
            Some(claim) if now < claim.until => claim.until = now + CLAIM_TTL,
            _ => {
                self.peers.insert(node.to_string(), Claim::new(now));
            }
        }
    }

    /// Node `node` stopped or went silent: it is not waited for.
    pub fn forget(&mut self, node: &str) {
        self.peers.remove(node);
    }

    /// Contact with Redis is lost: the other nodes' claims can no longer be renewed or lifted.
    pub fn forget_peers(&mut self) {
        self.peers.clear();
    }

    /// Holds client `id` until the pacing ends.
    pub fn hold(&mut self, id: ClientId) {
        self.held.push(id);
    }

    /// Decides at `now` whether clients are paced; drops lapsed claims. Returns the held
    /// clients once the pacing is over, for the loop to read again.
    pub fn update(&mut self, now: Instant) -> Vec<ClientId> {
        self.peers.retain(|_, claim| now < claim.until);
        for (node, claim) in &mut self.peers {
            if !claim.honoured(now) && !std::mem::replace(&mut claim.told, true) {
                warn!(
                    "cluster: node {node} has been behind for {PACE_LIMIT:?}; no longer waiting \
                     for it (its users may miss messages)"
                );
            }
        }
        let own = self
            .behind_since
            .is_some_and(|since| now < since + PACE_LIMIT);
        if self.behind_since.is_some() && !own && !std::mem::replace(&mut self.told_given_up, true)
        {
            warn!(
                "cluster: this node has been behind for {PACE_LIMIT:?} and is no longer waited \
                 for: its users may miss other nodes' messages"
            );
        }
        self.paced =
            self.publishing_behind || own || self.peers.values().any(|claim| claim.honoured(now));
        if self.paced {
            Vec::new()
        } else {
            std::mem::take(&mut self.held)
        }
    }

    /// Whether this node's clients are paced (as of the last [`Flow::update`]).
    pub fn paced(&self) -> bool {
        self.paced
    }

    /// Whether this node asks the others to wait for it.
    pub fn behind(&self) -> bool {
        self.behind_since.is_some()
    }

    /// The next instant at which [`Flow::backlog`] or [`Flow::update`] may decide otherwise
    /// without news: a renewal due, a claim lapsing or waited for long enough, the
    /// publications' queue to look at again.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        // Once past, the limit is no deadline any more (the loop would spin on it).
        let own_limit = self
            .behind_since
            .map(|since| since + PACE_LIMIT)
            .filter(|&at| at > now);
        let peers = self
            .peers
            .values()
            .map(|claim| {
                if claim.honoured(now) {
                    claim.ends()
                } else {
                    claim.until
                }
            })
            .min();
        let recheck = self.publishing_behind.then(|| now + PUBLISH_RECHECK);
        [self.next_renewal, own_limit, peers, recheck]
            .into_iter()
            .flatten()
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn level(messages: usize) -> Backlog {
        Backlog {
            messages,
            bytes: messages * 200,
        }
    }

    #[test]
    fn a_node_says_it_is_behind_renews_and_says_it_caught_up_with_hysteresis() {
        let mut flow = Flow::default();
        let t0 = Instant::now();
        assert_eq!(flow.backlog(level(BEHIND_MESSAGES - 1), false, t0), None);
        assert_eq!(flow.backlog(level(BEHIND_MESSAGES), false, t0), Some(true));
        assert!(flow.behind());
        // Between the marks nothing changes, but the claim is renewed on time.
        assert_eq!(flow.backlog(level(1_000), false, t0 + 10 * MS), None);
        assert_eq!(flow.next_deadline(t0 + 10 * MS), Some(t0 + RENEW));
        assert_eq!(flow.backlog(level(1_000), false, t0 + RENEW), Some(true));
        assert_eq!(
            flow.backlog(level(CAUGHT_UP_MESSAGES + 1), false, t0 + RENEW),
            None
        );
        assert_eq!(
            flow.backlog(level(CAUGHT_UP_MESSAGES), false, t0 + RENEW),
            Some(false)
        );
        assert!(!flow.behind());
        assert_eq!(flow.backlog(level(1_000), false, t0 + RENEW * 3), None);
    }

    #[test]
    fn a_warning_from_the_subscriber_makes_the_node_behind_until_it_caught_up() {
        let mut flow = Flow::default();
        let t0 = Instant::now();
        // The queue passed the high mark during the turn and the loop took much of it since.
        assert_eq!(flow.backlog(level(1_000), true, t0), Some(true));
        assert!(flow.behind());
        assert_eq!(flow.backlog(level(1_000), true, t0 + MS), None);
        assert_eq!(
            flow.backlog(level(CAUGHT_UP_MESSAGES), true, t0 + 2 * MS),
            Some(false),
            "caught up, and the others are told"
        );
    }

    #[test]
    fn bytes_count_as_much_as_messages() {
        let mut flow = Flow::default();
        let t0 = Instant::now();
        let big = Backlog {
            messages: 10,
            bytes: BEHIND_BYTES,
        };
        assert_eq!(flow.backlog(big, false, t0), Some(true));
        let still = Backlog {
            messages: 0,
            bytes: CAUGHT_UP_BYTES + 1,
        };
        assert_eq!(flow.backlog(still, false, t0), None);
        assert!(Backlog {
            messages: 1,
            bytes: QUEUE_BYTES
        }
        .full());
        assert!(level(QUEUE_MESSAGES).full());
        assert!(!level(QUEUE_MESSAGES - 1).full());
    }

    #[test]
    fn a_node_that_is_behind_paces_its_own_clients_and_releases_them_when_caught_up() {
        let mut flow = Flow::default();
        let t0 = Instant::now();
        flow.backlog(level(BEHIND_MESSAGES), false, t0);
        assert!(flow.update(t0).is_empty());
        assert!(flow.paced());
        flow.hold(ClientId::new(3));
        flow.hold(ClientId::new(5));
        assert!(
            flow.update(t0 + MS).is_empty(),
            "still paced: nobody released"
        );
        flow.backlog(level(0), false, t0 + 2 * MS);
        assert_eq!(
            flow.update(t0 + 2 * MS),
            vec![ClientId::new(3), ClientId::new(5)]
        );
        assert!(!flow.paced());
        assert!(flow.update(t0 + 3 * MS).is_empty(), "released once");
    }

    #[test]
    fn another_node_paces_until_it_caught_up_or_its_claim_lapses() {
        let mut flow = Flow::default();
        let t0 = Instant::now();
        flow.peer_said("b", true, t0);
        flow.update(t0);
        assert!(flow.paced());
        flow.peer_said("b", false, t0 + MS);
        flow.update(t0 + MS);
        assert!(!flow.paced(), "caught up");

        // A node that dies while behind stops renewing: its claim lapses after CLAIM_TTL.
        flow.peer_said("c", true, t0);
        flow.update(t0 + CLAIM_TTL - MS);
        assert!(flow.paced());
        assert_eq!(flow.next_deadline(t0 + MS), Some(t0 + CLAIM_TTL));
        flow.update(t0 + CLAIM_TTL);
        assert!(!flow.paced(), "lapsed");

        // Renewed in time, it holds on.
        flow.peer_said("c", true, t0);
        flow.peer_said("c", true, t0 + CLAIM_TTL - MS);
        flow.update(t0 + CLAIM_TTL + MS);
        assert!(flow.paced());
    }

    #[test]
    fn a_node_is_waited_for_at_most_the_pace_limit_at_a_stretch() {
        let mut flow = Flow::default();
        let t0 = Instant::now();
        let mut t = t0;
        while t < t0 + PACE_LIMIT {
            flow.peer_said("slow", true, t);
            flow.update(t);
            assert!(flow.paced(), "waited for at {:?}", t - t0);
            t += RENEW;
        }
        flow.peer_said("slow", true, t);
        flow.update(t);
        assert!(!flow.paced(), "no longer waited for, though it renews");
        // Once it has caught up, it is waited for again the next time.
        flow.peer_said("slow", false, t);
        flow.peer_said("slow", true, t + MS);
        flow.update(t + MS);
        assert!(flow.paced());

        // The same holds for this node's own claim.
        let mut own = Flow::default();
        own.backlog(level(BEHIND_MESSAGES), false, t0);
        own.update(t0 + PACE_LIMIT - MS);
        assert!(own.paced());
        own.update(t0 + PACE_LIMIT);
        assert!(!own.paced());
        assert!(own.behind(), "it still tells the others");
    }

    #[test]
    fn stopped_silent_or_unreachable_nodes_are_not_waited_for() {
        let mut flow = Flow::default();
        let t0 = Instant::now();
        flow.peer_said("b", true, t0);
        flow.peer_said("c", true, t0);
        flow.forget("b");
        flow.update(t0);
        assert!(flow.paced(), "c still behind");
        flow.forget_peers();
        flow.update(t0);
        assert!(!flow.paced());
    }

    #[test]
    fn pacing_for_own_publications_has_hysteresis_and_rechecks() {
        let mut flow = Flow::default();
        let t0 = Instant::now();
        flow.publish_queue(PUBLISH_HIGH - 1);
        flow.update(t0);
        assert!(!flow.paced());
        flow.publish_queue(PUBLISH_HIGH);
        flow.update(t0);
        assert!(flow.paced());
        assert_eq!(flow.next_deadline(t0), Some(t0 + PUBLISH_RECHECK));
        flow.publish_queue(PUBLISH_LOW + 1);
        flow.update(t0);
        assert!(flow.paced(), "not yet under the low mark");
        flow.publish_queue(PUBLISH_LOW);
        flow.update(t0);
        assert!(!flow.paced());
        assert_eq!(flow.next_deadline(t0), None, "nothing to wait for");
    }
}
