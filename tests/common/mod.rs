//! Helpers shared by the integration tests: an in-process server on a free port, the real binary,
//! and a line-oriented test client over a real TCP socket.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chat_server::config::Config;
use chat_server::server::{Server, ShutdownHandle};

/// How long a test waits for any one line before failing.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(15);

/// A server running in a thread of the test process, stopped (gracefully) on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Where its metrics are served, with `--metrics`.
    pub metrics_addr: Option<SocketAddr>,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl TestServer {
    /// A server with the default configuration on 127.0.0.1 and a free port.
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    /// A server whose configuration `tweak` adjusts first.
    pub fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::with_listen("127.0.0.1:0".parse().expect("valid address"));
        tweak(&mut config);
        let server = Server::bind(&config).expect("bind a free port");
        let addr = server.local_addr();
        let metrics_addr = server.metrics_addr();
        let handle = server.shutdown_handle();
        let thread = std::thread::spawn(move || server.run());
        Self {
            addr,
            metrics_addr,
            handle,
            thread: Some(thread),
        }
    }

    /// Stops the server gracefully and returns what `run` returned.
    pub fn stop(mut self) -> io::Result<()> {
        self.handle.shutdown();
        let thread = self.thread.take().expect("running");
        thread.join().expect("server thread did not panic")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.handle.shutdown();
            let _ = thread.join();
        }
    }
}

/// The real `chat-server` binary, killed on drop.
pub struct BinaryServer {
    pub child: Child,
    pub addr: SocketAddr,
}

impl BinaryServer {
    /// Starts the binary on a free port with extra `args`, and waits until it accepts.
    pub fn start(args: &[&str]) -> Self {
        Self::start_command(Command::new(env!("CARGO_BIN_EXE_chat-server")), args)
    }

    /// Like [`BinaryServer::start`], with a prepared command (e.g. with resource limits).
    pub fn start_command(mut command: Command, args: &[&str]) -> Self {
        let addr = free_addr();
        let child = command
            .arg("--listen")
            .arg(addr.to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chat-server");
        let deadline = Instant::now() + LINE_TIMEOUT;
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "chat-server did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, addr }
    }

    /// Sends `signal` to the server process.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill() with a valid pid and signal number has no memory effects.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill failed");
    }

    /// Waits up to `limit` for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address")
}

/// Sends `request` to the HTTP server at `addr` as it is and returns the whole answer (the
/// metrics endpoint closes the connection after it).
pub fn http(addr: SocketAddr, request: &[u8]) -> String {
    use std::io::Read;
    let mut stream = TcpStream::connect(addr).expect("connect to the HTTP server");
    stream
        .set_read_timeout(Some(LINE_TIMEOUT))
        .expect("timeout");
    stream.write_all(request).expect("send the request");
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the answer, then end of file");
    String::from_utf8(answer).expect("an ASCII answer")
}

