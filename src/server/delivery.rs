//! Delivery: the chat's [`Outbox`] on top of the connections.
//!
//! A line the chat hands over is stored once in this turn's [`TurnOutput`]; each connection it
//! is for notes a [`Span`] of it and goes on the list of connections to write. At the end of the
//! turn [`Delivery::flush`] gives every such connection one `write()`. A connection whose output
//! would pass `--sendq` is written at once and, if that does not make room, doomed as a slow
//! reader (the way Redis treats client output buffer limits): nobody else ever waits for it.
//!
//! In cluster mode the events the chat publishes and the nick claims it asks for go to Redis
//! through the same outbox; with `--data-dir` the changes to its durable state go to the
//! storage thread's queue (never waiting for it).

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::debug;
use slab::Slab;

use super::auth::AuthWorker;
use super::connection::{Connection, Flushed, State};
use super::metrics::{Disconnect, Metrics};
use super::output::{BufferPool, Span, TurnOutput};
use crate::chat::{AuthJob, Change, ClientId, Event, NickClaim, Outbox};
use crate::cluster::Cluster;
use crate::store::Store;

/// Once this much output has been queued in a turn, the remaining input waits for the next turn,
/// after everything queued has been written. A storm of joins to a big room (every join is a
/// notice to every member) would otherwise build hundreds of megabytes of output buffers in one
/// turn, and the heap would keep them. Far above what a busy room produces in a turn (80 lines
/// to 5,000 members is 26 MB), so it never splits such a turn.
const TURN_OUTPUT: usize = 32 * 1024 * 1024;

/// How long a connection that said goodbye (`/quit`, end of input) waits for its peer to take
/// its last lines before it is closed anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// Why a connection is being dropped, for the log and the metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DropReason {
    /// The peer closed the connection.
    Eof,
    /// Reading or writing failed.
    Error(ErrorKind),
    /// Its output passed `--sendq`: it does not read.
    SlowConsumer,
    /// Near the memory limit, its unread output was among the biggest.
    Memory,
}

impl DropReason {
    /// How the metrics count it.
    pub(crate) fn disconnect(self) -> Disconnect {
        match self {
            DropReason::Eof => Disconnect::Closed,
            DropReason::Error(_) => Disconnect::Error,
            DropReason::SlowConsumer => Disconnect::SlowReader,
            DropReason::Memory => Disconnect::Memory,
        }
    }
}

/// The connections and everything the output of one loop turn needs.
pub(crate) struct Delivery {
    /// Every client connection, by the slab key that is its [`ClientId`].
    pub(crate) connections: Slab<Connection>,
    /// Connections with output queued this turn.
    dirty: Vec<ClientId>,
    /// Connections to drop at the end of this turn.
    pub(crate) doomed: Vec<(ClientId, DropReason)>,
    /// Output buffers of connections that have nothing to send.
    pool: BufferPool,
    /// Bytes queued for clients this turn.
    queued: usize,
    /// Bytes queued for all clients and not written yet.
    pending_total: usize,
    /// Capacity of the connections' own output buffers: what their unwritten output really
    /// takes in memory (a buffer keeps the capacity it grew to until it is emptied).
    buffer_bytes: usize,
    /// The most memory the output of all clients together may take (under a memory limit).
    output_budget: Option<usize>,
    /// The most [`Delivery::output_memory`] has been, for the metrics.
    output_memory_peak: usize,
    /// Set when the output's memory passed `output_budget`: reading stops for the turn, and
    /// the loop drops the clients with the biggest queues.
    over_budget: bool,
    /// This turn's lines, each stored once; connections hold spans of it until the flush.
    turn: TurnOutput,
    /// Where a connection's lines of the turn are gathered for its write.
    scratch: Vec<u8>,
    /// Connections saying goodbye, oldest first, with the time by which they are closed even
    /// if the peer never takes its last lines (and the peer, since slab keys are reused).
    closing: VecDeque<(Instant, ClientId, SocketAddr)>,
    /// The per-connection output limit in bytes.
    sendq: usize,
    /// Cluster mode's link to Redis; `None` standalone.
    pub(crate) cluster: Option<Cluster>,
    /// The password worker; `None` in cluster mode (owned nicks are a standalone feature).
    pub(crate) auth: Option<AuthWorker>,
    /// The counters of `--metrics`.
    pub(crate) metrics: Metrics,
    /// How a close the chat asks for is counted: `/quit`, or the shutdown once it began.
    pub(crate) chat_close: Disconnect,
    /// The data dir's storage thread; `None` without `--data-dir`.
    pub(crate) store: Option<Store>,
}

