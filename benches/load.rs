//! The load-test harness: `cargo bench --bench load -- [FLAGS]` (`--help` lists them).
//!
//! It drives chat-server (or, with `--protocol irc`, an IRC server such as ngircd or InspIRCd)
//! with thousands of clients over loopback and reports throughput, latency, set-up rate and the
//! server's CPU time and memory. Workloads:
//!
//! - `fanout`: one room, N receivers, S senders sending closed-loop with a window of W
//!   unacknowledged messages each (or open-loop at `--rate`);
//! - `latency`: the same room at a fixed offered rate (default 100 msgs/s);
//! - `idle`: C registered connections over R rooms: RSS per connection and set-up rate;
//! - `rooms`: many small rooms, every client talking at a low rate;
//! - `churn`: connect, nick, join, talk, quit, in a loop: sessions/s and errors.
//!
//! The harness is built not to be the bottleneck: every worker thread runs one `mio` poll loop
//! over its share of the sockets, reads 256 KiB at a time and splits lines with `memchr`. It
//! reports its own CPU time and says when it was saturated (then the server's figures are lower
//! bounds). Latency comes from a timestamp embedded in every message, into an HDR histogram.
//!
//! `--spawn` starts `target/release/chat-server` on a free loopback port (pinned with
//! `taskset` if `--server-cpu` is given) and reads its CPU time and RSS from /proc; with
//! `--addr` the server is already running (`--server-pid` to read its /proc figures).
//! `--smoke` runs every workload at tiny sizes against fresh spawned servers and checks that
//! messages arrive (never timings); `./test.sh` runs it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde::Serialize;

/// What the clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Workload {
    /// One room, N receivers, S senders as fast as the server accepts (window W each).
    Fanout,
    /// The fan-out room at a fixed offered rate: latency percentiles.
    Latency,
    /// C connections registered over R rooms, no traffic: RSS per connection, set-up rate.
    Idle,
    /// Many small rooms, every client talking at a low rate.
    Rooms,
    /// Connect, nick, join, talk, quit in a loop.
    Churn,
}

/// The wire protocol spoken to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Proto {
    /// chat-server's own line protocol (`/nick`, `/join`, plain lines).
    Chat,
    /// IRC: NICK/USER, JOIN, PRIVMSG; PING is answered.
    Irc,
}

/// Command-line flags.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "load",
    about = "Load-test harness for chat-server and IRC servers (loopback only, bounded in time)"
)]
struct Args {
    /// Server address HOST:PORT; repeat it to spread the clients over several nodes.
    #[arg(long)]
    addr: Vec<String>,
    /// Start target/release/chat-server on a free loopback port for this run.
    #[arg(long)]
    spawn: bool,
    /// With --spawn: pin the server to this CPU (taskset -c CPU).
    #[arg(long)]
    server_cpu: Option<usize>,
    /// With --spawn: the server binary (default: target/release/chat-server).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// With --addr: the server's PID, to read its CPU time and RSS from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The workload.
    #[arg(long, value_enum, default_value_t = Workload::Fanout)]
    workload: Workload,
    /// The protocol spoken to the server.
    #[arg(long, value_enum, default_value_t = Proto::Chat)]
    protocol: Proto,
    /// fanout/latency: receivers in the room.
    #[arg(long, default_value_t = 1000)]
    receivers: usize,
    /// fanout/latency: senders in the room.
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// fanout/latency with several --addr: every sender on the target with this index (from
    /// 0) and everyone else on the other targets, so that every delivery crosses nodes.
    #[arg(long, value_name = "INDEX")]
    senders_on: Option<usize>,
    /// Messages each sender may have unacknowledged (closed loop).
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Payload bytes per message, the embedded timestamp included.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Offered load in messages/s over all senders, open loop (latency: 100, rooms: 5000).
    #[arg(long)]
    rate: Option<f64>,
    /// idle: connections (default 10000); churn: concurrent sessions (default 50).
    #[arg(long)]
    connections: Option<usize>,
    /// idle: rooms to spread over (default 100); rooms: number of rooms (default 500).
    #[arg(long)]
    rooms: Option<usize>,
    /// rooms: clients per room.
    #[arg(long, default_value_t = 10)]
    room_size: usize,
    /// fanout/latency: idle registered connections opened first, in 100 rooms of their own.
    #[arg(long, default_value_t = 0)]
    idle: usize,
    /// Seconds measured (idle: seconds held after set-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of traffic before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// fanout: receivers ask to be woken only once this many bytes wait in their socket
    /// (SO_RCVLOWAT), so the harness reads in big batches and costs less than the server it
    /// measures; 0: off. The closed-loop latencies then include that wait. Receivers that stand
    /// in for IRC's missing echo are never delayed.
    #[arg(long, default_value_t = 0, value_name = "BYTES")]
    rcvlowat: usize,
    /// Connections being set up at once, over all threads (ngircd's backlog is 10: use 8).
    #[arg(long, default_value_t = 1000)]
    inflight: usize,
    /// Worker threads (default: the CPUs this process may run on, plus one for closed-loop
    /// senders).
    #[arg(long)]
    threads: Option<usize>,
    /// IRC: OPER NAME:PASSWORD for senders, which then set user mode +F (ngircd, no penalty).
    #[arg(long)]
    irc_oper: Option<String>,
    /// Give up if set-up takes longer than this many seconds.
    #[arg(long, default_value_t = 180.0)]
    setup_timeout: f64,
    /// Print the result as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Run every workload at tiny sizes against spawned servers and check messages arrive.
    #[arg(long)]
    smoke: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// What one client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Registers, joins its room and sits there.
    Idle,
    /// Receives the room's messages.
    Receiver,
    /// Sends to the room (closed loop with a window, or paced).
    Sender,
    /// Both: sends paced and receives (rooms workload).
    Talker,
    /// Connects, registers, talks once, quits, again and again.
    Churner,
}

/// One client to run.
#[derive(Debug, Clone)]
struct Plan {
    role: Role,
    room: String,
    addr: SocketAddr,
    /// Unique number of this client in the run (senders put it in their messages).
    gid: u64,
}

/// Run phases, set by the main thread and watched by the workers.
const SETUP: u8 = 0;
const WARMUP: u8 = 1;
const MEASURE: u8 = 2;
const DRAIN: u8 = 3;
const DONE: u8 = 4;

