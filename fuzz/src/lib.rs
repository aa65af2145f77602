//! What the fuzz targets check, one module a target, written against chat-server's public API
//! (plus `Chat::check_invariants` and `Server::metrics_answer`, which the `fuzzing` feature
//! exposes).
//!
//! The same files are compiled into chat-server's own unit tests (`src/lib.rs` includes this
//! one), so that on stable `cargo test` replays every file of `fuzz/corpus/` through them
//! (`replay`) and the property tests drive the same checks with generated inputs.
//!
//! - `decoder`: a byte stream decodes to the same lines, refusals and telnet answers however
//!   it is cut into reads or line budgets, and plain text decodes to its lines;
//! - `command`: control stripping, name validation and command parsing keep their promises;
//! - `chat`: a script of connects, lines, refusals, disconnects and time for a handful of
//!   clients keeps the chat's invariants and sends no line where it must not go;
//! - `metrics`: the metrics endpoint answers any bytes, cut into any reads, the same way, and
//!   as HTTP says (`Server::metrics_answer`, which the `fuzzing` feature exposes).

pub mod chat;
pub mod command;
pub mod decoder;
pub mod metrics;

#[cfg(test)]
mod replay;

/// Reads bytes off the front of a fuzz input; past the end every read is zero, so any input
/// decodes to something.
pub struct Bytes<'a> {
    rest: &'a [u8],
}

impl<'a> Bytes<'a> {
    /// Reads `data` from its start.
    pub fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next byte (0 past the end).
    pub fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&first, rest)) => {
                self.rest = rest;
                first
            }
            None => 0,
        }
    }

    /// The next `n` bytes, or fewer at the end.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = rest;
        head
    }
}
