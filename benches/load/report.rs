//! What a run found out: the figures derived from its counters, /proc readings and latency
//! histogram ([`Report`]), printed as a table or as JSON.

use std::net::SocketAddr;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cli::{Args, Proto, Workload};
use crate::plan::Layout;
use crate::run::room_members;
use crate::shared::{Counts, Shared};
use crate::stats::{own_cpu_secs, ProcStats};

/// An empty latency histogram in nanoseconds: 1 µs to 60 s, 3 significant digits.
pub fn latency_histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).map_err(|e| format!("histogram: {e}"))
}

/// The counters and CPU times at one end of the measured window.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// The shared counters.
    pub counts: Counts,
    /// The server's CPU time and RSS, if its PID is known.
    pub server: Option<ProcStats>,
    /// The harness's own CPU time, in seconds.
    pub own_cpu_secs: f64,
}

impl Sample {
    /// Reads the counters, then the server's figures, then the harness's CPU time.
    pub fn take(shared: &Shared, server: impl Fn() -> Option<ProcStats>) -> Self {
        Self {
            counts: shared.counts(),
            server: server(),
            own_cpu_secs: own_cpu_secs(),
        }
    }
}

/// The measured window: its two ends and its length.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Taken as the measurement started.
    pub start: Sample,
    /// Taken as it ended.
    pub end: Sample,
    /// Its length in seconds.
    pub secs: f64,
}

/// What a run knows besides its measured window and latencies.
pub struct RunFacts<'a> {
    /// The run's flags.
    pub args: &'a Args,
    /// The servers loaded.
    pub targets: &'a [SocketAddr],
    /// The server's process, if known (spawned, or `--server-pid`).
    pub server_pid: Option<u32>,
    /// Its size, pacing and threads.
    pub layout: &'a Layout,
    /// This process's open-file limit.
    pub fd_limit: u64,
    /// Seconds from starting the workers to the end of set-up.
    pub setup_secs: f64,
    /// The server's figures before set-up.
    pub base: Option<ProcStats>,
    /// The server's figures after set-up.
    pub after_setup: Option<ProcStats>,
    /// The counters at the end of the run.
    pub total: Counts,
    /// The errors kept.
    pub error_samples: Vec<String>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Deliveries timed.
    pub samples: u64,
    /// The median.
    pub p50_ms: f64,
    /// The 90th percentile.
    pub p90_ms: f64,
    /// The 99th percentile.
    pub p99_ms: f64,
    /// The 99.9th percentile.
    pub p999_ms: f64,
    /// The slowest.
    pub max_ms: f64,
}

impl Latency {
    /// The percentiles of `hist`; `None` if it is empty.
    fn of(hist: &Histogram<u64>) -> Option<Self> {
        (!hist.is_empty()).then(|| Latency {
            samples: hist.len(),
            p50_ms: percentile_ms(hist, 0.50),
            p90_ms: percentile_ms(hist, 0.90),
            p99_ms: percentile_ms(hist, 0.99),
            p999_ms: percentile_ms(hist, 0.999),
            max_ms: hist.max() as f64 / 1e6,
        })
    }
}

/// Everything a run found out; `--json` prints it with these field names. Rates are per second
/// of the measured window, server figures come from /proc (`None` without a known PID).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The workload run.
    pub workload: Workload,
    /// The protocol spoken.
    pub protocol: Proto,
    /// The servers loaded (HOST:PORT).
    pub targets: Vec<String>,
    /// Which server process the CPU and memory figures come from.
    pub server: String,
    /// Client sockets.
    pub clients: usize,
    /// The harness's worker threads.
    pub harness_threads: usize,
    /// The harness's open-file limit.
    pub fd_limit: u64,
    /// Clients that receive the room's messages (fanout, latency; every client in rooms).
    pub receivers: usize,
    /// Clients that send (fanout, latency; every client in rooms).
    pub senders: usize,
    /// `--window`: messages a closed-loop sender may have unacknowledged.
    pub window: usize,
    /// `--payload`: bytes per message.
    pub payload: usize,
    /// Messages/s offered by paced senders; `None`: closed loop.
    pub offered_rate: Option<f64>,
    /// Rooms the clients are spread over.
    pub rooms: usize,
    /// Clients that registered.
    pub registered: u64,
    /// Clients that gave up connecting or registering.
    pub failed_connects: u64,
    /// Seconds the set-up took.
    pub setup_secs: f64,
    /// Clients set up per second.
    pub setup_per_sec: f64,
    /// The measured window's length in seconds.
    pub measured_secs: f64,
    /// Messages acknowledged to their senders in the window.
    pub msgs_in: u64,
    /// The same per second.
    pub msgs_in_per_sec: f64,
    /// Message lines that arrived at clients in the window.
    pub deliveries: u64,
    /// The same per second.
    pub deliveries_per_sec: f64,
    /// Messages taken by the server (acknowledged to their senders) over the whole run:
    /// warm-up, window and drain.
    pub msgs_total: u64,
    /// Message lines that arrived at clients over the whole run.
    pub deliveries_total: u64,
    /// What `deliveries_total` should be if nothing was lost: every message taken reaches
    /// every member of its room (fanout and latency over chat-server's protocol only).
    pub deliveries_expected: Option<u64>,
    /// Expected deliveries that never arrived (negative: more arrived than expected).
    pub deliveries_missing: Option<i64>,
    /// Churn sessions completed in the window.
    pub sessions: u64,
    /// The same per second.
    pub sessions_per_sec: f64,
    /// Error lines and lost connections over the whole run.
    pub errors: u64,
    /// The first few errors.
    pub error_samples: Vec<String>,
    /// The server's CPU time in the window.
    pub server_cpu_secs: Option<f64>,
    /// That over the window's length (1.0: one core).
    pub server_cpu_share: Option<f64>,
    /// Deliveries per second of the server's CPU time.
    pub deliveries_per_server_cpu_sec: Option<f64>,
    /// The server's CPU time during set-up.
    pub server_setup_cpu_secs: Option<f64>,
    /// The server's RSS before set-up.
    pub server_rss_base_kib: Option<u64>,
    /// The server's RSS with the connections: after set-up (idle: at the window's end).
    pub server_rss_kib: Option<u64>,
    /// RSS added per client set up.
    pub server_rss_per_conn_bytes: Option<f64>,
    /// Latency of the deliveries in the window.
    pub latency: Option<Latency>,
    /// The harness's CPU time in the window.
    pub harness_cpu_secs: f64,
    /// That over the window's length (1.0: one core).
    pub harness_cpu_share: f64,
    /// The harness used over 90% of the cores it could: the server's figures are then lower
    /// bounds.
    pub harness_saturated: bool,
}

