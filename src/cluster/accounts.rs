//! Registered nicks in Redis: one hash (`chat:accounts`, field: the nick's key, value: JSON
//! with the nick as its owner spells it and the argon2id hash), written by the password
//! worker before the user is told (the [`AccountWriter`] here), read by every node at start,
//! and announced on the events channel so every node knows every registration at once.

use std::io;

use log::{info, warn};
use serde::{Deserialize, Serialize};

use super::connect;
use crate::chat::Account;
use crate::server::AccountWriter;

/// The hash of every registered nick.
pub const ACCOUNTS_KEY: &str = "chat:accounts";

/// An account as stored in Redis and sent to other nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAccount {
    /// The nick as its owner spelled it.
    pub display: String,
    /// The password's argon2id hash (PHC string).
    pub hash: String,
}

impl StoredAccount {
    /// What is stored of `account`.
    pub fn of(account: &Account) -> Self {
        Self {
            display: account.display.clone(),
            hash: account.password_hash.clone(),
        }
    }

    /// The account.
    pub fn into_account(self) -> Account {
        Account {
            display: self.display,
            password_hash: self.hash,
        }
    }
}

/// Writes registrations to Redis from the password worker's thread, on a connection of its
/// own (every call bounded by the I/O timeout; reconnected once when a call fails).
pub struct RedisAccounts {
    client: redis::Client,
    connection: Option<redis::Connection>,
}

impl RedisAccounts {
    /// A writer for the Redis of `client` (connected on first use).
    pub fn new(client: redis::Client) -> Self {
        Self {
            client,
            connection: None,
        }
    }

    /// Runs `command`, on a fresh connection if the current one fails (Redis may have
    /// restarted since it was last used).
    fn run(&mut self, command: &redis::Cmd) -> io::Result<()> {
        for _ in 0..2 {
            let connection = match self.connection.take() {
                Some(connection) => connection,
                None => connect(&self.client).map_err(io::Error::other)?,
            };
            let mut connection = connection;
            match command.exec(&mut connection) {
                Ok(()) => {
                    self.connection = Some(connection);
                    return Ok(());
                }
                Err(e) if e.is_io_error() || e.is_connection_dropped() => {
                    warn!("Redis (accounts): {e}; reconnecting");
                }
                Err(e) => return Err(io::Error::other(e)),
            }
        }
        Err(io::Error::other("Redis connection lost twice"))
    }
}

impl AccountWriter for RedisAccounts {
    fn save(&mut self, nick: &str, account: &Account) -> io::Result<()> {
        let value = serde_json::to_string(&StoredAccount::of(account)).map_err(io::Error::other)?;
        let mut command = redis::cmd("HSET");
        command.arg(ACCOUNTS_KEY).arg(nick).arg(value);
        self.run(&command)
    }

    fn remove(&mut self, nick: &str) -> io::Result<()> {
        let mut command = redis::cmd("HDEL");
        command.arg(ACCOUNTS_KEY).arg(nick);
        self.run(&command)
    }
}

/// Every registered nick, by key (entries that cannot be read are skipped with a warning).
pub fn load(con: &mut redis::Connection) -> redis::RedisResult<Vec<(String, Account)>> {
    let stored: Vec<(String, String)> = redis::cmd("HGETALL").arg(ACCOUNTS_KEY).query(con)?;
    let mut accounts = Vec::with_capacity(stored.len());
    for (key, value) in stored {
        match serde_json::from_str::<StoredAccount>(&value) {
            Ok(account) => accounts.push((key, account.into_account())),
            Err(e) => warn!("cluster: registered nick {key} unreadable in Redis ({e}); skipped"),
        }
    }
    info!("cluster: {} registered nicks in Redis", accounts.len());
    Ok(accounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_survives_its_stored_form() {
        let account = Account {
            display: "Алиса".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        };
        let json = serde_json::to_string(&StoredAccount::of(&account)).expect("encodes");
        let back: StoredAccount = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back.into_account(), account);
        assert!(serde_json::from_str::<StoredAccount>("{}").is_err());
    }
}
