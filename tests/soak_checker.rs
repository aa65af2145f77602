//! The soak test's verdict logic (`benches/soak/checker.rs`), unit-tested under `cargo test`:
//! synthetic sequences with a missing, duplicate, out-of-order, non-member, garbled or half-line
//! delivery must each be reported, and a clean one must not; the same for the replay of missed
//! messages to a returning user (a replay duplicating a live delivery, a wrong count, out of
//! order, a room not of the session, an owed message missing, one the server had before the
//! user left, a live line inside a frame), with the uncertain window left unjudged; and in
//! cluster mode the grace for messages of other nodes and each message once per user.

#[allow(dead_code)] // The soak driver uses parts of it that its tests do not.
#[path = "../benches/soak/checker.rs"]
mod checker;

use checker::{Checker, Config, ConnId, Kind, MsgKey, Tick};

const ROOM: &str = "dev";

fn key(seq: u32) -> MsgKey {
    MsgKey { sender: 1, seq }
}

/// A standalone checker with user 1 on conn 10 (the sender) and user 2 on conn 20, both in
/// ROOM since ticks 1-4.
fn two_in_a_room() -> Checker {
    let mut checker = Checker::new(Config {
        grace: 1_000,
        per_connection: false,
        replay: true,
    });
    checker.open(10, 1, 0);
    checker.open(20, 2, 0);
    checker.entering(10, ROOM, 1);
    checker.entering(20, ROOM, 2);
    checker.entered(10, ROOM, 3);
    checker.entered(20, ROOM, 4);
    checker
}

/// Conn 10 sends message `seq` at `at` and reads its echo at `at + 1`.
fn say(checker: &mut Checker, seq: u32, at: Tick) {
    let text = format!("~1.{seq}");
    checker.sent(10, key(seq), (ROOM, "u1", Some(&text)), at);
    checker.echoed(key(seq), at + 1);
}

fn receive(checker: &mut Checker, conn: ConnId, seq: u32, at: Tick) {
    let text = format!("~1.{seq}");
    checker.delivered(conn, key(seq), (ROOM, "u1", &text), at);
}

fn kinds(checker: &Checker) -> Vec<Kind> {
    let mut kinds: Vec<Kind> = checker.by_kind.keys().copied().collect();
    kinds.sort();
    kinds
}

#[test]
fn a_clean_run_has_no_violation() {
    let mut checker = two_in_a_room();
    say(&mut checker, 0, 10);
    say(&mut checker, 1, 20);
    receive(&mut checker, 20, 0, 30);
    receive(&mut checker, 20, 1, 31);
    checker.answered(20, 40);
    checker.finish();
    assert_eq!(kinds(&checker), []);
    assert_eq!(checker.counts.required, 2);
    assert_eq!(checker.counts.required_met, 2);
    assert_eq!(checker.counts.deliveries, 2);
    assert_eq!(checker.counts.unjudged, 0);
}

#[test]
fn a_missing_delivery_is_reported_at_the_next_answer() {
    let mut checker = two_in_a_room();
    say(&mut checker, 0, 10);
    say(&mut checker, 1, 20);
    receive(&mut checker, 20, 0, 30);
    checker.answered(20, 15); // asked before the second echo: not due yet
    assert_eq!(kinds(&checker), []);
    checker.answered(20, 40);
    assert_eq!(kinds(&checker), [Kind::Missing]);
}

#[test]
fn a_delivery_read_before_the_senders_echo_counts() {
    let mut checker = two_in_a_room();
    checker.sent(10, key(0), (ROOM, "u1", Some("~1.0")), 10);
    receive(&mut checker, 20, 0, 11);
    checker.echoed(key(0), 12);
    checker.answered(20, 40);
    assert_eq!(kinds(&checker), []);
    assert_eq!(checker.counts.required_met, 1);
}

#[test]
fn a_duplicate_delivery_is_reported() {
    let mut checker = two_in_a_room();
    say(&mut checker, 0, 10);
    receive(&mut checker, 20, 0, 30);
    receive(&mut checker, 20, 0, 31);
    assert_eq!(kinds(&checker), [Kind::Duplicate]);
}

