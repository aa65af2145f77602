//! Rooms, messages, lists and the commands around them.

use super::*;
use crate::chat::cmd::MAX_LISTED;

#[test]
fn greets_on_connect() {
    let mut h = Harness::new();
    h.chat.connect(id(0), &mut h.out);
    let lines = h.out.take(0);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("* Welcome to chat-server."),
        "{lines:?}"
    );
    assert!(lines[0].contains("/nick NAME") && lines[0].contains("/help"));
}

#[test]
fn requires_a_nick_first() {
    let mut h = Harness::new();
    h.connect(0);
    for line in [
        "hello",
        "/join dev",
        "/who",
        "/rooms",
        "/msg a b",
        "/me x",
        "/leave dev",
    ] {
        assert_eq!(h.ask(0, line), ["! set a nick first: /nick NAME"], "{line}");
    }
    assert!(h.ask(0, "/help")[0].starts_with("* Commands"));
}

#[test]
fn room_messages_reach_other_members_and_echo_to_sender() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.login(1, "bob");
    h.out.take(0); // bob joined
    assert_eq!(h.ask(0, "Привет, мир"), ["You: Привет, мир"]);
    assert_eq!(h.out.take(1), ["[main] alice: Привет, мир"]);
}

#[test]
fn messages_go_to_the_active_room_only() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.login(1, "bob");
    h.login(2, "carol");
    h.ask(0, "/join dev");
    h.ask(1, "/join dev");
    h.out.take(0);
    h.out.take(2);
    assert_eq!(h.ask(0, "deploy?"), ["You: deploy?"]);
    assert_eq!(h.out.take(1), ["[dev] alice: deploy?"]);
    assert!(h.out.take(2).is_empty(), "carol is not in dev");
}

#[test]
fn join_announces_and_rejoin_only_activates() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.login(1, "bob");
    h.ask(1, "/join Dev");
    h.out.take(0);
    assert_eq!(h.ask(0, "/join dev"), ["* Joined Dev. Active room: Dev."]);
    assert_eq!(h.out.take(1), ["* [Dev] alice joined"]);
    assert_eq!(h.ask(0, "/join main"), ["* Active room: main."]);
    assert!(h.out.take(1).is_empty());
}

#[test]
fn leave_falls_back_to_main() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.login(1, "bob");
    h.ask(0, "/join dev");
    h.ask(1, "/join dev");
    h.out.take(0);
    assert_eq!(h.ask(1, "/leave DEV"), ["* Left dev. Active room: main."]);
    assert_eq!(h.out.take(0), ["* [dev] bob left"]);
    assert_eq!(h.ask(1, "back in main"), ["You: back in main"]);
    assert_eq!(h.out.take(0), ["[main] bob: back in main"]);
}

#[test]
fn leave_of_an_inactive_room_keeps_the_active_one() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.ask(0, "/join a");
    h.ask(0, "/join b");
    assert_eq!(h.ask(0, "/leave a"), ["* Left a. Active room: b."]);
}

#[test]
fn leave_errors() {
    let mut h = Harness::new();
    h.login(0, "alice");
    assert_eq!(h.ask(0, "/leave main"), ["! you cannot leave main"]);
    assert_eq!(h.ask(0, "/leave MAIN"), ["! you cannot leave main"]);
    assert_eq!(h.ask(0, "/leave nowhere"), ["! you are not in nowhere"]);
    assert_eq!(
        h.ask(0, "/leave a:b"),
        ["! invalid room name \"a:b\": use 1-32 letters, digits, _ or -"]
    );
}

#[test]
fn empty_rooms_disappear() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.ask(0, "/join tmp");
    assert_eq!(h.chat.room_count(), 2);
    h.ask(0, "/leave tmp");
    assert_eq!(h.chat.room_count(), 1);
    assert_eq!(h.ask(0, "/who tmp"), ["! no such room: tmp"]);
}