/// Counters shared by the workers (each adds its local counts once per loop turn).
#[derive(Default)]
struct Shared {
    phase: AtomicU8,
    registered: AtomicU64,
    failed: AtomicU64,
    errors: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
    deliveries: AtomicU64,
    sessions: AtomicU64,
    error_samples: Mutex<Vec<String>>,
}

/// A snapshot of [`Shared`]'s counters.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    registered: u64,
    failed: u64,
    errors: u64,
    sent: u64,
    acked: u64,
    deliveries: u64,
    sessions: u64,
}

impl Shared {
    fn counts(&self) -> Counts {
        Counts {
            registered: self.registered.load(Relaxed),
            failed: self.failed.load(Relaxed),
            errors: self.errors.load(Relaxed),
            sent: self.sent.load(Relaxed),
            acked: self.acked.load(Relaxed),
            deliveries: self.deliveries.load(Relaxed),
            sessions: self.sessions.load(Relaxed),
        }
    }

    fn add(&self, c: &Counts) {
        for (atomic, n) in [
            (&self.registered, c.registered),
            (&self.failed, c.failed),
            (&self.errors, c.errors),
            (&self.sent, c.sent),
            (&self.acked, c.acked),
            (&self.deliveries, c.deliveries),
            (&self.sessions, c.sessions),
        ] {
            if n > 0 {
                atomic.fetch_add(n, Relaxed);
            }
        }
    }

    fn note_error(&self, what: String) {
        let mut samples = self.error_samples.lock().unwrap();
        if samples.len() < 5 {
            samples.push(what);
        }
    }
}

/// The parts of the configuration every worker needs.
struct RunCfg {
    proto: Proto,
    window: usize,
    payload: usize,
    /// Seconds between two messages of one paced sender; `None`: closed loop.
    interval: Option<f64>,
    inflight: usize,
    /// SO_RCVLOWAT for fanout receivers once registered (0: off).
    rcvlowat: usize,
    nick_prefix: String,
    oper: Option<(String, String)>,
    epoch: Instant,
}

/// Where a client connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Waiting,
    Connecting,
    Registering,
    Joining,
    Ready,
    Quitting,
    Dead,
}

/// One client socket.
struct Conn {
    plan: Plan,
    stream: Option<TcpStream>,
    st: St,
    nick: String,
    /// The unfinished line of the last read.
    partial: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    dirty: bool,
    outstanding: usize,
    seq: u64,
    attempts: u32,
    sessions: u64,
    /// IRC: this worker's first receiver in its room; acknowledges the room's senders here.
    probe: bool,
}

/// Things a worker does at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Send(usize),
    Retry(usize),
}

/// One worker thread: a poll loop over its share of the clients.
struct Worker {
    index: usize,
    shared: Arc<Shared>,
    cfg: Arc<RunCfg>,
    poll: Poll,
    conns: Vec<Conn>,
    to_connect: VecDeque<usize>,
    connecting: usize,
    inflight: usize,
    buf: Vec<u8>,
    hist: Histogram<u64>,
    counts: Counts,
    dirty: Vec<usize>,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    /// IRC has no echo: a receiver of the room in this worker acknowledges the senders here.
    senders_by_gid: HashMap<u64, usize>,
    phase: u8,
    sending: bool,
    now_ns: u64,
    rng: u64,
}

/// The marker that starts every payload: `@ld SENDER NANOS xxxx...` with fixed-width fields,
/// padded to the payload size. A payload always ends its line, so a receiver finds it at a
/// fixed distance from the line's end without searching.
const MARK: &[u8] = b"@ld ";
/// The payload's fixed-width header: marker, 8-digit sender, 16-digit nanoseconds, spaces.
const HEADER: usize = MARK.len() + 8 + 1 + 16 + 1;

