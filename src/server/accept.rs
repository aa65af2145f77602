//! Accepting clients, and turning them away: `! server full` when the connection limit or the
//! process's file descriptors are used up, `! too many connections from your address` past
//! `--max-per-ip`. A client turned away gets its line, then end of file; its socket is kept
//! until it closes too (`linger.rs`), so the line is not lost to a reset.

use std::fs::File;
use std::io::{self, ErrorKind, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};
use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};

use super::connection::{is_transient, Connection};
use super::linger::drain_now;
use super::metrics::Disconnect;
use super::per_address::PerAddress;
use super::Server;
use crate::chat::{ClientId, SERVER_BUSY, SERVER_FULL};

/// Listen backlog; the kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 4096;
/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// At most one "server full" warning is logged per this interval.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What came of trying to turn a client away while out of file descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TurnAway {
    /// A client was told the server is full and closed.
    Done,
    /// The backlog was empty.
    NobodyWaiting,
    /// No descriptor could be freed for it; accepting pauses briefly.
    Failed,
}

/// Why a client is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `--max-connections` reached, or no file descriptor left.
    Full,
    /// `--max-per-ip` connections from its address already.
    PerAddress,
    /// The process is near its memory limit.
    Memory,
}

/// The listener and the rules for who may come in.
pub(super) struct Admission {
    /// `None` once the server is shutting down.
    listener: Option<TcpListener>,
    max_connections: usize,
    /// Connections by client address, for `--max-per-ip`.
    per_address: PerAddress,
    /// Closed while the process is out of descriptors, to accept and turn one client away.
    spare_fd: Option<File>,
    paused_until: Option<Instant>,
    /// Clients turned away since the last warning about it, and when that was.
    refused: u64,
    last_refusal_warning: Option<Instant>,
}

impl Admission {
    /// Admits clients from `listener`, at most `max_connections` at once and `max_per_ip`
    /// from one address (0: no limit).
    pub(super) fn new(listener: TcpListener, max_connections: usize, max_per_ip: u32) -> Self {
        Self {
            listener: Some(listener),
            max_connections,
            per_address: PerAddress::new(max_per_ip),
            spare_fd: File::open("/dev/null").ok(),
            paused_until: None,
            refused: 0,
            last_refusal_warning: None,
        }
    }

    /// The connection limit.
    pub(super) fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Until when accepting is paused, if it is.
    pub(super) fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    /// Ends a pause that is over by `now`; true if it did.
    pub(super) fn pause_over(&mut self, now: Instant) -> bool {
        if self.paused_until.is_some_and(|until| now >= until) {
            self.paused_until = None;
            return true;
        }
        false
    }

    /// Stops accepting for good (shutdown), handing back the listener to deregister.
    pub(super) fn stop(&mut self) -> Option<TcpListener> {
        self.listener.take()
    }

    /// Whether a warning about refusals is due (at most one per [`REFUSAL_LOG_INTERVAL`]).
    fn warning_due(&self, now: Instant) -> bool {
        self.last_refusal_warning
            .is_none_or(|last| now.duration_since(last) >= REFUSAL_LOG_INTERVAL)
    }

    /// A connection from `addr` ended: it no longer counts against its address.
    pub(super) fn connection_ended(&mut self, addr: SocketAddr) {
        self.per_address.remove(addr.ip());
    }

    /// Counts a client turned away; warns now and then, not per client.
    fn note_refusal(&mut self, addr: SocketAddr, now: Instant, why: &str) {
        debug!("{addr}: refused ({why})");
        self.refused += 1;
        if self.warning_due(now) {
            warn!(
                "turned away {} client(s) since the last warning (the last one: {why})",
                self.refused
            );
            self.refused = 0;
            self.last_refusal_warning = Some(now);
        }
    }

    /// Out of descriptors: frees the spare one to accept a client and tell it the server is
    /// full.
    ///
    /// Without this the client would sit in the backlog and the listener would keep reporting
    /// readiness that cannot be served.
    fn turn_one_away(&mut self, now: Instant) -> TurnAway {
        if self.spare_fd.take().is_none() {
            return TurnAway::Failed;
        }
        let outcome = match self.listener.as_ref().map(TcpListener::accept) {
            Some(Ok((mut stream, addr))) => {
                // Not kept until the peer closes: it would hold the descriptor just freed.
                say_and_shut(&mut stream, SERVER_FULL);
                drain_now(&mut stream);
                self.note_refusal(addr, now, "out of file descriptors");
                TurnAway::Done
            }
            Some(Err(e)) if e.kind() == ErrorKind::WouldBlock => TurnAway::NobodyWaiting,
            _ => TurnAway::Failed,
        };
        self.spare_fd = File::open("/dev/null").ok();
        if self.spare_fd.is_none() {
            return TurnAway::Failed;
        }
        outcome
    }

