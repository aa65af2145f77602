//! Cluster mode: the adapter between the chat and a Redis server shared by several nodes.
//!
//! Redis is used as it is: one pub/sub channel carries every node's events, and keys hold the
//! nick registry (`chat:nick:{nick}`, owned by a node, with a TTL the owner keeps refreshing) and
//! the saved sessions (`chat:session:{nick}`). See docs/CLUSTER.md for the layout and the
//! failure modes.
//!
//! The poll loop never blocks on Redis: two helper threads own the Redis connections, using the
//! blocking `redis` client. The *worker* takes jobs (publish, claim a nick, save a session) from a
//! bounded channel; the *subscriber* listens on the events channel. Both hand their results to
//! the loop through a channel and wake it with its `mio::Waker`. If Redis goes away, jobs that
//! cannot wait are answered locally (a nick claim is granted if no local client holds the nick),
//! publishing pauses, and both threads reconnect with backoff; when they are back the loop
//! re-registers its nicks and swaps rosters with the other nodes.
//!
//! Nothing crossing nodes is dropped for want of speed: while any node is behind in delivering
//! the others' messages, every node paces its clients (`flow.rs`); the loop takes other nodes'
//! messages a turn's worth at a time from a queue with a hard bound (`notifier.rs`), and hands
//! jobs to the worker without blocking, holding back what does not fit (`outgoing.rs`).

mod accounts;
mod flow;
mod history;
mod job;
mod kept;
mod keys;
mod news;
mod notifier;
mod outgoing;
mod scripts;
mod subscriber;
mod wire;
mod worker;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::Waker;

use crate::chat::{Change, ClientId, Event, HistoryLimits, NickClaim, RoomMessage, Snapshot};
use crate::server::AccountWriter;

use accounts::StoredAccount;
use flow::Flow;
use job::Job;
use kept::StoredPrivate;
use keys::{
    history_key, nick_key, privates_key, scan_keys, session_key, HISTORY_PREFIX, PRIVATES_PREFIX,
    SESSION_PREFIX,
};
pub use news::{Action, Incoming, RemoteMessage, TurnBudget};
use notifier::{Levels, Notifier};
use outgoing::Outgoing;
use subscriber::Subscriber;
use wire::{Envelope, StoredSession, Wire};
use worker::Worker;

/// The pub/sub channel every node publishes to and listens on.
pub const EVENTS_CHANNEL: &str = "chat:events";
/// A nick's registry entry lives this long unless its node refreshes it.
pub const NICK_TTL: Duration = Duration::from_secs(30);
/// How often a node refreshes its nicks and tells the others it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A node not heard from for this long is taken for dead and its users forgotten.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(20);
/// Jobs queued for the worker at most; past it, jobs wait in the loop (`outgoing.rs`).
const JOB_QUEUE: usize = 65_536;
/// How long a stopping node waits at most for its last jobs (its nick releases among them) to
/// reach the worker, which sends everything queued before it exits.
const STOP_WAIT: Duration = Duration::from_secs(2);
/// Reconnection backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long one Redis call may take before the connection is considered broken.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// The loop's handle on cluster mode.
pub struct Cluster {
    node: String,
    /// This node incarnation's name in the origins of its room messages.
    origin: String,
    /// For loading the rooms' history at start.
    client: redis::Client,
    /// The rooms' history bounds.
    history: HistoryLimits,
    /// Jobs for the worker.
    outgoing: Outgoing,
    /// Other nodes' messages, and the subscription going up and down, in order.
    incoming: Receiver<Incoming>,
    /// Claim answers and flow-control news, taken every turn.
    control: Receiver<Incoming>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// When each other node was last heard from.
    last_heard: HashMap<String, Instant>,
    /// Whether the subscriber is connected (as far as the loop has been told).
    up: bool,
    /// Whether the subscriber was ever connected (the first `Up` is no news to users).
    ever_up: bool,
    next_beat: Instant,
    /// News taken while waiting for the first subscription, handed out first.
    early: VecDeque<Incoming>,
    /// Shared with the helper threads: the queues' levels.
    levels: Arc<Levels>,
    /// Flow control: who is behind, and whether this node's clients are paced.
    flow: Flow,
}

