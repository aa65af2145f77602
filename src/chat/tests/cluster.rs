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
pub(super) struct ClaimRecorder {
    pub(super) inner: Recorder,
    pub(super) claims: Vec<(usize, String, bool)>,
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

pub(super) fn shared() -> (Chat, ClaimRecorder, Instant) {
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