#[test]
fn an_out_of_order_delivery_is_reported() {
    let mut checker = two_in_a_room();
    say(&mut checker, 0, 10);
    say(&mut checker, 1, 20);
    receive(&mut checker, 20, 1, 30);
    receive(&mut checker, 20, 0, 31);
    checker.answered(20, 40);
    assert_eq!(kinds(&checker), [Kind::OutOfOrder]);
}

#[test]
fn a_line_to_a_non_member_is_reported() {
    let mut checker = two_in_a_room();
    checker.open(30, 3, 0);
    say(&mut checker, 0, 10);
    receive(&mut checker, 30, 0, 30);
    assert_eq!(kinds(&checker), [Kind::NonMember]);
}

#[test]
fn a_line_after_a_confirmed_leave_is_reported() {
    let mut checker = two_in_a_room();
    checker.leaving(20, ROOM, 5);
    checker.left(20, ROOM, 6);
    say(&mut checker, 0, 10);
    receive(&mut checker, 20, 0, 30);
    assert_eq!(kinds(&checker), [Kind::NonMember]);
    assert_eq!(checker.counts.required, 0);
}

#[test]
fn a_line_to_a_member_who_asked_to_join_before_the_echo_is_fine() {
    let mut checker = two_in_a_room();
    checker.open(30, 3, 0);
    checker.entering(30, ROOM, 9);
    say(&mut checker, 0, 10); // sent at 10, before conn 30's arrival was confirmed
    checker.entered(30, ROOM, 12);
    receive(&mut checker, 30, 0, 13);
    checker.answered(30, 40);
    assert_eq!(kinds(&checker), []);
    assert_eq!(checker.counts.required, 1, "only conn 20 was owed it");
}

#[test]
fn a_member_leaving_before_the_echo_is_owed_nothing() {
    let mut checker = two_in_a_room();
    checker.sent(10, key(0), (ROOM, "u1", Some("~1.0")), 10);
    checker.leaving(20, ROOM, 11);
    checker.echoed(key(0), 12);
    checker.left(20, ROOM, 13);
    checker.answered(20, 14);
    assert_eq!(kinds(&checker), []);
    assert_eq!(checker.counts.required, 0);
}

#[test]
fn a_delivered_half_line_is_reported() {
    let mut checker = two_in_a_room();
    checker.sent(10, key(0), (ROOM, "u1", None), 10);
    checker.closed(10, 11);
    receive(&mut checker, 20, 0, 30);
    assert_eq!(kinds(&checker), [Kind::HalfLine]);
}

#[test]
fn a_garbled_or_unsent_message_is_reported() {
    let mut checker = two_in_a_room();
    say(&mut checker, 0, 10);
    checker.delivered(20, key(0), (ROOM, "u1", "~1.0 and more"), 30);
    receive(&mut checker, 20, 7, 31);
    assert_eq!(kinds(&checker), [Kind::Garbled]);
    assert_eq!(checker.by_kind[&Kind::Garbled], 2);
}

#[test]
fn across_nodes_a_message_is_judged_only_after_the_grace() {
    let mut checker = two_in_a_room();
    checker.open(30, 3, 1);
    checker.entering(30, ROOM, 5);
    checker.entered(30, ROOM, 6);
    say(&mut checker, 0, 10); // echoed at 11: due on node 1 at 1_011
    checker.answered(30, 500);
    assert_eq!(kinds(&checker), []);
    checker.answered(30, 2_000);
    assert_eq!(kinds(&checker), [Kind::Missing]);
}

#[test]
fn across_nodes_leaving_within_the_grace_leaves_it_unjudged() {
    let mut checker = two_in_a_room();
    checker.open(30, 3, 1);
    checker.entering(30, ROOM, 5);
    checker.entered(30, ROOM, 6);
    say(&mut checker, 0, 10);
    checker.leaving(30, ROOM, 20);
    checker.answered(30, 2_000);
    assert_eq!(kinds(&checker), []);
    assert_eq!(checker.counts.unjudged, 1);
}

