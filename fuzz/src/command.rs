//! A decoded line on its way to a command: control stripping, name validation and parsing.
//!
//! The promises checked: stripping leaves no control character, bidirectional override or
//! isolate, is idempotent, and borrows when there is nothing to strip; a valid name is 1 to 32
//! letters, digits, `_` or `-` (checked against a second, naive reading of that rule) and so
//! never contains what would make a server line ambiguous; parsing never panics and hands out
//! arguments of the shape each command needs.

use std::borrow::Cow;

use chat_server::protocol::{strip_controls, validate_name, Command, ParseError, MAX_NAME_CHARS};

/// Characters that a stripped line, and so any line the server sends, must not contain.
pub fn forbidden(c: char) -> bool {
    (c.is_control() && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The name rule read naively, to compare `validate_name` with.
fn naive_valid(name: &str) -> bool {
    let count = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&count)
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

/// Checks the name rules on `name`.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = validate_name(name);
    if valid != naive_valid(name) {
        return Err(format!("validate_name({name:?}) = {valid}"));
    }
    if valid && name.contains(|c: char| " []():,".contains(c) || forbidden(c)) {
        return Err(format!("valid name {name:?} could make a line ambiguous"));
    }
    Ok(())
}

/// Checks stripping and parsing of one line (as the decoder hands it out: no newline).
pub fn check(line: &str) -> Result<(), String> {
    let stripped = strip_controls(line);
    if let Some(c) = stripped.chars().find(|&c| forbidden(c)) {
        return Err(format!("{c:?} left in {stripped:?}"));
    }
    if strip_controls(&stripped) != stripped {
        return Err(format!("stripping {stripped:?} again changed it"));
    }
    let nothing_to_strip = !line.contains(forbidden);
    if nothing_to_strip != matches!(stripped, Cow::Borrowed(_)) {
        return Err(format!("{line:?} copied for nothing or not stripped"));
    }
    let trimmed = |s: &str| !s.is_empty() && s == s.trim();
    let shaped = match Command::parse(&stripped) {
        Ok(Command::Nick(arg, _) | Command::Join(arg) | Command::Leave(arg)) => {
            check_name(arg)?;
            trimmed(arg)
        }
        Ok(Command::Who(Some(arg))) => {
            check_name(arg)?;
            trimmed(arg)
        }
        Ok(Command::Msg(nick, text)) => {
            check_name(nick)?;
            !nick.is_empty() && !nick.contains(' ') && !text.trim().is_empty()
        }
        Ok(Command::Me(text)) => !text.trim().is_empty(),
        Ok(Command::Say(text)) => {
            // A leading `//` is a plain line with its first `/` removed; `/x` is never one.
            let escaped = stripped.starts_with("//");
            let expected = if escaped {
                &stripped[1..]
            } else {
                &stripped[..]
            };
            text == expected && !text.trim().is_empty() && (escaped || !text.starts_with('/'))
        }
        Ok(Command::Empty) => stripped.trim().is_empty(),
        Ok(
            Command::Who(None)
            | Command::Rooms
            | Command::Help
            | Command::Quit
            | Command::Unregister
            | Command::Token,
        ) => stripped.starts_with('/'),
        // A secret is the rest of the line, trimmed and never empty.
        Ok(Command::Register(secret) | Command::Password(secret)) => trimmed(secret),
        Ok(Command::History(room, count)) => {
            if let Some(room) = room {
                check_name(room)?;
            }
            stripped.starts_with('/') && count != Some(0)
        }
        Err(ParseError::Unknown(name)) => stripped.starts_with('/') && !name.contains(' '),
        Err(ParseError::Usage(usage)) => usage.starts_with('/'),
    };
    if !shaped {
        return Err(format!(
            "{stripped:?} parsed as {:?}",
            Command::parse(&stripped)
        ));
    }
    Ok(())
}

/// The fuzz target: the input, as (lossy) UTF-8, is cut at newlines into lines as the decoder
/// would hand them out.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        if let Err(problem) = check(line) {
            panic!("command: {problem}");
        }
    }
}
