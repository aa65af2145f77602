//! What the chat publishes, and what it does with other nodes' events and a shared registry.

use super::*;

#[test]
fn publishes_every_room_event_once() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.out.events.clear();
    h.ask(0, "hi");
    h.ask(0, "/join dev");
    h.ask(0, "/me waves");
    h.ask(0, "/msg ghost boo");
    assert_eq!(
        h.out.events,
        [
            r#"Said { room: "main", nick: "alice", text: "hi" }"#,
            r#"Presence { room: "dev", nick: "alice", change: Joined }"#,
            r#"Acted { room: "dev", nick: "alice", text: "waves" }"#,
        ]
    );
}

#[test]
fn remote_events_reach_local_members_only_and_are_not_republished() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.login(1, "bob");
    h.ask(1, "/join dev");
    h.out.take(0);
    h.out.events.clear();
    let said = Event::Said {
        room: "DEV",
        nick: "carol",
        text: "from node b",
        stamp: Stamp::default(),
    };
    h.chat
        .deliver_remote("b", &said, Instant::now(), &mut h.out);
    assert_eq!(h.out.take(1), ["[dev] carol: from node b"]);
    assert!(h.out.take(0).is_empty());
    let joined = Event::Presence {
        room: "main",
        nick: "carol",
        change: Presence::Joined,
    };
    h.chat
        .deliver_remote("b", &joined, Instant::now(), &mut h.out);
    assert_eq!(h.out.take(0), ["* [main] carol joined"]);
    assert_eq!(h.out.take(1), ["* [main] carol joined"]);
    let private = Event::Private {
        from: "carol",
        to: "ALICE",
        text: "psst",
        node: "",
    };
    h.chat
        .deliver_remote("b", &private, Instant::now(), &mut h.out);
    assert_eq!(h.out.take(0), ["(PM) carol: psst"]);
    let nowhere = Event::Said {
        room: "nowhere",
        nick: "carol",
        text: "x",
        stamp: Stamp::default(),
    };
    h.chat
        .deliver_remote("b", &nowhere, Instant::now(), &mut h.out);
    assert!(h.out.lines.is_empty());
    assert!(h.out.events.is_empty());
}

/// Recorder that also records nick claims, for the shared-registry tests.
#[derive(Default)]
struct ClaimRecorder {
    inner: Recorder,
    claims: Vec<(usize, String, bool)>,
}

impl Outbox for ClaimRecorder {
    fn send(&mut self, to: ClientId, line: &[u8]) {
        self.inner.send(to, line);
    }
    fn close(&mut self, to: ClientId) {
        self.inner.close(to);
    }
    fn publish(&mut self, event: &Event<'_>) {
        self.inner.publish(event);
    }
    fn claim_nick(&mut self, client: ClientId, nick: &str, claim: NickClaim) {
        self.claims
            .push((client.index(), nick.to_string(), claim.rename));
    }
    fn store(&mut self, change: &Change<'_>) {
        self.inner.store(change);
    }
}

fn shared() -> (Chat, ClaimRecorder, Instant) {
    let config = ChatConfig {
        shared_registry: true,
        ..ChatConfig::default()
    };
    (Chat::new(config), ClaimRecorder::default(), Instant::now())
}