impl Delivery {
    /// No connections yet; `sendq` bytes of output at most per connection.
    pub(crate) fn new(sendq: usize, cluster: Option<Cluster>, auth: Option<AuthWorker>) -> Self {
        Self {
            connections: Slab::new(),
            dirty: Vec::new(),
            doomed: Vec::new(),
            pool: BufferPool::default(),
            queued: 0,
            pending_total: 0,
            buffer_bytes: 0,
            output_budget: None,
            output_memory_peak: 0,
            over_budget: false,
            turn: TurnOutput::default(),
            scratch: Vec::new(),
            closing: VecDeque::new(),
            sendq,
            cluster,
            auth,
            metrics: Metrics::default(),
            chat_close: Disconnect::Quit,
            store: None,
        }
    }

    /// The connection of `id`, if it exists.
    pub(crate) fn get_mut(&mut self, id: ClientId) -> Option<&mut Connection> {
        self.connections.get_mut(id.index())
    }

    /// Whether this turn has queued all the output it may: past [`TURN_OUTPUT`] (or a quarter
    /// of the output budget), or past the output budget, input waits for the next turn.
    pub(crate) fn turn_full(&self) -> bool {
        let turn_limit = self
            .output_budget
            .map_or(TURN_OUTPUT, |budget| (budget / 4).min(TURN_OUTPUT));
        self.queued >= turn_limit || self.over_budget
    }

    /// Limits the output all clients together may have waiting (`None`: no limit but each
    /// client's `--sendq`).
    pub(crate) fn set_output_budget(&mut self, budget: Option<usize>) {
        self.output_budget = budget;
    }

    /// The output budget, if it is passed: then the biggest queues must go.
    pub(crate) fn over_budget(&self) -> Option<usize> {
        self.output_budget.filter(|_| self.over_budget)
    }

    /// Bytes queued for all clients and not written yet.
    pub(crate) fn pending_total(&self) -> usize {
        self.pending_total
    }

    /// The memory the output path holds, or may take before the turn ends: the connections'
    /// buffers (their capacity, not only what they hold), the pool of empty ones, and this
    /// turn's lines not written yet, which the flush copies into buffers for the sockets that
    /// do not take them. Never less than the bytes pending.
    pub(crate) fn output_memory(&self) -> usize {
        let held = self.buffer_bytes + self.pool.bytes() + self.queued;
        held.max(self.pending_total)
    }

    /// The most the output's memory has been since the start.
    pub(crate) fn output_memory_peak(&self) -> usize {
        self.output_memory_peak
    }

    /// Sets `over_budget` from the output's memory now (after every line queued and every
    /// write, so a turn stops taking input as soon as it passes the budget).
    fn check_budget(&mut self) {
        let memory = self.output_memory();
        self.output_memory_peak = self.output_memory_peak.max(memory);
        self.over_budget = self.output_budget.is_some_and(|budget| memory > budget);
    }

    /// A connection taken out of the slab: what it still had queued is no longer pending, and
    /// its buffer is freed.
    pub(crate) fn forget(&mut self, conn: &Connection) {
        self.pending_total = self.pending_total.saturating_sub(conn.pending());
        self.buffer_bytes = self.buffer_bytes.saturating_sub(conn.buffer_bytes());
        self.check_budget();
    }

