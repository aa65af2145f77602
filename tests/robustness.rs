//! Abrupt disconnects, bad input, slow readers, limits, many clients and shutdown, over real TCP.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use common::{BinaryServer, Client, TestServer, LINE_TIMEOUT};

#[test]
fn a_reset_connection_is_cleaned_up_and_restorable() {
    let server = TestServer::start();
    let mut watcher = Client::login(server.addr, "watcher");
    let mut alice = Client::login(server.addr, "alice");
    watcher.expect("* [main] alice joined");
    alice.ask("/join dev", "* Joined dev. Active room: dev.");
    alice.ask("/join кухня", "* Joined кухня. Active room: кухня.");
    alice.ask("/join dev", "* Active room: dev.");
    alice.reset();
    watcher.expect("* [main] alice disconnected");

    let mut back = Client::connect(server.addr);
    back.ask(
        "/nick alice",
        "* Welcome back, alice. Rooms: main, dev, кухня. Active room: dev.",
    );
    watcher.expect("* [main] alice joined");
    back.ask("/who", "* Members of dev (1): alice");
}

#[test]
fn a_client_killed_mid_line_sends_nothing_half_done() {
    let server = TestServer::start();
    let mut watcher = Client::login(server.addr, "watcher");
    let mut alice = Client::login(server.addr, "alice");
    watcher.expect("* [main] alice joined");
    alice.send_bytes("half a li".as_bytes());
    alice.send_bytes(&"не".as_bytes()[..3]);
    drop(alice);
    watcher.expect("* [main] alice disconnected");
    let mut bob = Client::login(server.addr, "bob");
    watcher.expect("* [main] bob joined");
    bob.ask("after", "You: after");
    watcher.expect("[main] bob: after");
}

#[test]
fn invalid_utf8_is_refused_and_the_connection_stays() {
    let server = TestServer::start();
    let mut watcher = Client::login(server.addr, "watcher");
    let mut alice = Client::login(server.addr, "alice");
    watcher.expect("* [main] alice joined");
    alice.send_bytes(b"bad \xc3\x28 bytes\n");
    alice.expect("! invalid UTF-8; line discarded");
    alice.send_bytes(b"\xfe\xfe\n");
    alice.expect("! invalid UTF-8; line discarded");
    alice.ask("fine", "You: fine");
    watcher.expect("[main] alice: fine");
}

#[test]
fn overlong_lines_are_refused_with_bounded_memory() {
    let server = TestServer::start_with(|c| c.max_line = 1024);
    let mut watcher = Client::login(server.addr, "watcher");
    let mut alice = Client::login(server.addr, "alice");
    watcher.expect("* [main] alice joined");
    // 8 MiB without a newline: the server must discard, not buffer, it.
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..128 {
        alice.send_bytes(&chunk);
    }
    alice.send_bytes(b"\nok\n");
    alice.expect("! line too long (max 1024 bytes); line discarded");
    alice.expect("You: ok");
    watcher.expect("[main] alice: ok");
    // Exactly at the limit is fine.
    let exact = "y".repeat(1024);
    alice.ask(&exact, &format!("You: {exact}"));
}

