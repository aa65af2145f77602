//! The line decoder: the same bytes, cut into arbitrary reads and line budgets, decode alike.
//! What is checked is in `src/decoder.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chat_server_fuzz::decoder::run(data));
