#!/usr/bin/env python3
"""The chat-server desktop client: a Tkinter window on top of `chat_core`.

Run `python3 clients/python/tk_chat_client.py [--nick NAME] [--password-file PATH]
[--host H --port P | --server H:P ...]`. It asks for a nick and an optional password (unless
`--nick` is given), connects, and shows the conversation, the rooms you are in and the
connection's state. `chat_core.ChatClient` does all the networking in its own thread; this
module only draws what it reports (polled with `after`, so the Tk main loop never waits on the
network) and hands it what the user types. Messages replayed from history (what you missed
while away, `/history`) are shown greyed with the time they were sent.
"""

from __future__ import annotations

import argparse
import queue
import signal
import sys
import time
import tkinter as tk
import zlib
from tkinter import font as tkfont
from tkinter import simpledialog, ttk
from typing import Callable, Optional
from collections.abc import Sequence

import chat_core as core

#: How often the window looks for network events (milliseconds).
POLL_MS = 50
#: Most events handled per poll, so a flood cannot freeze the window.
EVENTS_PER_POLL = 400
#: Oldest lines are dropped past this many, to bound memory.
MAX_VIEW_LINES = 5000

# Colours: a calm light theme with one accent per kind of line.
BG = "#f3f4f6"
VIEW_BG = "#ffffff"
TEXT = "#1f2328"
MUTED = "#6e7781"
ACCENT = "#0969da"
OWN = "#1a7f37"
OWN_BG = "#eefaf1"
PM = "#8250df"
PM_BG = "#f6f0ff"
ERROR = "#cf222e"
ERROR_BG = "#fff1f1"
CLIENT = "#9a6700"
REPLAYED = "#8c959f"  # replayed history: greyed
REPLAY_HEAD = "#57606a"
REPLAY_BG = "#f0f2f4"
# Room names get one of these (none is the green of own lines or the purple of private ones).
ROOM_COLOURS = ["#0969da", "#bc4c00", "#0a7d87", "#953800", "#3e4bbf", "#6b7a00"]
STATUS_DOTS = {"ok": "#2da44e", "busy": "#d4a72c", "down": "#cf222e"}


def pick_family(root: tk.Misc, candidates: Sequence[str], fallback: str) -> str:
    """The first font family of `candidates` that Tk knows, else `fallback`."""
    available = {name.lower() for name in tkfont.families(root)}
    return next((name for name in candidates if name.lower() in available), fallback)


def room_colour(room: str) -> str:
    """A stable colour for a room name (the same in every run)."""
    return ROOM_COLOURS[zlib.crc32(core.name_key(room).encode("utf-8")) % len(ROOM_COLOURS)]


class Fonts:
    """The fonts the window uses, sized for reading."""

    def __init__(self, root: tk.Misc) -> None:
        sans = pick_family(
            root,
            ["DejaVu Sans", "Noto Sans", "Segoe UI", "Helvetica Neue", "Helvetica"],
            "TkDefaultFont",
        )
        mono = pick_family(
            root,
            ["DejaVu Sans Mono", "Noto Sans Mono", "Consolas", "Menlo", "Courier"],
            "TkFixedFont",
        )
        self.body = tkfont.Font(root, family=sans, size=11)
        self.bold = tkfont.Font(root, family=sans, size=11, weight="bold")
        self.italic = tkfont.Font(root, family=sans, size=10, slant="italic")
        self.small = tkfont.Font(root, family=mono, size=9)
        self.heading = tkfont.Font(root, family=sans, size=10, weight="bold")
        self.status = tkfont.Font(root, family=sans, size=10)
        for name in ("TkDefaultFont", "TkTextFont", "TkMenuFont"):
            tkfont.nametofont(name, root).configure(family=sans, size=10)


