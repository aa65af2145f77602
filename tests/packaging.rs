//! What running as a systemd service relies on, checked with the real binary and no systemd:
//! the readiness notice on `NOTIFY_SOCKET`, journal-style log lines when `JOURNAL_STREAM`
//! names stderr, and the package's environment file listing every `CHAT_*` setting.
//! (`packaging/check-deb.sh` checks the built package itself; docs/DEPLOY.md has the rest.)

mod common;

#[path = "../examples/package-files.rs"]
#[allow(dead_code)] // The generator's main is not used here.
mod package_files;

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chat_server::config::Config;
use clap::CommandFactory;

use common::{free_addr, Client, LINE_TIMEOUT};

/// A scratch directory of this test process, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("chat-packaging-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary, killed on drop if a test failed before it exited.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    fn sigterm(&self) {
        let pid = i32::try_from(self.0.id()).expect("pid fits");
        // SAFETY: kill() with a valid pid and signal number has no memory effects.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "kill failed");
    }

    fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + LINE_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// `DEVICE:INODE` of a file, as systemd writes JOURNAL_STREAM.
fn stream_id(file: &File) -> String {
    let metadata = file.metadata().expect("stat the log file");
    format!("{}:{}", metadata.dev(), metadata.ino())
}

/// Waits until the log file holds a line containing `needle`; returns the whole log.
fn wait_for_log(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + LINE_TIMEOUT;
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.contains(needle) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One notification datagram.
fn receive(socket: &UnixDatagram) -> String {
    let mut buffer = [0u8; 256];
    let n = socket
        .recv(&mut buffer)
        .expect("a notification within the timeout");
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

#[test]
fn tells_systemd_when_ready_and_when_stopping_and_logs_for_the_journal() {
    let scratch = Scratch::new("notify");
    let socket_path = scratch.0.join("notify.sock");
    let notify = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    notify
        .set_read_timeout(Some(LINE_TIMEOUT))
        .expect("read timeout");
    let log_path = scratch.0.join("stderr.log");
    let log = File::create(&log_path).expect("create the log file");
    let addr = free_addr();

    let mut server = Running(
        Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(["--listen", &addr.to_string(), "--log-level", "debug"])
            .env("NOTIFY_SOCKET", &socket_path)
            .env("JOURNAL_STREAM", stream_id(&log))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start chat-server"),
    );

    // READY=1 comes once the server listens: a client gets in without retrying.
    assert_eq!(receive(&notify), "READY=1");
    let mut alice = Client::login(addr, "alice");
    alice.ask("hello", "You: hello");

    server.sigterm();
    assert_eq!(alice.line(), "* Server shutting down. Bye!");
    assert_eq!(receive(&notify), "STOPPING=1");
    assert_eq!(server.exit_code(), Some(0));

    // Journal lines: a syslog priority, the message, no timestamp or colour.
    let log = wait_for_log(&log_path, "shutting down");
    assert!(
        log.lines().any(|line| line.starts_with("<6>listening on ")),
        "{log}"
    );
    assert!(log.lines().any(|line| line.starts_with("<7>")), "{log}");
    for line in log.lines() {
        let priority = line
            .strip_prefix('<')
            .and_then(|rest| rest.split_once('>'))
            .map(|(priority, _)| priority);
        assert!(
            matches!(priority, Some("3" | "4" | "6" | "7")),
            "not a journal line: {line:?}"
        );
        assert!(!line.contains('\x1b'), "colour in a journal line: {line:?}");
    }
}

#[test]
fn a_journal_stream_that_is_not_stderr_is_ignored() {
    // A child of a service inherits JOURNAL_STREAM while its stderr may go elsewhere.
    let scratch = Scratch::new("journal");
    let log_path = scratch.0.join("stderr.log");
    let log = File::create(&log_path).expect("create the log file");
    let addr = free_addr();
    let mut server = Running(
        Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(["--listen", &addr.to_string()])
            .env("JOURNAL_STREAM", "0:0")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start chat-server"),
    );
    let log = wait_for_log(&log_path, "listening on");
    server.sigterm();
    assert_eq!(server.exit_code(), Some(0));
    let line = log
        .lines()
        .find(|line| line.contains("listening on"))
        .expect("the listening line");
    assert!(!line.starts_with('<'), "{line:?}");
    // simple_logger's format: an RFC 3339 UTC timestamp first.
    assert!(
        line.as_bytes().first().is_some_and(u8::is_ascii_digit),
        "{line:?}"
    );
}

#[test]
fn the_environment_file_lists_every_setting_commented_out_with_its_default() {
    let text = package_files::env_file(&Config::command());
    let config_source = include_str!("../src/config.rs");
    let settings: Vec<&str> = config_source
        .split("env = \"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(name, _)| name))
        .collect();
    assert!(settings.len() >= 10, "settings found: {settings:?}");
    for name in &settings {
        assert!(name.starts_with("CHAT_"), "{name}");
        assert!(
            text.lines()
                .any(|line| line.starts_with(&format!("#{name}="))),
            "{name} missing from:\n{text}"
        );
    }
    // Nothing is set: every line is a comment or blank.
    assert!(
        text.lines()
            .all(|line| line.is_empty() || line.starts_with('#')),
        "{text}"
    );
    // Defaults are the ones the server uses.
    assert!(text.contains("\n#CHAT_LISTEN=0.0.0.0:5555\n"), "{text}");
    assert!(text.contains("\n#CHAT_MAX_LINE=4096\n"), "{text}");
    assert!(text.contains("\n#CHAT_REDIS=\n"), "{text}");
}

#[test]
fn the_man_page_documents_every_option_and_the_service() {
    let page = String::from_utf8(package_files::man_page(Config::command()).expect("render"))
        .expect("the man page is UTF-8");
    for (arg, name) in package_files::env_settings(&Config::command()) {
        let flag = arg.get_long().expect("settings are long options");
        // roff escapes every dash of an option name.
        assert!(
            page.contains(&format!("--{flag}").replace('-', "\\-")),
            "--{flag} missing from the man page"
        );
        assert!(page.contains(&name), "{name} missing from the man page");
    }
    for section in [
        "NAME",
        "SYNOPSIS",
        "OPTIONS",
        "ENVIRONMENT",
        "FILES",
        "SIGNALS",
    ] {
        assert!(
            page.contains(&format!(".SH {section}")),
            "no {section} section"
        );
    }
}
