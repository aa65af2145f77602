//! The server's counters and their Prometheus text rendering (docs/METRICS.md lists them).
//!
//! Counting happens in the one loop thread, so the counters are plain `u64` fields: no atomics,
//! no locks. On the fan-out path a room line adds the number of members it reached once, not
//! once per member or per byte copied. Gauges (connections, rooms, saved sessions, cluster
//! contact) are not counted at all: they are read from the loop's state when someone asks.

use std::fmt::Write;
use std::time::Duration;

use crate::cluster::ClusterGauges;

/// Why a connection ended, or why a client was turned away: the `reason` label of
/// `chat_disconnects_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disconnect {
    /// The client said `/quit`.
    Quit,
    /// The client closed the connection.
    Closed,
    /// Reading or writing failed (a reset, a timeout of the kernel's).
    Error,
    /// Its output passed `--sendq`: it does not read.
    SlowReader,
    /// No nick within `--login-timeout`.
    LoginTimeout,
    /// Turned away: `--max-per-ip` connections from its address already.
    PerIp,
    /// Turned away: `--max-connections` reached, or no file descriptor left.
    ServerFull,
    /// Turned away, or dropped for the biggest unread output, near the memory limit.
    Memory,
    /// The server shut down.
    Shutdown,
}

impl Disconnect {
    /// Every reason, in the order they are rendered.
    const ALL: [Disconnect; 9] = [
        Disconnect::Quit,
        Disconnect::Closed,
        Disconnect::Error,
        Disconnect::SlowReader,
        Disconnect::LoginTimeout,
        Disconnect::PerIp,
        Disconnect::ServerFull,
        Disconnect::Memory,
        Disconnect::Shutdown,
    ];

    fn label(self) -> &'static str {
        match self {
            Disconnect::Quit => "quit",
            Disconnect::Closed => "closed",
            Disconnect::Error => "error",
            Disconnect::SlowReader => "slow_reader",
            Disconnect::LoginTimeout => "login_timeout",
            Disconnect::PerIp => "per_ip",
            Disconnect::ServerFull => "server_full",
            Disconnect::Memory => "memory",
            Disconnect::Shutdown => "shutdown",
        }
    }
}

/// Upper bounds of the loop-turn histogram's buckets, in microseconds: from a quiet turn (a
/// few lines) to a pathological one (a second).
const TURN_BUCKETS_MICROS: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// The counters, bumped by the loop as things happen.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Lines received from clients (commands and refused lines included).
    pub(crate) lines_received: u64,
    /// Lines queued for clients: one per recipient.
    pub(crate) deliveries: u64,
    /// Bytes read from client sockets.
    pub(crate) bytes_received: u64,
    /// Bytes written to client sockets.
    pub(crate) bytes_sent: u64,
    /// Times flood control stopped reading a client.
    pub(crate) flood_delays: u64,
    /// Events published to the cluster.
    pub(crate) cluster_published: u64,
    /// Events from other nodes handed to the chat.
    pub(crate) cluster_received: u64,
    /// Times a client was held because the cluster is behind (flow control).
    pub(crate) cluster_pace_delays: u64,
    disconnects: [u64; Disconnect::ALL.len()],
    /// Turns per bucket of [`TURN_BUCKETS_MICROS`], and past the last one.
    turn_buckets: [u64; TURN_BUCKETS_MICROS.len() + 1],
    turn_seconds: Duration,
    turns: u64,
}

/// What the loop's state says right now, for the gauges.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gauges {
    pub(crate) connections: usize,
    pub(crate) sessions_saved: usize,
    pub(crate) rooms: usize,
    /// Bytes queued for clients and not written yet.
    pub(crate) output_pending: usize,
    /// Memory that output takes (`Delivery::output_memory`).
    pub(crate) output_memory: usize,
    /// The most it has taken since the start.
    pub(crate) output_memory_peak: usize,
    /// `None` standalone; in cluster mode, its state.
    pub(crate) cluster: Option<ClusterGauges>,
}

impl Metrics {
    /// A connection ended, or a client was turned away, for `why`.
    pub(crate) fn disconnected(&mut self, why: Disconnect) {
        self.disconnects[why as usize] += 1;
    }

