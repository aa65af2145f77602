//! Replays every file of `fuzz/corpus/TARGET/` through its target's checks, on stable, as part
//! of `cargo test`: the corpus the fuzzer built (and any crash input added to it after a fix)
//! is a regression suite that needs no nightly toolchain.

use std::path::{Path, PathBuf};

/// The files of the corpus of `target`, sorted by name.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    // Compiled into chat-server's tests the manifest is the top one; into the fuzz crate's,
    // fuzz/Cargo.toml.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = [root.join("fuzz/corpus"), root.join("corpus")]
        .into_iter()
        .map(|corpus| corpus.join(target))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| panic!("no corpus directory for {target}"));
    let entries = std::fs::read_dir(&dir).expect("the corpus directory is readable");
    let mut files: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|entry| {
            let path = entry.expect("a corpus entry").path();
            let data = std::fs::read(&path).expect("a corpus file is readable");
            (path, data)
        })
        .collect();
    files.sort();
    files
}

/// Runs every corpus file of `target` through `run`, naming the file that fails.
fn replay(target: &str, run: fn(&[u8])) {
    let files = corpus(target);
    assert!(!files.is_empty(), "the {target} corpus is empty");
    for (path, data) in files {
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{} fails", path.display());
    }
}

#[test]
fn decoder_corpus_replays() {
    replay("decoder", super::decoder::run);
}

#[test]
fn command_corpus_replays() {
    replay("command", super::command::run);
}

#[test]
fn chat_corpus_replays() {
    replay("chat", super::chat::run);
}

#[test]
fn metrics_corpus_replays() {
    replay("metrics", super::metrics::run);
}
