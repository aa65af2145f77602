//! The limits the chat logic enforces, each default written once.

use std::time::Duration;

/// Limits the chat logic enforces, and who decides nick ownership.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// How long a departed user's session stays restorable.
    pub session_ttl: Duration,
    /// At most this many saved sessions are kept; the oldest go first.
    pub max_saved_sessions: usize,
    /// The longest accepted line, only used to word the error.
    pub max_line: usize,
    /// The most rooms one user may be in, `main` included.
    pub max_rooms_per_user: usize,
    /// The most rooms this node holds at once, `main` included: a `/join` that would create
    /// one more is refused, so room memory stays bounded whoever asks.
    pub max_rooms: usize,
    /// Rooms with more members than this (on every node together) are quiet: arrivals,
    /// departures and renames are not announced in them, since in a big room they would drown
    /// the conversation and cost every member a line per arrival. `/who` still lists everyone.
    pub announce_limit: usize,
    /// The bounds of room history (see [`super::HistoryLimits`]).
    pub history: super::HistoryLimits,
    /// Nick claims are decided by a cluster (through [`super::Outbox::claim_nick`]), and every
    /// change of a user's rooms is published as [`super::Event::Session`].
    pub shared_registry: bool,
}

impl ChatConfig {
    /// Default of [`ChatConfig::session_ttl`], in seconds: a day.
    pub const DEFAULT_SESSION_TTL_SECS: u64 = 86_400;
    /// Default of [`ChatConfig::max_saved_sessions`].
    pub const DEFAULT_MAX_SAVED_SESSIONS: usize = 100_000;
    /// Default of [`ChatConfig::max_line`], in bytes.
    pub const DEFAULT_MAX_LINE: u32 = 4096;
    /// Default of [`ChatConfig::max_rooms_per_user`].
    pub const DEFAULT_MAX_ROOMS_PER_USER: u32 = 100;
    /// Default of [`ChatConfig::max_rooms`].
    pub const DEFAULT_MAX_ROOMS: u32 = 100_000;
    /// Default of [`ChatConfig::announce_limit`], in members.
    pub const DEFAULT_ANNOUNCE_LIMIT: usize = 100;
    /// Default of the messages kept per room.
    pub const DEFAULT_HISTORY: usize = 200;
    /// Default of the bytes of history kept in all rooms: 64 MiB.
    pub const DEFAULT_HISTORY_BYTES: usize = 64 << 20;
    /// Default of the days a message is kept.
    pub const DEFAULT_HISTORY_DAYS: u64 = 30;
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(Self::DEFAULT_SESSION_TTL_SECS),
            max_saved_sessions: Self::DEFAULT_MAX_SAVED_SESSIONS,
            max_line: Self::DEFAULT_MAX_LINE as usize,
            max_rooms_per_user: Self::DEFAULT_MAX_ROOMS_PER_USER as usize,
            max_rooms: Self::DEFAULT_MAX_ROOMS as usize,
            announce_limit: Self::DEFAULT_ANNOUNCE_LIMIT,
            history: super::HistoryLimits {
                per_room: Self::DEFAULT_HISTORY,
                max_bytes: Self::DEFAULT_HISTORY_BYTES,
                max_age_ms: Self::DEFAULT_HISTORY_DAYS * 86_400_000,
            },
            shared_registry: false,
        }
    }
}