    /// The per-connection output limit in bytes.
    pub(crate) fn sendq(&self) -> usize {
        self.sendq
    }

    /// Puts `id` on the list of connections to write this turn.
    pub(crate) fn mark_dirty(&mut self, id: ClientId) {
        if let Some(conn) = self.connections.get_mut(id.index()) {
            add_to_dirty(conn, id, &mut self.dirty);
        }
    }

    /// Drops `id` at the end of this turn, without writing what it still has queued.
    pub(crate) fn doom(&mut self, id: ClientId, reason: DropReason) {
        if let Some(conn) = self.connections.get_mut(id.index()) {
            if conn.state != State::Doomed {
                conn.state = State::Doomed;
                self.doomed.push((id, reason));
            }
        }
    }

    /// The earliest time by which a connection saying goodbye is closed anyway.
    pub(crate) fn next_close_deadline(&self) -> Option<Instant> {
        self.closing.front().map(|&(until, _, _)| until)
    }

    /// The next connection still saying goodbye past its deadline (its peer never took its
    /// last lines), for the loop to close.
    pub(crate) fn next_overdue_goodbye(&mut self, now: Instant) -> Option<ClientId> {
        while let Some(&(until, id, peer)) = self.closing.front() {
            if until > now {
                return None;
            }
            self.closing.pop_front();
            let overdue = self
                .connections
                .get(id.index())
                .is_some_and(|c| c.state == State::Closing && c.peer == peer);
            if overdue {
                debug!(
                    "client {} ({peer}) did not take its last lines; closing",
                    id.index()
                );
                return Some(id);
            }
        }
        None
    }

    /// One write per connection that has output: `first` (the connections read this turn)
    /// before the rest. Connections that finished saying goodbye are added to `finished`, for
    /// the loop to close. Returns whether anything was written.
    ///
    /// The connections read this turn go first: a client that sent lines and waits for their
    /// echo before sending more (a closed loop) gets it early and its next lines arrive while
    /// the rest are written, so the next turn carries a bigger batch and every connection's
    /// single write carries more lines.
    pub(crate) fn flush(&mut self, first: &[ClientId], finished: &mut Vec<ClientId>) -> bool {
        self.queued = 0;
        let dirty = std::mem::take(&mut self.dirty);
        let wrote = !dirty.is_empty();
        for &id in first.iter().chain(&dirty) {
            let Some(conn) = self.connections.get_mut(id.index()) else {
                continue;
            };
            if !conn.dirty {
                continue;
            }
            conn.dirty = false;
            if conn.state == State::Doomed {
                continue;
            }
            let (before, held) = (conn.pending(), conn.buffer_bytes());
            let flushed = conn.flush(&self.turn, &mut self.scratch, &mut self.pool);
            let written = before - conn.pending();
            self.metrics.bytes_sent += written as u64;
            self.pending_total = self.pending_total.saturating_sub(written);
            self.buffer_bytes = self.buffer_bytes.saturating_sub(held) + conn.buffer_bytes();
            match flushed {
                Ok(Flushed::All) if conn.state == State::Closing => finished.push(id),
                Ok(_) => {}
                Err(e) => self.doom(id, DropReason::Error(e.kind())),
            }
        }
        // Every connection has taken its lines of the turn (doomed ones are dropped unread).
        self.turn.clear();
        self.check_budget();
        // Keep the list's allocation for the next turn.
        let mut dirty = dirty;
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
        wrote
    }

    /// Gives the memory of the output path back (between turns only: while a turn runs,
    /// connections hold spans of its output).
    pub(crate) fn release_memory(&mut self) {
        self.pool.release();
        self.turn = TurnOutput::default();
        self.scratch = Vec::new();
    }

