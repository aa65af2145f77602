//! Flood control: a client that sends faster than `--flood-rate` lines a second (after a burst of
//! `--flood-burst`) is slowed down, never cut off and never dropped from.
//!
//! Each connection has a token budget, kept as the one instant at which it is full again (the
//! "theoretical arrival time" of the generic cell rate algorithm: no counter to refill, one
//! timestamp per connection). A line is handled only while at least one token is left; it then
//! costs what its command costs ([`crate::protocol::line_cost`]), so an expensive command can
//! overdraw the budget, and the client waits until it is back to one token. While a client
//! waits, the loop does not read its socket at all: the kernel's buffers fill and TCP makes the
//! sender wait, the server holds at most the one read it had taken in (the connection's `unread`
//! input), and the lines are handled later in the order sent. Nobody else waits: the loop has
//! simply one client fewer to read.
//!
//! When a waiting client may go on is kept in a heap, so the loop sleeps until the earliest
//! of them instead of polling.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::chat::{messages, ClientId};

/// One connection's flood budget.
#[derive(Debug)]
pub(crate) struct FloodBudget {
    /// When the budget is full again; each line handled moves it `cost` token intervals on.
    full_at: Instant,
    /// Reading is stopped until the budget is back to one token.
    pub(crate) waiting: bool,
    /// The client was told it is being slowed down, in this flood (a full budget ends one).
    told: bool,
}

impl FloodBudget {
    /// A full budget for a connection accepted at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            full_at: now,
            waiting: false,
            told: false,
        }
    }
}

/// The flood rules, and the connections waiting for their budget.
#[derive(Debug)]
pub(super) struct FloodControl {
    /// How long one token takes to come back; `None` when flood control is off.
    interval: Option<Duration>,
    /// How far ahead of now `full_at` may be while a token is left: `burst - 1` intervals.
    slack: Duration,
    /// When each waiting connection may be read again, earliest first (by slab key; an entry
    /// whose connection went away meanwhile only causes a needless check).
    resumes: BinaryHeap<Reverse<(Instant, usize)>>,
    /// The notice for a client being slowed down, worded once.
    notice: Vec<u8>,
}

impl FloodControl {
    /// `rate` lines a second after a burst of `burst` (at least 1); a rate of 0 is no flood
    /// control.
    pub(super) fn new(rate: u32, burst: u32) -> Self {
        let interval = (rate > 0).then(|| Duration::from_secs(1) / rate);
        let mut notice = Vec::new();
        messages::flood_slowed(&mut notice, rate, burst);
        Self {
            interval,
            slack: interval.unwrap_or_default() * burst.saturating_sub(1),
            resumes: BinaryHeap::new(),
            notice,
        }
    }

    /// Whether lines are priced at all.
    pub(super) fn is_on(&self) -> bool {
        self.interval.is_some()
    }

    /// Whether a client with `budget` may have another line handled at `now`.
    pub(super) fn allows(&self, budget: &FloodBudget, now: Instant) -> bool {
        self.interval.is_none() || budget.full_at <= now + self.slack
    }

    /// Takes `cost` tokens for a line handled at `now`.
    pub(super) fn charge(&self, budget: &mut FloodBudget, cost: u32, now: Instant) {
        let Some(interval) = self.interval else {
            return;
        };
        if budget.full_at <= now {
            // A full budget: whatever came before is over, a new flood gets a new notice.
            budget.full_at = now;
            budget.told = false;
        }
        budget.full_at += interval * cost;
    }

    /// Stops reading the connection `id` until its budget has a token again.
    pub(super) fn wait(&mut self, id: ClientId, budget: &mut FloodBudget) {
        budget.waiting = true;
        let resume_at = budget
            .full_at
            .checked_sub(self.slack)
            .unwrap_or(budget.full_at);
        self.resumes.push(Reverse((resume_at, id.index())));
    }

    /// The notice for the client, if it has not had it in this flood.
    pub(super) fn notice_for(&self, budget: &mut FloodBudget) -> Option<&[u8]> {
        (!std::mem::replace(&mut budget.told, true)).then_some(self.notice.as_slice())
    }

    /// When the next waiting connection may be read again.
    pub(super) fn next_resume(&self) -> Option<Instant> {
        self.resumes.peek().map(|Reverse((at, _))| *at)
    }

    /// The next connection whose wait is over by `now`.
    pub(super) fn next_resumed(&mut self, now: Instant) -> Option<ClientId> {
        match self.resumes.peek() {
            Some(Reverse((at, index))) if *at <= now => {
                let id = ClientId::new(*index);
                self.resumes.pop();
                Some(id)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_burst_then_the_rate_and_expensive_lines_overdraw() {
        let mut flood = FloodControl::new(10, 3);
        let t0 = Instant::now();
        let mut budget = FloodBudget::new(t0);
        for _ in 0..3 {
            assert!(flood.allows(&budget, t0));
            flood.charge(&mut budget, 1, t0);
        }
        assert!(!flood.allows(&budget, t0), "the burst is spent");
        flood.wait(ClientId::new(7), &mut budget);
        assert_eq!(flood.next_resume(), Some(t0 + 100 * MS));
        assert_eq!(flood.next_resumed(t0 + 99 * MS), None);
        assert_eq!(flood.next_resumed(t0 + 100 * MS), Some(ClientId::new(7)));
        // One token back after 100 ms: a /nick (5 tokens) goes through and overdraws by 4, so
        // the next line waits for 5 tokens' time.
        let t1 = t0 + 100 * MS;
        assert!(flood.allows(&budget, t1));
        flood.charge(&mut budget, 5, t1);
        assert!(!flood.allows(&budget, t1 + 499 * MS));
        assert!(flood.allows(&budget, t1 + 500 * MS));
        // Quiet long enough, the whole burst is back.
        let t2 = t1 + 10_000 * MS;
        for _ in 0..3 {
            assert!(flood.allows(&budget, t2));
            flood.charge(&mut budget, 1, t2);
        }
        assert!(!flood.allows(&budget, t2));
    }

    #[test]
    fn the_notice_is_given_once_a_flood() {
        let flood = FloodControl::new(10, 1);
        let t0 = Instant::now();
        let mut budget = FloodBudget::new(t0);
        flood.charge(&mut budget, 1, t0);
        assert!(flood.notice_for(&mut budget).is_some());
        assert!(flood.notice_for(&mut budget).is_none());
        flood.charge(&mut budget, 1, t0 + 50 * MS);
        assert!(flood.notice_for(&mut budget).is_none(), "the same flood");
        flood.charge(&mut budget, 1, t0 + 1000 * MS);
        assert!(flood.notice_for(&mut budget).is_some(), "a new flood");
    }

    #[test]
    fn a_rate_of_zero_is_no_flood_control() {
        let flood = FloodControl::new(0, 20);
        let t0 = Instant::now();
        let mut budget = FloodBudget::new(t0);
        for _ in 0..10_000 {
            flood.charge(&mut budget, 5, t0);
        }
        assert!(flood.allows(&budget, t0));
        assert!(!flood.is_on());
    }
}
