//! Typed identifiers, so that a client and a room can never be swapped for each other.

/// Identifies one client connection; the poll loop uses its slab key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(usize);

impl ClientId {
    /// The client at `index` (the poll loop's slab key).
    pub const fn new(index: usize) -> Self {
        Self(index)
    }

    /// The index this id was made from.
    pub const fn index(self) -> usize {
        self.0
    }
}

/// Identifies one room of this node's chat (its key in the room slab).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RoomId(pub(crate) usize);
