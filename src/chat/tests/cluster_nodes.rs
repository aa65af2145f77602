//! Two chats as two nodes of a cluster, their events handed across by hand: the replay of what
//! a user missed on whichever node they return to, the wait for messages still on their way,
//! and private messages kept for users who are away.

use super::cluster::{shared, ClaimRecorder};
use super::*;

/// One node of a two-node cluster in the tests: its chat, pinned to a wall clock, and what
/// it sent.
fn node(origin: &str, now: Instant) -> (Chat, ClaimRecorder) {
    let (mut chat, out, _) = shared();
    let name = origin.split('@').next().unwrap_or(origin);
    chat.set_origin(name, origin);
    chat.set_wall_clock(now, 1_795_701_900_000);
    (chat, out)
}

/// Logs client `index` of `chat` in as `nick` with the registry's grant.
fn granted(chat: &mut Chat, out: &mut ClaimRecorder, index: usize, nick: &str, now: Instant) {
    chat.connect(id(index), out);
    chat.handle_line(id(index), &format!("/nick {nick}"), now, out);
    chat.finish_claim(
        id(index),
        nick,
        ClaimOutcome::Granted(Grant::default()),
        now,
        out,
    );
    out.inner.take(index);
}

/// Hands the room messages `from` published since the last call to the chat of `to`.
fn relay(from: &mut ClaimRecorder, to: &mut Chat, to_out: &mut ClaimRecorder, now: Instant) {
    for post in std::mem::take(&mut from.inner.posts) {
        to.deliver_remote("other", &post.event(), now, to_out);
    }
}

#[test]
fn a_user_who_left_one_node_gets_on_another_exactly_what_they_missed() {
    let now = Instant::now();
    let (mut a, mut a_out) = node("a@1", now);
    let (mut b, mut b_out) = node("b@1", now);
    granted(&mut a, &mut a_out, 0, "alice", now);
    granted(&mut a, &mut a_out, 1, "bob", now);
    granted(&mut b, &mut b_out, 0, "carol", now);
    a_out.inner.take(0);
    let say = |chat: &mut Chat, out: &mut ClaimRecorder, index: usize, text: &str| {
        chat.handle_line(id(index), text, now, out);
    };
    say(&mut a, &mut a_out, 1, "a1");
    relay(&mut a_out, &mut b, &mut b_out, now);
    say(&mut b, &mut b_out, 0, "b1");
    relay(&mut b_out, &mut a, &mut a_out, now);
    // Seen by alice live; b2 is still on its way to node a when she goes.
    say(&mut a, &mut a_out, 1, "a2");
    say(&mut b, &mut b_out, 0, "b2");
    assert_eq!(
        a_out.inner.take(0),
        ["[main] bob: a1", "[main] carol: b1", "[main] bob: a2"]
    );
    a.disconnect(id(0), now, &mut a_out);
    let (_, session) = a_out
        .inner
        .stored
        .sessions
        .pop()
        .expect("alice's session saved");
    assert!(session.marks.is_empty(), "a cluster marks with clocks");
    relay(&mut b_out, &mut a, &mut a_out, now);
    say(&mut a, &mut a_out, 1, "a3");
    say(&mut b, &mut b_out, 0, "b3");

    // Node b has not seen a2 (which alice saw): her login waits for it.
    b.connect(id(1), &mut b_out);
    b_out.inner.take(1);
    b.handle_line(id(1), "/nick alice", now, &mut b_out);
    b.handle_line(id(1), "hello again", now, &mut b_out);
    let restore = ClaimOutcome::Granted(Grant::session(session));
    b.finish_claim(id(1), "alice", restore, now, &mut b_out);
    b.catch_up(now, &mut b_out);
    assert!(b_out.inner.take(1).is_empty(), "waits for a2");
    relay(&mut a_out, &mut b, &mut b_out, now);
    b.catch_up(now, &mut b_out);
    assert_eq!(
        b_out.inner.take(1),
        [
            "* Welcome back, alice. Rooms: main. Active room: main.",
            "* Missed in main: 3 messages since 14:05 UTC.",
            "[main 14:05] carol: b2",
            "[main 14:05] carol: b3",
            "[main 14:05] bob: a3",
            "* End of missed messages in main.",
            "You: hello again",
        ]
    );
    // From now on live, once, even if a message came twice (from Redis at start and from
    // the channel).
    say(&mut a, &mut a_out, 1, "a4");
    let twice = a_out.inner.posts.clone();
    relay(&mut a_out, &mut b, &mut b_out, now);
    for post in &twice {
        b.deliver_remote("a", &post.event(), now, &mut b_out);
    }
    assert_eq!(b_out.inner.take(1), ["[main] bob: a4"]);
}

