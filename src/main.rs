//! The `chat-server` binary: parses the configuration, sets up logging and runs the poll loop.

use std::process::ExitCode;

use clap::Parser;
use log::error;

use chat_server::config::{raise_open_file_limit, Config};
use chat_server::server::Server;

fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(e) = simple_logger::SimpleLogger::new()
        .with_level(config.log_level)
        .with_utc_timestamps()
        .init()
    {
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
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("poll loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}
