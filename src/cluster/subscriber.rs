//! The subscriber thread: listens on the events channel and hands other nodes' messages to the
//! loop.

use std::time::Duration;

use log::{debug, info, warn};

use super::wire::Envelope;
use super::{
    connect, next_backoff, Incoming, Notifier, RemoteMessage, BACKOFF_MIN, EVENTS_CHANNEL,
};

/// The thread that listens on the events channel.
pub struct Subscriber {
    client: redis::Client,
    node: String,
    notify: Notifier,
}

impl Subscriber {
    /// A subscriber for node `node` (whose own messages it skips).
    pub fn new(client: redis::Client, node: String, notify: Notifier) -> Self {
        Self {
            client,
            node,
            notify,
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
                    self.notify.send(Incoming::Down);
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
        self.notify.send(Incoming::Up);
        let mut dropped: u64 = 0;
        loop {
            if self.notify.stopping() {
                return Ok(());
            }
            let message = match pubsub.get_message() {
                Ok(message) => message,
                Err(e) if e.is_timeout() => continue,
                Err(e) => return Err(e),
            };
            let Ok(envelope) = serde_json::from_slice::<Envelope>(message.get_payload_bytes())
            else {
                debug!("cluster: ignoring an undecodable message");
                continue;
            };
            // A node never delivers its own messages: it did so locally already.
            if envelope.node == self.node {
                continue;
            }
            if !self
                .notify
                .send_remote(envelope.node, RemoteMessage(envelope.body))
            {
                dropped += 1;
                if dropped.is_power_of_two() {
                    warn!(
                        "cluster: this node cannot deliver as fast as the others send; \
                         {dropped} of their messages dropped so far"
                    );
                }
            }
        }
    }
}
