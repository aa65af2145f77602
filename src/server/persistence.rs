//! The data dir in the loop: opened (and the chat restored from it) before the listener
//! serves, fed every turn, and closed after the goodbyes, so a graceful stop loses nothing.

use std::io::{self, ErrorKind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::info;
use mio::Waker;

use super::Server;
use crate::chat::Chat;
use crate::config::Config;
use crate::store::Store;

/// How soon the loop retries a backlog the storage thread's queue did not take, when idle.
const BACKLOG_RETRY: Duration = Duration::from_millis(10);

/// Opens `--data-dir`, if given, and gives `chat` back what it holds.
pub(super) fn open_store(
    config: &Config,
    waker: &Arc<Waker>,
    chat: &mut Chat,
) -> io::Result<Option<Store>> {
    let Some(dir) = &config.data_dir else {
        return Ok(None);
    };
    if config.redis.is_some() {
        // A node's sessions live in Redis; two places deciding which session is current
        // would disagree after a restart.
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            "--data-dir cannot be combined with --redis (cluster mode keeps sessions in Redis)",
        ));
    }
    let (mut store, snapshot) = Store::open(dir, Some(Arc::clone(waker)))?;
    let loaded = (
        snapshot.rooms.iter().map(|r| r.messages.len()).sum(),
        snapshot.sessions.len(),
        snapshot.privates.iter().map(|(_, kept)| kept.len()).sum(),
    );
    chat.restore(snapshot, Instant::now());
    // Bounds lowered since the last run (--history, --max-saved-sessions, TTL) dropped some
    // of it at load: write what is left, or the data dir would keep it for good.
    if chat.stored_counts() != loaded {
        info!("store: the current bounds dropped some of the stored state; writing the rest");
        store.resync(chat.snapshot());
    }
    Ok(Some(store))
}

impl Server {
    /// Each turn: hands the storage thread what waits in the backlog, and the whole state if
    /// it needs it.
    pub(super) fn feed_store(&mut self) {
        let Some(store) = self.delivery.store.as_mut() else {
            return;
        };
        store.retry();
        if store.wants_state() {
            store.resync(self.chat.snapshot());
        }
    }

    /// When to retry a backlog even if nothing happens.
    pub(super) fn store_retry_at(&self) -> Option<Instant> {
        let store = self.delivery.store.as_ref()?;
        store.has_backlog().then(|| Instant::now() + BACKLOG_RETRY)
    }

    /// After the goodbyes: waits until the storage thread committed everything (the sessions
    /// the stop saved included) and closed the database.
    pub(super) fn close_store(&mut self) -> io::Result<()> {
        let Some(store) = self.delivery.store.take() else {
            return Ok(());
        };
        let chat = &self.chat;
        store.close(|| chat.snapshot())?;
        info!("store: everything committed; data dir closed");
        Ok(())
    }
}
