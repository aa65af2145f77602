//! Owned nicks over real TCP: registering, logging in with the password, wrong passwords and
//! the lockout, taking a nick over from a live connection, unregistering, and one-use resume
//! tokens.

mod common;

use common::{Client, TestServer};

/// A server for these tests: they send more `/nick` lines in a row than flood control lets a
/// person type (its slowing down is tested in tests/limits.rs).
fn server() -> TestServer {
    TestServer::start_with(|c| c.flood_rate = 0)
}

/// Registers `nick` with `password` on a fresh connection and returns it.
fn registered(server: &TestServer, nick: &str, password: &str) -> Client {
    let mut client = Client::login(server.addr, nick);
    client.ask(
        &format!("/register {password}"),
        &format!(
            "* {nick} is now registered: from now on /nick {nick} PASSWORD logs in as {nick}."
        ),
    );
    client
}

#[test]
fn a_registered_nick_takes_its_password() {
    let server = server();
    let mut owner = registered(&server, "Вася", "пароль один");
    owner.ask("/join кухня", "* Joined кухня. Active room: кухня.");
    owner.ask(
        "/register again",
        "! Вася is already registered; /password NEW changes its password",
    );
    owner.ask(
        "/quit",
        "* Bye, Вася. Your session is kept; /nick Вася restores it.",
    );

    let mut other = Client::connect(server.addr);
    other.ask(
        "/nick Вася",
        "! nick Вася is registered; use /nick Вася PASSWORD",
    );
    other.ask("/nick ВАСЯ wrong", "! wrong password for ВАСЯ");
    other.send("/nick Вася пароль один");
    other.expect("* Welcome back, Вася. Rooms: main, кухня. Active room: кухня.");
    // The password never shows up anywhere: not echoed, and the next line is live.
    other.ask("/password два", "* The password of Вася is changed.");
    other.ask(
        "/quit",
        "* Bye, Вася. Your session is kept; /nick Вася restores it.",
    );
    let mut again = Client::connect(server.addr);
    again.ask("/nick Вася пароль один", "! wrong password for Вася");
    again.send("/nick Вася два");
    again.expect("* Welcome back, Вася. Rooms: main, кухня. Active room: кухня.");
    again.ask("/unregister", "* Вася is no longer registered.");
    again.ask(
        "/unregister",
        "! Вася is not registered; /register PASSWORD registers it",
    );
    again.ask(
        "/quit",
        "* Bye, Вася. Your session is kept; /nick Вася restores it.",
    );
    let mut anyone = Client::connect(server.addr);
    anyone.send("/nick Вася");
    anyone.expect("* Welcome back, Вася. Rooms: main, кухня. Active room: кухня.");
}

#[test]
fn five_wrong_passwords_lock_the_nick_even_for_the_right_one() {
    let server = server();
    let mut owner = registered(&server, "alice", "s3cret");
    owner.ask(
        "/quit",
        "* Bye, alice. Your session is kept; /nick alice restores it.",
    );
    let mut guesser = Client::connect(server.addr);
    for guess in 1..=5 {
        guesser.ask(
            &format!("/nick alice guess{guess}"),
            "! wrong password for alice",
        );
    }
    let locked = |line: &str| {
        line.starts_with("! too many wrong passwords for alice; try again in ")
            && line.ends_with(" s")
    };
    guesser.send("/nick alice guess6");
    let line = guesser.line();
    assert!(locked(&line), "{line}");
    let mut owner = Client::connect(server.addr);
    owner.send("/nick alice s3cret");
    let line = owner.line();
    assert!(locked(&line), "the right password is refused too: {line}");
}

#[test]
fn the_owner_takes_the_nick_from_a_live_connection() {
    let server = server();
    let mut old = registered(&server, "bob", "pw");
    old.ask("/join dev", "* Joined dev. Active room: dev.");
    let mut witness = Client::login(server.addr, "carol");
    old.expect("* [main] carol joined");

    let mut new = Client::connect(server.addr);
    new.send("/nick bob pw");
    new.expect("* Welcome back, bob. Rooms: main, dev. Active room: dev.");
    let closed = old.read_until_closed();
    assert_eq!(
        closed,
        ["* bob logged in from another connection; this one is closed."]
    );
    witness.expect("* [main] bob disconnected");
    witness.expect("* [main] bob joined");
    new.ask("still here", "You: still here");
}

#[test]
fn a_resume_token_takes_a_session_back_once_even_from_a_live_connection() {
    let server = server();
    let mut first = Client::login(server.addr, "dave");
    first.ask("/join ops", "* Joined ops. Active room: ops.");
    first.send("/token");
    let line = first.line();
    let token = line
        .strip_prefix("* Resume token: ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    assert!(token.len() >= 22, "{token}");
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));

    // The old connection is still open (a network cut the server has not noticed yet).
    let mut second = Client::connect(server.addr);
    second.ask("/nick dave", "! nick dave is in use");
    second.send(&format!("/nick dave {token}"));
    second.expect("* Welcome back, dave. Rooms: main, ops. Active room: ops.");
    assert_eq!(
        first.read_until_closed(),
        ["* dave logged in from another connection; this one is closed."]
    );
    // A token works once: used again it changes nothing (dave is not registered, so the
    // nick alone decides, and it is in use).
    let mut third = Client::connect(server.addr);
    third.ask(&format!("/nick dave {token}"), "! nick dave is in use");
    third.ask(
        &format!("/nick dave {}", "x".repeat(40)),
        "! nick dave is in use",
    );
}

#[test]
fn bad_secrets_get_clear_errors() {
    let server = server();
    let mut owner = registered(&server, "erin", "pw");
    owner.ask("/register", "! usage: /register PASSWORD");
    owner.ask("/password   ", "! usage: /password NEW");
    let mut other = Client::connect(server.addr);
    // An overlong line never gets as far as a password check.
    other.send(&format!("/nick erin {}", "p".repeat(10 * 1024)));
    other.expect("! line too long (max 4096 bytes); line discarded");
    other.ask("/nick erin %%%%", "! wrong password for erin");
    other.ask("/register pw", "! set a nick first: /nick NAME");
    other.ask("/token", "! set a nick first: /nick NAME");
}

/// Asks for a resume token and returns it.
fn token(client: &mut Client) -> String {
    client.send("/token");
    let line = client.line();
    line.strip_prefix("* Resume token: ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_string()
}

#[test]
fn a_live_token_opens_a_locked_nick_and_a_stale_one_is_no_wrong_password() {
    let server = server();
    let mut owner = registered(&server, "frank", "pw");
    let used = token(&mut owner);
    let mut second = Client::connect(server.addr);
    second.send(&format!("/nick frank {used}"));
    second.expect("* Welcome back, frank. Rooms: main. Active room: main.");
    let live = token(&mut second);
    second.ask(
        "/quit",
        "* Bye, frank. Your session is kept; /nick frank restores it.",
    );

    let mut guesser = Client::connect(server.addr);
    for _ in 0..5 {
        guesser.ask("/nick frank guess", "! wrong password for frank");
    }
    guesser.send(&format!("/nick frank {used}"));
    guesser.expect(
        "! that resume token is no longer valid (tokens work once); use /nick frank PASSWORD",
    );
    let mut back = Client::connect(server.addr);
    back.send(&format!("/nick frank {live}"));
    back.expect("* Welcome back, frank. Rooms: main. Active room: main.");
    back.ask(
        &format!("/password {live}"),
        "! that password looks like a resume token (22 letters, digits, - or _); choose another",
    );
}
