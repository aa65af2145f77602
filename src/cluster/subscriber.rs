//! The subscriber thread: listens on the events channel and hands other nodes' messages to the
//! loop.

use std::sync::mpsc::SyncSender;
use std::time::Duration;

use log::{debug, info, warn};

use super::job::Job;
use super::notifier::Notifier;
use super::wire::{Envelope, Wire};
use super::{connect, next_backoff, Incoming, RemoteMessage, BACKOFF_MIN, EVENTS_CHANNEL};

/// The thread that listens on the events channel.
pub struct Subscriber {
    client: redis::Client,
    node: String,
    notify: Notifier,
    /// The worker's queue, for the early warning.
    jobs: SyncSender<Job>,
    /// This node's `flow` message saying it is behind, encoded once.
    warning: String,
}

impl Subscriber {
    /// A subscriber for node `node` (whose own messages it skips), which warns the other
    /// nodes through the worker's queue `jobs` when this node falls behind.
    pub fn new(
        client: redis::Client,
        node: String,
        notify: Notifier,
        jobs: SyncSender<Job>,
    ) -> Result<Self, String> {
        let warning = serde_json::to_string(&Envelope {
            node: node.clone(),
            body: Wire::Flow { behind: true },
        })
        .map_err(|e| format!("cannot encode a flow message: {e}"))?;
        Ok(Self {
            client,
            node,
            notify,
            jobs,
            warning,
        })
    }

    /// Tells the other nodes at once that this node is behind: the loop would only notice at
    /// the end of its turn, and while it fans out a backlog a turn is long enough for the
    /// senders to add thousands of messages. If the worker's queue is full, the loop tells
    /// them instead.
    fn warn_early(&self) {
        let levels = self.notify.levels();
        levels.job_queued();
        if self
            .jobs
            .try_send(Job::Publish(self.warning.clone()))
            .is_err()
        {
            levels.jobs_taken(1);
        }
    }

    /// Listens (reconnecting as needed) until the cluster stops.
    pub fn run(self) {
        let mut backoff = BACKOFF_MIN;
        let mut warned = false;
        while !self.notify.stopping() {
            let mut subscribed = false;
            match self.listen(&mut subscribed) {
                Ok(()) => return,
                Err(e) => {
                    if subscribed {
                        backoff = BACKOFF_MIN;
                        warned = false;
                    }
                    if !warned {
                        warn!("cluster: lost Redis ({e}); local rooms keep working, retrying");
                        warned = true;
                    }
                    self.notify.send_status(Incoming::Down);
                }
            }
            if self.notify.pause(backoff) {
                return;
            }
            backoff = next_backoff(backoff);
        }
    }

    /// Subscribes and delivers messages until the connection fails (Err) or a stop (Ok).
    fn listen(&self, subscribed: &mut bool) -> redis::RedisResult<()> {
        let mut connection = connect(&self.client)?;
        let mut pubsub = connection.as_pubsub();
        pubsub.subscribe(EVENTS_CHANNEL)?;
        pubsub.set_read_timeout(Some(Duration::from_millis(250)))?;
        info!("cluster: subscribed to {EVENTS_CHANNEL}");
        *subscribed = true;
        self.notify.send_status(Incoming::Up);
        loop {
            if self.notify.stopping() {
                return Ok(());
            }
            let message = match pubsub.get_message() {
                Ok(message) => message,
                Err(e) if e.is_timeout() => continue,
                Err(e) => return Err(e),
            };
            let payload = message.get_payload_bytes();
            let Ok(envelope) = serde_json::from_slice::<Envelope>(payload) else {
                debug!("cluster: ignoring an undecodable message");
                continue;
            };
            // A node never delivers its own messages: it did so locally already.
            if envelope.node == self.node {
                continue;
            }
            let (node, bytes) = (envelope.node, payload.len());
            match envelope.body {
                // Flow control goes straight to the loop, never behind a backlog it is about.
                Wire::Flow { behind } => self.notify.send_control(Incoming::Flow { node, behind }),
                body => {
                    // Waits while the loop's queue is at its bound; Redis keeps what follows.
                    if !self.notify.send_remote(node, RemoteMessage(body), bytes) {
                        return Ok(());
                    }
                    if self.notify.should_warn() {
                        self.warn_early();
                    }
                }
            }
        }
    }
}
