//! One run of a workload, step by step: start or find the server, lay out the clients, start
//! the workers, move them through set-up, warm-up, measurement and drain, and report.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

use crate::cli::{Args, Proto, Workload};
use crate::payload::{base36, HEADER};
use crate::plan::{plans, share_out, Layout, Plan};
use crate::report::{latency_histogram, Report, RunFacts, Sample, Window};
use crate::shared::{Phase, Shared};
use crate::spawn::spawn_server;
use crate::stats::{proc_stats, raise_fd_limit, ProcStats};
use crate::worker::{Worker, WorkerConfig};

/// A running worker thread; it returns its latencies.
type WorkerThread = JoinHandle<Result<Histogram<u64>, String>>;

/// Runs one workload and reports.
pub fn run(args: &Args) -> Result<Report, String> {
    let fd_limit = raise_fd_limit();
    let spawned = if args.spawn {
        Some(spawn_server(args)?)
    } else {
        None
    };
    let targets = resolve_targets(args, spawned.as_ref().map(|s| s.addr))?;
    let server_pid = spawned.as_ref().map(|s| s.child.id()).or(args.server_pid);
    let server_stats = || server_pid.and_then(proc_stats);
    let (plans, rooms) = plans(args, &targets);
    let layout = Layout::new(args, &plans, rooms, fd_limit)?;
    let cfg = Arc::new(worker_config(args, &layout));
    announce(args, &layout, fd_limit, &targets);
    let shared = Arc::new(Shared::default());
    let base = server_stats();
    let shares = share_out(plans, layout.threads, layout.sender_thread, args.protocol);
    let workers = start_workers(shares, &shared, &cfg)?;
    let driver = PhaseDriver::new(args, &shared, layout.setup_total);
    let set_up = driver.set_up();
    let setup_secs = driver.elapsed_secs();
    let after_setup = server_stats();
    let window = set_up.map(|()| {
        driver.warm_up();
        let window = driver.measure(server_stats);
        driver.drain();
        window
    });
    driver.stop();
    let hist = join_workers(workers)?;
    drop(spawned);
    let window = window?;
    let facts = RunFacts {
        args,
        targets: &targets,
        server_pid,
        layout: &layout,
        fd_limit,
        setup_secs,
        base,
        after_setup,
        total: shared.counts(),
        error_samples: shared.error_samples(),
    };
    Ok(Report::new(facts, &window, &hist))
}

/// How many deliveries each message taken by the server makes, where every one goes to a
/// whole room: the fan-out room's receivers and senders (a sender gets its echo). `None` for
/// IRC (no echo) and for the other workloads.
pub fn room_members(args: &Args) -> Option<u64> {
    let fan = matches!(args.workload, Workload::Fanout | Workload::Latency);
    (fan && args.protocol == Proto::Chat).then_some((args.receivers + args.senders) as u64)
}

/// The servers to load: the spawned one first, then every `--addr` (loopback only).
fn resolve_targets(args: &Args, spawned: Option<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
    let mut targets: Vec<SocketAddr> = spawned.into_iter().collect();
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
    Ok(targets)
}

/// What every worker needs to know of the flags and the layout.
fn worker_config(args: &Args, layout: &Layout) -> WorkerConfig {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    WorkerConfig {
        proto: args.protocol,
        window: args.window.max(1),
        payload: args.payload.max(HEADER),
        interval: layout.interval,
        inflight: args.inflight.div_ceil(layout.threads).max(1),
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
    }
}

