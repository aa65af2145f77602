//! Client sockets: non-blocking connects spread over several loopback source addresses, and
//! the integer socket options the harness sets.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;

use mio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};

/// Loopback source addresses the clients are spread over.
const SOURCE_ADDRESSES: u64 = 8;

/// Starts connecting to `target` without blocking. A loopback target is reached from one of
/// several loopback source addresses (127.0.0.1-8): from one address 19,000 clients, with the
/// last run's sockets still in TIME_WAIT, nearly exhaust the local port range and every
/// `connect()` then crawls through it looking for a free port.
pub fn connect_nonblocking(target: SocketAddr, gid: u64) -> std::io::Result<TcpStream> {
    let IpAddr::V4(ip) = target.ip() else {
        return TcpStream::connect(target);
    };
    if !ip.is_loopback() {
        return TcpStream::connect(target);
    }
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    // The port is then chosen at connect() for the whole address pair, not at bind().
    set_int_option(&socket, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1);
    let source = Ipv4Addr::new(127, 0, 0, 1 + (gid % SOURCE_ADDRESSES) as u8);
    socket.bind(&SocketAddr::from((source, 0)).into())?;
    match socket.connect(&target.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// Sets an integer socket option, ignoring failure (both uses are optimisations).
pub fn set_int_option(fd: &impl AsRawFd, level: libc::c_int, name: libc::c_int, value: usize) {
    let value = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live c_int.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
