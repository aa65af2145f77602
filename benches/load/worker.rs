//! One worker thread: a `mio` poll loop over its share of the clients. The loop itself, the
//! clients' state and the timers are here; connecting and registering are in [`connect`],
//! writing in [`send`], reading and answering the server's lines in [`receive`].
//!
//! A worker adds its counts to [`Shared`] once per loop turn, and returns its latency histogram
//! when the main thread moves the run to [`Phase::Done`].

mod connect;
mod receive;
mod send;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Poll};

use crate::cli::Proto;
use crate::payload::base36;
use crate::plan::{Plan, Role};
use crate::report::latency_histogram;
use crate::shared::{Counts, Phase, Shared};

/// The parts of the configuration every worker needs.
pub struct WorkerConfig {
    /// The protocol spoken to the server.
    pub proto: Proto,
    /// Messages a closed-loop sender may have unacknowledged.
    pub window: usize,
    /// Payload bytes per message (at least the payload header).
    pub payload: usize,
    /// Seconds between two messages of one paced sender; `None`: closed loop.
    pub interval: Option<f64>,
    /// Connections this worker sets up at once.
    pub inflight: usize,
    /// SO_RCVLOWAT for fanout receivers once registered (0: off).
    pub rcvlowat: usize,
    /// Starts every nick, so that nicks are unique across runs.
    pub nick_prefix: String,
    /// IRC: OPER name and password for senders.
    pub oper: Option<(String, String)>,
    /// The zero of the timestamps in the payloads.
    pub epoch: Instant,
}

/// Where a client connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not connected: waiting for its turn or a retry.
    Waiting,
    /// `connect()` in progress.
    Connecting,
    /// Connected, nick (and for chat-server the room) sent.
    Registering,
    /// IRC: registered, JOIN sent.
    Joining,
    /// Registered and in its room.
    Ready,
    /// A churner that sent its quit.
    Quitting,
    /// Closed for good (or until a churner's next session).
    Dead,
}

/// One client socket.
struct Conn {
    plan: Plan,
    stream: Option<TcpStream>,
    state: State,
    nick: String,
    /// The unfinished line of the last read.
    partial: Vec<u8>,
    /// Bytes queued for the server; those before `out_pos` are written.
    out: Vec<u8>,
    out_pos: usize,
    /// On the worker's list of connections to write.
    dirty: bool,
    /// Messages sent and not acknowledged yet.
    outstanding: usize,
    /// Messages sent.
    seq: u64,
    /// Connection attempts of this session.
    attempts: u32,
    /// Churn sessions started.
    sessions: u64,
    /// IRC: this worker's first receiver in its room; acknowledges the room's senders here.
    probe: bool,
}

/// Things a worker does at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// A paced sender's next message.
    Send(usize),
    /// Another connection attempt.
    Retry(usize),
}

/// One worker thread: a poll loop over its share of the clients.
pub struct Worker {
    index: usize,
    shared: Arc<Shared>,
    cfg: Arc<WorkerConfig>,
    poll: Poll,
    conns: Vec<Conn>,
    to_connect: VecDeque<usize>,
    /// Connections being set up (connecting or registering).
    connecting: usize,
    inflight: usize,
    /// The read buffer, shared by all connections.
    buf: Vec<u8>,
    hist: Histogram<u64>,
    /// Counts not yet added to `shared`.
    counts: Counts,
    /// Connections with bytes to write, written at the end of the loop turn.
    dirty: Vec<usize>,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    /// IRC has no echo: a receiver of the room in this worker acknowledges the senders here.
    senders_by_gid: HashMap<u64, usize>,
    phase: Phase,
    sending: bool,
    /// Nanoseconds since the epoch at the last read (the receive time of its lines).
    now_ns: u64,
    rng: u64,
}

