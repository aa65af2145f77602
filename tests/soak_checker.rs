//! The soak test's verdict logic (`benches/soak/checker.rs`), unit-tested under `cargo test`:
//! synthetic sequences with a missing, duplicate, out-of-order, non-member, garbled or half-line
//! delivery must each be reported, and a clean one must not.

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
