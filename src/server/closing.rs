//! How connections end: reaping the ones that died, closing the ones whose goodbye is written,
//! and the graceful shutdown of the whole server.

use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::{Events, Waker};

use super::connection::Connection;
use super::delivery::DropReason;
use super::metrics::Disconnect;
use super::Server;
use crate::chat::ClientId;

/// How long a graceful shutdown waits for clients to take their last lines.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Asks a running [`Server`] to shut down gracefully, from any thread.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
}

impl ShutdownHandle {
    /// A handle that sets `stop` and wakes the loop through `waker`.
    pub(super) fn new(waker: Arc<Waker>, stop: Arc<AtomicBool>) -> Self {
        Self { waker, stop }
    }

    /// Starts the graceful shutdown: clients get a notice, output is flushed, `run` returns.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Err(e) = self.waker.wake() {
            warn!("could not wake the poll loop for shutdown: {e}");
        }
    }
}

impl Server {
    /// Drops the connections doomed this turn and lets the chat save their sessions.
    pub(super) fn reap(&mut self, now: Instant) {
        while let Some((id, reason)) = self.delivery.doomed.pop() {
            if let Some(conn) = self.delivery.connections.try_remove(id.index()) {
                self.delivery.forget(&conn);
                self.delivery.metrics.disconnected(reason.disconnect());
                let peer = conn.peer;
                self.release(conn);
                let index = id.index();
                match reason {
                    DropReason::SlowConsumer => info!(
                        "client {index} ({peer}) dropped: output buffer passed {} bytes (not reading)",
                        self.delivery.sendq()
                    ),
                    DropReason::Memory => info!(
                        "client {index} ({peer}) dropped near the memory limit (not reading)"
                    ),
                    DropReason::Eof => debug!("client {index} ({peer}) disconnected"),
                    DropReason::Error(kind) => {
                        debug!("client {index} ({peer}) disconnected: {kind}")
                    }
                }
            }
            self.chat.disconnect(id, now, &mut self.delivery);
        }
    }

    /// Closes a connection whose goodbye has been written; the chat already forgot it.
    pub(super) fn close(&mut self, id: ClientId) {
        if let Some(mut conn) = self.delivery.connections.try_remove(id.index()) {
            self.delivery.forget(&conn);
            self.delivery.metrics.disconnected(conn.ending);
            conn.close_gracefully(&mut self.read_buf);
            self.release(conn);
            debug!("client {} closed", id.index());
        }
    }

    /// Takes a connection off the poll instance and out of its address's count (dropping it
    /// closes the socket). Every way a connection ends comes through here.
    fn release(&mut self, mut conn: Connection) {
        self.admission.connection_ended(conn.peer);
        if let Err(e) = self.poll.registry().deregister(&mut conn.stream) {
            debug!("deregister failed: {e}");
        }
    }

    /// Tells every client goodbye and gives them a moment to read it.
    pub(super) fn shut_down(&mut self) {
        info!(
            "shutting down: saying goodbye to {} clients",
            self.delivery.connections.len()
        );
        if let Some(mut listener) = self.admission.stop() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.delivery.chat_close = Disconnect::Shutdown;
        self.chat.shutdown(Instant::now(), &mut self.delivery);
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            self.reap_and_flush(now);
            if self.delivery.connections.is_empty() || now >= deadline {
                break;
            }
            if let Err(e) = self.poll.poll(&mut events, Some(deadline - now)) {
                if e.kind() != ErrorKind::Interrupted {
                    warn!("poll failed during shutdown: {e}");
                    break;
                }
            }
            for event in events.iter() {
                let id = ClientId::new(event.token().0);
                if event.is_writable() {
                    self.delivery.mark_dirty(id);
                }
                // A peer that only closed its sending side may still read its goodbye.
                if event.is_error() {
                    self.delivery.doom(id, DropReason::Eof);
                }
            }
        }
        info!(
            "stopped ({} clients had not taken their last lines)",
            self.delivery.connections.len()
        );
        if let Some(cluster) = self.delivery.cluster.take() {
            cluster.stop(self.chat.local_nicks());
        }
        if let Some(auth) = self.delivery.auth.take() {
            auth.stop();
        }
    }
}