impl Worker {
    fn new(index: usize, plans: Vec<Plan>, shared: Arc<Shared>, cfg: Arc<RunCfg>) -> Self {
        let mut probes = std::collections::HashSet::new();
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
                    st: St::Waiting,
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
        let to_connect = (0..conns.len())
            .filter(|&i| conns[i].plan.role != Role::Churner)
            .collect();
        Self {
            index,
            inflight: cfg.inflight,
            shared,
            poll: Poll::new().expect("poll"),
            conns,
            to_connect,
            connecting: 0,
            buf: vec![0; 256 * 1024],
            hist: Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("histogram"),
            counts: Counts::default(),
            dirty: Vec::new(),
            timers: BinaryHeap::new(),
            senders_by_gid,
            phase: SETUP,
            sending: false,
            now_ns: 0,
            rng: 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1),
            cfg,
        }
    }

    fn run(mut self) -> Histogram<u64> {
        let mut events = Events::with_capacity(4096);
        loop {
            self.phase = self.shared.phase.load(Relaxed);
            if self.phase == DONE {
                break;
            }
            if self.phase >= WARMUP && !self.sending && self.phase < DRAIN {
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
                    panic!("poll failed: {e}");
                }
            }
            self.now_ns = self.cfg.epoch.elapsed().as_nanos() as u64;
            for event in events.iter() {
                let ci = event.token().0;
                if self.conns[ci].st == St::Connecting && (event.is_writable() || event.is_error())
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
            let mut states: HashMap<String, usize> = HashMap::new();
            for c in &self.conns {
                *states.entry(format!("{:?}", c.st)).or_default() += 1;
            }
            eprintln!(
                "worker {}: states {states:?}, connecting {}, to_connect {}, timers {}",
                self.index,
                self.connecting,
                self.to_connect.len(),
                self.timers.len()
            );
        }
        // Sockets close as the worker is dropped.
        self.hist
    }

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

    fn connect_more(&mut self) {
        while self.connecting < self.inflight {
            let Some(ci) = self.to_connect.pop_front() else {
                return;
            };
            self.connect(ci);
        }
    }

    fn connect(&mut self, ci: usize) {
        let conn = &mut self.conns[ci];
        conn.attempts += 1;
        conn.partial.clear();
        conn.out.clear();
        conn.out_pos = 0;
        conn.outstanding = 0;
        if conn.plan.role == Role::Churner {
            // Every session under a new nick.
            conn.sessions += 1;
            conn.nick = format!(
                "{}{}_{}",
                self.cfg.nick_prefix,
                base36(conn.plan.gid),
                base36(conn.sessions)
            );
        }
        match connect_nonblocking(conn.plan.addr, conn.plan.gid) {
            Ok(mut stream) => {
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = self
                    .poll
                    .registry()
                    .register(&mut stream, Token(ci), interest)
                {
                    self.connect_failed(ci, &format!("register: {e}"));
                    return;
                }
                let conn = &mut self.conns[ci];
                conn.stream = Some(stream);
                conn.st = St::Connecting;
                self.connecting += 1;
            }
            Err(e) => self.connect_failed(ci, &format!("connect: {e}")),
        }
    }

    fn connect_failed(&mut self, ci: usize, why: &str) {
        let conn = &mut self.conns[ci];
        if conn.st == St::Connecting {
            self.connecting -= 1;
        }
        conn.stream = None;
        conn.st = St::Waiting;
        if conn.attempts < 20 && self.phase < DRAIN {
            let at = Instant::now() + Duration::from_millis(50 * conn.attempts as u64);
            self.timers.push(Reverse((at, Timer::Retry(ci))));
        } else {
            conn.st = St::Dead;
            self.counts.failed += 1;
            self.shared.note_error(format!("{}: {why}", conn.nick));
        }
    }

    fn finish_connect(&mut self, ci: usize) {
        let conn = &mut self.conns[ci];
        let Some(stream) = conn.stream.as_ref() else {
            return;
        };
        match stream.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => return self.connect_failed(ci, &format!("connect: {e}")),
        }
        if let Err(e) = stream.peer_addr() {
            if e.kind() == ErrorKind::NotConnected {
                return; // still in progress
            }
            return self.connect_failed(ci, &format!("connect: {e}"));
        }
        let _ = stream.set_nodelay(true);
        conn.st = St::Registering;
        match self.cfg.proto {
            Proto::Chat => {
                let _ = writeln!(conn.out, "/nick {}", conn.nick);
                if conn.plan.room != "main" {
                    let _ = writeln!(conn.out, "/join {}", conn.plan.room);
                }
            }
            Proto::Irc => {
                let _ = write!(conn.out, "NICK {0}\r\nUSER {0} 0 * :{0}\r\n", conn.nick);
            }
        }
        self.mark_dirty(ci);
    }

    fn mark_dirty(&mut self, ci: usize) {
        if !self.conns[ci].dirty {
            self.conns[ci].dirty = true;
            self.dirty.push(ci);
        }
    }

    fn flush(&mut self) {
        for ci in std::mem::take(&mut self.dirty) {
            self.conns[ci].dirty = false;
            self.write_out(ci);
        }
    }

    /// Writes what is queued for `ci` until done or the socket is full.
    fn write_out(&mut self, ci: usize) {
        let conn = &mut self.conns[ci];
        let Some(stream) = conn.stream.as_mut() else {
            return;
        };
        while conn.out_pos < conn.out.len() {
            match stream.write(&conn.out[conn.out_pos..]) {
                Ok(n) => conn.out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break, // the read side notices and reports it
            }
        }
        if conn.out_pos == conn.out.len() {
            conn.out.clear();
            conn.out_pos = 0;
        }
    }

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
                    if self.phase >= DRAIN {
                        continue;
                    }
                    if self.conns[ci].st == St::Ready {
                        self.send_message(ci);
                    }
                    let interval = self.cfg.interval.unwrap_or(1.0);
                    // Keep the schedule even if this turn was late.
                    let next = (at + Duration::from_secs_f64(interval)).max(now);
                    self.timers.push(Reverse((next, Timer::Send(ci))));
                }
            }
        }
    }

    /// Queues one message with the current time in it.
    fn send_message(&mut self, ci: usize) {
        let ts = self.cfg.epoch.elapsed().as_nanos() as u64;
        let conn = &mut self.conns[ci];
        if conn.st != St::Ready {
            return;
        }
        conn.seq += 1;
        conn.outstanding += 1;
        if self.cfg.proto == Proto::Irc {
            let _ = write!(conn.out, "PRIVMSG {} :", conn.plan.room);
        }
        let start = conn.out.len();
        let _ = write!(
            conn.out,
            "@ld {:08} {:016} ",
            conn.plan.gid % 100_000_000,
            ts
        );
        conn.out.resize(start + self.cfg.payload, b'x');
        conn.out.extend_from_slice(match self.cfg.proto {
            Proto::Chat => b"\n",
            Proto::Irc => b"\r\n",
        });
        self.counts.sent += 1;
        self.mark_dirty(ci);
    }

    /// Reads what `ci` has; to the end of the stream if the peer closed it (`closing`).
    fn read(&mut self, ci: usize, closing: bool) {
        let mut buf = std::mem::take(&mut self.buf);
        while let Some(stream) = self.conns[ci].stream.as_mut() {
            match stream.read(&mut buf) {
                Ok(0) => {
                    self.closed(ci, "closed by the server");
                    break;
                }
                Ok(n) => {
                    self.now_ns = self.cfg.epoch.elapsed().as_nanos() as u64;
                    self.input(ci, &buf[..n]);
                    // A short read drained the socket; new data raises a new edge. This saves
                    // the read that would only say WouldBlock. (Not so for the end of the
                    // stream: it raises no new edge, so a closed socket is read to the end.)
                    if n < buf.len() && !closing {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.closed(ci, &format!("read: {e}"));
                    break;
                }
            }
        }
        self.buf = buf;
        // Answer at once (a closed-loop sender's next messages), not after the whole batch.
        if self.conns[ci].out_pos < self.conns[ci].out.len() {
            self.write_out(ci);
        }
    }

    fn input(&mut self, ci: usize, data: &[u8]) {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            if self.conns[ci].partial.is_empty() {
                self.line(ci, &data[start..nl]);
            } else {
                let mut line = std::mem::take(&mut self.conns[ci].partial);
                line.extend_from_slice(&data[start..nl]);
                self.line(ci, &line);
                line.clear();
                self.conns[ci].partial = line;
            }
            start = nl + 1;
        }
        if start < data.len() {
            self.conns[ci].partial.extend_from_slice(&data[start..]);
        }
    }

    fn line(&mut self, ci: usize, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let payload = self.cfg.payload;
        if line.len() >= payload && line[line.len() - payload..].starts_with(MARK) {
            return self.message(ci, line, line.len() - payload);
        }
        match self.cfg.proto {
            Proto::Chat => self.chat_line(ci, line),
            Proto::Irc => self.irc_line(ci, line),
        }
    }

    /// A room message carrying our payload.
    fn message(&mut self, ci: usize, line: &[u8], at: usize) {
        let fields = &line[at + MARK.len()..at + HEADER];
        let Some(ts) = parse_16_digits(&fields[9..25]) else {
            return;
        };
        self.counts.deliveries += 1;
        if self.phase == MEASURE {
            let _ = self.hist.record(self.now_ns.saturating_sub(ts).max(1_000));
        }
        // The sender is only needed for an acknowledgement, so most lines skip parsing it.
        let sender = || parse_8_digits(&fields[..8]);
        let acked = match self.cfg.proto {
            // chat-server echoes a sender's own message as "You: ...".
            Proto::Chat
                if line.starts_with(b"You: ") && sender() == Some(self.conns[ci].plan.gid) =>
            {
                Some(ci)
            }
            Proto::Chat => None,
            // IRC does not echo: this worker's first receiver in the room stands in.
            Proto::Irc if self.conns[ci].probe => {
                sender().and_then(|gid| self.senders_by_gid.get(&gid).copied())
            }
            Proto::Irc => None,
        };
        if let Some(sender) = acked {
            self.ack(sender);
        }
    }

    fn ack(&mut self, ci: usize) {
        let conn = &mut self.conns[ci];
        conn.outstanding = conn.outstanding.saturating_sub(1);
        self.counts.acked += 1;
        if conn.plan.role == Role::Churner {
            if self.cfg.proto == Proto::Chat {
                conn.out.extend_from_slice(b"/quit\n");
                conn.st = St::Quitting;
                self.mark_dirty(ci);
            }
            return;
        }
        if self.cfg.interval.is_none() && self.sending && self.phase < DRAIN {
            self.send_message(ci);
        }
    }

    fn registered(&mut self, ci: usize) {
        let conn = &mut self.conns[ci];
        conn.st = St::Ready;
        self.connecting -= 1;
        if self.cfg.rcvlowat > 0 && conn.plan.role == Role::Receiver && !conn.probe {
            if let Some(stream) = conn.stream.as_ref() {
                set_int_option(
                    stream,
                    libc::SOL_SOCKET,
                    libc::SO_RCVLOWAT,
                    self.cfg.rcvlowat,
                );
            }
        }
        if conn.plan.role == Role::Churner {
            self.send_message(ci);
            if self.cfg.proto == Proto::Irc {
                // No echo to wait for: quit right behind the message.
                let conn = &mut self.conns[ci];
                conn.out.extend_from_slice(b"QUIT :bye\r\n");
                conn.st = St::Quitting;
            }
            return;
        }
        self.counts.registered += 1;
        if self.sending && conn.plan.role == Role::Sender && self.cfg.interval.is_none() {
            for _ in 0..self.cfg.window {
                self.send_message(ci);
            }
        }
    }

    fn error_line(&mut self, ci: usize, line: &[u8]) {
        self.counts.errors += 1;
        let nick = self.conns[ci].nick.clone();
        self.shared
            .note_error(format!("{nick}: {}", String::from_utf8_lossy(line)));
    }

    fn chat_line(&mut self, ci: usize, line: &[u8]) {
        if line.starts_with(b"! ") {
            return self.error_line(ci, line);
        }
        let conn = &self.conns[ci];
        if conn.st != St::Registering {
            return;
        }
        let main = conn.plan.room == "main";
        if line.starts_with(b"* Welcome, ") || line.starts_with(b"* Welcome back, ") {
            if main {
                self.registered(ci);
            }
        } else if !main
            && (line.starts_with(b"* Joined ") || line.starts_with(b"* Active room: "))
            && line.ends_with(format!(" {}.", conn.plan.room).as_bytes())
        {
            self.registered(ci);
        }
    }

    fn irc_line(&mut self, ci: usize, line: &[u8]) {
        let mut words = line.split(|&b| b == b' ');
        let first = words.next().unwrap_or_default();
        let command = if first.starts_with(b":") {
            words.next().unwrap_or_default()
        } else {
            first
        };
        match command {
            b"PING" => {
                let conn = &mut self.conns[ci];
                conn.out.extend_from_slice(b"PONG");
                conn.out.extend_from_slice(&line[4..]);
                conn.out.extend_from_slice(b"\r\n");
                self.mark_dirty(ci);
            }
            b"001" if self.conns[ci].st == St::Registering => {
                let conn = &mut self.conns[ci];
                conn.st = St::Joining;
                if let (Some((name, password)), Role::Sender) = (&self.cfg.oper, conn.plan.role) {
                    let _ = write!(
                        conn.out,
                        "OPER {name} {password}\r\nMODE {} +F\r\n",
                        conn.nick
                    );
                }
                let _ = write!(conn.out, "JOIN {}\r\n", conn.plan.room);
                self.mark_dirty(ci);
            }
            b"366" if self.conns[ci].st == St::Joining => self.registered(ci),
            b"ERROR" if self.conns[ci].st == St::Quitting => {}
            b"ERROR" => self.error_line(ci, line),
            // ERR_NOMOTD is harmless; other 4xx and 5xx numerics are errors.
            b"422" => {}
            [b'4' | b'5', b'0'..=b'9', b'0'..=b'9'] => self.error_line(ci, line),
            _ => {}
        }
    }

    fn closed(&mut self, ci: usize, why: &str) {
        let conn = &mut self.conns[ci];
        let st = conn.st;
        if let Some(mut stream) = conn.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        conn.st = St::Dead;
        match st {
            St::Quitting => {
                self.counts.sessions += 1;
                if self.phase < DRAIN {
                    self.conns[ci].attempts = 0;
                    self.to_connect.push_back(ci);
                }
            }
            St::Connecting => self.connect_failed(ci, why),
            St::Registering | St::Joining => {
                self.connecting -= 1;
                self.counts.failed += 1;
                let nick = self.conns[ci].nick.clone();
                self.shared
                    .note_error(format!("{nick}: {why} during registration"));
            }
            _ if self.phase < DONE => {
                self.counts.errors += 1;
                let nick = self.conns[ci].nick.clone();
                self.shared.note_error(format!("{nick}: {why}"));
            }
            _ => {}
        }
    }
}