/// Cluster mode's state for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct ClusterGauges {
    /// Whether this node is in contact with Redis.
    pub up: bool,
    /// Other nodes' messages waiting for this node's loop.
    pub backlog: usize,
    /// Whether this node asks the others to wait for it.
    pub behind: bool,
    /// Whether this node paces its clients.
    pub paced: bool,
    /// Publications and session writes dropped so far.
    pub dropped: u64,
}

impl Cluster {
    /// Starts the helper threads for node `node` against the Redis at `url`.
    ///
    /// Fails only if the URL is malformed; an unreachable Redis is retried in the background.
    pub fn start(
        url: &str,
        node: String,
        session_ttl: Duration,
        history: HistoryLimits,
        waker: Arc<Waker>,
    ) -> Result<Cluster, String> {
        let client = redis::Client::open(url).map_err(|e| format!("bad Redis URL {url}: {e}"))?;
        let client_for_loading = client.clone();
        let (jobs, job_queue) = mpsc::sync_channel(JOB_QUEUE);
        let (data, incoming) = mpsc::channel();
        let (control_sender, control) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let levels = Arc::new(Levels::default());
        let notify = Notifier::new(
            data,
            control_sender,
            waker,
            Arc::clone(&stop),
            Arc::clone(&levels),
        );
        let worker = Worker::new(
            client.clone(),
            node.clone(),
            session_ttl,
            history,
            notify.clone(),
        );
        let subscriber = Subscriber::new(client, node.clone(), notify, jobs.clone())?;
        let threads = vec![
            spawn("chat-redis-worker", move || worker.run(job_queue))?,
            spawn("chat-redis-subscriber", move || subscriber.run())?,
        ];
        let started_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Ok(Cluster {
            origin: format!("{node}@{started_ms}"),
            client: client_for_loading,
            history,
            node,
            outgoing: Outgoing::new(jobs, Arc::clone(&levels)),
            incoming,
            control,
            stop,
            threads,
            last_heard: HashMap::new(),
            up: false,
            ever_up: false,
            next_beat: Instant::now(),
            early: VecDeque::new(),
            levels,
            flow: Flow::default(),
        })
    }

    /// Waits, at most `limit`, until the node listens on the events channel, so that clients
    /// it accepts afterwards see everything the other nodes say. Returns whether it does.
    pub fn wait_until_subscribed(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(incoming) = self.incoming.recv_timeout(left) else {
                return false;
            };
            let up = matches!(incoming, Incoming::Up);
            self.early.push_back(incoming);
            if up {
                return true;
            }
        }
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// This node incarnation's name in the origins of its room messages: the node's name and
    /// its start time, so that a restarted node numbers its messages afresh.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Reads what the cluster keeps for every node: each room's history from its stream, the
    /// registered nicks, the sessions of users who are away and what was kept for them (at start, before serving; blocking, each call bounded by the
    /// I/O timeout).
    pub fn load_state(&self) -> redis::RedisResult<Snapshot> {
        let mut con = connect(&self.client)?;
        let mut snapshot = history::load(&mut con, self.history.per_room)?;
        snapshot.accounts = accounts::load(&mut con)?;
        snapshot.sessions = kept::load_sessions(&mut con)?;
        snapshot.privates = kept::load_privates(&mut con)?;
        Ok(snapshot)
    }

    /// Where the password worker writes registrations before the user is told.
    pub fn account_writer(&self) -> Box<dyn AccountWriter> {
        Box::new(accounts::RedisAccounts::new(self.client.clone()))
    }

