//! Command-line and environment configuration.
//!
//! Every flag can also be set through an environment variable `CHAT_<FLAG>` (for example
//! `CHAT_LISTEN=127.0.0.1:6000`); a flag given on the command line wins.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use log::LevelFilter;

use crate::chat::{ChatConfig, HistoryLimits};

/// Default of `--listen`.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:5555";
/// Default of `--log-level`.
pub const DEFAULT_LOG_LEVEL: LevelFilter = LevelFilter::Info;
/// Default of `--sendq`, in bytes.
pub const DEFAULT_SENDQ: u32 = 1 << 20;
/// Default of `--flood-burst`, in lines.
pub const DEFAULT_FLOOD_BURST: u32 = 20;
/// Default of `--flood-rate`, in lines a second.
pub const DEFAULT_FLOOD_RATE: u32 = 10;
/// Default of `--login-timeout`, in seconds.
pub const DEFAULT_LOGIN_TIMEOUT: u64 = 60;
/// Default of `--max-per-ip`.
pub const DEFAULT_MAX_PER_IP: u32 = 20;

/// File descriptors kept back from `--max-connections` for the listener, the poll instance,
/// signals, logging and the spare descriptor used to turn clients away when the process is out
/// of descriptors.
pub const FD_RESERVE: usize = 64;

/// chat-server: a TCP chat server with rooms, usable with plain telnet.
///
/// Connect with `telnet localhost 5555`, set a nick with `/nick NAME`, type `/help` for the
/// commands. Every flag can also be set with an environment variable CHAT_<FLAG>, e.g.
/// CHAT_LISTEN=127.0.0.1:6000.
#[derive(Debug, Clone, Parser)]
#[command(name = "chat-server", version, about, long_about)]
pub struct Config {
    /// Address and port to listen on.
    #[arg(
        long,
        env = "CHAT_LISTEN",
        default_value = DEFAULT_LISTEN,
        value_name = "ADDR:PORT"
    )]
    pub listen: SocketAddr,

    /// Log level: error, warn, info, debug or trace.
    #[arg(
        long,
        env = "CHAT_LOG_LEVEL",
        default_value_t = DEFAULT_LOG_LEVEL,
        value_name = "LEVEL"
    )]
    pub log_level: LevelFilter,

    /// Longest accepted input line in bytes; longer lines get an error and are discarded.
    #[arg(long, env = "CHAT_MAX_LINE", default_value_t = ChatConfig::DEFAULT_MAX_LINE,
          value_name = "BYTES", value_parser = clap::value_parser!(u32).range(64..=1_048_576))]
    pub max_line: u32,

    /// Most simultaneous connections; further clients get "! server full".
    /// [default: the open-file limit minus 64]
    #[arg(long, env = "CHAT_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,

    /// Per-connection output buffer limit in bytes; a client that stops reading and passes it is
    /// disconnected.
    #[arg(long, env = "CHAT_SENDQ", default_value_t = DEFAULT_SENDQ, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(4096..))]
    pub sendq: u32,

    /// Seconds a disconnected user's session (rooms, active room) is kept for restoration.
    #[arg(
        long,
        env = "CHAT_SESSION_TTL",
        default_value_t = ChatConfig::DEFAULT_SESSION_TTL_SECS,
        value_name = "SECONDS"
    )]
    pub session_ttl: u64,

    /// Most saved sessions kept; past it the oldest are forgotten first.
    #[arg(
        long,
        env = "CHAT_MAX_SAVED_SESSIONS",
        default_value_t = ChatConfig::DEFAULT_MAX_SAVED_SESSIONS,
        value_name = "N"
    )]
    pub max_saved_sessions: usize,

    /// Most rooms one user may be in at once (`main` included); `/join` past it is refused.
    #[arg(long, env = "CHAT_MAX_ROOMS_PER_USER", default_value_t = ChatConfig::DEFAULT_MAX_ROOMS_PER_USER,
          value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_rooms_per_user: u32,

    /// Most rooms on this server at once (`main` included); a `/join` that would create one more
    /// is refused, and so bounds the memory rooms take whoever asks.
    #[arg(long, env = "CHAT_MAX_ROOMS", default_value_t = ChatConfig::DEFAULT_MAX_ROOMS,
          value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rooms: u32,

    /// Flood control: lines a client may send at once before it is slowed down (/join, /who
    /// cost 3 lines, /nick, /rooms 5, /help 2).
    #[arg(long, env = "CHAT_FLOOD_BURST", default_value_t = DEFAULT_FLOOD_BURST, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub flood_burst: u32,

    /// Flood control: lines a second a client may send after its burst; past it the server reads
    /// the client more slowly (nothing is dropped, others see no delay). 0 turns flood control
    /// off.
    #[arg(long, env = "CHAT_FLOOD_RATE", default_value_t = DEFAULT_FLOOD_RATE, value_name = "R",
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub flood_rate: u32,

    /// Seconds a new connection has to set a nick; then it gets "! login timeout" and is closed
    /// (idle half-open logins would otherwise hold connections for ever). 0: no limit.
    #[arg(long, env = "CHAT_LOGIN_TIMEOUT", default_value_t = DEFAULT_LOGIN_TIMEOUT,
          value_name = "SECONDS")]
    pub login_timeout: u64,

    /// Most connections from one IP address (IPv6: one /64); the next gets "! too many
    /// connections from your address" and is closed. The default leaves room for a household
    /// or office behind one NAT address while one host can hold only a sliver of the server's
    /// connections. 0: no limit.
    #[arg(long, env = "CHAT_MAX_PER_IP", default_value_t = DEFAULT_MAX_PER_IP, value_name = "N")]
    pub max_per_ip: u32,

    /// Serve Prometheus metrics over HTTP at http://ADDR:PORT/metrics (off by default; bind it
    /// to a private address, the numbers are not meant for everyone).
    #[arg(long, env = "CHAT_METRICS", value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,

    /// Rooms with more members than this do not announce arrivals, departures and renames (in
    /// a big room they drown the conversation); `/who ROOM` still lists everyone.
    #[arg(
        long,
        env = "CHAT_ANNOUNCE_LIMIT",
        default_value_t = ChatConfig::DEFAULT_ANNOUNCE_LIMIT,
        value_name = "MEMBERS"
    )]
    pub announce_limit: usize,

    /// Messages each room keeps for replay to returning users and `/history`; 0 keeps none.
    #[arg(
        long,
        env = "CHAT_HISTORY",
        default_value_t = ChatConfig::DEFAULT_HISTORY,
        value_name = "N"
    )]
    pub history: usize,

    /// Bytes of history kept in all rooms together; past it the oldest messages go first.
    #[arg(
        long,
        env = "CHAT_HISTORY_BYTES",
        default_value_t = ChatConfig::DEFAULT_HISTORY_BYTES,
        value_name = "BYTES"
    )]
    pub history_bytes: usize,

    /// Days a message is kept in history.
    #[arg(
        long,
        env = "CHAT_HISTORY_DAYS",
        default_value_t = ChatConfig::DEFAULT_HISTORY_DAYS,
        value_name = "DAYS",
        value_parser = clap::value_parser!(u64).range(1..=36_500)
    )]
    pub history_days: u64,

    /// Memory the server may use, in bytes; near it, new connections are turned away and the
    /// clients with the biggest unread output dropped. 0: the limit of the cgroup the server
    /// runs in (a systemd MemoryMax=, a container's), if it has one.
    #[arg(
        long,
        env = "CHAT_MAX_MEMORY",
        default_value_t = 0,
        value_name = "BYTES"
    )]
    pub max_memory: u64,

    /// Keep saved sessions, room history and kept private messages in this directory, so they
    /// survive a restart (created if missing). Without it everything stays in memory.
    #[arg(long, env = "CHAT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Cluster mode: share rooms, nicks and sessions with other nodes through this Redis server
    /// (e.g. redis://127.0.0.1:6379/). Without it the server runs standalone.
    #[arg(long, env = "CHAT_REDIS", value_name = "URL")]
    pub redis: Option<String>,

    /// This node's name in the cluster; must be unique among the nodes.
    /// [default: the listen address]
    #[arg(long, env = "CHAT_NODE", value_name = "NAME")]
    pub node: Option<String>,
}

