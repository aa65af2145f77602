//! Cluster mode in the loop: what the Redis threads reported, carried out on the chat.

use std::time::Instant;

use log::info;

use super::Server;
use crate::cluster::Action;

impl Server {
    /// Applies what the Redis threads reported, and the cluster's heartbeat.
    pub(super) fn take_cluster_news(&mut self, now: Instant) {
        let Some(cluster) = self.delivery.cluster.as_mut() else {
            return;
        };
        let mut actions = cluster.drain(now);
        if now >= cluster.next_tick() {
            actions.extend(cluster.tick(now).into_iter().map(Action::ForgetNode));
        }
        for action in actions {
            self.apply_cluster_action(action, now);
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
        }
    }
}
