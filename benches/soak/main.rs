//! The churn soak test: `cargo bench --bench soak -- [--duration SECS] [--clients N] ...`
//! (`--help` lists the flags; `./test.sh` runs 30 s of it).
//!
//! It starts the release `chat-server` on a free loopback port (or, with `--nodes N`, a
//! `redis-server` and N cluster nodes), then simulates `--clients` users for `--duration`
//! seconds, all in one `mio` poll loop. Each user logs in, then at random: talks in its active
//! room (bursts of up to four lines, some `/me`), joins, switches, leaves, renames, asks
//! `/who`, and vanishes: `/quit`, a half close, a close, a TCP reset (SO_LINGER 0), or half a
//! line written and then a reset or a close. After a pause it comes back and sends `/nick`
//! again, which must restore its session exactly (rooms in order, active room). A probe
//! connection asks `/who` every second. Every command must be answered within `--deadline`.
//!
//! What the server confirms (`* Joined ...`, `* Left ...`, `* Welcome back, ...`) is the
//! membership the verdict works from; `checker.rs` says precisely when a delivery is owed,
//! allowed, a duplicate or out of order. The messages a returning user missed, replayed after
//! its welcome, are checked too: exactly once across replay and live, in each sender's order,
//! framed and counted right, only what was posted in its rooms while it was away, all of it
//! (`checker.rs` says how the checker bounds "while it was away" from the lines it reads: the
//! goodbye or close read on the old connection, others' `* [ROOM] NICK disconnected`, `/who`
//! lists without the user). The servers keep `--history` messages a room (a large default,
//! so that no replay is cut). Presence notices are only checked to be for rooms the
//! receiver was in, so quiet rooms (past `--announce-limit`, as `main` is with 200 users) need
//! no special care. After the churn every connected user syncs with `/who` (in cluster mode
//! after waiting out `--grace`), then the counts are printed and the exit status is non-zero
//! if anything was violated. Loopback only, bounded in time, it stops by itself.
//!
//! `--server-arg` hands flags to every server process unchanged, so a server-side limit that
//! would get in the way of the bursts (a flood limit, say) can be turned off for a run without
//! touching this file.

mod checker;

use std::collections::{HashSet, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use checker::{Checker, ConnId, Kind, MsgKey, Tick, UserId};

/// Command-line flags.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "soak",
    about = "Churn soak test of chat-server: delivery, membership and restore checked (loopback only, bounded in time)"
)]
struct Args {
    /// Seconds of churn; then every client syncs, the verdict is printed and the run ends.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Simulated users (plus one probe connection).
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Rooms besides `main` that users wander between [default: clients / 10, at least 2].
    #[arg(long)]
    rooms: Option<usize>,
    /// Server processes: 1 is a standalone server; more start a redis-server and a cluster
    /// whose nodes the users' sessions are spread over.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Mean pause between one user's actions, in milliseconds.
    #[arg(long, default_value_t = 300)]
    think_ms: u64,
    /// Seconds an answer may take before the server counts as stalled.
    #[arg(long, default_value_t = 10.0)]
    deadline: f64,
    /// Cluster mode: seconds a message may take to reach another node.
    #[arg(long, default_value_t = 10.0)]
    grace: f64,
    /// Messages each room keeps (the servers' `--history`): large by default, so that a
    /// replay of missed messages is never cut and every owed message must be in it; with a
    /// small one the checker accepts the replay's "K older ones are no longer kept" instead.
    #[arg(long, default_value_t = 100_000)]
    history: usize,
    /// An extra flag for every server process, repeatable: `--server-arg=--announce-limit
    /// --server-arg=500`.
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// The server binary [default: the one cargo built with this bench].
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Seed of the random choices [default: from the clock]; printed, for reruns.
    #[arg(long)]
    seed: Option<u64>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// A small xorshift generator: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// A pause uniform in 0..2*`mean_ms` milliseconds.
    fn pause(&mut self, mean_ms: u64) -> Duration {
        Duration::from_millis(self.next() % (2 * mean_ms).max(1))
    }
}

/// Strictly increasing microseconds since the start: the checker's ticks.
struct Clock {
    start: Instant,
    last: Tick,
}

impl Clock {
    fn tick(&mut self) -> Tick {
        let now = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(Tick::MAX);
        self.last = now.max(self.last + 1);
        self.last
    }
}