def apply_style(root: tk.Tk) -> Fonts:
    """Sets the ttk theme and colours; returns the fonts."""
    fonts = Fonts(root)
    style = ttk.Style(root)
    if "clam" in style.theme_names():
        style.theme_use("clam")
    root.configure(background=BG)
    style.configure(".", background=BG, foreground=TEXT)
    style.configure("TFrame", background=BG)
    style.configure("TLabel", background=BG, foreground=TEXT)
    style.configure("Heading.TLabel", font=fonts.heading, foreground=MUTED)
    style.configure("Status.TFrame", background="#e7e9ec")
    style.configure("Status.TLabel", background="#e7e9ec", font=fonts.status)
    style.configure("TButton", padding=(10, 4))
    style.configure("Send.TButton", padding=(14, 4))
    style.configure("TEntry", padding=(6, 5))
    return fonts


class NickDialog(tk.Toplevel):
    """A small dialog asking for a nick and an optional password.

    `result` is the nick (None if cancelled) and `password` the password (None if left
    empty); the password field is masked. `ask` shows it modally (at start); with `on_result`
    it is not modal and calls `on_result(nick, password)` when the user accepts (the window
    uses that when the server refuses a password). `message` is shown above the fields.
    """

    def __init__(
        self,
        root: tk.Misc,
        initial: str = "",
        message: str = "",
        on_result: Optional[Callable[[str, Optional[str]], None]] = None,
    ) -> None:
        super().__init__(root)
        self.title("chat-server: your nick")
        self.configure(background=BG)
        self.resizable(False, False)
        self.result: Optional[str] = None
        self.password: Optional[str] = None
        self.on_result = on_result
        frame = ttk.Frame(self, padding=16)
        frame.pack(fill="both", expand=True)
        if message:
            ttk.Label(frame, text=message, foreground=ERROR, wraplength=300).pack(
                anchor="w", pady=(0, 8)
            )
        ttk.Label(frame, text="Choose a nick (letters, digits, _ or -):").pack(anchor="w")
        self.entry = ttk.Entry(frame, width=28)
        self.entry.insert(0, initial)
        self.entry.pack(fill="x", pady=(6, 2))
        self.error = ttk.Label(frame, text="", foreground=ERROR)
        self.error.pack(anchor="w")
        ttk.Label(frame, text="Password (only for a registered nick):").pack(anchor="w")
        self.password_entry = ttk.Entry(frame, width=28, show="*")
        self.password_entry.pack(fill="x", pady=(6, 2))
        buttons = ttk.Frame(frame)
        buttons.pack(fill="x", pady=(8, 0))
        ttk.Button(buttons, text="Connect", command=self.ok).pack(side="right")
        ttk.Button(buttons, text="Cancel", command=self.destroy).pack(side="right", padx=(0, 6))
        self.bind("<Return>", lambda _event: self.ok())
        self.bind("<KP_Enter>", lambda _event: self.ok())
        self.bind("<Escape>", lambda _event: self.destroy())
        self.protocol("WM_DELETE_WINDOW", self.destroy)
        (self.password_entry if initial else self.entry).focus_set()

    def ok(self) -> None:
        """Accepts the nick if it is valid, else says why."""
        nick = self.entry.get().strip()
        if core.valid_name(nick):
            self.result = nick
            self.password = self.password_entry.get().strip() or None
            self.destroy()
            if self.on_result is not None:
                self.on_result(nick, self.password)
        else:
            self.error.configure(text="1-32 letters, digits, _ or -, no spaces")

    def place_centred(self) -> None:
        """Puts the dialog in the middle of the screen, a little above the centre."""
        self.update_idletasks()
        x = (self.winfo_screenwidth() - self.winfo_reqwidth()) // 2
        y = (self.winfo_screenheight() - self.winfo_reqheight()) // 3
        self.geometry(f"+{x}+{y}")

    @classmethod
    def ask(cls, root: tk.Tk) -> Optional[tuple[str, Optional[str]]]:
        """Shows the dialog and waits for it to close: (nick, password), or None."""
        dialog = cls(root)
        dialog.place_centred()
        dialog.wait_window()
        return None if dialog.result is None else (dialog.result, dialog.password)


