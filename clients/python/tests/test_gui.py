"""The real Tk window under a display (Xvfb in ./test.sh) against the real chat-server: typing
and Enter through Tk events, messages both ways, the room list, input history, what was missed
while the connection was down shown greyed, the status bar through a server restart, a wrong
password asked for again, closing the window, Ctrl+C on the command-line program (also with
--password-file), and a screenshot (saved to $TK_CLIENT_SCREENSHOT when set:
`clients/python/screenshot.sh` does that for docs/tk-client.png)."""

from __future__ import annotations

import gc
import os
import re
import signal
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from typing import Callable, TypeVar

from support import CLIENT_DIR, DEADLINE, ChatServer, LineClient, Proxy, core, wait_until

try:
    import tkinter as tk

    import tk_chat_client as gui
except ImportError as error:  # pragma: no cover - only without python3-tk
    raise unittest.SkipTest(f"no tkinter: {error}") from None

T = TypeVar("T")

#: ASCII characters that can be typed as key events, with their Tk keysyms.
KEYSYMS = {
    " ": "space",
    "/": "slash",
    ",": "comma",
    ".": "period",
    "!": "exclam",
    "-": "minus",
    "_": "underscore",
}


def collect_tk_garbage() -> None:
    """Frees unreachable Tk objects now, in the main thread: a Tk interpreter freed by a
    collection that happens to run in another thread (the client's, a proxy's) aborts the
    process ("Tcl_AsyncDelete: async handler deleted by the wrong thread")."""
    gc.collect()


class WindowTestCase(unittest.TestCase):
    """A window on a real server, reached through a proxy that the test can cut."""

    def open_window(self, nick: str, password: str | None = None) -> None:
        """Starts the server (if not yet) and a window logging in as `nick`."""
        try:
            self.root = tk.Tk()
        except tk.TclError as error:
            self.skipTest(f"no display: {error}")
        self.addCleanup(self._destroy_root)
        if not hasattr(self, "server"):
            self.server = ChatServer()
            self.addCleanup(self.server.stop)
        self.proxy = Proxy(self.server.port)
        self.addCleanup(self.proxy.stop)
        address = core.Server("127.0.0.1", self.proxy.port)
        self.client = core.ChatClient([address], nick, password=password)
        self.addCleanup(self.client.join, 10)
        self.addCleanup(self.client.close)
        self.window = gui.ChatWindow(self.root, self.client)
        self.client.start()

    def _destroy_root(self) -> None:
        window = getattr(self, "window", None)
        if window is not None and not window.closed:
            window._destroy()  # (also stops its polling: no callback outlives the window)
        try:
            self.root.destroy()
        except tk.TclError:
            pass  # the window closed itself
        self.root = self.window = None  # type: ignore[assignment]
        collect_tk_garbage()

    def pump(self) -> None:
        """Lets Tk process events (the test is the main loop)."""
        if not self.window.closed:
            self.root.update()

    def wait(self, condition: Callable[[], T], what: str) -> T:
        """Runs the window until `condition()` holds."""
        return wait_until(condition, what, pump=self.pump)

    def wait_view(self, text: str) -> None:
        """Runs the window until its message view shows `text`."""
        try:
            self.wait(lambda: text in self.window.view_text(), repr(text))
        except AssertionError:
            raise AssertionError(f"{text!r} not in the view:\n{self.window.view_text()}") from None

    def key(self, keysym: str) -> None:
        """Presses and releases one key in the input line."""
        self.window.entry.event_generate("<KeyPress>", keysym=keysym)
        self.window.entry.event_generate("<KeyRelease>", keysym=keysym)
        self.pump()

    def type_line(self, text: str) -> None:
        """Types `text` key by key into the input line and presses Return."""
        self.window.entry.focus_force()
        self.pump()
        for char in text:
            self.key(KEYSYMS.get(char, char))
        self.assertEqual(self.window.entry.get(), text)
        self.key("Return")
        self.assertEqual(self.window.entry.get(), "")

    def enter_text(self, text: str) -> None:
        """Puts non-ASCII `text` into the input line (no US-keyboard keysyms) and presses Return."""
        self.window.entry.focus_force()
        self.window.entry.insert("end", text)
        self.key("Return")

    def active_room_in_list(self) -> str:
        """The room highlighted in the room list."""
        selection = self.window.rooms.curselection()
        return self.window.rooms.get(selection[0]).strip().lstrip("# ") if selection else ""

    def click_room(self, room: str) -> None:
        """Clicks `room` in the room list."""
        index = [
            self.window.rooms.get(i).strip().lstrip("# ") for i in range(self.window.rooms.size())
        ].index(room)
        self.window.rooms.selection_clear(0, "end")
        self.window.rooms.selection_set(index)
        self.window.rooms.event_generate("<<ListboxSelect>>")
        self.pump()

    def tags_of(self, text: str) -> tuple[str, ...]:
        """The tags at the start of the (first) place the view shows `text`."""
        start = self.window.view.search(text, "1.0")
        self.assertTrue(start, f"{text!r} not in the view")
        return self.window.view.tag_names(start)

    def take_screenshot(self) -> None:
        """Saves the window through screenshot.sh and checks that a PNG came out."""
        self.root.lift()
        self.pump()
        target = os.environ.get("TK_CLIENT_SCREENSHOT")
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(target) if target else Path(scratch) / "tk-client.png"
            shot = subprocess.Popen(
                [str(CLIENT_DIR / "screenshot.sh"), str(out), self.root.wm_frame()]
            )
            self.wait(lambda: shot.poll() is not None, "screenshot.sh to finish")
            self.assertEqual(shot.returncode, 0)
            self.assertEqual(out.read_bytes()[:8], b"\x89PNG\r\n\x1a\n")


