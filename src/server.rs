//! The poll loop: one thread, one `mio::Poll`, every connection in a slab.
//!
//! The loop only moves bytes and events: it accepts sockets, reads until `WouldBlock`, feeds
//! decoded lines to [`Chat`], and writes each connection's queued output once per turn. All chat
//! decisions live in [`crate::chat`]. A turn is:
//!
//! 1. wait for readiness (or the next timer);
//! 2. accept new clients, read ready clients once each (at most [`READ_BUDGET`] bytes and
//!    [`LINES_PER_TURN`] lines, so one flooder cannot starve the rest; the remainder is read
//!    next turn);
//! 3. reap connections that died during the turn, telling the chat so it saves their sessions;
//! 4. write every connection that got output, one `write()` each (a buffer about to pass its
//!    limit is written at once instead, before its reader is called slow);
//! 5. after a quiet second, give the output path's memory back.
//!
//! Idle connections cost nothing per turn: only connections with events or output are touched.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, ErrorKind, Read};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};

use crate::chat::{Chat, ClientId, Event, Outbox, SERVER_FULL};
use crate::cluster::{Action, Cluster};
use crate::config::Config;
use crate::connection::{is_transient, BufferPool, Connection, Flushed, Span, State, TurnOutput};
use crate::protocol::Decoded;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const SIGNALS: Token = Token(usize::MAX - 3);

/// The most lines of one connection handled in one turn: a line can become output for every
/// member of a room, so this bounds the output one client causes before everybody's buffers
/// are written (a flood of short lines would otherwise fill readers' buffers within one turn).
const LINES_PER_TURN: usize = 128;
/// Once this much output has been queued in a turn, the remaining input waits for the next turn,
/// after everything queued has been written. A storm of joins to a big room (every join is a
/// notice to every member) would otherwise build hundreds of megabytes of output buffers in one
/// turn, and the heap would keep them. Far above what a busy room produces in a turn (80 lines
/// to 5,000 members is 26 MB), so it never splits such a turn.
const TURN_OUTPUT: usize = 32 * 1024 * 1024;
/// The most bytes read from one connection in one turn before others get their turn.
pub const READ_BUDGET: usize = 256 * 1024;
/// Size of the one read buffer shared by all connections.
const READ_BUFFER: usize = 64 * 1024;
/// Listen backlog; the kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 4096;
/// How often saved sessions are checked for expiry.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// At most one "server full" warning is logged per this interval.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// How long a cluster node waits at start to be subscribed before it accepts clients.
const CLUSTER_START_WAIT: Duration = Duration::from_secs(3);
/// How long a connection that said goodbye (`/quit`, end of input) waits for its peer to take
/// its last lines before it is closed anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// How long a graceful shutdown waits for clients to take their last lines.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// After this long without output the pooled buffers are freed and the heap is trimmed.
const QUIET_RELEASE: Duration = Duration::from_secs(1);

/// Asks a running [`Server`] to shut down gracefully, from any thread.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
}

impl ShutdownHandle {
    /// Starts the graceful shutdown: clients get a notice, output is flushed, `run` returns.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Err(e) = self.waker.wake() {
            warn!("could not wake the poll loop for shutdown: {e}");
        }
    }
}

/// What came of trying to turn a client away while out of file descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TurnAway {
    /// A client was told the server is full and closed.
    Done,
    /// The backlog was empty.
    NobodyWaiting,
    /// No descriptor could be freed for it; accepting pauses briefly.
    Failed,
}

/// Why a connection is being dropped; only used for logging.
#[derive(Debug, Clone, Copy)]
enum DropReason {
    Eof,
    Error(ErrorKind),
    SlowConsumer,
}

/// The chat server: a listener, its connections and the chat state, driven by one poll loop.
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    core: Core,
    read_buf: Vec<u8>,
    /// Connections that used up a per-turn budget and still have input waiting.
    unfinished_reads: Vec<ClientId>,
    /// Closed while the process was out of descriptors, to accept and turn one client away.
    spare_fd: Option<File>,
    accept_paused_until: Option<Instant>,
    /// Clients turned away since the last warning about it, and when that was.
    refused: u64,
    last_refusal_warning: Option<Instant>,
    next_housekeeping: Instant,
    /// Connections read this turn: their output (the echo a closed-loop client waits for) is
    /// written first.
    readers: Vec<ClientId>,
    /// When to free pooled buffers and trim the heap, if the server stays quiet until then.
    release_at: Option<Instant>,
    /// Loop turns so far; a connection is read at most once per turn.
    turns: u64,
    max_connections: usize,
    max_line: usize,
}