/// A test client speaking the line protocol over a real socket.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects without reading anything.
    pub fn connect_raw(addr: SocketAddr) -> Self {
        Self::over(TcpStream::connect(addr).expect("connect to the server"))
    }

    /// Connects from the loopback address `source` (any of 127.0.0.0/8), without reading
    /// anything: a client from another address, as far as the server can tell.
    pub fn connect_raw_from(addr: SocketAddr, source: [u8; 4]) -> Self {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a socket");
        let from = SocketAddr::from((source, 0));
        socket.bind(&from.into()).expect("bind a loopback address");
        socket.connect(&addr.into()).expect("connect to the server");
        Self::over(socket.into())
    }

    /// A client on a connected socket.
    fn over(stream: TcpStream) -> Self {
        stream
            .set_read_timeout(Some(LINE_TIMEOUT))
            .expect("timeout");
        // Without this, Nagle's algorithm and delayed ACKs make lock-step tests crawl.
        stream.set_nodelay(true).expect("nodelay");
        let writer = stream.try_clone().expect("clone socket");
        Self {
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// Connects and reads the welcome line.
    pub fn connect(addr: SocketAddr) -> Self {
        let mut client = Self::connect_raw(addr);
        let welcome = client.line();
        assert!(
            welcome.starts_with("* Welcome to chat-server."),
            "{welcome}"
        );
        client
    }

    /// Connects and sets `nick`, expecting a fresh session.
    pub fn login(addr: SocketAddr, nick: &str) -> Self {
        let mut client = Self::connect(addr);
        client.send(&format!("/nick {nick}"));
        client.expect(&format!(
            "* Welcome, {nick}. Rooms: main. Active room: main."
        ));
        client
    }

    /// Sends one line (LF appended).
    pub fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes());
    }

    /// Sends raw bytes.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write to the server");
    }

    /// Reads the bytes up to and including the next LF.
    pub fn raw_line(&mut self) -> Vec<u8> {
        let mut raw = Vec::new();
        match self.reader.read_until(b'\n', &mut raw) {
            Ok(0) => panic!("connection closed while waiting for a line"),
            Ok(_) => raw,
            Err(e) => panic!("no line within {LINE_TIMEOUT:?}: {e}"),
        }
    }

    /// Reads one line, checking it ends with CRLF, and returns it without the line end.
    pub fn line(&mut self) -> String {
        let raw = self.raw_line();
        let text = String::from_utf8(raw).expect("server lines are UTF-8");
        text.strip_suffix("\r\n")
            .unwrap_or_else(|| panic!("line without CRLF: {text:?}"))
            .to_string()
    }

    /// Reads one line and checks it is `expected`.
    pub fn expect(&mut self, expected: &str) {
        assert_eq!(self.line(), expected);
    }

    /// Sends `line` and checks the one-line answer.
    pub fn ask(&mut self, line: &str, expected: &str) {
        self.send(line);
        self.expect(expected);
    }

    /// Reads lines until one satisfies `wanted`, returning it; fails after `limit` other lines.
    pub fn wait_for(&mut self, limit: usize, mut wanted: impl FnMut(&str) -> bool) -> String {
        for _ in 0..=limit {
            let line = self.line();
            if wanted(&line) {
                return line;
            }
        }
        panic!("no wanted line among {limit} lines");
    }

    /// Reads until the server closes the connection; returns the lines read before that.
    pub fn read_until_closed(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match self.reader.read_until(b'\n', &mut raw) {
                Ok(0) => return lines,
                Ok(_) => lines.push(String::from_utf8_lossy(&raw).trim_end().to_string()),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return lines,
                Err(e) => panic!("connection not closed within {LINE_TIMEOUT:?}: {e}"),
            }
        }
    }

    /// Closes abruptly with a reset (SO_LINGER 0) instead of an orderly FIN.
    pub fn reset(self) {
        let socket = socket2::SockRef::from(&self.writer);
        socket.set_linger(Some(Duration::ZERO)).expect("linger");
        drop(self);
    }

    /// The underlying socket, for tests that need socket options.
    pub fn socket(&self) -> &TcpStream {
        &self.writer
    }
}

/// A replayed or `/history` line, `[ROOM HH:MM] REST` with any time: checks the line and gives
/// back ROOM and REST.
pub fn replayed(line: &str) -> (String, String) {
    let (head, rest) = line
        .split_once("] ")
        .unwrap_or_else(|| panic!("not a replayed line: {line}"));
    let (room, time) = head
        .strip_prefix('[')
        .and_then(|h| h.rsplit_once(' '))
        .unwrap_or_else(|| panic!("no [ROOM TIME]: {line}"));
    assert!(
        time.len() == 5 && time.as_bytes()[2] == b':',
        "time {time:?} in {line}"
    );
    (room.to_string(), rest.to_string())
}

/// A real `redis-server` on a free loopback port, without persistence, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
}

impl RedisServer {
    /// Starts `redis-server` and waits until it answers.
    pub fn start() -> Self {
        let port = free_addr().port();
        let mut redis = Self { child: None, port };
        redis.launch();
        redis
    }

    /// The URL to pass to `--redis`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL): clients see the connection drop.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty, as after a crash without persistence).
    pub fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (./test.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + LINE_TIMEOUT;
        loop {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut reply = [0u8; 7];
                if stream.write_all(b"PING\r\n").is_ok()
                    && std::io::Read::read(&mut stream, &mut reply).is_ok_and(|n| n > 0)
                    && reply.starts_with(b"+PONG")
                {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl RedisServer {
    /// Makes Redis hold every write command (PUBLISH and scripts included) for `pause`, as a
    /// Redis that stalls for a moment would; reads still get answers.
    pub fn pause_writes(&self, pause: Duration) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to Redis");
        let command = format!("CLIENT PAUSE {} WRITE\r\n", pause.as_millis());
        stream
            .write_all(command.as_bytes())
            .expect("send CLIENT PAUSE");
        let mut reply = [0u8; 5];
        std::io::Read::read_exact(&mut stream, &mut reply).expect("Redis answers");
        assert_eq!(&reply, b"+OK\r\n", "CLIENT PAUSE accepted");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
