//! Writes the files of the Debian package that come from the command-line definition, so that
//! they cannot drift from it: the man page and the environment file `/etc/default/chat-server`.
//!
//! `cargo run --example package-files -- OUT_DIR` writes `OUT_DIR/chat-server.1` and
//! `OUT_DIR/chat-server.default`; `packaging/build-deb.sh` runs it before `cargo deb`.
//! An example rather than a flag of the server, so the user-facing command line stays as it is.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use chat_server::config::Config;
use clap::{Arg, Command, CommandFactory};
use clap_mangen::roff::{bold, roman, Roff};

/// Column at which the environment file's comments are wrapped.
const WIDTH: usize = 78;

fn main() -> ExitCode {
    let Some(out_dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: cargo run --example package-files -- OUT_DIR");
        return ExitCode::FAILURE;
    };
    let result = std::fs::create_dir_all(&out_dir)
        .and_then(|()| man_page(Config::command()))
        .and_then(|man| std::fs::write(out_dir.join("chat-server.1"), man))
        .and_then(|()| {
            std::fs::write(
                out_dir.join("chat-server.default"),
                env_file(&Config::command()),
            )
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("package-files: cannot write to {}: {e}", out_dir.display());
            ExitCode::FAILURE
        }
    }
}

/// The settings that can come from the environment, in the order `--help` lists them.
pub fn env_settings(command: &Command) -> impl Iterator<Item = (&Arg, String)> {
    command.get_arguments().filter_map(|arg| {
        let name = arg.get_env()?.to_str()?.to_string();
        Some((arg, name))
    })
}

/// The text of `/etc/default/chat-server`: a header, then every `CHAT_*` setting commented out
/// with its default (empty where the default is computed at start, as the comment says).
pub fn env_file(command: &Command) -> String {
    let version = command.get_version().unwrap_or("unknown");
    let mut out = format!(
        "# /etc/default/chat-server: settings of the chat-server service (chat-server {version}).\n\
         #\n\
         # chat-server.service reads this file. Every setting is listed commented out with\n\
         # its default; uncomment and change a line, then `systemctl restart chat-server`.\n\
         # The default CHAT_MAX_CONNECTIONS follows the service's open-file limit\n\
         # (LimitNOFILE in the unit; change both with `systemctl edit chat-server`).\n\
         # Generated from the command-line definition: `man chat-server` says the same.\n"
    );
    for (arg, name) in env_settings(command) {
        let flag = arg.get_long().unwrap_or_default();
        let value_name = arg
            .get_value_names()
            .and_then(|names| names.first())
            .map(|name| name.as_str())
            .unwrap_or("VALUE");
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|help| help.to_string())
            .unwrap_or_default();
        out.push('\n');
        out.push_str(&comment(&format!("--{flag} {value_name}: {help}")));
        let default: Vec<_> = arg
            .get_default_values()
            .iter()
            .map(|value| value.to_string_lossy())
            .collect();
        out.push_str(&format!("#{name}={}\n", default.join(",")));
    }
    out
}

/// `text` as `# ` comment lines of at most [`WIDTH`] columns (a longer word gets a line of its
/// own).
fn comment(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() > 1 && line.len() + 1 + word.len() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// The man page chat-server(1): clap's own page (name, synopsis, description, options with
/// their environment variables, version) and the sections a service's page needs besides.
pub fn man_page(command: Command) -> std::io::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command).render(&mut page)?;
    let mut roff = Roff::default();
    roff.control("SH", ["ENVIRONMENT"])
        .text([roman(
            "Every option can be set by the environment variable named with it; an option \
             given on the command line wins. Under systemd these come from ",
        )])
        .text([bold("/etc/default/chat-server"), roman(".")])
        .control("TP", [])
        .text([bold("NOTIFY_SOCKET")])
        .text([roman(
            "Set by systemd for Type=notify services: the server sends READY=1 there once it \
             listens, and STOPPING=1 when it stops.",
        )])
        .control("TP", [])
        .text([bold("JOURNAL_STREAM")])
        .text([roman(
            "Set by systemd when stderr is the journal: log lines then carry a syslog \
             priority (<3> error, <4> warning, <6> info, <7> debug) and no timestamp or \
             colour, so that journalctl -p warning works.",
        )])
        .control("SH", ["SIGNALS"])
        .text([roman(
            "SIGTERM or SIGINT stops the server gracefully: every client is told the server \
             is shutting down, output is flushed for up to 3 seconds, and the exit status is 0.",
        )])
        .control("SH", ["FILES"])
        .control("TP", [])
        .text([bold("/etc/default/chat-server")])
        .text([roman(
            "The service's settings, every one listed commented out with its default.",
        )])
        .control("TP", [])
        .text([bold("/usr/lib/systemd/system/chat-server.service")])
        .text([roman(
            "The systemd unit (sandboxed, DynamicUser, Restart=on-failure); \
             chat-server@.service runs named instances, e.g. cluster nodes.",
        )])
        .control("TP", [])
        .text([bold("/usr/share/doc/chat-server/")])
        .text([roman(
            "README.md, PROTOCOL.md (the line protocol), DEPLOY.md (installing, configuring, \
             upgrading, clustering) and CLUSTER.md.",
        )])
        .control("SH", ["SEE ALSO"])
        .text([roman(
            "systemctl(1), journalctl(1), systemd.exec(5), telnet(1)",
        )]);
    roff.to_writer(&mut page)?;
    page.flush()?;
    Ok(page)
}