class WindowTest(WindowTestCase):
    """alice's window, with the other user (Вася) on a plain socket."""

    def setUp(self) -> None:
        self.server = ChatServer()
        self.addCleanup(self.server.stop)
        self.vasya = LineClient(self.server.port).login("Вася")
        self.addCleanup(self.vasya.close)
        self.open_window("alice")
        self.wait(lambda: self.window.status.logged_in, "the window to log in")
        self.vasya.expect("* [main] alice joined")

    def test_conversation_rooms_history_screenshot_and_close(self) -> None:
        self.type_line("/join dev")
        self.wait(lambda: self.active_room_in_list() == "dev", "dev to be the active room")
        self.vasya.send("/join кухня")
        self.vasya.expect("* Joined кухня. Active room: кухня.")
        self.enter_text("/join кухня")
        self.wait(lambda: self.active_room_in_list() == "кухня", "кухня to be the active room")
        self.assertEqual(self.window.state.rooms, ["main", "dev", "кухня"])
        self.click_room("dev")
        self.wait(lambda: self.active_room_in_list() == "dev", "a click to make dev active")
        self.click_room("кухня")
        self.wait(lambda: self.active_room_in_list() == "кухня", "a click to make кухня active")

        self.vasya.send("/join dev")
        self.wait_view("[dev] Вася joined")
        self.vasya.send("the release is at five")
        self.wait_view("[dev] Вася: the release is at five")
        self.vasya.send("/join кухня")
        self.vasya.expect("* Active room: кухня.")
        self.vasya.send("Привет, Алиса! Чай будет?")
        self.wait_view("[кухня] Вася: Привет, Алиса! Чай будет?")
        self.type_line("hello from the window, tea in five minutes")
        self.wait_view("[кухня] You: hello from the window, tea in five minutes")
        self.vasya.expect("[кухня] alice: hello from the window, tea in five minutes")
        self.vasya.send("/me ставит чайник")
        self.wait_view("[кухня] * Вася ставит чайник")

        # The connection drops; what Вася says meanwhile comes back greyed, with its time.
        self.proxy.refuse = True
        self.proxy.cut()
        self.vasya.expect("* [кухня] alice disconnected")
        self.vasya.send("Чайник вскипел")
        self.vasya.send("/me наливает чай")
        self.vasya.send("/msg alice где ты?")
        self.vasya.expect("* alice is away; your message will be delivered when they return.")
        self.proxy.refuse = False
        self.wait_view("End of missed private messages.")
        self.assertIn("replay_head", self.tags_of("Missed in кухня: 2 messages since "))
        self.assertIn("replay_end", self.tags_of("End of missed messages in кухня."))
        self.assertIn("replay_head", self.tags_of("Missed while you were away: 1 private"))
        for text in ("[кухня] Вася: Чайник вскипел", "[кухня] * Вася наливает чай"):
            # The line's own time (the server's UTC turned into local time), then the line.
            line = next(line for line in self.window.view_text().splitlines() if text in line)
            self.assertRegex(line, rf"^\d\d:\d\d  {re.escape(text)}$")
            for piece in ("[кухня]", "Вася", text.rsplit(" ", 1)[1]):
                where = self.window.view.search(piece, self.window.view.search(text, "1.0"))
                self.assertIn("replayed", self.window.view.tag_names(where), piece)
        self.assertTrue({"replayed", "pm"} <= set(self.tags_of("PM from Вася: где ты?")))
        self.assertNotIn("replayed", self.tags_of("[кухня] Вася: Привет"))  # live before
        self.vasya.send("/msg alice the build is green, by the way")
        self.wait_view("PM from Вася: the build is green, by the way")
        self.enter_text("/msg Вася thanks!")
        self.wait_view("PM to Вася: thanks!")
        self.vasya.expect("(PM) alice: thanks!")
        self.type_line("/msg carol hi")
        self.wait_view("! no such user: carol")

        # Tags make the kinds of lines look different.
        for text, tag in (
            ("You", "own_nick"),
            ("PM from Вася: the build", "pm_head"),
            ("! no such user", "error"),
        ):
            start = self.window.view.search(text, "1.0")
            self.assertIn(tag, self.window.view.tag_names(start), text)

        # Up and Down walk through what was typed, keeping the draft.
        self.window.entry.insert(0, "draft")
        self.key("Up")
        self.assertEqual(self.window.entry.get(), "/msg carol hi")
        self.key("Up")
        self.assertEqual(self.window.entry.get(), "/msg Вася thanks!")
        self.key("Down")
        self.key("Down")
        self.assertEqual(self.window.entry.get(), "draft")
        self.window.entry.delete(0, "end")
        self.assertIn("connected to 127.0.0.1:", self.window.status_label.cget("text"))
        self.assertNotIn("replayed", self.tags_of("PM from Вася: the build"))  # live again
        self.root.geometry("920x700")  # room for the conversation and the missed block
        self.take_screenshot()

        # Leave leaves the active room; Join… asks for a name and joins it.
        self.window.leave_button.invoke()
        self.wait(lambda: self.active_room_in_list() == "main", "main to be active after Leave")
        self.vasya.expect("* [кухня] alice left")
        self.assertEqual(self.window.state.rooms, ["main", "dev"])
        self.assertIn("disabled", self.window.leave_button.state())  # main cannot be left
        asked = gui.simpledialog.askstring
        gui.simpledialog.askstring = lambda *args, **kwargs: "проект"
        try:
            self.window.join_button.invoke()
        finally:
            gui.simpledialog.askstring = asked
        self.wait(lambda: self.active_room_in_list() == "проект", "the new room to be active")

        # Closing the window says /quit; the server tells the room.
        self.root.tk.call(self.root.protocol("WM_DELETE_WINDOW"))
        self.wait(lambda: self.window.closed, "the window to close")
        self.vasya.expect("* [main] alice disconnected")
        self.assertTrue(self.client.join(DEADLINE))

    def test_view_follows_new_lines_unless_scrolled_up(self) -> None:
        def show(count: int) -> None:
            for n in range(count):
                self.vasya.send(f"line {n} of many")
            self.wait_view(f"[main] Вася: line {count - 1} of many")

        show(60)
        self.assertEqual(self.window.view.yview()[1], 1.0)  # following the end
        self.window.view.yview_moveto(0.0)  # the user scrolls up to read
        self.pump()
        show(5)
        self.assertEqual(self.window.view.yview()[0], 0.0)  # left where the user is
        self.window.view.yview_moveto(1.0)  # back at the end: following again
        self.pump()
        show(5)
        self.assertEqual(self.window.view.yview()[1], 1.0)

    def test_history_is_shown_greyed_under_its_header(self) -> None:
        self.vasya.send("first of two")
        self.vasya.send("/me hums")
        self.wait_view("[main] * Вася hums")
        self.type_line("/history main 2")
        self.wait_view("End of history of main.")
        header = self.window.view.search("History of main: the last 2 messages.", "1.0")
        self.assertIn("replay_head", self.window.view.tag_names(header))
        for text in ("first of two", "* Вася hums"):
            self.assertNotIn("replayed", self.tags_of(text))  # as it came live
            again = self.window.view.search(text, header)  # and replayed
            self.assertIn("replayed", self.window.view.tag_names(again))

    def test_status_bar_follows_a_server_restart(self) -> None:
        self.type_line("/join dev")
        self.wait(lambda: self.active_room_in_list() == "dev", "dev to be the active room")
        self.server.kill()
        self.wait(
            lambda: self.window.status_label.cget("text").startswith("reconnecting: attempt"),
            "the reconnecting status",
        )
        self.type_line("typed while away")
        self.wait_view("(not sent yet, queued) typed while away")
        self.wait(
            lambda: "1 line queued" in self.window.status_label.cget("text"),
            "the queue in the status",
        )
        self.server.start()
        self.wait(
            lambda: self.window.status_label.cget("text").startswith("connected to"),
            "the connected status",
        )
        self.wait_view("[dev] You: typed while away")
        self.assertEqual(self.window.state.rooms, ["main", "dev"])
        self.assertEqual(self.active_room_in_list(), "dev")
        vasya = LineClient(self.server.port).login("Вася")  # the old socket died with the server
        self.addCleanup(vasya.close)
        self.type_line("/quit")  # like closing the window
        self.wait(lambda: self.window.closed, "the window to close")
        vasya.expect("* [main] alice disconnected")