    /// A loop turn took `spent`.
    pub(crate) fn turn_took(&mut self, spent: Duration) {
        let micros = u64::try_from(spent.as_micros()).unwrap_or(u64::MAX);
        let bucket = TURN_BUCKETS_MICROS
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(TURN_BUCKETS_MICROS.len());
        self.turn_buckets[bucket] += 1;
        self.turn_seconds += spent;
        self.turns += 1;
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric, into `out`.
    pub(crate) fn render(&self, gauges: &Gauges, out: &mut String) {
        let mut m = Exposition(out);
        let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let gauges_and_counters = [
            (
                GAUGE,
                "chat_connections",
                "Client connections open now.",
                as_u64(gauges.connections),
            ),
            (
                GAUGE,
                "chat_sessions_saved",
                "Saved sessions of departed users, restorable with /nick.",
                as_u64(gauges.sessions_saved),
            ),
            (
                GAUGE,
                "chat_rooms",
                "Rooms on this node, main included.",
                as_u64(gauges.rooms),
            ),
            (
                GAUGE,
                "chat_output_pending_bytes",
                "Bytes queued for clients and not written yet.",
                as_u64(gauges.output_pending),
            ),
            (
                GAUGE,
                "chat_output_memory_bytes",
                "Memory the output for clients takes: the capacity of their buffers, the pool of \
                 empty ones, and lines of the current turn not written yet.",
                as_u64(gauges.output_memory),
            ),
            (
                GAUGE,
                "chat_output_memory_peak_bytes",
                "The most memory the output for clients has taken since the server started.",
                as_u64(gauges.output_memory_peak),
            ),
            (
                COUNTER,
                "chat_messages_received_total",
                "Lines received from clients (commands and refused lines included).",
                self.lines_received,
            ),
            (
                COUNTER,
                "chat_deliveries_total",
                "Lines queued for clients, one per recipient.",
                self.deliveries,
            ),
            (
                COUNTER,
                "chat_bytes_received_total",
                "Bytes read from client connections.",
                self.bytes_received,
            ),
            (
                COUNTER,
                "chat_bytes_sent_total",
                "Bytes written to client connections.",
                self.bytes_sent,
            ),
            (
                COUNTER,
                "chat_flood_delays_total",
                "Times flood control stopped reading a client until its budget refilled.",
                self.flood_delays,
            ),
        ];
        for (kind, name, help, value) in gauges_and_counters {
            m.single(kind, name, help, value);
        }
        let name = "chat_disconnects_total";
        m.head(
            COUNTER,
            name,
            "Connections ended, and clients turned away, by reason.",
        );
        for why in Disconnect::ALL {
            let series = format!("{name}{{reason=\"{}\"}}", why.label());
            m.line(&series, self.disconnects[why as usize]);
        }
        self.render_turns(&mut m);
        if let Some(state) = gauges.cluster {
            let cluster = [
                (
                    COUNTER,
                    "chat_cluster_published_total",
                    "Events published to the other nodes.",
                    self.cluster_published,
                ),
                (
                    COUNTER,
                    "chat_cluster_received_total",
                    "Events from other nodes handed to the chat.",
                    self.cluster_received,
                ),
                (
                    GAUGE,
                    "chat_cluster_up",
                    "1 while this node is in contact with the cluster's Redis.",
                    u64::from(state.up),
                ),
                (
                    GAUGE,
                    "chat_cluster_backlog",
                    "Messages from other nodes waiting for this node to deliver them.",
                    as_u64(state.backlog),
                ),
                (
                    GAUGE,
                    "chat_cluster_behind",
                    "1 while this node asks the other nodes to pace their clients.",
                    u64::from(state.behind),
                ),
                (
                    GAUGE,
                    "chat_cluster_paced",
                    "1 while this node paces its clients because a node is behind.",
                    u64::from(state.paced),
                ),
                (
                    COUNTER,
                    "chat_cluster_pace_delays_total",
                    "Times flow control stopped reading a client until the cluster caught up.",
                    self.cluster_pace_delays,
                ),
                (
                    COUNTER,
                    "chat_cluster_dropped_total",
                    "Cluster messages and session writes dropped because Redis did not keep up.",
                    state.dropped,
                ),
            ];
            for (kind, name, help, value) in cluster {
                m.single(kind, name, help, value);
            }
        }
    }

    fn render_turns(&self, m: &mut Exposition<'_>) {
        let name = "chat_loop_turn_seconds";
        let help = "Time the poll loop spent on one turn, from waking to sleeping.";
        m.head("histogram", name, help);
        let mut cumulative = 0;
        for (bound, count) in TURN_BUCKETS_MICROS.iter().zip(&self.turn_buckets) {
            cumulative += count;
            let le = Duration::from_micros(*bound).as_secs_f64();
            m.line(&format!("{name}_bucket{{le=\"{le}\"}}"), cumulative);
        }
        m.line(&format!("{name}_bucket{{le=\"+Inf\"}}"), self.turns);
        let _ = writeln!(m.0, "{name}_sum {}", self.turn_seconds.as_secs_f64());
        m.line(&format!("{name}_count"), self.turns);
    }
}

const GAUGE: &str = "gauge";
const COUNTER: &str = "counter";

/// Writes the text format; writing to a `String` cannot fail, so results are ignored.
struct Exposition<'a>(&'a mut String);

