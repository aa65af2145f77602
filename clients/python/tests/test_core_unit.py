"""Unit tests of the client core without any network: line parsing, replayed history (frames
and times), secrets masked in typed lines, UTF-8 splitting, room state, the re-join plan after
a reconnect, the backoff policy, server addresses and the status line."""

from __future__ import annotations

import dataclasses
import datetime
import socket
import unittest

from support import REPO, core


class ParseLineTest(unittest.TestCase):
    """Every documented line kind (docs/PROTOCOL.md) parses into its event."""

    def assertParses(self, raw: str, kind: type, *fields: object) -> None:
        """`raw` parses into `kind(raw, *fields)`."""
        self.assertEqual(core.parse_line(raw), kind(raw, *fields))

    def test_room_message_and_action(self) -> None:
        self.assertParses(
            "[кухня] Вася: Привет: как дела?",
            core.RoomMessage,
            "кухня",
            "Вася",
            "Привет: как дела?",
        )
        self.assertParses(
            "[main] * alice waves at [bob]", core.RoomAction, "main", "alice", "waves at [bob]"
        )

    def test_own_and_private_messages(self) -> None:
        self.assertParses("You: hi all", core.OwnMessage, "hi all")
        self.assertParses("You: * alice waves", core.OwnMessage, "* alice waves")
        self.assertParses("(PM) alice: psst", core.PrivateMessage, "alice", "psst")
        self.assertParses(
            "(PM to bob) You: see you: later", core.OwnPrivateMessage, "bob", "see you: later"
        )

    def test_welcome_lines(self) -> None:
        self.assertParses(
            "* Welcome, Алиса. Rooms: main. Active room: main.",
            core.Welcome,
            "Алиса",
            ("main",),
            "main",
            False,
        )
        self.assertParses(
            "* Welcome back, alice. Rooms: main, dev, кухня. Active room: dev.",
            core.Welcome,
            "alice",
            ("main", "dev", "кухня"),
            "dev",
            True,
        )
        greeting = (
            "* Welcome to chat-server. Set your nick with /nick NAME; /help lists the commands."
        )
        self.assertParses(greeting, core.Notice, greeting[2:])

    def test_room_changes(self) -> None:
        self.assertParses("* Joined dev. Active room: dev.", core.Joined, "dev")
        self.assertParses("* Active room: dev.", core.ActiveRoom, "dev")
        self.assertParses("* Left кухня. Active room: main.", core.Left, "кухня", "main")
        self.assertParses("* You are now bob (was alice).", core.NickChanged, "bob", "alice")

    def test_presence(self) -> None:
        for what in ("joined", "left", "disconnected"):
            self.assertParses(f"* [dev] Вася {what}", core.Presence, "dev", "Вася", what)
        self.assertParses(
            "* [main] alice is now bob", core.Presence, "main", "alice", "renamed", "bob"
        )

    def test_replayed_history(self) -> None:
        self.assertParses(
            "[dev 14:05] alice: you there? [really]",
            core.ReplayedMessage,
            "dev",
            "14:05",
            "alice",
            "you there? [really]",
            False,
        )
        self.assertParses(
            "[кухня 2026-11-25 09:30] * Вася ставит чайник",
            core.ReplayedMessage,
            "кухня",
            "2026-11-25 09:30",
            "Вася",
            "ставит чайник",
            True,
        )
        self.assertParses(
            "(PM 2026-11-25 23:59) Вася: позвони",
            core.ReplayedPrivate,
            "2026-11-25 23:59",
            "Вася",
            "позвони",
        )
        # The space inside the brackets is what tells a replayed line from a live one.
        self.assertParses(
            "[dev] alice: [dev 14:05] x", core.RoomMessage, "dev", "alice", "[dev 14:05] x"
        )

    def test_notices_errors_and_the_rest(self) -> None:
        self.assertParses(
            "* Rooms (2): dev (1), main (2)", core.Notice, "Rooms (2): dev (1), main (2)"
        )
        self.assertParses("* You are already alice.", core.Notice, "You are already alice.")
        self.assertParses("! nick Вася is in use", core.ServerError, "nick Вася is in use", "Вася")
        self.assertParses("! no such user: bob", core.ServerError, "no such user: bob", None)
        self.assertParses("something else", core.UnknownLine)


