//! The loop's side of the worker's job queue: jobs are handed over without ever blocking the
//! loop, and those that find the queue full wait here, in order, to be handed over later.
//!
//! Nothing is dropped while the cluster is healthy: clients are paced long before this node's
//! publications could fill the worker's queue ([`super::flow::PUBLISH_HIGH`] is far below
//! [`super::JOB_QUEUE`]), so what waits here comes from the few sources that are not paced
//! (disconnections, rosters, session writes after a Redis restart). Only past [`MAX_HELD`]
//! jobs are publications and session writes dropped, counted and logged, to keep memory
//! bounded; nick claims and releases never are (a lost release keeps a nick taken for as long
//! as the node lives).

use std::collections::VecDeque;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::warn;

use super::job::Job;
use super::notifier::Levels;

/// Jobs held back at most before publications and session writes are dropped.
pub const MAX_HELD: usize = 100_000;

/// The worker's queue as the loop sees it.
pub struct Outgoing {
    jobs: SyncSender<Job>,
    levels: Arc<Levels>,
    /// Jobs that found the worker's queue full, oldest first.
    held: VecDeque<Job>,
    dropped: u64,
}

impl Outgoing {
    /// Hands jobs to the worker through `jobs`, counting them in `levels`.
    pub fn new(jobs: SyncSender<Job>, levels: Arc<Levels>) -> Self {
        Self {
            jobs,
            levels,
            held: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Jobs not yet taken by the worker: in its queue and held back here.
    pub fn len(&self) -> usize {
        self.levels.jobs() + self.held.len()
    }

    /// Jobs dropped so far (past [`MAX_HELD`]).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Hands `job` to the worker, or holds it back behind those already waiting.
    pub fn submit(&mut self, job: Job) {
        if !self.held.is_empty() {
            self.hold_back(job);
            return;
        }
        if let Some(job) = self.try_send(job) {
            self.hold_back(job);
        }
    }

    /// Moves held-back jobs to the worker, oldest first, as far as its queue allows.
    pub fn retry(&mut self) {
        while let Some(job) = self.held.pop_front() {
            if let Some(job) = self.try_send(job) {
                self.held.push_front(job);
                return;
            }
        }
    }

    /// Keeps handing held-back jobs over until none is left or `limit` passed (when this node
    /// stops: its nick releases must reach Redis). Returns whether all were handed over.
    pub fn flush(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            self.retry();
            if self.held.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                warn!(
                    "cluster: {} jobs for Redis not sent before stopping",
                    self.held.len()
                );
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Tries to put `job` in the worker's queue; gives it back if the queue is full. A worker
    /// that is gone takes nothing more, so the job is let go.
    fn try_send(&mut self, job: Job) -> Option<Job> {
        self.levels.job_queued();
        match self.jobs.try_send(job) {
            Ok(()) => None,
            Err(TrySendError::Full(job)) => {
                self.levels.jobs_taken(1);
                Some(job)
            }
            Err(TrySendError::Disconnected(_)) => {
                self.levels.jobs_taken(1);
                self.held.clear();
                None
            }
        }
    }

    /// Keeps a job for later; past [`MAX_HELD`] publications and session writes are dropped
    /// (every session is written again when contact is restored).
    fn hold_back(&mut self, job: Job) {
        let droppable = matches!(job, Job::Publish(_) | Job::SaveSession { .. });
        if self.held.len() >= MAX_HELD && droppable {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                warn!(
                    "Redis is not keeping up: {} cluster messages dropped so far",
                    self.dropped
                );
            }
            return;
        }
        self.held.push_back(job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// An outgoing queue in front of a worker's queue of `capacity` jobs.
    fn outgoing(capacity: usize) -> (Outgoing, mpsc::Receiver<Job>, Arc<Levels>) {
        let (tx, rx) = mpsc::sync_channel(capacity);
        let levels = Arc::new(Levels::default());
        (Outgoing::new(tx, Arc::clone(&levels)), rx, levels)
    }

    fn publish(n: usize) -> Job {
        Job::Publish(format!("m{n}"))
    }

    fn name(job: &Job) -> String {
        match job {
            Job::Publish(p) => p.clone(),
            Job::Release(nick) => format!("release {nick}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn jobs_that_find_the_queue_full_wait_in_order_and_none_is_dropped() {
        let (mut out, rx, levels) = outgoing(2);
        for n in 0..3 {
            out.submit(publish(n));
        }
        out.submit(Job::Release("alice".into()));
        out.submit(publish(3));
        assert_eq!(out.len(), 5);
        assert_eq!(levels.jobs(), 2, "two in the queue, three held back");
        let mut seen = Vec::new();
        while seen.len() < 5 {
            let job = rx.try_recv().expect("a job");
            levels.jobs_taken(1);
            seen.push(name(&job));
            out.retry();
        }
        assert_eq!(seen, ["m0", "m1", "m2", "release alice", "m3"]);
        assert_eq!(out.len(), 0);
        assert_eq!(out.dropped(), 0);
    }

    #[test]
    fn flush_waits_for_a_slow_worker_and_gives_up_at_its_limit() {
        let (mut out, rx, _) = outgoing(1);
        for n in 0..20 {
            out.submit(Job::Release(format!("n{n}")));
        }
        let worker = std::thread::spawn(move || {
            let mut got = Vec::new();
            while let Ok(job) = rx.recv() {
                std::thread::sleep(Duration::from_millis(1));
                got.push(name(&job));
            }
            got
        });
        assert!(out.flush(Duration::from_secs(30)), "everything handed over");
        drop(out);
        let got = worker.join().expect("the worker ends");
        let wanted: Vec<String> = (0..20).map(|n| format!("release n{n}")).collect();
        assert_eq!(got, wanted);

        // Nobody takes anything: flush gives up.
        let (mut stuck, _rx, _) = outgoing(1);
        stuck.submit(publish(0));
        stuck.submit(publish(1));
        assert!(!stuck.flush(Duration::from_millis(20)));
    }

    #[test]
    fn past_the_bound_only_publications_and_session_writes_are_dropped() {
        let (mut out, _rx, _) = outgoing(1);
        out.submit(publish(0));
        for n in 0..MAX_HELD {
            out.submit(publish(n));
        }
        out.submit(publish(0));
        out.submit(Job::SaveSession {
            nick: "a".into(),
            value: "{}".into(),
        });
        out.submit(Job::Release("a".into()));
        assert_eq!(out.dropped(), 2);
        assert_eq!(out.held.len(), MAX_HELD + 1, "the release is kept");
    }
}
