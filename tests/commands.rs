//! Every command over real TCP against an in-process server.

mod common;

use common::{Client, TestServer};

#[test]
fn a_whole_conversation_in_two_scripts() {
    let server = TestServer::start();
    let mut alice = Client::login(server.addr, "alice");
    let mut vasya = Client::login(server.addr, "Вася");
    alice.expect("* [main] Вася joined");

    vasya.ask("Привет всем! 👋", "You: Привет всем! 👋");
    alice.expect("[main] Вася: Привет всем! 👋");

    alice.ask("/join кухня", "* Joined кухня. Active room: кухня.");
    vasya.ask("/join КУХНЯ", "* Joined кухня. Active room: кухня.");
    alice.expect("* [кухня] Вася joined");
    alice.ask("東京 café ✓", "You: 東京 café ✓");
    vasya.expect("[кухня] alice: 東京 café ✓");
}

#[test]
fn help_lists_every_command() {
    let server = TestServer::start();
    let mut client = Client::connect(server.addr);
    client.send("/help");
    let mut help = Vec::new();
    loop {
        let line = client.line();
        assert!(line.starts_with("* "), "{line}");
        let last = line.contains("start it with //");
        help.push(line);
        if last {
            break;
        }
    }
    let help = help.join("\n");
    for command in [
        "/nick", "/join", "/leave", "/rooms", "/who", "/msg", "/me", "/help", "/quit",
    ] {
        assert!(help.contains(command), "{command} missing from help");
    }
}

#[test]
fn join_leave_and_active_room() {
    let server = TestServer::start();
    let mut alice = Client::login(server.addr, "alice");
    let mut bob = Client::login(server.addr, "bob");
    alice.expect("* [main] bob joined");
    let mut carol = Client::login(server.addr, "carol");
    alice.expect("* [main] carol joined");
    bob.expect("* [main] carol joined");

    alice.ask("/join dev", "* Joined dev. Active room: dev.");
    bob.ask("/join dev", "* Joined dev. Active room: dev.");
    alice.expect("* [dev] bob joined");
    bob.ask("in dev", "You: in dev");
    alice.expect("[dev] bob: in dev");

    // carol is not in dev: the next thing she sees is what comes after.
    alice.ask("/join main", "* Active room: main.");
    alice.ask("in main", "You: in main");
    carol.expect("[main] alice: in main");
    bob.expect("[main] alice: in main");

    bob.ask("/leave dev", "* Left dev. Active room: main.");
    alice.expect("* [dev] bob left");
    bob.ask("/leave dev", "! you are not in dev");
    bob.ask("/leave main", "! you cannot leave main");
}

#[test]
fn rooms_and_who() {
    let server = TestServer::start();
    let mut alice = Client::login(server.addr, "alice");
    let mut bob = Client::login(server.addr, "bob");
    alice.expect("* [main] bob joined");
    bob.ask("/join dev", "* Joined dev. Active room: dev.");
    alice.ask("/rooms", "* Rooms (2): dev (1), main (2)");
    alice.ask("/who", "* Members of main (2): alice, bob");
    alice.ask("/who dev", "* Members of dev (1): bob");
    alice.ask("/who nope", "! no such room: nope");
}

#[test]
fn private_messages_and_actions() {
    let server = TestServer::start();
    let mut alice = Client::login(server.addr, "alice");
    let mut bob = Client::login(server.addr, "bob");
    alice.expect("* [main] bob joined");
    alice.ask("/msg BOB see you later", "(PM to bob) You: see you later");
    bob.expect("(PM) alice: see you later");
    alice.ask("/msg nobody hi", "! no such user: nobody");
    bob.ask("/me waves", "You: * bob waves");
    alice.expect("[main] * bob waves");
}

#[test]
fn nick_conflicts_and_renames() {
    let server = TestServer::start();
    let mut alice = Client::login(server.addr, "alice");
    let mut other = Client::connect(server.addr);
    other.ask("/nick ALICE", "! nick ALICE is in use");
    other.ask(
        "/nick bob",
        "* Welcome, bob. Rooms: main. Active room: main.",
    );
    alice.expect("* [main] bob joined");
    other.ask("/nick alice", "! nick alice is in use");
    other.ask("/nick robert", "* You are now robert (was bob).");
    alice.expect("* [main] bob is now robert");
    // bob is free again.
    let mut third = Client::connect(server.addr);
    third.ask(
        "/nick bob",
        "* Welcome, bob. Rooms: main. Active room: main.",
    );
}

#[test]
fn commands_before_a_nick_are_refused() {
    let server = TestServer::start();
    let mut client = Client::connect(server.addr);
    client.ask("hello", "! set a nick first: /nick NAME");
    client.ask("/join dev", "! set a nick first: /nick NAME");
    client.ask(
        "/nick a:b",
        "! invalid nick \"a:b\": use 1-32 letters, digits, _ or -",
    );
    client.ask("/frob", "! unknown command /frob (try /help)");
    client.ask("/join", "! usage: /join ROOM");
}

