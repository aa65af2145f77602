//! The payload every message carries: `@ld SENDER NANOS xxxx...`, with fixed-width fields,
//! padded to the payload size. A payload always ends its line, so a receiver finds it at a
//! fixed distance from the line's end without searching, and reads the sender and the send
//! time with the digit parsers here, which are cheap enough for millions of lines a second.
//!
//! This file uses nothing else of the harness: `tests/load_payload.rs` includes it, so that
//! `cargo test` runs its unit tests (a bench with `harness = false` runs none).

use std::io::Write;

/// The marker that starts every payload.
pub const MARK: &[u8] = b"@ld ";
/// The payload's fixed-width header: marker, 8-digit sender, 16-digit nanoseconds, spaces.
pub const HEADER: usize = MARK.len() + 8 + 1 + 16 + 1;

/// Appends a payload of `size` bytes (at least [`HEADER`]): the header with the sender's
/// number (its last 8 digits) and the send time in nanoseconds, then padding.
pub fn write_payload(out: &mut Vec<u8>, sender: u64, nanos: u64, size: usize) {
    let start = out.len();
    // Writing into a Vec cannot fail.
    let _ = write!(out, "@ld {:08} {:016} ", sender % 100_000_000, nanos);
    out.resize(start + size, b'x');
}

/// Where the payload of `size` bytes that ends `line` starts, if the line ends with one.
pub fn payload_start(line: &[u8], size: usize) -> Option<usize> {
    let at = line.len().checked_sub(size)?;
    line[at..].starts_with(MARK).then_some(at)
}

/// The fields of a payload's header.
pub struct Header<'a> {
    /// The header without its marker: sender, a space, nanoseconds, a space.
    fields: &'a [u8],
}

impl<'a> Header<'a> {
    /// The header of the payload at `at` in `line` (from [`payload_start`], so that `line`
    /// holds at least [`HEADER`] bytes from `at`).
    pub fn at(line: &'a [u8], at: usize) -> Self {
        Self {
            fields: &line[at + MARK.len()..at + HEADER],
        }
    }

    /// When the message was sent, in nanoseconds since the run's epoch.
    pub fn nanos(&self) -> Option<u64> {
        parse_16_digits(&self.fields[9..25])
    }

    /// The sender's number (its last 8 digits).
    pub fn sender(&self) -> Option<u64> {
        parse_8_digits(&self.fields[..8])
    }
}

