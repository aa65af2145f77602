//! The memory budget, with the real binary under `--max-memory`: clients that stop reading
//! are dropped, biggest output first, before their output can crowd the process out, and the
//! server keeps serving.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{free_addr, http, BinaryServer, Client};
use socket2::SockRef;

/// `chat_disconnects_total{reason="REASON"}` from the metrics at `addr`.
fn disconnects(addr: std::net::SocketAddr, reason: &str) -> f64 {
    metric(
        addr,
        &format!("chat_disconnects_total{{reason=\"{reason}\"}}"),
    )
}

/// The value of `series` in the metrics at `addr`.
fn metric(addr: std::net::SocketAddr, series: &str) -> f64 {
    let answer = http(addr, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    let prefix = format!("{series} ");
    answer
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {answer}"))
}

#[test]
fn clients_that_do_not_read_are_dropped_before_their_output_fills_the_budget() {
    let metrics = free_addr();
    // 48 MB in all: output may take two fifths of it, 19.2 MB, while each client's own limit
    // (32 MiB) alone would let four of them hold 128 MiB.
    let server = BinaryServer::start(&[
        "--max-memory",
        "48000000",
        "--sendq",
        "33554432",
        "--flood-rate",
        "0",
        "--metrics",
        &metrics.to_string(),
    ]);
    let mut lurkers = Vec::new();
    for n in 0..4 {
        let lurker = Client::login(server.addr, &format!("lurker{n}"));
        // A tiny receive window: what they do not read stays with the server.
        SockRef::from(lurker.socket())
            .set_recv_buffer_size(4096)
            .expect("SO_RCVBUF");
        lurkers.push(lurker);
    }
    let mut flooder = TcpStream::connect(server.addr).expect("connect");
    flooder.write_all(b"/nick flooder\n").expect("nick");
    let line = format!("{}\n", "x".repeat(1000));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0usize;
    // Up to 40 MB of input, which would be 160 MB of output for the four; stop once the server
    // says it dropped someone for memory.
    while sent < 40_000_000 && disconnects(metrics, "memory") < 1.0 {
        assert!(Instant::now() < deadline, "no drop within a minute");
        for _ in 0..1000 {
            flooder.write_all(line.as_bytes()).expect("the flood");
        }
        sent += 1000 * line.len();
    }
    assert!(disconnects(metrics, "memory") >= 1.0);
    assert_eq!(
        disconnects(metrics, "slow_reader"),
        0.0,
        "the budget acted before any client's own limit"
    );
    // The server goes on serving (in a room of its own: main still has the flood).
    drop(flooder);
    let mut newcomer = Client::login(server.addr, "newcomer");
    newcomer.send("/join quiet");
    newcomer.wait_for(100_000, |line| {
        line == "* Joined quiet. Active room: quiet."
    });
    newcomer.ask("still there?", "You: still there?");
}

#[test]
fn one_read_of_many_lines_into_a_big_room_stops_at_the_output_budget() {
    let metrics = free_addr();
    // 32 MB in all: output may take two fifths of it, 12.8 MB.
    let server = BinaryServer::start(&[
        "--max-memory",
        "32000000",
        "--sendq",
        "33554432",
        "--flood-rate",
        "0",
        "--max-per-ip",
        "0",
        "--metrics",
        &metrics.to_string(),
    ]);
    let budget = 32_000_000.0 / 5.0 * 2.0;
    // 400 members of main that do not read.
    let mut lurkers = Vec::new();
    for n in 0..400 {
        let lurker = Client::login(server.addr, &format!("lurker{n}"));
        SockRef::from(lurker.socket())
            .set_recv_buffer_size(4096)
            .expect("SO_RCVBUF");
        lurkers.push(lurker);
    }
    // 128 lines of 500 bytes in one write (64,000 bytes: one read for the server, and as many
    // lines as it handles from a client in a turn). Each line is 200 KB of output for the room,
    // all of them 25.6 MB: twice the output budget.
    let mut flooder = Client::login(server.addr, "flooder");
    let lines: Vec<String> = (0..128)
        .map(|n| format!("{n:03} {}", "x".repeat(495)))
        .collect();
    let batch: String = lines.iter().map(|line| format!("{line}\n")).collect();
    assert_eq!(batch.len(), 64_000);
    flooder.send_bytes(batch.as_bytes());
    // Every line is handled (the flooder gets each echo), over as many turns as it takes...
    for line in &lines {
        flooder.wait_for(1000, |got| got == format!("You: {line}"));
    }
    // ...and none of them queued output past the budget: the turn stopped taking the read's
    // lines once its output reached the turn's share, instead of queueing all 128 first.
    let peak = metric(metrics, "chat_output_memory_peak_bytes");
    assert!(
        peak <= budget,
        "output took {peak} bytes at its peak, past the budget of {budget}"
    );
    assert_eq!(
        metric(metrics, "chat_connections"),
        401.0,
        "nobody had to be dropped"
    );
}