#[test]
fn quit_says_goodbye_and_the_session_survives() {
    let server = TestServer::start();
    let mut alice = Client::login(server.addr, "alice");
    let mut bob = Client::login(server.addr, "bob");
    alice.expect("* [main] bob joined");
    alice.ask("/join dev", "* Joined dev. Active room: dev.");
    alice.send("/quit");
    assert_eq!(
        alice.read_until_closed(),
        ["* Bye, alice. Your session is kept; /nick alice restores it."]
    );
    bob.expect("* [main] alice disconnected");
    let mut again = Client::connect(server.addr);
    again.ask(
        "/nick alice",
        "* Welcome back, alice. Rooms: main, dev. Active room: dev.",
    );
    bob.expect("* [main] alice joined");
}

#[test]
fn telnet_style_input_works() {
    let server = TestServer::start();
    let mut alice = Client::login(server.addr, "alice");
    let mut bob = Client::connect(server.addr);
    // What a telnet client may send: option negotiation, CRLF line ends.
    bob.send_bytes(b"\xff\xfb\x1f\xff\xfd\x03/nick bob\r\n");
    // Answers: binary mode proposed, window size (31) and suppress-go-ahead (3) declined.
    let mut expected = vec![0xff, 0xfd, 0x00, 0xff, 0xfe, 31, 0xff, 0xfc, 3];
    expected.extend_from_slice(b"* Welcome, bob. Rooms: main. Active room: main.\r\n");
    assert_eq!(bob.raw_line(), expected);
    alice.expect("* [main] bob joined");
    bob.send_bytes("при\u{0432}ет\r\n".as_bytes());
    bob.expect("You: привет");
    alice.expect("[main] bob: привет");
}

#[test]
fn cyrillic_from_a_real_telnet_client_round_trips() {
    let server = TestServer::start();
    let mut alice = Client::login(server.addr, "alice");
    let mut vasya = Client::connect(server.addr);
    // Bytes captured from netkit telnet typing "/nick Вася": before 8-bit mode it sends the
    // 0x8F of "я" as IAC AO plus IAC DO TIMING-MARK.
    vasya.send_bytes(b"/nick \xd0\x92\xd0\xb0\xd1\x81\xd1\xff\xf5\xff\xfd\x06\r\n");
    // The server answers the timing mark first (the client discards output until then) and
    // proposes binary mode; the nick arrives intact.
    let mut expected = vec![0xff, 0xfd, 0x00, 0xff, 0xfb, 0x06];
    expected.extend_from_slice("* Welcome, Вася. Rooms: main. Active room: main.\r\n".as_bytes());
    assert_eq!(vasya.raw_line(), expected);
    alice.expect("* [main] Вася joined");
    // The client agrees to binary mode; from then on it sends plain UTF-8 and bare LFs.
    vasya.send_bytes(b"\xff\xfb\x00");
    vasya.send_bytes("Я учу Rust. Ёжик, щука, юла ☃\n".as_bytes());
    vasya.expect("You: Я учу Rust. Ёжик, щука, юла ☃");
    alice.expect("[main] Вася: Я учу Rust. Ёжик, щука, юла ☃");
}

#[test]
fn graceful_stop_of_an_in_process_server() {
    let server = TestServer::start();
    let mut alice = Client::login(server.addr, "alice");
    server.stop().expect("run returns Ok");
    assert_eq!(alice.read_until_closed(), ["* Server shutting down. Bye!"]);
}

#[test]
fn big_rooms_do_not_announce_arrivals_and_departures() {
    let server = TestServer::start_with(|config| config.announce_limit = 2);
    let mut alice = Client::login(server.addr, "alice");
    let mut bob = Client::login(server.addr, "bob");
    alice.expect("* [main] bob joined");
    bob.ask("/join dev", "* Joined dev. Active room: dev.");
    alice.ask("/join dev", "* Joined dev. Active room: dev.");
    bob.expect("* [dev] alice joined");

    // A third member makes both rooms quiet; the newcomer is told why.
    let mut carol = Client::login(server.addr, "carol");
    carol.expect(
        "* main has 3 members: arrivals and departures are not announced in rooms of more than 2; \
         /who main lists them.",
    );
    carol.ask("/join dev", "* Joined dev. Active room: dev.");
    carol.expect(
        "* dev has 3 members: arrivals and departures are not announced in rooms of more than 2; \
         /who dev lists them.",
    );
    carol.ask("/leave dev", "* Left dev. Active room: main.");
    carol.send("/quit");
    carol.read_until_closed();

    // Messages still reach everyone; alice's next line is bob's, with no notices before it.
    bob.ask("still here", "You: still here");
    alice.expect("[dev] bob: still here");
    alice.ask("/who main", "* Members of main (2): alice, bob");
}

#[test]
fn lines_sent_right_after_connecting_are_answered_after_the_greeting() {
    let server = TestServer::start();
    let mut bot = Client::connect_raw(server.addr);
    bot.send_bytes(b"/nick bot\n/join r\nhello\n");
    assert!(bot.line().starts_with("* Welcome to chat-server."));
    bot.expect("* Welcome, bot. Rooms: main. Active room: main.");
    bot.expect("* Joined r. Active room: r.");
    bot.expect("You: hello");
}
