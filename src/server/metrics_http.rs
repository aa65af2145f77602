//! `--metrics ADDR:PORT`: the metrics as Prometheus text at `GET /metrics`, served by the poll
//! loop itself (a second listener; no thread, no HTTP framework).
//!
//! One request per connection, then the connection is closed: a request is read up to
//! [`MAX_REQUEST`] bytes and for at most [`READ_TIME`], parsed with `httparse`, and answered
//! with the metrics, `404` for another path, `405` for another method, `400` for anything that
//! is not HTTP, `431` for a request too big. At most [`MAX_REQUESTS`] are served at once, so a
//! scraper gone wrong cannot take the descriptors the chat needs.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

use super::metrics::Gauges;
use super::{Server, HTTP_TOKENS, METRICS_LISTENER};
use crate::cluster::Cluster;

/// The longest request read; the metrics endpoint needs a request line and a few headers.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client has to send its request (and take the answer).
const READ_TIME: Duration = Duration::from_secs(5);
/// The most requests served at once; more are closed at once.
const MAX_REQUESTS: usize = 16;
/// The most headers a request may have.
const MAX_HEADERS: usize = 32;

/// The metrics listener and the requests being served.
pub(super) struct MetricsEndpoint {
    listener: TcpListener,
    requests: Slab<Request>,
}

/// One HTTP connection: its request as far as it came, then its answer as far as written.
struct Request {
    stream: TcpStream,
    received: Vec<u8>,
    /// Empty until the request is complete.
    answer: Vec<u8>,
    written: usize,
    /// Closed by then whatever state it is in.
    deadline: Instant,
}

impl MetricsEndpoint {
    /// Listens on `addr` and registers the listener with `registry`.
    pub(super) fn bind(addr: SocketAddr, registry: &Registry) -> std::io::Result<Self> {
        let mut listener = TcpListener::bind(addr)?;
        registry.register(&mut listener, METRICS_LISTENER, Interest::READABLE)?;
        Ok(Self {
            listener,
            requests: Slab::new(),
        })
    }

    /// The address the metrics listener is bound to.
    pub(super) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// When the next request runs out of time.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.requests.iter().map(|(_, r)| r.deadline).min()
    }

    fn close(&mut self, registry: &Registry, key: usize) {
        if let Some(mut request) = self.requests.try_remove(key) {
            let _ = registry.deregister(&mut request.stream);
        }
    }
}

