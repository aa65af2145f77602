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

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::Waker;
use serde::{Deserialize, Serialize};

use crate::chat::{ClaimOutcome, ClientId, Event, Presence, SavedRooms};
use crate::protocol::name_key;

/// The pub/sub channel every node publishes to and listens on.
pub const EVENTS_CHANNEL: &str = "chat:events";
/// A nick's registry entry lives this long unless its node refreshes it.
pub const NICK_TTL: Duration = Duration::from_secs(30);
/// How often a node refreshes its nicks and tells the others it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A node not heard from for this long is taken for dead and its users forgotten.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(20);
/// Jobs sent to Redis in one pipelined round trip at most.
const MAX_BATCH: usize = 512;
/// Jobs queued for the worker at most; past it, publications are dropped (and counted).
const JOB_QUEUE: usize = 65_536;
/// Reconnection backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long one Redis call may take before the connection is considered broken.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Claims a nick: fails if any node holds it; a rename also fails onto a saved session.
/// Returns `{status, saved session JSON or false}`.
const CLAIM_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return {'inuse', false} end
local session = redis.call('GET', KEYS[2])
if ARGV[3] == '1' and session then return {'saved', false} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return {'granted', session}
";

/// Refreshes the TTL of nicks this node holds, and takes back the ones that expired (after a
/// Redis restart, say) unless another node holds them now. Returns the nicks held elsewhere.
const REFRESH_SCRIPT: &str = r"
local lost = {}
for _, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == false or owner == ARGV[1] then
    redis.call('SET', key, ARGV[1], 'EX', ARGV[2])
  else
    table.insert(lost, key)
  end
end
return lost
";

/// Sets the cluster's epoch if it has none, and returns it.
const EPOCH_SCRIPT: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
";
/// The key whose value changes only when Redis loses its data.
const EPOCH_KEY: &str = "chat:epoch";
/// How long claims wait after Redis lost its data: long enough for every node to reconnect
/// (at most [`BACKOFF_MAX`] apart) and re-register its nicks.
const AMNESIA_GRACE: Duration = Duration::from_secs(8);

/// Deletes a nick's entry if this node holds it.
const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// What travels on the events channel: the sending node and what happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Envelope {
    node: String,
    #[serde(flatten)]
    body: Wire,
}

/// An [`Event`] (or a cluster housekeeping message) in owned, serialisable form.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Wire {
    Said {
        room: String,
        nick: String,
        text: String,
    },
    Acted {
        room: String,
        nick: String,
        text: String,
    },
    Presence {
        room: String,
        nick: String,
        change: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        old: Option<String>,
    },
    Private {
        from: String,
        to: String,
        text: String,
    },
    NickClaimed {
        nick: String,
    },
    NickReleased {
        nick: String,
    },
    /// A node (re)joined and asks the others for their rosters.
    Hello,
    /// A node's full picture of its rooms and members.
    Roster {
        rooms: Vec<(String, Vec<String>)>,
    },
    /// A node is alive.
    Beat,
    /// A node is stopping.
    Bye,
}

impl Wire {
    /// The owned form of an event worth sending to other nodes.
    fn from_event(event: &Event<'_>) -> Option<Wire> {
        let owned = |s: &str| s.to_string();
        Some(match *event {
            Event::Said { room, nick, text } => Wire::Said {
                room: owned(room),
                nick: owned(nick),
                text: owned(text),
            },
            Event::Acted { room, nick, text } => Wire::Acted {
                room: owned(room),
                nick: owned(nick),
                text: owned(text),
            },
            Event::Presence { room, nick, change } => {
                let (change, old) = match change {
                    Presence::Joined => ("joined", None),
                    Presence::Left => ("left", None),
                    Presence::Disconnected => ("disconnected", None),
                    Presence::Renamed(old) => ("renamed", Some(owned(old))),
                };
                Wire::Presence {
                    room: owned(room),
                    nick: owned(nick),
                    change: change.to_string(),
                    old,
                }
            }
            Event::Private { from, to, text } => Wire::Private {
                from: owned(from),
                to: owned(to),
                text: owned(text),
            },
            Event::NickClaimed { nick } => Wire::NickClaimed { nick: owned(nick) },
            Event::NickReleased { nick } => Wire::NickReleased { nick: owned(nick) },
            Event::Session { .. }
            | Event::SessionDropped { .. }
            | Event::SessionRestored { .. } => return None,
        })
    }

