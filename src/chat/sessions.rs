//! Saved sessions: what is kept of a departed user so that `/nick` can restore it.
//!
//! [`SavedSessions`] owns the one rule that matters here: every saved session has exactly one
//! entry in the expiry order and every entry there names a saved session. Saving, restoring,
//! evicting (past the cap) and expiring (past the TTL) all go through [`SavedSessions::insert`]
//! and [`SavedSessions::remove`], so the two never drift apart.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::SavedRooms;

/// One saved session.
#[derive(Debug)]
struct Saved {
    rooms: SavedRooms,
    /// Its place in the expiry order; `None` for a registered nick's session, which neither
    /// expires nor counts against the cap.
    seq: Option<u64>,
    saved_at: Instant,
}

/// Saved sessions by nick key, with a TTL and a cap on their number.
#[derive(Debug)]
pub(crate) struct SavedSessions {
    by_key: HashMap<String, Saved>,
    /// Saved sessions by age: the TTL is the same for all, so the oldest expires first.
    expiry: BTreeMap<u64, String>,
    next_seq: u64,
    ttl: Duration,
    cap: usize,
}

impl SavedSessions {
    /// Sessions that last `ttl`, at most `cap` of them.
    pub(crate) fn new(ttl: Duration, cap: usize) -> Self {
        Self {
            by_key: HashMap::new(),
            expiry: BTreeMap::new(),
            next_seq: 0,
            ttl,
            cap,
        }
    }

    /// Number of saved sessions (some may have expired since the last [`Self::expire`]).
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Saves `rooms` for nick `key` (replacing what was saved for it); a `pinned` session (a
    /// registered nick's) never expires. Past the cap the oldest unpinned sessions are
    /// forgotten, and their nick keys returned.
    pub(crate) fn save(
        &mut self,
        key: String,
        rooms: SavedRooms,
        now: Instant,
        pinned: bool,
    ) -> Vec<String> {
        self.remove(&key);
        let seq = (!pinned).then(|| {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.expiry.insert(seq, key.clone());
            seq
        });
        let saved = Saved {
            rooms,
            seq,
            saved_at: now,
        };
        self.by_key.insert(key, saved);
        let mut evicted = Vec::new();
        while self.expiry.len() > self.cap {
            match self.drop_oldest() {
                Some(key) => evicted.push(key),
                None => break,
            }
        }
        evicted
    }

    /// Whether nick `key` has an unexpired saved session.
    pub(crate) fn contains(&self, key: &str, now: Instant) -> bool {
        self.by_key
            .get(key)
            .is_some_and(|s| s.seq.is_none() || now.duration_since(s.saved_at) < self.ttl)
    }

    /// Removes and returns the unexpired saved session of nick `key`.
    pub(crate) fn take(&mut self, key: &str, now: Instant) -> Option<SavedRooms> {
        if !self.contains(key, now) {
            return None;
        }
        self.remove(key)
    }

    /// Drops the sessions older than the TTL and returns their nick keys. Cheap when nothing
    /// expires.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<String> {
        let mut expired = Vec::new();
        while let Some((_, key)) = self.expiry.first_key_value() {
            if self.contains(key, now) {
                break;
            }
            expired.extend(self.drop_oldest());
        }
        expired
    }

    /// Forgets the oldest session, returning its nick key.
    fn drop_oldest(&mut self) -> Option<String> {
        let (_, key) = self.expiry.pop_first()?;
        self.by_key.remove(&key);
        Some(key)
    }

    /// Every saved session, for storage.
    pub(crate) fn all(&self) -> Vec<(String, SavedRooms)> {
        self.by_key
            .iter()
            .map(|(key, saved)| (key.clone(), saved.rooms.clone()))
            .collect()
    }

    /// Removes the session of `key` and its expiry entry together.
    fn remove(&mut self, key: &str) -> Option<SavedRooms> {
        let saved = self.by_key.remove(key)?;
        if let Some(seq) = saved.seq {
            self.expiry.remove(&seq);
        }
        Some(saved.rooms)
    }

    /// The rule of this type (see the module documentation): every saved session but a
    /// pinned one has exactly one expiry entry and every expiry entry names a saved session;
    /// and the cap holds for the unpinned ones.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn check(&self) -> Result<(), String> {
        let unpinned = self.by_key.values().filter(|s| s.seq.is_some()).count();
        let (entries, cap) = (self.expiry.len(), self.cap);
        if entries != unpinned || unpinned > cap {
            return Err(format!(
                "{unpinned} unpinned saved, {entries} in the expiry order, cap {cap}"
            ));
        }
        for (key, saved) in &self.by_key {
            let Some(seq) = saved.seq else {
                continue;
            };
            if self.expiry.get(&seq) != Some(key) || seq >= self.next_seq {
                return Err(format!("saved session {key:?} is not in the expiry order"));
            }
        }
        Ok(())
    }

    /// The nick keys with a saved session (for [`super::Chat::check_invariants_at`]).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.by_key.keys().map(String::as_str)
    }

    /// The size of the expiry index (for tests of the invariant).
    #[cfg(test)]
    pub(crate) fn expiry_len(&self) -> usize {
        self.expiry.len()
    }
}
