//! Unit tests of the chat logic through a recording outbox.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::*;

/// Records every line per client, closes and published events.
#[derive(Default)]
struct Recorder {
    lines: HashMap<ClientId, Vec<String>>,
    closed: Vec<ClientId>,
    events: Vec<String>,
}

impl Outbox for Recorder {
    fn send(&mut self, to: ClientId, line: &[u8]) {
        let text = std::str::from_utf8(line).expect("server lines are UTF-8");
        let text = text
            .strip_suffix("\r\n")
            .expect("server lines end with CRLF");
        self.lines.entry(to).or_default().push(text.to_string());
    }
    fn close(&mut self, to: ClientId) {
        self.closed.push(to);
    }
    fn publish(&mut self, event: &Event<'_>) {
        self.events.push(format!("{event:?}"));
    }
}

impl Recorder {
    /// Takes the lines client `id` received so far.
    fn take(&mut self, id: ClientId) -> Vec<String> {
        self.lines.remove(&id).unwrap_or_default()
    }
}

struct Harness {
    chat: Chat,
    out: Recorder,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        Self::with(ChatConfig::default())
    }

    fn with(config: ChatConfig) -> Self {
        Self {
            chat: Chat::new(config),
            out: Recorder::default(),
            now: Instant::now(),
        }
    }

    /// Connects `id` and discards the greeting.
    fn connect(&mut self, id: ClientId) {
        self.chat.connect(id, &mut self.out);
        self.out.take(id);
    }

    /// Connects `id` as `nick` and discards what it received.
    fn login(&mut self, id: ClientId, nick: &str) {
        self.connect(id);
        self.line(id, &format!("/nick {nick}"));
        self.out.take(id);
    }

    fn line(&mut self, id: ClientId, line: &str) {
        self.chat.handle_line(id, line, self.now, &mut self.out);
    }

    /// Sends `line` as `id` and returns what `id` got back.
    fn ask(&mut self, id: ClientId, line: &str) -> Vec<String> {
        self.line(id, line);
        self.out.take(id)
    }

    fn drop_client(&mut self, id: ClientId) {
        self.chat.disconnect(id, self.now, &mut self.out);
    }
}

#[test]
fn greets_on_connect() {
    let mut h = Harness::new();
    h.chat.connect(0, &mut h.out);
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
fn nick_rules() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.connect(1);
    assert_eq!(h.ask(1, "/nick ALICE"), ["! nick ALICE is in use"]);
    assert_eq!(
        h.ask(1, "/nick a b"),
        ["! invalid nick \"a b\": use 1-32 letters, digits, _ or -"]
    );
    let long = "я".repeat(33);
    assert_eq!(
        h.ask(1, &format!("/nick {long}")),
        [format!(
            "! invalid nick \"{long}\": use 1-32 letters, digits, _ or -"
        )]
    );
    assert_eq!(h.ask(1, "/nick"), ["! usage: /nick NAME"]);
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
    assert!(h
        .out
        .events
        .iter()
        .any(|e| e.starts_with("Session { nick: \"alice\"")));

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
    h.chat.expire_sessions(h.now);
    assert_eq!(h.chat.saved_count(), 1);
    h.now += Duration::from_secs(2);
    // Not swept yet, but already too old to restore.
    h.connect(1);
    assert_eq!(
        h.ask(1, "/nick alice"),
        ["* Welcome, alice. Rooms: main. Active room: main."]
    );
    h.chat.expire_sessions(h.now);
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
    assert_eq!(h.chat.expiry.len(), 1);
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
    h.chat.reject_line(0, LineError::TooLong, &mut h.out);
    h.chat.reject_line(0, LineError::InvalidUtf8, &mut h.out);
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
fn disconnect_of_an_anonymous_client_saves_nothing() {
    let mut h = Harness::new();
    h.connect(0);
    h.drop_client(0);
    assert_eq!(h.chat.saved_count(), 0);
    assert_eq!(h.chat.client_count(), 0);
}

#[test]
fn shutdown_says_goodbye_to_everyone() {
    let mut h = Harness::new();
    h.login(0, "alice");
    h.connect(1);
    h.chat.shutdown(&mut h.out);
    assert_eq!(h.out.take(0), ["* Server shutting down. Bye!"]);
    assert_eq!(h.out.take(1), ["* Server shutting down. Bye!"]);
    assert_eq!(h.out.closed, [0, 1]);
}

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
    };
    h.chat.deliver_remote("b", &said, &mut h.out);
    assert_eq!(h.out.take(1), ["[dev] carol: from node b"]);
    assert!(h.out.take(0).is_empty());
    let joined = Event::Presence {
        room: "main",
        nick: "carol",
        change: Presence::Joined,
    };
    h.chat.deliver_remote("b", &joined, &mut h.out);
    assert_eq!(h.out.take(0), ["* [main] carol joined"]);
    assert_eq!(h.out.take(1), ["* [main] carol joined"]);
    let private = Event::Private {
        from: "carol",
        to: "ALICE",
        text: "psst",
    };
    h.chat.deliver_remote("b", &private, &mut h.out);
    assert_eq!(h.out.take(0), ["(PM) carol: psst"]);
    let nowhere = Event::Said {
        room: "nowhere",
        nick: "carol",
        text: "x",
    };
    h.chat.deliver_remote("b", &nowhere, &mut h.out);
    assert!(h.out.lines.is_empty());
    assert!(h.out.events.is_empty());
}

