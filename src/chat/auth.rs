//! Owned nicks in the chat: logging in with a password or a resume token, taking a nick over
//! from a live connection, and the answers to the auth jobs that register, re-password and
//! unregister nicks.

use std::time::Instant;

use log::info;

use super::accounts::TOKEN_CHARS;
use super::clients::{AuthOp, Pending, Waiting};
use super::{messages, Account, AuthAnswer, AuthJob, Change, Chat, ClientId, NickClaim, Outbox};

impl Chat {
    /// Hands `job` out; the client's next lines wait for its answer. Refused at once if the
    /// outbox cannot take it (no accounts here, or too busy).
    pub(super) fn start_auth(
        &mut self,
        id: ClientId,
        op: AuthOp,
        job: AuthJob,
        out: &mut impl Outbox,
    ) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if !out.authenticate(id, ticket, job) {
            out.send(id, messages::accounts_unavailable(&mut self.line));
            return;
        }
        self.auth_jobs.insert(ticket, op);
        if let Some(client) = self.clients.get_mut(id) {
            client.pending = Some(Box::new(Pending {
                waiting: Waiting::Auth(ticket),
                queued: Vec::new(),
            }));
        }
    }

    /// The answer to the auth job `ticket` of client `id`.
    ///
    /// Registrations take effect even if the client left meanwhile (the store already has
    /// them); what the client is told, and the lines it sent meanwhile, wait for this.
    pub fn finish_auth(
        &mut self,
        id: ClientId,
        ticket: u64,
        answer: AuthAnswer,
        now: Instant,
        out: &mut impl Outbox,
    ) {
        let Some(op) = self.auth_jobs.remove(&ticket) else {
            return;
        };
        let pending = self.clients.get_mut(id).and_then(|c| {
            c.pending
                .take_if(|p| matches!(p.waiting, Waiting::Auth(t) if t == ticket))
        });
        let reply = match (op, answer) {
            (
                AuthOp::Register(key, display) | AuthOp::ChangePassword(key, display),
                AuthAnswer::Registered(hash),
            ) => {
                let changed = self.accounts.is_registered(&key);
                let account = Account {
                    display: display.clone(),
                    password_hash: hash,
                };
                out.store(&Change::AccountSaved {
                    nick: &key,
                    account: &account,
                });
                self.accounts.insert(key, account);
                if changed {
                    info!("nick {display} changed its password");
                    Reply::PasswordChanged(display)
                } else {
                    info!("nick {display} registered");
                    Reply::Registered(display)
                }
            }
            (AuthOp::Unregister(key, display), AuthAnswer::Unregistered) => {
                out.store(&Change::AccountRemoved { nick: &key });
                self.accounts.remove(&key);
                info!("nick {display} unregistered");
                Reply::Unregistered(display)
            }
            (AuthOp::Login(display, key), AuthAnswer::Verified(true)) => {
                info!("login as {display}: right password");
                self.accounts.right_password(&key);
                if pending.is_some() {
                    self.complete_login(id, &display, key, now, out);
                }
                Reply::Nothing
            }
            (AuthOp::Login(display, key), AuthAnswer::Verified(false)) => {
                let locked = self.accounts.wrong_password(&key, now);
                let locked = if locked { "; nick locked" } else { "" };
                info!("login as {display}: wrong password{locked}");
                Reply::WrongPassword(display)
            }
            (_, AuthAnswer::Failed(reason)) => Reply::Failed(reason),
            (op, answer) => {
                log::warn!("auth answer {answer:?} does not fit {op:?}");
                Reply::Failed("unexpected answer".to_string())
            }
        };
        let Some(pending) = pending else {
            return;
        };
        let line = &mut self.line;
        let reply = match &reply {
            Reply::Registered(nick) => Some(messages::registered(line, nick)),
            Reply::PasswordChanged(nick) => Some(messages::password_changed(line, nick)),
            Reply::Unregistered(nick) => Some(messages::unregistered(line, nick)),
            Reply::WrongPassword(nick) => Some(messages::wrong_password(line, nick)),
            Reply::Failed(reason) => Some(messages::auth_failed(line, reason)),
            Reply::Nothing => None,
        };
        if let Some(reply) = reply {
            out.send(id, reply);
        }
        self.handle_queued(id, pending.queued, now, out);
    }

    /// `/nick NAME SECRET`: SECRET is a resume token or the password of a registered NAME.
    /// For a nick nobody registered, a secret that is not one of its tokens changes nothing:
    /// the nick is taken as by `/nick NAME`.
    pub(super) fn log_in_with_secret(
        &mut self,
        id: ClientId,
        name: &str,
        key: String,
        secret: &str,
        now: Instant,
        out: &mut impl Outbox,
    ) -> bool {
        // A live token first: 128 random bits cannot be guessed, so a lockout caused by
        // someone else's guesses does not keep the owner out.
        if self.accounts.use_token(&key, secret) {
            info!("login as {name}: resume token");
            self.accounts.right_password(&key);
            self.complete_login(id, name, key, now, out);
            return true;
        }
        if !self.accounts.is_registered(&key) {
            return false;
        }
        // A stale token (they work once, and a restart forgets them) is never taken for a
        // wrong password: that would let a reconnecting client lock its own nick.
        if looks_like_token(secret) {
            info!("login as {name}: stale resume token");
            out.send(id, messages::stale_token(&mut self.line, name));
            return true;
        }
        if let Some(left) = self.accounts.locked_for(&key, now) {
            info!("login as {name}: refused, nick locked");
            out.send(
                id,
                messages::locked(&mut self.line, name, left.as_secs().max(1)),
            );
            return true;
        }
        let Some(account) = self.accounts.get(&key) else {
            return false;
        };
        let job = AuthJob::Verify {
            password: secret.to_string(),
            hash: account.password_hash.clone(),
        };
        self.start_auth(id, AuthOp::Login(name.to_string(), key), job, out);
        true
    }

    /// The client proved it owns `name`: it takes the nick, from a live connection of this
    /// node holding it if need be (typically its own half-open old one), with the saved
    /// session.
    fn complete_login(
        &mut self,
        id: ClientId,
        name: &str,
        key: String,
        now: Instant,
        out: &mut impl Outbox,
    ) {
        if let Some(holder) = self.clients.holder(&key).filter(|&h| h != id) {
            info!("{name} logged in again; closing the old connection");
            out.send(holder, messages::taken_over(&mut self.line, name));
            out.close(holder);
            self.disconnect(holder, now, out);
        }
        if self.config.shared_registry {
            // The registry decides, and restores the session saved anywhere in the cluster. A
            // connection holding the nick on another node is not taken over: `! in use`.
            let claim = NickClaim {
                rename: self.clients.nick_of(id).is_some(),
                owner: true,
            };
            self.start_claim(id, name, claim, out);
            return;
        }
        self.take_nick(id, name, key, now, out);
    }
}

/// What the client whose auth job was answered is told.
enum Reply {
    Registered(String),
    PasswordChanged(String),
    Unregistered(String),
    WrongPassword(String),
    Failed(String),
    Nothing,
}

/// Whether `secret` has the shape of a resume token (22 characters of base64url); passwords
/// of that shape are refused, so the two never mix.
pub(super) fn looks_like_token(secret: &str) -> bool {
    secret.len() == TOKEN_CHARS
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
