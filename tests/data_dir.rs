//! `--data-dir` with the real binary and a real data dir: what survives a graceful stop and a
//! SIGKILL, a backup taken while the server runs, and data dirs that must stop the start.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chat_server::store::{FILE_NAME, FORMAT};
use common::{replayed, BinaryServer, Client, LINE_TIMEOUT};

/// A little over the documented bound: a change is on disk within a second.
const DURABLE_AFTER: Duration = Duration::from_millis(1500);

/// The real binary on `dir` (flood control off: the tests send lines faster than a person).
fn start_in(dir: &Path) -> BinaryServer {
    let dir = dir.to_str().expect("UTF-8 temp path");
    BinaryServer::start(&["--data-dir", dir, "--flood-rate", "0"])
}

/// Starts the binary on `data_dir`, expecting it to refuse: returns what it logged.
fn refused_start(data_dir: &Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chat-server");
    let deadline = Instant::now() + LINE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chat-server started on {}", data_dir.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut log = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        std::io::Read::read_to_string(&mut stderr, &mut log).expect("read stderr");
    }
    assert!(status.code().is_some_and(|c| c != 0), "{status:?}: {log}");
    assert!(!log.contains("panicked"), "{log}");
    log
}

/// Stops `server` with SIGTERM and checks it exits with 0.
fn stop(mut server: BinaryServer) {
    // Greeted: the loop runs, so the signal handlers are in place.
    let _greeted = Client::connect(server.addr);
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(LINE_TIMEOUT), Some(0));
}

#[test]
fn a_graceful_restart_brings_back_history_sessions_and_kept_messages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_in(dir.path());
    let mut alice = Client::login(server.addr, "Алиса");
    let mut bob = Client::login(server.addr, "bob");
    alice.expect("* [main] bob joined");
    alice.ask("/join кухня", "* Joined кухня. Active room: кухня.");
    bob.ask("/join кухня", "* Joined кухня. Active room: кухня.");
    alice.expect("* [кухня] bob joined");
    alice.ask("до встречи", "You: до встречи");
    bob.expect("[кухня] Алиса: до встречи");
    bob.ask(
        "/quit",
        "* Bye, bob. Your session is kept; /nick bob restores it.",
    );
    alice.expect("* [main] bob disconnected");
    alice.expect("* [кухня] bob disconnected");
    alice.ask("bob, ты где?", "You: bob, ты где?");
    alice.ask("/msg bob позвони", "(PM to bob) You: позвони");
    alice.expect("* bob is away; your message will be delivered when they return.");

    // Алиса is online at the stop: her session is saved with everyone else's.
    stop(server);
    assert_eq!(alice.read_until_closed(), ["* Server shutting down. Bye!"]);

    let server = start_in(dir.path());
    let mut bob = Client::connect(server.addr);
    bob.send("/nick bob");
    bob.expect("* Welcome back, bob. Rooms: main, кухня. Active room: кухня.");
    let header = bob.line();
    assert!(
        header.starts_with("* Missed in кухня: 1 message since "),
        "{header}"
    );
    assert_eq!(
        replayed(&bob.line()),
        ("кухня".into(), "Алиса: bob, ты где?".into())
    );
    bob.expect("* End of missed messages in кухня.");
    bob.expect("* Missed while you were away: 1 private message.");
    let kept = bob.line();
    assert!(kept.ends_with(") Алиса: позвони"), "{kept}");
    bob.expect("* End of missed private messages.");

    let mut alice = Client::connect(server.addr);
    alice.send("/nick Алиса");
    alice.expect("* Welcome back, Алиса. Rooms: main, кухня. Active room: кухня.");
    bob.expect("* [main] Алиса joined");
    bob.expect("* [кухня] Алиса joined");
    alice.ask("/history", "* History of кухня: the last 2 messages.");
    assert_eq!(replayed(&alice.line()).1, "Алиса: до встречи");
    assert_eq!(replayed(&alice.line()).1, "Алиса: bob, ты где?");
    alice.expect("* End of history of кухня.");
    // Numbering carries on after the restart: bob's next return replays only what is new.
    alice.ask("снова тут", "You: снова тут");
    bob.expect("[кухня] Алиса: снова тут");
    stop(server);
}

