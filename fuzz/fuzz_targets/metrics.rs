//! The metrics endpoint's request reading: any bytes, cut into any reads, get the same answer.
//! What is checked is in `src/metrics.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chat_server_fuzz::metrics::run(data));
