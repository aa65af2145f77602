//! The poll loop: one thread, one `mio::Poll`, every connection in a slab.
//!
//! The loop only moves bytes and events: it accepts sockets, reads until `WouldBlock`, feeds
//! decoded lines to [`Chat`], and writes each connection's queued output once per turn. All chat
//! decisions live in [`crate::chat`]. A turn is:
//!
//! 1. wait for readiness (or the next timer);
//! 2. accept new clients (`accept`), read ready clients once each (`input`: at most
//!    `READ_BUDGET` bytes and `LINES_PER_TURN` lines, so one flooder cannot starve the rest;
//!    the remainder is read next turn; a client past its flood budget is not read until the
//!    budget has a token again, `flood`);
//! 3. take in what the cluster's Redis threads reported, other nodes' messages a turn's worth
//!    at a time, and release the clients held by flow control once it is over (`cluster_news`);
//! 4. reap connections that died during the turn, telling the chat so it saves their sessions,
//!    and write every connection that got output, one `write()` each (`delivery`, `closing`);
//! 5. after a quiet second, give the output path's memory back.
//!
//! Idle connections cost nothing per turn: only connections with events or output are touched.

mod accept;
mod auth;
mod closing;
mod cluster_news;
mod connection;
mod delivery;
mod flood;
mod input;
mod linger;
mod login_timeout;
mod memory;
mod metrics;
mod metrics_http;
mod output;
mod per_address;
mod persistence;

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::chat::{Chat, ClientId};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::store::Store;
use accept::Admission;
use auth::AuthWorker;
use delivery::Delivery;
use flood::FloodControl;
use linger::Lingering;
use login_timeout::LoginDeadlines;
use memory::{MemoryBudget, Pressure};
use metrics_http::MetricsEndpoint;

pub use auth::{AccountWriter, ITERATIONS, LANES, MEMORY_KIB};
pub use closing::ShutdownHandle;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const SIGNALS: Token = Token(usize::MAX - 3);
const METRICS_LISTENER: Token = Token(usize::MAX - 4);
/// Tokens from here on (below the ones above) are the keys of metrics requests
/// (`metrics_http.rs`) plus this.
const HTTP_TOKENS: usize = LINGER_TOKENS + (1 << (usize::BITS - 3));
/// Tokens from here to [`HTTP_TOKENS`] are the keys of lingering sockets (`linger.rs`) plus
/// this; client tokens are slab keys, far below.
const LINGER_TOKENS: usize = 1 << (usize::BITS - 2);

/// The most lines of one connection handled in one turn: a line can become output for every
/// member of a room, so this bounds the output one client causes before everybody's buffers
/// are written (a flood of short lines would otherwise fill readers' buffers within one turn).
const LINES_PER_TURN: usize = 128;
/// The most bytes read from one connection in one turn before others get their turn.
const READ_BUDGET: usize = 256 * 1024;
/// Size of the one read buffer shared by all connections.
const READ_BUFFER: usize = 64 * 1024;
/// How often saved sessions are checked for expiry.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// How long a cluster node waits at start to be subscribed before it accepts clients.
const CLUSTER_START_WAIT: Duration = Duration::from_secs(3);
/// After this long without output the pooled buffers are freed and the heap is trimmed.
const QUIET_RELEASE: Duration = Duration::from_secs(1);

/// The chat server: a listener, its connections and the chat state, driven by one poll loop.
pub struct Server {
    poll: Poll,
    local_addr: SocketAddr,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    /// The chat logic, free of I/O.
    chat: Chat,
    /// The connections, and the chat's outbox on top of them.
    delivery: Delivery,
    /// The memory limit, and what to do near it.
    memory: MemoryBudget,
    /// The listener, and who may come in.
    admission: Admission,
    /// Sockets turned away and answered metrics requests, kept until their peer has read
    /// the last line and closed.
    linger: Lingering,
    /// Connections that must set a nick by a deadline.
    logins: LoginDeadlines,
    /// Flood control, and the connections waiting for their flood budget.
    flood: FloodControl,
    /// `--metrics`: the listener and the requests being answered.
    metrics_endpoint: Option<MetricsEndpoint>,
    read_buf: Vec<u8>,
    /// Connections that used up a per-turn budget and still have input waiting.
    unfinished_reads: Vec<ClientId>,
    /// Connections with input that a full turn left unread: read first in the next turn, before
    /// `unfinished_reads`, or flooders that fill every turn would keep everyone else waiting.
    starved_reads: Vec<ClientId>,
    next_housekeeping: Instant,
    /// Connections read this turn: their output (the echo a closed-loop client waits for) is
    /// written first.
    readers: Vec<ClientId>,
    /// Connections that finished saying goodbye in this turn's flush, to close.
    finished: Vec<ClientId>,
    /// When to free pooled buffers and trim the heap, if the server stays quiet until then.
    release_at: Option<Instant>,
    /// Loop turns so far; a connection is read at most once per turn.
    turns: u64,
    max_line: usize,
}

