//! The storage seam: the changes the chat hands a store add up to its state, and a chat
//! started from a store's snapshot carries on where the old one stopped.

use std::time::Duration;

use super::*;

/// The state a store that applied every change holds, against the chat's own.
fn assert_store_in_step(h: &Harness) {
    let mut stored = h.out.stored.clone();
    stored.normalize();
    let mut actual = h.chat.snapshot();
    actual.normalize();
    assert_eq!(stored, actual);
}

#[test]
fn the_changes_a_store_records_add_up_to_the_chat_state() {
    let mut config = ChatConfig {
        max_saved_sessions: 2,
        session_ttl: Duration::from_secs(600),
        ..ChatConfig::default()
    };
    config.history.per_room = 3;
    let mut h = Harness::with(config);
    h.login(0, "alice");
    h.login(1, "bob");
    h.ask(1, "/join dev");
    for n in 0..5 {
        h.ask(1, &format!("dev {n}"));
        h.ask(0, &format!("main {n}"));
    }
    assert_store_in_step(&h);
    h.drop_client(1);
    h.ask(0, "/msg bob one");
    h.ask(0, "/msg bob two");
    assert_store_in_step(&h);
    // Restoring takes the session and delivers the kept messages.
    h.connect(2);
    h.ask(2, "/nick bob");
    assert_store_in_step(&h);
    // Evicted past the cap: carol's session and what was kept for her go.
    for (id, nick) in [(3, "carol"), (4, "dave"), (5, "eve")] {
        h.login(id, nick);
        h.drop_client(id);
        if nick == "carol" {
            h.ask(0, "/msg carol lost");
        }
    }
    assert_store_in_step(&h);
    h.now += Duration::from_secs(601);
    h.chat.expire_sessions(h.now, &mut h.out);
    assert_store_in_step(&h);
    // A stop saves the sessions of everyone online.
    h.chat.shutdown(h.now, &mut h.out);
    assert_store_in_step(&h);
    assert_eq!(h.out.stored.sessions.len(), 2);
}

#[test]
fn a_chat_restored_from_a_snapshot_replays_what_was_missed() {
    let mut before = Harness::new();
    before.login(0, "alice");
    before.login(1, "bob");
    before.ask(1, "/join dev");
    before.ask(1, "/join main");
    before.drop_client(1);
    before.ask(0, "/join dev");
    before.ask(0, "while you were out");
    before.ask(0, "/msg bob ping");
    before.chat.shutdown(before.now, &mut before.out);
    let snapshot = before.chat.snapshot();

    let mut after = Harness::new();
    after.chat.restore(snapshot, after.now);
    after.connect(0);
    let back = after.ask(0, "/nick bob");
    assert_eq!(
        back[0],
        "* Welcome back, bob. Rooms: main, dev. Active room: main."
    );
    assert!(back[1].starts_with("* Missed in dev: 1 message since "));
    assert!(back[2].ends_with("] alice: while you were out"));
    assert_eq!(back[3], "* End of missed messages in dev.");
    assert!(back[5].ends_with(") alice: ping"));
    // alice was online at the stop: her session is back too.
    after.connect(1);
    assert_eq!(
        after.ask(1, "/nick alice"),
        ["* Welcome back, alice. Rooms: main, dev. Active room: dev."]
    );
}