/// The part of the server the outbox needs: connections, chat, and the lists built in a turn.
struct Core {
    connections: Slab<Connection>,
    chat: Chat,
    /// Connections with output queued this turn.
    dirty: Vec<ClientId>,
    /// Connections to drop at the end of this turn.
    doomed: Vec<(ClientId, DropReason)>,
    /// Output buffers of connections that have nothing to send.
    pool: BufferPool,
    /// Bytes queued for clients this turn.
    queued: usize,
    /// This turn's lines, each stored once; connections hold spans of it until the flush.
    turn: TurnOutput,
    /// Where a connection's lines of the turn are gathered for its write.
    scratch: Vec<u8>,
    /// Connections saying goodbye, oldest first, with the time by which they are closed even
    /// if the peer never takes its last lines (and the peer, since slab keys are reused).
    closing: VecDeque<(Instant, ClientId, SocketAddr)>,
    sendq: usize,
    /// Cluster mode's link to Redis; `None` standalone.
    cluster: Option<Cluster>,
}

/// The chat's [`Outbox`] on top of the connections (and, in cluster mode, Redis).
struct LoopOutbox<'a> {
    connections: &'a mut Slab<Connection>,
    cluster: Option<&'a mut Cluster>,
    dirty: &'a mut Vec<ClientId>,
    doomed: &'a mut Vec<(ClientId, DropReason)>,
    pool: &'a mut BufferPool,
    queued: &'a mut usize,
    turn: &'a mut TurnOutput,
    scratch: &'a mut Vec<u8>,
    closing: &'a mut VecDeque<(Instant, ClientId, SocketAddr)>,
    sendq: usize,
}

impl LoopOutbox<'_> {
    fn is_open(&self, id: ClientId) -> bool {
        self.connections
            .get(id)
            .is_some_and(|c| c.state == State::Open)
    }

    /// Queues the line at `span` of the turn for `to`, if it is open.
    fn queue(&mut self, to: ClientId, span: Span) {
        let Some(conn) = self.connections.get_mut(to) else {
            return;
        };
        if conn.state != State::Open {
            return;
        }
        if !conn.queue(span, self.sendq, self.pool) {
            // A burst into a big room can fill the buffer of a client that reads fine within
            // one turn: give the socket what it takes now before calling the client slow.
            let reason = match conn.flush(self.turn, self.scratch, self.pool) {
                Ok(_) if conn.queue(span, self.sendq, self.pool) => None,
                Ok(_) => Some(DropReason::SlowConsumer),
                Err(e) => Some(DropReason::Error(e.kind())),
            };
            if let Some(reason) = reason {
                conn.state = State::Doomed;
                conn.discard_output(self.pool);
                self.doomed.push((to, reason));
                return;
            }
        }
        *self.queued += span.len();
        mark_dirty(conn, to, self.dirty);
    }
}

impl Outbox for LoopOutbox<'_> {
    fn send(&mut self, to: ClientId, line: &[u8]) {
        // Stored before `queue` looks the connection up: a line for a connection that is gone
        // only costs its bytes in this turn's buffer.
        let span = self.turn.store_direct(line);
        self.queue(to, span);
    }

    fn send_to_all(&mut self, members: &[ClientId], except: Option<ClientId>, line: &[u8]) {
        let span = self.turn.store_shared(line);
        for &member in members {
            if Some(member) != except {
                self.queue(member, span);
            }
        }
    }

    fn close(&mut self, to: ClientId) {
        if let Some(conn) = self.connections.get_mut(to) {
            if conn.state == State::Open {
                conn.state = State::Closing;
                mark_dirty(conn, to, self.dirty);
                self.closing
                    .push_back((Instant::now() + CLOSE_GRACE, to, conn.peer));
            }
        }
    }

    fn publish(&mut self, event: &Event<'_>) {
        if let Some(cluster) = self.cluster.as_deref_mut() {
            cluster.publish(event);
        }
    }

    fn claim_nick(&mut self, client: ClientId, nick: &str, rename: bool) {
        if let Some(cluster) = self.cluster.as_deref_mut() {
            cluster.claim(client, nick, rename);
        }
    }
}

