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

mod subscriber;
mod wire;
mod worker;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::warn;
use mio::Waker;

use crate::chat::{ClaimOutcome, ClientId, Event};
use crate::protocol::name_key;

use subscriber::Subscriber;
use wire::{Envelope, StoredSession, Wire};
use worker::{Job, Worker};

/// The pub/sub channel every node publishes to and listens on.
pub const EVENTS_CHANNEL: &str = "chat:events";
/// A nick's registry entry lives this long unless its node refreshes it.
pub const NICK_TTL: Duration = Duration::from_secs(30);
/// How often a node refreshes its nicks and tells the others it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A node not heard from for this long is taken for dead and its users forgotten.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(20);
/// Jobs queued for the worker at most; past it, publications are dropped (and counted).
const JOB_QUEUE: usize = 65_536;
/// Other nodes' messages waiting for the loop at most; past it the subscriber drops them.
const MAX_REMOTE_BACKLOG: usize = 10_000;
/// Registry jobs held back at most while the worker's queue is full, before session writes are
/// dropped (claims and releases never are).
const MAX_BACKLOG: usize = 100_000;
/// Reconnection backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long one Redis call may take before the connection is considered broken.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// What the helper threads tell the loop.
#[derive(Debug)]
pub enum Incoming {
    /// Another node's message.
    Remote {
        /// The sending node.
        node: String,
        /// Its message.
        message: RemoteMessage,
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
pub struct RemoteMessage(Wire);

/// The loop's handle on cluster mode.
pub struct Cluster {
    node: String,
    jobs: SyncSender<Job>,
    incoming: Receiver<Incoming>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// When each other node was last heard from.
    last_heard: HashMap<String, Instant>,
    /// Whether the subscriber is connected (as far as the loop has been told).
    up: bool,
    /// Whether the subscriber was ever connected (the first `Up` is no news to users).
    ever_up: bool,
    dropped: u64,
    next_beat: Instant,
    /// Registry jobs that found the worker's queue full, to be sent in order.
    backlog: VecDeque<Job>,
    /// News taken while waiting for the first subscription, handed out by the next drain.
    early: Vec<Incoming>,
    /// Shared with the subscriber: other nodes' messages not yet drained.
    remote_backlog: Arc<AtomicUsize>,
}

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
}

impl RemoteMessage {
    /// The chat event this message carries, if it carries one.
    pub fn event(&self) -> Option<Event<'_>> {
        self.0.as_event()
    }
}