// The replay of missed messages. User 2 (conn 20, in ROOM since 4) leaves: its connection
// starts to vanish at 12 (L) and the server's goodbye is read at 14 (G); it comes back on
// conn 21 with a `/nick` queued at 40 (R) whose welcome is read at 41 (W).

/// User 2's departure from conn 20: L = 12, G = 14 if `goodbye`, closed at 15.
fn user_2_leaves(checker: &mut Checker, goodbye: bool) {
    checker.leaving_all(20, 12);
    if goodbye {
        checker.gone_by(20, 14);
    }
    checker.closed(20, 15);
}

/// User 2 is welcomed back on conn 21 with ROOM restored.
fn user_2_returns(checker: &mut Checker) {
    checker.open(21, 2, 0);
    checker.logged_in(21, true, &[ROOM], 40, 41);
}

/// Conn 21 reads message `seq` of user 1 replayed.
fn replayed(checker: &mut Checker, seq: u32) {
    let text = format!("~1.{seq}");
    checker.replayed(21, key(seq), (ROOM, "u1", &text));
}

/// Conn 21 reads a replay of ROOM announcing `announced` messages (`lost` no longer kept) with
/// `seqs` in it, then a live line, which ends the replay.
fn replay(checker: &mut Checker, announced: u64, lost: u64, seqs: &[u32]) {
    checker.replay_header(21, ROOM, announced, lost);
    for &seq in seqs {
        replayed(checker, seq);
    }
    checker.replay_end(21, ROOM);
    checker.live(21);
}

/// User 1 says 1 and 2 while user 2 is away (after G, confirmed before R).
fn two_missed() -> Checker {
    let mut checker = two_in_a_room();
    user_2_leaves(&mut checker, true);
    say(&mut checker, 1, 20);
    say(&mut checker, 2, 22);
    user_2_returns(&mut checker);
    checker
}

#[test]
fn a_clean_replay_has_no_violation() {
    let mut checker = two_missed();
    replay(&mut checker, 2, 0, &[1, 2]);
    checker.finish();
    assert_eq!(kinds(&checker), []);
    let counts = &checker.counts;
    assert_eq!((counts.replay_owed, counts.replay_owed_met), (2, 2));
    assert_eq!((counts.restores_judged, counts.replay_uncertain), (1, 0));
}

#[test]
fn a_replay_duplicating_a_live_delivery_is_reported() {
    let mut checker = two_in_a_room();
    // Sent before L, got live, but confirmed only after L: the checker cannot tell from the
    // times alone that the server had it before the end, only from the live copy.
    checker.sent(10, key(0), (ROOM, "u1", Some("~1.0")), 10);
    receive(&mut checker, 20, 0, 11);
    user_2_leaves(&mut checker, true);
    checker.echoed(key(0), 16);
    user_2_returns(&mut checker);
    replay(&mut checker, 1, 0, &[0]);
    assert_eq!(kinds(&checker), [Kind::Duplicate]);
}

#[test]
fn a_wrong_count_is_reported() {
    let mut checker = two_missed();
    replay(&mut checker, 3, 0, &[1, 2]);
    assert_eq!(kinds(&checker), [Kind::Replay]);
}

#[test]
fn an_out_of_order_replay_is_reported() {
    let mut checker = two_missed();
    replay(&mut checker, 2, 0, &[2, 1]);
    assert_eq!(kinds(&checker), [Kind::OutOfOrder]);
}

#[test]
fn a_replay_older_than_a_live_delivery_of_its_room_is_out_of_order() {
    let mut checker = two_in_a_room();
    // 0 is not confirmed at all, so only its sender's order says it came before 1, which
    // user 2 got live: the server had both before the end.
    checker.sent(10, key(0), (ROOM, "u1", Some("~1.0")), 8);
    say(&mut checker, 1, 9);
    receive(&mut checker, 20, 1, 11);
    user_2_leaves(&mut checker, true);
    user_2_returns(&mut checker);
    replay(&mut checker, 1, 0, &[0]);
    assert_eq!(kinds(&checker), [Kind::OutOfOrder]);
}