impl Server {
    /// Opens the data dir and gives the chat back what it holds, binds the listener
    /// (SO_REUSEADDR, large backlog) and prepares the loop.
    pub fn bind(config: &Config) -> io::Result<Server> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let max_memory = (config.max_memory > 0).then_some(config.max_memory);
        let memory = MemoryBudget::new(max_memory, Instant::now());
        let mut chat_config = config.chat();
        if let Some(limit) = memory.limit() {
            // Under a memory limit history may take an eighth of it, so that it cannot crowd
            // out the connections (the default 64 MiB would fill a 64 MiB host alone).
            let share = usize::try_from(limit / 8).unwrap_or(usize::MAX);
            if chat_config.history.max_bytes > share {
                info!("memory limit {limit} bytes: history kept within {share} bytes");
                chat_config.history.max_bytes = share;
            }
        }
        // Before the listener: connections are refused, not left waiting, while the data dir
        // loads, and a data dir that cannot be used never takes the port.
        let mut chat = Chat::new(chat_config);
        let store = persistence::open_store(config, &waker, &mut chat)?;
        let mut listener = accept::bind_listener(config.listen).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.listen))
        })?;
        let local_addr = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let metrics_endpoint = match config.metrics {
            Some(addr) => Some(
                MetricsEndpoint::bind(addr, poll.registry())
                    .map_err(|e| io::Error::new(e.kind(), format!("--metrics {addr}: {e}")))?,
            ),
            None => None,
        };
        let cluster = match &config.redis {
            Some(url) => Some(join_cluster(config, url, &waker, &mut chat)?),
            None => None,
        };
        // Registrations are written before the user is told: to the data dir, or to Redis.
        let account_writer = match (&cluster, &store) {
            (Some(cluster), _) => Some(cluster.account_writer()),
            (None, store) => store.as_ref().map(Store::account_writer),
        };
        let auth = Some(AuthWorker::start(Arc::clone(&waker), account_writer)?);
        // Output for clients that do not read is what grows fast: under a memory limit it may
        // take two fifths of it, all clients together.
        let output_budget = memory
            .limit()
            .map(|limit| usize::try_from(limit / 5 * 2).unwrap_or(usize::MAX));
        let mut delivery = Delivery::new(config.sendq as usize, cluster, auth);
        delivery.set_output_budget(output_budget);
        delivery.store = store;
        Ok(Server {
            poll,
            memory,
            local_addr,
            waker,
            stop: Arc::new(AtomicBool::new(false)),
            signals: None,
            chat,
            delivery,
            admission: Admission::new(listener, config.connection_limit(), config.max_per_ip),
            linger: Lingering::default(),
            logins: LoginDeadlines::new(config.login_timeout),
            flood: FloodControl::new(config.flood_rate, config.flood_burst),
            metrics_endpoint,
            read_buf: vec![0; READ_BUFFER],
            unfinished_reads: Vec::new(),
            starved_reads: Vec::new(),
            next_housekeeping: Instant::now() + HOUSEKEEPING,
            readers: Vec::new(),
            finished: Vec::new(),
            release_at: None,
            turns: 0,
            max_line: config.max_line as usize,
        })
    }

    /// The address the listener is bound to (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the metrics endpoint (`--metrics`), if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        let endpoint = self.metrics_endpoint.as_ref()?;
        endpoint.local_addr().ok()
    }

    /// A handle that stops this server from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle::new(Arc::clone(&self.waker), Arc::clone(&self.stop))
    }

    /// Makes SIGINT and SIGTERM start a graceful shutdown.
    pub fn handle_signals(&mut self) -> io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// Runs the loop until a shutdown is requested, then says goodbye to every client.
    pub fn run(mut self) -> io::Result<()> {
        info!(
            "listening on {} (max {} connections)",
            self.local_addr,
            self.admission.max_connections()
        );
        let mut events = Events::with_capacity(1024);
        while !self.stop.load(Ordering::SeqCst) {
            if let Err(e) = self.poll.poll(&mut events, self.poll_timeout()) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            self.turns += 1;
            self.resume_held(now);
            for id in input::next_reads(&mut self.starved_reads, &mut self.unfinished_reads) {
                self.read_from(id, now);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_clients(now),
                    WAKER => {}
                    SIGNALS => self.take_signals(),
                    METRICS_LISTENER => self.accept_metrics_requests(now),
                    Token(token) if token >= HTTP_TOKENS => {
                        self.serve_metrics_request(token - HTTP_TOKENS, now);
                    }
                    Token(token) if token >= LINGER_TOKENS => {
                        self.linger
                            .readable(self.poll.registry(), token - LINGER_TOKENS);
                    }
                    Token(index) => {
                        let id = ClientId::new(index);
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read_from(id, now);
                        }
                        if event.is_writable() {
                            self.write_when_ready(id);
                        }
                    }
                }
            }
            self.housekeeping(now);
            self.take_cluster_news(now);
            self.take_auth_answers(now);
            self.reap_and_flush(now);
            self.relieve_memory(now);
            self.feed_store();
            self.release_idle_memory(now);
            self.delivery.metrics.turn_took(now.elapsed());
        }
        self.shut_down();
        self.close_store()
    }

    /// Hands the password worker's answers to the chat.
    fn take_auth_answers(&mut self, now: Instant) {
        let Some(auth) = &self.delivery.auth else {
            return;
        };
        for answer in auth.answers() {
            let (client, ticket) = (answer.client, answer.ticket);
            self.chat
                .finish_auth(client, ticket, answer.answer, now, &mut self.delivery);
        }
    }

    /// The socket of `id` takes output again: write what it still owes.
    fn write_when_ready(&mut self, id: ClientId) {
        if self.delivery.get_mut(id).is_some_and(|c| c.pending() > 0) {
            self.delivery.mark_dirty(id);
        }
    }

    /// Sleeps until the next timer; not at all while input is left over from the last turn.
    fn poll_timeout(&self) -> Option<Duration> {
        if !self.unfinished_reads.is_empty() || !self.starved_reads.is_empty() {
            return Some(Duration::ZERO);
        }
        let housekeeping = (self.chat.saved_count() > 0).then_some(self.next_housekeeping);
        let cluster_tick = self.delivery.cluster.as_ref().map(Cluster::next_wake);
        let deadline = [
            housekeeping,
            self.admission.paused_until(),
            self.delivery.next_close_deadline(),
            self.linger.next_deadline(),
            self.logins.next_deadline(),
            self.flood.next_resume(),
            self.metrics_endpoint
                .as_ref()
                .and_then(MetricsEndpoint::next_deadline),
            self.release_at,
            cluster_tick,
            self.chat.next_catch_up_deadline(),
            self.store_retry_at(),
        ]
        .into_iter()
        .flatten()
        .min();
        let now = Instant::now();
        deadline.map(|d| d.saturating_duration_since(now))
    }

    fn take_signals(&mut self) {
        if let Some(signals) = self.signals.as_mut() {
            for signal in signals.pending() {
                info!("received signal {signal}, shutting down");
                self.stop.store(true, Ordering::SeqCst);
            }
        }
    }

    /// The timers: accepting again after a pause, goodbyes overdue, sockets turned away that
    /// linger too long, metrics requests too slow, logins too slow, saved sessions expired.
    fn housekeeping(&mut self, now: Instant) {
        if self.admission.pause_over(now) {
            self.accept_clients(now);
        }
        self.linger.expire(self.poll.registry(), now);
        self.expire_metrics_requests(now);
        self.expire_logins(now);
        while let Some(id) = self.delivery.next_overdue_goodbye(now) {
            self.close(id);
        }
        if now >= self.next_housekeeping {
            self.next_housekeeping = now + HOUSEKEEPING;
            self.chat.expire_sessions(now, &mut self.delivery);
        }
    }

    /// Near the memory limit, drops the clients with the biggest unread output (they are the
    /// ones that do not read) until enough is freed, and gives the memory back at once.
    ///
    /// Two signals: the memory of the output waiting for all clients passed its budget (a share
    /// of the limit, counted as it is queued and as the buffers grow), or the resident size read
    /// from the system came near the limit (whatever the cause).
    fn relieve_memory(&mut self, now: Instant) {
        let from_output = self.delivery.over_budget().map(|budget| {
            self.delivery
                .output_memory()
                .saturating_sub(budget * 6 / 10) as u64
        });
        let from_rss = match self.memory.check(now) {
            Pressure::Drop(bytes) => Some(bytes),
            Pressure::None | Pressure::Refuse => None,
        };
        let Some(wanted) = from_output.max(from_rss) else {
            return;
        };
        let mut queues: Vec<(usize, ClientId)> = self
            .delivery
            .connections
            .iter()
            .filter(|(_, conn)| conn.pending() > 0)
            .map(|(index, conn)| (conn.output_held(), ClientId::new(index)))
            .collect();
        queues.sort_unstable_by_key(|&(held, _)| std::cmp::Reverse(held));
        let mut freed = 0u64;
        let mut dropped = 0;
        for (held, id) in queues {
            if freed >= wanted {
                break;
            }
            self.delivery.doom(id, delivery::DropReason::Memory);
            freed += held as u64;
            dropped += 1;
        }
        warn!(
            "near the memory limit: dropped {dropped} clients holding {freed} bytes of unread \
             output; new connections are turned away until it eases"
        );
        self.reap_and_flush(now);
        self.delivery.release_memory();
        trim_heap();
        self.memory.freed(freed);
    }

    /// After a quiet spell, gives the memory of the output path back. Only between turns: while
    /// a turn runs, connections hold spans of its output.
    fn release_idle_memory(&mut self, now: Instant) {
        if self.release_at.is_some_and(|at| now >= at) {
            self.release_at = None;
            self.delivery.release_memory();
            trim_heap();
        }
    }

    /// Reaps dead connections and writes output until nothing is left to do this turn (a
    /// failed write dooms a connection, whose departure is output for others).
    fn reap_and_flush(&mut self, now: Instant) {
        loop {
            self.reap(now);
            self.flush_output(now);
            if self.delivery.doomed.is_empty() {
                return;
            }
        }
    }

    /// One write per connection with output, readers first; closes the ones whose goodbye is
    /// written.
    fn flush_output(&mut self, now: Instant) {
        let mut readers = std::mem::take(&mut self.readers);
        if self.delivery.flush(&readers, &mut self.finished) {
            self.release_at = Some(now + QUIET_RELEASE);
        }
        readers.clear();
        self.readers = readers;
        while let Some(id) = self.finished.pop() {
            self.close(id);
        }
    }
}

