//! Cluster mode against a real `redis-server`: several real `chat-server` processes sharing
//! rooms, nicks and sessions, and what happens when a node or Redis dies.

mod common;

use std::time::{Duration, Instant};

use common::{free_addr, http, BinaryServer, Client, RedisServer};

/// A node of the cluster: the real binary pointed at `redis`. Without flood control: the tests
/// poll with commands faster than a person types, and one test pastes hundreds of lines.
fn node(redis: &RedisServer, name: &str) -> BinaryServer {
    BinaryServer::start(&[
        "--redis",
        &redis.url(),
        "--node",
        name,
        "--log-level",
        "warn",
        "--flood-rate",
        "0",
    ])
}

/// Logs in on a cluster node, where the nick claim takes a round trip to Redis.
fn login(server: &BinaryServer, nick: &str) -> Client {
    Client::login(server.addr, nick)
}

/// Sends `line` until `check` accepts the answer; for conditions that become true with time
/// (a node noticing another, a TTL running out). Gives up after `limit`.
fn retry_until(
    client: &mut Client,
    line: &str,
    limit: Duration,
    check: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        client.send(line);
        let answer = client.line();
        if check(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "still {answer:?} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn rooms_span_nodes_both_ways() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut alice = login(&a, "alice");
    let mut vasya = login(&b, "Вася");
    alice.expect("* [main] Вася joined");

    alice.ask("привет с узла a", "You: привет с узла a");
    // Presence crosses nodes asynchronously: "alice joined" may reach vasya after his login.
    vasya.wait_for(1, |l| l == "[main] alice: привет с узла a");
    vasya.ask("/me машет", "You: * Вася машет");
    alice.expect("[main] * Вася машет");

    vasya.ask("/join dev", "* Joined dev. Active room: dev.");
    // Node a learns of the join asynchronously.
    retry_until(&mut alice, "/who dev", Duration::from_secs(10), |l| {
        l == "* Members of dev (1): Вася"
    });
    alice.ask("/join dev", "* Joined dev. Active room: dev.");
    vasya.expect("* [dev] alice joined");
    alice.ask("/who", "* Members of dev (2): alice, Вася");
    alice.ask("/rooms", "* Rooms (2): dev (2), main (2)");
    alice.ask("/msg вася лично", "(PM to Вася) You: лично");
    vasya.expect("(PM) alice: лично");
    vasya.ask("/leave dev", "* Left dev. Active room: main.");
    alice.expect("* [dev] Вася left");
}

#[test]
fn a_node_does_not_deliver_its_own_messages_twice() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut one = login(&a, "one");
    let mut two = login(&a, "two");
    one.expect("* [main] two joined");
    let mut far = login(&b, "far");
    one.expect("* [main] far joined");
    two.expect("* [main] far joined");
    one.ask("once", "You: once");
    two.expect("[main] one: once");
    far.wait_for(2, |l| l == "[main] one: once");
    // Had the echo from Redis been delivered too, it would come before this.
    far.ask("marker", "You: marker");
    two.expect("[main] far: marker");
    one.expect("[main] far: marker");
}

#[test]
fn a_nick_is_unique_across_nodes() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let _alice = login(&a, "alice");
    let mut other = Client::connect(b.addr);
    other.ask("/nick ALICE", "! nick ALICE is in use");
    other.ask(
        "/nick bob",
        "* Welcome, bob. Rooms: main. Active room: main.",
    );
    // Presence crosses nodes asynchronously: "alice joined" may reach bob after his login.
    other.send("/nick alice");
    other.wait_for(1, |l| l == "! nick alice is in use");
}

#[test]
fn a_session_restores_on_another_node() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut alice = login(&a, "alice");
    alice.ask("/join dev", "* Joined dev. Active room: dev.");
    alice.ask("/join кухня", "* Joined кухня. Active room: кухня.");
    alice.ask("/join dev", "* Active room: dev.");
    alice.send("/quit");
    alice.read_until_closed();
    // Node a frees the nick asynchronously; a client reconnecting at once may need a retry.
    let mut back = Client::connect(b.addr);
    let answer = retry_until(&mut back, "/nick alice", Duration::from_secs(10), |l| {
        l != "! nick alice is in use"
    });
    assert_eq!(
        answer,
        "* Welcome back, alice. Rooms: main, dev, кухня. Active room: dev."
    );
}

