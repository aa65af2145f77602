//! The password worker: argon2id hashing and checking on a thread of its own, so the poll loop
//! never waits for it, and (with a store) the durable write of a registration before the
//! user is told.
//!
//! Jobs queue in a bounded channel; past [`QUEUE`] jobs the chat is told at once that the
//! server is busy (a burst of logins cannot pile up memory or latency without bound). Each
//! answer wakes the loop, which hands it to [`crate::chat::Chat::finish_auth`].

use std::io;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use log::warn;
use mio::Waker;

use crate::chat::{Account, AuthAnswer, AuthJob, ClientId};

/// Jobs waiting for the worker at most.
const QUEUE: usize = 64;

/// Argon2id memory cost in KiB: 19 MiB, the OWASP minimum for argon2id. With [`ITERATIONS`]
/// one hash takes about 35 ms on the 2-core machine it was measured on (docs/ACCOUNTS.md).
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id passes over the memory.
pub const ITERATIONS: u32 = 2;
/// Argon2id lanes: one, since the worker is one thread.
pub const LANES: u32 = 1;

/// Writes account changes where they survive a restart; called by the worker, off the loop,
/// before the user is told.
pub trait AccountWriter: Send {
    /// Saves (or replaces) the account of nick `nick` (a key), durably.
    fn save(&mut self, nick: &str, account: &Account) -> io::Result<()>;
    /// Removes the account of nick `nick` (a key), durably.
    fn remove(&mut self, nick: &str) -> io::Result<()>;
}

/// One job with the client and ticket its answer goes back to.
struct Request {
    client: ClientId,
    ticket: u64,
    job: AuthJob,
}

/// An answer for the loop to hand to the chat.
pub(crate) struct Answer {
    /// The client that asked.
    pub(crate) client: ClientId,
    /// The chat's ticket for the job.
    pub(crate) ticket: u64,
    /// What came of it.
    pub(crate) answer: AuthAnswer,
}

/// The worker thread and its two channels.
pub(crate) struct AuthWorker {
    jobs: Option<SyncSender<Request>>,
    answers: Receiver<Answer>,
    thread: Option<JoinHandle<()>>,
}

impl AuthWorker {
    /// Starts the worker; it wakes the loop through `waker` with each answer, and saves
    /// registrations through `writer` if there is one.
    pub(crate) fn start(
        waker: Arc<Waker>,
        writer: Option<Box<dyn AccountWriter>>,
    ) -> io::Result<Self> {
        let (jobs, job_queue) = mpsc::sync_channel(QUEUE);
        let (answer_sender, answers) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("passwords".into())
            .spawn(move || work(&job_queue, &answer_sender, &waker, writer))?;
        Ok(Self {
            jobs: Some(jobs),
            answers,
            thread: Some(thread),
        })
    }

    /// Queues `job`; false if the queue is full or the worker is gone.
    pub(crate) fn submit(&self, client: ClientId, ticket: u64, job: AuthJob) -> bool {
        let Some(jobs) = &self.jobs else {
            return false;
        };
        match jobs.try_send(Request {
            client,
            ticket,
            job,
        }) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                warn!("password jobs: {QUEUE} waiting, refusing more");
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// The answers that arrived since the last call.
    pub(crate) fn answers(&self) -> Vec<Answer> {
        self.answers.try_iter().collect()
    }

    /// Lets the job under way finish, then ends the thread.
    pub(crate) fn stop(mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!("the password worker panicked");
            }
        }
    }
}