class PasswordTest(WindowTestCase):
    """A registered nick: a wrong password makes the window ask again, and the password is
    never shown."""

    def test_wrong_password_is_reported_and_asked_for_again(self) -> None:
        self.server = ChatServer()
        self.addCleanup(self.server.stop)
        owner = LineClient(self.server.port).login("carol")
        owner.send("/register right one")
        owner.expect(lambda line: line.startswith("* carol is now registered"))
        owner.send("/quit")
        owner.expect(lambda line: line.startswith("* Bye"))
        owner.close()

        self.open_window("carol", password="wrong one")
        dialog = self.wait(lambda: self.window.login_dialog, "the password dialog")
        self.wait_view("! wrong password for carol")
        self.wait(
            lambda: "not logged in: wrong password for carol"
            in self.window.status_label.cget("text"),
            "the status bar to say why",
        )
        self.assertFalse(self.window.status.logged_in)
        self.assertEqual(dialog.entry.get(), "carol")
        self.assertEqual(dialog.password_entry.cget("show"), "*")
        dialog.password_entry.insert(0, "right one")
        dialog.password_entry.focus_force()
        self.pump()
        dialog.password_entry.event_generate("<Return>")
        self.wait(lambda: self.window.status.logged_in, "the window to log in")
        self.assertEqual(self.window.state.nick, "carol")
        for secret in ("right one", "wrong one"):
            self.assertNotIn(secret, self.window.view_text())
            self.assertNotIn(secret, self.window.status_label.cget("text"))

        # A password typed in a command is masked while queued and not kept for Up.
        self.proxy.refuse = True
        self.proxy.cut()
        self.wait(lambda: not self.window.status.logged_in, "the connection to drop")
        self.enter_text("/password n3w one")
        self.wait_view("(not sent yet, queued) /password ***")
        self.key("Up")
        self.assertEqual(self.window.entry.get(), "")
        self.proxy.refuse = False
        self.wait_view("* The password of carol is changed.")
        self.assertNotIn("n3w one", self.window.view_text())


