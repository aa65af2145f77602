//! The output path's memory: this turn's lines, each stored once however many connections get
//! it ([`TurnOutput`], [`Span`]), and the pool of emptied buffers that connections borrow while
//! the socket has not taken all they owe ([`BufferPool`]).

/// Buffers bigger than this (grown by a burst) are freed instead of pooled.
const POOLED_CAPACITY: usize = 32 * 1024;
/// The pool holds at most this many bytes of buffer capacity.
const POOL_BYTES: usize = 8 * 1024 * 1024;
/// Span lists longer than this are freed instead of pooled.
const POOLED_SPANS: usize = 1024;
/// The pool holds at most this many span lists: more than the connections a process can have, so
/// a burst that reaches every connection each turn (a join storm in a big room) reuses lists
/// instead of churning the heap, which left it fragmented and the RSS of 19,000 idle connections
/// a third higher. The pool only ever holds lists that were in use in one turn, so it never
/// raises the peak, and it is freed after a quiet second.
const POOL_LISTS: usize = 65_536;

/// Empty output buffers kept for reuse by whichever connection next has output.
#[derive(Debug, Default)]
pub(crate) struct BufferPool {
    free: Vec<Vec<u8>>,
    /// Total capacity of `free`.
    bytes: usize,
    /// Empty span lists, likewise.
    spans: Vec<Vec<Span>>,
}

impl BufferPool {
    /// Bytes of buffer capacity the pool holds.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// An empty buffer, with capacity if one was pooled.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        match self.free.pop() {
            Some(buf) => {
                self.bytes -= buf.capacity();
                buf
            }
            None => Vec::new(),
        }
    }

    /// Takes back a buffer that is no longer needed; frees it if the pool is full or it is big.
    pub(crate) fn give(&mut self, mut buf: Vec<u8>) {
        let capacity = buf.capacity();
        if capacity == 0 || capacity > POOLED_CAPACITY || self.bytes + capacity > POOL_BYTES {
            return;
        }
        buf.clear();
        self.bytes += capacity;
        self.free.push(buf);
    }

    /// An empty span list, with capacity if one was pooled.
    pub(crate) fn take_spans(&mut self) -> Vec<Span> {
        self.spans.pop().unwrap_or_default()
    }

    /// Takes back a span list; frees it if the pool has enough or it is big.
    pub(crate) fn give_spans(&mut self, mut spans: Vec<Span>) {
        if spans.capacity() == 0
            || spans.capacity() > POOLED_SPANS
            || self.spans.len() >= POOL_LISTS
        {
            return;
        }
        spans.clear();
        self.spans.push(spans);
    }

    /// Frees every pooled buffer (the server has gone quiet).
    pub(crate) fn release(&mut self) {
        self.free = Vec::new();
        self.bytes = 0;
        self.spans = Vec::new();
    }
}

/// The lines queued in one loop turn, each stored once however many connections get it.
#[derive(Debug, Default)]
pub(crate) struct TurnOutput {
    /// Lines for many connections (room lines, presence), in the order they were made.
    shared: Vec<u8>,
    /// Lines for one connection (echoes, answers, errors), kept out of `shared` so that they do
    /// not split the room lines of a turn into one span each.
    direct: Vec<u8>,
}

/// Where a line lies in the [`TurnOutput`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: usize,
    len: u32,
    direct: bool,
}

impl Span {
    /// The length in bytes.
    pub(crate) fn len(self) -> usize {
        self.len as usize
    }

    /// `next` if it continues this span in the same buffer, merged into it.
    pub(crate) fn merge(&mut self, next: Span) -> bool {
        if self.direct == next.direct && self.start + self.len() == next.start {
            self.len += next.len;
            return true;
        }
        false
    }
}

impl TurnOutput {
    /// Stores `line` (for many connections) for this turn.
    pub(crate) fn store_shared(&mut self, line: &[u8]) -> Span {
        store_in(&mut self.shared, line, false)
    }

    /// Stores `line` (for one connection) for this turn.
    pub(crate) fn store_direct(&mut self, line: &[u8]) -> Span {
        store_in(&mut self.direct, line, true)
    }

    pub(crate) fn get(&self, span: Span) -> &[u8] {
        let bytes = if span.direct {
            &self.direct
        } else {
            &self.shared
        };
        &bytes[span.start..span.start + span.len()]
    }

    /// Forgets the turn's lines; every connection has taken its spans by now.
    pub(crate) fn clear(&mut self) {
        self.shared.clear();
        self.direct.clear();
    }
}

fn store_in(bytes: &mut Vec<u8>, line: &[u8], direct: bool) -> Span {
    let start = bytes.len();
    bytes.extend_from_slice(line);
    Span {
        start,
        // A line is at most --max-line (1 MiB) plus a prefix, or a list of 200 names: far below
        // 4 GiB, so the length always fits.
        len: u32::try_from(line.len()).unwrap_or(u32::MAX),
        direct,
    }
}