#[test]
fn a_replay_of_a_room_not_in_the_session_is_reported() {
    let mut checker = two_in_a_room();
    user_2_leaves(&mut checker, true);
    say(&mut checker, 1, 20);
    checker.open(21, 2, 0);
    checker.logged_in(21, true, &["main"], 40, 41);
    replay(&mut checker, 1, 0, &[1]);
    assert_eq!(kinds(&checker), [Kind::Replay]);
}

#[test]
fn an_owed_message_missing_from_the_replay_is_reported() {
    let mut checker = two_missed();
    checker.replay_header(21, ROOM, 1, 0);
    replayed(&mut checker, 2);
    checker.replay_end(21, ROOM);
    assert_eq!(kinds(&checker), [], "judged when the replay is over");
    checker.live(21);
    assert_eq!(kinds(&checker), [Kind::Missing]);
}

#[test]
fn an_owed_message_counted_as_no_longer_kept_is_fine() {
    let mut checker = two_missed();
    replay(&mut checker, 1, 1, &[2]);
    assert_eq!(kinds(&checker), []);
    assert_eq!(checker.counts.replay_owed_lost, 1);
}

#[test]
fn no_replay_at_all_when_one_is_owed_is_reported() {
    let mut checker = two_missed();
    checker.live(21);
    assert_eq!(kinds(&checker), [Kind::Missing]);
    assert_eq!(checker.by_kind[&Kind::Missing], 2);
}

#[test]
fn a_message_confirmed_before_the_departure_must_not_be_replayed() {
    let mut checker = two_in_a_room();
    say(&mut checker, 0, 10); // confirmed at 11, before L = 12; user 2 never read it
    user_2_leaves(&mut checker, true);
    user_2_returns(&mut checker);
    replay(&mut checker, 1, 0, &[0]);
    assert_eq!(kinds(&checker), [Kind::Replay]);
}

#[test]
fn a_message_sent_after_the_welcome_must_not_be_replayed() {
    let mut checker = two_in_a_room();
    user_2_leaves(&mut checker, true);
    user_2_returns(&mut checker);
    say(&mut checker, 1, 45); // after W = 41
    replay(&mut checker, 1, 0, &[1]);
    assert_eq!(kinds(&checker), [Kind::Replay]);
}

#[test]
fn its_own_message_must_not_be_replayed() {
    let mut checker = two_in_a_room();
    let own = MsgKey { sender: 2, seq: 1 };
    checker.leaving_all(20, 12);
    checker.sent(20, own, (ROOM, "u2", Some("~2.1")), 13); // a last line, never confirmed
    checker.gone_by(20, 14);
    checker.closed(20, 15);
    user_2_returns(&mut checker);
    checker.replay_header(21, ROOM, 1, 0);
    checker.replayed(21, own, (ROOM, "u2", "~2.1"));
    checker.replay_end(21, ROOM);
    checker.live(21);
    assert_eq!(kinds(&checker), [Kind::Replay]);
}

#[test]
fn a_live_line_inside_a_frame_is_reported() {
    let mut checker = two_missed();
    checker.replay_header(21, ROOM, 2, 0);
    replayed(&mut checker, 1);
    checker.live(21);
    assert_eq!(kinds(&checker), [Kind::Missing, Kind::Replay]);
}

#[test]
fn kept_private_messages_are_counted_against_their_header() {
    let mut checker = two_in_a_room();
    checker.open(30, 3, 0);
    checker.logged_in(30, false, &["main"], 5, 6);
    checker.privates_header(30, 2);
    checker.private_replayed(30);
    checker.privates_end(30);
    checker.live(30);
    assert_eq!(kinds(&checker), [Kind::Replay]);
}

#[test]
fn without_a_bound_on_the_departure_the_window_is_counted_not_judged() {
    let mut checker = two_in_a_room();
    user_2_leaves(&mut checker, false); // a reset: nothing read shows when the server saw it
    say(&mut checker, 1, 20);
    say(&mut checker, 2, 22);
    user_2_returns(&mut checker);
    replay(&mut checker, 1, 0, &[2]);
    assert_eq!(kinds(&checker), []);
    let counts = &checker.counts;
    assert_eq!((counts.replay_owed, counts.replay_uncertain), (0, 2));
    assert_eq!(counts.replay_uncertain_replayed, 1);
}