#[test]
fn a_killed_node_frees_its_nicks_and_sessions_move() {
    let redis = RedisServer::start();
    let (mut a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut alice = login(&a, "alice");
    alice.ask("/join ops", "* Joined ops. Active room: ops.");
    let mut bob = login(&b, "bob");
    retry_until(&mut bob, "/who", Duration::from_secs(10), |l| {
        l == "* Members of main (2): alice, bob"
    });

    a.signal(libc::SIGKILL);
    assert_eq!(
        a.wait_exit(Duration::from_secs(10)),
        None,
        "killed, no exit code"
    );
    drop(alice);
    // Node b notices node a is gone and forgets its users.
    retry_until(&mut bob, "/who", Duration::from_secs(45), |l| {
        l == "* Members of main (1): bob"
    });

    // The nick stays taken until node a's registration runs out (about 30 s), then alice can
    // log in on node b and gets her rooms back.
    let mut back = Client::connect(b.addr);
    let answer = retry_until(&mut back, "/nick alice", Duration::from_secs(45), |l| {
        l != "! nick alice is in use"
    });
    assert_eq!(
        answer,
        "* Welcome back, alice. Rooms: main, ops. Active room: ops."
    );
    bob.wait_for(5, |l| l == "* [main] alice joined");
}

#[test]
fn losing_redis_keeps_local_rooms_working_and_recovers() {
    let mut redis = RedisServer::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut alice = login(&a, "alice");
    let mut anna = login(&a, "anna");
    alice.expect("* [main] anna joined");
    let mut bob = login(&b, "bob");
    alice.expect("* [main] bob joined");
    anna.expect("* [main] bob joined");

    redis.kill();
    let paused = "* Cross-node delivery paused: this server lost contact with the cluster. \
                  Your rooms keep working here; it will reconnect by itself.";
    alice.expect(paused);
    anna.expect(paused);
    // Presence from node a may still be arriving at node b.
    bob.wait_for(3, |l| l == paused);
    alice.ask("still here?", "You: still here?");
    anna.expect("[main] alice: still here?");

    redis.launch();
    alice.expect("* Cross-node delivery restored.");
    anna.expect("* Cross-node delivery restored.");
    bob.expect("* Cross-node delivery restored.");
    // The nodes re-registered their nicks and swapped rosters.
    let mut intruder = Client::connect(b.addr);
    retry_until(&mut intruder, "/nick alice", Duration::from_secs(15), |l| {
        l == "! nick alice is in use"
    });
    retry_until(&mut bob, "/who", Duration::from_secs(15), |l| {
        l == "* Members of main (3): alice, anna, bob"
    });
    bob.ask("back together", "You: back together");
    alice.wait_for(5, |l| l == "[main] bob: back together");
    anna.wait_for(5, |l| l == "[main] bob: back together");
}

#[test]
fn lines_sent_while_the_nick_is_checked_are_all_handled_in_order() {
    // The nick claim takes a round trip to Redis; what the client sends meanwhile waits for it,
    // and past what the chat keeps the server stops reading the client instead of dropping.
    let redis = RedisServer::start();
    let a = node(&redis, "a");
    let mut bot = Client::connect(a.addr);
    const LINES: usize = 300;
    let mut paste = String::from("/nick bot\n");
    for i in 0..LINES {
        paste.push_str(&format!("line {i}\n"));
    }
    bot.send_bytes(paste.as_bytes());
    bot.expect("* Welcome, bot. Rooms: main. Active room: main.");
    for i in 0..LINES {
        bot.expect(&format!("You: line {i}"));
    }
}

#[test]
fn cluster_metrics_count_what_crosses_nodes() {
    let redis = RedisServer::start();
    let metrics = free_addr();
    let a = BinaryServer::start(&[
        "--redis",
        &redis.url(),
        "--node",
        "a",
        "--log-level",
        "warn",
        "--metrics",
        &metrics.to_string(),
    ]);
    let b = node(&redis, "b");
    let mut alice = login(&a, "alice");
    let mut bob = login(&b, "bob");
    alice.expect("* [main] bob joined");
    // Presence crosses nodes asynchronously: "alice joined" may reach bob after his login.
    bob.send("from b");
    bob.wait_for(1, |l| l == "You: from b");
    alice.expect("[main] bob: from b");
    alice.ask("from a", "You: from a");
    bob.wait_for(1, |l| l == "[main] alice: from a");
    let answer = http(metrics, b"GET /metrics HTTP/1.1\r\n\r\n");
    let value = |name: &str| -> f64 {
        let line = answer
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing: {answer}"));
        line[name.len() + 1..].parse().expect("a number")
    };
    assert_eq!(value("chat_cluster_up"), 1.0);
    // Flow control's state is there; its values depend on the load of the moment.
    for name in [
        "chat_cluster_backlog",
        "chat_cluster_behind",
        "chat_cluster_paced",
        "chat_cluster_pace_delays_total",
    ] {
        assert!(value(name) >= 0.0, "{name}");
    }
    assert_eq!(value("chat_cluster_dropped_total"), 0.0);
    assert!(value("chat_cluster_published_total") >= 1.0);
    assert!(
        value("chat_cluster_received_total") >= 2.0,
        "bob joined, bob said"
    );
}

#[test]
fn a_cross_node_burst_arrives_complete_and_in_order() {
    // Far more lines than a node used to queue for its loop (10,000) before it dropped the
    // rest: now the senders' node is paced while the receiving node is behind, and nothing
    // is lost.
    const SENDERS: usize = 3;
    const LINES: usize = 10_000;
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut bob = login(&b, "bob");
    bob.ask("/join burst", "* Joined burst. Active room: burst.");
    let mut threads = Vec::new();
    for s in 0..SENDERS {
        let mut sender = login(&a, &format!("s{s}"));
        // Presence crosses nodes asynchronously: "bob joined" may come after the login.
        sender.send("/join burst");
        sender.wait_for(1, |l| l == "* Joined burst. Active room: burst.");
        let mut writer = sender.socket().try_clone().expect("clone the socket");
        let mut paste = String::new();
        for i in 0..LINES {
            paste.push_str(&format!("s{s} {i}\n"));
        }
        // One thread writes the whole paste (the node reads it as fast as the cluster
        // allows), another reads the sender's output, so the node never holds much for it.
        threads.push(std::thread::spawn(move || {
            std::io::Write::write_all(&mut writer, paste.as_bytes()).expect("send the burst");
        }));
        threads.push(std::thread::spawn(move || {
            let mut echoes = 0;
            while echoes < LINES {
                if sender.line().starts_with("You: ") {
                    echoes += 1;
                }
            }
        }));
    }
    let mut next = [0usize; SENDERS];
    let mut received = 0;
    while received < SENDERS * LINES {
        let line = bob.line();
        // Presence notices of the senders may come in between.
        let Some(message) = line.strip_prefix("[burst] ") else {
            continue;
        };
        let (nick, text) = message.split_once(": ").expect("NICK: TEXT");
        let s: usize = nick[1..].parse().expect("a sender's nick");
        assert_eq!(
            text,
            format!("s{s} {}", next[s]),
            "sender {s}'s lines in order"
        );
        next[s] += 1;
        received += 1;
    }
    assert_eq!(next, [LINES; SENDERS]);
    for thread in threads {
        thread.join().expect("sender thread");
    }
}

#[test]
fn a_node_stopped_gracefully_frees_its_nicks_at_once() {
    let redis = RedisServer::start();
    let (mut a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut u0 = login(&a, "u0");
    u0.ask("/join ops", "* Joined ops. Active room: ops.");
    let others: Vec<Client> = (1..4).map(|i| login(&a, &format!("u{i}"))).collect();
    let flooder = login(&a, "flooder");
    // Redis stalls for a moment while a client floods: the node's publications pile up in
    // front of its Redis worker, and the nick releases of its stop queue up behind them.
    redis.pause_writes(Duration::from_millis(1500));
    let mut writer = flooder.socket().try_clone().expect("clone the socket");
    let paste: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
    let flood = std::thread::spawn(move || {
        // The node closes the connection when it stops, maybe in the middle of this.
        let _ = std::io::Write::write_all(&mut writer, paste.as_bytes());
    });
    let mut flooder = flooder;
    let reader = std::thread::spawn(move || flooder.read_until_closed());
    std::thread::sleep(Duration::from_millis(300));
    a.signal(libc::SIGTERM);
    assert_eq!(
        a.wait_exit(Duration::from_secs(15)),
        Some(0),
        "a clean exit"
    );
    drop((u0, others));
    flood.join().expect("flood thread");
    reader.join().expect("reader thread");
    // At once, not after the registry entries expire (30 s): a single attempt each.
    let mut back = Client::connect(b.addr);
    back.ask(
        "/nick u0",
        "* Welcome back, u0. Rooms: main, ops. Active room: ops.",
    );
    for nick in ["u1", "u2", "u3", "flooder"] {
        let mut other = Client::connect(b.addr);
        other.send(&format!("/nick {nick}"));
        let answer = other.line();
        assert!(
            answer.starts_with(&format!("* Welcome back, {nick}.")),
            "{answer}"
        );
    }
}

/// Reads a replay or `/history` frame: the header `* {header_start}...`, then `count` lines
/// of room `room`, then `end`; returns the lines without their `[ROOM TIME] `.
fn framed(
    client: &mut Client,
    header_start: &str,
    room: &str,
    count: usize,
    end: &str,
) -> Vec<String> {
    let header = client.line();
    assert!(header.starts_with(header_start), "{header}");
    let lines = (0..count)
        .map(|_| {
            let (in_room, rest) = common::replayed(&client.line());
            assert_eq!(in_room, room);
            rest
        })
        .collect();
    client.expect(end);
    lines
}

#[test]
fn what_a_user_missed_is_replayed_on_another_node_and_history_is_shared() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut vasya = login(&a, "Вася");
    let mut alice = login(&b, "Алиса");
    vasya.wait_for(2, |l| l == "* [main] Алиса joined");
    // Presence crosses nodes asynchronously: "Вася joined" may reach Алиса after her login.
    alice.send("видно вживую");
    alice.wait_for(1, |l| l == "You: видно вживую");
    vasya.expect("[main] Алиса: видно вживую");
    vasya.send("/quit");
    vasya.read_until_closed();
    alice.wait_for(2, |l| {
        l == "* [main] Вася left" || l == "* [main] Вася disconnected"
    });
    alice.ask("Вася, ты где?", "You: Вася, ты где?");
    alice.ask("/me ждёт", "You: * Алиса ждёт");

    // Back on the other node: exactly what was said after he left, not what he saw live.
    let mut back = Client::connect(b.addr);
    let welcome = retry_until(&mut back, "/nick Вася", Duration::from_secs(10), |l| {
        l != "! nick Вася is in use"
    });
    assert_eq!(
        welcome,
        "* Welcome back, Вася. Rooms: main. Active room: main."
    );
    let missed = framed(
        &mut back,
        "* Missed in main: 2 messages since ",
        "main",
        2,
        "* End of missed messages in main.",
    );
    assert_eq!(missed, ["Алиса: Вася, ты где?", "* Алиса ждёт"]);
    alice.expect("* [main] Вася joined");
    alice.ask("вот ты где", "You: вот ты где");
    back.expect("[main] Алиса: вот ты где");

    // A node started later reads the rooms' history from Redis.
    let c = node(&redis, "c");
    let mut late = login(&c, "поздний");
    late.send("/history 4");
    let history = framed(
        &mut late,
        "* History of main: the last 4 messages.",
        "main",
        4,
        "* End of history of main.",
    );
    assert_eq!(
        history,
        [
            "Алиса: видно вживую",
            "Алиса: Вася, ты где?",
            "* Алиса ждёт",
            "Алиса: вот ты где",
        ]
    );
}

#[test]
fn a_nick_registered_on_one_node_is_owned_on_every_node() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut owner = login(&a, "Вася");
    owner.ask(
        "/register пароль один",
        "* Вася is now registered: from now on /nick Вася PASSWORD logs in as Вася.",
    );
    owner.ask("/join кухня", "* Joined кухня. Active room: кухня.");
    owner.send("/quit");
    owner.read_until_closed();
    // A registered nick's session is kept in Redis until its owner returns (no TTL).
    let client = redis::Client::open(redis.url()).expect("a Redis URL");
    let mut con = client.get_connection().expect("Redis answers");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let session: Option<String> = redis::cmd("GET")
            .arg("chat:session:вася")
            .query(&mut con)
            .expect("GET");
        let ttl: i64 = redis::cmd("TTL")
            .arg("chat:session:вася")
            .query(&mut con)
            .expect("TTL");
        if session.is_some_and(|s| s.contains("left_at_ms")) {
            assert_eq!(ttl, -1, "a registered nick's session expires");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the departure never reached Redis"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // On the other node: the bare nick is refused, a wrong password too, the right one
    // restores the session.
    let mut other = Client::connect(b.addr);
    other.ask(
        "/nick Вася",
        "! nick Вася is registered; use /nick Вася PASSWORD",
    );
    other.ask("/nick Вася неверный", "! wrong password for Вася");
    let welcome = retry_until(
        &mut other,
        "/nick Вася пароль один",
        Duration::from_secs(10),
        |l| l != "! nick Вася is in use",
    );
    assert_eq!(
        welcome,
        "* Welcome back, Вася. Rooms: main, кухня. Active room: кухня."
    );
    other.ask("/password два", "* The password of Вася is changed.");

    // A node started later reads the registrations from Redis, with the new password.
    let c = node(&redis, "c");
    let mut late = Client::connect(c.addr);
    late.ask("/nick Вася пароль один", "! wrong password for Вася");
    // Held by the connection on node b: a takeover reaches only a node's own connections.
    late.ask("/nick Вася два", "! nick Вася is in use");
    other.send("/quit");
    other.read_until_closed();
    let welcome = retry_until(
        &mut late,
        "/nick Вася два",
        Duration::from_secs(10),
        |l| l != "! nick Вася is in use",
    );
    assert!(welcome.starts_with("* Welcome back, Вася."), "{welcome}");
    late.ask("/unregister", "* Вася is no longer registered.");
}

#[test]
fn the_registry_refuses_a_registered_nick_a_node_has_not_heard_of() {
    let redis = RedisServer::start();
    let b = node(&redis, "b");
    // Registered elsewhere, its announcement not (yet) seen by node b: the registry knows.
    let client = redis::Client::open(redis.url()).expect("a Redis URL");
    let mut con = client.get_connection().expect("Redis answers");
    let account =
        r#"{"display":"Вася","hash":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA"}"#;
    redis::cmd("HSET")
        .arg("chat:accounts")
        .arg("вася")
        .arg(account)
        .exec(&mut con)
        .expect("HSET");
    let mut other = Client::connect(b.addr);
    other.ask(
        "/nick ВАСЯ",
        "! nick ВАСЯ is registered; use /nick ВАСЯ PASSWORD",
    );
    other.ask(
        "/nick Петя",
        "* Welcome, Петя. Rooms: main. Active room: main.",
    );
}

#[test]
fn a_private_message_kept_on_one_node_is_delivered_on_another() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut alice = login(&a, "Алиса");
    let mut vasya = login(&a, "Вася");
    alice.expect("* [main] Вася joined");
    vasya.send("/quit");
    vasya.read_until_closed();
    alice.expect("* [main] Вася disconnected");
    alice.ask("/msg Вася ты где?", "(PM to Вася) You: ты где?");
    alice.expect("* Вася is away; your message will be delivered when they return.");

    // Back on a third node, started after all this: it read the kept message from Redis.
    let c = node(&redis, "c");
    let mut back = Client::connect(c.addr);
    back.ask(
        "/nick Вася",
        "* Welcome back, Вася. Rooms: main. Active room: main.",
    );
    back.expect("* Missed while you were away: 1 private message.");
    let kept = back.line();
    assert!(
        kept.starts_with("(PM ") && kept.ends_with(") Алиса: ты где?"),
        "{kept}"
    );
    back.expect("* End of missed private messages.");
    // Delivered once: gone from Redis and from every node.
    back.send("/quit");
    back.read_until_closed();
    let mut again = Client::connect(b.addr);
    let welcome = retry_until(&mut again, "/nick Вася", Duration::from_secs(10), |l| {
        l != "! nick Вася is in use"
    });
    assert_eq!(
        welcome,
        "* Welcome back, Вася. Rooms: main. Active room: main."
    );
    // Nothing kept came again (presence of his visits may come first).
    let mut kept_again = false;
    again.send("/who");
    again.wait_for(4, |l| {
        kept_again |= l.starts_with("* Missed while");
        l.starts_with("* Members")
    });
    assert!(!kept_again, "a kept message was delivered twice");
}