class SharedFixtureTest(unittest.TestCase):
    """One sample of every line kind, worded by the server itself: tests/fixtures/server-lines.txt
    is checked against the server's message functions by its Rust tests, so a wording change
    that this parser would misread fails here."""

    def test_every_server_line_parses_into_its_kind(self) -> None:
        fixture = REPO / "tests" / "fixtures" / "server-lines.txt"
        rows = [
            line.split("\t", 2)
            for line in fixture.read_text(encoding="utf-8").splitlines()
            if line and not line.startswith("#")
        ]
        self.assertGreater(len(rows), 40)
        for name, kind, raw in rows:
            with self.subTest(name=name, line=raw):
                self.assertEqual(type(core.parse_line(raw)).__name__, kind)
                self.assertNotIsInstance(core.parse_line(raw), core.UnknownLine)


class ReplayTest(unittest.TestCase):
    """The notices that frame replayed history, and replayed times shown in local time."""

    def frame(self, raw: str) -> core.ReplayFrame | None:
        return core.replay_frame(core.parse_line(raw))

    def test_frames(self) -> None:
        missed, history = core.MISSED, core.HISTORY
        cases = {
            "* Missed in dev: 3 messages since 14:01 UTC.": core.ReplayFrame(missed, "dev", True),
            "* Missed in кухня: 1 message since 2026-11-25 09:00 UTC; 1 older one is no longer"
            " kept.": core.ReplayFrame(missed, "кухня", True),
            "* End of missed messages in dev.": core.ReplayFrame(missed, "dev", False),
            "* Missed while you were away: 1 private message.": core.ReplayFrame(
                core.MISSED_PRIVATE, None, True
            ),
            "* End of missed private messages.": core.ReplayFrame(
                core.MISSED_PRIVATE, None, False
            ),
            "* History of dev: the last 20 messages.": core.ReplayFrame(history, "dev", True),
            "* End of history of dev.": core.ReplayFrame(history, "dev", False),
            "* No messages are kept in dev.": core.ReplayFrame(history, "dev", True, empty=True),
        }
        for raw, frame in cases.items():
            with self.subTest(raw):
                self.assertEqual(self.frame(raw), frame)
        for raw in ("* [dev] alice joined", "[dev 14:05] alice: hi", "! you are not in dev"):
            self.assertIsNone(self.frame(raw), raw)

    def test_every_frame_of_the_shared_fixture_is_recognised(self) -> None:
        fixture = REPO / "tests" / "fixtures" / "server-lines.txt"
        names = {}
        for line in fixture.read_text(encoding="utf-8").splitlines():
            if line and not line.startswith("#"):
                name, _kind, raw = line.split("\t", 2)
                names[name] = self.frame(raw)
        frames = {
            "missed_header",
            "missed_header_lost",
            "missed_end",
            "history_header",
            "history_end",
            "history_empty",
            "kept_privates_header",
            "kept_privates_end",
        }
        self.assertEqual({name for name, frame in names.items() if frame is not None}, frames)

    def test_local_time(self) -> None:
        moscow = datetime.timezone(datetime.timedelta(hours=3))
        after_midnight = datetime.datetime(2026, 11, 26, 1, 30, tzinfo=moscow)  # 22:30 UTC
        # Today in UTC (the 25th) is yesterday here once converted, or today after midnight.
        self.assertEqual(core.local_time("14:05", after_midnight), "2026-11-25 17:05")
        self.assertEqual(core.local_time("21:40", after_midnight), "00:40")
        self.assertEqual(core.local_time("2026-11-25 22:10", after_midnight), "01:10")
        self.assertEqual(core.local_time("2026-11-20 08:00", after_midnight), "2026-11-20 11:00")
        utc = datetime.timezone.utc
        # Written at 23:59 UTC, read just after midnight: yesterday's, not tonight's.
        self.assertEqual(
            core.local_time("23:59", datetime.datetime(2026, 11, 26, 0, 0, 30, tzinfo=utc)),
            "2026-11-25 23:59",
        )
        self.assertEqual(core.local_time("not a time", after_midnight), "not a time")


