//! Nicks, renames, saved sessions and their restoration.

use std::time::Duration;

use super::*;

#[test]
fn fresh_nick_starts_in_main() {
    let mut h = Harness::new();
    h.connect(0);
    assert_eq!(
        h.ask(0, "/nick Вася"),
        ["* Welcome, Вася. Rooms: main. Active room: main."]
    );
    assert!(h
        .out
        .events
        .contains(&"NickClaimed { nick: \"Вася\" }".to_string()));
}

#[test]
fn nick_rules() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.connect(1);
    assert_eq!(h.ask(1, "/nick ALICE"), ["! nick ALICE is in use"]);
    assert_eq!(
        h.ask(1, "/nick a:b"),
        ["! invalid nick \"a:b\": use 1-32 letters, digits, _ or -"]
    );
    let long = "я".repeat(33);
    assert_eq!(
        h.ask(1, &format!("/nick {long}")),
        [format!(
            "! invalid nick \"{long}\": use 1-32 letters, digits, _ or -"
        )]
    );
    assert_eq!(h.ask(1, "/nick"), ["! usage: /nick NAME [PASSWORD]"]);
}

#[test]
fn rename_tells_rooms_and_frees_the_old_nick() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.login(1, "bob");
    h.out.take(0);
    assert_eq!(
        h.ask(1, "/nick robert"),
        ["* You are now robert (was bob)."]
    );
    assert_eq!(h.out.take(0), ["* [main] bob is now robert"]);
    assert_eq!(h.ask(1, "/nick robert"), ["* You are already robert."]);
    assert_eq!(
        h.ask(1, "/nick Robert"),
        ["* You are now Robert (was robert)."]
    );
    h.login(2, "bob");
    assert_eq!(
        h.ask(2, "/who"),
        ["* Members of main (3): alice, bob, Robert"]
    );
}

#[test]
fn rename_onto_a_saved_session_is_refused() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.drop_client(0);
    h.login(1, "bob");
    assert_eq!(
        h.ask(1, "/nick alice"),
        ["! nick alice has a saved session; log in as alice to restore it"]
    );
}

#[test]
fn disconnect_saves_the_session_and_nick_restores_it() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.login(1, "bob");
    h.ask(0, "/join dev");
    h.ask(0, "/join кухня");
    h.ask(0, "/join dev");
    h.out.take(1);
    h.drop_client(0);
    assert_eq!(h.out.take(1), ["* [main] alice disconnected"]);
    assert_eq!(h.chat.saved_count(), 1);
    let saved = h
        .out
        .stored
        .sessions
        .iter()
        .find(|(nick, _)| nick == "alice");
    assert_eq!(
        saved.map(|(_, s)| (s.rooms.clone(), s.active.clone())),
        Some((
            vec!["main".into(), "dev".into(), "кухня".into()],
            "dev".into()
        ))
    );

    h.connect(5);
    assert_eq!(
        h.ask(5, "/nick Alice"),
        ["* Welcome back, Alice. Rooms: main, dev, кухня. Active room: dev."]
    );
    assert_eq!(h.out.take(1), ["* [main] Alice joined"]);
    assert_eq!(h.chat.saved_count(), 0);
    assert_eq!(h.ask(5, "still here"), ["You: still here"]);
    assert_eq!(h.ask(5, "/who"), ["* Members of dev (1): Alice"]);
}

#[test]
fn quit_says_goodbye_closes_and_saves() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.ask(0, "/join dev");
    assert_eq!(
        h.ask(0, "/quit"),
        ["* Bye, alice. Your session is kept; /nick alice restores it."]
    );
    assert_eq!(h.out.closed, [0]);
    // The loop reports the disconnect afterwards as well; that must be harmless.
    h.drop_client(0);
    assert!(h.ask(0, "ignored").is_empty());
    h.connect(0);
    assert_eq!(
        h.ask(0, "/nick alice"),
        ["* Welcome back, alice. Rooms: main, dev. Active room: dev."]
    );
}

#[test]
fn sessions_expire_after_the_ttl() {
    let mut h = Harness::with(ChatConfig {
        session_ttl: Duration::from_secs(60),
        ..ChatConfig::default()
    });
    h.login(0, "alice");
    h.ask(0, "/join dev");
    h.drop_client(0);
    h.now += Duration::from_secs(59);
    h.chat.expire_sessions(h.now, &mut h.out);
    assert_eq!(h.chat.saved_count(), 1);
    h.now += Duration::from_secs(2);
    // Not swept yet, but already too old to restore.
    h.connect(1);
    assert_eq!(
        h.ask(1, "/nick alice"),
        ["* Welcome, alice. Rooms: main. Active room: main."]
    );
    h.chat.expire_sessions(h.now, &mut h.out);
    assert_eq!(h.chat.saved_count(), 0);
}

#[test]
fn saved_sessions_are_capped_oldest_first() {
    let mut h = Harness::with(ChatConfig {
        max_saved_sessions: 3,
        ..ChatConfig::default()
    });
    for (id, nick) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        h.login(id, nick);
        h.ask(id, &format!("/join room{id}"));
        h.drop_client(id);
    }
    assert_eq!(h.chat.saved_count(), 3);
    h.connect(10);
    assert_eq!(
        h.ask(10, "/nick a"),
        ["* Welcome, a. Rooms: main. Active room: main."]
    );
    h.connect(11);
    assert_eq!(
        h.ask(11, "/nick e"),
        ["* Welcome back, e. Rooms: main, room4. Active room: room4."]
    );
}

#[test]
fn restoring_and_saving_repeatedly_keeps_the_expiry_index_small() {
    let mut h = Harness::new();
    for _ in 0..100 {
        h.login(0, "alice");
        h.drop_client(0);
    }
    assert_eq!(h.chat.saved_count(), 1);
    assert_eq!(h.chat.sessions.expiry_len(), 1);
}

#[test]
fn disconnect_of_an_anonymous_client_saves_nothing() {
    let mut h = Harness::new();
    h.connect(0);
    h.drop_client(0);
    assert_eq!(h.chat.saved_count(), 0);
    assert_eq!(h.chat.client_count(), 0);
}
