//! Unit tests of the chat logic through a recording outbox, one file a concept; this file
//! holds the recorder and the harness they share.

mod accounts;
mod cluster;
mod cluster_nodes;
mod history;
mod messages;
mod properties;
mod rooms;
mod sessions;
mod storage;

use std::collections::HashMap;
use std::time::Instant;

use super::*;

/// The client id of index `index`, short for the tests.
fn id(index: usize) -> ClientId {
    ClientId::new(index)
}

/// Records every line per client, closes and published events.
#[derive(Default)]
struct Recorder {
    lines: HashMap<usize, Vec<String>>,
    closed: Vec<usize>,
    events: Vec<String>,
    /// Every room message published: room, nick, text, action, origin, number, time.
    posts: Vec<Post>,
    /// What a store that applies every change holds.
    stored: Snapshot,
    /// Auth jobs handed out: client index, ticket, job.
    auth_jobs: Vec<(usize, u64, AuthJob)>,
}

impl Outbox for Recorder {
    fn send(&mut self, to: ClientId, line: &[u8]) {
        let text = std::str::from_utf8(line).expect("server lines are UTF-8");
        let text = text
            .strip_suffix("\r\n")
            .expect("server lines end with CRLF");
        self.lines
            .entry(to.index())
            .or_default()
            .push(text.to_string());
    }
    fn close(&mut self, to: ClientId) {
        self.closed.push(to.index());
    }
    fn publish(&mut self, event: &Event<'_>) {
        // Shown without the stamp (its time is the wall clock's); `posts` has the stamps.
        let shown = match event.room_message() {
            Some(message) => {
                self.posts.push(Post::of(&message));
                let RoomMessage {
                    room, nick, text, ..
                } = message;
                let kind = if message.action { "Acted" } else { "Said" };
                format!("{kind} {{ room: {room:?}, nick: {nick:?}, text: {text:?} }}")
            }
            None => format!("{event:?}"),
        };
        self.events.push(shown);
    }
    fn store(&mut self, change: &Change<'_>) {
        self.stored.apply(change);
    }
    fn authenticate(&mut self, client: ClientId, ticket: u64, job: AuthJob) -> bool {
        self.auth_jobs.push((client.index(), ticket, job));
        true
    }
}

/// A room message as published, owned, to hand to another node's chat.
#[derive(Debug, Clone)]
struct Post {
    room: String,
    nick: String,
    text: String,
    action: bool,
    origin: String,
    seq: u64,
    at_ms: u64,
}

impl Post {
    fn of(message: &RoomMessage<'_>) -> Self {
        Self {
            room: message.room.into(),
            nick: message.nick.into(),
            text: message.text.into(),
            action: message.action,
            origin: message.stamp.origin.into(),
            seq: message.stamp.seq,
            at_ms: message.stamp.at_ms,
        }
    }

    /// The event another node gets.
    fn event(&self) -> Event<'_> {
        let (room, nick, text) = (&*self.room, &*self.nick, &*self.text);
        let stamp = Stamp {
            origin: &self.origin,
            seq: self.seq,
            at_ms: self.at_ms,
        };
        if self.action {
            Event::Acted {
                room,
                nick,
                text,
                stamp,
            }
        } else {
            Event::Said {
                room,
                nick,
                text,
                stamp,
            }
        }
    }
}

impl Recorder {
    /// Takes the lines client `id` received so far.
    fn take(&mut self, id: usize) -> Vec<String> {
        self.lines.remove(&id).unwrap_or_default()
    }
}

struct Harness {
    chat: Chat,
    out: Recorder,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        Self::with(ChatConfig::default())
    }

    fn with(config: ChatConfig) -> Self {
        Self {
            chat: Chat::new(config),
            out: Recorder::default(),
            now: Instant::now(),
        }
    }

    /// Connects `id` and discards the greeting.
    fn connect(&mut self, id: usize) {
        self.chat.connect(ClientId::new(id), &mut self.out);
        self.out.take(id);
    }

    /// Connects `id` as `nick` and discards what it received.
    fn login(&mut self, id: usize, nick: &str) {
        self.connect(id);
        self.line(id, &format!("/nick {nick}"));
        self.out.take(id);
    }

    fn line(&mut self, id: usize, line: &str) {
        self.chat
            .handle_line(ClientId::new(id), line, self.now, &mut self.out);
    }

    /// Sends `line` as `id` and returns what `id` got back.
    fn ask(&mut self, id: usize, line: &str) -> Vec<String> {
        self.line(id, line);
        self.out.take(id)
    }

    fn drop_client(&mut self, id: usize) {
        self.chat
            .disconnect(ClientId::new(id), self.now, &mut self.out);
    }
}
