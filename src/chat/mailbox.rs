//! Private messages kept for users who are away, delivered when they return.

use std::collections::{HashMap, VecDeque};

/// The most messages kept for one recipient.
pub(crate) const MAILBOX_LIMIT: usize = 100;

/// One kept private message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptPrivate {
    /// When the server received it, in milliseconds since the Unix epoch (UTC).
    pub at_ms: u64,
    /// The sender's nick.
    pub from: String,
    /// The text.
    pub text: String,
}

/// Kept private messages by the recipient's nick key.
#[derive(Debug, Default)]
pub(crate) struct Mailboxes {
    boxes: HashMap<String, VecDeque<KeptPrivate>>,
}

impl Mailboxes {
    /// Whether nick `key`'s mailbox takes another message.
    pub(crate) fn has_room(&self, key: &str) -> bool {
        self.boxes
            .get(key)
            .is_none_or(|kept| kept.len() < MAILBOX_LIMIT)
    }

    /// Keeps `message` for nick `key`; false if that nick's mailbox is full.
    pub(crate) fn keep(&mut self, key: &str, message: KeptPrivate) -> bool {
        let mailbox = self.boxes.entry(key.to_string()).or_default();
        if mailbox.len() >= MAILBOX_LIMIT {
            return false;
        }
        mailbox.push_back(message);
        true
    }

    /// Takes everything kept for nick `key`, oldest first.
    pub(crate) fn take(&mut self, key: &str) -> Vec<KeptPrivate> {
        self.boxes.remove(key).map(Vec::from).unwrap_or_default()
    }

    /// Forgets what was kept for nick `key`; false if there was nothing.
    pub(crate) fn forget(&mut self, key: &str) -> bool {
        self.boxes.remove(key).is_some()
    }

    /// Every mailbox, for storage.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &VecDeque<KeptPrivate>)> {
        self.boxes.iter().map(|(key, kept)| (key.as_str(), kept))
    }
}