impl Cluster {
    /// Starts the helper threads for node `node` against the Redis at `url`.
    ///
    /// Fails only if the URL is malformed; an unreachable Redis is retried in the background.
    pub fn start(
        url: &str,
        node: String,
        session_ttl: Duration,
        waker: Arc<Waker>,
    ) -> Result<Cluster, String> {
        let client = redis::Client::open(url).map_err(|e| format!("bad Redis URL {url}: {e}"))?;
        let (jobs, job_queue) = mpsc::sync_channel(JOB_QUEUE);
        let (to_loop, incoming) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let remote_backlog = Arc::new(AtomicUsize::new(0));
        let notify = Notifier {
            to_loop,
            waker,
            stop: Arc::clone(&stop),
            remote_backlog: Arc::clone(&remote_backlog),
        };
        let worker = Worker::new(client.clone(), node.clone(), session_ttl, notify.clone());
        let subscriber = Subscriber::new(client, node.clone(), notify);
        let threads = vec![
            spawn("chat-redis-worker", move || worker.run(job_queue))?,
            spawn("chat-redis-subscriber", move || subscriber.run())?,
        ];
        Ok(Cluster {
            node,
            jobs,
            incoming,
            stop,
            threads,
            last_heard: HashMap::new(),
            up: false,
            ever_up: false,
            dropped: 0,
            next_beat: Instant::now(),
            backlog: VecDeque::new(),
            early: Vec::new(),
            remote_backlog,
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
            self.early.push(incoming);
            if up {
                return true;
            }
        }
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether this node is in contact with Redis, as far as the loop has been told.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Forwards a chat event: publishes what other nodes show, stores sessions, frees nicks.
    pub fn publish(&mut self, event: &Event<'_>) {
        match *event {
            Event::Session {
                nick,
                rooms,
                active,
            } => {
                let stored = StoredSession {
                    rooms: rooms.to_vec(),
                    active: active.to_string(),
                };
                if let Ok(value) = serde_json::to_string(&stored) {
                    self.submit(Job::SaveSession {
                        nick: nick.to_string(),
                        value,
                    });
                }
            }
            Event::SessionDropped { nick } => self.submit(Job::DropSession(nick.to_string())),
            Event::NickReleased { nick } => {
                self.submit(Job::Release(nick.to_string()));
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

    /// Asks the registry whether `client` may have `nick`.
    pub fn claim(&mut self, client: ClientId, nick: &str, rename: bool) {
        self.submit(Job::Claim {
            client,
            nick: nick.to_string(),
            rename,
        });
    }

    /// Publishes this node's roster (after a `Hello`, or when contact is made).
    pub fn send_roster(&mut self, rooms: Vec<(String, Vec<String>)>) {
        self.broadcast(Wire::Roster { rooms });
    }

    /// Registers all of this node's nicks again and asks the others for their rosters.
    pub fn rejoin(&mut self, nicks: Vec<String>) {
        self.submit(Job::Register(nicks));
        self.broadcast(Wire::Hello);
    }

    /// Takes the helper threads' news and turns it into actions for the loop.
    pub fn drain(&mut self, now: Instant) -> Vec<Action> {
        self.retry_backlog();
        let mut actions = Vec::new();
        let early = std::mem::take(&mut self.early);
        let mut ask_rosters = false;
        let incoming = &self.incoming;
        for incoming in early.into_iter().chain(incoming.try_iter()) {
            match incoming {
                Incoming::Remote { node, message } => {
                    self.remote_backlog.fetch_sub(1, Ordering::Relaxed);
                    let known = self.last_heard.insert(node.clone(), now).is_some();
                    match message.0 {
                        Wire::Hello => actions.push(Action::SendRoster),
                        Wire::Roster { rooms } => actions.push(Action::Roster(node, rooms)),
                        Wire::Bye => {
                            self.last_heard.remove(&node);
                            actions.push(Action::ForgetNode(node));
                        }
                        Wire::Beat => {
                            if !known {
                                // A node we had not heard of (or had given up on): it missed
                                // our roster, and we have none of its users.
                                actions.push(Action::SendRoster);
                                ask_rosters = true;
                            }
                        }
                        wire => actions.push(Action::Deliver(node, RemoteMessage(wire))),
                    }
                }
                Incoming::Claimed {
                    client,
                    nick,
                    outcome,
                } => actions.push(Action::FinishClaim(client, nick, outcome)),
                Incoming::Up => {
                    self.up = true;
                    let first = !self.ever_up;
                    self.ever_up = true;
                    actions.push(if first {
                        Action::Connected
                    } else {
                        Action::Restored
                    });
                }
                Incoming::Down => {
                    if self.up {
                        actions.push(Action::Lost);
                    }
                    self.up = false;
                    self.last_heard.clear();
                }
            }
        }
        if ask_rosters {
            self.broadcast(Wire::Hello);
        }
        actions
    }

    /// Heartbeat and failure detection; returns the nodes that went silent.
    pub fn tick(&mut self, now: Instant) -> Vec<String> {
        self.retry_backlog();
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
        }
        silent
    }

    /// When the loop should next call [`Cluster::tick`].
    pub fn next_tick(&self) -> Instant {
        self.next_beat
    }

    /// Frees this node's `nicks` in the registry (so their users can log in elsewhere at once),
    /// says goodbye to the other nodes and stops the helper threads.
    pub fn stop(mut self, nicks: Vec<String>) {
        self.retry_backlog();
        for nick in nicks {
            self.submit(Job::Release(nick));
        }
        self.broadcast(Wire::Bye);
        self.stop.store(true, Ordering::SeqCst);
        drop(self.jobs);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }

    fn broadcast(&mut self, body: Wire) {
        let envelope = Envelope {
            node: self.node.clone(),
            body,
        };
        match serde_json::to_string(&envelope) {
            Ok(payload) => self.submit(Job::Publish(payload)),
            Err(e) => warn!("could not encode a cluster message: {e}"),
        }
    }

    /// Hands a job to the worker without ever blocking the loop.
    ///
    /// When the worker's queue is full, publications are dropped (pub/sub is at most once
    /// anyway), but registry jobs (claims, releases, sessions) wait in the backlog, in order: a
    /// lost release would keep a nick taken for as long as this node lives.
    fn submit(&mut self, job: Job) {
        let registry = !matches!(job, Job::Publish(_));
        if registry && !self.backlog.is_empty() {
            self.hold_back(job);
            return;
        }
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) if registry => self.hold_back(job),
            Err(TrySendError::Full(_)) => self.count_dropped(),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Keeps a registry job for later; past [`MAX_BACKLOG`] only session writes are dropped
    /// (every session is written again when contact is restored).
    fn hold_back(&mut self, job: Job) {
        if self.backlog.len() >= MAX_BACKLOG && matches!(job, Job::SaveSession { .. }) {
            self.count_dropped();
            return;
        }
        self.backlog.push_back(job);
    }

    /// Moves held-back registry jobs to the worker, oldest first, as far as its queue allows.
    fn retry_backlog(&mut self) {
        while let Some(job) = self.backlog.pop_front() {
            match self.jobs.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(job)) => {
                    self.backlog.push_front(job);
                    return;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.backlog.clear();
                    return;
                }
            }
        }
    }

    fn count_dropped(&mut self) {
        self.dropped += 1;
        if self.dropped.is_power_of_two() {
            warn!(
                "Redis is not keeping up: {} cluster messages dropped so far",
                self.dropped
            );
        }
    }
}

/// Hands news to the loop and wakes it.
#[derive(Clone)]
struct Notifier {
    to_loop: Sender<Incoming>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    /// Other nodes' messages handed to the loop and not yet taken by it.
    remote_backlog: Arc<AtomicUsize>,
}

impl Notifier {
    /// Hands another node's message to the loop, unless the loop is already
    /// [`MAX_REMOTE_BACKLOG`] messages behind (it cannot fan out as fast as the other nodes
    /// send): then the message is dropped and `false` returned, so memory stays bounded.
    fn send_remote(&self, node: String, message: RemoteMessage) -> bool {
        if self.remote_backlog.load(Ordering::Relaxed) >= MAX_REMOTE_BACKLOG {
            return false;
        }
        self.remote_backlog.fetch_add(1, Ordering::Relaxed);
        self.send(Incoming::Remote { node, message });
        true
    }

    fn send(&self, incoming: Incoming) {
        if self.to_loop.send(incoming).is_ok() {
            if let Err(e) = self.waker.wake() {
                warn!("could not wake the poll loop: {e}");
            }
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps for `pause` in short steps, returning early (true) if the cluster is stopping.
    fn pause(&self, pause: Duration) -> bool {
        let until = Instant::now() + pause;
        while Instant::now() < until {
            if self.stopping() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
        self.stopping()
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
        .map_err(|e| format!("cannot start thread {name}: {e}"))
}

fn nick_key(nick: &str) -> String {
    format!("chat:nick:{}", name_key(nick))
}

fn session_key(nick: &str) -> String {
    format!("chat:session:{}", name_key(nick))
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
