//! The `chat-server` binary: parses the configuration, sets up logging and runs the poll loop.

use std::process::ExitCode;

use clap::Parser;
use log::{error, warn};

use chat_server::config::{raise_open_file_limit, Config};
use chat_server::server::Server;
use chat_server::{logging, notify};

fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(e) = logging::init(config.log_level) {
        eprintln!("chat-server: could not set up logging: {e}");
    }
    let fd_limit = raise_open_file_limit();
    log::debug!("open-file limit: {fd_limit}");
    let mut server = match Server::bind(&config) {
        Ok(server) => server,
        Err(e) => {
            error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = server.handle_signals() {
        error!("cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    // Listening and ready: under systemd (Type=notify) this ends the service's start-up.
    if let Err(e) = notify::ready() {
        warn!("cannot tell systemd the server is ready: {e}");
    }
    let result = server.run();
    // The loop has said goodbye to every client (or failed); systemd shows the service as
    // stopping for the moment the exit takes, and a failure still exits non-zero.
    if let Err(e) = notify::stopping() {
        warn!("cannot tell systemd the server is stopping: {e}");
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("poll loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}