impl Exposition<'_> {
    /// The `# HELP` and `# TYPE` lines of a metric.
    fn head(&mut self, kind: &str, name: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample.
    fn line(&mut self, series: &str, value: u64) {
        let _ = writeln!(self.0, "{series} {value}");
    }

    /// A metric with one sample and no labels.
    fn single(&mut self, kind: &str, name: &str, help: &str, value: u64) {
        self.head(kind, name, help);
        self.line(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(metrics: &Metrics, cluster_up: Option<bool>) -> String {
        let gauges = Gauges {
            connections: 3,
            sessions_saved: 1,
            rooms: 2,
            output_pending: 1_000,
            output_memory: 4_096,
            output_memory_peak: 8_192,
            cluster: cluster_up.map(|up| ClusterGauges {
                up,
                backlog: 1_500,
                behind: false,
                paced: true,
                dropped: 0,
            }),
        };
        let mut text = String::new();
        metrics.render(&gauges, &mut text);
        text
    }

    #[test]
    fn every_metric_has_help_type_and_a_value() {
        let mut metrics = Metrics {
            deliveries: 42,
            ..Metrics::default()
        };
        metrics.disconnected(Disconnect::SlowReader);
        metrics.disconnected(Disconnect::SlowReader);
        let text = rendered(&metrics, None);
        assert!(text.contains("# TYPE chat_connections gauge\nchat_connections 3\n"));
        assert!(text.contains("chat_deliveries_total 42\n"));
        assert!(text.contains("chat_output_pending_bytes 1000\n"));
        assert!(text.contains("chat_output_memory_peak_bytes 8192\n"));
        assert!(
            text.contains("# TYPE chat_output_memory_bytes gauge\nchat_output_memory_bytes 4096\n")
        );
        assert!(text.contains("chat_disconnects_total{reason=\"slow_reader\"} 2\n"));
        assert!(text.contains("chat_disconnects_total{reason=\"quit\"} 0\n"));
        assert!(
            !text.contains("chat_cluster"),
            "no cluster metrics standalone"
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                text.contains(&format!("# HELP {family} "))
                    && text.contains(&format!("# TYPE {family} ")),
                "{line}"
            );
        }
        let cluster = rendered(&metrics, Some(true));
        assert!(cluster.contains("chat_cluster_up 1\n"));
        assert!(cluster.contains("chat_cluster_published_total 0\n"));
        assert!(cluster.contains("# TYPE chat_cluster_backlog gauge\nchat_cluster_backlog 1500\n"));
        assert!(cluster.contains("chat_cluster_behind 0\n"));
        assert!(cluster.contains("chat_cluster_paced 1\n"));
        assert!(cluster.contains("chat_cluster_pace_delays_total 0\n"));
        assert!(cluster.contains("chat_cluster_dropped_total 0\n"));
    }

    #[test]
    fn turn_times_fill_cumulative_buckets() {
        let mut metrics = Metrics::default();
        metrics.turn_took(Duration::from_micros(50));
        metrics.turn_took(Duration::from_micros(300));
        metrics.turn_took(Duration::from_secs(3));
        let text = rendered(&metrics, None);
        assert!(text.contains("chat_loop_turn_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("chat_loop_turn_seconds_bucket{le=\"0.00025\"} 1\n"));
        assert!(text.contains("chat_loop_turn_seconds_bucket{le=\"0.0005\"} 2\n"));
        assert!(text.contains("chat_loop_turn_seconds_bucket{le=\"1\"} 2\n"));
        assert!(text.contains("chat_loop_turn_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("chat_loop_turn_seconds_count 3\n"));
        assert!(text.contains("chat_loop_turn_seconds_sum 3.00035\n"));
    }
}
