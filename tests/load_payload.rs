//! The unit tests of the load harness's payload format. The harness is a bench with
//! `harness = false`, whose `#[test]`s never run, so this test includes the bench's
//! self-contained `payload.rs` to run them under `cargo test`.

#[path = "../benches/load/payload.rs"]
mod payload;
