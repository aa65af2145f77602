//! The server's limits over real TCP: rooms on the server, flood control, the login timeout,
//! connections per address, and turning clients away so that they hear why.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{BinaryServer, Client, TestServer};

#[test]
fn a_join_past_max_rooms_is_refused_and_existing_rooms_still_work() {
    let server = TestServer::start_with(|c| c.max_rooms = 3);
    let mut alice = Client::login(server.addr, "alice");
    let mut bob = Client::login(server.addr, "bob");
    alice.expect("* [main] bob joined");
    alice.ask("/join a", "* Joined a. Active room: a.");
    alice.ask("/join b", "* Joined b. Active room: b.");
    bob.ask("/join c", "! too many rooms on this server (max 3)");
    bob.ask("/join a", "* Joined a. Active room: a.");
    alice.expect("* [a] bob joined");
    alice.ask("/leave b", "* Left b. Active room: main.");
    bob.ask("/join c", "* Joined c. Active room: c.");
    bob.ask("/rooms", "* Rooms (3): a (2), c (1), main (2)");
}

#[test]
fn connections_past_max_per_ip_are_turned_away_and_the_others_keep_working() {
    let server = TestServer::start_with(|c| c.max_per_ip = 3);
    let mut first: Vec<Client> = (0..3)
        .map(|i| Client::login(server.addr, &format!("user{i}")))
        .collect();
    let mut extra = Client::connect_raw(server.addr);
    assert_eq!(
        extra.read_until_closed(),
        ["! too many connections from your address (max 3)"]
    );
    // Another address is not affected.
    let mut neighbour = Client::connect_raw_from(server.addr, [127, 0, 0, 2]);
    assert!(neighbour.line().starts_with("* Welcome to chat-server."));
    neighbour.ask(
        "/nick neighbour",
        "* Welcome, neighbour. Rooms: main. Active room: main.",
    );
    // The first three still work.
    for client in &mut first {
        client.send("/who");
        let who = client.wait_for(4, |l| l.starts_with("* Members"));
        assert_eq!(who, "* Members of main (4): neighbour, user0, user1, user2");
    }
    // Every way a connection ends gives its place back: a /quit, a reset, a plain close.
    let mut quitter = first.pop().expect("three clients");
    quitter.send("/quit");
    quitter.read_until_closed();
    let mut again = Client::login(server.addr, "again");
    first.pop().expect("two clients").reset();
    drop(first.pop());
    // The server may see the reset and the close a moment after the clients made them.
    let mut admitted = Vec::new();
    for attempt in 0..200 {
        let mut late = Client::connect_raw(server.addr);
        if late.line().starts_with("* Welcome") {
            admitted.push(late);
            if admitted.len() == 2 {
                break;
            }
        }
        assert!(attempt < 199, "places were not given back");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    again.send("/who");
    let who = again.wait_for(4, |l| l.starts_with("* Members"));
    assert_eq!(who, "* Members of main (2): again, neighbour");
}

#[test]
fn a_client_turned_away_after_sending_data_still_reads_why() {
    // Closing a socket with unread input sends a reset, which can destroy the line before the
    // client reads it. The server is stopped while these clients connect and write, so their
    // lines are waiting in their sockets when it turns them away.
    let server = BinaryServer::start(&["--max-connections", "1", "--log-level", "error"]);
    // The probe that saw the server listening may still hold the one place for a moment.
    let mut alice = loop {
        let mut client = Client::connect_raw(server.addr);
        if client.line().starts_with("* Welcome") {
            break client;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    alice.ask(
        "/nick alice",
        "* Welcome, alice. Rooms: main. Active room: main.",
    );
    server.signal(libc::SIGSTOP);
    let mut late: Vec<Client> = (0..5)
        .map(|i| {
            let mut client = Client::connect_raw(server.addr);
            client.send_bytes(format!("/nick late{i}\nhello\n").as_bytes());
            client
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    server.signal(libc::SIGCONT);
    // Read only once the server had time to close them, as a slow client would.
    std::thread::sleep(Duration::from_millis(300));
    for (i, client) in late.iter_mut().enumerate() {
        assert_eq!(client.read_until_closed(), ["! server full"], "client {i}");
        // Nothing was reset: the server reads what such a client still sends until it closes
        // (a reset would make the second write fail).
        for _ in 0..2 {
            client
                .socket()
                .write_all(b"more\n")
                .expect("no reset from the server");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    alice.ask("/who", "* Members of main (1): alice");
}

#[test]
fn a_connection_without_a_nick_in_time_is_told_and_closed() {
    let server = TestServer::start_with(|c| c.login_timeout = 1);
    let mut idle = Client::connect(server.addr);
    let mut helpless = Client::connect(server.addr);
    helpless.send("/help");
    let mut alice = Client::connect(server.addr);
    alice.ask(
        "/nick alice",
        "* Welcome, alice. Rooms: main. Active room: main.",
    );
    assert_eq!(
        idle.read_until_closed(),
        ["! login timeout: no /nick within 1 second"]
    );
    let lines = helpless.read_until_closed();
    assert!(lines[0].starts_with("* Commands"), "{lines:?}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("! login timeout: no /nick within 1 second")
    );
    // Past the deadline, whoever logged in in time stays.
    alice.ask("/who", "* Members of main (1): alice");
}

#[test]
fn a_flooder_is_slowed_down_told_once_and_loses_nothing_while_others_go_on() {
    let server = TestServer::start_with(|c| {
        c.flood_burst = 5;
        c.flood_rate = 20;
    });
    let mut watcher = Client::login(server.addr, "watcher");
    let mut other = Client::login(server.addr, "other");
    watcher.expect("* [main] other joined");
    let mut flooder = Client::login(server.addr, "flooder");
    watcher.expect("* [main] flooder joined");
    other.expect("* [main] flooder joined");

    // 60 lines pasted at once: the burst goes through, the rest at 20 a second.
    const LINES: usize = 60;
    let paste: String = (0..LINES).map(|i| format!("flood {i}\n")).collect();
    flooder.send_bytes(paste.as_bytes());
    let mut notices = 0;
    let mut echoes = 0;
    while echoes < LINES {
        let line = flooder.line();
        if line.starts_with("* You are sending too fast") {
            notices += 1;
        } else if line != "[main] other: not held up" {
            assert_eq!(line, format!("You: flood {echoes}"));
            echoes += 1;
            if echoes == 10 {
                // Meanwhile someone else talks (and hears the flood too).
                other.send("not held up");
                other.wait_for(LINES, |l| l == "You: not held up");
            }
        }
    }
    assert_eq!(notices, 1, "told once for the whole flood");
    // The watcher gets every flood line in order, and the other client's line among them,
    // not after them: nobody waits for the flooder.
    let mut seen = 0;
    let mut other_seen = false;
    while seen < LINES {
        let line = watcher.line();
        if line == "[main] other: not held up" {
            other_seen = true;
        } else {
            assert_eq!(line, format!("[main] flooder: flood {seen}"));
            seen += 1;
        }
    }
    assert!(other_seen, "the other client's line came during the flood");
    // The flooder is still connected and answered.
    flooder.send("/who");
    let who = flooder.wait_for(1, |l| l.starts_with("* Members"));
    assert_eq!(who, "* Members of main (3): flooder, other, watcher");
}