/// Starts cluster mode on Redis at `url`, waits (briefly) to be subscribed, and gives `chat`
/// the rooms' history and the registered nicks kept in Redis. (Loaded after subscribing, so
/// that nothing said meanwhile is missed; what comes both ways is taken once.)
fn join_cluster(
    config: &Config,
    url: &str,
    waker: &Arc<Waker>,
    chat: &mut Chat,
) -> io::Result<Cluster> {
    let node = config.node_name();
    let ttl = Duration::from_secs(config.session_ttl);
    let history = config.chat().history;
    let mut cluster = Cluster::start(url, node, ttl, history, Arc::clone(waker))
        .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
    chat.set_origin(cluster.node(), cluster.origin());
    if !cluster.wait_until_subscribed(CLUSTER_START_WAIT) {
        warn!("cluster: no Redis at {url} yet; serving local clients, retrying");
    } else {
        match cluster.load_state() {
            Ok(snapshot) => chat.restore(snapshot, Instant::now()),
            Err(e) => warn!("cluster: could not load history and registrations from Redis: {e}"),
        }
    }
    info!("cluster mode: node {} on {url}", cluster.node());
    Ok(cluster)
}

/// Gives the heap's free pages back to the system after a burst (glibc keeps them otherwise,
/// and a burst of big output buffers would stay in the RSS for good).
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own heap; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
