//! Property tests: generated scripts of connects, lines, refused lines, disconnects and time
//! passing for several clients keep the chat's invariants (`Chat::check_invariants_at`), send
//! no line to a client that is not connected, and fan room lines out exactly to the room.
//! The steps and their checks are the chat fuzz target's (`fuzz/src/chat.rs`).

use proptest::collection::vec;
use proptest::prelude::*;

use crate::fuzz::chat::{command_line, Op, Run, COMMAND_KINDS};
use crate::protocol::LineError;

/// Clients in generated scripts: fewer than the fuzz target's, so that each one gets far.
const SCRIPT_CLIENTS: usize = 3;

/// A command line, biased towards what changes the state: logging in (as one of a few nicks),
/// joining and leaving (one of a few rooms), talking; the names include case variants.
fn command() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        3 => Just(0u8),  // /nick
        3 => Just(2u8),  // /join
        3 => Just(3u8),  // /leave
        3 => Just(5u8),  // a message
        1 => 0..COMMAND_KINDS,
    ];
    (kind, 0u8..6, any::<u8>()).prop_map(|(kind, a, b)| command_line(kind, a, b))
}

/// One step of a script.
fn step() -> impl Strategy<Value = Op> {
    let client = 0..SCRIPT_CLIENTS;
    prop_oneof![
        3 => client.clone().prop_map(Op::Connect),
        12 => (client.clone(), command()).prop_map(|(c, line)| Op::Line(c, line)),
        1 => (client.clone(), "\\PC{0,24}").prop_map(|(c, text)| Op::Line(c, text)),
        1 => (
            client.clone(),
            prop::sample::select(vec![
                LineError::TooLong,
                LineError::InvalidUtf8,
                LineError::TelnetMangled,
            ]),
        )
            .prop_map(|(c, error)| Op::Refused(c, error)),
        2 => client.prop_map(Op::Disconnect),
        1 => (0u64..8).prop_map(Op::Wait),
        1 => Just(Op::Expire),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_script_keeps_the_invariants(script in vec(step(), 1..100)) {
        let mut run = Run::default();
        for op in &script {
            prop_assert_eq!(run.apply(op), Ok(()));
        }
    }
}
