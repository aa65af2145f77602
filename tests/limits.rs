//! The server's limits over real TCP: rooms on the server, flood control, the login timeout,
//! connections per address, and turning clients away so that they hear why.

mod common;

use common::{Client, TestServer};

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
