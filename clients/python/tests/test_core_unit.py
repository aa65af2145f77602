"""Unit tests of the client core without any network: line parsing, UTF-8 splitting, room
state, the re-join plan after a reconnect, the backoff policy, server addresses and the status
line."""

from __future__ import annotations

import unittest

from support import core


class ParseLineTest(unittest.TestCase):
    """Every documented line kind (docs/PROTOCOL.md) parses into its event."""

    def test_room_message_and_action(self) -> None:
        self.assertEqual(
            core.parse_line("[кухня] Вася: Привет: как дела?"),
            core.RoomMessage("[кухня] Вася: Привет: как дела?", "кухня", "Вася", "Привет: как дела?"),
        )
        self.assertEqual(
            core.parse_line("[main] * alice waves at [bob]"),
            core.RoomAction("[main] * alice waves at [bob]", "main", "alice", "waves at [bob]"),
        )

    def test_own_and_private_messages(self) -> None:
        self.assertEqual(core.parse_line("You: hi all"), core.OwnMessage("You: hi all", "hi all"))
        self.assertEqual(core.parse_line("You: * alice waves").text, "* alice waves")
        self.assertEqual(core.parse_line("(PM) alice: psst"), core.PrivateMessage("(PM) alice: psst", "alice", "psst"))
        self.assertEqual(
            core.parse_line("(PM to bob) You: see you: later"),
            core.OwnPrivateMessage("(PM to bob) You: see you: later", "bob", "see you: later"),
        )

    def test_welcome_lines(self) -> None:
        fresh = core.parse_line("* Welcome, Алиса. Rooms: main. Active room: main.")
        self.assertEqual(fresh, core.Welcome(fresh.raw, "Алиса", ("main",), "main", False))
        back = core.parse_line("* Welcome back, alice. Rooms: main, dev, кухня. Active room: dev.")
        self.assertEqual(back, core.Welcome(back.raw, "alice", ("main", "dev", "кухня"), "dev", True))
        greeting = core.parse_line("* Welcome to chat-server. Set your nick with /nick NAME; /help lists the commands.")
        self.assertIsInstance(greeting, core.Notice)

    def test_room_changes(self) -> None:
        self.assertEqual(core.parse_line("* Joined dev. Active room: dev."), core.Joined("* Joined dev. Active room: dev.", "dev"))
        self.assertEqual(core.parse_line("* Active room: dev."), core.ActiveRoom("* Active room: dev.", "dev"))
        self.assertEqual(
            core.parse_line("* Left кухня. Active room: main."), core.Left("* Left кухня. Active room: main.", "кухня", "main")
        )
        self.assertEqual(
            core.parse_line("* You are now bob (was alice)."), core.NickChanged("* You are now bob (was alice).", "bob", "alice")
        )

    def test_presence(self) -> None:
        for what in ("joined", "left", "disconnected"):
            line = f"* [dev] Вася {what}"
            self.assertEqual(core.parse_line(line), core.Presence(line, "dev", "Вася", what))
        renamed = core.parse_line("* [main] alice is now bob")
        self.assertEqual(renamed, core.Presence(renamed.raw, "main", "alice", "renamed", "bob"))

    def test_notices_errors_and_the_rest(self) -> None:
        self.assertEqual(core.parse_line("* Rooms (2): dev (1), main (2)").text, "Rooms (2): dev (1), main (2)")
        self.assertEqual(core.parse_line("* You are already alice.").text, "You are already alice.")
        error = core.parse_line("! nick Вася is in use")
        self.assertEqual(error, core.ServerError("! nick Вася is in use", "nick Вася is in use", "Вася"))
        other = core.parse_line("! no such user: bob")
        self.assertEqual((other.text, other.nick_in_use), ("no such user: bob", None))
        self.assertEqual(core.parse_line("something else"), core.UnknownLine("something else"))


class LineSplitterTest(unittest.TestCase):
    """Bytes to lines with an incremental UTF-8 decoder."""

    def test_multibyte_characters_split_across_reads(self) -> None:
        data = "[кухня] Вася: Привет, 東京 🎉\r\nYou: ок\r\n".encode("utf-8")
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
        self.assertEqual(core.rejoin_commands(target, fresh), ["/join dev", "/join кухня", "/join dev"])
        last_active = core.RoomState("alice", ["main", "dev", "кухня"], "кухня")
        self.assertEqual(core.rejoin_commands(last_active, fresh), ["/join dev", "/join кухня"])
        self.assertEqual(core.rejoin_commands(core.RoomState("a", ["main"], "main"), fresh), [])
        self.assertEqual(core.rejoin_commands(target, core.RoomState("a", ["main", "DEV", "кухня"], "кухня")), ["/join dev"])


class PolicyTest(unittest.TestCase):
    """Backoff, server addresses, command names, names and the status line."""

    def test_backoff_grows_from_half_a_second_to_the_cap(self) -> None:
        low = core.Backoff(rng=lambda: 0.0)
        high = core.Backoff(rng=lambda: 0.999999)
        middle = core.Backoff(rng=lambda: 0.5)
        self.assertEqual([middle.delay(n) for n in range(1, 8)], [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0])
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

    def test_status_line(self) -> None:
        server = core.Server("127.0.0.1", 5555)
        self.assertEqual(
            core.Status(core.CONNECTED, server, "alice", logged_in=True).describe(), "connected to 127.0.0.1:5555 as alice"
        )
        waiting = core.Status(core.RECONNECTING, server, "alice", attempt=3, retry_at=100.0, queued=2)
        self.assertEqual(waiting.describe(now=97.2), "reconnecting: attempt 3, next try in 3 s · 2 lines queued")
        self.assertEqual(core.Status(core.DISCONNECTED).describe(), "disconnected")


if __name__ == "__main__":
    unittest.main()
