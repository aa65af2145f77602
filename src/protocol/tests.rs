//! Unit tests of the decoder, the command parser and the name rules.

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
fn a_line_telnet_repaired_but_still_broken_is_blamed_on_telnet() {
    // "/join кухня" as a real telnet sends it in 7-bit mode: у's 0x83 becomes IP, я's 0x8F
    // AO, and х's 0x85 (^E) is dropped without a trace.
    let input = b"/join \xd0\xba\xd1\xff\xf4\xff\xfd\x06\xd1\xd0\xbd\xd1\xff\xf5\xff\xfd\x06\r\n";
    assert_eq!(decode(&[input], 100), [Err(LineError::TelnetMangled)]);
    // The next line is judged on its own.
    assert_eq!(
        decode(&[input, b"\xd1\n"], 100)[1],
        Err(LineError::InvalidUtf8)
    );
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
    assert_eq!(
        Command::parse("/nick Вася"),
        Ok(Command::Nick("Вася", None))
    );
    assert_eq!(
        Command::parse("/nick Вася  correct horse "),
        Ok(Command::Nick("Вася", Some("correct horse")))
    );
    assert_eq!(
        Command::parse("/register  s3cret "),
        Ok(Command::Register("s3cret"))
    );
    assert_eq!(
        Command::parse("/password new"),
        Ok(Command::Password("new"))
    );
    assert_eq!(Command::parse("/unregister"), Ok(Command::Unregister));
    assert_eq!(Command::parse("/TOKEN"), Ok(Command::Token));
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
        Err(ParseError::Usage("/nick NAME [PASSWORD]"))
    );
    assert_eq!(
        Command::parse("/register   "),
        Err(ParseError::Usage("/register PASSWORD"))
    );
    assert_eq!(
        Command::parse("/password"),
        Err(ParseError::Usage("/password NEW"))
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
    assert_eq!(unknown, ParseError::Unknown("frob".to_string()));
    assert_eq!(
        Command::parse("/nick a b"),
        Ok(Command::Nick("a", Some("b")))
    );
}

#[test]
fn commands_that_cost_the_server_more_cost_more_tokens() {
    assert_eq!(line_cost("hello"), 1);
    assert_eq!(line_cost("/me waves"), 1);
    assert_eq!(line_cost("/msg bob hi"), 1);
    assert_eq!(line_cost("/join dev"), 3);
    assert_eq!(line_cost("/WHO"), 3);
    assert_eq!(line_cost("/nick alice"), 5);
    assert_eq!(line_cost("/list"), 5);
    // Priced as the chat will run it: a control character does not hide a command.
    assert_eq!(line_cost("/ni\u{1}ck alice"), 5);
    // Unknown commands and usage errors cost what a message costs.
    assert_eq!(line_cost("/frob"), 1);
    assert_eq!(line_cost("/join"), 1);
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

/// Property tests: the checks the fuzz targets run (`fuzz/src/`), on generated input.
mod properties {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use crate::fuzz::{command, decoder};

    /// Bytes that make a stream interesting: letters, line ends, telnet commands, pieces of
    /// multi-byte UTF-8, and anything.
    fn stream_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            4 => b'a'..=b'e',
            2 => Just(b'\n'),
            1 => Just(b'\r'),
            1 => Just(0xFF),
            1 => 236u8..=255,
            1 => prop::sample::select(vec![0xD0, 0xB4, 0xD1, 0x83, 0xE2, 0x82, 0xAC, 0xF0, 0x9F]),
            1 => any::<u8>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn decoding_does_not_depend_on_how_the_stream_is_cut(
            input in vec(stream_byte(), 0..300),
            max_line in 1usize..40,
            cuts in vec(1usize..50, 1..8),
            budgets in vec(1usize..4, 1..4),
        ) {
            prop_assert_eq!(decoder::check(&input, max_line, &cuts, &budgets), Ok(()));
        }

        #[test]
        fn text_decodes_to_its_lines(
            text in "[a-zя€😀\r\n ]{0,200}",
            max_line in 1usize..40,
            cuts in vec(1usize..50, 1..8),
        ) {
            prop_assert!(decoder::plain_lines(text.as_bytes(), max_line).is_some());
            prop_assert_eq!(decoder::check(text.as_bytes(), max_line, &cuts, &[1, 2]), Ok(()));
        }

        #[test]
        fn any_line_strips_and_parses_as_promised(line in any::<String>()) {
            prop_assert_eq!(command::check(&line), Ok(()));
        }

        #[test]
        fn command_lines_strip_and_parse_as_promised(
            line in "/{0,2}(nick|JOIN|leave|who|msg|me|rooms|quit|frob)? {0,2}[a-zА-я_\u{1b}\u{202e}\u{130} -]{0,40}",
        ) {
            prop_assert_eq!(command::check(&line), Ok(()));
        }
    }
}