class SecretsTest(unittest.TestCase):
    """Passwords and tokens typed by the user never come back in what the client shows."""

    def test_mask_secrets(self) -> None:
        cases = {
            "/nick alice correct horse": "/nick alice ***",
            "/NICK alice s3cret": "/NICK alice ***",
            "/register  correct horse ": "/register ***",
            "/password n3w": "/password ***",
            "/nick alice": "/nick alice",
            "/register": "/register",
            "/msg bob my password is x": "/msg bob my password is x",
            "//register x": "//register x",
        }
        for line, shown in cases.items():
            with self.subTest(line):
                self.assertEqual(core.mask_secrets(line), shown)
                self.assertEqual(core.secret_words(line) > 0, shown != line)


class LineSplitterTest(unittest.TestCase):
    """Bytes to lines with an incremental UTF-8 decoder."""

    def test_multibyte_characters_split_across_reads(self) -> None:
        data = "[кухня] Вася: Привет, 東京 🎉\r\nYou: ок\r\n".encode()
        splitter = core.LineSplitter()
        lines = [line for byte in data for line in splitter.feed(bytes([byte]))]
        self.assertEqual(lines, ["[кухня] Вася: Привет, 東京 🎉", "You: ок"])

    def test_partial_line_waits_and_bare_lf_works(self) -> None:
        splitter = core.LineSplitter()
        self.assertEqual(splitter.feed(b"You: a\nYou: b"), ["You: a"])
        self.assertEqual(splitter.feed(b"c\r\n"), ["You: bc"])

    def test_invalid_bytes_become_replacement_characters(self) -> None:
        self.assertEqual(core.LineSplitter().feed(b"You: \xff!\n"), ["You: \ufffd!"])


class RoomStateTest(unittest.TestCase):
    """The client's picture of its rooms follows the server's lines."""

    def apply(self, state: core.RoomState, *lines: str) -> list[bool]:
        return [state.apply(core.parse_line(line)) for line in lines]

    def test_session_from_welcome_through_joins_and_leaves(self) -> None:
        state = core.RoomState()
        changed = self.apply(
            state,
            "* Welcome, alice. Rooms: main. Active room: main.",
            "* Joined dev. Active room: dev.",
            "* Joined кухня. Active room: кухня.",
            "* Active room: DEV.",
            "[dev] bob: hi",
            "* Left кухня. Active room: dev.",
        )
        self.assertEqual(changed, [True, True, True, True, False, True])
        self.assertEqual(state, core.RoomState("alice", ["main", "dev"], "dev"))
        self.assertTrue(state.is_active("dev"))
        self.apply(state, "* Left dev. Active room: main.", "* You are now Алиса (was alice).")
        self.assertEqual(state, core.RoomState("Алиса", ["main"], "main"))

    def test_restore_replaces_the_picture(self) -> None:
        state = core.RoomState("alice", ["main", "old"], "old")
        self.apply(state, "* Welcome back, alice. Rooms: main, dev, кухня. Active room: кухня.")
        self.assertEqual(state, core.RoomState("alice", ["main", "dev", "кухня"], "кухня"))

    def test_rejoin_plan_after_a_server_forgot_us(self) -> None:
        target = core.RoomState("alice", ["main", "dev", "кухня"], "dev")
        fresh = core.RoomState("alice", ["main"], "main")
        self.assertEqual(
            core.rejoin_commands(target, fresh), ["/join dev", "/join кухня", "/join dev"]
        )
        last_active = core.RoomState("alice", ["main", "dev", "кухня"], "кухня")
        self.assertEqual(core.rejoin_commands(last_active, fresh), ["/join dev", "/join кухня"])
        self.assertEqual(core.rejoin_commands(core.RoomState("a", ["main"], "main"), fresh), [])
        self.assertEqual(
            core.rejoin_commands(target, core.RoomState("a", ["main", "DEV", "кухня"], "кухня")),
            ["/join dev"],
        )


