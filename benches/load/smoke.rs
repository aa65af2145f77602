//! `--smoke`: tiny runs of every workload against fresh spawned servers, checking that
//! messages arrive (never timings); `./test.sh` runs it.

use crate::cli::{Args, Workload};
use crate::payload::check_digit_parsers;
use crate::report::Report;
use crate::run::run;

/// Every workload, in the order the smoke run tries them.
const WORKLOADS: [Workload; 5] = [
    Workload::Fanout,
    Workload::Latency,
    Workload::Idle,
    Workload::Rooms,
    Workload::Churn,
];

/// Runs every workload at tiny sizes; an error lists what went wrong in each.
pub fn smoke(base: &Args) -> Result<(), String> {
    check_digit_parsers()?;
    let mut failures = Vec::new();
    for workload in WORKLOADS {
        let args = tiny(base, workload);
        let report = match run(&args) {
            Ok(report) => report,
            Err(e) => {
                failures.push(format!("{workload:?}: {e}"));
                continue;
            }
        };
        let problems = problems(&args, &report);
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

/// `workload` at a tiny size, for a fraction of a second, against `base`'s `--addr` or else a
/// spawned server.
fn tiny(base: &Args, workload: Workload) -> Args {
    Args {
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
    }
}

/// What is wrong with the report of a tiny run: everyone registered without errors, and
/// messages arrived, each at every member of its room.
fn problems(args: &Args, report: &Report) -> Vec<String> {
    let workload = args.workload;
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
    problems
}