    /// Closes `to` once what is queued for it is written (or [`CLOSE_GRACE`] passed); the
    /// metrics count it as ended for `why`.
    pub(crate) fn close_for(&mut self, to: ClientId, why: Disconnect) {
        if let Some(conn) = self.connections.get_mut(to.index()) {
            if conn.state == State::Open {
                conn.state = State::Closing;
                conn.ending = why;
                add_to_dirty(conn, to, &mut self.dirty);
                self.closing
                    .push_back((Instant::now() + CLOSE_GRACE, to, conn.peer));
            }
        }
    }

    /// Queues the line at `span` of the turn for `to`, if it is open.
    fn queue(&mut self, to: ClientId, span: Span) {
        let Some(conn) = self.connections.get_mut(to.index()) else {
            return;
        };
        if conn.state != State::Open {
            return;
        }
        if !conn.queue(span, self.sendq, &mut self.pool) {
            // A burst into a big room can fill the buffer of a client that reads fine within
            // one turn: give the socket what it takes now before calling the client slow.
            let (before, held) = (conn.pending(), conn.buffer_bytes());
            let flushed = conn.flush(&self.turn, &mut self.scratch, &mut self.pool);
            let written = before - conn.pending();
            self.metrics.bytes_sent += written as u64;
            self.pending_total = self.pending_total.saturating_sub(written);
            self.buffer_bytes = self.buffer_bytes.saturating_sub(held) + conn.buffer_bytes();
            let reason = match flushed {
                Ok(_) if conn.queue(span, self.sendq, &mut self.pool) => None,
                Ok(_) => Some(DropReason::SlowConsumer),
                Err(e) => Some(DropReason::Error(e.kind())),
            };
            if let Some(reason) = reason {
                conn.state = State::Doomed;
                self.pending_total = self.pending_total.saturating_sub(conn.pending());
                self.buffer_bytes = self.buffer_bytes.saturating_sub(conn.buffer_bytes());
                conn.discard_output(&mut self.pool);
                self.doomed.push((to, reason));
                self.check_budget();
                return;
            }
        }
        self.queued += span.len();
        self.pending_total += span.len();
        add_to_dirty(conn, to, &mut self.dirty);
        self.check_budget();
    }
}

impl Outbox for Delivery {
    fn send(&mut self, to: ClientId, line: &[u8]) {
        // Stored before `queue` looks the connection up: a line for a connection that is gone
        // only costs its bytes in this turn's buffer.
        let span = self.turn.store_direct(line);
        self.queue(to, span);
        self.metrics.deliveries += 1;
    }

    fn send_to_all(&mut self, members: &[ClientId], except: Option<ClientId>, line: &[u8]) {
        let span = self.turn.store_shared(line);
        let mut reached = 0;
        for &member in members {
            if Some(member) != except {
                self.queue(member, span);
                reached += 1;
            }
        }
        self.metrics.deliveries += reached;
    }

    fn close(&mut self, to: ClientId) {
        self.close_for(to, self.chat_close);
    }

    fn publish(&mut self, event: &Event<'_>) {
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.publish(event);
            self.metrics.cluster_published += 1;
        }
    }

    fn claim_nick(&mut self, client: ClientId, nick: &str, claim: NickClaim) {
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.claim(client, nick, claim);
        }
    }

    fn authenticate(&mut self, client: ClientId, ticket: u64, job: AuthJob) -> bool {
        self.auth
            .as_ref()
            .is_some_and(|auth| auth.submit(client, ticket, job))
    }

    fn store(&mut self, change: &Change<'_>) {
        if let Some(store) = self.store.as_mut() {
            store.record(change);
        }
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.store(change);
        }
    }
}

/// Puts `conn` (whose id is `id`) on the `dirty` list once.
fn add_to_dirty(conn: &mut Connection, id: ClientId, dirty: &mut Vec<ClientId>) {
    if !conn.dirty {
        conn.dirty = true;
        dirty.push(id);
    }
}