#[test]
fn after_a_sigkill_what_was_said_a_second_before_is_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_in(dir.path());
    let mut alice = Client::login(server.addr, "alice");
    let bob = Client::login(server.addr, "bob");
    alice.expect("* [main] bob joined");
    bob.reset();
    alice.expect("* [main] bob disconnected");
    alice.ask("/join dev", "* Joined dev. Active room: dev.");
    alice.ask("deploy at 5", "You: deploy at 5");
    alice.ask("/me waits", "You: * alice waits");
    alice.ask("/msg bob call me", "(PM to bob) You: call me");
    alice.expect("* bob is away; your message will be delivered when they return.");

    std::thread::sleep(DURABLE_AFTER);
    let mut server = server;
    server.signal(libc::SIGKILL);
    let status = server.child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL));

    let server = start_in(dir.path());
    // alice was online when the server died: nothing saved her session.
    let mut alice = Client::login(server.addr, "alice");
    alice.ask("/join dev", "* Joined dev. Active room: dev.");
    alice.ask("/history", "* History of dev: the last 2 messages.");
    assert_eq!(replayed(&alice.line()).1, "alice: deploy at 5");
    assert_eq!(replayed(&alice.line()).1, "* alice waits");
    alice.expect("* End of history of dev.");
    let mut bob = Client::connect(server.addr);
    bob.send("/nick bob");
    bob.expect("* Welcome back, bob. Rooms: main. Active room: main.");
    bob.expect("* Missed while you were away: 1 private message.");
    assert!(bob.line().ends_with(") alice: call me"));
    bob.expect("* End of missed private messages.");
}

#[test]
fn a_backup_taken_while_the_server_runs_starts_a_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backup = tempfile::tempdir().expect("temp dir");
    let server = start_in(dir.path());
    let mut alice = Client::login(server.addr, "alice");
    for n in 1..=3 {
        alice.ask(&format!("before {n}"), &format!("You: before {n}"));
    }
    std::thread::sleep(DURABLE_AFTER);
    // What `sqlite3 DIR/chat.sqlite3 "VACUUM INTO '...'"` does, while the server writes.
    let db = rusqlite::Connection::open(dir.path().join(FILE_NAME)).expect("open");
    let target = backup.path().join(FILE_NAME);
    db.execute("VACUUM INTO ?1", [target.to_str().expect("UTF-8")])
        .expect("backup");
    drop(db);
    alice.ask("after", "You: after");
    drop(server);

    let server = start_in(backup.path());
    let mut alice = Client::login(server.addr, "alice");
    alice.ask("/history", "* History of main: the last 3 messages.");
    for n in 1..=3 {
        assert_eq!(replayed(&alice.line()).1, format!("alice: before {n}"));
    }
    alice.expect("* End of history of main.");
    stop(server);
}

#[test]
fn a_corrupt_database_stops_the_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = file_in(dir.path());
    std::fs::write(&file, [0xA5u8; 8192]).expect("write garbage");
    let log = refused_start(dir.path());
    assert!(
        log.contains(&format!("{} is corrupt", file.display())),
        "{log}"
    );

    // Damage inside a database that opens: found by the check at start.
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_in(dir.path());
    let mut alice = Client::login(server.addr, "alice");
    for n in 0..50 {
        alice.ask(&format!("line {n}"), &format!("You: line {n}"));
    }
    stop(server);
    let file = file_in(dir.path());
    let mut bytes = std::fs::read(&file).expect("read");
    assert!(bytes.len() >= 3 * 4096, "{} bytes", bytes.len());
    bytes[4096..3 * 4096].fill(0x5A);
    std::fs::write(file_in(dir.path()), bytes).expect("write");
    let log = refused_start(dir.path());
    assert!(
        log.contains(&file_in(dir.path()).display().to_string()),
        "{log}"
    );
    assert!(log.contains("corrupt"), "{log}");
}