fn mark_dirty(conn: &mut Connection, id: ClientId, dirty: &mut Vec<ClientId>) {
    if !conn.dirty {
        conn.dirty = true;
        dirty.push(id);
    }
}

impl Core {
    fn outbox(&mut self) -> (&mut Chat, LoopOutbox<'_>) {
        (
            &mut self.chat,
            LoopOutbox {
                connections: &mut self.connections,
                cluster: self.cluster.as_mut(),
                dirty: &mut self.dirty,
                doomed: &mut self.doomed,
                pool: &mut self.pool,
                queued: &mut self.queued,
                turn: &mut self.turn,
                scratch: &mut self.scratch,
                closing: &mut self.closing,
                sendq: self.sendq,
            },
        )
    }

    /// Carries out one piece of cluster news on the chat.
    fn apply_cluster_action(&mut self, action: Action, now: Instant) {
        let (chat, mut outbox) = self.outbox();
        match action {
            Action::Deliver(node, message) => {
                if let Some(event) = message.event() {
                    chat.deliver_remote(&node, &event, &mut outbox);
                }
            }
            Action::FinishClaim(client, nick, outcome) => {
                chat.finish_claim(client, &nick, outcome, now, &mut outbox);
            }
            Action::Roster(node, rooms) => chat.replace_remote_roster(&node, &rooms),
            Action::ForgetNode(node) => chat.forget_node(&node, &mut outbox),
            Action::SendRoster => {
                let roster = chat.local_roster();
                if let Some(cluster) = outbox.cluster {
                    cluster.send_roster(roster);
                }
            }
            Action::Connected | Action::Restored => {
                if matches!(action, Action::Restored) {
                    info!("cluster: Redis is back; cross-node delivery restored");
                    chat.notify_all("Cross-node delivery restored.", &mut outbox);
                }
                chat.republish_sessions(&mut outbox);
                let (nicks, roster) = (chat.local_nicks(), chat.local_roster());
                if let Some(cluster) = outbox.cluster {
                    cluster.rejoin(nicks);
                    cluster.send_roster(roster);
                }
            }
            Action::Lost => {
                chat.forget_remote_users();
                chat.notify_all(
                    "Cross-node delivery paused: this server lost contact with the cluster. \
                     Your rooms keep working here; it will reconnect by itself.",
                    &mut outbox,
                );
            }
        }
    }

    fn doom(&mut self, id: ClientId, reason: DropReason) {
        if let Some(conn) = self.connections.get_mut(id) {
            if conn.state != State::Doomed {
                conn.state = State::Doomed;
                self.doomed.push((id, reason));
            }
        }
    }
}