    /// Records a change of the chat's durable state in Redis and tells the other nodes: the
    /// session of a user who left (with the marks a replay needs on whichever node they come
    /// back to), private messages kept for them, and registrations (already in Redis: the
    /// password worker wrote them). Room messages reach their streams with their publication.
    pub fn store(&mut self, change: &Change<'_>) {
        match *change {
            Change::SessionSaved { nick, session } => {
                let stored = StoredSession::of(session);
                self.save_session(nick, &stored);
                self.broadcast(Wire::SessionSaved {
                    nick: nick.to_string(),
                    session: stored,
                });
            }
            // Redis expires its copy with the TTL; the other nodes drop theirs now.
            Change::SessionDropped { nick } => self.broadcast(Wire::SessionDropped {
                nick: nick.to_string(),
            }),
            Change::PrivateKept { to, message } => {
                let stored = StoredPrivate::of(message);
                match serde_json::to_string(&stored) {
                    Ok(value) => self.outgoing.submit(Job::KeepPrivate {
                        to: to.to_string(),
                        value,
                    }),
                    Err(e) => warn!("could not encode a kept message: {e}"),
                }
                self.broadcast(Wire::PrivateKept {
                    to: to.to_string(),
                    message: stored,
                });
            }
            Change::PrivatesCleared { to } => {
                self.outgoing.submit(Job::ClearPrivates(to.to_string()));
                self.broadcast(Wire::PrivatesCleared { to: to.to_string() });
            }
            // Already in Redis (the password worker wrote it first); the other nodes learn it.
            Change::AccountSaved { nick, account } => self.broadcast(Wire::AccountSaved {
                nick: nick.to_string(),
                account: StoredAccount::of(account),
            }),
            Change::AccountRemoved { nick } => self.broadcast(Wire::AccountRemoved {
                nick: nick.to_string(),
            }),
            _ => {}
        }
    }

    fn save_session(&mut self, nick: &str, session: &StoredSession) {
        match serde_json::to_string(session) {
            Ok(value) => self.outgoing.submit(Job::SaveSession {
                nick: nick.to_string(),
                value,
            }),
            Err(e) => warn!("could not encode a session: {e}"),
        }
    }

    /// Forwards a chat event: publishes what other nodes show, stores sessions, frees nicks.
    pub fn publish(&mut self, event: &Event<'_>) {
        if let Some(message) = event.room_message() {
            self.post(event, &message);
            return;
        }
        match *event {
            Event::Session {
                nick,
                rooms,
                active,
            } => {
                let stored = StoredSession {
                    rooms: rooms.to_vec(),
                    active: active.to_string(),
                    clocks: Vec::new(),
                    left_at_ms: 0,
                };
                self.save_session(nick, &stored);
            }
            Event::SessionDropped { nick } => {
                self.outgoing.submit(Job::DropSession(nick.to_string()))
            }
            Event::NickReleased { nick } => {
                self.outgoing.submit(Job::Release(nick.to_string()));
                self.broadcast(Wire::NickReleased {
                    nick: nick.to_string(),
                });
            }
            _ => {
                if let Some(wire) = Wire::from_event(event) {
                    self.broadcast(wire);
                }
            }
        }
    }

    /// Publishes a room message, appending it to its room's history stream first (a node of
    /// an older version sends messages without an origin: those are only published).
    fn post(&mut self, event: &Event<'_>, message: &RoomMessage<'_>) {
        let Some(payload) = Wire::from_event(event).and_then(|wire| self.encode(wire)) else {
            return;
        };
        if message.stamp.origin.is_empty() {
            self.outgoing.submit(Job::Publish(payload));
            return;
        }
        let entry = Box::new(history::entry(message));
        self.outgoing.submit(Job::Post { payload, entry });
    }

    /// Asks the registry whether `client` may have `nick`.
    pub fn claim(&mut self, client: ClientId, nick: &str, claim: NickClaim) {
        self.outgoing.submit(Job::Claim {
            client,
            nick: nick.to_string(),
            claim,
        });
    }

    /// Publishes this node's roster (after a `Hello`, or when contact is made).
    pub fn send_roster(&mut self, rooms: Vec<(String, Vec<String>)>) {
        self.broadcast(Wire::Roster { rooms });
    }

    /// Registers all of this node's nicks again and asks the others for their rosters.
    pub fn rejoin(&mut self, nicks: Vec<String>) {
        self.outgoing.submit(Job::Register(nicks));
        self.broadcast(Wire::Hello);
    }

    /// After the turn's share of news: tells the other nodes whether this one is behind, and
    /// decides whether clients are paced. Returns the clients held for pacing once it is over,
    /// for the loop to read again.
    pub fn end_turn(&mut self, now: Instant) -> Vec<ClientId> {
        self.flow.publish_queue(self.outgoing.len());
        let was_behind = self.flow.behind();
        let warned = self.levels.warned();
        if let Some(behind) = self.flow.backlog(self.levels.remote(), warned, now) {
            if behind != was_behind {
                // Debug only: under sustained overload this changes several times a second.
                debug!("cluster: behind: {behind} (the other nodes are told)");
            }
            if !behind {
                self.levels.clear_warning();
            }
            self.broadcast(Wire::Flow { behind });
        }
        self.flow.update(now)
    }