impl Server {
    /// Accepts every waiting metrics request.
    pub(super) fn accept_metrics_requests(&mut self, now: Instant) {
        loop {
            let Some(endpoint) = self.metrics_endpoint.as_mut() else {
                return;
            };
            match endpoint.listener.accept() {
                Ok((mut stream, addr)) => {
                    if endpoint.requests.len() >= MAX_REQUESTS {
                        debug!("metrics: {addr} turned away, {MAX_REQUESTS} requests at once");
                        continue;
                    }
                    let entry = endpoint.requests.vacant_entry();
                    let token = Token(HTTP_TOKENS + entry.key());
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if let Err(e) = self.poll.registry().register(&mut stream, token, interest) {
                        debug!("metrics: could not register {addr}: {e}");
                        continue;
                    }
                    let key = entry.key();
                    entry.insert(Request {
                        stream,
                        received: Vec::new(),
                        answer: Vec::new(),
                        written: 0,
                        deadline: now + READ_TIME,
                    });
                    // The request may be there already.
                    self.serve_metrics_request(key, now);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!("metrics: accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Reads the request of `key` on, answers it once it is complete, and hands the connection
    /// to the lingering sockets once the answer is written.
    pub(super) fn serve_metrics_request(&mut self, key: usize, now: Instant) {
        let Some(endpoint) = self.metrics_endpoint.as_mut() else {
            return;
        };
        let Some(request) = endpoint.requests.get_mut(key) else {
            return;
        };
        if request.answer.is_empty() {
            match read_request(request, &mut self.read_buf) {
                Reading::More => return,
                Reading::Gone => {
                    endpoint.close(self.poll.registry(), key);
                    return;
                }
                Reading::Complete(Ok(Route::Metrics { head })) => {
                    let gauges = self.gauges();
                    let mut body = String::with_capacity(4096);
                    self.delivery.metrics.render(&gauges, &mut body);
                    let Some(request) = self
                        .metrics_endpoint
                        .as_mut()
                        .and_then(|e| e.requests.get_mut(key))
                    else {
                        return;
                    };
                    request.answer = response(200, &[CONTENT_TYPE], &body, head);
                }
                Reading::Complete(Err(status)) => {
                    request.answer = error_response(status);
                }
            }
        }
        let Some(endpoint) = self.metrics_endpoint.as_mut() else {
            return;
        };
        let Some(request) = endpoint.requests.get_mut(key) else {
            return;
        };
        match write_answer(request) {
            Ok(true) => {
                if let Some(Request { mut stream, .. }) = endpoint.requests.try_remove(key) {
                    let registry = self.poll.registry();
                    let _ = registry.deregister(&mut stream);
                    self.linger.hold(registry, stream, now);
                }
            }
            Ok(false) => {}
            Err(_) => endpoint.close(self.poll.registry(), key),
        }
    }

    /// Closes the metrics requests that ran out of time.
    pub(super) fn expire_metrics_requests(&mut self, now: Instant) {
        let Some(endpoint) = self.metrics_endpoint.as_mut() else {
            return;
        };
        let overdue: Vec<usize> = endpoint
            .requests
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(key, _)| key)
            .collect();
        for key in overdue {
            endpoint.close(self.poll.registry(), key);
        }
    }

    /// The loop's state for the gauges.
    fn gauges(&self) -> Gauges {
        Gauges {
            connections: self.delivery.connections.len(),
            sessions_saved: self.chat.saved_count(),
            rooms: self.chat.room_count(),
            output_pending: self.delivery.pending_total(),
            output_memory: self.delivery.output_memory(),
            output_memory_peak: self.delivery.output_memory_peak(),
            cluster: self.delivery.cluster.as_ref().map(Cluster::gauges),
        }
    }
}

/// `Content-Type` of the Prometheus text format.
const CONTENT_TYPE: &str = "Content-Type: text/plain; version=0.0.4; charset=utf-8";

/// Where a complete, valid request goes.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// The metrics; `head`: without the body (`HEAD`).
    Metrics { head: bool },
}

/// What reading a request came to.
#[derive(Debug, PartialEq, Eq)]
enum Reading {
    /// Not complete yet.
    More,
    /// The peer closed or failed before the request was complete.
    Gone,
    /// Complete: where it goes, or the status of the error answer.
    Complete(Result<Route, u16>),
}

/// Reads what `request` has received and parses it.
fn read_request(request: &mut Request, buf: &mut [u8]) -> Reading {
    // A client may send its request and close its sending side at once (`nc -N`): it still
    // gets its answer.
    let mut ended = false;
    loop {
        match request.stream.read(buf) {
            Ok(0) => {
                ended = true;
                break;
            }
            Ok(n) => receive(&mut request.received, &buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => return Reading::Gone,
        }
        if request.received.len() > MAX_REQUEST {
            break;
        }
    }
    verdict(&request.received, ended)
}

/// Adds `piece`, just read, to what a request `received`, keeping at most one byte past
/// [`MAX_REQUEST`]: enough to tell that the request is too large, without holding more.
fn receive(received: &mut Vec<u8>, piece: &[u8]) {
    let room = (MAX_REQUEST + 1).saturating_sub(received.len());
    received.extend_from_slice(&piece[..piece.len().min(room)]);
}

/// What the bytes `received` so far come to, `ended` if the client closed its sending side.
/// Called after every readable event, so a request that comes in pieces is judged on each
/// longer prefix: the answer must not depend on how the bytes were cut (the fuzz target
/// `fuzz/src/metrics.rs` checks that).
fn verdict(received: &[u8], ended: bool) -> Reading {
    match parse(received) {
        None if received.len() > MAX_REQUEST => Reading::Complete(Err(431)),
        None if ended => Reading::Gone,
        None => Reading::More,
        Some(route) => Reading::Complete(route),
    }
}

/// The request reading without a socket, for the fuzz target (`fuzz/src/metrics.rs`) and the
/// corpus replay: compiled only for tests and with the `fuzzing` feature, like
/// `Chat::check_invariants`. An associated item of the public [`Server`] because the module
/// is private.
#[cfg(any(test, feature = "fuzzing"))]
impl Server {
    /// The most bytes of a metrics request read before it is answered `431`.
    pub const METRICS_MAX_REQUEST: usize = MAX_REQUEST;
    /// The most headers a metrics request may have before it is answered `431`.
    pub const METRICS_MAX_HEADERS: usize = MAX_HEADERS;

    /// How the metrics endpoint answers a request whose bytes arrive as `reads` (what each
    /// readable event brings, in order), the client closing its sending side with the last
    /// one if `ended`: the status and whether the answer has a body (not for `HEAD`), or
    /// `None` for no answer (still waiting for more or, if `ended`, closed unanswered). The
    /// same steps as for a socket: [`receive`] each read, [`verdict`] after each.
    pub fn metrics_answer(reads: &[&[u8]], ended: bool) -> Option<(u16, bool)> {
        let mut received = Vec::new();
        let last = reads.len().saturating_sub(1);
        for (index, piece) in reads.iter().enumerate() {
            receive(&mut received, piece);
            match verdict(&received, ended && index == last) {
                Reading::More => {}
                Reading::Gone => return None,
                Reading::Complete(Ok(Route::Metrics { head })) => return Some((200, !head)),
                Reading::Complete(Err(status)) => return Some((status, true)),
            }
        }
        None
    }
}

/// Parses a request: `None` while it is incomplete.
fn parse(bytes: &[u8]) -> Option<Result<Route, u16>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Partial) => None,
        Err(httparse::Error::TooManyHeaders) => Some(Err(431)),
        Err(_) => Some(Err(400)),
        Ok(httparse::Status::Complete(_)) => {
            let path = request.path.unwrap_or_default();
            let path = path.split_once('?').map_or(path, |(path, _)| path);
            Some(match (request.method.unwrap_or_default(), path) {
                ("GET", "/metrics") => Ok(Route::Metrics { head: false }),
                ("HEAD", "/metrics") => Ok(Route::Metrics { head: true }),
                (_, "/metrics") => Err(405),
                _ => Err(404),
            })
        }
    }
}

/// An HTTP/1.1 response that closes the connection.
fn response(status: u16, headers: &[&str], body: &str, head: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let mut text = format!("HTTP/1.1 {status} {reason}\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    if !head {
        text.push_str(body);
    }
    text.into_bytes()
}

/// The answer to a request that is not `GET /metrics`.
fn error_response(status: u16) -> Vec<u8> {
    match status {
        404 => response(404, &[], "not found: the metrics are at /metrics\n", false),
        405 => response(405, &["Allow: GET, HEAD"], "method not allowed\n", false),
        431 => response(431, &[], "request too large\n", false),
        _ => response(400, &[], "bad request\n", false),
    }
}

/// Writes what the socket takes of the answer; `Ok(true)` once it is all written.
fn write_answer(request: &mut Request) -> std::io::Result<bool> {
    while request.written < request.answer.len() {
        match request.stream.write(&request.answer[request.written..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => request.written += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed_by_method_and_path() {
        let parsed = |text: &str| parse(text.as_bytes());
        assert_eq!(
            parsed("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(Ok(Route::Metrics { head: false }))
        );
        assert_eq!(
            parsed("HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Some(Ok(Route::Metrics { head: true }))
        );
        assert_eq!(parsed("POST /metrics HTTP/1.1\r\n\r\n"), Some(Err(405)));
        assert_eq!(parsed("GET / HTTP/1.1\r\n\r\n"), Some(Err(404)));
        assert_eq!(parsed("GET /metrics HTTP/1.1\r\nHost:"), None, "incomplete");
        assert_eq!(parsed("hello there\r\n\r\n"), Some(Err(400)));
        assert_eq!(parsed("\u{1}\u{2}\u{3}"), Some(Err(400)));
    }

    #[test]
    fn a_request_is_kept_to_one_byte_past_the_limit() {
        let mut received = Vec::new();
        for _ in 0..3 {
            receive(&mut received, &[b'a'; MAX_REQUEST]);
        }
        assert_eq!(received.len(), MAX_REQUEST + 1);
        assert_eq!(verdict(&received, false), Reading::Complete(Err(431)));
    }

    #[test]
    fn a_request_in_pieces_gets_the_answer_it_gets_whole() {
        let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        for cut in 0..=request.len() {
            let (first, second) = request.split_at(cut);
            let answer = Server::metrics_answer(&[first, second], false);
            assert_eq!(answer, Some((200, true)), "cut at {cut}");
        }
        assert_eq!(Server::metrics_answer(&[b"GET /met"], false), None, "waits");
        assert_eq!(
            Server::metrics_answer(&[b"GET /met", b""], true),
            None,
            "closed"
        );
        assert_eq!(Server::metrics_answer(&[b"\x01"], false), Some((400, true)));
    }

    #[test]
    fn answers_say_their_length_and_close() {
        let answer =
            String::from_utf8(response(200, &[CONTENT_TYPE], "a 1\n", false)).expect("ASCII");
        assert_eq!(
            answer,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: 4\r\nConnection: close\r\n\r\na 1\n"
        );
        let head = response(200, &[CONTENT_TYPE], "a 1\n", true);
        assert!(head.ends_with(b"Content-Length: 4\r\nConnection: close\r\n\r\n"));
        let not_allowed = String::from_utf8(error_response(405)).expect("ASCII");
        assert!(not_allowed.starts_with("HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\n"));
    }
}
