//! Room history, the replay of what a returning user missed, `/history`, and private messages
//! kept for users who are away.

use std::time::Duration;

use super::*;

/// 2026-11-26 14:05:00 UTC.
const NOON_ISH: u64 = 1_795_701_900_000;

/// A harness whose wall clock reads [`NOON_ISH`] at its start.
fn pinned(config: ChatConfig) -> Harness {
    let mut h = Harness::with(config);
    h.chat.set_wall_clock(h.now, NOON_ISH);
    h
}

#[test]
fn a_returning_user_gets_exactly_what_was_posted_while_away() {
    let mut h = pinned(ChatConfig::default());
    h.login(0, "Алиса");
    h.login(1, "Вася");
    h.ask(0, "/join кухня");
    h.ask(1, "/join кухня");
    h.ask(0, "seen live");
    h.out.take(1);
    h.drop_client(1);
    h.now += Duration::from_secs(60);
    h.ask(0, "Вася, ты где?");
    h.ask(0, "/me машет");
    h.ask(0, "/join main");
    h.ask(0, "in main");
    h.connect(2);
    assert_eq!(
        h.ask(2, "/nick Вася"),
        [
            "* Welcome back, Вася. Rooms: main, кухня. Active room: кухня.",
            "* Missed in main: 1 message since 14:05 UTC.",
            "[main 14:06] Алиса: in main",
            "* End of missed messages in main.",
            "* Missed in кухня: 2 messages since 14:05 UTC.",
            "[кухня 14:06] Алиса: Вася, ты где?",
            "[кухня 14:06] * Алиса машет",
            "* End of missed messages in кухня.",
        ]
    );
    // Back for good: the next line is live, and nothing is replayed twice.
    h.ask(0, "welcome back");
    assert_eq!(h.out.take(2), ["[main] Алиса: welcome back"]);
    h.drop_client(2);
    h.connect(3);
    assert_eq!(
        h.ask(3, "/nick Вася"),
        ["* Welcome back, Вася. Rooms: main, кухня. Active room: кухня."]
    );
}

#[test]
fn messages_no_longer_kept_are_counted_and_old_days_dated() {
    let mut config = ChatConfig::default();
    config.history.per_room = 2;
    let mut h = pinned(config);
    h.login(0, "alice");
    h.login(1, "bob");
    h.drop_client(1);
    for n in 1..=5 {
        h.ask(0, &format!("line {n}"));
    }
    // Within the session's day, but on the next calendar day.
    h.now += Duration::from_secs(86_000);
    h.connect(2);
    assert_eq!(
        h.ask(2, "/nick bob"),
        [
            "* Welcome back, bob. Rooms: main. Active room: main.",
            "* Missed in main: 2 messages since 2026-11-26 14:05 UTC; 3 older ones are no \
             longer kept.",
            "[main 2026-11-26 14:05] alice: line 4",
            "[main 2026-11-26 14:05] alice: line 5",
            "* End of missed messages in main.",
        ]
    );
}

#[test]
fn history_zero_keeps_nothing_but_still_counts_what_was_missed() {
    let mut config = ChatConfig::default();
    config.history.per_room = 0;
    let mut h = pinned(config);
    h.connect(0);
    // The greeting does not promise history.
    h.chat.connect(id(9), &mut h.out);
    assert!(!h.out.take(9)[0].contains("history"));
    h.ask(0, "/nick alice");
    h.login(1, "bob");
    h.drop_client(1);
    h.ask(0, "gone");
    h.connect(2);
    assert_eq!(
        h.ask(2, "/nick bob"),
        [
            "* Welcome back, bob. Rooms: main. Active room: main.",
            "* Missed in main: 0 messages since 14:05 UTC; 1 older one is no longer kept.",
            "* End of missed messages in main.",
        ]
    );
    assert_eq!(h.ask(2, "/history"), ["* No messages are kept in main."]);
}