/// Says on stderr what is about to run, unless `--quiet`.
fn announce(args: &Args, layout: &Layout, fd_limit: u64, targets: &[SocketAddr]) {
    if args.quiet {
        return;
    }
    eprintln!(
        "load: {:?} over {:?}, {} sockets on {} worker thread(s){} of this process (open-file \
         limit {fd_limit} per process), target {}",
        args.workload,
        args.protocol,
        layout.clients,
        layout.threads,
        if layout.sender_thread {
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

/// Starts one worker thread per share. If one cannot start, those already running are
/// stopped before the error is returned.
fn start_workers(
    shares: Vec<Vec<Plan>>,
    shared: &Arc<Shared>,
    cfg: &Arc<WorkerConfig>,
) -> Result<Vec<WorkerThread>, String> {
    let mut workers = Vec::with_capacity(shares.len());
    for (i, share) in shares.into_iter().enumerate() {
        let started =
            Worker::new(i, share, Arc::clone(shared), Arc::clone(cfg)).and_then(|worker| {
                std::thread::Builder::new()
                    .name(format!("load-{i}"))
                    .spawn(move || worker.run())
                    .map_err(|e| format!("spawn worker: {e}"))
            });
        match started {
            Ok(thread) => workers.push(thread),
            Err(e) => {
                shared.phase.store(Phase::Done);
                let _ = join_workers(workers);
                return Err(e);
            }
        }
    }
    Ok(workers)
}

/// Waits for the workers (after [`Phase::Done`]) and merges their latencies.
fn join_workers(workers: Vec<WorkerThread>) -> Result<Histogram<u64>, String> {
    let mut hist = latency_histogram()?;
    for worker in workers {
        let h = worker.join().map_err(|_| "a worker thread panicked")??;
        hist.add(h).map_err(|e| format!("histogram: {e}"))?;
    }
    Ok(hist)
}

/// The main thread's side of a run: moves the workers through the phases and shows progress.
struct PhaseDriver<'a> {
    args: &'a Args,
    shared: &'a Shared,
    /// Clients that register during set-up.
    setup_total: u64,
    /// When the workers started.
    start: Instant,
}

impl<'a> PhaseDriver<'a> {
    fn new(args: &'a Args, shared: &'a Shared, setup_total: u64) -> Self {
        Self {
            args,
            shared,
            setup_total,
            start: Instant::now(),
        }
    }

    /// Seconds since the workers started.
    fn elapsed_secs(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// The progress line on stderr (rewritten in place), unless `--quiet`.
    fn progress(&self, phase: &str) {
        if self.args.quiet {
            return;
        }
        let c = self.shared.counts();
        eprint!(
            "\r{phase:>8} {:6.1}s  conns {}/{} (failed {})  msgs {}  deliveries {}  sessions {}  errors {}   ",
            self.elapsed_secs(),
            c.registered,
            self.setup_total,
            c.failed,
            c.acked,
            c.deliveries,
            c.sessions,
            c.errors
        );
    }

    /// Sleeps `secs`, updating the progress line.
    fn sleep_with_progress(&self, secs: f64, phase: &str) {
        let until = Instant::now() + Duration::from_secs_f64(secs);
        while Instant::now() < until {
            self.progress(phase);
            std::thread::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(250)),
            );
        }
    }

    /// Waits until every client registered or gave up; an error after `--setup-timeout`.
    fn set_up(&self) -> Result<(), String> {
        loop {
            let c = self.shared.counts();
            if c.registered + c.failed >= self.setup_total {
                return Ok(());
            }
            if self.elapsed_secs() > self.args.setup_timeout {
                return Err(format!(
                    "set-up timed out: {} of {} registered",
                    c.registered, self.setup_total
                ));
            }
            self.progress("setup");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the traffic and lets it settle for `--warmup` (the idle workload has none).
    fn warm_up(&self) {
        if self.args.workload != Workload::Idle {
            self.shared.phase.store(Phase::Warmup);
            self.sleep_with_progress(self.args.warmup, "warmup");
        }
    }

    /// Measures for `--duration`, then stops new messages.
    fn measure(&self, server_stats: impl Fn() -> Option<ProcStats>) -> Window {
        let t0 = Instant::now();
        let start = Sample::take(self.shared, &server_stats);
        self.shared.phase.store(Phase::Measure);
        self.sleep_with_progress(self.args.duration, "measure");
        self.shared.phase.store(Phase::Drain);
        let end = Sample::take(self.shared, &server_stats);
        Window {
            start,
            end,
            secs: t0.elapsed().as_secs_f64(),
        }
    }

    /// Lets traffic in flight arrive: waits until every message sent is acknowledged and, where
    /// the harness knows who gets what, has reached every member of its room; up to `--drain`
    /// seconds (not for IRC: the run goes straight on).
    fn drain(&self) {
        let until = Instant::now() + Duration::from_secs_f64(self.args.drain.max(0.0));
        let members = room_members(self.args);
        while Instant::now() < until {
            self.progress("drain");
            let c = self.shared.counts();
            let delivered = members.is_none_or(|m| c.deliveries >= c.acked * m);
            if (c.acked >= c.sent && delivered) || self.args.protocol == Proto::Irc {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ends the progress line and stops the workers.
    fn stop(&self) {
        self.progress("done");
        if !self.args.quiet {
            eprintln!();
        }
        self.shared.phase.store(Phase::Done);
    }
}
