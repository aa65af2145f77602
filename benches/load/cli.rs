//! The command line: the flags (`Args`), the workloads and the protocols they can select.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use serde::Serialize;

/// What the clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
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
pub enum Proto {
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
pub struct Args {
    /// Server address HOST:PORT; repeat it to spread the clients over several nodes.
    #[arg(long)]
    pub addr: Vec<String>,
    /// Start chat-server (the binary cargo built with this harness) on a free loopback port for
    /// this run.
    #[arg(long)]
    pub spawn: bool,
    /// With --spawn: pin the server to this CPU (taskset -c CPU).
    #[arg(long)]
    pub server_cpu: Option<usize>,
    /// With --spawn: the server binary (default: the chat-server cargo built with this harness).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// With --addr: the server's PID, to read its CPU time and RSS from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// The workload.
    #[arg(long, value_enum, default_value_t = Workload::Fanout)]
    pub workload: Workload,
    /// The protocol spoken to the server.
    #[arg(long, value_enum, default_value_t = Proto::Chat)]
    pub protocol: Proto,
    /// fanout/latency: receivers in the room.
    #[arg(long, default_value_t = 1000)]
    pub receivers: usize,
    /// fanout/latency: senders in the room.
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
    /// fanout/latency with several --addr: every sender on the target with this index (from
    /// 0) and everyone else on the other targets, so that every delivery crosses nodes.
    #[arg(long, value_name = "INDEX")]
    pub senders_on: Option<usize>,
    /// Messages each sender may have unacknowledged (closed loop).
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// Payload bytes per message, the embedded timestamp included.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Offered load in messages/s over all senders, open loop (latency: 100, rooms: 5000).
    #[arg(long)]
    pub rate: Option<f64>,
    /// idle: connections (default 10000); churn: concurrent sessions (default 50).
    #[arg(long)]
    pub connections: Option<usize>,
    /// idle: rooms to spread over (default 100); rooms: number of rooms (default 500).
    #[arg(long)]
    pub rooms: Option<usize>,
    /// rooms: clients per room.
    #[arg(long, default_value_t = 10)]
    pub room_size: usize,
    /// fanout/latency: idle registered connections opened first, in 100 rooms of their own.
    #[arg(long, default_value_t = 0)]
    pub idle: usize,
    /// Seconds measured (idle: seconds held after set-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of traffic before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Seconds to wait at most after the measured window for messages in flight: until every
    /// message sent was taken by the server and (fanout, latency) reached every member of the
    /// room, so that the whole-run counts can be compared with what was expected.
    #[arg(long, default_value_t = 2.0)]
    pub drain: f64,
    /// fanout: receivers ask to be woken only once this many bytes wait in their socket
    /// (SO_RCVLOWAT), so the harness reads in big batches and costs less than the server it
    /// measures; 0: off. The closed-loop latencies then include that wait. Receivers that stand
    /// in for IRC's missing echo are never delayed.
    #[arg(long, default_value_t = 0, value_name = "BYTES")]
    pub rcvlowat: usize,
    /// Connections being set up at once, over all threads (ngircd's backlog is 10: use 8).
    #[arg(long, default_value_t = 1000)]
    pub inflight: usize,
    /// Worker threads (default: the CPUs this process may run on, plus one for closed-loop
    /// senders).
    #[arg(long)]
    pub threads: Option<usize>,
    /// IRC: OPER NAME:PASSWORD for senders, which then set user mode +F (ngircd, no penalty).
    #[arg(long)]
    pub irc_oper: Option<String>,
    /// Give up if set-up takes longer than this many seconds.
    #[arg(long, default_value_t = 180.0)]
    pub setup_timeout: f64,
    /// Print the result as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Run every workload at tiny sizes against spawned servers and check messages arrive.
    #[arg(long)]
    pub smoke: bool,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    pub bench: bool,
}
