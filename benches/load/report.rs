//! What a run found out: the figures derived from its counters, /proc readings and latency
//! histogram ([`Report`]), printed as a table or as JSON.

use std::net::SocketAddr;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cli::{Args, Proto, Workload};
use crate::plan::Layout;
use crate::shared::{Counts, Shared};
use crate::stats::{own_cpu_secs, ProcStats};

/// An empty latency histogram in nanoseconds: 1 µs to 60 s, 3 significant digits.
pub fn latency_histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).map_err(|e| format!("histogram: {e}"))
}

/// The counters and CPU times at one end of the measured window.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
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
    pub start: Sample,
    pub end: Sample,
    pub secs: f64,
}

/// What a run knows besides its measured window and latencies.
pub struct RunFacts<'a> {
    pub args: &'a Args,
    pub targets: &'a [SocketAddr],
    pub server_pid: Option<u32>,
    pub layout: &'a Layout,
    pub fd_limit: u64,
    pub setup_secs: f64,
    /// The server's figures before set-up and after it.
    pub base: Option<ProcStats>,
    pub after_setup: Option<ProcStats>,
    /// The counters at the end of the run, and the errors kept.
    pub total: Counts,
    pub error_samples: Vec<String>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
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

/// Everything a run found out.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub workload: Workload,
    pub protocol: Proto,
    pub targets: Vec<String>,
    pub server: String,
    pub clients: usize,
    pub harness_threads: usize,
    pub fd_limit: u64,
    pub receivers: usize,
    pub senders: usize,
    pub window: usize,
    pub payload: usize,
    pub offered_rate: Option<f64>,
    pub rooms: usize,
    pub registered: u64,
    pub failed_connects: u64,
    pub setup_secs: f64,
    pub setup_per_sec: f64,
    pub measured_secs: f64,
    pub msgs_in: u64,
    pub msgs_in_per_sec: f64,
    pub deliveries: u64,
    pub deliveries_per_sec: f64,
    pub sessions: u64,
    pub sessions_per_sec: f64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub server_cpu_secs: Option<f64>,
    pub server_cpu_share: Option<f64>,
    pub deliveries_per_server_cpu_sec: Option<f64>,
    pub server_setup_cpu_secs: Option<f64>,
    pub server_rss_base_kib: Option<u64>,
    pub server_rss_kib: Option<u64>,
    pub server_rss_per_conn_bytes: Option<f64>,
    pub latency: Option<Latency>,
    pub harness_cpu_secs: f64,
    pub harness_cpu_share: f64,
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
