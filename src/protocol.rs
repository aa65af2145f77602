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
const DONT: u8 = 254;

/// The longest nick or room name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// Why a line from the client could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// The line was longer than the limit; the bytes up to its newline were discarded.
    TooLong,
    /// The line was not valid UTF-8 and was dropped.
    InvalidUtf8,
}

/// Where the decoder stands inside a telnet command sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Telnet {
    /// Plain data.
    #[default]
    Data,
    /// After `IAC`: the next byte is the command.
    Command,
    /// After `IAC WILL|WONT|DO|DONT`: the next byte is the option.
    Option,
    /// Inside `IAC SB ...`, waiting for `IAC`.
    Subnegotiation,
    /// Inside a subnegotiation, after `IAC`: `SE` ends it.
    SubnegotiationIac,
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

    /// Feeds `input` and calls `on_line` for every complete line (without its line end) or error.
    ///
    /// `max_line` is the longest accepted line in bytes, not counting the line end. Lines are
    /// handed out as borrowed slices: when a line lies whole inside `input` it is not copied.
    pub fn feed<F>(&mut self, mut input: &[u8], max_line: usize, mut on_line: F)
    where
        F: FnMut(Result<&str, LineError>),
    {
        while !input.is_empty() {
            if self.telnet != Telnet::Data {
                input = self.skip_telnet(input);
                continue;
            }
            // Plain data up to the next newline or IAC, whichever comes first.
            match memchr::memchr2(b'\n', IAC, input) {
                None => {
                    self.push_partial(input, max_line, &mut on_line);
                    return;
                }
                Some(at) if input[at] == IAC => {
                    self.push_partial(&input[..at], max_line, &mut on_line);
                    self.telnet = Telnet::Command;
                    input = &input[at + 1..];
                }
                Some(at) => {
                    self.finish_line(&input[..at], max_line, &mut on_line);
                    input = &input[at + 1..];
                }
            }
        }
    }

    /// Consumes bytes that belong to a telnet command, returning the rest.
    fn skip_telnet<'a>(&mut self, input: &'a [u8]) -> &'a [u8] {
        let byte = input[0];
        self.telnet = match (self.telnet, byte) {
            (Telnet::Command, SB) => Telnet::Subnegotiation,
            (Telnet::Command, WILL..=DONT) => Telnet::Option,
            (Telnet::Subnegotiation, IAC) => Telnet::SubnegotiationIac,
            (Telnet::Subnegotiation, _) => Telnet::Subnegotiation,
            (Telnet::SubnegotiationIac, SE) => Telnet::Data,
            (Telnet::SubnegotiationIac, _) => Telnet::Subnegotiation,
            // A two-byte command (or the escaped 0xFF 0xFF, never valid UTF-8) or an option byte.
            _ => Telnet::Data,
        };
        &input[1..]
    }

    /// Buffers part of a line that has not ended yet, switching to discard mode past the limit.
    fn push_partial<F>(&mut self, bytes: &[u8], max_line: usize, on_line: &mut F)
    where
        F: FnMut(Result<&str, LineError>),
    {
        if self.discarding || bytes.is_empty() {
            return;
        }
        // One byte of slack for a CR that the line end will strip.
        if self.partial.len() + bytes.len() > max_line + 1 {
            self.partial = Vec::new();
            self.discarding = true;
            on_line(Err(LineError::TooLong));
            return;
        }
        self.partial.extend_from_slice(bytes);
    }

    /// Completes the current line with `tail` (the bytes before the newline) and reports it.
    fn finish_line<F>(&mut self, tail: &[u8], max_line: usize, on_line: &mut F)
    where
        F: FnMut(Result<&str, LineError>),
    {
        if self.discarding {
            self.discarding = false;
            return;
        }
        if self.partial.is_empty() {
            emit(tail, max_line, on_line);
            return;
        }
        if self.partial.len() + tail.len() > max_line + 1 {
            self.partial = Vec::new();
            on_line(Err(LineError::TooLong));
            return;
        }
        let mut line = std::mem::take(&mut self.partial);
        line.extend_from_slice(tail);
        emit(&line, max_line, on_line);
        // Keep the allocation for the next line unless it is unusually large.
        if line.capacity() <= 1024 {
            line.clear();
            self.partial = line;
        }
    }
}

/// Strips the optional CR, checks length and UTF-8, and hands the line out.
fn emit<F>(line: &[u8], max_line: usize, on_line: &mut F)
where
    F: FnMut(Result<&str, LineError>),
{
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > max_line {
        on_line(Err(LineError::TooLong));
        return;
    }
    match std::str::from_utf8(line) {
        Ok(text) => on_line(Ok(text)),
        Err(_) => on_line(Err(LineError::InvalidUtf8)),
    }
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

/// Removes C0 control characters (except TAB) and DEL, so nobody can inject terminal escapes.
///
/// Returns the input unchanged (borrowed) in the common case that it has none.
pub fn strip_controls(line: &str) -> std::borrow::Cow<'_, str> {
    let is_control = |c: char| (c < ' ' && c != '\t') || c == '\u{7f}';
    if line.contains(is_control) {
        std::borrow::Cow::Owned(line.chars().filter(|&c| !is_control(c)).collect())
    } else {
        std::borrow::Cow::Borrowed(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one after another and collects what comes out.
    fn decode(chunks: &[&[u8]], max_line: usize) -> Vec<Result<String, LineError>> {
        let mut decoder = LineDecoder::new();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk, max_line, |line| out.push(line.map(str::to_owned)));
        }
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
            decoder.feed(&chunk, 4096, |line| errors += usize::from(line.is_err()));
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
    fn strips_control_characters() {
        assert_eq!(strip_controls("a\u{1b}[31mb\0\tc\u{7f}"), "a[31mb\tc");
        assert!(matches!(
            strip_controls("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