/// Recorder that also records nick claims, for the shared-registry tests.
#[derive(Default)]
struct ClaimRecorder {
    inner: Recorder,
    claims: Vec<(ClientId, String, bool)>,
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
    fn claim_nick(&mut self, client: ClientId, nick: &str, rename: bool) {
        self.claims.push((client, nick.to_string(), rename));
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
    chat.connect(0, &mut out);
    out.inner.take(0);
    chat.handle_line(0, "/nick alice", now, &mut out);
    chat.handle_line(0, "/join dev", now, &mut out);
    chat.handle_line(0, "first words", now, &mut out);
    chat.reject_line(0, LineError::InvalidUtf8, &mut out);
    assert_eq!(out.claims, [(0, "alice".to_string(), false)]);
    assert!(
        out.inner.take(0).is_empty(),
        "nothing happens before the answer"
    );

    let saved = SavedRooms {
        rooms: vec!["main".into(), "ops".into()],
        active: "ops".into(),
    };
    chat.finish_claim(
        0,
        "alice",
        ClaimOutcome::Granted(Some(saved)),
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
fn shared_registry_refusals_and_stale_answers() {
    let (mut chat, mut out, now) = shared();
    chat.connect(0, &mut out);
    chat.connect(1, &mut out);
    out.inner.lines.clear();
    chat.handle_line(0, "/nick bob", now, &mut out);
    chat.finish_claim(0, "bob", ClaimOutcome::InUse, now, &mut out);
    assert_eq!(out.inner.take(0), ["! nick bob is in use"]);

    // Two local clients race for the same nick; the registry (down, say) grants both.
    chat.handle_line(0, "/nick carol", now, &mut out);
    chat.handle_line(1, "/nick carol", now, &mut out);
    chat.finish_claim(0, "carol", ClaimOutcome::Granted(None), now, &mut out);
    out.inner.events.clear();
    chat.finish_claim(1, "carol", ClaimOutcome::Granted(None), now, &mut out);
    assert_eq!(out.inner.take(1), ["! nick carol is in use"]);
    assert!(
        out.inner.events.is_empty(),
        "the holder's claim is not given back"
    );

    // An answer for a client that left gives the nick back.
    chat.handle_line(1, "/nick dave", now, &mut out);
    chat.disconnect(1, now, &mut out);
    chat.finish_claim(1, "dave", ClaimOutcome::Granted(None), now, &mut out);
    assert_eq!(out.inner.events, [r#"NickReleased { nick: "dave" }"#]);
}

#[test]
fn remote_users_show_in_who_rooms_and_msg() {
    let (mut chat, mut out, now) = shared();
    chat.connect(0, &mut out);
    chat.handle_line(0, "/nick alice", now, &mut out);
    chat.finish_claim(0, "alice", ClaimOutcome::Granted(None), now, &mut out);
    out.inner.take(0);
    let joined = |room, nick| Event::Presence {
        room,
        nick,
        change: Presence::Joined,
    };
    chat.deliver_remote("b", &joined("main", "Zoe"), &mut out);
    chat.deliver_remote("b", &joined("far", "Zoe"), &mut out);
    assert_eq!(out.inner.take(0), ["* [main] Zoe joined"]);
    chat.handle_line(0, "/who", now, &mut out);
    chat.handle_line(0, "/who far", now, &mut out);
    chat.handle_line(0, "/rooms", now, &mut out);
    chat.handle_line(0, "/msg zoe hi there", now, &mut out);
    chat.handle_line(0, "/nick ZOE", now, &mut out);
    assert_eq!(
        out.inner.take(0),
        [
            "* Members of main (2): alice, Zoe",
            "* Members of far (1): Zoe",
            "* Rooms (2): far (1), main (2)",
            "(PM to Zoe) You: hi there",
            "! nick ZOE is in use",
        ]
    );
    assert!(out
        .inner
        .events
        .contains(&r#"Private { from: "alice", to: "Zoe", text: "hi there" }"#.to_string()));
    chat.forget_node("b", &mut out);
    chat.handle_line(0, "/msg zoe still?", now, &mut out);
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
    chat.connect(0, &mut out);
    chat.handle_line(0, "/nick alice", now, &mut out);
    chat.finish_claim(0, "alice", ClaimOutcome::Granted(None), now, &mut out);
    let joined = Event::Presence {
        room: "кухня",
        nick: "Zoe",
        change: Presence::Joined,
    };
    chat.deliver_remote("b", &joined, &mut out);
    out.inner.take(0);
    chat.handle_line(0, "/join КУХНЯ", now, &mut out);
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
        self.peer.deliver_remote("a", event, self.peer_out);
    }
}

#[test]
fn a_rename_on_another_node_keeps_the_user_in_who_and_rooms() {
    let now = Instant::now();
    let mut node_b = Chat::new(ChatConfig::default());
    let mut out_b = Recorder::default();
    node_b.connect(0, &mut out_b);
    node_b.handle_line(0, "/nick alice", now, &mut out_b);
    let mut node_a = Chat::new(ChatConfig::default());
    let mut bridge = Bridge {
        local: Recorder::default(),
        peer: &mut node_b,
        peer_out: &mut out_b,
    };
    node_a.connect(0, &mut bridge);
    node_a.handle_line(0, "/nick bob", now, &mut bridge);
    node_a.handle_line(0, "/nick robert", now, &mut bridge);
    out_b.take(0);
    node_b.handle_line(0, "/who", now, &mut out_b);
    node_b.handle_line(0, "/msg ROBERT hi", now, &mut out_b);
    assert_eq!(
        out_b.take(0),
        [
            "* Members of main (2): alice, robert",
            "(PM to robert) You: hi",
        ]
    );
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
        &mut h.out,
    );
    assert_eq!(h.out.take(0), Vec::<String>::new());
    assert_eq!(
        h.ask(0, "/who r"),
        ["* Members of r (4): ann, bob, eve, fay"]
    );
}