impl Worker {
    /// Worker number `index`, to run the clients of `plans`.
    pub fn new(
        index: usize,
        plans: Vec<Plan>,
        shared: Arc<Shared>,
        cfg: Arc<WorkerConfig>,
    ) -> Result<Self, String> {
        let mut probes = HashSet::new();
        let mut senders_by_gid = HashMap::new();
        let conns: Vec<Conn> = plans
            .into_iter()
            .enumerate()
            .map(|(i, plan)| {
                let probe = matches!(plan.role, Role::Receiver | Role::Talker)
                    && probes.insert(plan.room.clone());
                if matches!(plan.role, Role::Sender | Role::Talker) {
                    senders_by_gid.insert(plan.gid, i);
                }
                Conn {
                    nick: format!("{}{}", cfg.nick_prefix, base36(plan.gid)),
                    plan,
                    stream: None,
                    state: State::Waiting,
                    partial: Vec::new(),
                    out: Vec::new(),
                    out_pos: 0,
                    dirty: false,
                    outstanding: 0,
                    seq: 0,
                    attempts: 0,
                    sessions: 0,
                    probe,
                }
            })
            .collect();
        // Churners connect when the traffic starts.
        let to_connect = (0..conns.len())
            .filter(|&i| conns[i].plan.role != Role::Churner)
            .collect();
        Ok(Self {
            index,
            inflight: cfg.inflight,
            shared,
            poll: Poll::new().map_err(|e| format!("poll: {e}"))?,
            conns,
            to_connect,
            connecting: 0,
            buf: vec![0; 256 * 1024],
            hist: latency_histogram()?,
            counts: Counts::default(),
            dirty: Vec::new(),
            timers: BinaryHeap::new(),
            senders_by_gid,
            phase: Phase::Setup,
            sending: false,
            now_ns: 0,
            rng: 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1),
            cfg,
        })
    }

    /// Runs the clients until the run is done; returns the latencies measured.
    pub fn run(mut self) -> Result<Histogram<u64>, String> {
        let mut events = Events::with_capacity(4096);
        loop {
            self.phase = self.shared.phase.load();
            if self.phase == Phase::Done {
                break;
            }
            if self.phase >= Phase::Warmup && !self.sending && self.phase < Phase::Drain {
                self.start_sending();
            }
            self.connect_more();
            let now = Instant::now();
            let mut timeout = Duration::from_millis(20);
            if let Some(Reverse((at, _))) = self.timers.peek() {
                timeout = timeout.min(at.saturating_duration_since(now));
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != ErrorKind::Interrupted {
                    return Err(format!("worker {}: poll failed: {e}", self.index));
                }
            }
            self.now_ns = self.cfg.epoch.elapsed().as_nanos() as u64;
            for event in events.iter() {
                let ci = event.token().0;
                if self.conns[ci].state == State::Connecting
                    && (event.is_writable() || event.is_error())
                {
                    self.finish_connect(ci);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read(ci, event.is_read_closed() || event.is_error());
                }
                if event.is_writable() && self.conns[ci].out_pos < self.conns[ci].out.len() {
                    self.mark_dirty(ci);
                }
            }
            self.fire_timers();
            self.flush();
            self.shared.add(&std::mem::take(&mut self.counts));
        }
        if std::env::var_os("LOAD_DEBUG").is_some() {
            self.print_states();
        }
        // Sockets close as the worker is dropped.
        Ok(self.hist)
    }

    /// `LOAD_DEBUG`: where this worker's connections stand at the end.
    fn print_states(&self) {
        let mut states: HashMap<String, usize> = HashMap::new();
        for c in &self.conns {
            *states.entry(format!("{:?}", c.state)).or_default() += 1;
        }
        eprintln!(
            "worker {}: states {states:?}, connecting {}, to_connect {}, timers {}",
            self.index,
            self.connecting,
            self.to_connect.len(),
            self.timers.len()
        );
    }

    /// A pseudo-random number in [0, 1) (xorshift: cheap, and the same every run).
    fn random(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The traffic starts: closed-loop senders fill their window, paced ones get a random phase.
    fn start_sending(&mut self) {
        self.sending = true;
        let now = Instant::now();
        for ci in 0..self.conns.len() {
            match self.conns[ci].plan.role {
                Role::Sender | Role::Talker => match self.cfg.interval {
                    None => {
                        for _ in 0..self.cfg.window {
                            self.send_message(ci);
                        }
                    }
                    Some(interval) => {
                        let first = now + Duration::from_secs_f64(interval * self.random());
                        self.timers.push(Reverse((first, Timer::Send(ci))));
                    }
                },
                Role::Churner => self.to_connect.push_back(ci),
                _ => {}
            }
        }
    }

    /// Runs the timers that are due: retries queue a connect, paced senders send.
    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(&Reverse((at, timer))) = self.timers.peek() {
            if at > now {
                return;
            }
            self.timers.pop();
            match timer {
                Timer::Retry(ci) => self.to_connect.push_back(ci),
                Timer::Send(ci) => {
                    if self.phase >= Phase::Drain {
                        continue;
                    }
                    // Open loop: every message due by now goes out, however late this turn
                    // is (a turn can take milliseconds while a sender's interval is shorter),
                    // so the load offered is --rate whatever the server does with it.
                    let interval = Duration::try_from_secs_f64(self.cfg.interval.unwrap_or(1.0))
                        .unwrap_or(Duration::from_secs(1))
                        .max(Duration::from_micros(1));
                    let mut next = at;
                    while next <= now {
                        if self.conns[ci].state == State::Ready {
                            self.send_message(ci);
                        }
                        next += interval;
                    }
                    self.timers.push(Reverse((next, Timer::Send(ci))));
                }
            }
        }
    }
}
