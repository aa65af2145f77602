//! The metrics endpoint's request reading (`src/server/metrics_http.rs`) on arbitrary bytes,
//! through `Server::metrics_answer`, which runs the endpoint's own steps without a socket.
//!
//! What must hold, whatever the bytes:
//!
//! - no panic, and an answer is one of `200`, `400`, `404`, `405`, `431`; only `HEAD /metrics`
//!   is answered without a body;
//! - the answer does not depend on how the bytes are cut into reads: the endpoint judges the
//!   request after every readable event, on what came so far, so every cut must come to what
//!   the bytes fed at once come to;
//! - more bytes than the endpoint reads are always answered (never a wait for more), and a
//!   request whose head does not end within them gets `400` or `431`;
//! - a first byte that cannot start a request (not a token character, not an empty line) gets
//!   `400` at once, without waiting for more;
//! - `200`, `404` and `405` only for a well-formed request line, `200` only for `GET` or `HEAD`
//!   of `/metrics` (a query allowed), `405` only for another method on `/metrics`;
//! - a well-formed `GET` or `HEAD /metrics` request built from the input (any valid headers,
//!   a query, leading empty lines, bare LF line ends, anything after the head) gets `200`,
//!   and one whose head is too large, or has too many headers, gets `431`.

use chat_server::server::Server;

use super::Bytes;

/// The statuses the endpoint answers with.
const STATUSES: [u16; 5] = [200, 400, 404, 405, 431];

/// The most reads a request is cut into: the endpoint parses everything received so far after
/// every read, so a thousand one-byte reads would make a single input cost seconds.
const MAX_READS: usize = 64;

