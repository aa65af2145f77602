//! The line decoder against itself: the same bytes fed whole, cut into arbitrary reads, and fed
//! with arbitrary per-turn line budgets (as the poll loop does) must give the same lines,
//! refusals and telnet answers in the same order; and valid UTF-8 (which has no telnet byte)
//! must come out as exactly its lines, the overlong ones refused.

use chat_server::protocol::{Decoded, LineDecoder, LineError};

use super::Bytes;

/// One thing the decoder handed out, owned so that runs can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A line.
    Line(String),
    /// A refused line.
    Refused(LineError),
    /// Telnet bytes for the client.
    Telnet(Vec<u8>),
}

impl Output {
    fn from(decoded: Decoded<'_>) -> Self {
        match decoded {
            Decoded::Line(line) => Output::Line(line.to_owned()),
            Decoded::Refused(error) => Output::Refused(error),
            Decoded::Telnet(bytes) => Output::Telnet(bytes.to_vec()),
        }
    }
}

/// Most bytes the decoder may buffer for an unfinished line: the limit, one byte for a CR the
/// line end will strip, and up to three continuation bytes of one UTF-8 sequence that telnet
/// had replaced with commands and the decoder put back without checking the limit (the line is
/// refused as too long when it goes on or ends, so only the buffer is a little larger).
pub fn max_buffered(max_line: usize) -> usize {
    max_line + 1 + 3
}

/// Feeds `input` in the pieces that `cuts` (piece lengths, used in turn) make of it, and
/// checks after every piece that the decoder buffers at most [`max_buffered`] bytes.
pub fn decode_cut(input: &[u8], max_line: usize, cuts: &[usize]) -> Result<Vec<Output>, String> {
    let mut decoder = LineDecoder::new();
    let mut out = Vec::new();
    let mut rest = input;
    let mut lengths = cuts.iter().cycle();
    while !rest.is_empty() {
        let length = lengths
            .next()
            .copied()
            .unwrap_or(rest.len())
            .min(rest.len());
        let (piece, tail) = rest.split_at(length);
        decoder.feed(piece, max_line, |d| out.push(Output::from(d)));
        if decoder.buffered() > max_buffered(max_line) {
            let buffered = decoder.buffered();
            return Err(format!("{buffered} bytes buffered, limit {max_line}"));
        }
        rest = tail;
    }
    Ok(out)
}

/// Feeds `input` the way the poll loop does: whole, but with a budget of lines a turn (taken
/// from `budgets` in turn, at least 1), feeding what was not consumed again the next turn.
pub fn decode_budgeted(
    input: &[u8],
    max_line: usize,
    budgets: &[usize],
) -> Result<Vec<Output>, String> {
    let mut decoder = LineDecoder::new();
    let mut out = Vec::new();
    let mut rest = input;
    let mut budget_of_turn = budgets.iter().cycle();
    while !rest.is_empty() {
        let mut budget = budget_of_turn.next().copied().unwrap_or(1).max(1);
        let before = budget;
        let used = decoder.feed_lines(rest, max_line, &mut budget, |d| out.push(Output::from(d)));
        if used == 0 || used > rest.len() || budget > before {
            return Err(format!("feed_lines used {used} of {} bytes", rest.len()));
        }
        rest = &rest[used..];
    }
    Ok(out)
}

/// What the decoder must hand out for `input` if it is valid UTF-8 (which has no telnet byte):
/// its lines with a CR before the newline stripped, a line longer than `max_line` refused, and
/// an unfinished last line refused as soon as it is too long even for a CR to be stripped.
pub fn plain_lines(input: &[u8], max_line: usize) -> Option<Vec<Output>> {
    let text = std::str::from_utf8(input).ok()?;
    let mut lines: Vec<&str> = text.split('\n').collect();
    let unfinished = lines.pop().unwrap_or_default();
    let mut out: Vec<Output> = lines
        .into_iter()
        .map(|line| {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.len() > max_line {
                Output::Refused(LineError::TooLong)
            } else {
                Output::Line(line.to_owned())
            }
        })
        .collect();
    if unfinished.len() > max_line + 1 {
        out.push(Output::Refused(LineError::TooLong));
    }
    Some(out)
}

/// Checks every promise of the decoder on `input` (see the module documentation).
pub fn check(
    input: &[u8],
    max_line: usize,
    cuts: &[usize],
    budgets: &[usize],
) -> Result<(), String> {
    let whole = decode_cut(input, max_line, &[input.len()])?;
    let cut = decode_cut(input, max_line, cuts)?;
    if cut != whole {
        return Err(format!("cut into {cuts:?}: {cut:?}, whole: {whole:?}"));
    }
    let budgeted = decode_budgeted(input, max_line, budgets)?;
    if budgeted != whole {
        return Err(format!(
            "budgets {budgets:?}: {budgeted:?}, whole: {whole:?}"
        ));
    }
    // Every line handed out ended at a newline, except that an overlong line is refused as
    // soon as it passes the limit, before its newline (if any) arrives.
    let newlines = input.iter().filter(|&&b| b == b'\n').count();
    let mut handed_out = 0;
    for output in &whole {
        match output {
            Output::Line(line) if line.len() > max_line || line.contains('\n') => {
                return Err(format!("line {line:?} breaks the rules (limit {max_line})"));
            }
            Output::Telnet(_) if !input.contains(&0xFF) => {
                return Err("telnet bytes for a client that sent none".into());
            }
            Output::Line(_) | Output::Refused(_) => handed_out += 1,
            Output::Telnet(_) => {}
        }
    }
    if handed_out > newlines + 1 {
        return Err(format!("{handed_out} lines out of {newlines} newlines"));
    }
    if let Some(expected) = plain_lines(input, max_line) {
        if whole != expected {
            return Err(format!("plain text gave {whole:?}, not {expected:?}"));
        }
    }
    Ok(())
}

/// The fuzz target: the first byte picks the line limit (small, so that overlong lines are
/// common), the next one how many read lengths follow, then the read lengths (which double as
/// line budgets); the rest is the byte stream.
pub fn run(data: &[u8]) {
    let mut bytes = Bytes::new(data);
    let max_line = 1 + usize::from(bytes.byte() % 64);
    let count = usize::from(bytes.byte() % 8);
    let cuts: Vec<usize> = (0..count).map(|_| usize::from(bytes.byte()) + 1).collect();
    let budgets: Vec<usize> = cuts.iter().map(|c| c % 5 + 1).collect();
    let input = bytes.take(usize::MAX);
    if let Err(problem) = check(input, max_line, &cuts, &budgets) {
        panic!("decoder: {problem}");
    }
}