class ChatWindow:
    """The main window: message view, room list, input line and status bar.

    It owns no socket: it polls `client.events` every POLL_MS milliseconds and calls
    `client.send` / `client.close`, which never block.
    """

    def __init__(self, root: tk.Tk, client: core.ChatClient, fonts: Optional[Fonts] = None) -> None:
        self.root = root
        self.client = client
        self.fonts = fonts or apply_style(root)
        self.state = core.RoomState()
        self.status = core.Status(core.CONNECTING)
        self.closed = False  # the client has stopped (the window is being destroyed)
        self._closing_since: Optional[float] = None
        self._history: list[str] = []
        self._history_pos = 0
        self._draft = ""
        self._room_tags: set[str] = set()
        self._status_text = ""
        self.login_dialog: Optional[NickDialog] = None  # open after a refused password
        root.title("chat-server")
        root.geometry("920x580")
        root.minsize(560, 340)
        self._build()
        root.protocol("WM_DELETE_WINDOW", self.close)
        self._poll_id = root.after(POLL_MS, self._poll)

    # ---- layout ------------------------------------------------------------------------------

    def _build(self) -> None:
        # The status bar is packed first so it keeps its place when the window is small.
        bar = ttk.Frame(self.root, style="Status.TFrame", padding=(10, 3))
        bar.pack(fill="x", side="bottom")
        self.status_dot = tk.Label(
            bar,
            text="●",
            background="#e7e9ec",
            foreground=STATUS_DOTS["busy"],
            font=self.fonts.status,
        )
        self.status_dot.pack(side="left")
        self.status_label = ttk.Label(bar, text="", style="Status.TLabel")
        self.status_label.pack(side="left", padx=(4, 0))

        outer = ttk.Frame(self.root, padding=(10, 10, 10, 8))
        outer.pack(fill="both", expand=True)
        outer.columnconfigure(0, weight=1)
        outer.rowconfigure(0, weight=1)

        view_frame = tk.Frame(outer, background="#d0d7de", padx=1, pady=1)
        view_frame.grid(row=0, column=0, sticky="nsew")
        view_frame.columnconfigure(0, weight=1)
        view_frame.rowconfigure(0, weight=1)
        self.view = tk.Text(
            view_frame,
            wrap="word",
            state="disabled",
            font=self.fonts.body,
            background=VIEW_BG,
            foreground=TEXT,
            relief="flat",
            borderwidth=0,
            highlightthickness=0,
            padx=12,
            pady=10,
            spacing1=3,
            spacing3=3,
            cursor="arrow",
            selectbackground="#cce3ff",
            selectforeground=TEXT,
            inactiveselectbackground="#cce3ff",
        )
        self.view.grid(row=0, column=0, sticky="nsew")
        scrollbar = ttk.Scrollbar(view_frame, orient="vertical", command=self.view.yview)
        scrollbar.grid(row=0, column=1, sticky="ns")
        self.view.configure(yscrollcommand=scrollbar.set)
        self._configure_tags()

        side = ttk.Frame(outer, padding=(10, 0, 0, 0))
        side.grid(row=0, column=1, sticky="ns")
        side.rowconfigure(1, weight=1)
        ttk.Label(side, text="ROOMS", style="Heading.TLabel").grid(
            row=0, column=0, columnspan=2, sticky="w", pady=(0, 4)
        )
        self.rooms = tk.Listbox(
            side,
            width=18,
            font=self.fonts.body,
            activestyle="none",
            exportselection=False,
            selectmode="browse",
            background=VIEW_BG,
            foreground=TEXT,
            selectbackground=ACCENT,
            selectforeground="#ffffff",
            relief="flat",
            borderwidth=0,
            highlightthickness=1,
            highlightbackground="#d0d7de",
            highlightcolor="#d0d7de",
        )
        self.rooms.grid(row=1, column=0, columnspan=2, sticky="nsew")
        self.rooms.bind("<<ListboxSelect>>", self._room_clicked)
        self.join_button = ttk.Button(side, text="Join…", command=self.ask_join)
        self.join_button.grid(row=2, column=0, sticky="ew", pady=(6, 0), padx=(0, 3))
        self.leave_button = ttk.Button(side, text="Leave", command=self.leave_active)
        self.leave_button.grid(row=2, column=1, sticky="ew", pady=(6, 0), padx=(3, 0))
        side.columnconfigure(0, weight=1)
        side.columnconfigure(1, weight=1)

        bottom = ttk.Frame(outer, padding=(0, 8, 0, 0))
        bottom.grid(row=1, column=0, columnspan=2, sticky="ew")
        bottom.columnconfigure(0, weight=1)
        self.entry = ttk.Entry(bottom, font=self.fonts.body)
        self.entry.grid(row=0, column=0, sticky="ew")
        ttk.Button(bottom, text="Send", style="Send.TButton", command=self.submit).grid(
            row=0, column=1, padx=(8, 0)
        )
        self.entry.bind("<Return>", self.submit)
        self.entry.bind("<KP_Enter>", self.submit)
        self.entry.bind("<Up>", self._history_back)
        self.entry.bind("<Down>", self._history_forward)
        self.entry.focus_set()

        self._render_rooms()

    def _configure_tags(self) -> None:
        view, f = self.view, self.fonts
        view.tag_configure("line", lmargin2=58)
        view.tag_configure("time", foreground="#8c959f", font=f.small)
        view.tag_configure("nick", font=f.bold)
        view.tag_configure("own", background=OWN_BG)
        view.tag_configure("own_nick", foreground=OWN, font=f.bold)
        view.tag_configure("action", font=f.italic)
        view.tag_configure("pm", background=PM_BG)
        view.tag_configure("pm_head", foreground=PM, font=f.bold)
        view.tag_configure("notice", foreground=MUTED, font=f.italic)
        view.tag_configure("error", foreground=ERROR, background=ERROR_BG)
        view.tag_configure("client", foreground=CLIENT, font=f.italic)
        view.tag_configure("queued", foreground=MUTED, font=f.italic)
        # Replayed history: a band for the frame notices, the lines between them greyed and
        # indented under the band. Configured last, so its grey wins over the other colours.
        view.tag_configure(
            "replay_head", foreground=REPLAY_HEAD, background=REPLAY_BG, font=f.heading
        )
        view.tag_configure("replay_end", foreground=REPLAYED, font=f.italic)
        view.tag_configure("replayed", foreground=REPLAYED, lmargin1=14, lmargin2=72)
        view.tag_configure("replayed_name", font=f.bold)

    def _room_tag(self, room: str) -> str:
        tag = f"room:{core.name_key(room)}"
        if tag not in self._room_tags:
            self.view.tag_configure(tag, foreground=room_colour(room), font=self.fonts.bold)
            self._room_tags.add(tag)
        return tag

    # ---- user actions ------------------------------------------------------------------------

    def submit(self, _event: object = None) -> str:
        """Sends what is in the entry (Enter); commands pass through as typed. A line with a
        password or token in it is not kept for Up and Down."""
        line = self.entry.get()
        if line.strip():
            self.client.send(line)
            secret = core.secret_words(line) > 0
            if not secret and (not self._history or self._history[-1] != line):
                self._history.append(line)
            self.entry.delete(0, "end")
        self._history_pos = len(self._history)
        self._draft = ""
        return "break"

    def _history_back(self, _event: object = None) -> str:
        if self._history_pos > 0:
            if self._history_pos == len(self._history):
                self._draft = self.entry.get()
            self._history_pos -= 1
            self._set_entry(self._history[self._history_pos])
        return "break"

    def _history_forward(self, _event: object = None) -> str:
        if self._history_pos < len(self._history):
            self._history_pos += 1
            at_end = self._history_pos == len(self._history)
            self._set_entry(self._draft if at_end else self._history[self._history_pos])
        return "break"

    def _set_entry(self, text: str) -> None:
        self.entry.delete(0, "end")
        self.entry.insert(0, text)
        self.entry.icursor("end")

    def _room_clicked(self, _event: object = None) -> None:
        selection = self.rooms.curselection()
        if selection and selection[0] < len(self.state.rooms):
            room = self.state.rooms[selection[0]]
            if not self.state.is_active(room):
                self.client.send(f"/join {room}")
        self._render_rooms()  # the highlight follows the server's answer, not the click

    def ask_join(self) -> None:
        """Asks for a room name and joins it."""
        room = simpledialog.askstring(
            "Join a room", "Room name (created if new):", parent=self.root
        )
        if room is None:
            return
        room = room.strip()
        if core.valid_name(room):
            self.client.send(f"/join {room}")
        else:
            self._append(
                [(f"Not a valid room name: {room!r} (1-32 letters, digits, _ or -)", ("error",))]
            )

    def leave_active(self) -> None:
        """Leaves the active room (`main` cannot be left)."""
        if self.state.active and not self.state.is_active("main"):
            self.client.send(f"/leave {self.state.active}")

    def close(self) -> None:
        """Sends `/quit` (through the client) and closes the window once it has stopped."""
        if self._closing_since is None:
            self._closing_since = time.monotonic()
            self.client.close()

    # ---- network events ----------------------------------------------------------------------

    def _poll(self) -> None:
        for _ in range(EVENTS_PER_POLL):
            try:
                event = self.client.events.get_nowait()
            except queue.Empty:
                break
            self.handle(event)
            if self.closed:
                return
        give_up = (
            self._closing_since is not None
            and time.monotonic() - self._closing_since > core.QUIT_TIMEOUT + 1
        )
        if give_up:
            self._destroy()
            return
        self._render_status()
        self._poll_id = self.root.after(POLL_MS, self._poll)

    def handle(self, event: core.ClientEvent) -> None:
        """Shows one event from the client."""
        if isinstance(event, core.Status):
            self.status = event
            self._render_status()
            self._render_rooms()
        elif isinstance(event, core.RoomsChanged):
            self.state = event.state
            self._render_rooms()
            if event.state.nick:
                self.root.title(f"chat-server — {event.state.nick}")
        elif isinstance(event, core.ClientNotice):
            self._append([(f"— {event.text}", ("client",))])
        elif isinstance(event, core.Queued):
            self._append([(f"(not sent yet, queued) {event.line}", ("queued",))])
        elif isinstance(event, core.LoginRefused):
            if not event.will_retry:
                self.ask_password(event)
        elif isinstance(event, core.Closed) and event.error is not None:
            self._append([(f"The client stopped working: {event.error}", ("error",))])
        elif isinstance(event, core.Closed):
            self._destroy()  # the user closed the window or typed /quit
        elif isinstance(event, core.ServerLine):
            self._show_line(event)

    def _destroy(self) -> None:
        if not self.closed:
            self.closed = True
            self.root.after_cancel(self._poll_id)
            self.root.destroy()

    def ask_password(self, refused: core.LoginRefused) -> None:
        """Opens the nick dialog (not modal) to get the password the server wants."""
        if self.login_dialog is not None and self.login_dialog.winfo_exists():
            return  # already asking
        if refused.reason == core.WRONG_PASSWORD:
            message = f"Wrong password for {refused.nick}."
        elif refused.reason == core.LOCKED:
            message = (
                f"{refused.nick} is locked after too many wrong passwords; the server accepts"
                f" a password again in {refused.retry_in} s."
            )
        else:
            message = f"{refused.nick} is registered: enter its password."
        self.login_dialog = NickDialog(
            self.root, initial=refused.nick, message=message, on_result=self.client.set_login
        )
        self.login_dialog.transient(self.root)
        self.login_dialog.place_centred()

    def _show_line(self, event: core.ServerLine) -> None:
        """Appends a server line; replayed history is greyed and shows its own time."""
        frame = core.replay_frame(event)
        if frame is not None:
            text = event.raw[2:] if event.raw.startswith("* ") else event.raw
            if frame.start:
                self._append([(text, ("replay_head",))], stamp="", band="replay_head")
            else:
                self._append([(text, ("replay_end",))], stamp="")
            return
        if isinstance(event, (core.ReplayedMessage, core.ReplayedPrivate)):
            self._append(self.format_line(event), stamp=core.local_time(event.time))
            return
        self._append(self.format_line(event))

    def format_line(self, event: core.ServerLine) -> list[tuple[str, tuple[str, ...]]]:
        """The pieces of text (with their tags) that show a server line."""
        if isinstance(event, core.ReplayedMessage):
            grey = ("replayed",)
            head = [(f"[{event.room}] ", grey + ("replayed_name",))]
            if event.action:
                return head + [(f"* {event.nick} {event.text}", grey + ("action",))]
            return head + [(event.nick, grey + ("replayed_name",)), (f": {event.text}", grey)]
        if isinstance(event, core.ReplayedPrivate):
            grey = ("pm", "replayed")
            return [(f"PM from {event.nick}", grey + ("replayed_name",)), (f": {event.text}", grey)]
        if isinstance(event, core.RoomMessage):
            return [
                (f"[{event.room}] ", (self._room_tag(event.room),)),
                (event.nick, ("nick",)),
                (f": {event.text}", ()),
            ]
        if isinstance(event, core.RoomAction):
            return [
                (f"[{event.room}] ", (self._room_tag(event.room),)),
                (f"* {event.nick} {event.text}", ("action",)),
            ]
        if isinstance(event, core.OwnMessage):
            head = [(f"[{event.room}] ", (self._room_tag(event.room), "own"))] if event.room else []
            if event.text.startswith("* "):
                return head + [(event.text, ("own", "action", "own_nick"))]
            return head + [("You", ("own", "own_nick")), (f": {event.text}", ("own",))]
        if isinstance(event, core.PrivateMessage):
            return [(f"PM from {event.nick}", ("pm", "pm_head")), (f": {event.text}", ("pm",))]
        if isinstance(event, core.OwnPrivateMessage):
            return [(f"PM to {event.nick}", ("pm", "pm_head")), (f": {event.text}", ("pm",))]
        if isinstance(event, core.Presence):
            return [
                (f"[{event.room}] ", (self._room_tag(event.room),)),
                (event.raw[len(f"* [{event.room}] ") :], ("notice",)),
            ]
        if isinstance(event, core.ServerError):
            return [(event.raw, ("error",))]
        if isinstance(event, core.UnknownLine):
            return [(event.raw, ())]
        return [(event.raw, ("notice",))]

    def _append(
        self,
        pieces: list[tuple[str, tuple[str, ...]]],
        stamp: Optional[str] = None,
        band: Optional[str] = None,
    ) -> None:
        """Adds one line: the time (`stamp`, default now; "" for none), then the pieces. The
        line's background band (own, private, error or `band`) spans the whole width."""
        at_bottom = self.view.yview()[1] >= 0.999
        line_tags = tuple(
            tag
            for tag in ("own", "pm", "error", "replayed")
            if any(tag in tags for _, tags in pieces)
        ) + ((band,) if band else ())
        stamp = time.strftime("%H:%M") if stamp is None else stamp
        self.view.configure(state="normal")
        if stamp:
            self.view.insert("end", f"{stamp}  ", ("time", "line") + line_tags)
        for text, tags in pieces:
            self.view.insert("end", text, tags + ("line",))
        self.view.insert("end", "\n", ("line",) + line_tags)
        lines = int(self.view.index("end-1c").split(".")[0])
        if lines > MAX_VIEW_LINES:
            self.view.delete("1.0", f"{lines - MAX_VIEW_LINES}.0")
        self.view.configure(state="disabled")
        if at_bottom:
            self.view.see("end")

    def view_text(self) -> str:
        """Everything the message view shows (for tests)."""
        return self.view.get("1.0", "end-1c")

    def _render_rooms(self) -> None:
        online = self.status.state == core.CONNECTED and self.status.logged_in
        self.rooms.delete(0, "end")
        for index, room in enumerate(self.state.rooms):
            self.rooms.insert("end", f"  # {room}")
            if self.state.is_active(room):
                self.rooms.selection_set(index)
                self.rooms.see(index)
        self.rooms.configure(
            foreground=TEXT if online else MUTED, selectbackground=ACCENT if online else "#8c959f"
        )
        can_leave = online and self.state.active is not None and not self.state.is_active("main")
        self.leave_button.state(["!disabled"] if can_leave else ["disabled"])

    def _render_status(self) -> None:
        text = self.status.describe()
        if text == self._status_text:
            return
        self._status_text = text
        self.status_label.configure(text=text)
        if self.status.state == core.CONNECTED and self.status.logged_in:
            colour = STATUS_DOTS["ok"]
        elif self.status.state == core.DISCONNECTED:
            colour = STATUS_DOTS["down"]
        elif self.status.refused and self.status.retry_at is None:
            colour = STATUS_DOTS["down"]  # waiting for the user to give a password
        else:
            colour = STATUS_DOTS["busy"]
        self.status_dot.configure(foreground=colour)