/// The server processes of the run (and Redis), killed when dropped.
struct Servers {
    children: Vec<(String, Child)>,
    addrs: Vec<SocketAddr>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        // Nodes first: a node that sees Redis go first logs the loss.
        for (_, child) in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Servers {
    /// The processes that exited during the run.
    fn exited(&mut self) -> Vec<String> {
        self.children
            .iter_mut()
            .filter_map(|(name, child)| match child.try_wait() {
                Ok(Some(status)) => Some(format!("{name} exited: {status}")),
                _ => None,
            })
            .collect()
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16, String> {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Waits until something accepts connections on `addr`.
fn wait_listening(addr: SocketAddr, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while StdStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{what} did not start listening on {addr}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Starts Redis (for a cluster) and the server processes.
fn start_servers(args: &Args) -> Result<Servers, String> {
    let bin = args
        .server_bin
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_chat-server")));
    let mut servers = Servers {
        children: Vec::new(),
        addrs: Vec::new(),
    };
    let mut redis_url = None;
    if args.nodes > 1 {
        let port = free_port()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server: {e}"))?;
        servers.children.push(("redis-server".into(), child));
        wait_listening(([127, 0, 0, 1], port).into(), "redis-server")?;
        redis_url = Some(format!("redis://127.0.0.1:{port}/"));
    }
    for index in 0..args.nodes {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let mut command = Command::new(&bin);
        command
            .args(["--listen", &addr.to_string(), "--log-level", "warn"])
            // Hundreds of clients from one address, talking in bursts on purpose: the limits
            // for people would only slow the churn down (and are tested in tests/limits.rs).
            .args(["--max-per-ip", "0", "--flood-rate", "0"])
            .args(["--history", &args.history.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let name = node_name(index);
        if let Some(url) = &redis_url {
            command.args(["--redis", url, "--node", &name]);
        }
        command.args(&args.server_args);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        servers.children.push((format!("node {name}"), child));
        wait_listening(addr, &format!("node {name}"))?;
        servers.addrs.push(addr);
    }
    Ok(servers)
}

/// Node `index`'s name: a, b, c, ...
fn node_name(index: usize) -> String {
    match u8::try_from(index) {
        Ok(i) if i < 26 => char::from(b'a' + i).to_string(),
        _ => format!("n{index}"),
    }
}

/// How a user leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vanish {
    /// `/quit`, its goodbye read, then the server closes.
    Quit,
    /// Shuts its sending side and reads until the server closes.
    HalfClose,
    /// Closes the socket.
    Close,
    /// Resets the connection (SO_LINGER 0).
    Reset,
    /// Writes half a line, then resets.
    ResetMidLine,
    /// Writes half a line, then closes.
    CloseMidLine,
}

const VANISHES: [Vanish; 6] = [
    Vanish::Quit,
    Vanish::HalfClose,
    Vanish::Close,
    Vanish::Reset,
    Vanish::ResetMidLine,
    Vanish::CloseMidLine,
];

/// What a user is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No connection; comes back at `next_at`.
    Offline,
    /// Connected, waiting for the greeting.
    Greeting,
    /// `/nick` sent.
    LoggingIn,
    /// The nick was in use (the old connection not reaped yet); tries again at `next_at`.
    NickRetry,
    /// Logged in, acts at `next_at`.
    Idle,
    /// Waiting for answers.
    Busy,
    /// Synced before vanishing this way; waiting for the sync's answer.
    Vanishing(Vanish),
    /// Waiting for the server to close (after `/quit` or a half close).
    Draining,
    /// Synced at the end of the run.
    Finished,
}

/// An answer a connection waits for.
#[derive(Debug, Clone)]
enum Want {
    Greeting,
    Login,
    /// The echo of message `key`, exactly `echo`.
    Say {
        key: MsgKey,
        echo: String,
    },
    Join(String),
    Switch(String),
    Leave(String),
    Rename(String),
    Who,
    Bye,
    /// The server closing the connection.
    Eof,
}

/// One awaited answer.
#[derive(Debug, Clone)]
struct Expect {
    want: Want,
    /// When the command was queued (tick and instant).
    asked: Tick,
    asked_at: Instant,
}

/// One simulated user.
#[derive(Debug)]
struct User {
    id: u32,
    /// The two nicks it alternates between.
    nicks: [String; 2],
    /// The nick it has (as the server confirmed it).
    nick: String,
    /// Its rooms as the server confirmed them, in join order, and its active room.
    rooms: Vec<String>,
    active: String,
    /// Its next message's sequence number.
    seq: u32,
    /// Successful logins so far (after the first, every login must restore).
    logins: u32,
    conn: Option<usize>,
    state: State,
    next_at: Instant,
    probe: bool,
}

/// One connection.
struct Conn {
    id: ConnId,
    user: usize,
    stream: TcpStream,
    input: Vec<u8>,
    output: Vec<u8>,
    expect: VecDeque<Expect>,
}

/// Phases of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Users act.
    Churn,
    /// No new actions; what is under way finishes.
    Settle,
    /// Cluster mode: waiting out the grace before the final sync.
    Wait,
    /// Every connected user asked `/who` one last time.
    Sync,
}

/// What the run counted besides the checker's counts.
#[derive(Debug, Default)]
struct Stats {
    connections: u64,
    logins: u64,
    restores: u64,
    vanished: [u64; 6],
    joins: u64,
    leaves: u64,
    renames: u64,
    nick_retries: u64,
    answers: u64,
    slowest: Duration,
    probe_answers: u64,
    probe_slowest: Duration,
}

/// Words the messages are padded with: several scripts, so UTF-8 is exercised.
const WORDS: &[&str] = &[
    "hello",
    "привет",
    "мир",
    "東京",
    "😀",
    "soak",
    "кухня",
    "ünïcödé",
    "-",
    "42",
];

/// The soak run.
struct Engine {
    args: Args,
    poll: Poll,
    addrs: Vec<SocketAddr>,
    users: Vec<User>,
    conns: Slab<Conn>,
    next_conn: ConnId,
    rooms: Vec<String>,
    checker: Checker,
    clock: Clock,
    rng: Rng,
    stats: Stats,
    phase: Phase,
    deadline: Duration,
    buf: Vec<u8>,
}

impl Engine {
    fn new(args: Args, addrs: Vec<SocketAddr>, seed: u64) -> Result<Self, String> {
        let poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
        let start = Instant::now();
        let mut rng = Rng(seed | 1);
        let room_count = args.rooms.unwrap_or(args.clients / 10).max(2);
        // Latin and Cyrillic names: room lines and their case-insensitive keys in both.
        let rooms = (0..room_count)
            .map(|i| {
                if i % 3 == 2 {
                    format!("кухня{i}")
                } else {
                    format!("r{i}")
                }
            })
            .collect();
        let users = (0..=args.clients)
            .map(|i| {
                let probe = i == args.clients;
                let base = if probe {
                    "probe".to_string()
                } else {
                    format!("s{i}")
                };
                User {
                    id: u32::try_from(i).unwrap_or(u32::MAX),
                    nicks: [base.clone(), format!("{base}-b")],
                    nick: base,
                    rooms: Vec::new(),
                    active: String::new(),
                    seq: 0,
                    logins: 0,
                    conn: None,
                    state: State::Offline,
                    next_at: start + rng.pause(args.think_ms),
                    probe,
                }
            })
            .collect();
        let checker = Checker::new(checker::Config {
            grace: (args.grace * 1e6) as Tick,
            per_connection: args.nodes > 1,
            // Standalone and in a cluster (whose sessions in Redis carry the rooms' clocks).
            replay: true,
        });
        Ok(Self {
            deadline: Duration::from_secs_f64(args.deadline),
            args,
            poll,
            addrs,
            users,
            conns: Slab::new(),
            next_conn: 1,
            rooms,
            checker,
            clock: Clock { start, last: 0 },
            rng,
            stats: Stats::default(),
            phase: Phase::Churn,
            buf: vec![0; 64 * 1024],
        })
    }

    fn protocol(&mut self, detail: String) {
        self.checker.violation(Kind::Protocol, detail);
    }

    /// Runs the churn, the settling and the final sync.
    fn run(&mut self) {
        let start = self.clock.start;
        let churn_end = start + Duration::from_secs_f64(self.args.duration);
        let mut phase_deadline = churn_end;
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            match self.phase {
                Phase::Churn if now >= churn_end => {
                    self.phase = Phase::Settle;
                    phase_deadline = now + self.deadline + Duration::from_secs(5);
                }
                Phase::Settle if self.settled() || now >= phase_deadline => {
                    if !self.settled() {
                        self.protocol("users still busy long after the churn ended".into());
                    }
                    self.phase = Phase::Wait;
                    let wait = if self.args.nodes > 1 {
                        self.args.grace
                    } else {
                        0.0
                    };
                    phase_deadline = now + Duration::from_secs_f64(wait + 0.1);
                }
                Phase::Wait if now >= phase_deadline => {
                    self.final_sync();
                    self.phase = Phase::Sync;
                    phase_deadline = now + self.deadline;
                }
                Phase::Sync if self.synced() => break,
                Phase::Sync if now >= phase_deadline => {
                    self.protocol("the final /who went unanswered".into());
                    break;
                }
                _ => {}
            }
            self.timers(now);
            self.deadlines(now);
            let timeout = Duration::from_millis(20);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != ErrorKind::Interrupted {
                    self.protocol(format!("poll failed: {e}"));
                    break;
                }
            }
            for event in events.iter() {
                let ci = event.token().0;
                if event.is_writable() {
                    self.flush(ci);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read(ci);
                }
            }
        }
        self.checker.finish();
    }

    /// No user is in the middle of something.
    fn settled(&self) -> bool {
        self.users
            .iter()
            .all(|u| matches!(u.state, State::Idle | State::Offline | State::Finished))
    }

    /// Every user that was connected got its final answer.
    fn synced(&self) -> bool {
        self.users.iter().all(|u| u.state != State::Busy)
    }

    /// The last `/who` of every connected user: everything owed to it is due by its answer.
    fn final_sync(&mut self) {
        for u in 0..self.users.len() {
            if self.users[u].state == State::Idle {
                if let Some(ci) = self.users[u].conn {
                    self.command(ci, "/who", Want::Who);
                    self.users[u].state = State::Busy;
                }
            }
        }
    }

    /// Users whose time has come act.
    fn timers(&mut self, now: Instant) {
        for u in 0..self.users.len() {
            if now < self.users[u].next_at {
                continue;
            }
            match (self.users[u].state, self.phase) {
                (State::Offline, Phase::Churn) => self.connect(u),
                (State::Idle, Phase::Churn) => self.act(u),
                (State::NickRetry, _) => {
                    if let Some(ci) = self.users[u].conn {
                        self.stats.nick_retries += 1;
                        self.send_nick(ci, u);
                    }
                }
                _ => {}
            }
        }
    }

    /// Connections whose oldest awaited answer is overdue are given up, as a violation.
    fn deadlines(&mut self, now: Instant) {
        let overdue: Vec<(usize, String)> = self
            .conns
            .iter()
            .filter_map(|(ci, c)| {
                let front = c.expect.front()?;
                (now.duration_since(front.asked_at) > self.deadline)
                    .then(|| (ci, format!("{:?}", front.want)))
            })
            .collect();
        for (ci, want) in overdue {
            let nick = self.users[self.conns[ci].user].nick.clone();
            self.protocol(format!(
                "{nick}: no answer within {:?} to {want}",
                self.deadline
            ));
            self.drop_conn(ci, false);
        }
    }

    /// Opens a new session of user `u` on a random node (the probe stays on the first).
    fn connect(&mut self, u: usize) {
        let node = if self.users[u].probe {
            0
        } else {
            self.rng.below(self.addrs.len())
        };
        let now = Instant::now();
        let mut stream = match TcpStream::connect(self.addrs[node]) {
            Ok(stream) => stream,
            Err(e) => {
                self.protocol(format!("connect to node {node} failed: {e}"));
                self.users[u].next_at = now + Duration::from_secs(1);
                return;
            }
        };
        let ci = self.conns.vacant_key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(ci), interest)
        {
            self.protocol(format!("register failed: {e}"));
            self.users[u].next_at = now + Duration::from_secs(1);
            return;
        }
        let id = self.next_conn;
        self.next_conn += 1;
        let asked = self.clock.tick();
        let uid = self.users[u].id;
        self.checker.open(id, uid, node);
        let expect = Expect {
            want: Want::Greeting,
            asked,
            asked_at: now,
        };
        self.conns.insert(Conn {
            id,
            user: u,
            stream,
            input: Vec::new(),
            output: Vec::new(),
            expect: VecDeque::from([expect]),
        });
        self.users[u].conn = Some(ci);
        self.users[u].state = State::Greeting;
        self.stats.connections += 1;
    }

    /// Queues `line` on connection `ci` and returns its tick.
    fn send(&mut self, ci: usize, line: &str) -> Tick {
        let at = self.clock.tick();
        if let Some(conn) = self.conns.get_mut(ci) {
            conn.output.extend_from_slice(line.as_bytes());
            conn.output.push(b'\n');
        }
        self.flush(ci);
        at
    }

    /// Sends a command and awaits `want`; returns the command's tick.
    fn command(&mut self, ci: usize, line: &str, want: Want) -> Tick {
        let asked = self.send(ci, line);
        if let Some(conn) = self.conns.get_mut(ci) {
            conn.expect.push_back(Expect {
                want,
                asked,
                asked_at: Instant::now(),
            });
        }
        asked
    }

    fn send_nick(&mut self, ci: usize, u: usize) {
        let line = format!("/nick {}", self.users[u].nick);
        self.command(ci, &line, Want::Login);
        self.users[u].state = State::LoggingIn;
    }

    /// Writes what is queued on `ci`, as far as the socket takes it.
    fn flush(&mut self, ci: usize) {
        let Some(conn) = self.conns.get_mut(ci) else {
            return;
        };
        while !conn.output.is_empty() {
            match conn.stream.write(&conn.output) {
                Ok(0) => break,
                Ok(n) => {
                    conn.output.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // The rest goes out on the next writable event; a broken connection shows
                // when it is read.
                Err(_) => break,
            }
        }
    }

    /// Reads `ci` until it would block and handles its complete lines.
    fn read(&mut self, ci: usize) {
        let Some(id) = self.conns.get(ci).map(|c| c.id) else {
            return;
        };
        let mut ended = None;
        loop {
            let Some(conn) = self.conns.get_mut(ci) else {
                return;
            };
            match conn.stream.read(&mut self.buf) {
                Ok(0) => {
                    ended = Some("closed".to_string());
                    break;
                }
                Ok(n) => conn.input.extend_from_slice(&self.buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    ended = Some(e.to_string());
                    break;
                }
            }
        }
        loop {
            let Some(conn) = self.conns.get_mut(ci).filter(|c| c.id == id) else {
                return;
            };
            let Some(end) = memchr::memchr(b'\n', &conn.input) else {
                break;
            };
            let raw: Vec<u8> = conn.input.drain(..=end).collect();
            self.raw_line(ci, &raw);
        }
        if let Some(why) = ended {
            if self.conns.get(ci).is_some_and(|c| c.id == id) {
                self.server_closed(ci, &why);
            }
        }
    }

    /// One line as read: CRLF-terminated UTF-8.
    fn raw_line(&mut self, ci: usize, raw: &[u8]) {
        match std::str::from_utf8(raw)
            .ok()
            .and_then(|l| l.strip_suffix("\r\n"))
        {
            Some(line) => self.line(ci, line),
            None => self.protocol(format!("malformed line {raw:?}")),
        }
    }

    /// One server line on `ci`.
    fn line(&mut self, ci: usize, line: &str) {
        let at = self.clock.tick();
        let (id, u) = (self.conns[ci].id, self.conns[ci].user);
        if let Some(rest) = line.strip_prefix('[') {
            // `[ROOM TIME] ...` (a space inside the brackets) is a replayed message.
            let replayed = rest
                .split_once("] ")
                .and_then(|(inside, body)| Some((inside.split_once(' ')?.0, body)));
            if let Some((room, body)) = replayed {
                return self.replayed_line(id, room, body);
            }
            self.checker.live(id);
            return self.room_line(id, rest, at);
        }
        match replay_frame(line) {
            Some(Some(frame)) => return self.replay_frame(id, frame),
            Some(None) => return self.protocol(format!("malformed replay frame {line:?}")),
            None => {}
        }
        // Any other line ends a replay under way.
        self.checker.live(id);
        if let Some(rest) = line.strip_prefix("* [") {
            match rest.split_once("] ") {
                Some((room, notice)) => {
                    self.checker.presence(id, room, at);
                    let gone = notice.strip_suffix(" disconnected");
                    if let Some(user) = gone.and_then(|nick| self.user_of_nick(nick)) {
                        self.checker.disconnect_seen(id, user, at);
                    }
                }
                None => self.protocol(format!("malformed presence notice {line:?}")),
            }
            return;
        }
        if line.starts_with("* ") && line.contains("arrivals and departures are not announced") {
            return; // the note on entering a quiet room
        }
        let Some(expect) = self.conns[ci].expect.pop_front() else {
            let nick = &self.users[u].nick;
            return self.protocol(format!("{nick}: unexpected {line:?}"));
        };
        self.answer(ci, expect, line, at);
    }

    /// A room line: `ROOM] NICK: TEXT` or `ROOM] * NICK TEXT` (the `[` stripped).
    fn room_line(&mut self, id: ConnId, rest: &str, at: Tick) {
        let parsed = rest.split_once("] ").and_then(|(room, body)| {
            let (nick, text, key) = message_parts(body)?;
            Some((room, nick, text, key))
        });
        match parsed {
            Some((room, nick, text, key)) => {
                self.checker.delivered(id, key, (room, nick, text), at);
            }
            None => {
                let detail = format!("conn {id} got a room line of nobody's: [{rest}");
                self.checker.violation(Kind::Garbled, detail);
            }
        }
    }

    /// A replayed message of `room`: `NICK: TEXT` or `* NICK TEXT`.
    fn replayed_line(&mut self, id: ConnId, room: &str, body: &str) {
        match message_parts(body) {
            Some((nick, text, key)) => self.checker.replayed(id, key, (room, nick, text)),
            None => {
                let detail = format!("conn {id} got a replayed line of nobody's in {room}: {body}");
                self.checker.violation(Kind::Garbled, detail);
            }
        }
    }

    /// A line framing a replay.
    fn replay_frame(&mut self, id: ConnId, frame: ReplayFrame<'_>) {
        match frame {
            ReplayFrame::Missed { room, count, lost } => {
                self.checker.replay_header(id, room, count, lost)
            }
            ReplayFrame::MissedEnd(room) => self.checker.replay_end(id, room),
            ReplayFrame::Privates(count) => self.checker.privates_header(id, count),
            ReplayFrame::Private => self.checker.private_replayed(id),
            ReplayFrame::PrivatesEnd => self.checker.privates_end(id),
        }
    }

    /// The user whose nick is `nick` (any case; `sN`, `sN-b`, `probe`).
    fn user_of_nick(&self, nick: &str) -> Option<UserId> {
        let lower = nick.to_lowercase();
        let base = lower.strip_suffix("-b").unwrap_or(&lower);
        let index = match base {
            "probe" => self.args.clients,
            _ => base.strip_prefix('s')?.parse().ok()?,
        };
        let user = self.users.get(index)?;
        Some(user.id)
    }

    /// An answer to `/who` sent at `asked`, read at `at`: `* Members of ROOM (TOTAL): A, B`.
    /// A complete list tells the checker who had certainly left the room by then; a cut one
    /// (`, and N more`) tells nothing.
    fn member_list(&mut self, id: ConnId, line: &str, asked: Tick, at: Tick) {
        let parsed = line
            .strip_prefix("* Members of ")
            .and_then(|rest| rest.split_once(" ("))
            .and_then(|(room, rest)| Some((room, rest.split_once("): ")?.1)));
        let Some((room, list)) = parsed else {
            return;
        };
        if list.contains(", and ") && list.ends_with(" more") {
            return;
        }
        let listed: HashSet<UserId> = list
            .split(", ")
            .filter_map(|nick| self.user_of_nick(nick))
            .collect();
        self.checker.members(id, room, &listed, asked, at);
    }

    /// The answer `line` to the command `expect` of connection `ci`.
    fn answer(&mut self, ci: usize, expect: Expect, line: &str, at: Tick) {
        let (id, u) = (self.conns[ci].id, self.conns[ci].user);
        let latency = expect.asked_at.elapsed();
        if self.users[u].probe {
            self.stats.probe_answers += 1;
            self.stats.probe_slowest = self.stats.probe_slowest.max(latency);
        } else {
            self.stats.answers += 1;
            self.stats.slowest = self.stats.slowest.max(latency);
        }
        let ok = match &expect.want {
            Want::Greeting => line.starts_with("* Welcome to chat-server."),
            Want::Login => return self.login_answer(ci, &expect, line, at),
            Want::Say { key, echo } => {
                let ok = line == echo;
                if ok {
                    self.checker.echoed(*key, at);
                }
                ok
            }
            Want::Join(room) => match between(line, "* Joined ", ". Active room: ") {
                Some(joined) if same_room(joined, room) => {
                    self.checker.entered(id, joined, at);
                    let user = &mut self.users[u];
                    user.rooms.push(joined.to_string());
                    user.active = joined.to_string();
                    self.stats.joins += 1;
                    true
                }
                _ => false,
            },
            Want::Switch(room) => match between(line, "* Active room: ", ".") {
                Some(active) if same_room(active, room) => {
                    self.users[u].active = active.to_string();
                    true
                }
                _ => false,
            },
            Want::Leave(room) => match between(line, "* Left ", ". Active room: ") {
                Some(left) if same_room(left, room) => {
                    self.checker.left(id, left, at);
                    self.left_room(u, left, line);
                    true
                }
                _ => false,
            },
            Want::Rename(to) => {
                let was = &self.users[u].nick;
                if line == format!("* You are now {to} (was {was}).") {
                    self.users[u].nick = to.clone();
                    self.stats.renames += 1;
                    true
                } else {
                    // The other nick may still have a saved session; the rename is refused.
                    line.starts_with(&format!("! nick {to} has a saved session"))
                }
            }
            Want::Who => {
                let ok = line.starts_with("* Members of ");
                if ok {
                    self.member_list(id, line, expect.asked, at);
                }
                ok
            }
            Want::Bye => {
                let ok = line.starts_with(&format!("* Bye, {}.", self.users[u].nick));
                if ok {
                    // The server let the connection go as it said goodbye.
                    self.checker.gone_by(id, at);
                }
                if let Some(conn) = self.conns.get_mut(ci) {
                    conn.expect.push_front(Expect {
                        want: Want::Eof,
                        ..expect.clone()
                    });
                }
                ok
            }
            Want::Eof => false,
        };
        if !ok {
            let nick = &self.users[u].nick;
            let want = &expect.want;
            return self.protocol(format!("{nick}: {line:?} in answer to {want:?}"));
        }
        self.checker.answered(id, expect.asked);
        self.after_answer(ci, u);
    }

    /// Bookkeeping of a confirmed `/leave`: the model's rooms, and the active room the server
    /// must have chosen (main if the active room was left).
    fn left_room(&mut self, u: usize, left: &str, line: &str) {
        let user = &mut self.users[u];
        user.rooms.retain(|r| !same_room(r, left));
        let expected = if same_room(&user.active, left) {
            "main".to_string()
        } else {
            user.active.clone()
        };
        let active = line
            .split_once(". Active room: ")
            .and_then(|(_, a)| a.strip_suffix('.'));
        let active = active.unwrap_or_default().to_string();
        user.active = active.clone();
        if !same_room(&active, &expected) {
            let nick = user.nick.clone();
            self.protocol(format!(
                "{nick}: active room {active} after the leave, not {expected}"
            ));
        }
        self.stats.leaves += 1;
    }

    /// The answer to `/nick` when logging in.
    fn login_answer(&mut self, ci: usize, expect: &Expect, line: &str, at: Tick) {
        let (id, u) = (self.conns[ci].id, self.conns[ci].user);
        let nick = self.users[u].nick.clone();
        if line == format!("! nick {nick} is in use") {
            // The server has not reaped this user's previous connection yet.
            self.users[u].state = State::NickRetry;
            self.users[u].next_at = Instant::now() + Duration::from_millis(200);
            return;
        }
        let Some((restored, who, rooms, active)) = parse_welcome(line) else {
            return self.protocol(format!("{nick}: {line:?} in answer to /nick"));
        };
        if who != nick {
            self.protocol(format!("{nick}: welcomed as {who}"));
        }
        let user = &self.users[u];
        if user.logins > 0 {
            let same = rooms.len() == user.rooms.len()
                && rooms.iter().zip(&user.rooms).all(|(a, b)| same_room(a, b))
                && same_room(active, &user.active);
            if !restored || !same {
                let had = format!("{:?}, active {}", user.rooms, user.active);
                self.protocol(format!(
                    "{nick}: session not restored as it was ({had}): {line}"
                ));
            }
        } else if restored {
            self.protocol(format!(
                "{nick}: a session restored that was never saved: {line}"
            ));
        }
        // What follows the welcome up to the first live line is the replay of what was missed.
        self.checker
            .logged_in(id, restored, &rooms, expect.asked, at);
        for room in &rooms {
            self.checker.entering(id, room, expect.asked);
            self.checker.entered(id, room, at);
        }
        let user = &mut self.users[u];
        user.rooms = rooms.iter().map(|r| r.to_string()).collect();
        user.active = active.to_string();
        user.logins += 1;
        self.stats.logins += 1;
        self.stats.restores += u64::from(restored);
        self.checker.answered(id, expect.asked);
        self.users[u].state = State::Busy;
        self.after_answer(ci, u);
    }

    /// After an answer: a vanishing user goes once synced; a busy one idles when nothing is
    /// awaited any more.
    fn after_answer(&mut self, ci: usize, u: usize) {
        let waiting = self.conns.get(ci).map_or(0, |c| c.expect.len());
        match self.users[u].state {
            State::Greeting => {
                self.send_nick(ci, u);
            }
            State::Vanishing(how) => self.vanish(ci, u, how),
            State::Busy if waiting == 0 => {
                self.users[u].state = if self.phase == Phase::Sync {
                    State::Finished
                } else {
                    State::Idle
                };
                let think = if self.users[u].probe {
                    500
                } else {
                    self.args.think_ms
                };
                self.users[u].next_at = Instant::now() + self.rng.pause(think);
            }
            _ => {}
        }
    }

    /// A logged-in user does something.
    fn act(&mut self, u: usize) {
        let Some(ci) = self.users[u].conn else {
            return;
        };
        self.users[u].state = State::Busy;
        if self.users[u].probe {
            self.command(ci, "/who", Want::Who);
            return;
        }
        let roll = self.rng.below(100);
        let extra_rooms = self.users[u].rooms.len().saturating_sub(1);
        match roll {
            0..=44 => self.say(ci, u),
            45..=56 if extra_rooms < 4 => self.join(ci, u),
            57..=62 if extra_rooms > 0 => self.switch(ci, u),
            63..=71 if extra_rooms > 0 => self.leave(ci, u),
            72..=76 => self.rename(ci, u),
            77..=82 => {
                self.command(ci, "/who", Want::Who);
            }
            83..=87 => {
                let how = VANISHES[self.rng.below(VANISHES.len())];
                self.start_vanishing(ci, u, how);
            }
            _ => self.say(ci, u),
        }
    }

    /// A burst of one to four messages (some `/me`) to the active room, in one write.
    fn say(&mut self, ci: usize, u: usize) {
        let count = 1 + self.rng.below(4);
        for _ in 0..count {
            self.message(ci, u, true);
        }
    }

    /// Sends one message; awaits its echo if `await_echo`.
    fn message(&mut self, ci: usize, u: usize, await_echo: bool) {
        let key = self.next_key(u);
        let mut text = format!("~{}.{}", key.sender, key.seq);
        for _ in 0..self.rng.below(8) {
            text.push(' ');
            text.push_str(WORDS[self.rng.below(WORDS.len())]);
        }
        let user = &self.users[u];
        let (nick, room) = (user.nick.clone(), user.active.clone());
        let action = self.rng.chance(0.15);
        let (line, echo) = if action {
            (format!("/me {text}"), format!("You: * {nick} {text}"))
        } else {
            (text.clone(), format!("You: {text}"))
        };
        let at = if await_echo {
            self.command(ci, &line, Want::Say { key, echo })
        } else {
            self.send(ci, &line)
        };
        let id = self.conns[ci].id;
        self.checker.sent(id, key, (&room, &nick, Some(&text)), at);
    }

    fn next_key(&mut self, u: usize) -> MsgKey {
        let user = &mut self.users[u];
        user.seq += 1;
        MsgKey {
            sender: user.id,
            seq: user.seq,
        }
    }

    /// A room name as a user might type it: sometimes in capitals.
    fn spell(&mut self, room: &str) -> String {
        if self.rng.chance(0.3) {
            room.to_uppercase()
        } else {
            room.to_string()
        }
    }

    fn join(&mut self, ci: usize, u: usize) {
        let room = self.rooms[self.rng.below(self.rooms.len())].clone();
        if self.users[u].rooms.iter().any(|r| same_room(r, &room)) {
            return self.switch(ci, u);
        }
        let typed = self.spell(&room);
        let asked = self.command(ci, &format!("/join {typed}"), Want::Join(room.clone()));
        let id = self.conns[ci].id;
        self.checker.entering(id, &room, asked);
    }

    fn switch(&mut self, ci: usize, u: usize) {
        let rooms = &self.users[u].rooms;
        let room = rooms[self.rng.below(rooms.len())].clone();
        let typed = self.spell(&room);
        self.command(ci, &format!("/join {typed}"), Want::Switch(room));
    }

    fn leave(&mut self, ci: usize, u: usize) {
        let rooms: Vec<String> = self.users[u]
            .rooms
            .iter()
            .filter(|r| !same_room(r, "main"))
            .cloned()
            .collect();
        let room = rooms[self.rng.below(rooms.len())].clone();
        let typed = self.spell(&room);
        let asked = self.command(ci, &format!("/leave {typed}"), Want::Leave(room.clone()));
        let id = self.conns[ci].id;
        self.checker.leaving(id, &room, asked);
    }

    /// Renames to the user's other nick (sometimes in capitals).
    fn rename(&mut self, ci: usize, u: usize) {
        let user = &self.users[u];
        let other = if same_room(&user.nick, &user.nicks[0]) {
            &user.nicks[1]
        } else {
            &user.nicks[0]
        };
        let other = other.clone();
        let to = self.spell(&other);
        self.command(ci, &format!("/nick {to}"), Want::Rename(to));
    }

    /// Starts leaving: `/quit`, or a `/who` whose answer marks the end of the stay (every
    /// line owed to the user arrives before it), then the abrupt part.
    fn start_vanishing(&mut self, ci: usize, u: usize, how: Vanish) {
        let id = self.conns[ci].id;
        let want = if how == Vanish::Quit {
            Want::Bye
        } else {
            Want::Who
        };
        let line = if how == Vanish::Quit { "/quit" } else { "/who" };
        let asked = self.command(ci, line, want);
        self.checker.leaving_all(id, asked);
        self.users[u].state = if how == Vanish::Quit {
            State::Draining
        } else {
            State::Vanishing(how)
        };
        if let Some(slot) = VANISHES.iter().position(|&v| v == how) {
            self.stats.vanished[slot] += 1;
        }
    }

    /// The sync before vanishing was answered: now the abrupt part.
    fn vanish(&mut self, ci: usize, u: usize, how: Vanish) {
        // Sometimes a last burst the server may or may not handle before it notices.
        if how != Vanish::HalfClose && self.rng.chance(0.3) {
            for _ in 0..1 + self.rng.below(3) {
                self.message(ci, u, false);
            }
        }
        match how {
            Vanish::HalfClose => {
                if self.rng.chance(0.3) {
                    self.say(ci, u); // echoed before the server closes
                }
                if let Some(conn) = self.conns.get_mut(ci) {
                    let _ = conn.stream.shutdown(Shutdown::Write);
                    conn.expect.push_back(Expect {
                        want: Want::Eof,
                        asked: self.clock.last,
                        asked_at: Instant::now(),
                    });
                }
                self.users[u].state = State::Draining;
            }
            Vanish::ResetMidLine | Vanish::CloseMidLine => {
                let key = self.next_key(u);
                let half = format!("~{}.{} half a li", key.sender, key.seq);
                let at = self.clock.tick();
                if let Some(conn) = self.conns.get_mut(ci) {
                    conn.output.extend_from_slice(half.as_bytes());
                }
                self.flush(ci);
                let user = &self.users[u];
                let (room, nick) = (user.active.clone(), user.nick.clone());
                let id = self.conns[ci].id;
                self.checker.sent(id, key, (&room, &nick, None), at);
                self.drop_conn(ci, how == Vanish::ResetMidLine);
            }
            Vanish::Reset => self.drop_conn(ci, true),
            Vanish::Close | Vanish::Quit => self.drop_conn(ci, false),
        }
    }

    /// The server closed `ci` (or it failed): expected after `/quit` or a half close, a
    /// violation otherwise.
    fn server_closed(&mut self, ci: usize, why: &str) {
        let (id, u) = (self.conns[ci].id, self.conns[ci].user);
        // The server closes a connection as (or after) the chat lets it go.
        let at = self.clock.tick();
        self.checker.gone_by(id, at);
        let awaited: Vec<Want> = self.conns[ci]
            .expect
            .iter()
            .map(|e| e.want.clone())
            .collect();
        if !matches!(awaited.as_slice(), [Want::Eof]) {
            let nick = &self.users[u].nick;
            self.protocol(format!(
                "{nick}: connection {why} by the server while awaiting {awaited:?}"
            ));
        }
        self.drop_conn(ci, false);
    }

    /// Closes `ci` (with a reset if `reset`); its user comes back after a pause.
    fn drop_conn(&mut self, ci: usize, reset: bool) {
        let Some(mut conn) = self.conns.try_remove(ci) else {
            return;
        };
        if reset {
            let _ = socket2::SockRef::from(&conn.stream).set_linger(Some(Duration::ZERO));
        }
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let at = self.clock.tick();
        self.checker.closed(conn.id, at);
        drop(conn);
        let u = self.users.iter().position(|user| user.conn == Some(ci));
        if let Some(u) = u {
            let user = &mut self.users[u];
            user.conn = None;
            user.state = State::Offline;
            user.next_at = Instant::now() + Duration::from_millis(50) + self.rng.pause(700);
        }
    }
}

/// The text between `prefix` and `suffix` of `line`.
fn between<'a>(line: &'a str, prefix: &str, suffix: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(prefix)?;
    let end = rest.find(suffix)?;
    Some(&rest[..end])
}

/// Room names (and nicks) are compared case-insensitively.
fn same_room(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// `NICK: TEXT` or `* NICK TEXT`, with the key at the start of the text.
fn message_parts(body: &str) -> Option<(&str, &str, MsgKey)> {
    let (nick, text) = match body.strip_prefix("* ") {
        Some(action) => action.split_once(' ')?,
        None => body.split_once(": ")?,
    };
    Some((nick, text, message_key(text)?))
}

/// The key at the start of a message text: `~USER.SEQ`.
fn message_key(text: &str) -> Option<MsgKey> {
    let word = text.strip_prefix('~')?.split(' ').next()?;
    let (sender, seq) = word.split_once('.')?;
    Some(MsgKey {
        sender: sender.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

/// `* Welcome[ back], NICK. Rooms: LIST. Active room: ROOM.` as (restored, nick, rooms, active).
fn parse_welcome(line: &str) -> Option<(bool, &str, Vec<&str>, &str)> {
    let (restored, rest) = match line.strip_prefix("* Welcome back, ") {
        Some(rest) => (true, rest),
        None => (false, line.strip_prefix("* Welcome, ")?),
    };
    let (nick, rest) = rest.split_once(". Rooms: ")?;
    let (list, rest) = rest.split_once(". Active room: ")?;
    let active = rest.strip_suffix('.')?;
    Some((restored, nick, list.split(", ").collect(), active))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.clients == 0 || args.nodes == 0 || args.duration <= 0.0 {
        eprintln!("soak: --clients, --nodes and --duration must be positive");
        return ExitCode::FAILURE;
    }
    let seed = args.seed.unwrap_or_else(|| {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        since.map_or(1, |d| d.as_nanos() as u64)
    });
    let mut servers = match start_servers(&args) {
        Ok(servers) => servers,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut engine = match Engine::new(args.clone(), servers.addrs.clone(), seed) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    engine.run();
    for exited in servers.exited() {
        engine.protocol(exited);
    }
    report(&args, &engine, seed, started.elapsed());
    drop(servers);
    if engine.checker.violations() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints the counts and the verdict.
fn report(args: &Args, engine: &Engine, seed: u64, took: Duration) {
    let (s, c) = (&engine.stats, &engine.checker.counts);
    let mode = if args.nodes > 1 {
        format!("{} cluster nodes and Redis", args.nodes)
    } else {
        "a standalone server".into()
    };
    println!(
        "soak: {} clients and a probe on {mode}, {:.0} s of churn ({:.1} s in all), seed {seed}",
        args.clients,
        args.duration,
        took.as_secs_f64()
    );
    let v = s.vanished;
    println!(
        "  sessions     {} logged in ({} restored), {} connections; vanished: {} /quit, {} half close, {} close, {} reset, {} reset mid-line, {} close mid-line",
        s.logins, s.restores, s.connections, v[0], v[1], v[2], v[3], v[4], v[5]
    );
    println!(
        "  actions      {} joins, {} leaves, {} renames, {} nick-in-use retries",
        s.joins, s.leaves, s.renames, s.nick_retries
    );
    println!(
        "  messages     {} sent, {} confirmed by their echo, {} half lines",
        c.messages, c.confirmed, c.half_lines
    );
    println!(
        "  deliveries   {} checked; {} owed by the rule, {} of them arrived, {} unjudged; {} presence notices",
        c.deliveries, c.required, c.required_met, c.unjudged, c.presence
    );
    println!(
        "  replays      {} rooms replayed, {} lines checked, {} older messages announced no longer kept; {} kept private messages",
        c.replay_rooms, c.replayed, c.replay_lost, c.privates_replayed
    );
    println!(
        "               {} returns judged, {} not (departure unseen or gone first); {} owed, {} of them replayed, {} counted no longer kept; {} uncertain, not judged ({} of them replayed)",
        c.restores_judged,
        c.restores_unjudged,
        c.replay_owed,
        c.replay_owed_met,
        c.replay_owed_lost,
        c.replay_uncertain,
        c.replay_uncertain_replayed
    );
    println!(
        "  answers      {} commands, slowest {:.0} ms; probe {} /who, slowest {:.0} ms",
        s.answers,
        s.slowest.as_secs_f64() * 1e3,
        s.probe_answers,
        s.probe_slowest.as_secs_f64() * 1e3
    );
    let mut kinds: Vec<_> = engine.checker.by_kind.iter().collect();
    kinds.sort();
    println!("  violations   {} {kinds:?}", engine.checker.violations());
    for detail in &engine.checker.first {
        println!("    {detail}");
    }
}

/// A line of a replay other than a replayed room message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplayFrame<'a> {
    /// `* Missed in ROOM: N messages since TIME UTC[; K older ones are no longer kept].`
    Missed {
        room: &'a str,
        count: u64,
        lost: u64,
    },
    /// `* End of missed messages in ROOM.`
    MissedEnd(&'a str),
    /// `* Missed while you were away: N private messages.`
    Privates(u64),
    /// `(PM TIME) NICK: TEXT`: a kept private message.
    Private,
    /// `* End of missed private messages.`
    PrivatesEnd,
}

/// `Some(Some(frame))` for a line of a replay (other than a replayed room message),
/// `Some(None)` for one that starts like one but does not parse, `None` for any other line.
fn replay_frame(line: &str) -> Option<Option<ReplayFrame<'_>>> {
    if let Some(rest) = line.strip_prefix("* Missed in ") {
        return Some(missed_header(rest));
    }
    if let Some(rest) = line.strip_prefix("* End of missed messages in ") {
        return Some(rest.strip_suffix('.').map(ReplayFrame::MissedEnd));
    }
    if let Some(rest) = line.strip_prefix("* Missed while you were away: ") {
        let count = rest
            .split_once(' ')
            .filter(|(_, tail)| tail.starts_with("private message") && tail.ends_with('.'))
            .and_then(|(count, _)| count.parse().ok());
        return Some(count.map(ReplayFrame::Privates));
    }
    if line == "* End of missed private messages." {
        return Some(Some(ReplayFrame::PrivatesEnd));
    }
    if line.starts_with("(PM ") && !line.starts_with("(PM to ") {
        return Some(line.contains(") ").then_some(ReplayFrame::Private));
    }
    None
}

/// `ROOM: N messages since TIME UTC[; K older ones are no longer kept].` (after `* Missed in `).
fn missed_header(rest: &str) -> Option<ReplayFrame<'_>> {
    let rest = rest.strip_suffix('.')?;
    let (room, rest) = rest.split_once(": ")?;
    let (count, rest) = rest.split_once(' ')?;
    let (since, lost) = match rest.split_once("; ") {
        Some((since, lost)) => (since, lost.split(' ').next()?.parse().ok()?),
        None => (rest, 0),
    };
    if !since.starts_with("message") || !since.ends_with(" UTC") {
        return None;
    }
    let count = count.parse().ok()?;
    Some(ReplayFrame::Missed { room, count, lost })
}