class PolicyTest(unittest.TestCase):
    """Backoff, server addresses, command names, names and the status line."""

    def test_backoff_grows_from_half_a_second_to_the_cap(self) -> None:
        low = core.Backoff(rng=lambda: 0.0)
        high = core.Backoff(rng=lambda: 0.999999)
        middle = core.Backoff(rng=lambda: 0.5)
        self.assertEqual(
            [middle.delay(n) for n in range(1, 8)], [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
        )
        for n in range(1, 30):
            self.assertTrue(0.4 <= low.delay(n) <= high.delay(n) <= 10.0)
        self.assertLess(low.delay(3), middle.delay(3))  # jitter spreads the retries

    def test_parse_server(self) -> None:
        self.assertEqual(core.parse_server("example.org:6000"), core.Server("example.org", 6000))
        self.assertEqual(core.parse_server("localhost"), core.Server("localhost", 5555))
        self.assertEqual(core.parse_server("[::1]:7000"), core.Server("::1", 7000))
        self.assertEqual(str(core.Server("::1", 7000)), "[::1]:7000")
        for bad in ("", ":5555", "host:port", "host:70000"):
            with self.assertRaises(ValueError):
                core.parse_server(bad)

    def test_command_names_and_valid_names(self) -> None:
        self.assertEqual(core.command_name("/NICK bob"), "nick")
        self.assertEqual(core.command_name("//shrug"), "")
        self.assertEqual(core.command_name("hello"), "")
        self.assertTrue(core.valid_name("Вася_2-b"))
        self.assertFalse(core.valid_name("a b"))
        self.assertFalse(core.valid_name("x" * 33))
        self.assertFalse(core.valid_name(""))

    def test_keepalive_is_on(self) -> None:
        with socket.socket() as sock:
            core.enable_keepalive(sock)
            self.assertEqual(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 1)
            if hasattr(socket, "TCP_KEEPIDLE"):
                self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE), 10)

    def test_status_line(self) -> None:
        server = core.Server("127.0.0.1", 5555)
        self.assertEqual(
            core.Status(core.CONNECTED, server, "alice", logged_in=True).describe(),
            "connected to 127.0.0.1:5555 as alice",
        )
        waiting = core.Status(
            core.RECONNECTING, server, "alice", attempt=3, retry_at=100.0, queued=2
        )
        self.assertEqual(
            waiting.describe(now=97.2), "reconnecting: attempt 3, next try in 3 s · 2 lines queued"
        )
        self.assertEqual(core.Status(core.DISCONNECTED).describe(), "disconnected")
        held = core.Status(core.CONNECTED, server, "alice", attempt=2, retry_at=10.0)
        self.assertEqual(
            held.describe(now=8.5),
            "connected to 127.0.0.1:5555, nick alice still held by the old connection:"
            " attempt 2, next try in 2 s",
        )
        refused = core.Status(core.CONNECTED, server, "alice", refused="wrong password for alice")
        self.assertEqual(
            refused.describe(),
            "connected to 127.0.0.1:5555, not logged in: wrong password for alice",
        )
        locked = dataclasses.replace(refused, refused="alice is locked", retry_at=50.0)
        self.assertEqual(
            locked.describe(now=8.0),
            "connected to 127.0.0.1:5555, not logged in: alice is locked; next try in 42 s",
        )
        taken = core.Status(core.DISCONNECTED, server, "alice", detail="/reconnect takes it back")
        self.assertEqual(taken.describe(), "disconnected — /reconnect takes it back")


if __name__ == "__main__":
    unittest.main()
