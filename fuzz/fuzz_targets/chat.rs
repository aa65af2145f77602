//! Whole chat turns: a byte script of connects, lines and disconnects for a few clients.
//! What is checked is in `src/chat.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chat_server_fuzz::chat::run(data));