#[test]
fn private_messages() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.login(1, "Вася");
    h.out.take(0);
    assert_eq!(
        h.ask(0, "/msg ВАСЯ привет  тебе"),
        ["(PM to Вася) You: привет  тебе"]
    );
    assert_eq!(h.out.take(1), ["(PM) alice: привет  тебе"]);
    assert_eq!(h.ask(0, "/msg nobody hi"), ["! no such user: nobody"]);
    assert_eq!(h.ask(0, "/msg Вася"), ["! usage: /msg NICK TEXT"]);
}

#[test]
fn actions() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.login(1, "bob");
    h.out.take(0);
    assert_eq!(h.ask(0, "/me waves"), ["You: * alice waves"]);
    assert_eq!(h.out.take(1), ["[main] * alice waves"]);
}

#[test]
fn who_and_rooms_list_sorted() {
    let mut h = Harness::new();
    h.login(0, "zed");
    h.login(1, "Amy");
    h.login(2, "bob");
    h.ask(2, "/join Zoo");
    h.ask(1, "/join aqua");
    h.out.take(0);
    assert_eq!(
        h.ask(0, "/who main"),
        ["* Members of main (3): Amy, bob, zed"]
    );
    assert_eq!(
        h.ask(0, "/rooms"),
        ["* Rooms (3): aqua (1), main (3), Zoo (1)"]
    );
    assert_eq!(h.ask(0, "/who nope"), ["! no such room: nope"]);
}

#[test]
fn bad_input_gets_errors() {
    let mut h = Harness::new();
    h.login(0, "alice");
    assert_eq!(h.ask(0, "/frob"), ["! unknown command /frob (try /help)"]);
    assert_eq!(h.ask(0, "/join"), ["! usage: /join ROOM"]);
    assert!(h.ask(0, "").is_empty());
    assert!(h.ask(0, "  ").is_empty());
    h.chat.reject_line(id(0), LineError::TooLong, &mut h.out);
    h.chat
        .reject_line(id(0), LineError::InvalidUtf8, &mut h.out);
    assert_eq!(
        h.out.take(0),
        [
            "! line too long (max 4096 bytes); line discarded",
            "! invalid UTF-8; line discarded"
        ]
    );
}

#[test]
fn control_characters_never_reach_others() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.login(1, "bob");
    h.out.take(0);
    h.ask(0, "\u{1b}[2Jgotcha\u{7}");
    assert_eq!(h.out.take(1), ["[main] alice: [2Jgotcha"]);
}

#[test]
fn slash_slash_sends_a_literal_slash() {
    let mut h = Harness::new();
    h.login(0, "alice");
    assert_eq!(h.ask(0, "//shrug"), ["You: /shrug"]);
}

#[test]
fn shutdown_says_goodbye_to_everyone() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.connect(1);
    h.chat.shutdown(h.now, &mut h.out);
    assert_eq!(h.out.take(0), ["* Server shutting down. Bye!"]);
    assert_eq!(h.out.take(1), ["* Server shutting down. Bye!"]);
    assert_eq!(h.out.closed, [0, 1]);
}

#[test]
fn rooms_per_user_are_capped() {
    let mut h = Harness::with(ChatConfig {
        max_rooms_per_user: 3,
        ..ChatConfig::default()
    });
    h.login(0, "alice");
    h.ask(0, "/join a");
    h.ask(0, "/join b");
    assert_eq!(
        h.ask(0, "/join c"),
        ["! you are in too many rooms (max 3); /leave one first"]
    );
    assert_eq!(h.ask(0, "/join a"), ["* Active room: a."]);
    assert_eq!(h.ask(0, "/rooms"), ["* Rooms (3): a (1), b (1), main (1)"]);
    h.ask(0, "/leave b");
    assert_eq!(h.ask(0, "/join c"), ["* Joined c. Active room: c."]);
}