class NickDialogTest(unittest.TestCase):
    """The dialog at start accepts only nicks the server would."""

    def test_rejects_a_bad_nick_and_accepts_a_good_one(self) -> None:
        try:
            root = tk.Tk()
        except tk.TclError as error:
            self.skipTest(f"no display: {error}")
        self.addCleanup(collect_tk_garbage)
        self.addCleanup(root.destroy)
        dialog = gui.NickDialog(root)
        root.update()
        dialog.entry.insert(0, "two words")
        dialog.ok()
        self.assertTrue(dialog.error.cget("text"))
        self.assertIsNone(dialog.result)
        dialog.entry.delete(0, "end")
        dialog.entry.insert(0, "Алиса")
        self.assertEqual(dialog.password_entry.cget("show"), "*")  # the password is masked
        dialog.entry.focus_force()
        root.update()
        dialog.entry.event_generate("<Return>")
        root.update()
        self.assertEqual((dialog.result, dialog.password), ("Алиса", None))
        self.assertFalse(dialog.winfo_exists())

    def test_password_field_and_the_callback(self) -> None:
        try:
            root = tk.Tk()
        except tk.TclError as error:
            self.skipTest(f"no display: {error}")
        self.addCleanup(collect_tk_garbage)
        self.addCleanup(root.destroy)
        got: list[tuple[str, str | None]] = []
        dialog = gui.NickDialog(
            root,
            initial="carol",
            message="Wrong password for carol.",
            on_result=lambda *result: got.append(result),
        )
        root.update()
        self.assertEqual(dialog.focus_lastfor(), dialog.password_entry)  # the nick is known
        dialog.password_entry.insert(0, " correct horse ")
        dialog.password_entry.focus_force()
        root.update()
        dialog.password_entry.event_generate("<Return>")
        root.update()
        self.assertEqual(got, [("carol", "correct horse")])


