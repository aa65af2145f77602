//! Owned nicks in the chat logic, with the password worker's answers given by hand: what a
//! registration changes for sessions and kept messages, and that lines wait for the answer.

use std::time::Duration;

use super::*;

/// Answers the oldest auth job: a registration with a fake hash, or a verification.
fn answer(h: &mut Harness, right: bool) {
    let (client, ticket, job) = h.out.auth_jobs.remove(0);
    let answer = match job {
        AuthJob::Register { password, .. } => AuthAnswer::Registered(format!("hash:{password}")),
        AuthJob::Verify { password, hash } => {
            AuthAnswer::Verified(right && hash == format!("hash:{password}"))
        }
        AuthJob::Unregister { .. } => AuthAnswer::Unregistered,
    };
    h.chat
        .finish_auth(id(client), ticket, answer, h.now, &mut h.out);
}

#[test]
fn lines_wait_for_the_registration_and_the_session_never_expires() {
    let mut h = Harness::with(ChatConfig {
        session_ttl: Duration::from_secs(60),
        ..ChatConfig::default()
    });
    h.login(0, "alice");
    h.login(1, "bob");
    h.out.take(0);
    assert!(h.ask(0, "/register pw").is_empty());
    assert!(
        h.ask(0, "said meanwhile").is_empty(),
        "waits for the answer"
    );
    answer(&mut h, true);
    assert_eq!(
        h.out.take(0),
        [
            "* alice is now registered: from now on /nick alice PASSWORD logs in as alice.",
            "You: said meanwhile",
        ]
    );
    h.drop_client(0);
    h.now += Duration::from_secs(3600);
    h.chat.expire_sessions(h.now, &mut h.out);
    // Away for an hour, past the TTL: still away, so messages are kept for her.
    h.ask(1, "/msg alice are you there?");
    h.connect(2);
    assert_eq!(
        h.ask(2, "/nick alice"),
        ["! nick alice is registered; use /nick alice PASSWORD"]
    );
    assert!(h.ask(2, "/nick alice pw").is_empty());
    answer(&mut h, true);
    let back = h.out.take(2);
    assert_eq!(
        back[0],
        "* Welcome back, alice. Rooms: main. Active room: main."
    );
    assert!(back.iter().any(|l| l.ends_with(") bob: are you there?")));
}

#[test]
fn an_answer_for_a_client_that_left_still_registers_the_nick() {
    let mut h = Harness::new();
    h.login(0, "carol");
    h.ask(0, "/register pw");
    h.drop_client(0);
    answer(&mut h, true);
    h.connect(1);
    assert_eq!(
        h.ask(1, "/nick carol"),
        ["! nick carol is registered; use /nick carol PASSWORD"]
    );
    assert_eq!(h.out.stored.accounts.len(), 1);
}

#[test]
fn a_wrong_password_is_counted_and_says_so() {
    let mut h = Harness::new();
    h.login(0, "dave");
    h.ask(0, "/register pw");
    answer(&mut h, true);
    h.ask(0, "/quit");
    h.connect(1);
    for _ in 0..5 {
        h.ask(1, "/nick dave nope");
        answer(&mut h, false);
        assert_eq!(h.out.take(1), ["! wrong password for dave"]);
    }
    let locked = h.ask(1, "/nick dave pw");
    assert_eq!(locked.len(), 1);
    assert!(locked[0].starts_with("! too many wrong passwords for dave; try again in "));
    assert!(
        h.out.auth_jobs.is_empty(),
        "a locked nick is not even checked"
    );
}