fn file_in(dir: &Path) -> std::path::PathBuf {
    dir.join(FILE_NAME)
}

#[test]
fn a_data_dir_from_a_newer_version_stops_the_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    stop(start_in(dir.path()));
    let db = rusqlite::Connection::open(file_in(dir.path())).expect("open");
    let newer = (FORMAT + 1).to_string();
    db.execute("UPDATE meta SET value = ?1 WHERE key = 'format'", [&newer])
        .expect("update");
    drop(db);
    let log = refused_start(dir.path());
    assert!(
        log.contains(&format!(
            "{} was written by a newer chat-server (data format {newer}",
            file_in(dir.path()).display()
        )),
        "{log}"
    );
}

#[test]
fn a_data_dir_that_cannot_be_written_stops_the_start() {
    // Root ignores permission bits, so the dir is made impossible rather than forbidden.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("file");
    std::fs::write(&file, "not a directory").expect("write");
    let log = refused_start(&file);
    assert!(
        log.contains(&format!("data dir {} is not a directory", file.display())),
        "{log}"
    );
    let under = file.join("sub");
    let log = refused_start(&under);
    assert!(
        log.contains(&format!("data dir {}: cannot create it", under.display())),
        "{log}"
    );
    // The database's place taken by a directory.
    std::fs::create_dir(dir.path().join("data")).expect("mkdir");
    std::fs::create_dir(file_in(&dir.path().join("data"))).expect("mkdir");
    let log = refused_start(&dir.path().join("data"));
    assert!(
        log.contains(&file_in(&dir.path().join("data")).display().to_string()),
        "{log}"
    );
}

#[test]
fn a_registration_confirmed_before_a_sigkill_is_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_in(dir.path());
    let mut owner = Client::login(server.addr, "Вася");
    // The confirmation comes once the registration is on disk: no wait before the kill.
    owner.ask(
        "/register пароль",
        "* Вася is now registered: from now on /nick Вася PASSWORD logs in as Вася.",
    );
    let mut server = server;
    server.signal(libc::SIGKILL);
    let status = server.child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL));

    let server = start_in(dir.path());
    let mut other = Client::connect(server.addr);
    other.ask(
        "/nick Вася",
        "! nick Вася is registered; use /nick Вася PASSWORD",
    );
    other.ask("/nick Вася wrong", "! wrong password for Вася");
    other.send("/nick Вася пароль");
    other.expect("* Welcome, Вася. Rooms: main. Active room: main.");
    other.ask("/password новый", "* The password of Вася is changed.");
    stop(server);

    let server = start_in(dir.path());
    let mut again = Client::connect(server.addr);
    again.ask("/nick Вася пароль", "! wrong password for Вася");
    again.send("/nick Вася новый");
    let welcome = again.line();
    assert!(welcome.starts_with("* Welcome back, Вася."), "{welcome}");
}

#[test]
fn history_a_lower_bound_dropped_at_start_is_gone_from_the_data_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_str().expect("UTF-8 temp path");
    let server = BinaryServer::start(&["--data-dir", path, "--history", "5"]);
    let mut alice = Client::login(server.addr, "alice");
    for n in 1..=5 {
        alice.ask(&format!("line {n}"), &format!("You: line {n}"));
    }
    stop(server);
    // Started with room for 2: the 3 oldest go, from the data dir too.
    stop(BinaryServer::start(&["--data-dir", path, "--history", "2"]));
    let server = BinaryServer::start(&["--data-dir", path, "--history", "5"]);
    let mut alice = Client::connect(server.addr);
    alice.send("/nick alice");
    alice.expect("* Welcome back, alice. Rooms: main. Active room: main.");
    alice.ask("/history", "* History of main: the last 2 messages.");
    assert_eq!(replayed(&alice.line()).1, "alice: line 4");
    assert_eq!(replayed(&alice.line()).1, "alice: line 5");
    alice.expect("* End of history of main.");
    stop(server);
}