impl Server {
    /// Binds the listener (SO_REUSEADDR, large backlog) and prepares the loop.
    pub fn bind(config: &Config) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = bind_listener(config.listen)?;
        let local_addr = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let cluster = match &config.redis {
            Some(url) => {
                let node = config.node_name();
                let ttl = Duration::from_secs(config.session_ttl);
                let mut cluster = Cluster::start(url, node, ttl, Arc::clone(&waker))
                    .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
                if !cluster.wait_until_subscribed(CLUSTER_START_WAIT) {
                    warn!("cluster: no Redis at {url} yet; serving local clients, retrying");
                }
                info!("cluster mode: node {} on {url}", cluster.node());
                Some(cluster)
            }
            None => None,
        };
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            waker,
            stop: Arc::new(AtomicBool::new(false)),
            signals: None,
            core: Core {
                connections: Slab::new(),
                chat: Chat::new(config.chat()),
                dirty: Vec::new(),
                doomed: Vec::new(),
                pool: BufferPool::default(),
                queued: 0,
                turn: TurnOutput::default(),
                scratch: Vec::new(),
                closing: VecDeque::new(),
                sendq: config.sendq as usize,
                cluster,
            },
            read_buf: vec![0; READ_BUFFER],
            unfinished_reads: Vec::new(),
            spare_fd: File::open("/dev/null").ok(),
            accept_paused_until: None,
            refused: 0,
            last_refusal_warning: None,
            next_housekeeping: Instant::now() + HOUSEKEEPING,
            readers: Vec::new(),
            release_at: None,
            turns: 0,
            max_connections: config.connection_limit(),
            max_line: config.max_line as usize,
        })
    }

    /// The address the listener is bound to (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops this server from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            waker: Arc::clone(&self.waker),
            stop: Arc::clone(&self.stop),
        }
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
            self.local_addr, self.max_connections
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
            for id in std::mem::take(&mut self.unfinished_reads) {
                self.read_from(id, now);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_clients(now),
                    WAKER => {}
                    SIGNALS => self.take_signals(),
                    Token(id) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read_from(id, now);
                        }
                        if event.is_writable() {
                            if let Some(conn) = self.core.connections.get_mut(id) {
                                if conn.pending() > 0 {
                                    mark_dirty(conn, id, &mut self.core.dirty);
                                }
                            }
                        }
                    }
                }
            }
            self.housekeeping(now);
            self.take_cluster_news(now);
            self.settle(now);
            self.release_idle_memory(now);
        }
        self.shut_down();
        Ok(())
    }

    /// Sleeps until the next timer; not at all while input is left over from the last turn.
    fn poll_timeout(&self) -> Option<Duration> {
        if !self.unfinished_reads.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut deadline = None;
        if self.core.chat.saved_count() > 0 {
            deadline = Some(self.next_housekeeping);
        }
        if let Some(until) = self.accept_paused_until {
            deadline = Some(deadline.map_or(until, |d: Instant| d.min(until)));
        }
        if let Some(&(until, _, _)) = self.core.closing.front() {
            deadline = Some(deadline.map_or(until, |d: Instant| d.min(until)));
        }
        if let Some(at) = self.release_at {
            deadline = Some(deadline.map_or(at, |d: Instant| d.min(at)));
        }
        if let Some(cluster) = &self.core.cluster {
            let tick = cluster.next_tick();
            deadline = Some(deadline.map_or(tick, |d: Instant| d.min(tick)));
        }
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

    fn housekeeping(&mut self, now: Instant) {
        if self.accept_paused_until.is_some_and(|until| now >= until) {
            self.accept_paused_until = None;
            self.accept_clients(now);
        }
        self.close_overdue(now);
        if now >= self.next_housekeeping {
            self.next_housekeeping = now + HOUSEKEEPING;
            self.core.chat.expire_sessions(now);
        }
    }

    /// After a quiet spell, gives the memory of the output path back. Only between turns: while
    /// a turn runs, connections hold spans of its output.
    fn release_idle_memory(&mut self, now: Instant) {
        if self.release_at.is_some_and(|at| now >= at) {
            self.release_at = None;
            self.core.pool.release();
            self.core.turn = TurnOutput::default();
            self.core.scratch = Vec::new();
            trim_heap();
        }
    }

    /// Closes connections whose peer has not taken its last lines within [`CLOSE_GRACE`].
    fn close_overdue(&mut self, now: Instant) {
        while let Some(&(until, id, peer)) = self.core.closing.front() {
            if until > now {
                return;
            }
            self.core.closing.pop_front();
            let overdue = self
                .core
                .connections
                .get(id)
                .is_some_and(|c| c.state == State::Closing && c.peer == peer);
            if overdue {
                debug!("client {id} ({peer}) did not take its last lines; closing");
                self.close(id);
            }
        }
    }

    /// Applies what the Redis threads reported, and the cluster's heartbeat.
    fn take_cluster_news(&mut self, now: Instant) {
        let Some(cluster) = self.core.cluster.as_mut() else {
            return;
        };
        let mut actions = cluster.drain(now);
        if now >= cluster.next_tick() {
            actions.extend(cluster.tick(now).into_iter().map(Action::ForgetNode));
        }
        for action in actions {
            self.core.apply_cluster_action(action, now);
        }
    }

    /// Reaps dead connections and flushes output until nothing is left to do this turn.
    fn settle(&mut self, now: Instant) {
        loop {
            self.reap(now);
            self.flush_dirty(now);
            if self.core.doomed.is_empty() {
                return;
            }
        }
    }

    fn accept_clients(&mut self, now: Instant) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, addr)) => self.admit(stream, addr, now),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if is_transient(&e) || e.kind() == ErrorKind::ConnectionAborted => {}
                Err(e) if is_out_of_descriptors(&e) => match self.turn_one_away(now) {
                    TurnAway::Done => {}
                    // Linux says EMFILE before it looks at the backlog; nobody is waiting.
                    TurnAway::NobodyWaiting => return,
                    TurnAway::Failed => {
                        let due = self
                            .last_refusal_warning
                            .is_none_or(|last| now.duration_since(last) >= REFUSAL_LOG_INTERVAL);
                        if due {
                            warn!("out of file descriptors ({e}); pausing accepts briefly");
                            self.last_refusal_warning = Some(now);
                        }
                        self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                        return;
                    }
                },
                Err(e) => {
                    warn!("accept failed: {e}");
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    /// Out of descriptors: frees the spare one to accept a client and tell it the server is full.
    ///
    /// Without this the client would sit in the backlog and the listener would keep reporting
    /// readiness that cannot be served.
    fn turn_one_away(&mut self, now: Instant) -> TurnAway {
        if self.spare_fd.take().is_none() {
            return TurnAway::Failed;
        }
        let outcome = match self.listener.as_ref().map(TcpListener::accept) {
            Some(Ok((stream, addr))) => {
                self.refuse(stream, addr, now, "out of file descriptors");
                TurnAway::Done
            }
            Some(Err(e)) if e.kind() == ErrorKind::WouldBlock => TurnAway::NobodyWaiting,
            _ => TurnAway::Failed,
        };
        self.spare_fd = File::open("/dev/null").ok();
        if self.spare_fd.is_none() {
            return TurnAway::Failed;
        }
        outcome
    }

    fn admit(&mut self, mut stream: TcpStream, addr: SocketAddr, now: Instant) {
        if self.core.connections.len() >= self.max_connections {
            self.refuse(stream, addr, now, "connection limit reached");
            return;
        }
        let entry = self.core.connections.vacant_entry();
        let id = entry.key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(id), interest)
        {
            warn!("{addr}: could not register connection: {e}");
            return;
        }
        entry.insert(Connection::new(stream, addr));
        debug!("client {id} connected from {addr}");
        let (chat, mut outbox) = self.core.outbox();
        chat.connect(id, &mut outbox);
        // A client that writes as soon as it is connected (a bot, a reconnecting client sending
        // its /nick) has its first lines here already: answered in this turn, the greeting and
        // the answers leave in one write instead of two turns apart. For a person at a prompt
        // this read only finds nothing.
        self.read_from(id, now);
    }

    /// Reads from `id` until `WouldBlock`, EOF, an error, or one of the per-turn budgets.
    fn read_from(&mut self, id: ClientId, now: Instant) {
        let mut budget = READ_BUDGET;
        let mut lines = LINES_PER_TURN;
        // Once per turn: the per-turn budgets are per client, and a client left over from the
        // last turn may have a readable event in this one too.
        match self.core.connections.get_mut(id) {
            Some(conn) if conn.read_in_turn != self.turns => conn.read_in_turn = self.turns,
            _ => return,
        }
        self.readers.push(id);
        if self.core.queued >= TURN_OUTPUT || !self.decode_unread(id, &mut lines, now) {
            self.unfinished_reads.push(id);
            return;
        }
        loop {
            let Some(conn) = self.core.connections.get_mut(id) else {
                return;
            };
            if conn.state != State::Open {
                return;
            }
            match conn.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    self.end_of_input(id, now);
                    return;
                }
                Ok(n) => {
                    log::trace!(
                        "client {id}: read \"{}\"",
                        self.read_buf[..n].escape_ascii()
                    );
                    let input = &self.read_buf[..n];
                    let used = decode(&mut self.core, self.max_line, id, input, &mut lines, now);
                    if used < n {
                        // Out of lines for this turn: the rest waits for the next one.
                        if let Some(conn) = self.core.connections.get_mut(id) {
                            conn.unread.extend_from_slice(&self.read_buf[used..n]);
                        }
                        self.unfinished_reads.push(id);
                        return;
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 || self.core.queued >= TURN_OUTPUT {
                        self.unfinished_reads.push(id);
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.core.doom(id, DropReason::Error(e.kind()));
                    return;
                }
            }
        }
    }

    /// Decodes input of `id` left over from an earlier turn; false if some is still left.
    fn decode_unread(&mut self, id: ClientId, lines: &mut usize, now: Instant) -> bool {
        let Some(conn) = self.core.connections.get_mut(id) else {
            return true;
        };
        if conn.unread.is_empty() {
            return true;
        }
        let mut unread = std::mem::take(&mut conn.unread);
        let used = decode(&mut self.core, self.max_line, id, &unread, lines, now);
        unread.drain(..used);
        let done = unread.is_empty();
        if let Some(conn) = self.core.connections.get_mut(id) {
            conn.unread = if done { Vec::new() } else { unread };
        }
        done
    }

    /// The client closed its side. Its last answers may still be queued and it may still be
    /// reading (a half close, as `nc -N` does), so they are written before the connection
    /// closes; the chat lets it go now.
    fn end_of_input(&mut self, id: ClientId, now: Instant) {
        if self.core.connections.get(id).map_or(0, Connection::pending) == 0 {
            self.core.doom(id, DropReason::Eof);
            return;
        }
        let (chat, mut outbox) = self.core.outbox();
        outbox.close(id);
        chat.disconnect(id, now, &mut outbox);
    }

    /// Drops the connections doomed this turn and lets the chat save their sessions.
    fn reap(&mut self, now: Instant) {
        while let Some((id, reason)) = self.core.doomed.pop() {
            if let Some(conn) = self.core.connections.try_remove(id) {
                let peer = conn.peer;
                self.forget(conn);
                match reason {
                    DropReason::SlowConsumer => info!(
                        "client {id} ({peer}) dropped: output buffer passed {} bytes (not reading)",
                        self.core.sendq
                    ),
                    DropReason::Eof => debug!("client {id} ({peer}) disconnected"),
                    DropReason::Error(kind) => {
                        debug!("client {id} ({peer}) disconnected: {kind}")
                    }
                }
            }
            let (chat, mut outbox) = self.core.outbox();
            chat.disconnect(id, now, &mut outbox);
        }
    }

    fn forget(&mut self, mut conn: Connection) {
        if let Err(e) = self.poll.registry().deregister(&mut conn.stream) {
            debug!("deregister failed: {e}");
        }
    }

    /// One write per connection that has output; closes those that finished saying goodbye.
    ///
    /// The connections read this turn go first: a client that sent lines and waits for their
    /// echo before sending more (a closed loop) gets it early and its next lines arrive while
    /// the rest are written, so the next turn carries a bigger batch and every connection's
    /// single write carries more lines.
    fn flush_dirty(&mut self, now: Instant) {
        self.core.queued = 0;
        let readers = std::mem::take(&mut self.readers);
        let dirty = std::mem::take(&mut self.core.dirty);
        if !dirty.is_empty() {
            self.release_at = Some(now + QUIET_RELEASE);
        }
        for &id in readers.iter().chain(&dirty) {
            let Some(conn) = self.core.connections.get_mut(id) else {
                continue;
            };
            if !conn.dirty {
                continue;
            }
            conn.dirty = false;
            if conn.state == State::Doomed {
                continue;
            }
            let flushed = conn.flush(&self.core.turn, &mut self.core.scratch, &mut self.core.pool);
            match flushed {
                Ok(Flushed::All) if conn.state == State::Closing => self.close(id),
                Ok(_) => {}
                Err(e) => self.core.doom(id, DropReason::Error(e.kind())),
            }
        }
        // Every connection has taken its lines of the turn (doomed ones are dropped unread).
        self.core.turn.clear();
        // Keep the lists' allocations for the next turn.
        let (mut readers, mut dirty) = (readers, dirty);
        readers.clear();
        dirty.clear();
        self.readers = readers;
        if self.core.dirty.is_empty() {
            self.core.dirty = dirty;
        }
    }

    /// Tells a client the server is full and closes it; warns now and then, not per client.
    fn refuse(&mut self, mut stream: TcpStream, addr: SocketAddr, now: Instant, why: &str) {
        use std::io::Write;
        // Best effort: a fresh socket's send buffer takes one short line.
        let _ = stream.write(SERVER_FULL);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        debug!("{addr}: refused ({why})");
        self.refused += 1;
        let due = self
            .last_refusal_warning
            .is_none_or(|last| now.duration_since(last) >= REFUSAL_LOG_INTERVAL);
        if due {
            warn!(
                "server full ({why}): turned away {} client(s) since the last warning",
                self.refused
            );
            self.refused = 0;
            self.last_refusal_warning = Some(now);
        }
    }

    /// Closes a connection whose goodbye has been written; the chat already forgot it.
    fn close(&mut self, id: ClientId) {
        if let Some(mut conn) = self.core.connections.try_remove(id) {
            conn.close_gracefully(&mut self.read_buf);
            self.forget(conn);
            debug!("client {id} closed");
        }
    }

    /// Tells every client goodbye and gives them a moment to read it.
    fn shut_down(&mut self) {
        info!(
            "shutting down: saying goodbye to {} clients",
            self.core.connections.len()
        );
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let (chat, mut outbox) = self.core.outbox();
        chat.shutdown(&mut outbox);
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            self.settle(now);
            if self.core.connections.is_empty() || now >= deadline {
                break;
            }
            if let Err(e) = self.poll.poll(&mut events, Some(deadline - now)) {
                if e.kind() != ErrorKind::Interrupted {
                    warn!("poll failed during shutdown: {e}");
                    break;
                }
            }
            for event in events.iter() {
                let Token(id) = event.token();
                if event.is_writable() {
                    if let Some(conn) = self.core.connections.get_mut(id) {
                        mark_dirty(conn, id, &mut self.core.dirty);
                    }
                }
                // A peer that only closed its sending side may still read its goodbye.
                if event.is_error() {
                    self.core.doom(id, DropReason::Eof);
                }
            }
        }
        info!(
            "stopped ({} clients had not taken their last lines)",
            self.core.connections.len()
        );
        if let Some(cluster) = self.core.cluster.take() {
            cluster.stop(self.core.chat.local_nicks());
        }
    }
}

