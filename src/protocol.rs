//! The wire protocol: turning a TCP byte stream into text lines, and text lines into commands.
//!
//! [`LineDecoder`] splits raw input into lines (LF, optional CR), strips telnet IAC sequences,
//! enforces the maximum line length with bounded memory and reports invalid UTF-8, all across
//! arbitrary read boundaries. [`Command::parse`] turns one decoded line into a [`Command`], and
//! [`validate_name`] holds the rules shared by nicks and room names. Nothing here does I/O.

use std::fmt;

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

/// The longest nick or room name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

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
        let mangled = std::mem::take(&mut self.commands_in_line);
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

/// One parsed client line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `/nick NAME`
    Nick(&'a str),
    /// `/join ROOM`
    Join(&'a str),
    /// `/leave ROOM`
    Leave(&'a str),
    /// `/rooms`
    Rooms,
    /// `/who [ROOM]`
    Who(Option<&'a str>),
    /// `/msg NICK TEXT`
    Msg(&'a str, &'a str),
    /// `/me TEXT`
    Me(&'a str),
    /// `/help`
    Help,
    /// `/quit`
    Quit,
    /// A plain line for the active room (a leading `//` already unescaped to `/`).
    Say(&'a str),
    /// A blank line, ignored.
    Empty,
}

/// Why a line could not be parsed as a command; the text is shown to the user after `! `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// `/something` that is not a command.
    Unknown(String),
    /// A command without a required argument; holds the usage line.
    Usage(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Unknown(name) => write!(f, "unknown command /{name} (try /help)"),
            ParseError::Usage(usage) => write!(f, "usage: {usage}"),
        }
    }
}

impl<'a> Command<'a> {
    /// Parses one line (already free of control characters).
    pub fn parse(line: &'a str) -> Result<Command<'a>, ParseError> {
        let Some(rest) = line.strip_prefix('/') else {
            return Ok(if line.trim().is_empty() {
                Command::Empty
            } else {
                Command::Say(line)
            });
        };
        if rest.starts_with('/') {
            return Ok(Command::Say(rest));
        }
        let (name, args) = split_word(rest);
        let name_lower = name.to_ascii_lowercase();
        match name_lower.as_str() {
            "nick" => one_word(args, "/nick NAME").map(Command::Nick),
            "join" => one_word(args, "/join ROOM").map(Command::Join),
            "leave" | "part" => one_word(args, "/leave ROOM").map(Command::Leave),
            "rooms" | "list" => Ok(Command::Rooms),
            "who" | "names" => Ok(Command::Who(non_empty(args.trim()))),
            "msg" | "pm" => {
                let (nick, text) = split_word(args);
                match (non_empty(nick), non_empty(text.trim())) {
                    (Some(nick), Some(_)) => Ok(Command::Msg(nick, text)),
                    _ => Err(ParseError::Usage("/msg NICK TEXT")),
                }
            }
            "me" => non_empty(args.trim())
                .map(|_| Command::Me(args))
                .ok_or(ParseError::Usage("/me TEXT")),
            "help" => Ok(Command::Help),
            "quit" | "exit" => Ok(Command::Quit),
            _ => Err(ParseError::Unknown(name.to_string())),
        }
    }
}

/// Splits off the first space-separated word; the rest keeps its inner spacing.
fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim_start_matches(' ');
    match text.find(' ') {
        Some(at) => (&text[..at], text[at + 1..].trim_start_matches(' ')),
        None => (text, ""),
    }
}

/// The whole (trimmed) argument, which must be present. Extra words are kept so that name
/// validation can name the offending value in full (`invalid nick "a b"`).
fn one_word<'a>(args: &'a str, usage: &'static str) -> Result<&'a str, ParseError> {
    non_empty(args.trim()).ok_or(ParseError::Usage(usage))
}

fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

/// Checks the rules shared by nicks and room names: 1 to 32 letters, digits, `_` or `-`.
pub fn validate_name(name: &str) -> bool {
    let mut count = 0;
    for c in name.chars() {
        count += 1;
        if count > MAX_NAME_CHARS || !(c.is_alphanumeric() || c == '_' || c == '-') {
            return false;
        }
    }
    count > 0
}

/// The key under which a name is compared: its Unicode lowercase.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// Removes control characters (C0 except TAB, DEL, C1) so nobody can send terminal escapes to
/// others, and the bidirectional overrides, embeddings and isolates that could make one user's
/// text display as another kind of line.
///
/// Returns the input unchanged (borrowed) in the common case that it has none.
pub fn strip_controls(line: &str) -> std::borrow::Cow<'_, str> {
    let is_control = |c: char| {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if line.contains(is_control) {
        std::borrow::Cow::Owned(line.chars().filter(|&c| !is_control(c)).collect())
    } else {
        std::borrow::Cow::Borrowed(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one after another and collects the lines and errors (telnet answers
    /// are checked separately).
    fn decode(chunks: &[&[u8]], max_line: usize) -> Vec<Result<String, LineError>> {
        let mut decoder = LineDecoder::new();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk, max_line, |decoded| match decoded {
                Decoded::Line(line) => out.push(Ok(line.to_owned())),
                Decoded::Refused(error) => out.push(Err(error)),
                Decoded::Telnet(_) => {}
            });
        }
        out
    }

    /// Everything the decoder hands out, as text, for checking the order of telnet answers.
    fn decode_all(input: &[u8]) -> Vec<String> {
        let mut decoder = LineDecoder::new();
        let mut out = Vec::new();
        decoder.feed(input, 100, |decoded| out.push(format!("{decoded:?}")));
        out
    }

    fn ok(lines: &[&str]) -> Vec<Result<String, LineError>> {
        lines.iter().map(|l| Ok(l.to_string())).collect()
    }

    #[test]
    fn splits_lines_and_strips_cr() {
        assert_eq!(decode(&[b"a\nbc\r\n\n"], 100), ok(&["a", "bc", ""]));
    }

    #[test]
    fn joins_lines_split_across_reads() {
        assert_eq!(
            decode(&[b"hel", b"lo", b"\r", b"\nx\n"], 100),
            ok(&["hello", "x"])
        );
    }

    #[test]
    fn joins_a_multibyte_character_split_across_reads() {
        let text = "Привет".as_bytes();
        assert_eq!(
            decode(&[&text[..3], &text[3..], b"\n"], 100),
            ok(&["Привет"])
        );
    }

    #[test]
    fn keeps_nothing_without_a_newline_after_it() {
        let mut decoder = LineDecoder::new();
        let mut count = 0;
        decoder.feed(b"abc", 100, |_| count += 1);
        assert_eq!((count, decoder.buffered()), (0, 3));
    }

    #[test]
    fn strips_telnet_commands_anywhere() {
        // IAC DO ECHO in the middle, IAC NOP (two bytes) split over reads, IAC IAC.
        let input: &[&[u8]] = &[b"he\xff\xfd\x01llo", b"\xff", b"\xf1!\xff\xff\n"];
        assert_eq!(decode(input, 100), ok(&["hello!"]));
    }

    #[test]
    fn strips_telnet_subnegotiation() {
        let input: &[&[u8]] = &[b"a\xff\xfa\x18\x00xterm\xff", b"\xf0b\n"];
        assert_eq!(decode(input, 100), ok(&["ab"]));
    }

    #[test]
    fn plain_clients_never_get_telnet_bytes() {
        assert_eq!(
            decode_all("hi\nпривет\n".as_bytes()),
            [r#"Line("hi")"#, r#"Line("привет")"#]
        );
    }

    #[test]
    fn a_telnet_client_is_offered_binary_mode_and_its_timing_mark_answered_first() {
        // What netkit telnet sends for "ду" before binary mode: 0xD0 0xB4 0xD1, then IAC IP and
        // IAC DO TM in place of 0x83.
        let out = decode_all(b"\xd0\xb4\xd1\xff\xf4\xff\xfd\x06\r\nok\n");
        assert_eq!(
            out,
            [
                "Telnet([255, 253, 0])",
                "Telnet([255, 251, 6])",
                r#"Line("ду")"#,
                r#"Line("ok")"#,
            ]
        );
    }

    #[test]
    fn restores_every_letter_telnet_replaces_with_a_command() {
        // "Как у тебя?": К (0x9A, ^Z) becomes SUSP, у (0x83) IP, я (0x8F) AO.
        let input = b"\xd0\xff\xed\xff\xfd\x06\xd0\xb0\xd0\xba \xd1\xff\xf4\xff\xfd\x06 \
              \xd1\x82\xd0\xb5\xd0\xb1\xd1\xff\xf5\xff\xfd\x06?\r\n";
        assert_eq!(decode(&[input], 100), ok(&["Как у тебя?"]));
    }

    #[test]
    fn a_line_telnet_damaged_beyond_repair_is_refused_as_such() {
        // IAC EC (erase character) after a lead byte cannot stand for a continuation byte.
        let out = decode(&[b"\xd1\xff\xf7\r\n"], 100);
        assert_eq!(out, vec![Err(LineError::TelnetMangled)]);
    }

    #[test]
    fn telnet_options_are_refused_except_binary() {
        // IAC WILL NAWS, IAC DO ECHO, IAC DO BINARY, IAC WONT LINEMODE.
        let out = decode_all(b"\xff\xfb\x1f\xff\xfd\x01\xff\xfd\x00\xff\xfc\x22x\n");
        assert_eq!(
            out,
            [
                "Telnet([255, 253, 0, 255, 254, 31])",
                "Telnet([255, 252, 1])",
                r#"Line("x")"#,
            ]
        );
    }

    #[test]
    fn an_unterminated_subnegotiation_does_not_swallow_the_connection() {
        let mut input = b"\xff\xfa\x18".to_vec();
        input.extend(std::iter::repeat_n(b'a', 600));
        input.extend_from_slice(b"\nhello\n");
        let lines = decode(&[&input], 4096);
        assert_eq!(lines.last(), Some(&Ok("hello".to_string())));
    }

    #[test]
    fn reports_invalid_utf8_and_continues() {
        let out = decode(&[b"ok\n\xc3\x28\nnext\n"], 100);
        assert_eq!(
            out,
            vec![
                Ok("ok".into()),
                Err(LineError::InvalidUtf8),
                Ok("next".into())
            ]
        );
    }

    #[test]
    fn reports_an_overlong_line_once_and_resyncs_at_its_newline() {
        let long = vec![b'x'; 50];
        let out = decode(&[&long, &long, &long, b"\nafter\n"], 60);
        assert_eq!(out, vec![Err(LineError::TooLong), Ok("after".into())]);
    }

    #[test]
    fn reports_an_overlong_line_that_arrives_whole() {
        let mut input = vec![b'x'; 61];
        input.extend_from_slice(b"\nok\n");
        assert_eq!(
            decode(&[&input], 60),
            vec![Err(LineError::TooLong), Ok("ok".into())]
        );
    }

    #[test]
    fn accepts_a_line_of_exactly_the_limit_with_crlf() {
        let mut input = vec![b'y'; 60];
        input.extend_from_slice(b"\r\n");
        let (head, tail) = input.split_at(30);
        assert_eq!(decode(&[head, tail], 60), ok(&[&"y".repeat(60)]));
    }

    #[test]
    fn buffer_stays_bounded_for_an_endless_line() {
        let mut decoder = LineDecoder::new();
        let chunk = vec![b'z'; 4096];
        let mut errors = 0;
        for _ in 0..1000 {
            decoder.feed(&chunk, 4096, |decoded| {
                errors += usize::from(matches!(decoded, Decoded::Refused(_)));
            });
            assert!(decoder.buffered() <= 4097);
        }
        assert_eq!(errors, 1);
    }

    #[test]
    fn parses_commands() {
        assert_eq!(Command::parse("/nick Вася"), Ok(Command::Nick("Вася")));
        assert_eq!(Command::parse("/JOIN  dev "), Ok(Command::Join("dev")));
        assert_eq!(Command::parse("/leave dev"), Ok(Command::Leave("dev")));
        assert_eq!(Command::parse("/rooms"), Ok(Command::Rooms));
        assert_eq!(Command::parse("/who"), Ok(Command::Who(None)));
        assert_eq!(Command::parse("/who main"), Ok(Command::Who(Some("main"))));
        assert_eq!(
            Command::parse("/msg bob hi  there"),
            Ok(Command::Msg("bob", "hi  there"))
        );
        assert_eq!(Command::parse("/me waves"), Ok(Command::Me("waves")));
        assert_eq!(Command::parse("/help"), Ok(Command::Help));
        assert_eq!(Command::parse("/quit"), Ok(Command::Quit));
        assert_eq!(
            Command::parse("hello /world"),
            Ok(Command::Say("hello /world"))
        );
        assert_eq!(Command::parse("//shrug"), Ok(Command::Say("/shrug")));
        assert_eq!(Command::parse("   "), Ok(Command::Empty));
    }

    #[test]
    fn reports_bad_commands() {
        assert_eq!(
            Command::parse("/nick"),
            Err(ParseError::Usage("/nick NAME"))
        );
        assert_eq!(
            Command::parse("/join   "),
            Err(ParseError::Usage("/join ROOM"))
        );
        assert_eq!(
            Command::parse("/msg bob"),
            Err(ParseError::Usage("/msg NICK TEXT"))
        );
        assert_eq!(Command::parse("/me "), Err(ParseError::Usage("/me TEXT")));
        let unknown = Command::parse("/frob x").unwrap_err();
        assert_eq!(unknown.to_string(), "unknown command /frob (try /help)");
        assert_eq!(Command::parse("/nick a b"), Ok(Command::Nick("a b")));
    }

    #[test]
    fn validates_names() {
        for good in [
            "a",
            "Вася",
            "dev-ops",
            "кухня",
            "東京",
            "a_1",
            &"n".repeat(32),
        ] {
            assert!(validate_name(good), "{good}");
        }
        for bad in [
            "",
            "a b",
            "x:y",
            "[r]",
            "(pm)",
            "a,b",
            &"n".repeat(33),
            "é\u{301}",
        ] {
            assert!(!validate_name(bad), "{bad}");
        }
        assert_eq!(name_key("ВАСЯ"), name_key("вася"));
    }

    #[test]
    fn feed_lines_stops_after_the_budget_and_resumes() {
        let mut decoder = LineDecoder::new();
        let input = b"one\ntwo\nthr";
        let mut lines = Vec::new();
        let mut record = |d: Decoded<'_>| lines.push(format!("{d:?}"));
        let mut budget = 1;
        let used = decoder.feed_lines(input, 100, &mut budget, &mut record);
        assert_eq!((used, budget), (4, 0));
        let used2 = decoder.feed_lines(&input[used..], 100, &mut 1, &mut record);
        assert_eq!(used + used2, 8);
        let mut budget = 5;
        let used3 = decoder.feed_lines(&input[used + used2..], 100, &mut budget, &mut record);
        assert_eq!(
            (used3, budget),
            (3, 5),
            "an unfinished line is buffered whole"
        );
        decoder.feed(b"ee\n", 100, &mut record);
        assert_eq!(
            lines,
            [r#"Line("one")"#, r#"Line("two")"#, r#"Line("three")"#]
        );
    }

    #[test]
    fn strips_control_characters() {
        assert_eq!(strip_controls("a\u{1b}[31mb\0\tc\u{7f}"), "a[31mb\tc");
        assert_eq!(strip_controls("x\u{9b}31my\u{85}"), "x31my");
        assert_eq!(strip_controls("\u{202e}txet\u{2066}ok\u{2069}"), "txetok");
        assert_eq!(strip_controls("Привет, שלום"), "Привет, שלום");
        assert!(matches!(
            strip_controls("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
