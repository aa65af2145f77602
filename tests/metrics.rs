//! The metrics endpoint (`--metrics`) over real HTTP requests: values that move with the chat's
//! traffic, and bad requests answered without disturbing the chat.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

use common::{http, Client, TestServer};

/// A server with metrics on a free port.
fn server_with_metrics(tweak: impl FnOnce(&mut chat_server::config::Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.metrics = Some("127.0.0.1:0".parse().expect("an address"));
        tweak(c);
    })
}

/// `GET /metrics`: the samples by series, after checking the status and content type.
fn scrape(server: &TestServer) -> HashMap<String, f64> {
    let addr = server.metrics_addr.expect("metrics are on");
    let answer = http(addr, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    let (head, body) = answer.split_once("\r\n\r\n").expect("headers, then a body");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())));
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("series and value");
            (series.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

#[test]
fn the_metrics_move_with_the_traffic() {
    let server = server_with_metrics(|c| c.max_per_ip = 3);
    let before = scrape(&server);
    for name in [
        "chat_connections",
        "chat_sessions_saved",
        "chat_rooms",
        "chat_messages_received_total",
        "chat_deliveries_total",
        "chat_bytes_received_total",
        "chat_bytes_sent_total",
        "chat_disconnects_total{reason=\"quit\"}",
        "chat_flood_delays_total",
        "chat_loop_turn_seconds_count",
        "chat_loop_turn_seconds_bucket{le=\"+Inf\"}",
    ] {
        assert!(before.contains_key(name), "{name} missing");
    }
    assert!(!before.contains_key("chat_cluster_up"), "standalone");
    assert_eq!(before["chat_connections"], 0.0);
    assert_eq!(before["chat_rooms"], 1.0);

    let mut alice = Client::login(server.addr, "alice");
    let mut bob = Client::login(server.addr, "bob");
    alice.expect("* [main] bob joined");
    alice.ask("/join dev", "* Joined dev. Active room: dev.");
    bob.ask("hello", "You: hello");
    alice.expect("[main] bob: hello");
    let mut third = Client::login(server.addr, "third");
    let mut refused = Client::connect_raw(server.addr);
    assert_eq!(
        refused.read_until_closed(),
        ["! too many connections from your address (max 3)"]
    );
    third.send("/quit");
    third.read_until_closed();
    bob.send("/who");
    let who = bob.wait_for(2, |l| l.starts_with("* Members"));
    assert_eq!(who, "* Members of main (2): alice, bob");

    let after = scrape(&server);
    assert_eq!(after["chat_connections"], 2.0);
    assert_eq!(after["chat_rooms"], 2.0);
    assert_eq!(after["chat_sessions_saved"], 1.0, "third's session");
    let grew = |name: &str, by: f64| {
        assert!(
            after[name] >= before[name] + by,
            "{name}: {} then {}",
            before[name],
            after[name]
        );
    };
    // /nick x3, /join, hello, /quit, /who.
    grew("chat_messages_received_total", 7.0);
    // Every line the clients read above, at least.
    grew("chat_deliveries_total", 12.0);
    grew("chat_bytes_received_total", 50.0);
    grew("chat_bytes_sent_total", 300.0);
    grew("chat_disconnects_total{reason=\"quit\"}", 1.0);
    grew("chat_disconnects_total{reason=\"per_ip\"}", 1.0);
    grew("chat_loop_turn_seconds_count", 5.0);
    assert_eq!(
        after["chat_loop_turn_seconds_bucket{le=\"+Inf\"}"],
        after["chat_loop_turn_seconds_count"]
    );
}

#[test]
fn bad_requests_get_errors_and_the_chat_goes_on() {
    let server = server_with_metrics(|_| {});
    let addr = server.metrics_addr.expect("metrics are on");
    let mut alice = Client::login(server.addr, "alice");
    let status = |answer: String| answer.lines().next().unwrap_or_default().to_string();
    let post = http(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(post.contains("\r\nAllow: GET, HEAD\r\n"), "{post}");
    assert_eq!(status(post), "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(
        status(http(addr, b"GET /admin HTTP/1.1\r\n\r\n")),
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        status(http(addr, b"\x16\x03\x01 hello, this is no HTTP\r\n\r\n")),
        "HTTP/1.1 400 Bad Request"
    );
    let mut huge = b"GET /metrics HTTP/1.1\r\n".to_vec();
    while huge.len() < 16 * 1024 {
        huge.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let too_big = status(http(addr, &huge));
    assert_eq!(too_big, "HTTP/1.1 431 Request Header Fields Too Large");
    let head = http(addr, b"HEAD /metrics HTTP/1.0\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"));
    // A client that closes its sending side right after its request still gets the answer.
    let mut half = TcpStream::connect(addr).expect("connect");
    half.write_all(b"GET /nowhere HTTP/1.1\r\n\r\n")
        .expect("send");
    half.shutdown(Shutdown::Write).expect("half close");
    let mut answer = String::new();
    half.read_to_string(&mut answer).expect("the answer");
    assert_eq!(status(answer), "HTTP/1.1 404 Not Found");
    // A request that never ends is closed after the read time, unanswered.
    assert_eq!(http(addr, b"GET /metr"), "");
    // Meanwhile, and after, the chat is served.
    alice.ask("still here", "You: still here");
    assert_eq!(scrape(&server)["chat_connections"], 1.0);
}

#[test]
fn limits_at_work_are_counted() {
    let server = server_with_metrics(|c| {
        c.flood_burst = 2;
        c.flood_rate = 50;
        c.login_timeout = 1;
    });
    let mut idle = Client::connect(server.addr);
    let mut chatty = Client::login(server.addr, "chatty");
    chatty.send_bytes(b"1\n2\n3\n4\n5\n6\n7\n8\n");
    chatty.wait_for(9, |l| l == "You: 8");
    assert_eq!(
        idle.read_until_closed(),
        ["! login timeout: no /nick within 1 second"]
    );
    let metrics = scrape(&server);
    assert!(metrics["chat_flood_delays_total"] >= 1.0);
    assert_eq!(
        metrics["chat_disconnects_total{reason=\"login_timeout\"}"],
        1.0
    );
}

#[test]
fn a_flooder_is_left_in_its_socket_not_read_into_memory() {
    // The /nick takes 5 of the 6 tokens: one line goes through, then one a second.
    let server = server_with_metrics(|c| {
        c.flood_burst = 6;
        c.flood_rate = 1;
    });
    let mut flooder = Client::login(server.addr, "flooder");
    let line = format!("{}\n", "x".repeat(999));
    let paste = line.repeat(32 * 1024);
    let mut socket = flooder.socket().try_clone().expect("a second handle");
    // 32 MB: more than the kernel buffers between client and server hold, so the writer is
    // still writing (held back by TCP) when the server has stopped reading.
    let writer = std::thread::spawn(move || {
        let _ = socket.write_all(paste.as_bytes());
    });
    flooder.wait_for(2, |l| l == format!("You: {}", &line[..999]));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let received = scrape(&server)["chat_bytes_received_total"];
    assert!(
        received <= 2.0 * 64.0 * 1024.0,
        "the server read {received} bytes of a flood it handles a line a second of"
    );
    assert!(!writer.is_finished(), "TCP holds the sender back");
    // Ends the blocked write too (it shares the socket).
    let _ = flooder.socket().shutdown(Shutdown::Both);
    let _ = writer.join();
}
