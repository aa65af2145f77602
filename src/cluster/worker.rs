//! The worker thread: runs the loop's Redis jobs (publish, claim, release, save), pipelined.

use std::collections::HashSet;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::accounts::ACCOUNTS_KEY;
use super::history::Streams;
use super::job::Job;
use super::kept::StoredPrivate;
use super::notifier::Notifier;
use super::privates_key;
use super::scripts::{CLAIM_SCRIPT, EPOCH_SCRIPT, KEEP_SCRIPT, REFRESH_SCRIPT, RELEASE_SCRIPT};
use super::wire::StoredSession;
use super::{
    connect, next_backoff, nick_key, session_key, Incoming, BACKOFF_MIN, EVENTS_CHANNEL, HEARTBEAT,
    NICK_TTL,
};
use crate::chat::{ClaimOutcome, Grant, HistoryLimits, NickClaim, MAILBOX_LIMIT};
use crate::protocol::name_key;

/// Jobs sent to Redis in one pipelined round trip at most.
const MAX_BATCH: usize = 512;

/// The key whose value changes only when Redis loses its data.
const EPOCH_KEY: &str = "chat:epoch";
/// How long claims wait after Redis lost its data: long enough for every node to reconnect
/// (at most [`BACKOFF_MAX`] apart) and re-register its nicks.
const AMNESIA_GRACE: Duration = Duration::from_secs(8);

/// Sends a pipeline, if it holds anything, and empties it.
fn flush(pipe: &mut redis::Pipeline, con: &mut redis::Connection) -> redis::RedisResult<()> {
    if pipe.is_empty() {
        return Ok(());
    }
    let result = pipe.exec(con);
    *pipe = redis::pipe();
    result
}

/// The worker's connection and its reconnection state.
struct Link {
    connection: Option<redis::Connection>,
    backoff: Duration,
    retry_at: Instant,
    /// When a command last succeeded.
    last_ok: Instant,
}

impl Link {
    fn new() -> Self {
        Self {
            connection: None,
            backoff: BACKOFF_MIN,
            retry_at: Instant::now(),
            last_ok: Instant::now(),
        }
    }
}

/// The thread that runs Redis commands for the loop.
pub struct Worker {
    client: redis::Client,
    node: String,
    session_ttl: Duration,
    /// Nicks this node holds, refreshed every heartbeat.
    held: HashSet<String>,
    notify: Notifier,
    /// The value of `chat:epoch` last seen: a change means Redis lost its data.
    epoch: Option<String>,
    /// After Redis lost its data, claims wait until every node had time to re-register.
    claims_wait_until: Option<Instant>,
    waiting_claims: Vec<Job>,
    /// The rooms' history streams.
    streams: Streams,
}

impl Worker {
    /// A worker for node `node`, storing sessions for `session_ttl` and room history within
    /// `history`.
    pub fn new(
        client: redis::Client,
        node: String,
        session_ttl: Duration,
        history: HistoryLimits,
        notify: Notifier,
    ) -> Self {
        Self {
            client,
            node,
            session_ttl,
            held: HashSet::new(),
            notify,
            epoch: None,
            claims_wait_until: None,
            waiting_claims: Vec::new(),
            streams: Streams::new(history),
        }
    }

    /// Serves jobs until the cluster stops.
    pub fn run(mut self, jobs: Receiver<Job>) {
        let mut link = Link::new();
        let mut next_refresh = Instant::now() + HEARTBEAT;
        loop {
            let stopping = self.notify.stopping();
            let mut batch: Vec<Job> = match jobs.recv_timeout(Duration::from_millis(200)) {
                Ok(job) => vec![job],
                Err(RecvTimeoutError::Timeout) => Vec::new(),
                Err(RecvTimeoutError::Disconnected) => return,
            };
            // Take everything already queued: one pipelined round trip instead of many.
            batch.extend(jobs.try_iter().take(MAX_BATCH));
            self.notify.jobs_taken(batch.len());
            if self
                .claims_wait_until
                .is_some_and(|until| Instant::now() >= until)
            {
                self.claims_wait_until = None;
                batch.splice(0..0, std::mem::take(&mut self.waiting_claims));
            }
            let refresh_due = Instant::now() >= next_refresh;
            if refresh_due {
                next_refresh = Instant::now() + HEARTBEAT;
            }
            if !batch.is_empty() || refresh_due || link.connection.is_none() {
                self.serve(&mut link, batch, refresh_due);
            }
            if stopping {
                // The goodbye and the nick releases were queued before the stop: sent above.
                let rest: Vec<Job> = jobs.try_iter().collect();
                self.notify.jobs_taken(rest.len());
                self.serve(&mut link, rest, false);
                return;
            }
        }
    }