    /// Accept failed because the process is out of descriptors: turn one client away, or
    /// pause. Returns whether to go on accepting.
    fn out_of_descriptors(&mut self, error: &io::Error, now: Instant) -> bool {
        match self.turn_one_away(now) {
            TurnAway::Done => true,
            // Linux says EMFILE before it looks at the backlog; nobody is waiting.
            TurnAway::NobodyWaiting => false,
            TurnAway::Failed => {
                if self.warning_due(now) {
                    warn!("out of file descriptors ({error}); pausing accepts briefly");
                    self.last_refusal_warning = Some(now);
                }
                self.paused_until = Some(now + ACCEPT_PAUSE);
                false
            }
        }
    }
}

impl Server {
    /// Accepts every client waiting in the backlog.
    pub(super) fn accept_clients(&mut self, now: Instant) {
        if self.admission.paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.admission.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, addr)) => self.admit(stream, addr, now),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if is_transient(&e) || e.kind() == ErrorKind::ConnectionAborted => {}
                Err(e) if is_out_of_descriptors(&e) => {
                    if !self.admission.out_of_descriptors(&e, now) {
                        return;
                    }
                    // Going on means one client was turned away.
                    self.delivery.metrics.disconnected(Disconnect::ServerFull);
                }
                Err(e) => {
                    warn!("accept failed: {e}");
                    self.admission.paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    /// Registers a new connection and greets it, or turns it away if the server is full or its
    /// address has too many connections.
    fn admit(&mut self, mut stream: TcpStream, addr: SocketAddr, now: Instant) {
        if self.delivery.connections.len() >= self.admission.max_connections {
            self.turn_away(stream, addr, now, Refusal::Full);
            return;
        }
        if !self.admission.per_address.admits(addr.ip()) {
            self.turn_away(stream, addr, now, Refusal::PerAddress);
            return;
        }
        if self.memory.refusing() {
            self.turn_away(stream, addr, now, Refusal::Memory);
            return;
        }
        let entry = self.delivery.connections.vacant_entry();
        let id = ClientId::new(entry.key());
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(id.index()), interest)
        {
            warn!("{addr}: could not register connection: {e}");
            return;
        }
        entry.insert(Connection::new(stream, addr, now));
        self.admission.per_address.add(addr.ip());
        self.logins.start(id, addr, now);
        debug!("client {} connected from {addr}", id.index());
        self.chat.connect(id, &mut self.delivery);
        // A client that writes as soon as it is connected (a bot, a reconnecting client sending
        // its /nick) has its first lines here already: answered in this turn, the greeting and
        // the answers leave in one write instead of two turns apart. For a person at a prompt
        // this read only finds nothing.
        self.read_from(id, now);
    }
}

impl Server {
    /// Tells a client why it cannot come in, and keeps its socket until it has read that.
    fn turn_away(&mut self, mut stream: TcpStream, addr: SocketAddr, now: Instant, why: Refusal) {
        let (line, reason) = match why {
            Refusal::Full => (SERVER_FULL, "connection limit reached"),
            Refusal::PerAddress => (
                self.admission.per_address.refusal.as_slice(),
                "too many connections from one address",
            ),
            Refusal::Memory => (SERVER_BUSY, "near the memory limit"),
        };
        say_and_shut(&mut stream, line);
        self.admission.note_refusal(addr, now, reason);
        self.delivery.metrics.disconnected(match why {
            Refusal::Full => Disconnect::ServerFull,
            Refusal::PerAddress => Disconnect::PerIp,
            Refusal::Memory => Disconnect::Memory,
        });
        self.linger.hold(self.poll.registry(), stream, now);
    }
}

/// Writes a refusal to a fresh socket and shuts down its sending side.
fn say_and_shut(stream: &mut TcpStream, line: &[u8]) {
    // Best effort: a fresh socket's send buffer takes one short line.
    let _ = stream.write(line);
    let _ = stream.shutdown(Shutdown::Write);
}

/// Creates the listening socket: SO_REUSEADDR so a restart can bind at once, a large backlog,
/// and the options every client connection needs, which accepted sockets inherit (five fewer
/// system calls per connection than setting them on each).
pub(super) fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    tune_socket(&socket)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// TCP_NODELAY for prompt small lines, keepalive so vanished peers are noticed without traffic.
fn tune_socket(socket: &Socket) -> io::Result<()> {
    socket.set_nodelay(true)?;
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    socket.set_tcp_keepalive(&keepalive)
}

fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::SockRef;

    /// Client sockets get their options only through the listener, so check they arrive.
    #[test]
    fn accepted_sockets_inherit_nodelay_and_keepalive() -> io::Result<()> {
        let listener = bind_listener(([127, 0, 0, 1], 0).into())?;
        let _client = std::net::TcpStream::connect(listener.local_addr()?)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let accepted = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e),
            }
        };
        let socket = SockRef::from(&accepted);
        assert!(socket.nodelay()?);
        assert!(socket.keepalive()?);
        assert_eq!(socket.keepalive_time()?, Duration::from_secs(30));
        assert_eq!(socket.keepalive_interval()?, Duration::from_secs(10));
        assert_eq!(socket.keepalive_retries()?, 3);
        Ok(())
    }
}