class CommandLineTest(unittest.TestCase):
    """`tk_chat_client.py --nick ... --server ...` as a user runs it, stopped with Ctrl+C."""

    def setUp(self) -> None:
        if not os.environ.get("DISPLAY"):
            self.skipTest("no display")
        self.server = ChatServer()
        self.addCleanup(self.server.stop)
        self.vasya = LineClient(self.server.port).login("Вася")
        self.addCleanup(self.vasya.close)

    def run_program(self, *options: str) -> tuple[subprocess.Popen, Path]:
        """Starts the program for this server; returns it and the file with its output."""
        scratch = tempfile.TemporaryDirectory()
        self.addCleanup(scratch.cleanup)
        output = Path(scratch.name) / "output.txt"
        with output.open("wb") as sink:
            program = subprocess.Popen(
                [
                    sys.executable,
                    str(CLIENT_DIR / "tk_chat_client.py"),
                    *options,
                    "--server",
                    f"127.0.0.1:{self.server.port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self.addCleanup(program.wait, DEADLINE)
        self.addCleanup(program.kill)  # in case it did not exit by itself
        return program, output

    def interrupt(self, program: subprocess.Popen, nick: str) -> None:
        """Ctrl+C: the program says /quit and exits with 0."""
        program.send_signal(signal.SIGINT)
        self.assertEqual(program.wait(timeout=DEADLINE), 0)
        self.vasya.expect(f"* [main] {nick} disconnected")

    def test_ctrl_c_quits_cleanly(self) -> None:
        program, _output = self.run_program("--nick", "carol")
        self.vasya.expect("* [main] carol joined")
        self.interrupt(program, "carol")

    def test_password_file_logs_in_a_registered_nick(self) -> None:
        owner = LineClient(self.server.port).login("dave")
        self.addCleanup(owner.close)
        owner.send("/register from the file")
        owner.expect(lambda line: line.startswith("* dave is now registered"))
        owner.send("/quit")
        owner.expect(lambda line: line.startswith("* Bye"))
        self.vasya.expect("* [main] dave disconnected")  # (Вася saw the owner come and go)
        scratch = tempfile.TemporaryDirectory()
        self.addCleanup(scratch.cleanup)
        password_file = Path(scratch.name) / "password"
        password_file.write_text("from the file\nthe second line is not read\n")

        program, output = self.run_program("--nick", "dave", "--password-file", str(password_file))
        self.vasya.expect("* [main] dave joined")  # back in main: the password was right
        cmdline = Path(f"/proc/{program.pid}/cmdline").read_bytes()
        self.assertIn(str(password_file).encode(), cmdline)
        self.assertNotIn(b"from the file", cmdline)
        self.interrupt(program, "dave")
        self.assertNotIn(b"from the file", output.read_bytes())


if __name__ == "__main__":
    unittest.main()
