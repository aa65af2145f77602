//! `--spawn`: a fresh chat-server for one run, on a free loopback port, killed afterwards.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::Args;

/// The chat-server binary cargo built alongside this harness (for `cargo bench`, the release
/// one, wherever `CARGO_TARGET_DIR` puts it).
const BUILT_SERVER: &str = env!("CARGO_BIN_EXE_chat-server");

/// A chat-server started for one run; killed when dropped.
pub struct Spawned {
    /// The server process (or `taskset` running it).
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // Killed outright: a graceful goodbye to thousands of clients is not what is measured.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `--server-bin` (default: [`BUILT_SERVER`]) on a free loopback port, pinned to
/// `--server-cpu` if given, and waits until it accepts connections.
pub fn spawn_server(args: &Args) -> Result<Spawned, String> {
    let bin = args
        .server_bin
        .clone()
        .unwrap_or_else(|| PathBuf::from(BUILT_SERVER));
    if !bin.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release` first",
            bin.display()
        ));
    }
    let port = TcpListener::bind("127.0.0.1:0")
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
        // The harness floods on purpose, from a handful of loopback addresses.
        .args(["--max-per-ip", "0", "--flood-rate", "0"])
        .stdin(Stdio::null());
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let spawned = Spawned { child, addr };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            return Err("the spawned server did not start listening".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Let it notice that probe connection go before taking its baseline.
    std::thread::sleep(Duration::from_millis(100));
    Ok(spawned)
}