#[test]
fn shared_registry_decides_nicks_and_lines_wait_for_it() {
    let (mut chat, mut out, now) = shared();
    chat.connect(id(0), &mut out);
    out.inner.take(0);
    chat.handle_line(id(0), "/nick alice", now, &mut out);
    chat.handle_line(id(0), "/join dev", now, &mut out);
    chat.handle_line(id(0), "first words", now, &mut out);
    chat.reject_line(id(0), LineError::InvalidUtf8, &mut out);
    assert_eq!(out.claims, [(0, "alice".to_string(), false)]);
    assert!(
        out.inner.take(0).is_empty(),
        "nothing happens before the answer"
    );

    let saved = SavedRooms {
        rooms: vec!["main".into(), "ops".into()],
        active: "ops".into(),
        ..SavedRooms::default()
    };
    chat.finish_claim(
        id(0),
        "alice",
        ClaimOutcome::Granted(Grant::session(saved)),
        now,
        &mut out,
    );
    assert_eq!(
        out.inner.take(0),
        [
            "* Welcome back, alice. Rooms: main, ops. Active room: ops.",
            "* Joined dev. Active room: dev.",
            "You: first words",
            "! invalid UTF-8; line discarded",
        ]
    );
    assert!(
        out.inner
            .events
            .iter()
            .any(|e| e
                == r#"Session { nick: "alice", rooms: ["main", "ops", "dev"], active: "dev" }"#)
    );
}

#[test]
fn while_a_claim_is_pending_the_chat_asks_for_no_more_lines_than_it_keeps() {
    let (mut chat, mut out, now) = shared();
    chat.connect(id(0), &mut out);
    out.inner.take(0);
    assert!(chat.wants_input(id(0)));
    chat.handle_line(id(0), "/nick alice", now, &mut out);
    let mut sent = 0;
    while chat.wants_input(id(0)) {
        chat.handle_line(id(0), &format!("line {sent}"), now, &mut out);
        sent += 1;
        assert!(sent <= 1000, "the queue has no bound");
    }
    assert!(
        out.inner.take(0).is_empty(),
        "nothing refused, nothing said"
    );
    chat.finish_claim(
        id(0),
        "alice",
        ClaimOutcome::Granted(Grant::default()),
        now,
        &mut out,
    );
    assert!(chat.wants_input(id(0)));
    let lines = out.inner.take(0);
    assert_eq!(
        lines.len(),
        sent + 1,
        "the welcome, then every line in order"
    );
    for (n, line) in lines[1..].iter().enumerate() {
        assert_eq!(line, &format!("You: line {n}"));
    }
}

#[test]
fn shared_registry_refusals_and_stale_answers() {
    let (mut chat, mut out, now) = shared();
    chat.connect(id(0), &mut out);
    chat.connect(id(1), &mut out);
    out.inner.lines.clear();
    chat.handle_line(id(0), "/nick bob", now, &mut out);
    chat.finish_claim(id(0), "bob", ClaimOutcome::InUse, now, &mut out);
    assert_eq!(out.inner.take(0), ["! nick bob is in use"]);

    // Two local clients race for the same nick; the registry (down, say) grants both.
    chat.handle_line(id(0), "/nick carol", now, &mut out);
    chat.handle_line(id(1), "/nick carol", now, &mut out);
    chat.finish_claim(
        id(0),
        "carol",
        ClaimOutcome::Granted(Grant::default()),
        now,
        &mut out,
    );
    out.inner.events.clear();
    chat.finish_claim(
        id(1),
        "carol",
        ClaimOutcome::Granted(Grant::default()),
        now,
        &mut out,
    );
    assert_eq!(out.inner.take(1), ["! nick carol is in use"]);
    assert!(
        out.inner.events.is_empty(),
        "the holder's claim is not given back"
    );

    // An answer for a client that left gives the nick back.
    chat.handle_line(id(1), "/nick dave", now, &mut out);
    chat.disconnect(id(1), now, &mut out);
    chat.finish_claim(
        id(1),
        "dave",
        ClaimOutcome::Granted(Grant::default()),
        now,
        &mut out,
    );
    assert_eq!(out.inner.events, [r#"NickReleased { nick: "dave" }"#]);
}

#[test]
fn remote_users_show_in_who_rooms_and_msg() {
    let (mut chat, mut out, now) = shared();
    chat.connect(id(0), &mut out);
    chat.handle_line(id(0), "/nick alice", now, &mut out);
    chat.finish_claim(
        id(0),
        "alice",
        ClaimOutcome::Granted(Grant::default()),
        now,
        &mut out,
    );
    out.inner.take(0);
    let joined = |room, nick| Event::Presence {
        room,
        nick,
        change: Presence::Joined,
    };
    chat.deliver_remote("b", &joined("main", "Zoe"), Instant::now(), &mut out);
    chat.deliver_remote("b", &joined("far", "Zoe"), Instant::now(), &mut out);
    assert_eq!(out.inner.take(0), ["* [main] Zoe joined"]);
    chat.handle_line(id(0), "/who", now, &mut out);
    chat.handle_line(id(0), "/who far", now, &mut out);
    chat.handle_line(id(0), "/rooms", now, &mut out);
    chat.handle_line(id(0), "/msg zoe hi there", now, &mut out);
    assert_eq!(
        out.inner.take(0),
        [
            "* Members of main (2): alice, Zoe",
            "* Members of far (1): Zoe",
            "* Rooms (2): far (1), main (2)",
            "(PM to Zoe) You: hi there",
        ]
    );
    // The registry decides about a nick seen on another node: that node may have freed it
    // already (a graceful stop frees the nicks before the other nodes hear the goodbye).
    chat.handle_line(id(0), "/nick ZOE", now, &mut out);
    assert_eq!(out.claims.last(), Some(&(0, "ZOE".to_string(), true)));
    chat.finish_claim(id(0), "ZOE", ClaimOutcome::InUse, now, &mut out);
    assert_eq!(out.inner.take(0), ["! nick ZOE is in use"]);
    assert!(out.inner.events.contains(
        &r#"Private { from: "alice", to: "Zoe", text: "hi there", node: "b" }"#.to_string()
    ));
    chat.forget_node("b", &mut out);
    chat.handle_line(id(0), "/msg zoe still?", now, &mut out);
    assert_eq!(
        out.inner.take(0),
        ["* [main] Zoe disconnected", "! no such user: zoe"]
    );
}

#[test]
fn local_roster_lists_named_members() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.login(1, "bob");
    h.ask(1, "/join dev");
    h.connect(2);
    let mut roster = h.chat.local_roster();
    roster.sort();
    assert_eq!(
        roster,
        [
            ("dev".to_string(), vec!["bob".to_string()]),
            (
                "main".to_string(),
                vec!["alice".to_string(), "bob".to_string()]
            ),
        ]
    );
    let mut nicks = h.chat.local_nicks();
    nicks.sort();
    assert_eq!(nicks, ["alice", "bob"]);
}

#[test]
fn a_room_that_exists_on_other_nodes_keeps_its_spelling_here() {
    let (mut chat, mut out, now) = shared();
    chat.connect(id(0), &mut out);
    chat.handle_line(id(0), "/nick alice", now, &mut out);
    chat.finish_claim(
        id(0),
        "alice",
        ClaimOutcome::Granted(Grant::default()),
        now,
        &mut out,
    );
    let joined = Event::Presence {
        room: "кухня",
        nick: "Zoe",
        change: Presence::Joined,
    };
    chat.deliver_remote("b", &joined, Instant::now(), &mut out);
    out.inner.take(0);
    chat.handle_line(id(0), "/join КУХНЯ", now, &mut out);
    assert_eq!(out.inner.take(0), ["* Joined кухня. Active room: кухня."]);
}

/// Node a's outbox in a two-node test: what node a publishes is delivered to node b at once.
struct Bridge<'a> {
    local: Recorder,
    peer: &'a mut Chat,
    peer_out: &'a mut Recorder,
}

impl Outbox for Bridge<'_> {
    fn send(&mut self, to: ClientId, line: &[u8]) {
        self.local.send(to, line);
    }
    fn close(&mut self, to: ClientId) {
        self.local.close(to);
    }
    fn publish(&mut self, event: &Event<'_>) {
        self.peer
            .deliver_remote("a", event, Instant::now(), self.peer_out);
    }
}

#[test]
fn a_rename_on_another_node_keeps_the_user_in_who_and_rooms() {
    let now = Instant::now();
    let mut node_b = Chat::new(ChatConfig::default());
    let mut out_b = Recorder::default();
    node_b.connect(id(0), &mut out_b);
    node_b.handle_line(id(0), "/nick alice", now, &mut out_b);
    let mut node_a = Chat::new(ChatConfig::default());
    let mut bridge = Bridge {
        local: Recorder::default(),
        peer: &mut node_b,
        peer_out: &mut out_b,
    };
    node_a.connect(id(0), &mut bridge);
    node_a.handle_line(id(0), "/nick bob", now, &mut bridge);
    node_a.handle_line(id(0), "/nick robert", now, &mut bridge);
    out_b.take(0);
    node_b.handle_line(id(0), "/who", now, &mut out_b);
    node_b.handle_line(id(0), "/msg ROBERT hi", now, &mut out_b);
    assert_eq!(
        out_b.take(0),
        [
            "* Members of main (2): alice, robert",
            "(PM to robert) You: hi",
        ]
    );
}

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
