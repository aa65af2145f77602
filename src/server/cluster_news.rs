//! Cluster mode in the loop: what the Redis threads reported, carried out on the chat, and
//! the clients held while the cluster is behind (flow control, `src/cluster/flow.rs`).
//!
//! Other nodes' messages are taken a turn's worth at a time: within a [`TurnBudget`], and
//! while the turn's output is under its limit (`Delivery::turn_full`), as for clients' lines (so a node fans
//! out another node's lines in batches no bigger than its own clients' ones). The rest wait
//! for the next turn (which comes at once), so a backlog never becomes one huge turn that
//! would fill every member's output buffer; while it lasts the cluster paces its senders.

use std::time::Instant;

use log::info;

use super::Server;
use crate::cluster::{Action, TurnBudget};

impl Server {
    /// Applies what the Redis threads reported, and the cluster's heartbeat; reads the clients
    /// held for pacing again once it is over.
    pub(super) fn take_cluster_news(&mut self, now: Instant) {
        let Some(cluster) = self.delivery.cluster.as_mut() else {
            return;
        };
        let mut actions = cluster.drain_control(now);
        if now >= cluster.next_tick() {
            actions.extend(cluster.tick(now).into_iter().map(Action::ForgetNode));
        }
        for action in actions {
            self.apply_cluster_action(action, now);
        }
        let mut budget = TurnBudget::default();
        while !self.delivery.turn_full() {
            let Some(action) = self
                .delivery
                .cluster
                .as_mut()
                .and_then(|cluster| cluster.next_news(now, &mut budget))
            else {
                break;
            };
            self.apply_cluster_action(action, now);
        }
        // Logins waiting for messages their users saw on another node go ahead once those
        // arrived.
        self.chat.catch_up(now, &mut self.delivery);
        let Some(cluster) = self.delivery.cluster.as_mut() else {
            return;
        };
        for id in cluster.end_turn(now) {
            if let Some(conn) = self.delivery.get_mut(id) {
                if std::mem::take(&mut conn.waiting_for_cluster) {
                    self.unfinished_reads.push(id);
                }
            }
        }
    }

    /// Carries out one piece of cluster news on the chat.
    fn apply_cluster_action(&mut self, action: Action, now: Instant) {
        let (chat, out) = (&mut self.chat, &mut self.delivery);
        match action {
            Action::Deliver(node, message) => {
                out.metrics.cluster_received += 1;
                if let Some(event) = message.event() {
                    chat.deliver_remote(&node, &event, now, out);
                }
            }
            Action::FinishClaim(client, nick, outcome) => {
                chat.finish_claim(client, &nick, outcome, now, out);
                // Its input may have been held while the claim was pending.
                self.resume_if_chat_wants(client);
            }
            Action::Roster(node, rooms) => chat.replace_remote_roster(&node, &rooms),
            Action::ForgetNode(node) => chat.forget_node(&node, out),
            Action::SendRoster => {
                let roster = chat.local_roster();
                if let Some(cluster) = out.cluster.as_mut() {
                    cluster.send_roster(roster);
                }
            }
            Action::Connected | Action::Restored => {
                if matches!(action, Action::Restored) {
                    info!("cluster: Redis is back; cross-node delivery restored");
                    chat.cluster_status(true, out);
                }
                chat.republish_sessions(out);
                let (nicks, roster) = (chat.local_nicks(), chat.local_roster());
                if let Some(cluster) = out.cluster.as_mut() {
                    cluster.rejoin(nicks);
                    cluster.send_roster(roster);
                }
            }
            Action::Lost => chat.cluster_status(false, out),
            Action::Change(change) => chat.apply_remote_change(&change.as_change(), now),
        }
    }
}
