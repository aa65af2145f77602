//! The store through a real database in a temporary directory: what a chat's changes add up
//! to comes back from disk, durable writes are on disk when they return, and a data dir that
//! cannot be used is refused with its file named.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::*;
use crate::chat::{
    Account, Chat, ChatConfig, ClientId, Event, KeptPrivate, Outbox, RoomSnapshot, SavedRooms,
    StoredMessage,
};

/// An outbox that only records the durable changes, owned, as the loop hands them over.
#[derive(Default)]
struct Changes(Vec<OwnedChange>);

impl Outbox for Changes {
    fn send(&mut self, _to: ClientId, _line: &[u8]) {}
    fn close(&mut self, _to: ClientId) {}
    fn publish(&mut self, _event: &Event<'_>) {}
    fn store(&mut self, change: &Change<'_>) {
        self.0.push(OwnedChange::from(change));
    }
}

fn normalized(mut snapshot: Snapshot) -> Snapshot {
    snapshot.normalize();
    snapshot
}

fn session() -> SavedRooms {
    SavedRooms {
        rooms: vec!["main".into(), "Кухня".into()],
        active: "Кухня".into(),
        marks: vec![3, 0],
        left_at_ms: 1_780_000_000_000,
        clocks: Vec::new(),
    }
}

#[test]
fn every_change_survives_the_trip_to_owned_and_back() {
    let session = session();
    let private = KeptPrivate {
        at_ms: 5,
        from: "bob".into(),
        text: "привет".into(),
    };
    let changes = [
        Change::Message {
            room: "кухня",
            number: 7,
            at_ms: 1_780_000_000_123,
            nick: "Вася",
            text: "щи готовы",
            action: true,
        },
        Change::Trimmed {
            room: "кухня",
            through: 4,
        },
        Change::SessionSaved {
            nick: "вася",
            session: &session,
        },
        Change::SessionDropped { nick: "вася" },
        Change::PrivateKept {
            to: "alice",
            message: &private,
        },
        Change::PrivatesCleared { to: "alice" },
    ];
    for change in changes {
        assert_eq!(OwnedChange::from(&change).as_change(), change);
    }
}

/// A chat with an outbox that records its changes, and the loop's clock.
struct Life {
    chat: Chat,
    out: Changes,
    now: Instant,
}

impl Life {
    fn ask(&mut self, id: usize, line: &str) {
        self.now += Duration::from_millis(10);
        self.chat
            .handle_line(ClientId::new(id), line, self.now, &mut self.out);
    }

    fn login(&mut self, id: usize, nick: &str) {
        self.chat.connect(ClientId::new(id), &mut self.out);
        self.ask(id, &format!("/nick {nick}"));
    }

    fn leave(&mut self, id: usize) {
        self.chat
            .disconnect(ClientId::new(id), self.now, &mut self.out);
    }

    /// Posts past the history bound, departures, kept private messages, a restore, evictions
    /// past the session cap, expiry, and the stop.
    fn live_a_while(&mut self) {
        for (id, nick) in [(0, "alice"), (1, "Вася"), (2, "carol")] {
            self.login(id, nick);
        }
        self.ask(1, "/join Кухня");
        for n in 0..6 {
            self.ask(1, &format!("щи {n}"));
            self.ask(0, &format!("main {n}"));
        }
        self.ask(1, "/me ушёл");
        self.leave(1);
        self.ask(0, "/msg Вася one");
        self.ask(0, "/msg Вася two");
        self.ask(0, "/msg carol three");
        self.leave(2);
        self.login(3, "carol");
        for (id, nick) in [(4, "dave"), (5, "eve"), (6, "frank")] {
            self.login(id, nick);
            self.leave(id);
        }
        self.chat.expire_sessions(self.now, &mut self.out);
        self.chat.shutdown(self.now, &mut self.out);
    }
}

#[test]
fn what_the_store_loads_is_what_the_changes_add_up_to() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ChatConfig {
        max_saved_sessions: 3,
        ..ChatConfig::default()
    };
    config.history.per_room = 4;
    let mut life = Life {
        chat: Chat::new(config),
        out: Changes::default(),
        now: Instant::now(),
    };
    life.live_a_while();
    let (chat, out) = (life.chat, life.out);
    assert!(out
        .0
        .iter()
        .any(|c| matches!(c, OwnedChange::Trimmed { .. })));
    assert!(out
        .0
        .iter()
        .any(|c| matches!(c, OwnedChange::PrivatesCleared { .. })));

    let (mut store, empty) = Store::open(dir.path(), None).expect("open a new data dir");
    assert_eq!(empty, Snapshot::default());
    let mut applied = Snapshot::default();
    for change in &out.0 {
        store.record(&change.as_change());
        applied.apply(&change.as_change());
    }
    store.close(Snapshot::default).expect("close");

    let (store, loaded) = Store::open(dir.path(), None).expect("open again");
    let loaded = normalized(loaded);
    assert_eq!(loaded, normalized(applied));
    assert_eq!(loaded, normalized(chat.snapshot()));
    assert_eq!(loaded.sessions.len(), 3);
    store.close(Snapshot::default).expect("close");
}

