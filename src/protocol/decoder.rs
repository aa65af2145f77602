//! Turning a connection's byte stream into text lines: line ends, the length limit with bounded
//! memory, invalid UTF-8 and telnet's IAC sequences, all across arbitrary read boundaries.

/// The telnet "interpret as command" byte; never part of valid UTF-8.
const IAC: u8 = 0xFF;
/// Telnet subnegotiation begin: everything up to `IAC SE` is skipped.
const SB: u8 = 250;
/// Telnet subnegotiation end.
const SE: u8 = 240;
/// Telnet WILL / WONT / DO / DONT take one option byte after them.
const WILL: u8 = 251;
const WONT: u8 = 252;
const DO: u8 = 253;
const DONT: u8 = 254;
/// Telnet commands that a client sends in place of a terminal control character.
const EOF: u8 = 236;
const SUSP: u8 = 237;
const ABORT: u8 = 238;
const BRK: u8 = 243;
const IP: u8 = 244;
const AO: u8 = 245;
const EL: u8 = 248;
/// Telnet option: 8-bit binary transmission (RFC 856).
const BINARY: u8 = 0;
/// Telnet option: timing mark (RFC 860); a client that sent "abort output" waits for its answer.
const TIMING_MARK: u8 = 6;
/// The longest subnegotiation skipped; past it the data is taken as text again, so a stray
/// `IAC SB` can never make a connection deaf.
const MAX_SUBNEGOTIATION: u16 = 512;
/// What the server proposes to a telnet client as soon as it shows itself: 8-bit binary mode in
/// both directions. Without it, telnet turns UTF-8 continuation bytes such as the second byte of
/// `у` (0x83, seen as ^C) into "interrupt process" commands and mangles Cyrillic text.
const TELNET_GREETING: [u8; 3] = [IAC, DO, BINARY];

/// Why a line from the client could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// The line was longer than the limit; the bytes up to its newline were discarded.
    TooLong,
    /// The line was not valid UTF-8 and was dropped.
    InvalidUtf8,
    /// The line was not valid UTF-8 because a telnet client replaced bytes of it with commands
    /// (before 8-bit mode was negotiated); it was dropped.
    TelnetMangled,
}

/// Where the decoder stands inside a telnet command sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Telnet {
    /// Plain data.
    #[default]
    Data,
    /// After `IAC`: the next byte is the command.
    Command,
    /// After `IAC WILL|WONT|DO|DONT` (the verb kept): the next byte is the option.
    Option(u8),
    /// Inside `IAC SB ...` (bytes seen so far), waiting for `IAC`.
    Subnegotiation(u16),
    /// Inside a subnegotiation, after `IAC`: `SE` ends it.
    SubnegotiationIac(u16),
}

/// Splits a connection's byte stream into UTF-8 lines with a hard length limit.
///
/// Only an unfinished line is kept between reads, and never more than `max_line` bytes of it, so
/// an idle connection costs no buffer memory and a hostile one cannot grow it without bound.
#[derive(Debug, Default)]
pub struct LineDecoder {
    partial: Vec<u8>,
    telnet: Telnet,
    /// Set after an overlong line was reported: bytes are dropped until the next newline.
    discarding: bool,
    /// Set when a telnet command arrived inside the current line.
    commands_in_line: bool,
    /// Set when a byte telnet replaced with a command was put back in the current line.
    restored_in_line: bool,
    /// Set once this client has shown it speaks telnet and was sent [`TELNET_GREETING`].
    negotiated: bool,
    /// Telnet answers owed to the client, to be sent before any further output.
    replies: Vec<u8>,
}