#[test]
fn rooms_on_the_server_are_capped() {
    let mut h = Harness::with(ChatConfig {
        max_rooms: 3,
        ..ChatConfig::default()
    });
    h.login(0, "alice");
    h.login(1, "bob");
    h.ask(0, "/join a");
    h.ask(0, "/join b");
    assert_eq!(
        h.ask(1, "/join c"),
        ["! too many rooms on this server (max 3)"]
    );
    // Rooms that exist can still be joined; a room that empties makes room for a new one.
    assert_eq!(h.ask(1, "/join A"), ["* Joined a. Active room: a."]);
    h.ask(0, "/leave b");
    assert_eq!(h.ask(1, "/join c"), ["* Joined c. Active room: c."]);
    assert_eq!(h.ask(0, "/rooms"), ["* Rooms (3): a (2), c (1), main (2)"]);
}

#[test]
fn a_restored_session_does_not_create_rooms_past_the_cap() {
    let mut h = Harness::with(ChatConfig {
        max_rooms: 3,
        ..ChatConfig::default()
    });
    h.login(0, "alice");
    h.ask(0, "/join a");
    h.ask(0, "/join b");
    h.drop_client(0);
    h.login(1, "bob");
    h.ask(1, "/join x");
    h.ask(1, "/join b");
    h.connect(2);
    assert_eq!(
        h.ask(2, "/nick alice"),
        [
            "* Welcome back, alice. Rooms: main, b. Active room: b.",
            "! too many rooms on this server (max 3)",
        ]
    );
}

#[test]
fn long_lists_are_cut_to_the_busiest_rooms_and_first_members() {
    let mut h = Harness::new();
    for id in 0..=MAX_LISTED {
        h.login(id, &format!("u{id:03}"));
        h.ask(id, &format!("/join r{id:03}"));
    }
    h.ask(0, "/join r001");
    let rooms = h.ask(0, "/rooms");
    let members = h.ask(0, "/who main");
    assert!(rooms[0].starts_with(&format!("* Rooms ({}): main (", MAX_LISTED + 2)));
    assert!(
        rooms[0].contains("r001 (2)"),
        "the busiest rooms are listed"
    );
    assert!(rooms[0].ends_with(", and 2 more"));
    assert!(members[0].ends_with(", and 1 more"));
    assert!(members[0].starts_with(&format!(
        "* Members of main ({}): u000, u001,",
        MAX_LISTED + 1
    )));
    assert!(!members[0].contains(&format!("u{MAX_LISTED:03}")));
}

#[test]
fn rooms_over_the_announce_limit_are_quiet() {
    let mut h = Harness::with(ChatConfig {
        announce_limit: 3,
        ..ChatConfig::default()
    });
    for (id, nick) in ["ann", "bob", "cy"].into_iter().enumerate() {
        h.login(id, nick);
        h.ask(id, "/join r");
    }
    assert_eq!(
        h.out.take(0),
        [
            "* [main] bob joined",
            "* [r] bob joined",
            "* [main] cy joined",
            "* [r] cy joined"
        ]
    );
    h.login(3, "dee");
    assert_eq!(
        h.ask(3, "/join r"),
        [
            "* Joined r. Active room: r.",
            "* r has 4 members: arrivals and departures are not announced in rooms of more \
             than 3; /who r lists them."
        ]
    );
    h.ask(3, "/nick dora");
    h.ask(3, "/leave r");
    assert_eq!(
        h.out.take(0),
        Vec::<String>::new(),
        "dee came and went quietly"
    );
    h.ask(2, "/leave r");
    assert_eq!(h.out.take(0), ["* [r] cy left"], "r is back to 3 members");

    // Users on other nodes count too, and their presence is quiet in a big room as well.
    h.chat.deliver_remote(
        "n2",
        &Event::Presence {
            room: "r",
            nick: "eve",
            change: Presence::Joined,
        },
        Instant::now(),
        &mut h.out,
    );
    assert_eq!(h.out.take(0), ["* [r] eve joined"]);
    h.chat.deliver_remote(
        "n2",
        &Event::Presence {
            room: "r",
            nick: "fay",
            change: Presence::Joined,
        },
        Instant::now(),
        &mut h.out,
    );
    assert_eq!(h.out.take(0), Vec::<String>::new());
    assert_eq!(
        h.ask(0, "/who r"),
        ["* Members of r (4): ann, bob, eve, fay"]
    );
}
