//! The memory budget: under a memory limit (the cgroup's the server runs in, or
//! `--max-memory`), the server turns new work away with a clear error, and drops the clients
//! with the biggest unread output first, before the kernel would kill it while users chat.
//!
//! Output for clients that stop reading is the only memory that a client can make grow fast
//! (everything else is bounded per client or in total), so that is what gets freed. The
//! resident size is read from `/proc/self/statm` ten times a second, and the limit again every
//! second, since a service manager may move the process into a cgroup after it started.

use std::fs;
use std::time::{Duration, Instant};

/// How often the resident size is compared with the limit.
const CHECK_EVERY: Duration = Duration::from_millis(100);
/// How often the limit is read again.
const LIMIT_EVERY: Duration = Duration::from_secs(1);
/// Above this share of the limit, new connections are turned away.
const REFUSE_AT: f64 = 0.75;
/// Above this share, the biggest output queues are dropped until the estimate is back under
/// [`DROP_TO`].
const DROP_AT: f64 = 0.85;
/// What dropping aims for.
const DROP_TO: f64 = 0.6;
/// A cgroup limit at or above this is no limit (cgroup v1 says "unlimited" with a huge number).
const NO_LIMIT: u64 = 1 << 60;

/// What the loop should do about memory now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pressure {
    /// Nothing.
    None,
    /// Turn new connections away.
    Refuse,
    /// Turn new connections away, and free this many bytes of output, biggest queues first.
    Drop(u64),
}

/// The limit, the last reading, and when to look again.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    /// `--max-memory`, which wins over the cgroup's limit.
    fixed: Option<u64>,
    limit: Option<u64>,
    rss: u64,
    next_check: Instant,
    next_limit: Instant,
    page_size: u64,
}

impl MemoryBudget {
    /// A budget of `max_memory` bytes, or (`None`) whatever the process's cgroup allows.
    pub(crate) fn new(max_memory: Option<u64>, now: Instant) -> Self {
        // SAFETY: sysconf only reads a system constant.
        let page_size = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let mut budget = Self {
            fixed: max_memory,
            limit: None,
            rss: 0,
            next_check: now,
            next_limit: now,
            page_size,
        };
        budget.read_limit(now);
        budget
    }

    /// The limit in force, if any.
    pub(crate) fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Whether new connections are to be turned away now (from the last reading).
    pub(crate) fn refusing(&self) -> bool {
        self.limit
            .is_some_and(|limit| self.rss as f64 > limit as f64 * REFUSE_AT)
    }

    /// Reads the resident size if it is time, and says what to do.
    pub(crate) fn check(&mut self, now: Instant) -> Pressure {
        if now >= self.next_limit {
            self.read_limit(now);
        }
        let Some(limit) = self.limit else {
            return Pressure::None;
        };
        if now < self.next_check {
            return if self.refusing() {
                Pressure::Refuse
            } else {
                Pressure::None
            };
        }
        self.next_check = now + CHECK_EVERY;
        self.rss = self.resident().unwrap_or(0);
        let rss = self.rss as f64;
        let limit = limit as f64;
        if rss > limit * DROP_AT {
            Pressure::Drop((rss - limit * DROP_TO) as u64)
        } else if rss > limit * REFUSE_AT {
            Pressure::Refuse
        } else {
            Pressure::None
        }
    }

    /// Counts `freed` bytes as gone from the last reading (the allocator gives them back to
    /// the system only later, so the next reading would not show it yet).
    pub(crate) fn freed(&mut self, freed: u64) {
        self.rss = self.rss.saturating_sub(freed);
    }

    fn read_limit(&mut self, now: Instant) {
        self.next_limit = now + LIMIT_EVERY;
        self.limit = self.fixed.or_else(cgroup_limit).filter(|&l| l < NO_LIMIT);
    }

    /// The resident size in bytes, from `/proc/self/statm`.
    fn resident(&self) -> Option<u64> {
        let statm = fs::read_to_string("/proc/self/statm").ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        Some(pages * self.page_size)
    }
}

/// The memory limit of the cgroup this process is in (cgroup v2's `memory.max`, or v1's
/// `memory.limit_in_bytes`), if it has one.
pub(crate) fn cgroup_limit() -> Option<u64> {
    let cgroups = fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in cgroups.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let file = if controllers.split(',').any(|c| c == "memory") {
            format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
        } else if controllers.is_empty() {
            format!("/sys/fs/cgroup{path}/memory.max")
        } else {
            continue;
        };
        if let Ok(text) = fs::read_to_string(file) {
            if let Ok(limit) = text.trim().parse::<u64>() {
                return Some(limit);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_budget_turns_pressure_on_past_its_shares() {
        let now = Instant::now();
        let mut budget = MemoryBudget::new(Some(1 << 40), now);
        assert_eq!(budget.limit(), Some(1 << 40));
        assert_eq!(
            budget.check(now),
            Pressure::None,
            "a test process is far below 1 TiB"
        );
        // A budget smaller than what this process already uses.
        let mut tight = MemoryBudget::new(Some(1 << 20), now);
        match tight.check(now) {
            Pressure::Drop(bytes) => assert!(bytes > 0),
            other => panic!("expected Drop, got {other:?}"),
        }
        assert!(tight.refusing());
    }

    #[test]
    fn reads_the_resident_size() {
        let budget = MemoryBudget::new(None, Instant::now());
        assert!(budget.resident().is_some_and(|rss| rss > 0));
    }
}