impl Report {
    /// Derives the rates, shares and per-connection figures of a finished run.
    pub fn new(facts: RunFacts, window: &Window, hist: &Histogram<u64>) -> Self {
        let RunFacts {
            args,
            targets,
            server_pid,
            layout,
            fd_limit,
            setup_secs,
            base,
            after_setup,
            total,
            error_samples,
        } = facts;
        let (c0, c1) = (window.start.counts, window.end.counts);
        let measured_secs = window.secs;
        // Rates over the window; guarded against a zero-length one.
        let per_sec = |n: f64| n / measured_secs.max(1e-9);
        let server_cpu = match (window.start.server, window.end.server) {
            (Some(a), Some(b)) => Some(b.cpu_secs - a.cpu_secs),
            _ => None,
        };
        let deliveries = c1.deliveries - c0.deliveries;
        let expected = room_members(args).map(|m| total.acked * m);
        let msgs_in = c1.acked - c0.acked;
        let sessions = c1.sessions - c0.sessions;
        let harness_cpu = window.end.own_cpu_secs - window.start.own_cpu_secs;
        let harness_share = per_sec(harness_cpu);
        // Idle connections are held through the window; otherwise the RSS right after set-up
        // is the one that comes from the connections (not from traffic).
        let rss_kib = if args.workload == Workload::Idle {
            window.end.server.map(|s| s.rss_kib)
        } else {
            after_setup.map(|s| s.rss_kib)
        };
        let rss_base = base.map(|s| s.rss_kib);
        let setup_total = layout.setup_total;
        let (receivers, senders) = match args.workload {
            Workload::Fanout | Workload::Latency => (args.receivers, args.senders),
            Workload::Rooms => (layout.clients, layout.clients),
            _ => (0, 0),
        };
        Report {
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
            clients: layout.clients,
            harness_threads: layout.threads,
            fd_limit,
            receivers,
            senders,
            window: args.window,
            payload: args.payload,
            offered_rate: layout.interval.map(|i| senders.max(1) as f64 / i),
            rooms: layout.rooms,
            registered: total.registered,
            failed_connects: total.failed,
            setup_secs,
            setup_per_sec: setup_total as f64 / setup_secs,
            measured_secs,
            msgs_in,
            msgs_in_per_sec: per_sec(msgs_in as f64),
            deliveries,
            deliveries_per_sec: per_sec(deliveries as f64),
            msgs_total: total.acked,
            deliveries_total: total.deliveries,
            deliveries_expected: expected,
            deliveries_missing: expected.map(|e| e as i64 - total.deliveries as i64),
            sessions,
            sessions_per_sec: per_sec(sessions as f64),
            errors: total.errors,
            error_samples,
            server_cpu_secs: server_cpu,
            server_cpu_share: server_cpu.map(per_sec),
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
            latency: Latency::of(hist),
            harness_cpu_secs: harness_cpu,
            harness_cpu_share: harness_share,
            harness_saturated: harness_share > 0.9 * layout.cpus.min(layout.threads) as f64,
        }
    }
}

/// The value at quantile `q` of a histogram in nanoseconds, in milliseconds.
fn percentile_ms(hist: &Histogram<u64>, q: f64) -> f64 {
    hist.value_at_quantile(q) as f64 / 1e6
}

/// A value, or `-` if there is none.
fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// Prints the report as a table, one figure a row, the error samples last.
pub fn print_table(r: &Report) {
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
        rows.push((
            "whole run",
            match (r.deliveries_expected, r.deliveries_missing) {
                (Some(e), Some(m)) => format!(
                    "{} msgs taken, {} deliveries of {e} expected ({m} missing)",
                    r.msgs_total, r.deliveries_total
                ),
                _ => format!(
                    "{} msgs taken, {} deliveries",
                    r.msgs_total, r.deliveries_total
                ),
            },
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