/// The worker's loop: one job at a time until the loop drops its sender.
fn work(
    jobs: &Receiver<Request>,
    answers: &Sender<Answer>,
    waker: &Waker,
    mut writer: Option<Box<dyn AccountWriter>>,
) {
    let argon2 = match Params::new(MEMORY_KIB, ITERATIONS, LANES, None) {
        Ok(params) => Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
        Err(e) => {
            warn!("argon2 parameters refused ({e}); using the crate's defaults");
            Argon2::default()
        }
    };
    while let Ok(request) = jobs.recv() {
        let answer = match request.job {
            AuthJob::Register {
                nick,
                display,
                password,
            } => register(&argon2, &mut writer, &nick, display, &password),
            AuthJob::Verify { password, hash } => verify(&argon2, &password, &hash),
            AuthJob::Unregister { nick } => match writer.as_mut().map(|w| w.remove(&nick)) {
                Some(Err(e)) => failed("could not save", &e),
                _ => AuthAnswer::Unregistered,
            },
        };
        let answer = Answer {
            client: request.client,
            ticket: request.ticket,
            answer,
        };
        if answers.send(answer).is_err() {
            return;
        }
        if let Err(e) = waker.wake() {
            warn!("password worker could not wake the loop: {e}");
        }
    }
}

/// Hashes `password` with a fresh salt and saves the account.
fn register(
    argon2: &Argon2<'_>,
    writer: &mut Option<Box<dyn AccountWriter>>,
    nick: &str,
    display: String,
    password: &str,
) -> AuthAnswer {
    let mut salt = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut salt) {
        return failed("no randomness for a salt", &e);
    }
    let salt = match SaltString::encode_b64(&salt) {
        Ok(salt) => salt,
        Err(e) => return failed("could not encode a salt", &e),
    };
    let hash = match argon2.hash_password(password.as_bytes(), &salt) {
        Ok(hash) => hash.to_string(),
        Err(e) => return failed("could not hash", &e),
    };
    if let Some(writer) = writer {
        let account = Account {
            display,
            password_hash: hash.clone(),
        };
        if let Err(e) = writer.save(nick, &account) {
            return failed("could not save", &e);
        }
    }
    AuthAnswer::Registered(hash)
}

/// Checks `password` against the PHC string `hash` (with the parameters stored in it).
fn verify(argon2: &Argon2<'_>, password: &str, hash: &str) -> AuthAnswer {
    match PasswordHash::new(hash) {
        Ok(parsed) => {
            AuthAnswer::Verified(argon2.verify_password(password.as_bytes(), &parsed).is_ok())
        }
        Err(e) => failed("stored hash unreadable", &e),
    }
}

/// Logs `error` and answers with `what` (never the password).
fn failed(what: &str, error: &dyn std::fmt::Display) -> AuthAnswer {
    warn!("password worker: {what}: {error}");
    AuthAnswer::Failed(what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Waits for the next answer, up to a generous deadline.
    fn next_answer(worker: &AuthWorker) -> AuthAnswer {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(answer) = worker.answers().pop() {
                return answer.answer;
            }
            assert!(std::time::Instant::now() < deadline, "no answer");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn hashes_with_argon2id_and_checks_passwords() -> io::Result<()> {
        let poll = mio::Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0))?);
        let worker = AuthWorker::start(waker, None)?;
        let register = AuthJob::Register {
            nick: "алиса".into(),
            display: "Алиса".into(),
            password: "correct horse".into(),
        };
        assert!(worker.submit(ClientId::new(1), 7, register));
        let AuthAnswer::Registered(hash) = next_answer(&worker) else {
            panic!("not registered");
        };
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(!hash.contains("correct horse"));
        for (password, right) in [("correct horse", true), ("wrong", false), ("", false)] {
            let verify = AuthJob::Verify {
                password: password.into(),
                hash: hash.clone(),
            };
            assert!(worker.submit(ClientId::new(1), 8, verify));
            assert_eq!(next_answer(&worker), AuthAnswer::Verified(right));
        }
        let garbage = AuthJob::Verify {
            password: "x".into(),
            hash: "not a hash".into(),
        };
        assert!(worker.submit(ClientId::new(1), 9, garbage));
        assert!(matches!(next_answer(&worker), AuthAnswer::Failed(_)));
        worker.stop();
        Ok(())
    }
}