#[test]
fn a_reader_that_stops_reading_is_dropped_and_others_keep_going() {
    // The talker floods on purpose: no flood control.
    let server = TestServer::start_with(|c| {
        c.sendq = 64 * 1024;
        c.flood_rate = 0;
    });
    let mut sloth = Client::login(server.addr, "sloth");
    let mut talker = Client::login(server.addr, "talker");
    sloth.expect("* [main] talker joined");
    let mut listener = Client::login(server.addr, "listener");
    talker.expect("* [main] listener joined");
    socket2::SockRef::from(sloth.socket())
        .set_recv_buffer_size(64 * 1024)
        .expect("small receive buffer");

    // The sloth reads nothing from here on. Flood the room until it is dropped; the listener
    // must receive every line meanwhile, and hear that the sloth disconnected.
    let text = "z".repeat(1000);
    let mut notice_seen = false;
    let mut dropped = false;
    for _ in 0..400 {
        for _ in 0..25 {
            talker.send(&text);
        }
        for _ in 0..25 {
            // The talker is in the room too: the sloth's departure may come between echoes.
            let echo = format!("You: {text}");
            talker.wait_for(1, |l| l == echo);
            let line = listener.wait_for(1, |l| {
                notice_seen |= l == "* [main] sloth disconnected";
                l.starts_with("[main] talker: ")
            });
            assert_eq!(line, format!("[main] talker: {text}"));
        }
        talker.send("/who");
        let who = talker.wait_for(1, |l| l.starts_with("* Members"));
        if !who.contains("sloth") {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the slow reader was never dropped");
    talker.send("marker");
    talker.wait_for(1, |l| l == "You: marker");
    listener.wait_for(1, |l| {
        notice_seen |= l == "* [main] sloth disconnected";
        l == "[main] talker: marker"
    });
    assert!(notice_seen, "the room was not told");
    // Its connection ends after whatever was already in flight.
    sloth.read_until_closed();
    // Its session was saved like on any disconnect.
    let mut back = Client::connect(server.addr);
    back.ask(
        "/nick sloth",
        "* Welcome back, sloth. Rooms: main. Active room: main.",
    );
}

#[test]
fn two_thousand_clients_talk_in_main() {
    const CLIENTS: usize = 2000;
    const SPEAKERS: usize = 20;
    // All from 127.0.0.1: no limit per address.
    let server = TestServer::start_with(|c| c.max_per_ip = 0);
    let mut clients: Vec<Client> = (0..CLIENTS)
        .map(|i| {
            let mut client = Client::connect(server.addr);
            client.send(&format!("/nick user{i}"));
            client
        })
        .collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.wait_for(0, |l| l.starts_with(&format!("* Welcome, user{i}.")));
    }
    for i in 0..SPEAKERS {
        clients[i * 97].send(&format!("message {i} from user{}", i * 97));
    }
    let mut quiet_told = 0;
    for (n, client) in clients.iter_mut().enumerate() {
        let mut seen = 0;
        let mut arrivals = 0;
        while seen < SPEAKERS {
            let line = client.line();
            if line.starts_with("[main] user") || line.starts_with("You: message") {
                seen += 1;
            } else if line.starts_with("* [main] user") {
                arrivals += 1;
            } else {
                // Past the announce limit (100) main goes quiet, and newcomers are told so.
                assert!(line.starts_with("* main has "), "client {n}: {line}");
                quiet_told += 1;
            }
        }
        assert!(arrivals < 100, "client {n} was told of {arrivals} arrivals");
    }
    assert_eq!(
        quiet_told,
        CLIENTS - 100,
        "everyone past the 100th is told main is quiet"
    );
    clients[0].ask("/rooms", &format!("* Rooms (1): main ({CLIENTS})"));
}

#[test]
fn a_full_server_says_so_and_closes() {
    let server = TestServer::start_with(|c| c.max_connections = Some(2));
    let mut alice = Client::login(server.addr, "alice");
    let _bob = Client::login(server.addr, "bob");
    let mut third = Client::connect_raw(server.addr);
    assert_eq!(third.read_until_closed(), ["! server full"]);
    alice.expect("* [main] bob joined");
    alice.ask("still fine", "You: still fine");
}

#[test]
fn running_out_of_file_descriptors_turns_clients_away_without_dying() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
    // SAFETY: setrlimit is async-signal-safe and touches only this child's limits.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 48,
                rlim_max: 48,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let server = BinaryServer::start_command(
        command,
        &[
            "--max-connections",
            "1000",
            "--max-per-ip",
            "0",
            "--log-level",
            "error",
        ],
    );
    let mut alice = Client::login(server.addr, "alice");
    let mut turned_away = 0;
    let mut others = Vec::new();
    for _ in 0..80 {
        let mut stream = TcpStream::connect(server.addr).expect("the kernel still accepts");
        stream
            .set_read_timeout(Some(LINE_TIMEOUT))
            .expect("timeout");
        let mut first = [0u8; 64];
        let n = stream.read(&mut first).expect("a first line");
        let first = String::from_utf8_lossy(&first[..n]).to_string();
        if first.starts_with("! server full") {
            turned_away += 1;
        } else {
            assert!(first.starts_with("* Welcome"), "{first}");
            others.push(stream);
        }
    }
    assert!(
        turned_away > 0,
        "the limit of 48 descriptors was never reached"
    );
    // Whoever is connected still chats, and freed descriptors are used again.
    alice.ask("/who", "* Members of main (1): alice");
    others.clear();
    alice.ask("/rooms", "* Rooms (1): main (1)");
    let mut late = Client::connect(server.addr);
    late.ask(
        "/nick late",
        "* Welcome, late. Rooms: main. Active room: main.",
    );
}

#[test]
fn sigterm_and_sigint_stop_the_binary_gracefully() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut server = BinaryServer::start(&["--log-level", "warn"]);
        let mut alice = Client::login(server.addr, "alice");
        let mut bob = Client::login(server.addr, "bob");
        alice.expect("* [main] bob joined");
        server.signal(signal);
        assert_eq!(alice.read_until_closed(), ["* Server shutting down. Bye!"]);
        assert_eq!(bob.read_until_closed(), ["* Server shutting down. Bye!"]);
        assert_eq!(
            server.wait_exit(Duration::from_secs(10)),
            Some(0),
            "signal {signal}"
        );
    }
}

#[test]
fn the_binary_documents_its_flags() {
    let output = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--listen",
        "--log-level",
        "--max-line",
        "--max-connections",
        "--sendq",
        "--session-ttl",
        "--flood-burst",
        "--flood-rate",
        "--login-timeout",
        "--max-per-ip",
        "--max-rooms",
        "--metrics",
        "CHAT_LISTEN",
        "0.0.0.0:5555",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn a_bad_flag_is_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--listen", "not-an-address"])
        .output()
        .expect("run with a bad flag");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--listen"));
}

