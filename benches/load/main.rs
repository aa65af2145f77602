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
//! `--spawn` starts the chat-server binary cargo built alongside the harness
//! (`target/release/chat-server`, or under `CARGO_TARGET_DIR` if that is set; `--server-bin`
//! names another) on a free loopback port (pinned with `taskset` if `--server-cpu` is given)
//! and reads its CPU time and RSS from /proc; with `--addr` the server is already running
//! (`--server-pid` to read its /proc figures). `--smoke` runs every workload at tiny sizes
//! against fresh spawned servers and checks that messages arrive (never timings); `./test.sh`
//! runs it.
//!
//! The modules: [`cli`] the flags, [`plan`] the clients and their threads, [`run`] one run's
//! phases, [`worker`] the threads that run the clients (over [`net`] sockets, with the
//! [`payload`] format), [`shared`] what they share with the main thread, [`spawn`] and
//! [`stats`] the server process and its figures, [`report`] the results, [`smoke`] `--smoke`.

mod cli;
mod net;
mod payload;
mod plan;
mod report;
mod run;
mod shared;
mod smoke;
mod spawn;
mod stats;
mod worker;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    if args.smoke {
        return match smoke::smoke(&args) {
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
    let report = match run::run(&args) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("load: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("load: JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        report::print_table(&report);
    }
    ExitCode::SUCCESS
}