impl LineDecoder {
    /// Creates an empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of an unfinished line currently buffered.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Feeds `input` and calls `on_input` for every complete line (without its line end), every
    /// refused line, and every telnet answer owed to the client.
    ///
    /// `max_line` is the longest accepted line in bytes, not counting the line end. Lines are
    /// handed out as borrowed slices: when a line lies whole inside `input` it is not copied.
    /// Telnet answers are only ever produced in reply to telnet commands from the client, so
    /// plain TCP clients never receive a telnet byte.
    pub fn feed<F>(&mut self, input: &[u8], max_line: usize, on_input: F)
    where
        F: FnMut(Decoded<'_>),
    {
        let mut unlimited = usize::MAX;
        self.feed_lines(input, max_line, &mut unlimited, on_input);
    }

    /// Like [`LineDecoder::feed`], but hands out at most `lines` lines (used or refused),
    /// taking them off that budget, and returns how many bytes of `input` it consumed; the
    /// caller keeps the rest and feeds it later. This bounds the work one client can cause in
    /// one loop turn.
    pub fn feed_lines<F>(
        &mut self,
        input: &[u8],
        max_line: usize,
        lines: &mut usize,
        mut on_input: F,
    ) -> usize
    where
        F: FnMut(Decoded<'_>),
    {
        let budget = std::cell::Cell::new(*lines);
        let mut counted = |decoded: Decoded<'_>| {
            if !matches!(decoded, Decoded::Telnet(_)) {
                budget.set(budget.get().saturating_sub(1));
            }
            on_input(decoded);
        };
        let mut rest = input;
        while !rest.is_empty() && budget.get() > 0 {
            rest = self.feed_step(rest, max_line, &mut counted);
        }
        *lines = budget.get();
        input.len() - rest.len()
    }

    /// Consumes the next piece of `input` (a telnet byte, a line or the start of one) and
    /// returns what is left.
    fn feed_step<'a, F>(&mut self, input: &'a [u8], max_line: usize, on_input: &mut F) -> &'a [u8]
    where
        F: FnMut(Decoded<'_>),
    {
        if self.telnet != Telnet::Data {
            let rest = self.skip_telnet(input);
            if !self.replies.is_empty() {
                // Sent at once: a client that asked for a timing mark discards our output
                // until the answer arrives, so it must precede what follows.
                let replies = std::mem::take(&mut self.replies);
                on_input(Decoded::Telnet(&replies));
                self.replies = replies;
                self.replies.clear();
            }
            return rest;
        }
        // Plain data up to the next newline or IAC, whichever comes first.
        match memchr::memchr2(b'\n', IAC, input) {
            None => {
                self.push_partial(input, max_line, on_input);
                &[]
            }
            Some(at) if input[at] == IAC => {
                self.push_partial(&input[..at], max_line, on_input);
                self.telnet = Telnet::Command;
                &input[at + 1..]
            }
            Some(at) => {
                self.finish_line(&input[..at], max_line, on_input);
                &input[at + 1..]
            }
        }
    }

    /// Consumes bytes that belong to a telnet command, returning the rest.
    fn skip_telnet<'a>(&mut self, input: &'a [u8]) -> &'a [u8] {
        let byte = input[0];
        self.telnet = match (self.telnet, byte) {
            (Telnet::Command, SB) => Telnet::Subnegotiation(0),
            (Telnet::Command, WILL..=DONT) => Telnet::Option(byte),
            (Telnet::Command, IAC) => Telnet::Data, // an escaped 0xFF, never valid UTF-8
            (Telnet::Command, _) => {
                self.restore_replaced_byte(byte);
                self.greet_telnet();
                Telnet::Data
            }
            (Telnet::Option(verb), option) => {
                self.answer_option(verb, option);
                Telnet::Data
            }
            (Telnet::Subnegotiation(n), _) | (Telnet::SubnegotiationIac(n), _)
                if n >= MAX_SUBNEGOTIATION =>
            {
                Telnet::Data
            }
            (Telnet::Subnegotiation(n), IAC) => Telnet::SubnegotiationIac(n + 1),
            (Telnet::Subnegotiation(n), _) => Telnet::Subnegotiation(n + 1),
            (Telnet::SubnegotiationIac(_), SE) => Telnet::Data,
            (Telnet::SubnegotiationIac(n), _) => Telnet::Subnegotiation(n + 1),
            (Telnet::Data, _) => Telnet::Data,
        };
        &input[1..]
    }

    /// Undoes what telnet does to UTF-8 before binary mode is on.
    ///
    /// A telnet client in its default 7-bit mode compares each byte, high bit stripped, with
    /// the terminal's control characters, and sends a command instead of a byte that matches:
    /// the second byte of `у` (0x83) becomes "interrupt process" (^C). Inside a UTF-8 sequence
    /// such a command can only stand for that continuation byte, so it is put back (assuming
    /// the terminal's usual control characters). Anything else marks the line as mangled.
    fn restore_replaced_byte(&mut self, command: u8) {
        let control = match command {
            IP => 0x03,
            EOF => 0x04,
            AO => 0x0F,
            EL => 0x15,
            SUSP => 0x1A,
            BRK | ABORT => 0x1C,
            _ => {
                self.commands_in_line = true;
                return;
            }
        };
        if self.discarding || !inside_utf8_sequence(&self.partial) {
            self.commands_in_line = true;
        } else {
            self.partial.push(0x80 | control);
            // Telnet was at work in this line: it also drops some bytes outright (0x85, ^E),
            // so a line that is still not UTF-8 is its doing, not the user's.
            self.restored_in_line = true;
        }
    }

    /// Proposes 8-bit binary mode, once, to a client that turned out to be a telnet.
    fn greet_telnet(&mut self) {
        if !self.negotiated {
            self.negotiated = true;
            self.replies.extend_from_slice(&TELNET_GREETING);
        }
    }

    /// Answers option negotiation: binary mode is welcome, the timing mark is acknowledged
    /// (the client discards our output until it is), every other option is refused.
    fn answer_option(&mut self, verb: u8, option: u8) {
        self.greet_telnet();
        let answer = match (verb, option) {
            (_, BINARY) => None,
            (DO, TIMING_MARK) => Some(WILL),
            (DO, _) => Some(WONT),
            (WILL, _) => Some(DONT),
            // WONT and DONT confirm the state we are in already.
            (WONT | DONT, _) => None,
            _ => None,
        };
        if let Some(answer) = answer {
            self.replies.extend_from_slice(&[IAC, answer, option]);
        }
    }

    /// Buffers part of a line that has not ended yet, switching to discard mode past the limit.
    fn push_partial<F>(&mut self, bytes: &[u8], max_line: usize, on_line: &mut F)
    where
        F: FnMut(Decoded<'_>),
    {
        if self.discarding || bytes.is_empty() {
            return;
        }
        // One byte of slack for a CR that the line end will strip.
        if self.partial.len() + bytes.len() > max_line + 1 {
            self.partial = Vec::new();
            self.discarding = true;
            on_line(Decoded::Refused(LineError::TooLong));
            return;
        }
        self.partial.extend_from_slice(bytes);
    }

    /// Completes the current line with `tail` (the bytes before the newline) and reports it.
    fn finish_line<F>(&mut self, tail: &[u8], max_line: usize, on_line: &mut F)
    where
        F: FnMut(Decoded<'_>),
    {
        let mangled =
            std::mem::take(&mut self.commands_in_line) | std::mem::take(&mut self.restored_in_line);
        if self.discarding {
            self.discarding = false;
            return;
        }
        if self.partial.is_empty() {
            emit(tail, max_line, mangled, on_line);
            return;
        }
        if self.partial.len() + tail.len() > max_line + 1 {
            self.partial = Vec::new();
            on_line(Decoded::Refused(LineError::TooLong));
            return;
        }
        let mut line = std::mem::take(&mut self.partial);
        line.extend_from_slice(tail);
        emit(&line, max_line, mangled, on_line);
        // Keep the allocation for the next line unless it is unusually large.
        if line.capacity() <= 1024 {
            line.clear();
            self.partial = line;
        }
    }
}

/// True if `bytes` ends in the middle of a UTF-8 sequence (a lead byte still short of its
/// continuation bytes).
fn inside_utf8_sequence(bytes: &[u8]) -> bool {
    let mut continuations = 0;
    for &byte in bytes.iter().rev().take(4) {
        if byte & 0xC0 == 0x80 {
            continuations += 1;
            continue;
        }
        let length = match byte {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return false,
        };
        return continuations + 1 < length;
    }
    false
}

/// Strips the optional CR, checks length and UTF-8, and hands the line out.
fn emit<F>(line: &[u8], max_line: usize, mangled: bool, on_line: &mut F)
where
    F: FnMut(Decoded<'_>),
{
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > max_line {
        on_line(Decoded::Refused(LineError::TooLong));
        return;
    }
    match std::str::from_utf8(line) {
        Ok(text) => on_line(Decoded::Line(text)),
        Err(_) if mangled => on_line(Decoded::Refused(LineError::TelnetMangled)),
        Err(_) => on_line(Decoded::Refused(LineError::InvalidUtf8)),
    }
}

/// What the decoder hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A complete line, without its line end.
    Line(&'a str),
    /// A line that could not be used.
    Refused(LineError),
    /// Telnet negotiation bytes to send to the client as they are.
    Telnet(&'a [u8]),
}