#[test]
fn writes_after_the_peer_vanished_do_not_hurt_others() {
    // Fifty lines as fast as the answers come: no flood control.
    let server = TestServer::start_with(|c| c.flood_rate = 0);
    let mut alice = Client::login(server.addr, "alice");
    let gone = Client::login(server.addr, "gone");
    alice.expect("* [main] gone joined");
    gone.reset();
    // Whether the reset is seen before or among these messages, alice is served throughout.
    let mut notice_seen = false;
    for i in 0..50 {
        alice.send(&format!("msg {i}"));
        alice.wait_for(1, |l| {
            notice_seen |= l == "* [main] gone disconnected";
            l == format!("You: msg {i}")
        });
    }
    alice.send("/who");
    let who = alice.wait_for(1, |l| {
        notice_seen |= l == "* [main] gone disconnected";
        l.starts_with("* Members")
    });
    assert_eq!(who, "* Members of main (1): alice");
    assert!(notice_seen);
}

#[test]
fn a_burst_of_short_lines_drops_no_reader_that_keeps_reading() {
    // 25,000 two-byte lines in one write become 1.1 MB for each reader: a little more than its
    // output limit (1 MiB), but no more than that limit plus what its socket takes, so a reader
    // must keep its connection and get every line however slowly it is scheduled.
    const LINES: usize = 25_000;
    // The flooder floods on purpose: no flood control.
    let server = TestServer::start_with(|c| c.flood_rate = 0);
    let nick = "F".repeat(32);
    let mut readers: Vec<Client> = (0..3)
        .map(|i| Client::login(server.addr, &format!("reader{i}")))
        .collect();
    let mut flooder = Client::login(server.addr, &nick);
    for reader in &mut readers {
        reader.wait_for(3, |l| l == format!("* [main] {nick} joined"));
    }
    let expected = format!("[main] {nick}: a");
    let threads: Vec<_> = readers
        .into_iter()
        .map(|mut reader| {
            let expected = expected.clone();
            std::thread::spawn(move || {
                for _ in 0..LINES {
                    assert_eq!(reader.line(), expected);
                }
                // Kept open until every reader is done: one that closed early would be
                // announced to the others before their answer to /who.
                reader
            })
        })
        .collect();
    flooder.send_bytes(&b"a\n".repeat(LINES));
    for _ in 0..LINES {
        flooder.expect("You: a");
    }
    let mut readers: Vec<Client> = threads
        .into_iter()
        .map(|thread| thread.join().expect("every reader got every line"))
        .collect();
    for reader in &mut readers {
        reader.ask(
            "/who",
            &format!(
                "* Members of main (4): {}, reader0, reader1, reader2",
                "F".repeat(32)
            ),
        );
    }
}

#[test]
fn a_client_that_half_closes_still_gets_its_answers() {
    let server = TestServer::start();
    let mut watcher = Client::login(server.addr, "watcher");
    let mut halfy = Client::connect(server.addr);
    halfy.send("/nick halfy");
    halfy.send("/join dev");
    halfy.send("hello from halfy");
    halfy
        .socket()
        .shutdown(std::net::Shutdown::Write)
        .expect("half close");
    assert_eq!(
        halfy.read_until_closed(),
        [
            "* Welcome, halfy. Rooms: main. Active room: main.",
            "* Joined dev. Active room: dev.",
            "You: hello from halfy",
        ]
    );
    watcher.expect("* [main] halfy joined");
    watcher.expect("* [main] halfy disconnected");
    let mut back = Client::connect(server.addr);
    back.ask(
        "/nick halfy",
        "* Welcome back, halfy. Rooms: main, dev. Active room: dev.",
    );
}

#[test]
fn lines_that_arrive_as_idle_memory_is_given_back_are_answered_right() {
    // The server gives its output memory back after a quiet second. Lines that arrive in the
    // very turn it does so (held back here by stopping the process) must still go out intact.
    let server = BinaryServer::start(&[]);
    let mut alice = Client::connect(server.addr);
    let mut bob = Client::login(server.addr, "bob");
    let gone = Client::login(server.addr, "gone");
    bob.expect("* [main] gone joined");
    // Stopped less than a second after its last output, it wakes up past the release time.
    server.signal(libc::SIGSTOP);
    alice.send("/nick alice");
    alice.send("/msg bob secret");
    gone.reset();
    std::thread::sleep(Duration::from_millis(1500));
    server.signal(libc::SIGCONT);
    alice.expect("* Welcome, alice. Rooms: main. Active room: main.");
    alice.expect("(PM to bob) You: secret");
    bob.expect("* [main] alice joined");
    bob.expect("(PM) alice: secret");
    bob.expect("* [main] gone disconnected");
    bob.ask("still here", "You: still here");
}