/// Characters of an HTTP token (a method or a header name), RFC 9110.
fn is_token(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Cuts `input` into reads of the lengths `cuts` gives in turn (an empty read is a readable
/// event that brought nothing), at most [`MAX_READS`], the last one taking the rest.
pub fn split<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut reads = Vec::new();
    let mut rest = input;
    let mut lengths = cuts.iter().cycle();
    while !rest.is_empty() {
        let length = match lengths.next() {
            Some(&length) if reads.len() + 1 < MAX_READS => length.min(rest.len()),
            _ => rest.len(),
        };
        let (read, tail) = rest.split_at(length);
        reads.push(read);
        rest = tail;
    }
    reads
}

/// The request line as the endpoint must have read it, if the head has one: leading empty
/// lines skipped, then `METHOD SP TARGET SP HTTP/1.x` up to the first LF (a CR before it
/// stripped). Returns the method and the path (the target without its query).
fn request_line(head: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut rest = head;
    loop {
        if let Some(after) = rest.strip_prefix(b"\r\n") {
            rest = after;
        } else if let Some(after) = rest.strip_prefix(b"\n") {
            rest = after;
        } else {
            break;
        }
    }
    let end = rest.iter().position(|&b| b == b'\n')?;
    let line = &rest[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let valid = parts.next().is_none()
        && !method.is_empty()
        && method.iter().all(|&b| is_token(b))
        && (version == b"HTTP/1.0" || version == b"HTTP/1.1");
    let path = target.split(|&b| b == b'?').next()?;
    valid.then_some((method, path))
}

/// Checks every promise of the module documentation on `input` cut by `cuts`, the client
/// closing its sending side after it if `ended`; `expected`: the answer the input must get
/// (a request built to be valid, or too large).
pub fn check(
    input: &[u8],
    cuts: &[usize],
    ended: bool,
    expected: Option<(u16, bool)>,
) -> Result<(), String> {
    let whole = Server::metrics_answer(&[input], ended);
    let reads = split(input, cuts);
    let cut = Server::metrics_answer(&reads, ended);
    if cut != whole {
        let lengths: Vec<usize> = reads.iter().map(|r| r.len()).collect();
        return Err(format!("cut into {lengths:?}: {cut:?}, whole: {whole:?}"));
    }
    if let Some(expected) = expected {
        if whole != Some(expected) {
            return Err(format!("{whole:?}, not {expected:?}"));
        }
    }
    let limit = Server::METRICS_MAX_REQUEST;
    // What the endpoint reads of the input; the rest is never looked at.
    let read = &input[..input.len().min(limit + 1)];
    if input.len() > limit && whole.is_none() {
        return Err(format!(
            "{} bytes, more than {limit}, unanswered",
            input.len()
        ));
    }
    let head_ends =
        read.windows(2).any(|w| w == b"\n\n") || read.windows(3).any(|w| w == b"\n\r\n");
    if let Some(&first) = input.first() {
        if !is_token(first) && first != b'\r' && first != b'\n' && whole != Some((400, true)) {
            return Err(format!(
                "first byte {first:#04x}: {whole:?}, not 400 at once"
            ));
        }
    }
    let Some((status, body)) = whole else {
        return Ok(());
    };
    if !STATUSES.contains(&status) {
        return Err(format!("status {status}"));
    }
    if !head_ends && status != 400 && status != 431 {
        return Err(format!("{status} for a head that does not end"));
    }
    if !body && status != 200 {
        return Err(format!("{status} without a body"));
    }
    if matches!(status, 200 | 404 | 405) {
        let Some((method, path)) = request_line(read) else {
            return Err(format!("{status} without a valid request line"));
        };
        let metrics = path == b"/metrics";
        let right = match status {
            200 => metrics && (method == b"GET" && body || method == b"HEAD" && !body),
            405 => metrics && method != b"GET" && method != b"HEAD",
            _ => !metrics,
        };
        if !right {
            let (method, path) = (
                String::from_utf8_lossy(method),
                String::from_utf8_lossy(path),
            );
            return Err(format!("{status} (body: {body}) for {method} {path}"));
        }
    }
    Ok(())
}

/// Visible ASCII and space: what a header value is built from.
fn value_char(byte: u8) -> u8 {
    b' ' + byte % (b'~' - b' ' + 1)
}

/// A character of a token, for header names.
fn token_char(byte: u8) -> u8 {
    const TOKEN: &[u8] =
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~";
    TOKEN[usize::from(byte) % TOKEN.len()]
}

/// A character of a query string.
fn query_char(byte: u8) -> u8 {
    const QUERY: &[u8] = b"abcxyzABC0189=&_.-~%";
    QUERY[usize::from(byte) % QUERY.len()]
}

/// A `GET` or `HEAD /metrics` request built from `bytes` (its form, its headers, then
/// whatever follows the head), and the answer it must get. `oversized`: with a header that
/// takes the head past the limit, or with too many headers, so `431`.
pub fn build(bytes: &mut Bytes<'_>, oversized: bool) -> (Vec<u8>, (u16, bool)) {
    let form = bytes.byte();
    let head_only = form & 1 != 0;
    let eol: &[u8] = if form & 2 != 0 { b"\n" } else { b"\r\n" };
    let mut request = Vec::new();
    if form & 4 != 0 {
        request.extend_from_slice(eol);
    }
    request.extend_from_slice(if head_only { b"HEAD" } else { b"GET" });
    request.extend_from_slice(b" /metrics");
    if form & 8 != 0 {
        request.push(b'?');
        let length = usize::from(bytes.byte() % 16);
        request.extend(bytes.take(length).iter().map(|&b| query_char(b)));
    }
    request.extend_from_slice(if form & 16 != 0 {
        b" HTTP/1.0"
    } else {
        b" HTTP/1.1"
    });
    request.extend_from_slice(eol);
    let many = oversized && form & 32 != 0;
    let headers = if many {
        Server::METRICS_MAX_HEADERS + 1 + usize::from(bytes.byte() % 8)
    } else {
        usize::from(bytes.byte() % 17)
    };
    for _ in 0..headers {
        let name_length = 1 + usize::from(bytes.byte() % 12);
        let name: Vec<u8> = (0..name_length).map(|_| token_char(bytes.byte())).collect();
        request.extend_from_slice(&name);
        request.extend_from_slice(b": ");
        let value_length = usize::from(bytes.byte() % 40);
        request.extend(bytes.take(value_length).iter().map(|&b| value_char(b)));
        request.extend_from_slice(eol);
    }
    if oversized && !many {
        request.extend_from_slice(b"X-Pad: ");
        request.resize(request.len() + Server::METRICS_MAX_REQUEST, b'a');
        request.extend_from_slice(eol);
    }
    request.extend_from_slice(eol);
    let fits = request.len() <= Server::METRICS_MAX_REQUEST + 1;
    let expected = if oversized || !fits {
        (431, true)
    } else {
        (200, !head_only)
    };
    request.extend_from_slice(bytes.take(usize::MAX));
    (request, expected)
}

/// The fuzz target. The first byte: bit 0 the client closes its sending side after the
/// bytes; bits 1-2 what the rest is: the bytes as they are, the bytes repeated past the
/// endpoint's limit, a valid request built from them, or a too large one. The second byte:
/// how many read lengths follow (one byte each, mostly short); then the rest.
pub fn run(data: &[u8]) {
    let mut bytes = Bytes::new(data);
    let flags = bytes.byte();
    let ended = flags & 1 != 0;
    let count = usize::from(bytes.byte() % 8);
    let cuts: Vec<usize> = (0..count)
        .map(|_| {
            let b = usize::from(bytes.byte());
            b * b / 8
        })
        .collect();
    let (input, expected) = match (flags >> 1) % 4 {
        0 => (bytes.take(usize::MAX).to_vec(), None),
        1 => {
            let rest = bytes.take(usize::MAX);
            let seed: &[u8] = if rest.is_empty() { b"GET " } else { rest };
            let length = Server::METRICS_MAX_REQUEST + 1 + rest.len();
            let input: Vec<u8> = seed.iter().copied().cycle().take(length).collect();
            (input, None)
        }
        mode => {
            let (input, expected) = build(&mut bytes, mode == 3);
            (input, Some(expected))
        }
    };
    if let Err(problem) = check(&input, &cuts, ended, expected) {
        panic!("metrics: {problem}");
    }
}