/// Eight ASCII digits as a number, all eight at once (the harness parses one timestamp per
/// delivery, millions a second, and must stay cheaper than the server it measures).
pub fn parse_8_digits(text: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = text.try_into().ok()?;
    let v = u64::from_le_bytes(bytes);
    // Every byte in 0x30..=0x39: its high nibble is 3, and adding 6 does not carry out of it.
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    if v & HIGH != ZEROS || v.wrapping_add(0x0606_0606_0606_0606) & HIGH != ZEROS {
        return None;
    }
    // The first digit is the lowest byte: fold neighbours into pairs, fours, then all eight.
    let d = v - ZEROS;
    let d = (d.wrapping_mul(10) + (d >> 8)) & 0x00FF_00FF_00FF_00FF;
    let d = (d.wrapping_mul(100) + (d >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((d.wrapping_mul(10_000) + (d >> 32)) & 0xFFFF_FFFF)
}

/// Sixteen ASCII digits as a number.
pub fn parse_16_digits(text: &[u8]) -> Option<u64> {
    if text.len() != 16 {
        return None;
    }
    let (high, low) = text.split_at(8);
    Some(parse_8_digits(high)? * 100_000_000 + parse_8_digits(low)?)
}

/// `n` in base 36 (digits, then lower-case letters): short nicks that stay unique.
pub fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.iter().rev().map(|&digit| char::from(digit)).collect()
}

/// Numbers the digit parsers must read back as the senders format them.
const DIGIT_SAMPLES: [u64; 8] = [
    0,
    1,
    9,
    10,
    12_345_678,
    99_999_999,
    1_234_567_890_123_456,
    9_999_999_999_999_999,
];

/// Eight-byte fields `parse_8_digits` must refuse: a letter, the bytes just below and above
/// the digits, a space, and the wrong lengths.
const NOT_EIGHT_DIGITS: [&str; 6] = [
    "1234567a",
    "/2345678",
    ":2345678",
    "1234 678",
    "1234567",
    "123456789",
];

/// Checks the digit parsers against the formatting the senders use, and on what is not digits
/// (the smoke run calls it, as the bench's own unit tests do not run there).
pub fn check_digit_parsers() -> Result<(), String> {
    for n in DIGIT_SAMPLES {
        let text = format!("{n:016}");
        if parse_16_digits(text.as_bytes()) != Some(n) {
            return Err(format!("parse_16_digits({text}) is wrong"));
        }
        let text = format!("{:08}", n % 100_000_000);
        if parse_8_digits(text.as_bytes()) != Some(n % 100_000_000) {
            return Err(format!("parse_8_digits({text}) is wrong"));
        }
    }
    for bad in NOT_EIGHT_DIGITS {
        if parse_8_digits(bad.as_bytes()).is_some() {
            return Err(format!("parse_8_digits accepts {bad:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    // `clippy --all-targets` compiles the bench itself with cfg(test) but, as it has
    // `harness = false`, without its #[test] fns: the import is unused there.
    #[allow(unused_imports)]
    use super::*;

    #[test]
    fn the_runtime_check_passes() {
        assert_eq!(check_digit_parsers(), Ok(()));
    }

    #[test]
    fn parse_16_digits_reads_what_senders_write() {
        for n in DIGIT_SAMPLES {
            assert_eq!(parse_16_digits(format!("{n:016}").as_bytes()), Some(n));
        }
    }

    #[test]
    fn parse_8_digits_reads_what_senders_write() {
        for n in DIGIT_SAMPLES.map(|n| n % 100_000_000) {
            assert_eq!(parse_8_digits(format!("{n:08}").as_bytes()), Some(n));
        }
    }

    #[test]
    fn parse_8_digits_refuses_what_is_not_eight_digits() {
        for bad in NOT_EIGHT_DIGITS {
            assert_eq!(parse_8_digits(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn parse_16_digits_refuses_other_lengths_and_non_digits() {
        assert_eq!(parse_16_digits(b"123456781234567"), None);
        assert_eq!(parse_16_digits(b"12345678123456789"), None);
        assert_eq!(parse_16_digits(b"1234567812345x78"), None);
        assert_eq!(parse_16_digits(b"12x4567812345678"), None);
    }

    #[test]
    fn base36_counts_in_digits_then_letters() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        assert_eq!(base36(1295), "zz");
        assert_eq!(base36(u64::MAX), "3w5e11264sgsf");
    }

    #[test]
    fn a_payload_is_found_at_the_end_of_its_line_and_read_back() {
        let mut line = b"You: ".to_vec();
        write_payload(&mut line, 1_234_567_890, 42, 64);
        assert_eq!(line.len(), 5 + 64);
        assert!(line[5..].starts_with(MARK));
        assert_eq!(line[5 + HEADER - 1], b' ');
        let at = payload_start(&line, 64);
        assert_eq!(at, Some(5));
        let header = Header::at(&line, 5);
        assert_eq!(header.sender(), Some(34_567_890));
        assert_eq!(header.nanos(), Some(42));
    }

    #[test]
    fn a_line_without_a_payload_is_not_taken_for_one() {
        assert_eq!(payload_start(b"* Welcome, somebody.", 64), None);
        assert_eq!(payload_start(b"short", 64), None);
        let mut line = Vec::new();
        write_payload(&mut line, 7, 7, 64);
        assert_eq!(payload_start(&line, 63), None);
    }
}