    /// The borrowed [`Event`] this message stands for, if it is one.
    fn as_event(&self) -> Option<Event<'_>> {
        Some(match self {
            Wire::Said { room, nick, text } => Event::Said { room, nick, text },
            Wire::Acted { room, nick, text } => Event::Acted { room, nick, text },
            Wire::Presence {
                room,
                nick,
                change,
                old,
            } => {
                let change = match (change.as_str(), old) {
                    ("joined", _) => Presence::Joined,
                    ("left", _) => Presence::Left,
                    ("disconnected", _) => Presence::Disconnected,
                    ("renamed", Some(old)) => Presence::Renamed(old),
                    _ => return None,
                };
                Event::Presence { room, nick, change }
            }
            Wire::Private { from, to, text } => Event::Private { from, to, text },
            Wire::NickClaimed { nick } => Event::NickClaimed { nick },
            Wire::NickReleased { nick } => Event::NickReleased { nick },
            Wire::Hello | Wire::Roster { .. } | Wire::Beat | Wire::Bye => return None,
        })
    }
}

/// The saved-session value stored in Redis.
#[derive(Debug, Serialize, Deserialize)]
struct StoredSession {
    rooms: Vec<String>,
    active: String,
}

/// Work for the Redis worker thread.
#[derive(Debug)]
enum Job {
    Publish(String),
    Claim {
        client: ClientId,
        nick: String,
        rename: bool,
    },
    Release(String),
    SaveSession {
        nick: String,
        value: String,
    },
    DropSession(String),
    /// Re-register every nick this node holds (after Redis came back).
    Register(Vec<String>),
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
    /// Claims answered without Redis, handed out by the next [`Cluster::drain`].
    local_answers: Vec<Action>,
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
        let notify = Notifier {
            to_loop,
            waker,
            stop: Arc::clone(&stop),
        };
        let worker = Worker {
            client: client.clone(),
            node: node.clone(),
            session_ttl,
            held: HashSet::new(),
            notify: notify.clone(),
            epoch: None,
            claims_wait_until: None,
            waiting_claims: Vec::new(),
        };
        let subscriber = Subscriber {
            client,
            node: node.clone(),
            notify,
        };
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
            local_answers: Vec::new(),
        })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
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

    /// Whether cross-node delivery currently works.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Takes the helper threads' news and turns it into actions for the loop.
    pub fn drain(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = std::mem::take(&mut self.local_answers);
        while let Ok(incoming) = self.incoming.try_recv() {
            match incoming {
                Incoming::Remote { node, message } => {
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
                                // A node we had not heard of: it missed our roster.
                                actions.push(Action::SendRoster);
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
        actions
    }

    /// Heartbeat and failure detection; returns the nodes that went silent.
    pub fn tick(&mut self, now: Instant) -> Vec<String> {
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

    fn submit(&mut self, job: Job) {
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                self.dropped += 1;
                if self.dropped.is_power_of_two() {
                    warn!(
                        "Redis is not keeping up: {} cluster jobs dropped so far",
                        self.dropped
                    );
                }
                if let Job::Claim { client, nick, .. } = job {
                    // Never leave a user waiting: decide locally.
                    debug!("claim of {nick} by client {client} decided locally (queue full)");
                    self.local_answers.push(Action::FinishClaim(
                        client,
                        nick,
                        ClaimOutcome::Granted(None),
                    ));
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Hands news to the loop and wakes it.
#[derive(Clone)]
struct Notifier {
    to_loop: Sender<Incoming>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
}

impl Notifier {
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

/// Sends a pipeline, if it holds anything, and empties it.
fn flush(pipe: &mut redis::Pipeline, con: &mut redis::Connection) -> redis::RedisResult<()> {
    if pipe.is_empty() {
        return Ok(());
    }
    let result = pipe.exec(con);
    *pipe = redis::pipe();
    result
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

/// The worker's connection and its reconnection state.
struct Link {
    connection: Option<redis::Connection>,
    backoff: Duration,
    retry_at: Instant,
    /// When a command last succeeded.
    last_ok: Instant,
}

impl Link {
    fn new() -> Self {
        Self {
            connection: None,
            backoff: BACKOFF_MIN,
            retry_at: Instant::now(),
            last_ok: Instant::now(),
        }
    }
}

/// The thread that runs Redis commands for the loop.
struct Worker {
    client: redis::Client,
    node: String,
    session_ttl: Duration,
    /// Nicks this node holds, refreshed every heartbeat.
    held: HashSet<String>,
    notify: Notifier,
    /// The value of `chat:epoch` last seen: a change means Redis lost its data.
    epoch: Option<String>,
    /// After Redis lost its data, claims wait until every node had time to re-register.
    claims_wait_until: Option<Instant>,
    waiting_claims: Vec<Job>,
}

impl Worker {
    fn run(mut self, jobs: Receiver<Job>) {
        let mut link = Link::new();
        let mut next_refresh = Instant::now() + HEARTBEAT;
        loop {
            let stopping = self.notify.stopping();
            let mut batch: Vec<Job> = match jobs.recv_timeout(Duration::from_millis(200)) {
                Ok(job) => vec![job],
                Err(RecvTimeoutError::Timeout) => Vec::new(),
                Err(RecvTimeoutError::Disconnected) => return,
            };
            // Take everything already queued: one pipelined round trip instead of many.
            batch.extend(jobs.try_iter().take(MAX_BATCH));
            if self
                .claims_wait_until
                .is_some_and(|until| Instant::now() >= until)
            {
                self.claims_wait_until = None;
                batch.splice(0..0, std::mem::take(&mut self.waiting_claims));
            }
            let refresh_due = Instant::now() >= next_refresh;
            if refresh_due {
                next_refresh = Instant::now() + HEARTBEAT;
            }
            if !batch.is_empty() || refresh_due || link.connection.is_none() {
                self.serve(&mut link, batch, refresh_due);
            }
            if stopping {
                // The goodbye and the nick releases were queued before the stop: sent above.
                let rest: Vec<Job> = jobs.try_iter().collect();
                self.serve(&mut link, rest, false);
                return;
            }
        }
    }

    /// Runs `batch` (and the nick refresh) over a healthy connection, or answers locally.
    fn serve(&mut self, link: &mut Link, batch: Vec<Job>, refresh: bool) {
        let Some(con) = self.healthy_connection(link) else {
            batch.into_iter().for_each(|job| self.without_redis(job));
            return;
        };
        let result = self.execute_batch(con, batch).and_then(|()| {
            if refresh {
                self.refresh(con)
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) => link.last_ok = Instant::now(),
            Err(e) => {
                warn!("Redis command failed: {e}");
                link.connection = None;
            }
        }
    }

    /// The connection, (re)connected if needed (with backoff) and checked with a PING if it
    /// has been idle: an idle connection to a Redis that restarted fails only when used, and
    /// the jobs of that first failing batch would be answered without Redis.
    fn healthy_connection<'a>(&mut self, link: &'a mut Link) -> Option<&'a mut redis::Connection> {
        let stale = link.last_ok.elapsed() >= Duration::from_secs(1);
        if let (Some(con), true) = (link.connection.as_mut(), stale) {
            if redis::cmd("PING").query::<String>(con).is_err() {
                link.connection = None;
                link.retry_at = Instant::now();
            }
        }
        if link.connection.is_none() && Instant::now() >= link.retry_at {
            let connected = connect(&self.client).and_then(|mut con| {
                self.on_connect(&mut con)?;
                Ok(con)
            });
            match connected {
                Ok(con) => {
                    info!("Redis worker connected");
                    link.connection = Some(con);
                    link.backoff = BACKOFF_MIN;
                    link.last_ok = Instant::now();
                }
                Err(e) => {
                    debug!("Redis worker cannot connect: {e}");
                    link.retry_at = Instant::now() + link.backoff;
                    link.backoff = next_backoff(link.backoff);
                }
            }
        }
        link.connection.as_mut()
    }

    /// A fresh connection: re-registers this node's nicks at once, and notices whether Redis
    /// lost its data meanwhile (a new `chat:epoch`). If it did, nobody's nick is registered
    /// until each node reconnects, so new claims wait [`AMNESIA_GRACE`] for the others.
    fn on_connect(&mut self, con: &mut redis::Connection) -> redis::RedisResult<()> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let candidate = format!("{}-{nanos}", self.node);
        let current: String = redis::Script::new(EPOCH_SCRIPT)
            .key(EPOCH_KEY)
            .arg(candidate)
            .invoke(con)?;
        if self.epoch.as_ref().is_some_and(|seen| *seen != current) {
            warn!("Redis lost its data (new epoch); re-registering nicks, new claims wait {AMNESIA_GRACE:?}");
            self.claims_wait_until = Some(Instant::now() + AMNESIA_GRACE);
        }
        self.epoch = Some(current);
        self.refresh(con)
    }

    /// Redis is unreachable: answer what must be answered, drop the rest.
    fn without_redis(&mut self, job: Job) {
        match job {
            Job::Claim { client, nick, .. } => {
                self.held.insert(name_key(&nick));
                self.notify.send(Incoming::Claimed {
                    client,
                    nick,
                    outcome: ClaimOutcome::Granted(None),
                });
            }
            Job::Release(nick) => {
                self.held.remove(&name_key(&nick));
            }
            Job::Register(nicks) => {
                self.held = nicks.iter().map(|n| name_key(n)).collect();
            }
            Job::Publish(_) | Job::SaveSession { .. } | Job::DropSession(_) => {}
        }
    }

    /// Runs `batch` in order: runs of fire-and-forget jobs go in one pipeline, claims and
    /// registrations (which need their answers) one by one. On an error the jobs not yet run
    /// are handled as if Redis were away, so no claim goes unanswered.
    fn execute_batch(
        &mut self,
        con: &mut redis::Connection,
        batch: Vec<Job>,
    ) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        let mut jobs = batch.into_iter();
        while let Some(job) = jobs.next() {
            let result = match job {
                Job::Publish(payload) => {
                    pipe.cmd("PUBLISH")
                        .arg(EVENTS_CHANNEL)
                        .arg(payload)
                        .ignore();
                    Ok(())
                }
                Job::SaveSession { nick, value } => {
                    pipe.cmd("SET")
                        .arg(session_key(&nick))
                        .arg(value)
                        .arg("EX")
                        .arg(self.session_ttl.as_secs().max(1))
                        .ignore();
                    Ok(())
                }
                Job::DropSession(nick) => {
                    pipe.cmd("DEL").arg(session_key(&nick)).ignore();
                    Ok(())
                }
                Job::Release(nick) => {
                    self.held.remove(&name_key(&nick));
                    pipe.cmd("EVAL")
                        .arg(RELEASE_SCRIPT)
                        .arg(1)
                        .arg(nick_key(&nick))
                        .arg(&self.node)
                        .ignore();
                    Ok(())
                }
                Job::Claim { .. } if self.claims_wait_until.is_some() => {
                    self.waiting_claims.push(job);
                    Ok(())
                }
                job => flush(&mut pipe, con).and_then(|()| self.execute(con, job)),
            };
            if let Err(e) = result.and_then(|()| {
                if pipe.len() >= MAX_BATCH {
                    flush(&mut pipe, con)
                } else {
                    Ok(())
                }
            }) {
                jobs.for_each(|job| self.without_redis(job));
                return Err(e);
            }
        }
        flush(&mut pipe, con)
    }

    /// Runs a job that needs its answer.
    fn execute(&mut self, con: &mut redis::Connection, job: Job) -> redis::RedisResult<()> {
        match job {
            Job::Claim {
                client,
                nick,
                rename,
            } => {
                let outcome = match self.claim(con, &nick, rename) {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        // Answer anyway, so the user is not left waiting, then reconnect.
                        self.without_redis(Job::Claim {
                            client,
                            nick,
                            rename,
                        });
                        return Err(e);
                    }
                };
                if matches!(outcome, ClaimOutcome::Granted(_)) {
                    self.held.insert(name_key(&nick));
                }
                self.notify.send(Incoming::Claimed {
                    client,
                    nick,
                    outcome,
                });
                Ok(())
            }
            Job::Register(nicks) => {
                self.held = nicks.iter().map(|n| name_key(n)).collect();
                self.refresh(con)
            }
            // Fire-and-forget jobs go through the pipeline path.
            other => self.execute_batch(con, vec![other]),
        }
    }

    fn claim(
        &self,
        con: &mut redis::Connection,
        nick: &str,
        rename: bool,
    ) -> redis::RedisResult<ClaimOutcome> {
        let (status, session): (String, Option<String>) = redis::Script::new(CLAIM_SCRIPT)
            .key(nick_key(nick))
            .key(session_key(nick))
            .arg(&self.node)
            .arg(NICK_TTL.as_secs())
            .arg(if rename { "1" } else { "0" })
            .invoke(con)?;
        Ok(match status.as_str() {
            "inuse" => ClaimOutcome::InUse,
            "saved" => ClaimOutcome::Saved,
            _ => {
                let saved = session
                    .and_then(|json| serde_json::from_str::<StoredSession>(&json).ok())
                    .map(|s| SavedRooms {
                        rooms: s.rooms,
                        active: s.active,
                    });
                ClaimOutcome::Granted(saved)
            }
        })
    }

    /// Keeps this node's nicks registered; warns about nicks another node took meanwhile.
    fn refresh(&mut self, con: &mut redis::Connection) -> redis::RedisResult<()> {
        let keys: Vec<String> = self
            .held
            .iter()
            .map(|key| format!("chat:nick:{key}"))
            .collect();
        let script = redis::Script::new(REFRESH_SCRIPT);
        for chunk in keys.chunks(1000) {
            let mut invocation = script.prepare_invoke();
            for key in chunk {
                invocation.key(key);
            }
            invocation.arg(&self.node).arg(NICK_TTL.as_secs());
            let lost: Vec<String> = invocation.invoke(con)?;
            for key in lost {
                warn!("{key} is held by another node too (taken while this node was cut off)");
            }
        }
        Ok(())
    }
}

/// The thread that listens on the events channel.
struct Subscriber {
    client: redis::Client,
    node: String,
    notify: Notifier,
}

impl Subscriber {
    fn run(self) {
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
            self.notify.send(Incoming::Remote {
                node: envelope.node,
                message: RemoteMessage(envelope.body),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_the_wire() {
        let events = [
            Event::Said {
                room: "кухня",
                nick: "Вася",
                text: "привет \"всем\"",
            },
            Event::Acted {
                room: "main",
                nick: "a",
                text: "waves",
            },
            Event::Presence {
                room: "main",
                nick: "new",
                change: Presence::Renamed("old"),
            },
            Event::Presence {
                room: "dev",
                nick: "x",
                change: Presence::Disconnected,
            },
            Event::Private {
                from: "a",
                to: "b",
                text: "psst",
            },
            Event::NickClaimed { nick: "a" },
        ];
        for event in events {
            let wire = Wire::from_event(&event).expect("travels");
            let envelope = Envelope {
                node: "n1".into(),
                body: wire,
            };
            let json = serde_json::to_string(&envelope).expect("encodes");
            let back: Envelope = serde_json::from_str(&json).expect("decodes");
            assert_eq!(back.node, "n1");
            assert_eq!(back.body.as_event(), Some(event));
        }
    }

    #[test]
    fn local_only_events_do_not_travel() {
        let rooms = vec!["main".to_string()];
        let session = Event::Session {
            nick: "a",
            rooms: &rooms,
            active: "main",
        };
        assert!(Wire::from_event(&session).is_none());
    }

    #[test]
    fn garbage_on_the_channel_is_rejected() {
        for junk in ["", "{}", r#"{"node":"x","type":"nope"}"#, "[1,2]"] {
            assert!(serde_json::from_str::<Envelope>(junk).is_err(), "{junk}");
        }
    }
}
