//! Wall-clock time for stored messages: the chat runs on the loop's monotonic `Instant`s and
//! turns them into UTC milliseconds through one anchor, so tests can pin the date and the
//! time shown in replayed lines (`[dev 14:05] ...`) never jumps with the loop's clock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Maps the loop's `Instant`s to milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallClock {
    anchor: Instant,
    anchor_ms: u64,
}

impl WallClock {
    /// A clock anchored at the system's time now.
    pub(crate) fn system() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Self::pinned(Instant::now(), millis(since_epoch))
    }

    /// A clock that reads `unix_ms` at `anchor`.
    pub(crate) fn pinned(anchor: Instant, unix_ms: u64) -> Self {
        Self {
            anchor,
            anchor_ms: unix_ms,
        }
    }

    /// Milliseconds since the Unix epoch at `now`.
    pub(crate) fn unix_ms(&self, now: Instant) -> u64 {
        match now.checked_duration_since(self.anchor) {
            Some(after) => self.anchor_ms.saturating_add(millis(after)),
            None => self
                .anchor_ms
                .saturating_sub(millis(self.anchor.duration_since(now))),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `HH:MM` (UTC) for a time on the same UTC day as `now_ms`, else `YYYY-MM-DD HH:MM`.
pub(crate) fn stamp(at_ms: u64, now_ms: u64) -> String {
    let (at_day, now_day) = (at_ms / DAY_MS, now_ms / DAY_MS);
    let minutes = (at_ms % DAY_MS) / 60_000;
    let time = format!("{:02}:{:02}", minutes / 60, minutes % 60);
    if at_day == now_day {
        return time;
    }
    let (year, month, day) = civil_from_days(at_day);
    format!("{year:04}-{month:02}-{day:02} {time}")
}

const DAY_MS: u64 = 86_400_000;

/// The proleptic Gregorian date of day `days` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_today_as_time_and_other_days_with_the_date() {
        // 2026-11-26 14:05:30 UTC.
        let at = 1_795_701_930_000;
        assert_eq!(stamp(at, at + 3_600_000), "14:05");
        assert_eq!(stamp(at, at + DAY_MS), "2026-11-26 14:05");
        assert_eq!(stamp(0, DAY_MS), "1970-01-01 00:00");
        // A leap day.
        assert_eq!(stamp(951_782_400_000, 0), "2000-02-29 00:00");
    }

    #[test]
    fn the_clock_follows_instants_both_ways() {
        let now = Instant::now();
        let clock = WallClock::pinned(now, 1_000_000);
        assert_eq!(clock.unix_ms(now + Duration::from_secs(2)), 1_002_000);
        if let Some(before) = now.checked_sub(Duration::from_secs(1)) {
            assert_eq!(clock.unix_ms(before), 999_000);
        }
    }
}
