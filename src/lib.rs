//! chat-server: a TCP chat server with rooms, nick restoration and a telnet-friendly protocol,
//! driven by a single mio poll loop.
//!
//! # Layout
//!
//! In the order data flows through them:
//!
//! - [`server`]: the poll loop. Accepts sockets (`server/accept.rs`), reads them within per-turn
//!   budgets (`server/input.rs`) and flood budgets (`server/flood.rs`), and delivers the chat's output, one write per connection per
//!   turn (`server/delivery.rs`, on `connection.rs` and `output.rs`);
//! - [`protocol`]: bytes to lines (`decoder.rs`, telnet included), a line to a command
//!   (`command.rs`), the rules for names (`names.rs`);
//! - [`chat`]: sessions, rooms and commands, free of I/O; one file a command under `chat/cmd/`,
//!   every line a user can see in `chat/messages/`; it answers through the
//!   [`chat::Outbox`] seam;
//! - `cluster`: cluster mode, the adapter between the chat's [`chat::Event`]s and Redis
//!   (a publisher and registry worker thread, a subscriber thread, the wire format), and flow
//!   control between nodes (`cluster/flow.rs`: the cluster paces its senders while a node is
//!   behind, instead of dropping);
//! - [`store`]: the data dir (`--data-dir`): the chat's changes written to SQLite by a storage
//!   thread behind a bounded queue (`store/worker.rs`, `store/disk.rs`), loaded back at start;
//! - [`config`]: command-line and environment settings, with every default written once;
//! - [`logging`], [`notify`]: running under systemd (journal priorities, readiness).
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
pub mod config;
pub mod logging;
pub mod notify;
pub mod protocol;
pub mod server;
pub mod store;

mod cluster;

// The fuzz targets' checks (fuzz/src/) are written against this crate's public API under its
// own name; compiled into the unit tests they replay the fuzz corpus on stable and serve the
// property tests.
#[cfg(test)]
extern crate self as chat_server;
#[cfg(test)]
#[path = "../fuzz/src/lib.rs"]
mod fuzz;
