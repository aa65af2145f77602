//! Logging set-up that fits where stderr goes.
//!
//! Started by hand, the server logs through `simple_logger`: a UTC timestamp, a coloured level
//! and the message. Under systemd, stderr is a stream into the journal, which stamps every line
//! itself and reads a leading `<N>` as the line's syslog priority; timestamps and colour codes
//! would only clutter `journalctl`. So when stderr is the journal, every line is written as
//! `<N>message` and `journalctl -p warning` shows warnings and errors only.
//!
//! systemd tells a service its stderr is the journal by setting `JOURNAL_STREAM` to the
//! stream's `DEVICE:INODE`. The variable is inherited by children whose stderr may go
//! elsewhere (a shell started from a service, a redirect), so it counts only when it matches
//! what fd 2 actually is.

use std::io::{self, Write as _};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use log::{Level, LevelFilter, Log, Metadata, Record, SetLoggerError};

/// The environment variable through which systemd describes the journal stream.
pub const JOURNAL_STREAM: &str = "JOURNAL_STREAM";

/// Installs the process's logger at `level`: journal lines when stderr is the journal,
/// `simple_logger`'s timestamped lines otherwise.
pub fn init(level: LevelFilter) -> Result<(), SetLoggerError> {
    if stderr_is_journal() {
        log::set_boxed_logger(Box::new(JournalLogger { level }))?;
        log::set_max_level(level);
        Ok(())
    } else {
        simple_logger::SimpleLogger::new()
            .with_level(level)
            .with_utc_timestamps()
            .init()
    }
}

/// Whether stderr is the journal stream that `JOURNAL_STREAM` names.
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os(JOURNAL_STREAM) else {
        return false;
    };
    let Some(value) = value.to_str() else {
        return false;
    };
    match stderr_identity() {
        Ok((device, inode)) => journal_stream_matches(value, device, inode),
        Err(_) => false,
    }
}

/// The device and inode of the file behind fd 2.
fn stderr_identity() -> io::Result<(u64, u64)> {
    // A duplicate of fd 2 as a File gives std's fstat; the duplicate is closed on return.
    let file = std::fs::File::from(io::stderr().as_fd().try_clone_to_owned()?);
    let metadata = file.metadata()?;
    Ok((metadata.dev(), metadata.ino()))
}

/// Whether `value` (the `JOURNAL_STREAM` format, `DEVICE:INODE` in decimal) names this
/// device and inode.
pub fn journal_stream_matches(value: &str, device: u64, inode: u64) -> bool {
    let Some((d, i)) = value.trim().split_once(':') else {
        return false;
    };
    d.parse::<u64>() == Ok(device) && i.parse::<u64>() == Ok(inode)
}

/// The syslog priority the journal files a line of this level under.
pub fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::Error => 3, // LOG_ERR
        Level::Warn => 4,  // LOG_WARNING
        Level::Info => 6,  // LOG_INFO
        // The journal has no trace priority; both are LOG_DEBUG.
        Level::Debug | Level::Trace => 7,
    }
}

/// One log record as journal lines: `<N>` before every line of the message (the journal splits
/// a stream at newlines, and a continuation line without a prefix would be filed as info), and
/// a final newline.
pub fn journal_lines(level: Level, message: &std::fmt::Arguments<'_>) -> String {
    let text = message.to_string();
    let prefix = format!("<{}>", syslog_priority(level));
    let mut out = String::with_capacity(text.len() + prefix.len() + 1);
    for line in text.split('\n') {
        out.push_str(&prefix);
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The logger used when stderr is the journal: no timestamp, no colour, a syslog priority.
#[derive(Debug)]
pub struct JournalLogger {
    /// The most detailed level written.
    pub level: LevelFilter,
}

impl Log for JournalLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let lines = journal_lines(record.level(), record.args());
        // One write per record so that lines from threads do not interleave; a failed write to
        // stderr has nowhere to be reported.
        let _ = io::stderr().lock().write_all(lines.as_bytes());
    }

    fn flush(&self) {
        let _ = io::stderr().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(syslog_priority(Level::Error), 3);
        assert_eq!(syslog_priority(Level::Warn), 4);
        assert_eq!(syslog_priority(Level::Info), 6);
        assert_eq!(syslog_priority(Level::Debug), 7);
        assert_eq!(syslog_priority(Level::Trace), 7);
    }

    #[test]
    fn a_line_gets_its_priority_and_nothing_else() {
        let port = 5555;
        assert_eq!(
            journal_lines(Level::Info, &format_args!("listening on 0.0.0.0:{port}")),
            "<6>listening on 0.0.0.0:5555\n"
        );
        assert_eq!(
            journal_lines(Level::Error, &format_args!("cannot listen")),
            "<3>cannot listen\n"
        );
    }

    #[test]
    fn every_line_of_a_message_keeps_the_priority() {
        assert_eq!(
            journal_lines(Level::Warn, &format_args!("first\nsecond")),
            "<4>first\n<4>second\n"
        );
    }

    #[test]
    fn journal_stream_must_match_device_and_inode() {
        assert!(journal_stream_matches("8:123456", 8, 123456));
        assert!(journal_stream_matches("8:123456\n", 8, 123456));
        assert!(!journal_stream_matches("8:123457", 8, 123456));
        assert!(!journal_stream_matches("9:123456", 8, 123456));
        assert!(!journal_stream_matches("8", 8, 123456));
        assert!(!journal_stream_matches("", 8, 123456));
        assert!(!journal_stream_matches("a:b", 8, 123456));
    }

    #[test]
    fn the_logger_filters_by_level() {
        let logger = JournalLogger {
            level: LevelFilter::Warn,
        };
        let at = |level| Metadata::builder().level(level).build();
        assert!(logger.enabled(&at(Level::Error)));
        assert!(logger.enabled(&at(Level::Warn)));
        assert!(!logger.enabled(&at(Level::Info)));
    }
}