def read_password_file(path: str) -> str:
    """The password in the first line of the file at `path` (without the line end and
    surrounding spaces); raises ValueError, which never quotes the file's content."""
    try:
        with open(path, encoding="utf-8") as file:
            password = file.readline().strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else "unreadable"
        raise ValueError(f"cannot read the password file {path}: {reason}") from None
    if not password:
        raise ValueError(f"the password file {path} has no password in its first line")
    return password


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options; `password` is read from `--password-file` (or None)."""
    parser = argparse.ArgumentParser(
        description="Desktop client for chat-server.",
        epilog=(
            "A registered nick needs its password: type it in the nick dialog, or put it in"
            " the first line of a file for --password-file (never on the command line). The"
            " client logs back in by itself after a dropped connection with a one-use resume"
            " token it asks the server for (/token), falling back to the password; it never"
            " shows or logs either. If your nick logs in from another connection, this one"
            " stops until you type /reconnect. What you missed while away, and /history, are"
            " shown greyed with the time each message was sent."
        ),
    )
    parser.add_argument("--nick", help="your nick (skips the nick dialog)")
    parser.add_argument(
        "--password-file",
        metavar="PATH",
        help="log in with the password in the first line of this file (for a registered nick)",
    )
    parser.add_argument(
        "--host", default=core.DEFAULT_HOST, help="server host (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=core.DEFAULT_PORT, help="server port (default: %(default)s)"
    )
    parser.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="a server; repeat for a list tried in order (a cluster); replaces --host/--port",
    )
    args = parser.parse_args(argv)
    if args.nick is not None and not core.valid_name(args.nick):
        parser.error(f"invalid nick {args.nick!r}: use 1-32 letters, digits, _ or -")
    try:
        args.servers = [core.parse_server(text) for text in args.server] or [
            core.Server(args.host, args.port)
        ]
    except ValueError as error:
        parser.error(str(error))
    args.password = None
    if args.password_file is not None:
        try:
            args.password = read_password_file(args.password_file)
        except ValueError as error:
            parser.error(str(error))
    return args


def keep_python_responsive(root: tk.Misc, interval_ms: int = 200) -> None:
    """Wakes the interpreter regularly, so Ctrl+C is handled even while a dialog waits."""
    root.after(interval_ms, keep_python_responsive, root, interval_ms)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the client; returns the exit status."""
    args = parse_args(argv)
    root = tk.Tk()
    root.withdraw()
    fonts = apply_style(root)
    on_interrupt: list[Callable[[], None]] = [root.destroy]

    def interrupted(_signum: int, _frame: object) -> None:
        root.after_idle(on_interrupt[0])

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    keep_python_responsive(root)

    login = (args.nick, None) if args.nick else NickDialog.ask(root)
    if login is None:  # cancelled, or Ctrl+C while the dialog was up
        try:
            root.destroy()
        except tk.TclError:
            pass  # already destroyed
        return 1
    nick, typed_password = login
    client = core.ChatClient(args.servers, nick, password=typed_password or args.password)
    window = ChatWindow(root, client, fonts)
    on_interrupt[0] = window.close
    client.start()
    root.deiconify()
    root.mainloop()
    client.join(timeout=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