/// Node b, where alice (client 0) asks for her nick back with the session she left on node a
/// after seeing a message that never reached node b; her login waits.
fn alice_back_on_b_before_what_she_saw(now: Instant) -> (Chat, ClaimRecorder) {
    let (mut a, mut a_out) = node("a@1", now);
    let (mut b, mut b_out) = node("b@1", now);
    granted(&mut a, &mut a_out, 0, "alice", now);
    a.handle_line(id(0), "seen on node b", now, &mut a_out);
    relay(&mut a_out, &mut b, &mut b_out, now);
    a.handle_line(id(0), "unseen on node b", now, &mut a_out);
    a.disconnect(id(0), now, &mut a_out);
    let (_, session) = a_out.inner.stored.sessions.pop().expect("saved");
    b.connect(id(0), &mut b_out);
    b_out.inner.take(0);
    b.handle_line(id(0), "/nick alice", now, &mut b_out);
    let restore = ClaimOutcome::Granted(Grant::session(session));
    b.finish_claim(id(0), "alice", restore, now, &mut b_out);
    assert!(b_out.inner.take(0).is_empty(), "waits");
    (b, b_out)
}

#[test]
fn a_login_waits_for_missing_messages_only_so_long() {
    let now = Instant::now();
    let (mut b, mut b_out) = alice_back_on_b_before_what_she_saw(now);
    let deadline = b.next_catch_up_deadline().expect("waiting");
    b.catch_up(deadline - std::time::Duration::from_millis(1), &mut b_out);
    assert!(b_out.inner.take(0).is_empty());
    b.catch_up(deadline, &mut b_out);
    assert_eq!(
        b_out.inner.take(0),
        ["* Welcome back, alice. Rooms: main. Active room: main."]
    );
    assert_eq!(b.next_catch_up_deadline(), None);
}

#[test]
fn a_login_that_leaves_while_catching_up_gives_the_nick_back() {
    let now = Instant::now();
    let (mut b, mut b_out) = alice_back_on_b_before_what_she_saw(now);
    b_out.inner.events.clear();
    b.disconnect(id(0), now, &mut b_out);
    assert_eq!(b_out.inner.events, [r#"NickReleased { nick: "alice" }"#]);
    b.catch_up(now + std::time::Duration::from_secs(60), &mut b_out);
    assert!(b_out.inner.take(0).is_empty());
}

/// The registry's grant of "alice" to client 0, with `saved` and `kept`.
fn grant_alice(
    chat: &mut Chat,
    out: &mut ClaimRecorder,
    saved: Option<SavedRooms>,
    kept: Vec<KeptPrivate>,
    now: Instant,
) {
    let grant = ClaimOutcome::Granted(Grant { saved, kept });
    chat.finish_claim(id(0), "alice", grant, now, out);
}

#[test]
fn kept_messages_handed_over_with_a_nick_nobody_takes_are_kept_again() {
    let now = Instant::now();
    let (mut b, mut b_out) = node("b@1", now);
    b.connect(id(0), &mut b_out);
    b.handle_line(id(0), "/nick alice", now, &mut b_out);
    b.disconnect(id(0), now, &mut b_out);
    let kept = KeptPrivate {
        at_ms: 1,
        from: "bob".into(),
        text: "call me".into(),
    };
    grant_alice(&mut b, &mut b_out, None, vec![kept.clone()], now);
    assert_eq!(
        b_out.inner.stored.privates,
        [("alice".to_string(), vec![kept])]
    );
    assert_eq!(b_out.inner.events, [r#"NickReleased { nick: "alice" }"#]);
}

#[test]
fn a_grant_delivers_the_kept_messages_it_brings_and_not_a_stale_copy() {
    let now = Instant::now();
    let (mut b, mut b_out) = node("b@1", now);
    let stale = KeptPrivate {
        at_ms: 1_795_701_900_000,
        from: "bob".into(),
        text: "already delivered elsewhere".into(),
    };
    let session = SavedRooms {
        rooms: vec!["main".into()],
        active: "main".into(),
        left_at_ms: 1_795_701_900_000,
        ..SavedRooms::default()
    };
    b.apply_remote_change(
        &Change::SessionSaved {
            nick: "alice",
            session: &session,
        },
        now,
    );
    b.apply_remote_change(
        &Change::PrivateKept {
            to: "alice",
            message: &stale,
        },
        now,
    );
    b.connect(id(0), &mut b_out);
    b_out.inner.take(0);
    b.handle_line(id(0), "/nick alice", now, &mut b_out);
    let fresh = KeptPrivate {
        text: "call me".into(),
        ..stale
    };
    grant_alice(&mut b, &mut b_out, Some(session), vec![fresh], now);
    assert_eq!(
        b_out.inner.take(0),
        [
            "* Welcome back, alice. Rooms: main. Active room: main.",
            "* Missed while you were away: 1 private message.",
            "(PM 14:05) bob: call me",
            "* End of missed private messages.",
        ]
    );
}

#[test]
fn only_the_addressees_node_keeps_a_private_message_that_finds_them_gone() {
    let now = Instant::now();
    let (mut c, mut c_out) = node("c@1", now);
    // Registered, so away wherever she is not online: only her node may keep the message.
    c.deliver_remote(
        "b",
        &Event::AccountSaved {
            nick: "alice",
            display: "alice",
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        },
        now,
        &mut c_out,
    );
    let private = |node| Event::Private {
        from: "bob",
        to: "alice",
        text: "psst",
        node,
    };
    c.deliver_remote("a", &private("b"), now, &mut c_out);
    assert!(
        c_out.inner.stored.privates.is_empty(),
        "a bystander kept it"
    );
    c.deliver_remote("a", &private("c"), now, &mut c_out);
    assert_eq!(c_out.inner.stored.privates.len(), 1, "her node keeps it");
}
