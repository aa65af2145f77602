//! The wire protocol: a TCP byte stream to text lines, a text line to a [`Command`], and the
//! rules for names. Nothing here does I/O and nothing here words a line for the user (that is
//! `chat::messages`).
//!
//! - `decoder`: [`LineDecoder`] splits raw input into lines (LF, optional CR), strips telnet
//!   IAC sequences, bounds the line length with bounded memory and reports invalid UTF-8;
//! - `command`: [`Command::parse`] turns one decoded line into a command, [`line_cost`] says
//!   what it costs under flood control;
//! - `names`: the rules shared by nicks and room names, and how they are compared.

mod command;
mod decoder;
mod names;

pub use command::{line_cost, Command, ParseError};
pub use decoder::{Decoded, LineDecoder, LineError};
pub use names::{name_key, strip_controls, validate_name, MAX_NAME_CHARS};

#[cfg(test)]
mod tests;