/// Loopback source addresses the clients are spread over.
const SOURCE_ADDRESSES: u64 = 8;

/// Starts connecting to `target` without blocking. A loopback target is reached from one of
/// several loopback source addresses (127.0.0.1-8): from one address 19,000 clients, with the
/// last run's sockets still in TIME_WAIT, nearly exhaust the local port range and every
/// `connect()` then crawls through it looking for a free port.
fn connect_nonblocking(target: SocketAddr, gid: u64) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let std::net::IpAddr::V4(ip) = target.ip() else {
        return TcpStream::connect(target);
    };
    if !ip.is_loopback() {
        return TcpStream::connect(target);
    }
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    // The port is then chosen at connect() for the whole address pair, not at bind().
    set_int_option(&socket, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1);
    let source = std::net::Ipv4Addr::new(127, 0, 0, 1 + (gid % SOURCE_ADDRESSES) as u8);
    socket.bind(&SocketAddr::from((source, 0)).into())?;
    match socket.connect(&target.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// Sets an integer socket option, ignoring failure (both uses are optimisations).
fn set_int_option(
    fd: &impl std::os::fd::AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: usize,
) {
    let value = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live c_int.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Eight ASCII digits as a number, all eight at once (the harness parses one timestamp per
/// delivery, millions a second, and must stay cheaper than the server it measures).
fn parse_8_digits(text: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = text.try_into().ok()?;
    let v = u64::from_le_bytes(bytes);
    // Every byte in 0x30..=0x39: its high nibble is 3, and adding 6 does not carry out of it.
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    if v & HIGH != ZEROS || v.wrapping_add(0x0606_0606_0606_0606) & HIGH != ZEROS {
        return None;
    }
    // The first digit is the lowest byte: fold neighbours into pairs, fours, then all eight.
    let d = v - ZEROS;
    let d = (d.wrapping_mul(10) + (d >> 8)) & 0x00FF_00FF_00FF_00FF;
    let d = (d.wrapping_mul(100) + (d >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((d.wrapping_mul(10_000) + (d >> 32)) & 0xFFFF_FFFF)
}

/// Sixteen ASCII digits as a number.
fn parse_16_digits(text: &[u8]) -> Option<u64> {
    if text.len() != 16 {
        return None;
    }
    let (high, low) = text.split_at(8);
    Some(parse_8_digits(high)? * 100_000_000 + parse_8_digits(low)?)
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}

/// CPU time and memory of a process, from /proc.
#[derive(Debug, Clone, Copy, Default)]
struct ProcStats {
    cpu_secs: f64,
    rss_kib: u64,
}

fn proc_stats(pid: u32) -> Option<ProcStats> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Some(ProcStats {
        cpu_secs: ticks / hz,
        rss_kib,
    })
}

/// This process's CPU time (all threads), in seconds.
fn own_cpu_secs() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Raises the soft open-file limit to the hard one; returns it.
fn raise_fd_limit() -> u64 {
    // SAFETY: plain get/setrlimit on a local struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        limit.rlim_cur
    }
}

/// A chat-server started for one run; killed when dropped.
struct Spawned {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // Killed outright: a graceful goodbye to thousands of clients is not what is measured.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_server(args: &Args) -> Result<Spawned, String> {
    let bin = args.server_bin.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/chat-server")
    });
    if !bin.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release` first",
            bin.display()
        ));
    }
    let port = StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut command = match args.server_cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu.to_string()]).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    command
        .args(["--listen", &addr.to_string(), "--log-level", "warn"])
        .args(["--max-per-ip", "0", "--flood-rate", "0"])
        .stdin(Stdio::null());
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let spawned = Spawned { child, addr };
    let deadline = Instant::now() + Duration::from_secs(10);
    while StdStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            return Err("the spawned server did not start listening".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Let it notice that probe connection go before taking its baseline.
    std::thread::sleep(Duration::from_millis(100));
    Ok(spawned)
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
struct Latency {
    samples: u64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

/// Everything a run found out.
#[derive(Debug, Clone, Serialize)]
struct Report {
    workload: Workload,
    protocol: Proto,
    targets: Vec<String>,
    server: String,
    clients: usize,
    harness_threads: usize,
    fd_limit: u64,
    receivers: usize,
    senders: usize,
    window: usize,
    payload: usize,
    offered_rate: Option<f64>,
    rooms: usize,
    registered: u64,
    failed_connects: u64,
    setup_secs: f64,
    setup_per_sec: f64,
    measured_secs: f64,
    msgs_in: u64,
    msgs_in_per_sec: f64,
    deliveries: u64,
    deliveries_per_sec: f64,
    sessions: u64,
    sessions_per_sec: f64,
    errors: u64,
    error_samples: Vec<String>,
    server_cpu_secs: Option<f64>,
    server_cpu_share: Option<f64>,
    deliveries_per_server_cpu_sec: Option<f64>,
    server_setup_cpu_secs: Option<f64>,
    server_rss_base_kib: Option<u64>,
    server_rss_kib: Option<u64>,
    server_rss_per_conn_bytes: Option<f64>,
    latency: Option<Latency>,
    harness_cpu_secs: f64,
    harness_cpu_share: f64,
    harness_saturated: bool,
}

/// Builds the client list of a workload, and says over how many rooms it is spread.
fn plans(args: &Args, addrs: &[SocketAddr]) -> (Vec<Plan>, usize) {
    let irc = args.protocol == Proto::Irc;
    let room = |name: String| if irc { format!("#{name}") } else { name };
    let mut out = Vec::new();
    // With --senders-on, senders go to that target and everyone else to the others.
    let senders_on = args
        .senders_on
        .filter(|_| addrs.len() > 1)
        .map(|i| i.min(addrs.len() - 1));
    let others: Vec<SocketAddr> = match senders_on {
        Some(i) => addrs
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, a)| *a)
            .collect(),
        None => addrs.to_vec(),
    };
    let mut add = |role: Role, name: String| {
        let gid = out.len() as u64;
        let addr = match senders_on {
            Some(i) if role == Role::Sender => addrs[i],
            _ => others[out.len() % others.len()],
        };
        out.push(Plan {
            role,
            room: room(name),
            addr,
            gid,
        });
    };
    let rooms = match args.workload {
        Workload::Fanout | Workload::Latency => {
            for i in 0..args.idle {
                add(Role::Idle, format!("i{}", i % 100));
            }
            for _ in 0..args.receivers {
                add(Role::Receiver, "fan".into());
            }
            for _ in 0..args.senders {
                add(Role::Sender, "fan".into());
            }
            1 + args.idle.min(100)
        }
        Workload::Idle => {
            let rooms = args.rooms.unwrap_or(100).max(1);
            for i in 0..args.connections.unwrap_or(10_000) {
                add(Role::Idle, format!("i{}", i % rooms));
            }
            rooms
        }
        Workload::Rooms => {
            let rooms = args.rooms.unwrap_or(500).max(1);
            for i in 0..rooms * args.room_size {
                add(Role::Talker, format!("r{}", i % rooms));
            }
            rooms
        }
        Workload::Churn => {
            for _ in 0..args.connections.unwrap_or(50) {
                add(Role::Churner, "churn".into());
            }
            1
        }
    };
    (out, rooms)
}

fn percentile_ms(hist: &Histogram<u64>, q: f64) -> f64 {
    hist.value_at_quantile(q) as f64 / 1e6
}

/// Runs one workload and reports.
fn run(args: &Args) -> Result<Report, String> {
    let fd_limit = raise_fd_limit();
    let spawned = if args.spawn {
        Some(spawn_server(args)?)
    } else {
        None
    };
    let mut targets: Vec<SocketAddr> = Vec::new();
    if let Some(s) = &spawned {
        targets.push(s.addr);
    }
    for addr in &args.addr {
        let resolved = addr
            .to_socket_addrs()
            .map_err(|e| format!("{addr}: {e}"))?
            .next()
            .ok_or(format!("{addr}: no address"))?;
        if !resolved.ip().is_loopback() {
            return Err(format!("{addr}: the harness only loads loopback servers"));
        }
        targets.push(resolved);
    }
    if targets.is_empty() {
        return Err("give --spawn or --addr HOST:PORT".into());
    }
    let server_pid = spawned.as_ref().map(|s| s.child.id()).or(args.server_pid);
    let stats = || server_pid.and_then(proc_stats);
    let (plans, rooms) = plans(args, &targets);
    let clients = plans.len();
    let setup_total = plans.iter().filter(|p| p.role != Role::Churner).count() as u64;
    if clients as u64 + 64 > fd_limit {
        return Err(format!(
            "{clients} sockets do not fit under this process's open-file limit of {fd_limit}"
        ));
    }
    let interval = match (args.workload, args.rate) {
        (Workload::Fanout, None) | (Workload::Idle | Workload::Churn, _) => None,
        (Workload::Latency, None) => Some(args.senders.max(1) as f64 / 100.0),
        (Workload::Rooms, None) => Some(clients.max(1) as f64 / 5000.0),
        (Workload::Rooms, Some(rate)) => Some(clients.max(1) as f64 / rate),
        (_, Some(rate)) => Some(args.senders.max(1) as f64 / rate),
    };
    // Closed-loop senders get a thread of their own (by default) so that their next messages
    // leave as soon as the echo arrives, not after the receivers' reads queued before it.
    let has_senders = interval.is_none() && plans.iter().any(|p| p.role == Role::Sender);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args
        .threads
        .unwrap_or(cpus + usize::from(has_senders))
        .clamp(1, clients.max(1));
    let sender_thread = has_senders && threads >= 2;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let cfg = Arc::new(RunCfg {
        proto: args.protocol,
        window: args.window.max(1),
        payload: args.payload.max(HEADER),
        interval,
        inflight: args.inflight.div_ceil(threads).max(1),
        rcvlowat: if args.workload == Workload::Fanout {
            args.rcvlowat
        } else {
            0
        },
        // Unique across runs (a server that is not fresh keeps saved nicks), short for IRC.
        nick_prefix: format!(
            "{}{}",
            (b'a' + (stamp % 26) as u8) as char,
            base36(u64::from(std::process::id()) % 1296)
        ),
        oper: args
            .irc_oper
            .as_ref()
            .and_then(|o| o.split_once(':'))
            .map(|(n, p)| (n.to_string(), p.to_string())),
        epoch: Instant::now(),
    });
    if !args.quiet {
        eprintln!(
            "load: {:?} over {:?}, {clients} sockets on {threads} worker thread(s){} of this \
             process (open-file limit {fd_limit} per process), target {}",
            args.workload,
            args.protocol,
            if sender_thread {
                ", the senders on one of their own"
            } else {
                ""
            },
            targets
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let shared = Arc::new(Shared::default());
    let base = stats();
    let mut shares: Vec<Vec<Plan>> = vec![Vec::new(); threads];
    if sender_thread {
        // Thread 0: the senders and, for IRC, one receiver per room to acknowledge them.
        let mut probes = std::collections::HashSet::new();
        let mut next = 0;
        for plan in plans {
            let probe = plan.role == Role::Receiver
                && args.protocol == Proto::Irc
                && probes.insert(plan.room.clone());
            if plan.role == Role::Sender || probe {
                shares[0].push(plan);
            } else {
                shares[1 + next % (threads - 1)].push(plan);
                next += 1;
            }
        }
    } else {
        for (i, plan) in plans.into_iter().enumerate() {
            shares[i % threads].push(plan);
        }
    }
    let workers: Vec<_> = shares
        .into_iter()
        .enumerate()
        .map(|(i, share)| {
            let worker = Worker::new(i, share, Arc::clone(&shared), Arc::clone(&cfg));
            std::thread::Builder::new()
                .name(format!("load-{}", worker.index))
                .spawn(move || worker.run())
                .expect("spawn worker")
        })
        .collect();
    let start = Instant::now();
    let progress = |phase: &str| {
        if args.quiet {
            return;
        }
        let c = shared.counts();
        eprint!(
            "\r{phase:>8} {:6.1}s  conns {}/{} (failed {})  msgs {}  deliveries {}  sessions {}  errors {}   ",
            start.elapsed().as_secs_f64(),
            c.registered,
            setup_total,
            c.failed,
            c.acked,
            c.deliveries,
            c.sessions,
            c.errors
        );
    };
    let finish = |result: Result<(), String>| {
        shared.phase.store(DONE, Relaxed);
        result
    };
    // Set-up.
    let mut outcome = Ok(());
    loop {
        let c = shared.counts();
        if c.registered + c.failed >= setup_total {
            break;
        }
        if start.elapsed().as_secs_f64() > args.setup_timeout {
            outcome = Err(format!(
                "set-up timed out: {} of {setup_total} registered",
                c.registered
            ));
            break;
        }
        progress("setup");
        std::thread::sleep(Duration::from_millis(20));
    }
    let setup_secs = start.elapsed().as_secs_f64();
    let after_setup = stats();
    let mut measured_secs = 0.0;
    let mut window = (Counts::default(), Counts::default());
    let mut cpu = (base, base);
    let mut own = (0.0, 0.0);
    let sleep = |secs: f64, phase: &str| {
        let until = Instant::now() + Duration::from_secs_f64(secs);
        while Instant::now() < until {
            progress(phase);
            std::thread::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(250)),
            );
        }
    };
    if outcome.is_ok() {
        if args.workload != Workload::Idle {
            shared.phase.store(WARMUP, Relaxed);
            sleep(args.warmup, "warmup");
        }
        let t0 = Instant::now();
        window.0 = shared.counts();
        cpu.0 = stats();
        own.0 = own_cpu_secs();
        shared.phase.store(MEASURE, Relaxed);
        sleep(args.duration, "measure");
        shared.phase.store(DRAIN, Relaxed);
        window.1 = shared.counts();
        cpu.1 = stats();
        own.1 = own_cpu_secs();
        measured_secs = t0.elapsed().as_secs_f64();
        // Let closed-loop traffic in flight arrive.
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            let c = shared.counts();
            if c.acked >= c.sent || args.protocol == Proto::Irc {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    progress("done");
    if !args.quiet {
        eprintln!();
    }
    let outcome = finish(outcome);
    let mut hist = Histogram::<u64>::new_with_bounds(1_000, 60_000_000_000, 3).unwrap();
    for worker in workers {
        let h = worker.join().map_err(|_| "a worker thread panicked")?;
        hist.add(h).map_err(|e| format!("histogram: {e}"))?;
    }
    drop(spawned);
    outcome?;
    let total = shared.counts();
    let error_samples = shared.error_samples.lock().unwrap().clone();
    let (c0, c1) = window;
    let server_cpu = match cpu {
        (Some(a), Some(b)) => Some(b.cpu_secs - a.cpu_secs),
        _ => None,
    };
    let deliveries = c1.deliveries - c0.deliveries;
    let msgs_in = c1.acked - c0.acked;
    let harness_cpu = own.1 - own.0;
    let harness_share = harness_cpu / measured_secs.max(1e-9);
    let rss_kib = if args.workload == Workload::Idle {
        cpu.1.map(|s| s.rss_kib)
    } else {
        after_setup.map(|s| s.rss_kib)
    };
    let rss_base = base.map(|s| s.rss_kib);
    let latency = (!hist.is_empty()).then(|| Latency {
        samples: hist.len(),
        p50_ms: percentile_ms(&hist, 0.50),
        p90_ms: percentile_ms(&hist, 0.90),
        p99_ms: percentile_ms(&hist, 0.99),
        p999_ms: percentile_ms(&hist, 0.999),
        max_ms: hist.max() as f64 / 1e6,
    });
    let (receivers, senders) = match args.workload {
        Workload::Fanout | Workload::Latency => (args.receivers, args.senders),
        Workload::Rooms => (clients, clients),
        _ => (0, 0),
    };
    Ok(Report {
        workload: args.workload,
        protocol: args.protocol,
        targets: targets.iter().map(|a| a.to_string()).collect(),
        server: match (&server_pid, args.spawn) {
            (Some(pid), true) => format!(
                "spawned chat-server, pid {pid}{}",
                args.server_cpu
                    .map_or(String::new(), |c| format!(", pinned to CPU {c}"))
            ),
            (Some(pid), false) => format!("pid {pid}"),
            (None, _) => "unknown (no --server-pid): no server CPU or memory figures".into(),
        },
        clients,
        harness_threads: threads,
        fd_limit,
        receivers,
        senders,
        window: args.window,
        payload: args.payload,
        offered_rate: interval.map(|i| senders.max(1) as f64 / i),
        rooms,
        registered: total.registered,
        failed_connects: total.failed,
        setup_secs,
        setup_per_sec: setup_total as f64 / setup_secs,
        measured_secs,
        msgs_in,
        msgs_in_per_sec: msgs_in as f64 / measured_secs.max(1e-9),
        deliveries,
        deliveries_per_sec: deliveries as f64 / measured_secs.max(1e-9),
        sessions: c1.sessions - c0.sessions,
        sessions_per_sec: (c1.sessions - c0.sessions) as f64 / measured_secs.max(1e-9),
        errors: total.errors,
        error_samples,
        server_cpu_secs: server_cpu,
        server_cpu_share: server_cpu.map(|c| c / measured_secs.max(1e-9)),
        deliveries_per_server_cpu_sec: server_cpu
            .filter(|&c| c > 0.0)
            .map(|c| deliveries as f64 / c),
        server_setup_cpu_secs: match (base, after_setup) {
            (Some(a), Some(b)) => Some(b.cpu_secs - a.cpu_secs),
            _ => None,
        },
        server_rss_base_kib: rss_base,
        server_rss_kib: rss_kib,
        server_rss_per_conn_bytes: match (rss_base, rss_kib) {
            (Some(a), Some(b)) if setup_total > 0 => {
                Some((b as f64 - a as f64) * 1024.0 / setup_total as f64)
            }
            _ => None,
        },
        latency,
        harness_cpu_secs: harness_cpu,
        harness_cpu_share: harness_share,
        harness_saturated: harness_share > 0.9 * cpus.min(threads) as f64,
    })
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

fn print_table(r: &Report) {
    let mut rows: Vec<(&str, String)> = vec![
        ("workload", format!("{:?} ({:?})", r.workload, r.protocol)),
        ("target", r.targets.join(", ")),
        ("server", r.server.clone()),
        (
            "clients",
            format!(
                "{} on {} harness thread(s); fd limit {} per process",
                r.clients, r.harness_threads, r.fd_limit
            ),
        ),
        (
            "set-up",
            format!(
                "{} registered, {} failed in {:.2} s: {:.0}/s",
                r.registered, r.failed_connects, r.setup_secs, r.setup_per_sec
            ),
        ),
        ("measured", format!("{:.2} s", r.measured_secs)),
    ];
    if matches!(
        r.workload,
        Workload::Fanout | Workload::Latency | Workload::Rooms
    ) {
        rows.push((
            "messages in",
            format!("{} ({:.0}/s)", r.msgs_in, r.msgs_in_per_sec),
        ));
        rows.push((
            "deliveries",
            format!("{} ({:.0}/s)", r.deliveries, r.deliveries_per_sec),
        ));
    }
    if r.workload == Workload::Churn {
        rows.push((
            "sessions",
            format!("{} ({:.0}/s)", r.sessions, r.sessions_per_sec),
        ));
    }
    rows.push((
        "server CPU",
        match (r.server_cpu_secs, r.server_cpu_share) {
            (Some(c), Some(s)) => format!("{c:.2} s ({:.1}% of one core)", s * 100.0),
            _ => "-".into(),
        },
    ));
    if let Some(d) = r.deliveries_per_server_cpu_sec {
        rows.push(("deliveries/CPU-s", format!("{:.2}M", d / 1e6)));
    }
    rows.push((
        "server RSS",
        format!(
            "{} KiB (base {} KiB){}",
            opt(r.server_rss_kib),
            opt(r.server_rss_base_kib),
            r.server_rss_per_conn_bytes
                .map_or(String::new(), |b| format!(", {b:.0} bytes per connection"))
        ),
    ));
    if let Some(l) = &r.latency {
        rows.push((
            "latency ms",
            format!(
                "p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  ({} samples)",
                l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.samples
            ),
        ));
    }
    rows.push((
        "harness CPU",
        format!(
            "{:.2} s ({:.0}% of one core){}",
            r.harness_cpu_secs,
            r.harness_cpu_share * 100.0,
            if r.harness_saturated {
                ": SATURATED, the server's figures are lower bounds"
            } else {
                ": not the bottleneck"
            }
        ),
    ));
    rows.push(("errors", r.errors.to_string()));
    for (k, v) in rows {
        println!("{k:>18}  {v}");
    }
    for e in &r.error_samples {
        println!("{:>18}  {e}", "error sample");
    }
}

/// Tiny runs of every workload against fresh spawned servers; checks that messages arrive.
/// Checks the digit parsers against the formatting the senders use, and on what is not digits.
fn check_digit_parsers() -> Result<(), String> {
    for n in [
        0,
        1,
        9,
        10,
        12_345_678,
        99_999_999,
        1_234_567_890_123_456,
        9_999_999_999_999_999,
    ] {
        let text = format!("{n:016}");
        if parse_16_digits(text.as_bytes()) != Some(n) {
            return Err(format!("parse_16_digits({text}) is wrong"));
        }
        let text = format!("{:08}", n % 100_000_000);
        if parse_8_digits(text.as_bytes()) != Some(n % 100_000_000) {
            return Err(format!("parse_8_digits({text}) is wrong"));
        }
    }
    for bad in [
        "1234567a",
        "/2345678",
        ":2345678",
        "1234 678",
        "1234567",
        "123456789",
    ] {
        if parse_8_digits(bad.as_bytes()).is_some() {
            return Err(format!("parse_8_digits accepts {bad:?}"));
        }
    }
    Ok(())
}

fn smoke(base: &Args) -> Result<(), String> {
    check_digit_parsers()?;
    let tiny = |workload: Workload| Args {
        spawn: base.addr.is_empty(),
        workload,
        receivers: 20,
        senders: 2,
        connections: Some(if workload == Workload::Churn { 4 } else { 60 }),
        rooms: Some(if workload == Workload::Rooms { 6 } else { 5 }),
        room_size: 4,
        rate: match workload {
            Workload::Latency => Some(50.0),
            Workload::Rooms => Some(100.0),
            _ => None,
        },
        duration: 0.6,
        warmup: 0.2,
        threads: Some(2),
        quiet: true,
        json: false,
        smoke: false,
        ..base.clone()
    };
    let mut failures = Vec::new();
    for workload in [
        Workload::Fanout,
        Workload::Latency,
        Workload::Idle,
        Workload::Rooms,
        Workload::Churn,
    ] {
        let args = tiny(workload);
        let report = match run(&args) {
            Ok(report) => report,
            Err(e) => {
                failures.push(format!("{workload:?}: {e}"));
                continue;
            }
        };
        let mut problems = Vec::new();
        let expected = report.clients as u64;
        if workload != Workload::Churn && report.registered != expected {
            problems.push(format!("{} of {expected} registered", report.registered));
        }
        if report.failed_connects > 0 || report.errors > 0 {
            problems.push(format!(
                "{} failed connects, {} errors: {:?}",
                report.failed_connects, report.errors, report.error_samples
            ));
        }
        match workload {
            Workload::Fanout | Workload::Latency | Workload::Rooms => {
                if report.msgs_in == 0 || report.deliveries == 0 {
                    problems.push("no messages arrived".into());
                }
                // Every message reaches every other member of its room, and its sender.
                let per_msg = match workload {
                    Workload::Rooms => args.room_size,
                    _ => args.receivers + args.senders,
                } as f64;
                let ratio = report.deliveries as f64 / (report.msgs_in.max(1) as f64 * per_msg);
                if !(0.8..=1.2).contains(&ratio) {
                    problems.push(format!(
                        "{} deliveries for {} messages in rooms of {per_msg}",
                        report.deliveries, report.msgs_in
                    ));
                }
                if report.latency.is_none() {
                    problems.push("no latency samples".into());
                }
            }
            Workload::Churn if report.sessions == 0 => problems.push("no session completed".into()),
            _ => {}
        }
        println!(
            "smoke {:<8} {:>4} clients, {:>6} msgs in, {:>7} deliveries, {:>4} sessions: {}",
            format!("{workload:?}").to_lowercase(),
            report.clients,
            report.msgs_in,
            report.deliveries,
            report.sessions,
            if problems.is_empty() {
                "ok".to_string()
            } else {
                problems.join("; ")
            }
        );
        if !problems.is_empty() {
            failures.push(format!("{workload:?}: {}", problems.join("; ")));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.smoke {
        return match smoke(&args) {
            Ok(()) => {
                println!("smoke: every workload delivered");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("smoke FAILED:\n{e}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&args) {
        Ok(report) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report).unwrap());
            } else {
                print_table(&report);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::FAILURE
        }
    }
}