impl Config {
    /// The defaults with a different listen address; handy for tests (`127.0.0.1:0`).
    pub fn with_listen(listen: SocketAddr) -> Self {
        Self {
            listen,
            log_level: DEFAULT_LOG_LEVEL,
            max_line: ChatConfig::DEFAULT_MAX_LINE,
            max_connections: None,
            sendq: DEFAULT_SENDQ,
            session_ttl: ChatConfig::DEFAULT_SESSION_TTL_SECS,
            max_saved_sessions: ChatConfig::DEFAULT_MAX_SAVED_SESSIONS,
            max_rooms_per_user: ChatConfig::DEFAULT_MAX_ROOMS_PER_USER,
            announce_limit: ChatConfig::DEFAULT_ANNOUNCE_LIMIT,
            max_memory: 0,
            history: ChatConfig::DEFAULT_HISTORY,
            history_bytes: ChatConfig::DEFAULT_HISTORY_BYTES,
            history_days: ChatConfig::DEFAULT_HISTORY_DAYS,
            max_rooms: ChatConfig::DEFAULT_MAX_ROOMS,
            flood_burst: DEFAULT_FLOOD_BURST,
            flood_rate: DEFAULT_FLOOD_RATE,
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            max_per_ip: DEFAULT_MAX_PER_IP,
            metrics: None,
            data_dir: None,
            redis: None,
            node: None,
        }
    }

    /// The limits the chat logic needs.
    pub fn chat(&self) -> ChatConfig {
        ChatConfig {
            session_ttl: Duration::from_secs(self.session_ttl),
            max_saved_sessions: self.max_saved_sessions,
            max_line: self.max_line as usize,
            max_rooms_per_user: self.max_rooms_per_user as usize,
            max_rooms: self.max_rooms as usize,
            announce_limit: self.announce_limit,
            history: HistoryLimits {
                per_room: self.history,
                max_bytes: self.history_bytes,
                max_age_ms: self.history_days.saturating_mul(86_400_000),
            },
            shared_registry: self.redis.is_some(),
        }
    }

    /// This node's cluster name: `--node`, else the listen address.
    pub fn node_name(&self) -> String {
        self.node.clone().unwrap_or_else(|| self.listen.to_string())
    }

    /// The connection limit: the flag, or what the open-file limit allows.
    pub fn connection_limit(&self) -> usize {
        self.max_connections
            .unwrap_or_else(|| open_file_limit().saturating_sub(FD_RESERVE).max(1))
    }
}

/// Raises the soft open-file limit to the hard limit, returning the limit now in force.
pub fn raise_open_file_limit() -> usize {
    let Some(mut limit) = open_file_rlimit() else {
        return DEFAULT_OPEN_FILES;
    };
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct passed to it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

/// The soft open-file limit of this process (1024 if it cannot be read).
pub fn open_file_limit() -> usize {
    open_file_rlimit().map_or(DEFAULT_OPEN_FILES, |limit| {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    })
}

/// The open-file limit assumed when it cannot be read: the usual soft limit.
const DEFAULT_OPEN_FILES: usize = 1024;

/// This process's open-file limits, soft and hard.
fn open_file_rlimit() -> Option<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed to it.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit)
}