#[test]
fn a_disconnect_notice_bounds_the_departure_only_if_written_after_it_started() {
    for (answered, owed) in [(11, 0), (13, 2)] {
        let mut checker = two_in_a_room();
        checker.open(30, 3, 0);
        checker.answered(30, answered); // conn 30's stream is past the server's handling of it
        user_2_leaves(&mut checker, false);
        checker.disconnect_seen(30, 2, 16);
        say(&mut checker, 1, 20);
        say(&mut checker, 2, 22);
        user_2_returns(&mut checker);
        checker.live(21);
        assert_eq!(checker.counts.replay_owed, owed, "answered {answered}");
        assert_eq!(checker.violations(), owed, "answered {answered}");
    }
}

#[test]
fn a_member_list_without_the_user_bounds_the_departure() {
    let mut checker = two_in_a_room();
    user_2_leaves(&mut checker, false);
    let listed = std::collections::HashSet::from([1]);
    checker.members(10, ROOM, &listed, 11, 13); // asked before L: says nothing
    say(&mut checker, 1, 14);
    checker.members(10, ROOM, &listed, 16, 18); // asked after L, user 2 missing
    say(&mut checker, 2, 20);
    user_2_returns(&mut checker);
    replay(&mut checker, 2, 0, &[1, 2]);
    assert_eq!(kinds(&checker), []);
    let counts = &checker.counts;
    assert_eq!((counts.replay_owed, counts.replay_uncertain), (1, 1));
}

/// A cluster checker: user 1 (conn 10) on node 0, user 2 (conn 20) on node 1, both in ROOM.
fn two_on_two_nodes() -> Checker {
    let mut checker = Checker::new(Config {
        grace: 1_000,
        per_connection: true,
        replay: true,
    });
    checker.open(10, 1, 0);
    checker.open(20, 2, 1);
    for (conn, at) in [(10, 1), (20, 2)] {
        checker.entering(conn, ROOM, at);
        checker.entered(conn, ROOM, at + 2);
    }
    checker
}

/// The same; user 2 leaves (L = 12, G = 14) and user 1 says 1 at 20 (confirmed at 21).
fn cluster_with_one_missed() -> Checker {
    let mut checker = two_on_two_nodes();
    user_2_leaves(&mut checker, true);
    say(&mut checker, 1, 20);
    checker
}

#[test]
fn in_a_cluster_another_nodes_message_within_the_grace_may_come_live_instead() {
    let mut checker = cluster_with_one_missed();
    checker.open(21, 2, 1);
    checker.entering(21, ROOM, 40);
    checker.entered(21, ROOM, 41);
    checker.logged_in(21, true, &[ROOM], 40, 41);
    checker.live(21);
    receive(&mut checker, 21, 1, 42);
    checker.finish();
    assert_eq!(kinds(&checker), []);
    let counts = &checker.counts;
    assert_eq!((counts.restores_judged, counts.replay_owed), (1, 0));
    assert_eq!(counts.replay_uncertain, 1);
}

#[test]
fn in_a_cluster_another_nodes_message_past_the_grace_is_owed() {
    let mut checker = cluster_with_one_missed();
    checker.open(21, 2, 1);
    checker.logged_in(21, true, &[ROOM], 2_000, 2_001);
    checker.live(21);
    assert_eq!(kinds(&checker), [Kind::Missing]);
}

#[test]
fn in_a_cluster_a_message_got_live_before_leaving_and_replayed_is_a_duplicate() {
    let mut checker = two_on_two_nodes();
    say(&mut checker, 1, 8);
    receive(&mut checker, 20, 1, 10);
    user_2_leaves(&mut checker, true);
    checker.open(21, 2, 1);
    checker.logged_in(21, true, &[ROOM], 40, 41);
    checker.replay_header(21, ROOM, 1, 0);
    replayed(&mut checker, 1);
    checker.replay_end(21, ROOM);
    checker.live(21);
    assert!(
        kinds(&checker).contains(&Kind::Duplicate),
        "{:?}",
        kinds(&checker)
    );
}