    /// Whether clients that publish are held now: the cluster is behind (or another node just
    /// said so), or this node's own publications pile up in front of its worker.
    pub fn pacing(&self) -> bool {
        self.flow.paced() || self.levels.peer_behind() || self.outgoing.len() >= flow::PUBLISH_HIGH
    }

    /// Holds client `id` (its line was published while pacing) until the pacing ends.
    pub fn hold(&mut self, id: ClientId) {
        self.flow.hold(id);
    }

    /// The state of cluster mode, for the metrics.
    pub fn gauges(&self) -> ClusterGauges {
        ClusterGauges {
            up: self.up,
            backlog: self.levels.remote().messages,
            behind: self.flow.behind(),
            paced: self.pacing(),
            dropped: self.outgoing.dropped(),
        }
    }

    /// Heartbeat and failure detection; returns the nodes that went silent.
    pub fn tick(&mut self, now: Instant) -> Vec<String> {
        self.outgoing.retry();
        if now >= self.next_beat {
            self.next_beat = now + HEARTBEAT;
            self.broadcast(Wire::Beat);
        }
        let silent: Vec<String> = self
            .last_heard
            .iter()
            .filter(|(_, &heard)| now.duration_since(heard) >= NODE_TIMEOUT)
            .map(|(node, _)| node.clone())
            .collect();
        for node in &silent {
            warn!("node {node} silent for {NODE_TIMEOUT:?}; forgetting its users");
            self.last_heard.remove(node);
            self.flow.forget(node);
        }
        silent
    }

    /// When the loop should next call [`Cluster::tick`].
    pub fn next_tick(&self) -> Instant {
        self.next_beat
    }

    /// When the loop must turn again without other news: the heartbeat, a flow-control
    /// deadline, or at once while other nodes' messages wait for it.
    pub fn next_wake(&self) -> Instant {
        let now = Instant::now();
        if !self.early.is_empty() || self.levels.remote().messages > 0 {
            return now;
        }
        self.flow
            .next_deadline(now)
            .map_or(self.next_beat, |at| at.min(self.next_beat))
    }

    /// Frees this node's `nicks` in the registry (so their users can log in elsewhere at once),
    /// says goodbye to the other nodes and stops the helper threads. Waits (up to
    /// [`STOP_WAIT`]) until every job, held back ones included, is in the worker's queue; the
    /// worker sends its whole queue before it exits.
    pub fn stop(mut self, nicks: Vec<String>) {
        for nick in nicks {
            self.outgoing.submit(Job::Release(nick));
        }
        self.broadcast(Wire::Bye);
        self.outgoing.flush(STOP_WAIT);
        self.stop.store(true, Ordering::SeqCst);
        let Cluster {
            outgoing, threads, ..
        } = self;
        // The worker sees its queue disconnected once it has taken everything.
        drop(outgoing);
        for thread in threads {
            let _ = thread.join();
        }
    }

    fn broadcast(&mut self, body: Wire) {
        if let Some(payload) = self.encode(body) {
            self.outgoing.submit(Job::Publish(payload));
        }
    }

    /// `body` from this node, as it travels on the events channel.
    fn encode(&self, body: Wire) -> Option<String> {
        let envelope = Envelope {
            node: self.node.clone(),
            body,
        };
        serde_json::to_string(&envelope)
            .map_err(|e| warn!("could not encode a cluster message: {e}"))
            .ok()
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
        .map_err(|e| format!("cannot start thread {name}: {e}"))
}

/// Doubles a backoff delay up to the cap.
fn next_backoff(current: Duration) -> Duration {
    (current * 2).min(BACKOFF_MAX)
}

/// Connects with timeouts on every call, so a hung Redis cannot hang a helper thread.
fn connect(client: &redis::Client) -> redis::RedisResult<redis::Connection> {
    let connection = client.get_connection_with_timeout(IO_TIMEOUT)?;
    connection.set_read_timeout(Some(IO_TIMEOUT))?;
    connection.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(connection)
}
