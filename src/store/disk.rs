//! The data dir's database: one SQLite file, `DIR/chat.sqlite3`, in WAL mode with
//! `synchronous = FULL` (a commit is on disk when it returns), written only by the storage
//! thread. docs/STORAGE.md describes the tables, the format version and the crash behaviour.
//!
//! This file opens and checks the file and keeps the transaction; `rows.rs` reads and writes
//! the rows. Changes are applied inside one open transaction that [`Disk::commit`] ends.

use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};

use super::rows::Kept;

/// The database's file name in the data dir.
pub const FILE_NAME: &str = "chat.sqlite3";
/// The on-disk format this build writes and the newest it reads.
pub const FORMAT: u32 = 1;
/// SQLite's `application_id` of a chat-server database ("CHAT"), so another program's SQLite
/// file is refused instead of being written into.
const APPLICATION_ID: i32 = 0x4348_4154;
/// How long a write waits for a lock held by another connection (a backup being taken).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Format 1. Names are keys (lowercase); times are milliseconds since the Unix epoch (UTC).
const SCHEMA: &str = "
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE rooms (room TEXT PRIMARY KEY, posted INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY, room TEXT NOT NULL, number INTEGER NOT NULL,
        at_ms INTEGER NOT NULL, nick TEXT NOT NULL, text TEXT NOT NULL, action INTEGER NOT NULL);
    CREATE TABLE sessions (
        nick TEXT PRIMARY KEY, left_at_ms INTEGER NOT NULL, active TEXT NOT NULL,
        rooms TEXT NOT NULL, marks TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE privates (
        id INTEGER PRIMARY KEY, recipient TEXT NOT NULL, at_ms INTEGER NOT NULL,
        sender TEXT NOT NULL, text TEXT NOT NULL);
    CREATE INDEX privates_by_recipient ON privates (recipient, id);
    CREATE TABLE accounts (
        nick TEXT PRIMARY KEY, display TEXT NOT NULL, hash TEXT NOT NULL) WITHOUT ROWID;
";

/// Tables added to format 1 after its first databases were made: created when missing, so an
/// older format-1 database opens as it is.
const ADDED_TABLES: &str = "
    CREATE TABLE IF NOT EXISTS accounts (
        nick TEXT PRIMARY KEY, display TEXT NOT NULL, hash TEXT NOT NULL) WITHOUT ROWID;
";

/// The open database.
pub(crate) struct Disk {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
    /// Whether a transaction is open (changes applied since the last commit).
    in_transaction: bool,
    /// Rooms' highest message number applied in the open transaction.
    pub(super) posted: HashMap<String, u64>,
    /// Rooms' highest trimmed number in the open transaction.
    pub(super) trims: HashMap<String, u64>,
    /// Every room's kept messages, oldest first, with their row ids (`rows.rs`).
    pub(super) kept: HashMap<String, VecDeque<Kept>>,
}

impl Disk {
    /// Opens (or creates) the database at `path`, refusing one that is not chat-server's, is
    /// from a newer format, is corrupt, or cannot be written. Every error names the file.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let fail = |e| error_at(path, e);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(fail)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
        // The first read of the header: a file that is not SQLite fails here.
        let app_id: i32 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(fail)?;
        let objects: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(fail)?;
        let mut disk = Self {
            conn,
            path: path.to_path_buf(),
            in_transaction: false,
            posted: HashMap::new(),
            trims: HashMap::new(),
            kept: HashMap::new(),
        };
        if app_id == 0 && objects == 0 {
            disk.create().map_err(fail)?;
        } else if app_id != APPLICATION_ID {
            return Err(invalid(path, "is not a chat-server database"));
        }
        disk.check_format()?;
        disk.check_integrity()?;
        let mode: String = disk
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(fail)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(invalid(path, &format!("cannot use WAL mode (got {mode})")));
        }
        disk.conn
            .execute_batch("PRAGMA synchronous = FULL")
            .map_err(fail)?;
        // Written at once: a file the process cannot write stops the start, not the first post.
        disk.conn.execute_batch(ADDED_TABLES).map_err(fail)?;
        disk.conn
            .execute(
                "INSERT OR REPLACE INTO meta VALUES ('last_opened_by', ?1)",
                [concat!("chat-server ", env!("CARGO_PKG_VERSION"))],
            )
            .map_err(fail)?;
        Ok(disk)
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A new database: the tables and the format version, in one transaction.
    fn create(&mut self) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute_batch(SCHEMA)?;
        tx.execute(
            "INSERT INTO meta VALUES ('format', ?1), ('created_by', ?2)",
            params![
                FORMAT.to_string(),
                concat!("chat-server ", env!("CARGO_PKG_VERSION"))
            ],
        )?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.commit()
    }

    /// Refuses a format this build does not know.
    fn check_format(&self) -> io::Result<()> {
        let format: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| error_at(&self.path, e))?;
        let Some(format) = format else {
            return Err(invalid(&self.path, "has no format version"));
        };
        match format.parse::<u32>() {
            Ok(FORMAT) => Ok(()),
            Ok(newer) if newer > FORMAT => Err(invalid(
                &self.path,
                &format!(
                    "was written by a newer chat-server (data format {newer}; this one reads \
                     format {FORMAT}); run the newer version or restore a backup"
                ),
            )),
            _ => Err(invalid(
                &self.path,
                &format!("has an unknown data format {format:?}"),
            )),
        }
    }

    /// SQLite's quick check of every page and index (about 60 ms for 100,000 sessions and
    /// 200,000 messages): damage is found at start, not in the middle of a commit.
    fn check_integrity(&self) -> io::Result<()> {
        let verdict: String = self
            .conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(|e| error_at(&self.path, e))?;
        if verdict == "ok" {
            return Ok(());
        }
        let verdict = verdict.replace('\n', " ");
        Err(invalid(
            &self.path,
            &format!("is corrupt ({verdict}); restore a backup or move the file away"),
        ))
    }

    /// Whether changes were applied since the last commit.
    pub(crate) fn dirty(&self) -> bool {
        self.in_transaction
    }

    /// Writes the noted counts and trims and commits the open transaction, durably.
    pub(crate) fn commit(&mut self) -> io::Result<()> {
        if !self.in_transaction {
            return Ok(());
        }
        let result = self
            .write_noted()
            .and_then(|()| self.conn.execute_batch("COMMIT"));
        if let Err(e) = result {
            self.rollback();
            return Err(error_at(&self.path, e));
        }
        self.in_transaction = false;
        Ok(())
    }

    /// Drops the open transaction and what was noted for it.
    pub(crate) fn rollback(&mut self) {
        self.posted.clear();
        self.trims.clear();
        if self.in_transaction {
            self.in_transaction = false;
            // Fails only if SQLite already rolled back (after an I/O error): nothing is open.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Commits and closes the database (a clean close checkpoints and removes the WAL file).
    pub(crate) fn close(mut self) -> io::Result<()> {
        self.commit()?;
        let path = self.path;
        self.conn.close().map_err(|(_, e)| error_at(&path, e))
    }

    /// Opens a transaction unless one is open.
    pub(super) fn begin(&mut self) -> rusqlite::Result<()> {
        if !self.in_transaction {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.in_transaction = true;
        }
        Ok(())
    }
}

/// An SQLite error as an I/O error that names the file and says what to do where it can.
pub(super) fn error_at(path: &Path, e: rusqlite::Error) -> io::Error {
    let path = path.display();
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => io::Error::new(
            ErrorKind::InvalidData,
            format!("{path} is corrupt or not a database ({e}); restore a backup or move it away"),
        ),
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied | ErrorCode::CannotOpen) => {
            io::Error::new(
                ErrorKind::PermissionDenied,
                format!("{path} cannot be opened for writing ({e})"),
            )
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => io::Error::new(
            ErrorKind::WouldBlock,
            format!("{path} is locked by another program ({e})"),
        ),
        _ => io::Error::other(format!("{path}: {e}")),
    }
}

/// A data error about the file at `path`.
fn invalid(path: &Path, what: &str) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, format!("{} {what}", path.display()))
}
