//! The user-visible lines against the shared fixture `tests/fixtures/server-lines.txt`, which
//! the desktop client's tests parse too: a wording change that would break the client's parser
//! has to change the fixture, and then the client's tests say whether it still understands it.

use crate::chat::messages::*;
use crate::chat::{ChatConfig, HistoryLimits, Presence};
use crate::protocol::{LineError, ParseError};

/// The fixture: one sample line of each kind, as `NAME<TAB>CLIENT KIND<TAB>LINE`.
const FIXTURE: &str = include_str!("../../../tests/fixtures/server-lines.txt");

/// Every message function with sample arguments, by the name the fixture gives it.
fn samples() -> Vec<(&'static str, String)> {
    let mut b = Vec::new();
    let no_history = HistoryLimits {
        per_room: 0,
        ..ChatConfig::default().history
    };
    let mut all: Vec<(&'static str, Vec<u8>)> = vec![
        (
            "said",
            said(&mut b, "кухня", "Вася", "Привет: как дела?").into(),
        ),
        ("acted", acted(&mut b, "main", "alice", "waves").into()),
        ("said_echo", said_echo(&mut b, "hi all").into()),
        ("acted_echo", acted_echo(&mut b, "alice", "waves").into()),
        ("private", private(&mut b, "alice", "psst").into()),
        (
            "private_echo",
            private_echo(&mut b, "bob", "see you").into(),
        ),
        (
            "replayed",
            replayed(&mut b, "dev", "14:05", "alice", "you there?", false).into(),
        ),
        (
            "replayed_action",
            replayed(&mut b, "dev", "14:06", "alice", "waves", true).into(),
        ),
        (
            "replayed_other_day",
            replayed(
                &mut b,
                "кухня",
                "2026-11-25 09:30",
                "Алиса",
                "Вася, ты где?",
                false,
            )
            .into(),
        ),
        (
            "missed_header",
            missed_header(&mut b, "dev", 3, "14:01", 0).into(),
        ),
        (
            "missed_header_lost",
            missed_header(&mut b, "dev", 200, "2026-11-25 09:00", 57).into(),
        ),
        ("missed_end", missed_end(&mut b, "dev").into()),
        ("history_header", history_header(&mut b, "dev", 20).into()),
        ("history_end", history_end(&mut b, "dev").into()),
        ("history_empty", history_empty(&mut b, "dev").into()),
        (
            "kept_private",
            kept_private(&mut b, "14:07", "alice", "call me").into(),
        ),
        (
            "kept_privates_header",
            kept_privates_header(&mut b, 2).into(),
        ),
        ("kept_privates_end", kept_privates_end(&mut b).into()),
        ("private_kept", private_kept(&mut b, "Вася").into()),
        ("mailbox_full", mailbox_full(&mut b, "Вася", 100).into()),
        ("registered", registered(&mut b, "Вася").into()),
        ("password_changed", password_changed(&mut b, "Вася").into()),
        ("unregistered", unregistered(&mut b, "Вася").into()),
        (
            "resume_token",
            resume_token(&mut b, "3q2-7wAAAAAAAAAAAAAAAA").into(),
        ),
        ("taken_over", taken_over(&mut b, "Вася").into()),
        ("nick_registered", nick_registered(&mut b, "Вася").into()),
        ("wrong_password", wrong_password(&mut b, "Вася").into()),
        ("stale_token", stale_token(&mut b, "Вася").into()),
        ("password_like_token", password_like_token(&mut b).into()),
        ("locked", locked(&mut b, "Вася", 42).into()),
        (
            "already_registered",
            already_registered(&mut b, "Вася").into(),
        ),
        ("not_registered", not_registered(&mut b, "Вася").into()),
        ("auth_failed", auth_failed(&mut b, "could not save").into()),
        ("accounts_unavailable", accounts_unavailable(&mut b).into()),
        ("greeting", greeting(&mut b, no_history).into()),
        (
            "greeting_history",
            greeting(&mut b, ChatConfig::default().history).into(),
        ),
        (
            "welcome",
            welcome(&mut b, false, "Вася", "main", "main").into(),
        ),
        (
            "welcome_back",
            welcome(&mut b, true, "alice", "main, dev", "dev").into(),
        ),
        ("active_room", active_room(&mut b, "dev").into()),
        ("joined", joined(&mut b, "кухня").into()),
        ("left", left(&mut b, "кухня", "main").into()),
        ("already_named", already_named(&mut b, "alice").into()),
        ("renamed", renamed(&mut b, "robert", "bob").into()),
        (
            "presence_joined",
            presence(&mut b, "main", "bob", Presence::Joined).into(),
        ),
        (
            "presence_left",
            presence(&mut b, "dev", "bob", Presence::Left).into(),
        ),
        (
            "presence_disconnected",
            presence(&mut b, "main", "bob", Presence::Disconnected).into(),
        ),
        (
            "presence_renamed",
            presence(&mut b, "main", "robert", Presence::Renamed("bob")).into(),
        ),
        ("quiet_room", quiet_room(&mut b, "main", 101, 100).into()),
        (
            "room_list",
            room_list(&mut b, 2, "dev (1), main (2)", 0).into(),
        ),
        (
            "room_list_cut",
            room_list(&mut b, 202, "a (9), b (8)", 200).into(),
        ),
        (
            "member_list",
            member_list(&mut b, "main", 2, "alice, Вася", 0).into(),
        ),
        ("bye", bye(&mut b, Some("alice")).into()),
        ("bye_anonymous", bye(&mut b, None).into()),
        ("shutting_down", shutting_down(&mut b).into()),
        ("cluster_restored", cluster_status(&mut b, true).into()),
        ("cluster_lost", cluster_status(&mut b, false).into()),
        (
            "too_long",
            refused_line(&mut b, LineError::TooLong, 4096).into(),
        ),
        (
            "invalid_utf8",
            refused_line(&mut b, LineError::InvalidUtf8, 4096).into(),
        ),
        (
            "telnet_mangled",
            refused_line(&mut b, LineError::TelnetMangled, 4096).into(),
        ),
        (
            "unknown_command",
            bad_command(&mut b, &ParseError::Unknown("frob".into())).into(),
        ),
        (
            "usage",
            bad_command(&mut b, &ParseError::Usage("/join ROOM")).into(),
        ),
        ("still_claiming", still_claiming(&mut b).into()),
        ("nick_first", nick_first(&mut b).into()),
        ("invalid_nick", invalid_nick(&mut b, "a b").into()),
        ("invalid_room", invalid_room(&mut b, "a:b").into()),
        ("nick_in_use", nick_in_use(&mut b, "alice").into()),
        ("nick_saved", nick_saved(&mut b, "alice").into()),
        ("too_many_rooms", too_many_rooms(&mut b, 100).into()),
        ("cannot_leave", cannot_leave(&mut b, "main").into()),
        ("not_in_room", not_in_room(&mut b, "dev").into()),
        ("no_such_room", no_such_room(&mut b, "dev").into()),
        ("no_such_user", no_such_user(&mut b, "zoe").into()),
    ];
    let mut index = 0;
    while let Some(line) = help(&mut b, index) {
        all.push(("help", line.into()));
        index += 1;
    }
    all.push(("server_full", SERVER_FULL.into()));
    all.push(("server_busy", SERVER_BUSY.into()));
    all.push((
        "too_many_rooms_on_server",
        too_many_rooms_on_server(&mut b, 100_000).into(),
    ));
    all.push((
        "too_many_from_address",
        too_many_from_address(&mut b, 20).into(),
    ));
    all.push(("login_timeout", login_timeout(&mut b, 60).into()));
    all.push(("flood_slowed", flood_slowed(&mut b, 10, 20).into()));
    all.into_iter()
        .map(|(name, bytes)| {
            let text = String::from_utf8(bytes).expect("lines are UTF-8");
            let text = text.strip_suffix("\r\n").expect("lines end with CRLF");
            (name, text.to_string())
        })
        .collect()
}

#[test]
fn every_line_kind_matches_the_shared_fixture() {
    let fixture: Vec<(&str, &str)> = FIXTURE
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut fields = l.splitn(3, '\t');
            let name = fields.next().unwrap_or_default();
            let line = fields.nth(1).unwrap_or_default();
            (name, line)
        })
        .collect();
    let samples = samples();
    let samples: Vec<(&str, &str)> = samples.iter().map(|(n, l)| (*n, l.as_str())).collect();
    assert_eq!(samples, fixture);
}

/// Prints every sample as `LINE<TAB>NAME<TAB>TEXT`, for `tests/fixtures/update-server-lines.sh`.
#[test]
#[ignore = "run by tests/fixtures/update-server-lines.sh"]
fn print_server_lines() {
    for (name, line) in samples() {
        println!("LINE\t{name}\t{line}");
    }
}
