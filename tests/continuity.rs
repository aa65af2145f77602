//! Coming back and carrying on, over real TCP: the replay of what was missed, `/history`, and
//! private messages kept for someone who is away.

mod common;

use common::{replayed, Client, TestServer};

#[test]
fn vasya_comes_back_and_sees_the_question_he_missed() {
    let server = TestServer::start();
    let mut alice = Client::login(server.addr, "Алиса");
    let mut vasya = Client::login(server.addr, "Вася");
    alice.expect("* [main] Вася joined");
    alice.ask("/join кухня", "* Joined кухня. Active room: кухня.");
    vasya.ask("/join кухня", "* Joined кухня. Active room: кухня.");
    alice.expect("* [кухня] Вася joined");
    alice.ask("до встречи", "You: до встречи");
    vasya.expect("[кухня] Алиса: до встречи");

    // Вася's connection dies; the server notices.
    vasya.reset();
    alice.expect("* [main] Вася disconnected");
    alice.expect("* [кухня] Вася disconnected");
    alice.ask("Вася, ты где?", "You: Вася, ты где?");
    alice.ask("/me ждёт", "You: * Алиса ждёт");

    let mut back = Client::connect(server.addr);
    back.send("/nick Вася");
    back.expect("* Welcome back, Вася. Rooms: main, кухня. Active room: кухня.");
    let header = back.line();
    assert!(
        header.starts_with("* Missed in кухня: 2 messages since ") && header.ends_with(" UTC."),
        "{header}"
    );
    assert_eq!(
        replayed(&back.line()),
        ("кухня".into(), "Алиса: Вася, ты где?".into())
    );
    assert_eq!(
        replayed(&back.line()),
        ("кухня".into(), "* Алиса ждёт".into())
    );
    back.expect("* End of missed messages in кухня.");
    alice.expect("* [main] Вася joined");
    alice.expect("* [кухня] Вася joined");

    // From here on it is live, and nothing comes twice.
    alice.ask("вот ты где", "You: вот ты где");
    back.expect("[кухня] Алиса: вот ты где");
    back.send("/history 3");
    back.expect("* History of кухня: the last 3 messages.");
    assert_eq!(replayed(&back.line()).1, "Алиса: Вася, ты где?");
    assert_eq!(replayed(&back.line()).1, "* Алиса ждёт");
    assert_eq!(replayed(&back.line()).1, "Алиса: вот ты где");
    back.expect("* End of history of кухня.");
}

#[test]
fn history_bound_counts_what_is_no_longer_kept() {
    let server = TestServer::start_with(|config| config.history = 2);
    let mut alice = Client::login(server.addr, "alice");
    let bob = Client::login(server.addr, "bob");
    alice.expect("* [main] bob joined");
    bob.reset();
    alice.expect("* [main] bob disconnected");
    for n in 1..=5 {
        alice.ask(&format!("line {n}"), &format!("You: line {n}"));
    }
    let mut back = Client::connect(server.addr);
    back.send("/nick bob");
    back.expect("* Welcome back, bob. Rooms: main. Active room: main.");
    let header = back.line();
    assert!(
        header.starts_with("* Missed in main: 2 messages since ")
            && header.ends_with(" UTC; 3 older ones are no longer kept."),
        "{header}"
    );
    assert_eq!(replayed(&back.line()).1, "alice: line 4");
    assert_eq!(replayed(&back.line()).1, "alice: line 5");
    back.expect("* End of missed messages in main.");
    back.ask("/history main 9", "* History of main: the last 2 messages.");
}

#[test]
fn a_private_message_waits_for_its_addressee() {
    let server = TestServer::start();
    let mut alice = Client::login(server.addr, "alice");
    let mut bob = Client::login(server.addr, "bob");
    alice.expect("* [main] bob joined");
    bob.ask(
        "/quit",
        "* Bye, bob. Your session is kept; /nick bob restores it.",
    );
    alice.expect("* [main] bob disconnected");
    alice.ask("/msg bob ring me", "(PM to bob) You: ring me");
    alice.expect("* bob is away; your message will be delivered when they return.");
    alice.ask("/msg nobody hi", "! no such user: nobody");

    let mut back = Client::connect(server.addr);
    back.send("/nick bob");
    back.expect("* Welcome back, bob. Rooms: main. Active room: main.");
    back.expect("* Missed while you were away: 1 private message.");
    let kept = back.line();
    assert!(
        kept.starts_with("(PM ") && kept.ends_with(") alice: ring me"),
        "{kept}"
    );
    back.expect("* End of missed private messages.");
}