#[test]
fn a_durable_write_is_on_disk_when_it_returns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _) = Store::open(dir.path(), None).expect("open");
    let writer = store.writer();
    let from_a_thread = std::thread::spawn(move || {
        writer.write_now(vec![OwnedChange::SessionSaved {
            nick: "вася".into(),
            session: session(),
        }])
    });
    from_a_thread.join().expect("no panic").expect("committed");
    // Read by another connection while the store is open: only committed data is visible.
    let db = rusqlite::Connection::open(dir.path().join(FILE_NAME)).expect("open the file");
    let active: String = db
        .query_row(
            "SELECT active FROM sessions WHERE nick = 'вася'",
            [],
            |r| r.get(0),
        )
        .expect("the session is committed");
    assert_eq!(active, "Кухня");
    drop(db);
    store.close(Snapshot::default).expect("close");
}

#[test]
fn the_whole_state_replaces_what_was_stored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, _) = Store::open(dir.path(), None).expect("open");
    store.record(&Change::SessionDropped { nick: "nobody" });
    store.record(&Change::SessionSaved {
        nick: "old",
        session: &session(),
    });
    let state = Snapshot {
        rooms: vec![RoomSnapshot {
            key: "dev".into(),
            posted: 12,
            messages: vec![StoredMessage {
                number: 12,
                at_ms: 1,
                nick: "alice".into(),
                text: "last".into(),
                action: false,
                origin: None,
            }],
        }],
        sessions: vec![("new".into(), session())],
        privates: vec![(
            "new".into(),
            vec![KeptPrivate {
                at_ms: 2,
                from: "alice".into(),
                text: "hi".into(),
            }],
        )],
        accounts: vec![(
            "new".into(),
            Account {
                display: "New".into(),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            },
        )],
    };
    store.resync(state.clone());
    store.record(&Change::Trimmed {
        room: "dev",
        through: 12,
    });
    store.close(Snapshot::default).expect("close");
    let (store, loaded) = Store::open(dir.path(), None).expect("open again");
    let mut expected = state;
    expected.rooms[0].messages.clear();
    assert_eq!(normalized(loaded), normalized(expected));
    store.close(Snapshot::default).expect("close");
}

#[test]
fn a_data_dir_is_used_by_one_server_at_a_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _) = Store::open(dir.path(), None).expect("open");
    let Err(e) = Store::open(dir.path(), None) else {
        panic!("a second open succeeded");
    };
    assert!(
        e.to_string().contains("in use by another chat-server"),
        "{e}"
    );
    assert!(e
        .to_string()
        .contains(&dir.path().join("lock").display().to_string()));
    store.close(Snapshot::default).expect("close");
    let (store, _) = Store::open(dir.path(), None).expect("free again after the close");
    store.close(Snapshot::default).expect("close");
}

#[test]
fn another_programs_sqlite_file_is_not_written_into() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join(FILE_NAME);
    let db = rusqlite::Connection::open(&file).expect("create");
    db.execute_batch("CREATE TABLE notes (text TEXT)")
        .expect("table");
    drop(db);
    let Err(e) = Store::open(dir.path(), None) else {
        panic!("opened another program's database");
    };
    assert_eq!(
        e.to_string(),
        format!("{} is not a chat-server database", file.display())
    );
}

#[test]
fn a_trim_after_a_restart_drops_messages_stored_before_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let message = |number| Change::Message {
        room: "dev",
        number,
        at_ms: number,
        nick: "alice",
        text: "hi",
        action: false,
    };
    let (mut store, _) = Store::open(dir.path(), None).expect("open");
    for number in 1..=3 {
        store.record(&message(number));
    }
    store.close(Snapshot::default).expect("close");
    let (mut store, loaded) = Store::open(dir.path(), None).expect("open again");
    assert_eq!(loaded.rooms[0].messages.len(), 3);
    store.record(&message(4));
    store.record(&Change::Trimmed {
        room: "dev",
        through: 2,
    });
    store.close(Snapshot::default).expect("close");
    let (store, loaded) = Store::open(dir.path(), None).expect("open a third time");
    let numbers: Vec<u64> = loaded.rooms[0].messages.iter().map(|m| m.number).collect();
    assert_eq!((loaded.rooms[0].posted, numbers), (4, vec![3, 4]));
    store.close(Snapshot::default).expect("close");
}

#[test]
fn after_a_failed_write_the_whole_state_is_written_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lock = lock_dir(dir.path()).expect("lock");
    let disk = Disk::open(&dir.path().join(FILE_NAME)).expect("open");
    // A full disk, as SQLite sees one: no more pages than the file has now and a few.
    disk.conn
        .execute_batch("PRAGMA max_page_count = 40")
        .expect("limit");
    let (mut store, _) = Store::start(lock, disk, None).expect("start");
    let text = "x".repeat(4000);
    for number in 1..=100 {
        store.record(&Change::Message {
            room: "dev",
            number,
            at_ms: number,
            nick: "alice",
            text: &text,
            action: false,
        });
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.shared.failing.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the write did not fail");
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused = store.writer().write_now(vec![OwnedChange::SessionDropped {
        nick: "alice".into(),
    }]);
    assert!(refused.is_err(), "a durable write while failing succeeded");
    // The stop writes the whole state, which fits.
    let state = Snapshot {
        sessions: vec![("alice".into(), session())],
        ..Snapshot::default()
    };
    store
        .close(|| state.clone())
        .expect("the whole state is written");
    let (store, loaded) = Store::open(dir.path(), None).expect("open again");
    assert_eq!(loaded, state);
    store.close(Snapshot::default).expect("close");
}
