//! chat-server: a TCP chat server with rooms, nick restoration and a telnet-friendly protocol,
//! driven by a single mio poll loop.
//!
//! - [`protocol`]: bytes to lines, lines to commands, name rules;
//! - [`chat`]: sessions, rooms and commands, free of I/O;
//! - [`roster`]: what a cluster node knows of users on the other nodes;
//! - [`cluster`]: cluster mode, the adapter between the chat and Redis;
//! - [`connection`]: one socket with its decoder and bounded output buffer;
//! - [`server`]: the poll loop tying them together;
//! - [`config`]: command-line and environment settings.
//!
//! Running a server in-process (as the integration tests do):
//!
//! ```no_run
//! use chat_server::{config::Config, server::Server};
//! let server = Server::bind(&Config::with_listen("127.0.0.1:0".parse().unwrap())).unwrap();
//! let addr = server.local_addr();
//! let stop = server.shutdown_handle();
//! let thread = std::thread::spawn(move || server.run());
//! // ... connect to `addr` ...
//! stop.shutdown();
//! thread.join().unwrap().unwrap();
//! ```

pub mod chat;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod logging;
pub mod notify;
pub mod protocol;
pub mod roster;
pub mod server;
