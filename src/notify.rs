//! Readiness and shutdown notices for systemd (`Type=notify` services).
//!
//! systemd passes the path of a Unix datagram socket in `NOTIFY_SOCKET`; a service sends
//! `READY=1` there once it can serve, and `STOPPING=1` when it begins to shut down (the
//! sd_notify protocol, see `man sd_notify`). A name starting with `@` is a socket in the
//! abstract namespace. Outside systemd the variable is unset and every function here does
//! nothing, so the binary behaves the same when started by hand.
//!
//! The protocol is one datagram per notice, so this needs no library: std's `UnixDatagram`
//! sends it.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;

/// The environment variable through which systemd names its notification socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Tells systemd the server is ready: it listens, so clients may connect.
///
/// Returns `Ok(false)` when not started by systemd (no `NOTIFY_SOCKET`), `Ok(true)` when the
/// notice was sent.
pub fn ready() -> io::Result<bool> {
    notify("READY=1")
}

/// Tells systemd the server is shutting down (sent when a stop begins, so that `systemctl`
/// shows "deactivating" rather than a service that stopped answering).
pub fn stopping() -> io::Result<bool> {
    notify("STOPPING=1")
}

/// Sends `state` (newline-separated `KEY=VALUE` assignments) to the socket named by
/// `NOTIFY_SOCKET`; `Ok(false)` when the variable is unset or empty.
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var_os(NOTIFY_SOCKET) {
        Some(socket) if !socket.is_empty() => notify_to(&socket, state).map(|()| true),
        _ => Ok(false),
    }
}

/// Sends `state` as one datagram to the notification socket `socket`: a filesystem path, or an
/// abstract socket name written with a leading `@`.
pub fn notify_to(socket: &OsStr, state: &str) -> io::Result<()> {
    let sender = UnixDatagram::unbound()?;
    let bytes = socket.as_bytes();
    let sent = match bytes.split_first() {
        Some((b'@', name)) => send_abstract(&sender, name, state.as_bytes())?,
        Some((b'/', _)) => sender.send_to(state.as_bytes(), socket)?,
        // systemd only ever passes absolute paths or abstract names; anything else is a
        // mistake in the environment, better reported than sent to a path relative to the
        // working directory.
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{NOTIFY_SOCKET} is neither an absolute path nor an @abstract name"),
            ))
        }
    };
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "notification datagram truncated",
        ));
    }
    Ok(())
}

/// Abstract socket names exist only on Linux (and Android); systemd is Linux-only, so elsewhere
/// such a name is an error.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_abstract(sender: &UnixDatagram, name: &[u8], datagram: &[u8]) -> io::Result<usize> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    sender.send_to_addr(datagram, &address)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract Unix sockets exist only on Linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Reads one datagram from `socket` (a test never waits forever for one).
    fn receive(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set a read timeout");
        let mut buffer = [0u8; 256];
        let n = socket.recv(&mut buffer).expect("a notification datagram");
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_socket_path() {
        let dir = std::env::temp_dir().join(format!("chat-notify-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let receiver = UnixDatagram::bind(&path).expect("bind the receiving socket");
        notify_to(path.as_os_str(), "READY=1").expect("the notice is sent");
        assert_eq!(receive(&receiver), "READY=1");
        notify_to(path.as_os_str(), "STOPPING=1").expect("the notice is sent");
        assert_eq!(receive(&receiver), "STOPPING=1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("chat-notify-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("an abstract address");
        let receiver = UnixDatagram::bind_addr(&address).expect("bind the receiving socket");
        notify_to(OsStr::new(&format!("@{name}")), "READY=1").expect("the notice is sent");
        assert_eq!(receive(&receiver), "READY=1");
    }

    #[test]
    fn refuses_a_relative_path() {
        let error = notify_to(OsStr::new("notify.sock"), "READY=1").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn reports_a_missing_socket() {
        let missing = std::env::temp_dir().join("chat-notify-test-no-such-socket");
        assert!(notify_to(missing.as_os_str(), "READY=1").is_err());
    }
}
