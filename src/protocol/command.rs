//! One decoded line to one [`Command`]: the commands, their aliases and their usage lines, and
//! what each costs under flood control ([`Command::cost`], [`line_cost`]).

use super::strip_controls;

/// One parsed client line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `/nick NAME [SECRET]`: SECRET is a password or a resume token.
    Nick(&'a str, Option<&'a str>),
    /// `/register PASSWORD`
    Register(&'a str),
    /// `/password NEW`
    Password(&'a str),
    /// `/unregister`
    Unregister,
    /// `/token`
    Token,
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
    /// `/history [ROOM] [N]`
    History(Option<&'a str>, Option<usize>),
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

/// Why a line could not be parsed as a command (`chat::messages` words it for the user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// `/something` that is not a command.
    Unknown(String),
    /// A command without a required argument; holds the usage line.
    Usage(&'static str),
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
            "nick" => {
                let (name, secret) = split_word(args);
                let name = non_empty(name).ok_or(ParseError::Usage("/nick NAME [PASSWORD]"))?;
                Ok(Command::Nick(name, non_empty(secret.trim())))
            }
            "register" => secret(args, "/register PASSWORD").map(Command::Register),
            "password" => secret(args, "/password NEW").map(Command::Password),
            "unregister" => Ok(Command::Unregister),
            "token" => Ok(Command::Token),
            "join" => one_word(args, "/join ROOM").map(Command::Join),
            "leave" | "part" => one_word(args, "/leave ROOM").map(Command::Leave),
            "rooms" | "list" => Ok(Command::Rooms),
            "who" | "names" => Ok(Command::Who(non_empty(args.trim()))),
            "history" => parse_history(args),
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

/// `[ROOM] [N]`: one word is a count if it is a number, else a room.
fn parse_history(args: &str) -> Result<Command<'_>, ParseError> {
    const USAGE: ParseError = ParseError::Usage("/history [ROOM] [N]");
    let count = |word: &str| match word.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(USAGE),
    };
    let words: Vec<&str> = args.split_whitespace().collect();
    match words.as_slice() {
        [] => Ok(Command::History(None, None)),
        [word] if word.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(Command::History(None, Some(count(word)?)))
        }
        [room] => Ok(Command::History(Some(room), None)),
        [room, n] => Ok(Command::History(Some(room), Some(count(n)?))),
        _ => Err(USAGE),
    }
}

impl Command<'_> {
    /// Flood-control tokens this command costs its sender (docs/PROTOCOL.md, "Flood control").
    ///
    /// A plain line costs one token; commands that make the server do more cost more: `/nick`
    /// (a session restored, every room told, a cluster claim, a password checked),
    /// `/register` and `/password` (a password hashed), `/rooms` (every room counted and
    /// sorted), `/who` (a room's members sorted), `/join` (a room created or entered, its
    /// members told), `/history` (up to 200 lines of output), `/unregister` (a durable write),
    /// `/help` (a dozen lines of output). The match has no catch-all on purpose:
    /// a new command does not compile until its cost is chosen here.
    pub fn cost(&self) -> u32 {
        match self {
            Command::Nick(..) | Command::Rooms | Command::Register(_) | Command::Password(_) => 5,
            Command::Join(_) | Command::Who(_) | Command::History(..) | Command::Unregister => 3,
            Command::Help => 2,
            Command::Leave(_)
            | Command::Msg(..)
            | Command::Me(_)
            | Command::Quit
            | Command::Token
            | Command::Say(_)
            | Command::Empty => 1,
        }
    }
}

/// Flood-control tokens one decoded client line costs: the cost of the command the chat will
/// run for it (parsed the same way, control characters removed first, so hiding a command
/// behind a control character does not make it cheaper). A line that is not a valid command
/// costs one token, like a message.
pub fn line_cost(line: &str) -> u32 {
    Command::parse(&strip_controls(line)).map_or(1, |command| command.cost())
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

/// A password: the rest of the line without its outer spaces, which must not be empty.
fn secret<'a>(args: &'a str, usage: &'static str) -> Result<&'a str, ParseError> {
    non_empty(args.trim()).ok_or(ParseError::Usage(usage))
}

fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}