#[test]
fn the_byte_bound_drops_the_oldest_message_anywhere() {
    let mut config = ChatConfig::default();
    config.history.max_bytes = 400;
    let mut h = pinned(config);
    h.login(0, "alice");
    h.ask(0, "/join a");
    h.ask(0, "first in a");
    h.ask(0, "/join b");
    for n in 1..=3 {
        h.ask(0, &format!("b{n}"));
    }
    assert_eq!(h.ask(0, "/history a"), ["* No messages are kept in a."]);
    assert_eq!(
        h.ask(0, "/history b 9")[0],
        "* History of b: the last 3 messages."
    );
}

#[test]
fn history_shows_the_last_messages_of_a_room_one_is_in() {
    let mut h = pinned(ChatConfig::default());
    h.login(0, "alice");
    h.login(1, "bob");
    for n in 1..=25 {
        h.ask(0, &format!("m{n}"));
    }
    h.out.take(1);
    let last = h.ask(1, "/history");
    assert_eq!(last.len(), 22);
    assert_eq!(last[0], "* History of main: the last 20 messages.");
    assert_eq!(last[1], "[main 14:05] alice: m6");
    assert_eq!(last[20], "[main 14:05] alice: m25");
    assert_eq!(last[21], "* End of history of main.");
    assert_eq!(
        h.ask(1, "/history main 2"),
        [
            "* History of main: the last 2 messages.",
            "[main 14:05] alice: m24",
            "[main 14:05] alice: m25",
            "* End of history of main.",
        ]
    );
    assert_eq!(h.ask(1, "/history 1")[1], "[main 14:05] alice: m25");
    assert_eq!(h.ask(1, "/history dev"), ["! you are not in dev"]);
    assert_eq!(
        h.ask(1, "/history main x"),
        ["! usage: /history [ROOM] [N]"]
    );
    assert_eq!(h.ask(1, "/history 0"), ["! usage: /history [ROOM] [N]"]);
    h.ask(1, "/join dev");
    assert_eq!(h.ask(1, "/history"), ["* No messages are kept in dev."]);
}

#[test]
fn private_messages_to_someone_away_wait_for_their_return() {
    let mut h = pinned(ChatConfig::default());
    h.login(0, "alice");
    h.login(1, "bob");
    h.drop_client(1);
    h.out.take(0);
    h.now += Duration::from_secs(120);
    assert_eq!(
        h.ask(0, "/msg BOB call me"),
        [
            "(PM to BOB) You: call me",
            "* BOB is away; your message will be delivered when they return.",
        ]
    );
    h.ask(0, "/msg bob twice");
    assert_eq!(h.ask(0, "/msg nobody hi"), ["! no such user: nobody"]);
    h.connect(2);
    let back = h.ask(2, "/nick bob");
    h.out.take(0);
    assert_eq!(
        back[back.len() - 4..],
        [
            "* Missed while you were away: 2 private messages.",
            "(PM 14:07) alice: call me",
            "(PM 14:07) alice: twice",
            "* End of missed private messages.",
        ]
    );
    assert_eq!(h.ask(0, "/msg bob live"), ["(PM to bob) You: live"]);
    assert_eq!(h.out.take(2), ["(PM) alice: live"]);
}

#[test]
fn kept_private_messages_go_with_an_expired_session() {
    let mut h = pinned(ChatConfig {
        session_ttl: Duration::from_secs(60),
        ..ChatConfig::default()
    });
    h.login(0, "alice");
    h.login(1, "bob");
    h.drop_client(1);
    h.ask(0, "/msg bob secret");
    h.now += Duration::from_secs(61);
    h.chat.expire_sessions(h.now, &mut h.out);
    h.connect(2);
    assert_eq!(
        h.ask(2, "/nick bob"),
        ["* Welcome, bob. Rooms: main. Active room: main."]
    );
}

#[test]
fn a_full_mailbox_refuses_more() {
    let mut h = pinned(ChatConfig::default());
    h.login(0, "alice");
    h.login(1, "bob");
    h.drop_client(1);
    for n in 0..100 {
        h.ask(0, &format!("/msg bob {n}"));
    }
    assert_eq!(
        h.ask(0, "/msg bob one more"),
        ["! bob is away and has 100 messages waiting; message not kept"]
    );
}