    /// Runs `batch` (and the nick refresh) over a healthy connection, or answers locally.
    fn serve(&mut self, link: &mut Link, batch: Vec<Job>, refresh: bool) {
        let Some(con) = self.healthy_connection(link) else {
            batch.into_iter().for_each(|job| self.without_redis(job));
            return;
        };
        let mut leftover = Vec::new();
        let result = self
            .execute_batch(con, batch, &mut leftover)
            .and_then(|()| if refresh { self.refresh(con) } else { Ok(()) });
        match result {
            Ok(()) => link.last_ok = Instant::now(),
            Err(e) => {
                warn!("Redis command failed: {e}");
                link.connection = None;
                link.retry_at = Instant::now();
                self.retry_once(link, leftover);
            }
        }
    }

    /// After a failed command: Redis may just have restarted (an idle connection learns it
    /// only when used), so the jobs not yet run get one more try on a fresh connection before
    /// they are answered as if Redis were away (a claim granted locally could hand out a nick
    /// another node holds).
    fn retry_once(&mut self, link: &mut Link, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let mut leftover = Vec::new();
        if let Some(con) = self.healthy_connection(link) {
            match self.execute_batch(con, jobs, &mut leftover) {
                Ok(()) => link.last_ok = Instant::now(),
                Err(e) => {
                    warn!("Redis command failed again: {e}");
                    link.connection = None;
                }
            }
        } else {
            leftover = jobs;
        }
        leftover.into_iter().for_each(|job| self.without_redis(job));
    }