/// Hands the lines in `input` from client `id` to the chat, at most `lines` of them (taken
/// off that budget); returns how many bytes were used. The rest must be fed again later.
fn decode(
    core: &mut Core,
    max_line: usize,
    id: ClientId,
    input: &[u8],
    lines: &mut usize,
    now: Instant,
) -> usize {
    let Some(conn) = core.connections.get_mut(id) else {
        return input.len();
    };
    // The decoder is taken out so the chat can queue output to this same connection.
    let mut decoder = std::mem::take(&mut conn.decoder);
    let (chat, mut outbox) = core.outbox();
    let used = decoder.feed_lines(input, max_line, lines, |decoded| {
        // A client dropped in the middle of its input (it overflowed its output buffer) is
        // not worth any more work.
        if !outbox.is_open(id) {
            return;
        }
        match decoded {
            Decoded::Line(text) => chat.handle_line(id, text, now, &mut outbox),
            Decoded::Refused(error) => chat.reject_line(id, error, &mut outbox),
            Decoded::Telnet(answer) => outbox.send(id, answer),
        }
    });
    if let Some(conn) = core.connections.get_mut(id) {
        conn.decoder = decoder;
    }
    used
}

/// Creates the listening socket: SO_REUSEADDR so a restart can bind at once, a large backlog,
/// and the options every client connection needs, which accepted sockets inherit (five fewer
/// system calls per connection than setting them on each).
fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    tune_socket(&socket)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// TCP_NODELAY for prompt small lines, keepalive so vanished peers are noticed without traffic.
fn tune_socket(socket: &Socket) -> io::Result<()> {
    socket.set_nodelay(true)?;
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    socket.set_tcp_keepalive(&keepalive)
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

fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::SockRef;

    /// Client sockets get their options only through the listener, so check they arrive.
    #[test]
    fn accepted_sockets_inherit_nodelay_and_keepalive() -> io::Result<()> {
        let listener = bind_listener(([127, 0, 0, 1], 0).into())?;
        let _client = std::net::TcpStream::connect(listener.local_addr()?)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let accepted = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e),
            }
        };
        let socket = SockRef::from(&accepted);
        assert!(socket.nodelay()?);
        assert!(socket.keepalive()?);
        assert_eq!(socket.keepalive_time()?, Duration::from_secs(30));
        assert_eq!(socket.keepalive_interval()?, Duration::from_secs(10));
        assert_eq!(socket.keepalive_retries()?, 3);
        Ok(())
    }
}
