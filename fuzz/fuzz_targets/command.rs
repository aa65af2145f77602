//! Control stripping, name validation and command parsing of arbitrary lines.
//! What is checked is in `src/command.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chat_server_fuzz::command::run(data));