    /// The connection, (re)connected if needed (with backoff) and checked with a PING if it
    /// has been idle: an idle connection to a Redis that restarted fails only when used, and
    /// the jobs of that first failing batch would be answered without Redis.
    fn healthy_connection<'a>(&mut self, link: &'a mut Link) -> Option<&'a mut redis::Connection> {
        let stale = link.last_ok.elapsed() >= Duration::from_secs(1);
        if let (Some(con), true) = (link.connection.as_mut(), stale) {
            if redis::cmd("PING").query::<String>(con).is_err() {
                link.connection = None;
                link.retry_at = Instant::now();
            }
        }
        if link.connection.is_none() && Instant::now() >= link.retry_at {
            let connected = connect(&self.client).and_then(|mut con| {
                self.on_connect(&mut con)?;
                Ok(con)
            });
            match connected {
                Ok(con) => {
                    info!("Redis worker connected");
                    link.connection = Some(con);
                    link.backoff = BACKOFF_MIN;
                    link.last_ok = Instant::now();
                }
                Err(e) => {
                    debug!("Redis worker cannot connect: {e}");
                    link.retry_at = Instant::now() + link.backoff;
                    link.backoff = next_backoff(link.backoff);
                }
            }
        }
        link.connection.as_mut()
    }

    /// A fresh connection: re-registers this node's nicks at once, and notices whether Redis
    /// lost its data meanwhile (a new `chat:epoch`). If it did, nobody's nick is registered
    /// until each node reconnects, so new claims wait [`AMNESIA_GRACE`] for the others.
    fn on_connect(&mut self, con: &mut redis::Connection) -> redis::RedisResult<()> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let candidate = format!("{}-{nanos}", self.node);
        let current: String = redis::Script::new(EPOCH_SCRIPT)
            .key(EPOCH_KEY)
            .arg(candidate)
            .invoke(con)?;
        if self.epoch.as_ref().is_some_and(|seen| *seen != current) {
            warn!("Redis lost its data (new epoch); re-registering nicks, new claims wait {AMNESIA_GRACE:?}");
            self.claims_wait_until = Some(Instant::now() + AMNESIA_GRACE);
        }
        self.epoch = Some(current);
        self.refresh(con)
    }

    /// Redis is unreachable: answer what must be answered, drop the rest.
    fn without_redis(&mut self, job: Job) {
        match job {
            Job::Claim { client, nick, .. } => {
                self.held.insert(name_key(&nick));
                self.notify.send_control(Incoming::Claimed {
                    client,
                    nick,
                    outcome: ClaimOutcome::Granted(Grant::default()),
                });
            }
            Job::Release(nick) => {
                self.held.remove(&name_key(&nick));
            }
            Job::Register(nicks) => {
                self.held = nicks.iter().map(|n| name_key(n)).collect();
            }
            Job::Publish(_)
            | Job::Post { .. }
            | Job::SaveSession { .. }
            | Job::DropSession(_)
            | Job::KeepPrivate { .. }
            | Job::ClearPrivates(_) => {}
        }
    }

    /// Runs `batch` in order: runs of fire-and-forget jobs go in one pipeline, claims and
    /// registrations (which need their answers) one by one. On an error the jobs not yet run
    /// (a claim that failed among them) go to `leftover`, so no claim goes unanswered; what a
    /// failed pipeline held may or may not have run, and is not tried again.
    fn execute_batch(
        &mut self,
        con: &mut redis::Connection,
        batch: Vec<Job>,
        leftover: &mut Vec<Job>,
    ) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        let mut jobs = batch.into_iter();
        while let Some(job) = jobs.next() {
            let result = match job {
                Job::Publish(payload) => {
                    pipe.cmd("PUBLISH")
                        .arg(EVENTS_CHANNEL)
                        .arg(payload)
                        .ignore();
                    Ok(())
                }
                Job::Post { payload, entry } => {
                    self.streams.append(&mut pipe, &entry);
                    pipe.cmd("PUBLISH")
                        .arg(EVENTS_CHANNEL)
                        .arg(payload)
                        .ignore();
                    Ok(())
                }
                Job::SaveSession { nick, value } => {
                    pipe.cmd("EVAL")
                        .arg(KEEP_SCRIPT)
                        .arg(2)
                        .arg(session_key(&nick))
                        .arg(ACCOUNTS_KEY)
                        .arg("set")
                        .arg(value)
                        .arg(self.session_ttl.as_secs().max(1))
                        .arg(name_key(&nick))
                        .ignore();
                    Ok(())
                }
                Job::DropSession(nick) => {
                    pipe.cmd("DEL").arg(session_key(&nick)).ignore();
                    Ok(())
                }
                Job::KeepPrivate { to, value } => {
                    // As long as a saved session lives; at most what a mailbox holds.
                    pipe.cmd("EVAL")
                        .arg(KEEP_SCRIPT)
                        .arg(2)
                        .arg(privates_key(&to))
                        .arg(ACCOUNTS_KEY)
                        .arg("push")
                        .arg(value)
                        .arg(self.session_ttl.as_secs().max(1))
                        .arg(&to)
                        .arg(MAILBOX_LIMIT)
                        .ignore();
                    Ok(())
                }
                Job::ClearPrivates(to) => {
                    pipe.cmd("DEL").arg(privates_key(&to)).ignore();
                    Ok(())
                }
                Job::Release(nick) => {
                    self.held.remove(&name_key(&nick));
                    pipe.cmd("EVAL")
                        .arg(RELEASE_SCRIPT)
                        .arg(1)
                        .arg(nick_key(&nick))
                        .arg(&self.node)
                        .ignore();
                    Ok(())
                }
                Job::Claim { .. } if self.claims_wait_until.is_some() => {
                    self.waiting_claims.push(job);
                    Ok(())
                }
                job => match flush(&mut pipe, con) {
                    Ok(()) => self.execute(con, job, leftover),
                    Err(e) => {
                        leftover.push(job);
                        Err(e)
                    }
                },
            };
            if let Err(e) = result.and_then(|()| {
                if pipe.len() >= MAX_BATCH {
                    flush(&mut pipe, con)
                } else {
                    Ok(())
                }
            }) {
                leftover.extend(jobs);
                return Err(e);
            }
        }
        flush(&mut pipe, con)
    }

    /// Runs a job that needs its answer; one that fails goes to `leftover`.
    fn execute(
        &mut self,
        con: &mut redis::Connection,
        job: Job,
        leftover: &mut Vec<Job>,
    ) -> redis::RedisResult<()> {
        match job {
            Job::Claim {
                client,
                nick,
                claim,
            } => {
                let outcome = match self.claim(con, &nick, claim) {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        // Tried again on a fresh connection, else answered without Redis.
                        leftover.push(Job::Claim {
                            client,
                            nick,
                            claim,
                        });
                        return Err(e);
                    }
                };
                if matches!(outcome, ClaimOutcome::Granted(..)) {
                    self.held.insert(name_key(&nick));
                }
                self.notify.send_control(Incoming::Claimed {
                    client,
                    nick,
                    outcome,
                });
                Ok(())
            }
            Job::Register(nicks) => {
                self.held = nicks.iter().map(|n| name_key(n)).collect();
                self.refresh(con)
            }
            // Fire-and-forget jobs go through the pipeline path.
            other => self.execute_batch(con, vec![other], leftover),
        }
    }

    fn claim(
        &self,
        con: &mut redis::Connection,
        nick: &str,
        claim: NickClaim,
    ) -> redis::RedisResult<ClaimOutcome> {
        let (status, session, kept): (String, Option<String>, Vec<String>) =
            redis::Script::new(CLAIM_SCRIPT)
                .key(nick_key(nick))
                .key(session_key(nick))
                .key(ACCOUNTS_KEY)
                .key(privates_key(&name_key(nick)))
                .arg(&self.node)
                .arg(NICK_TTL.as_secs())
                .arg(if claim.rename { "1" } else { "0" })
                .arg(if claim.owner { "1" } else { "0" })
                .arg(name_key(nick))
                .invoke(con)?;
        Ok(match status.as_str() {
            "inuse" => ClaimOutcome::InUse,
            "saved" => ClaimOutcome::Saved,
            "registered" => ClaimOutcome::Registered,
            _ => {
                let saved = session
                    .and_then(|json| serde_json::from_str::<StoredSession>(&json).ok())
                    .map(StoredSession::into_saved);
                let kept = kept
                    .iter()
                    .filter_map(|json| serde_json::from_str::<StoredPrivate>(json).ok())
                    .map(StoredPrivate::into_kept)
                    .collect();
                ClaimOutcome::Granted(Grant { saved, kept })
            }
        })
    }

    /// Keeps this node's nicks registered; warns about nicks another node took meanwhile.
    fn refresh(&mut self, con: &mut redis::Connection) -> redis::RedisResult<()> {
        let keys: Vec<(String, String)> = self
            .held
            .iter()
            .map(|key| (nick_key(key), session_key(key)))
            .collect();
        let script = redis::Script::new(REFRESH_SCRIPT);
        for chunk in keys.chunks(1000) {
            let mut invocation = script.prepare_invoke();
            for (nick, session) in chunk {
                invocation.key(nick).key(session);
            }
            invocation
                .arg(&self.node)
                .arg(NICK_TTL.as_secs())
                .arg(self.session_ttl.as_secs().max(1));
            let lost: Vec<String> = invocation.invoke(con)?;
            for key in lost {
                warn!("{key} is held by another node too (taken while this node was cut off)");
            }
        }
        // After the nicks, and never in their way: a Redis that cannot trim still serves.
        if let Err(e) = self.streams.trim_by_age(con) {
            warn!("cluster: could not trim the rooms' history by age: {e}");
        }
        Ok(())
    }
}
