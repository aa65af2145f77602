//! Owned nicks: registrations (password hashes), the lockout after wrong passwords, and
//! one-use resume tokens.
//!
//! Hashing and checking passwords is slow on purpose (argon2id), so the chat never does it: it
//! hands an [`AuthJob`] to the outbox and gets the [`AuthAnswer`] back later through
//! [`super::Chat::finish_auth`]. Tokens are random and long, so a fast hash (SHA-256) is safe
//! for them and is checked right away.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Wrong passwords for one nick within [`LOCKOUT_WINDOW`] that lock it.
pub(crate) const LOCKOUT_FAILURES: usize = 5;
/// The window in which wrong passwords are counted.
const LOCKOUT_WINDOW: Duration = Duration::from_secs(60);
/// How long a locked nick refuses every attempt.
pub(crate) const LOCKOUT: Duration = Duration::from_secs(60);
/// Resume tokens kept per nick (a user with several devices); the oldest goes first.
const TOKENS_PER_NICK: usize = 4;
/// The shortest string that can be a token (128 bits in base64url).
pub(crate) const TOKEN_CHARS: usize = 22;

/// A registered nick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The nick as its owner spelled it.
    pub display: String,
    /// Its password's argon2id hash, in the PHC string format.
    pub password_hash: String,
}

/// Work the chat asks for: hashing or checking a password, and (for registrations) writing
/// the result where it survives a restart before the chat tells the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthJob {
    /// Hash `password` and save it as the account of `nick` (a key) spelled `display`.
    Register {
        /// The nick's key.
        nick: String,
        /// The nick as shown.
        display: String,
        /// The password in clear; it is only ever hashed.
        password: String,
    },
    /// Check `password` against `hash`.
    Verify {
        /// The password in clear.
        password: String,
        /// The account's PHC string.
        hash: String,
    },
    /// Forget the account of `nick` (a key).
    Unregister {
        /// The nick's key.
        nick: String,
    },
}

/// The answer to an [`AuthJob`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthAnswer {
    /// `Register`: the hash, now saved.
    Registered(String),
    /// `Verify`: whether the password was right.
    Verified(bool),
    /// `Unregister`: the account is gone.
    Unregistered,
    /// The job could not be done (storage failed, or the server is too busy); the text is for
    /// the log and the user.
    Failed(String),
}

/// Wrong passwords for one nick, and the lockout they caused.
#[derive(Debug, Default)]
struct Attempts {
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

/// Registrations, lockouts and tokens by nick key.
#[derive(Debug, Default)]
pub(crate) struct Accounts {
    accounts: HashMap<String, Account>,
    attempts: HashMap<String, Attempts>,
    /// SHA-256 of each live token.
    tokens: HashMap<String, VecDeque<[u8; 32]>>,
}

impl Accounts {
    /// The account of nick `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&Account> {
        self.accounts.get(key)
    }

    /// Whether nick `key` is registered.
    pub(crate) fn is_registered(&self, key: &str) -> bool {
        self.accounts.contains_key(key)
    }

    /// Registers nick `key` (or changes its password).
    pub(crate) fn insert(&mut self, key: String, account: Account) {
        self.accounts.insert(key, account);
    }

    /// Removes the registration of nick `key`.
    pub(crate) fn remove(&mut self, key: &str) -> bool {
        self.accounts.remove(key).is_some()
    }

    /// Every account, for storage.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Account)> {
        self.accounts
            .iter()
            .map(|(key, account)| (key.as_str(), account))
    }

    /// If nick `key` is locked at `now`, how long it stays locked.
    pub(crate) fn locked_for(&self, key: &str, now: Instant) -> Option<Duration> {
        let until = self.attempts.get(key)?.locked_until?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    /// Counts a wrong password for nick `key`; true if that locked it.
    pub(crate) fn wrong_password(&mut self, key: &str, now: Instant) -> bool {
        let attempts = self.attempts.entry(key.to_string()).or_default();
        while attempts
            .failures
            .front()
            .is_some_and(|&at| now.duration_since(at) >= LOCKOUT_WINDOW)
        {
            attempts.failures.pop_front();
        }
        attempts.failures.push_back(now);
        if attempts.failures.len() >= LOCKOUT_FAILURES {
            attempts.failures.clear();
            attempts.locked_until = Some(now + LOCKOUT);
            return true;
        }
        false
    }

    /// A right password or token for nick `key`: its count of wrong ones starts over.
    pub(crate) fn right_password(&mut self, key: &str) {
        self.attempts.remove(key);
    }

    /// Forgets attempts that no longer matter (called now and then, so the map stays small).
    pub(crate) fn expire_attempts(&mut self, now: Instant) {
        self.attempts.retain(|_, a| {
            a.locked_until.is_some_and(|until| until > now)
                || a.failures
                    .back()
                    .is_some_and(|&at| now.duration_since(at) < LOCKOUT_WINDOW)
        });
    }

    /// A new resume token for nick `key`: 128 random bits from the OS in base64url. Only its
    /// hash is kept. `None` if the OS has no randomness to give.
    pub(crate) fn new_token(&mut self, key: &str) -> Option<String> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).ok()?;
        let token = base64url(&bytes);
        let tokens = self.tokens.entry(key.to_string()).or_default();
        if tokens.len() >= TOKENS_PER_NICK {
            tokens.pop_front();
        }
        tokens.push_back(Sha256::digest(token.as_bytes()).into());
        Some(token)
    }

    /// Whether `secret` is a live token of nick `key`; a token works once, so it is used up.
    pub(crate) fn use_token(&mut self, key: &str, secret: &str) -> bool {
        if secret.len() < TOKEN_CHARS {
            return false;
        }
        let Some(tokens) = self.tokens.get_mut(key) else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let Some(position) = tokens.iter().position(|t| *t == digest) else {
            return false;
        };
        tokens.remove(position);
        if tokens.is_empty() {
            self.tokens.remove(key);
        }
        true
    }
}

/// Base64 with the URL-safe alphabet and no padding.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            let index = (n >> (18 - 6 * i)) & 63;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_encodes_like_rfc_4648() {
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn tokens_are_long_random_and_work_once() {
        let mut accounts = Accounts::default();
        let token = accounts.new_token("alice").expect("randomness");
        assert_eq!(token.len(), TOKEN_CHARS);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(accounts.new_token("alice"), Some(token.clone()));
        assert!(!accounts.use_token("bob", &token));
        assert!(accounts.use_token("alice", &token));
        assert!(!accounts.use_token("alice", &token), "a token works once");
    }

    #[test]
    fn five_wrong_passwords_in_a_minute_lock_the_nick_for_a_minute() {
        let mut accounts = Accounts::default();
        let start = Instant::now();
        for n in 0..4 {
            assert!(!accounts.wrong_password("a", start + Duration::from_secs(n)));
        }
        assert_eq!(accounts.locked_for("a", start), None);
        assert!(accounts.wrong_password("a", start + Duration::from_secs(10)));
        let locked = accounts.locked_for("a", start + Duration::from_secs(20));
        assert_eq!(locked, Some(Duration::from_secs(50)));
        assert_eq!(
            accounts.locked_for("a", start + Duration::from_secs(70)),
            None
        );
        // Spread over more than a minute, wrong passwords do not add up.
        for n in 0..6 {
            let at = start + Duration::from_secs(100 + 30 * n);
            assert!(!accounts.wrong_password("b", at));
        }
    }
}
