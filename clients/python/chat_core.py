"""The GUI-free part of the chat-server desktop client.

Everything here works without a display and is what the Tk view (`tk_chat_client.py`) is built
on:

- `parse_line` turns one server line (docs/PROTOCOL.md) into a typed event (a dataclass);
  `replay_frame` tells the notices that frame replayed history apart, and `local_time` turns a
  replayed line's UTC time into local time for display;
- `RoomState` keeps the client's picture of its nick, rooms and active room from those events;
- `Backoff` and `Server` / `parse_server` are the reconnect policy and the server list;
- `ChatClient` owns the connection: one network thread connects (trying the servers in order),
  reads and writes a non-blocking socket, logs in with `/nick`, gets the rooms back after a
  reconnect, retries a nick still held by a dead connection, queues what the user types while
  disconnected, and reports everything as events on a `queue.Queue` that the view polls. It
  logs in with a resume token or a password when it has one (owned nicks), and never reports,
  shows or logs either: `mask_secrets` hides them in lines it echoes back to the view.
"""

from __future__ import annotations

import codecs
import dataclasses
import datetime
import math
import queue
import random
import re
import selectors
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Optional, Union
from collections import deque
from collections.abc import Sequence

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 5555

#: How long one connection attempt may take before the next server is tried.
CONNECT_TIMEOUT = 5.0
#: How long closing waits for the server to answer `/quit` and close the connection.
QUIT_TIMEOUT = 2.0
#: Most lines kept while disconnected; later ones are dropped (and reported).
MAX_QUEUED = 500
#: Longest name the server accepts for a nick or a room.
MAX_NAME = 32


def valid_name(name: str) -> bool:
    """Whether `name` is a valid nick or room name: 1-32 letters, digits, `_` or `-`."""
    return 1 <= len(name) <= MAX_NAME and all(c.isalnum() or c in "_-" for c in name)


def name_key(name: str) -> str:
    """The server compares names case-insensitively; this is the form to compare."""
    return name.lower()


# --------------------------------------------------------------------------------------------
# Server lines as typed events
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerLine:
    """Any line from the server; `raw` is the line as received (without its line end)."""

    raw: str


@dataclass(frozen=True)
class RoomMessage(ServerLine):
    """`[ROOM] NICK: TEXT`: another user's message in a room."""

    room: str
    nick: str
    text: str


@dataclass(frozen=True)
class RoomAction(ServerLine):
    """`[ROOM] * NICK TEXT`: another user's `/me` in a room."""

    room: str
    nick: str
    text: str


@dataclass(frozen=True)
class ReplayedMessage(ServerLine):
    """`[ROOM TIME] NICK: TEXT` or `[ROOM TIME] * NICK TEXT`: a message from the room's history,
    replayed to us after a return or for `/history`. TIME is `HH:MM` or `YYYY-MM-DD HH:MM` (UTC)
    when it was posted; `action` is True for a `/me`."""

    room: str
    time: str
    nick: str
    text: str
    action: bool


@dataclass(frozen=True)
class ReplayedPrivate(ServerLine):
    """`(PM TIME) NICK: TEXT`: a private message kept for us while we were away."""

    time: str
    nick: str
    text: str


@dataclass(frozen=True)
class OwnMessage(ServerLine):
    """`You: TEXT`: the echo of our own message (or `/me`, then TEXT is `* NICK ...`).

    The server sends it for the active room; `room` is filled in by `ChatClient` from the
    room state (None when parsed alone).
    """

    text: str
    room: Optional[str] = None


@dataclass(frozen=True)
class PrivateMessage(ServerLine):
    """`(PM) NICK: TEXT`: a private message to us."""

    nick: str
    text: str


@dataclass(frozen=True)
class OwnPrivateMessage(ServerLine):
    """`(PM to NICK) You: TEXT`: the echo of our private message to NICK."""

    nick: str
    text: str


@dataclass(frozen=True)
class Welcome(ServerLine):
    """`* Welcome[ back], NICK. Rooms: LIST. Active room: ROOM.`: logged in.

    `restored` is True for `Welcome back` (the server had our saved session).
    """

    nick: str
    rooms: tuple[str, ...]
    active: str
    restored: bool


@dataclass(frozen=True)
class Joined(ServerLine):
    """`* Joined ROOM. Active room: ROOM.`: we joined ROOM, which is now active."""

    room: str


@dataclass(frozen=True)
class ActiveRoom(ServerLine):
    """`* Active room: ROOM.`: `/join` of a room we are in made it active."""

    room: str


@dataclass(frozen=True)
class Left(ServerLine):
    """`* Left ROOM. Active room: ACTIVE.`: we left ROOM."""

    room: str
    active: str


@dataclass(frozen=True)
class NickChanged(ServerLine):
    """`* You are now NEW (was OLD).`: our rename succeeded."""

    new: str
    old: str


@dataclass(frozen=True)
class Presence(ServerLine):
    """`* [ROOM] NICK joined|left|disconnected` or `* [ROOM] OLD is now NEW`.

    `what` is `joined`, `left`, `disconnected` or `renamed` (then `new_nick` is set).
    """

    room: str
    nick: str
    what: str
    new_nick: Optional[str] = None


@dataclass(frozen=True)
class Notice(ServerLine):
    """Any other `* TEXT` line (help, lists, bye, shutdown...); `text` is without the `* `."""

    text: str


@dataclass(frozen=True)
class ServerError(ServerLine):
    """`! TEXT`: an error. `nick_in_use` is the nick when TEXT is `nick NICK is in use`."""

    text: str
    nick_in_use: Optional[str] = None


@dataclass(frozen=True)
class UnknownLine(ServerLine):
    """A line that matches no documented kind (shown as is)."""


_NAME = r"[^\s\[\]():,]+"
_TIME = r"(?:\d{4}-\d{2}-\d{2} )?\d{2}:\d{2}"
_PATTERNS: list[tuple[re.Pattern[str], Callable[[str, re.Match[str]], ServerLine]]] = [
    (
        re.compile(rf"^\[({_NAME}) ({_TIME})\] \* ({_NAME}) ?(.*)$"),
        lambda raw, m: ReplayedMessage(raw, m[1], m[2], m[3], m[4], True),
    ),
    (
        re.compile(rf"^\[({_NAME}) ({_TIME})\] ({_NAME}): (.*)$"),
        lambda raw, m: ReplayedMessage(raw, m[1], m[2], m[3], m[4], False),
    ),
    (
        re.compile(rf"^\(PM ({_TIME})\) ({_NAME}): (.*)$"),
        lambda raw, m: ReplayedPrivate(raw, m[1], m[2], m[3]),
    ),
    (
        re.compile(rf"^\[({_NAME})\] \* ({_NAME}) ?(.*)$"),
        lambda raw, m: RoomAction(raw, m[1], m[2], m[3]),
    ),
    (
        re.compile(rf"^\[({_NAME})\] ({_NAME}): (.*)$"),
        lambda raw, m: RoomMessage(raw, m[1], m[2], m[3]),
    ),
    (re.compile(r"^You: (.*)$"), lambda raw, m: OwnMessage(raw, m[1])),
    (
        re.compile(rf"^\(PM\) ({_NAME}): (.*)$"),
        lambda raw, m: PrivateMessage(raw, m[1], m[2]),
    ),
    (
        re.compile(rf"^\(PM to ({_NAME})\) You: (.*)$"),
        lambda raw, m: OwnPrivateMessage(raw, m[1], m[2]),
    ),
    (
        re.compile(rf"^\* Welcome( back)?, ({_NAME})\. Rooms: (.*)\. Active room: ({_NAME})\.$"),
        lambda raw, m: Welcome(
            raw, m[2], tuple(r for r in m[3].split(", ") if r), m[4], m[1] is not None
        ),
    ),
    (
        re.compile(rf"^\* Joined ({_NAME})\. Active room: ({_NAME})\.$"),
        lambda raw, m: Joined(raw, m[2]),
    ),
    (re.compile(rf"^\* Active room: ({_NAME})\.$"), lambda raw, m: ActiveRoom(raw, m[1])),
    (
        re.compile(rf"^\* Left ({_NAME})\. Active room: ({_NAME})\.$"),
        lambda raw, m: Left(raw, m[1], m[2]),
    ),
    (
        re.compile(rf"^\* You are now ({_NAME}) \(was ({_NAME})\)\.$"),
        lambda raw, m: NickChanged(raw, m[1], m[2]),
    ),
    (
        re.compile(rf"^\* \[({_NAME})\] ({_NAME}) (joined|left|disconnected)$"),
        lambda raw, m: Presence(raw, m[1], m[2], m[3]),
    ),
    (
        re.compile(rf"^\* \[({_NAME})\] ({_NAME}) is now ({_NAME})$"),
        lambda raw, m: Presence(raw, m[1], m[2], "renamed", m[3]),
    ),
    (re.compile(r"^\* ?(.*)$"), lambda raw, m: Notice(raw, m[1])),
    (
        re.compile(r"^! ?(.*)$"),
        lambda raw, m: ServerError(
            raw, m[1], (re.fullmatch(rf"nick ({_NAME}) is in use", m[1]) or [None, None])[1]
        ),
    ),
]


def parse_line(line: str) -> ServerLine:
    """Parses one server line (line end already removed) into its event."""
    for pattern, build in _PATTERNS:
        match = pattern.match(line)
        if match:
            return build(line, match)
    return UnknownLine(line)


#: What a `ReplayFrame` opens or closes.
MISSED = "missed"  # `* Missed in ROOM: ...`, after `* Welcome back`
MISSED_PRIVATE = "missed_private"  # `* Missed while you were away: N private messages.`
HISTORY = "history"  # `* History of ROOM: ...`, the answer to `/history`


@dataclass(frozen=True)
class ReplayFrame:
    """A notice that opens (`start`) or closes a block of replayed lines.

    `kind` is MISSED, MISSED_PRIVATE or HISTORY; `room` is the room (None for private
    messages). `* No messages are kept in ROOM.` is a HISTORY frame that both opens and closes
    (`start` and `empty` are True).
    """

    kind: str
    room: Optional[str]
    start: bool
    empty: bool = False


_FRAMES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], ReplayFrame]]] = [
    (
        re.compile(rf"^Missed in ({_NAME}): \d+ messages? since .*\.$"),
        lambda m: ReplayFrame(MISSED, m[1], True),
    ),
    (
        re.compile(rf"^End of missed messages in ({_NAME})\.$"),
        lambda m: ReplayFrame(MISSED, m[1], False),
    ),
    (
        re.compile(r"^Missed while you were away: \d+ private messages?\.$"),
        lambda m: ReplayFrame(MISSED_PRIVATE, None, True),
    ),
    (
        re.compile(r"^End of missed private messages\.$"),
        lambda m: ReplayFrame(MISSED_PRIVATE, None, False),
    ),
    (
        re.compile(rf"^History of ({_NAME}): the last \d+ messages?\.$"),
        lambda m: ReplayFrame(HISTORY, m[1], True),
    ),
    (
        re.compile(rf"^End of history of ({_NAME})\.$"),
        lambda m: ReplayFrame(HISTORY, m[1], False),
    ),
    (
        re.compile(rf"^No messages are kept in ({_NAME})\.$"),
        lambda m: ReplayFrame(HISTORY, m[1], True, empty=True),
    ),
]


def replay_frame(event: ServerLine) -> Optional[ReplayFrame]:
    """The frame `event` opens or closes, if it is one of the replay notices, else None."""
    if not isinstance(event, Notice):
        return None
    for pattern, build in _FRAMES:
        match = pattern.match(event.text)
        if match:
            return build(match)
    return None


def local_time(utc: str, now: Optional[datetime.datetime] = None) -> str:
    """A replayed line's TIME (UTC: `HH:MM` for today, `YYYY-MM-DD HH:MM` for another day) in
    the local time zone, for display: `HH:MM` if that is today here, else `YYYY-MM-DD HH:MM`.

    `now` is an aware datetime standing for the present (its zone is the local one); text that
    is not a TIME comes back unchanged. An `HH:MM` far ahead of `now` is yesterday's (the UTC
    day changed between the server writing the line and the client reading it).
    """
    now = now or datetime.datetime.now().astimezone()
    utc_now = now.astimezone(datetime.timezone.utc)
    try:
        if " " in utc:
            moment = datetime.datetime.strptime(utc, "%Y-%m-%d %H:%M")
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        else:
            clock = datetime.datetime.strptime(utc, "%H:%M").time()
            moment = datetime.datetime.combine(utc_now.date(), clock, datetime.timezone.utc)
            if moment - utc_now > datetime.timedelta(hours=12):
                moment -= datetime.timedelta(days=1)
    except ValueError:
        return utc
    here = moment.astimezone(now.tzinfo)
    return here.strftime("%H:%M" if here.date() == now.date() else "%Y-%m-%d %H:%M")


# Lines about owned nicks that the client acts on (docs/PROTOCOL.md, "Owned nicks").
_TOKEN_LINE = re.compile(r"^\* Resume token: ([A-Za-z0-9_-]{22,})$")
_TAKEN_OVER = re.compile(
    rf"^({_NAME}) logged in from another connection; this one is closed\.$"
)
_REGISTERED = re.compile(rf"^({_NAME}) is now registered: ")
_PASSWORD_CHANGED = re.compile(rf"^The password of ({_NAME}) is changed\.$")
_UNREGISTERED = re.compile(rf"^({_NAME}) is no longer registered\.$")
_WRONG_PASSWORD = re.compile(rf"^wrong password for ({_NAME})$")
_STALE_TOKEN = re.compile(
    rf"^that resume token is no longer valid \(tokens work once\); use /nick ({_NAME}) PASSWORD$"
)
_LOCKED = re.compile(rf"^too many wrong passwords for ({_NAME}); try again in (\d+) s$")
_NICK_REGISTERED = re.compile(rf"^nick ({_NAME}) is registered; use /nick ")
_AUTH_FAILED = re.compile(r"^that did not work \((.*)\); please try again$")
# Errors that answer `/register`, `/password` or `/unregister` instead of their confirmation.
_ACCOUNT_ERRORS = re.compile(
    rf"^(?:{_NAME} is already registered; |{_NAME} is not registered; |that did not work \(|"
    r"registered nicks are not available )"
)


def secret_words(line: str) -> int:
    """How many leading words of a typed line are public before a secret starts, or 0 if the
    line carries none: `/register PASSWORD` and `/password NEW` (1), `/nick NAME SECRET` (2)."""
    command = command_name(line)
    words = line.split()
    if command in ("register", "password") and len(words) > 1:
        return 1
    if command == "nick" and len(words) > 2:
        return 2
    return 0


def mask_secrets(line: str) -> str:
    """`line` as it may be shown or kept: a password or token in it replaced by `***`."""
    public = secret_words(line)
    if not public:
        return line
    return " ".join(line.split()[:public] + ["***"])


class LineSplitter:
    """Bytes from the socket to text lines, UTF-8 decoded incrementally.

    A multi-byte character split across two reads is kept until its last byte arrives, so it is
    never corrupted; bytes that are not UTF-8 at all become U+FFFD. Lines end with LF; a CR
    before it is dropped.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""

    def feed(self, data: bytes) -> list[str]:
        """Adds received bytes and returns the lines they completed."""
        text = self._partial + self._decoder.decode(data)
        *lines, self._partial = text.split("\n")
        return [line[:-1] if line.endswith("\r") else line for line in lines]


# --------------------------------------------------------------------------------------------
# Room state
# --------------------------------------------------------------------------------------------


@dataclass
class RoomState:
    """Our nick, joined rooms (in join order) and active room, as the server told us."""

    nick: Optional[str] = None
    rooms: list[str] = field(default_factory=list)
    active: Optional[str] = None

    def apply(self, event: ServerLine) -> bool:
        """Updates the state from a server event; returns whether anything changed."""
        before = (self.nick, list(self.rooms), self.active)
        if isinstance(event, Welcome):
            self.nick = event.nick
            self.rooms = list(event.rooms)
            self.active = event.active
            self._ensure_member(event.active)
        elif isinstance(event, (Joined, ActiveRoom)):
            self._ensure_member(event.room)
            self.active = event.room
        elif isinstance(event, Left):
            self.rooms = [r for r in self.rooms if name_key(r) != name_key(event.room)]
            self._ensure_member(event.active)
            self.active = event.active
        elif isinstance(event, NickChanged):
            self.nick = event.new
        return before != (self.nick, self.rooms, self.active)

    def has_room(self, room: str) -> bool:
        """Whether we are in `room` (compared case-insensitively like the server does)."""
        return any(name_key(r) == name_key(room) for r in self.rooms)

    def is_active(self, room: str) -> bool:
        """Whether `room` is the active room."""
        return self.active is not None and name_key(self.active) == name_key(room)

    def copy(self) -> RoomState:
        """An independent copy (for handing to another thread)."""
        return RoomState(self.nick, list(self.rooms), self.active)

    def _ensure_member(self, room: str) -> None:
        if not self.has_room(room):
            self.rooms.append(room)


def rejoin_commands(target: RoomState, current: RoomState) -> list[str]:
    """Commands that take us from `current` (what the server gave us) to `target`'s rooms.

    Used after a reconnect to a server that did not restore our session (a restarted
    standalone server): `/join` each room we had but do not have now, in the original order,
    then `/join` the room that was active so it is active again.
    """
    commands = [f"/join {room}" for room in target.rooms if not current.has_room(room)]
    if target.active is not None:
        last_joined = commands[-1][len("/join ") :] if commands else current.active
        if last_joined is None or name_key(last_joined) != name_key(target.active):
            commands.append(f"/join {target.active}")
    return commands


# --------------------------------------------------------------------------------------------
# Servers and reconnect policy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """One server to connect to."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_server(text: str, default_port: int = DEFAULT_PORT) -> Server:
    """Parses `HOST:PORT`, `HOST`, or `[IPV6]:PORT` into a Server; raises ValueError."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"no host in {text!r}")
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise ValueError(f"bad port in {text!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"bad port in {text!r}")
    return Server(host, port)


@dataclass
class Backoff:
    """Exponential backoff with jitter: about `base` seconds, doubling, capped at `cap`.

    `delay(n)` is the wait before retry number n (n >= 1): base * 2^(n-1) spread by
    +-`jitter` (a fraction) and never above `cap`. The jitter keeps many clients dropped
    together from coming back in the same instant.
    """

    base: float = 0.5
    cap: float = 10.0
    jitter: float = 0.2
    rng: Callable[[], float] = random.random

    def delay(self, attempt: int) -> float:
        """The wait in seconds before retry number `attempt`."""
        nominal = min(self.cap, self.base * 2.0 ** max(0, attempt - 1))
        spread = 1.0 + self.jitter * (2.0 * self.rng() - 1.0)
        return min(self.cap, nominal * spread)


# --------------------------------------------------------------------------------------------
# What the client reports to the view
# --------------------------------------------------------------------------------------------

CONNECTING = "connecting"
CONNECTED = "connected"
RECONNECTING = "reconnecting"
DISCONNECTED = "disconnected"


@dataclass(frozen=True)
class Status:
    """The connection's state as the status bar shows it.

    `state` is CONNECTING, CONNECTED (the socket is up; `logged_in` says whether the server
    accepted our nick yet), RECONNECTING (waiting `retry_at`, a `time.monotonic()` instant,
    before attempt number `attempt`) or DISCONNECTED (closed by us, or stopped until the user
    says `/reconnect`: then `detail` says why). `refused` is set while the server refuses our
    login and the client waits for the user (a wrong or missing password) or for `retry_at`
    (a nick locked after too many wrong passwords).
    """

    state: str
    server: Optional[Server] = None
    nick: Optional[str] = None
    logged_in: bool = False
    attempt: int = 0
    retry_at: Optional[float] = None
    detail: str = ""
    queued: int = 0
    refused: str = ""

    def describe(self, now: Optional[float] = None) -> str:
        """One line for the status bar (the countdown computed at `now`)."""
        now = time.monotonic() if now is None else now
        if self.state == CONNECTING:
            text = f"connecting to {self.server}…"
        elif self.state == CONNECTED and self.logged_in:
            text = f"connected to {self.server} as {self.nick}"
        elif self.state == CONNECTED and self.refused:
            text = f"connected to {self.server}, not logged in: {self.refused}"
            if self.retry_at is not None:
                text += f"; next try in {math.ceil(max(0.0, self.retry_at - now))} s"
        elif self.state == CONNECTED and self.retry_at is not None:
            wait = max(0.0, self.retry_at - now)
            text = (
                f"connected to {self.server}, nick {self.nick} still held by the old connection:"
                f" attempt {self.attempt}, next try in {math.ceil(wait)} s"
            )
        elif self.state == CONNECTED:
            text = f"connected to {self.server}, logging in as {self.nick}…"
        elif self.state == RECONNECTING and self.retry_at is not None:
            wait = max(0.0, self.retry_at - now)
            text = f"reconnecting: attempt {self.attempt}, next try in {math.ceil(wait)} s"
        elif self.state == RECONNECTING:
            text = f"reconnecting: attempt {self.attempt}, trying {self.server}…"
        else:
            text = "disconnected"
        if self.detail:
            text += f" — {self.detail}"
        if self.queued:
            text += f" · {self.queued} line{'s' if self.queued != 1 else ''} queued"
        return text


@dataclass(frozen=True)
class RoomsChanged:
    """Our nick, rooms or active room changed (a copy of the state)."""

    state: RoomState


@dataclass(frozen=True)
class ClientNotice:
    """Something the client itself says (connection lost, rejoining rooms...)."""

    text: str


@dataclass(frozen=True)
class Queued:
    """A line typed while not logged in, kept to be sent once we are (a password or token in
    it already replaced by `***`)."""

    line: str


#: Why the server refused our login (`LoginRefused.reason`).
WRONG_PASSWORD = "wrong password"  # the password we sent is wrong
PASSWORD_NEEDED = "password needed"  # the nick is registered and we have no (working) secret
LOCKED = "locked"  # too many wrong passwords for the nick: every attempt refused for a while


@dataclass(frozen=True)
class LoginRefused:
    """The server refused our login. Unless `will_retry`, the client stopped trying and waits
    for the user to give a password (`ChatClient.set_login`, or a typed `/nick NAME PASSWORD`).

    For LOCKED, `retry_in` is the seconds the server named; the client tries once more after
    them by itself (`will_retry`) if it has a secret the server has not refused.
    """

    nick: str
    reason: str
    retry_in: Optional[int] = None
    will_retry: bool = False


@dataclass(frozen=True)
class Closed:
    """The client stopped for good; no more events follow.

    `error` is None after `close()` or `/quit`, else what broke the network thread (a bug).
    """

    error: Optional[str] = None


ClientEvent = Union[
    ServerLine, Status, RoomsChanged, ClientNotice, Queued, LoginRefused, Closed
]


# --------------------------------------------------------------------------------------------
# The connection
# --------------------------------------------------------------------------------------------


def enable_keepalive(
    sock: socket.socket, idle: int = 10, interval: int = 5, count: int = 3
) -> None:
    """Turns on TCP keepalive so a server that vanished is noticed within about 25 s idle.

    Also sets TCP_USER_TIMEOUT where available, so unacknowledged data (a line we sent to a
    dead server) fails the connection after about as long.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    options = [
        ("TCP_KEEPIDLE", idle),
        ("TCP_KEEPALIVE", idle),  # macOS's name for TCP_KEEPIDLE
        ("TCP_KEEPINTVL", interval),
        ("TCP_KEEPCNT", count),
        ("TCP_USER_TIMEOUT", (idle + interval * count) * 1000),
    ]
    for name, value in options:
        option = getattr(socket, name, None)
        if option is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
            except OSError:
                pass


def command_name(line: str) -> str:
    """The lowercase command of a `/command ...` line, or "" for a message."""
    if not line.startswith("/") or line.startswith("//"):
        return ""
    return line[1:].split(" ", 1)[0].lower()


class _Stop(Exception):
    """Raised inside the network thread when `close()` was called."""


class ChatClient:
    """A connection to chat-server that keeps itself logged in.

    Call `start()`, then `send(line)` for what the user types and `close()` at the end; read
    `events` (a `queue.Queue` of ClientEvent) from the GUI thread. All socket work happens in
    one network thread; `send`, `set_login`, `reconnect` and `close` only hand requests to it
    and never block.

    Behaviour:
    - the servers are tried in order; a failed attempt moves on to the next one at once, and
      after a whole round has failed the client waits `backoff.delay(round)` (about 0.5 s,
      doubling up to 10 s). After a dropped connection it waits about 0.5 s, then tries the
      server it was on first, then the others;
    - on every connection it logs in: `/nick NICK TOKEN` with the resume token it holds, else
      `/nick NICK PASSWORD` with the password it was given, else `/nick NICK`. After every
      login (and rename) it asks for a new token (`/token`: a token works once) and keeps the
      answer without reporting it. A token the server refuses is dropped: for a registered
      nick the server checked it as a password (`! wrong password`, not reported), and the
      client logs in with the password instead;
    - a wrong password is reported (`LoginRefused`, the status's `refused`) and never sent
      again: the client waits for a new one (`set_login`, or `/nick NICK PASSWORD` typed),
      and a reconnect meanwhile sends the bare nick. A nick locked after too many wrong
      passwords is tried once more when the server says the lock ends;
    - a password typed in `/register PASSWORD` or `/password NEW` becomes the client's
      password once the server confirms it; `/unregister` forgets it;
    - if the server restored the session (`Welcome back`) its rooms are taken as they are; if
      it did not (a restarted standalone server), the client re-joins the rooms it had and
      re-activates the active room;
    - `nick NICK is in use` while logging back in means the old connection is still held (a
      node that died keeps the nick in the cluster registry for up to 30 s; a standalone
      server that has not noticed a dead connection yet, when the token did not get us in):
      the client retries with backoff (1 s up to 5 s) until it gets in. On the very first
      login it does not retry (someone else has that nick) and the user picks another with
      `/nick`;
    - when the nick's owner logs in from another connection (`* NICK logged in from another
      connection; this one is closed.`) the client does not reconnect by itself (two windows
      would take the nick from each other for ever): it waits for `reconnect()` (or a typed
      `/reconnect`);
    - lines sent while not logged in are queued (up to MAX_QUEUED) and sent in order once
      logged in (after the re-joins), except `/nick`, `/help` and `/quit`, which go out at once
      when connected. `/quit` closes the client like `close()`.
    """

    def __init__(
        self,
        servers: Sequence[Server],
        nick: str,
        *,
        password: Optional[str] = None,
        backoff: Optional[Backoff] = None,
        nick_backoff: Optional[Backoff] = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        if not servers:
            raise ValueError("at least one server is needed")
        self.servers = list(servers)
        self.events: queue.Queue[ClientEvent] = queue.Queue()
        self.backoff = backoff or Backoff()
        self.nick_backoff = nick_backoff or Backoff(base=1.0, cap=5.0)
        self.connect_timeout = connect_timeout
        self._requests: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="chat-network", daemon=True)
        self._lock = threading.Lock()
        self._snapshot: tuple[Status, RoomState] = (Status(CONNECTING), RoomState())
        # Owned by the network thread from here on.
        self._desired_nick = nick
        self._state = RoomState()
        self._target: Optional[RoomState] = None  # rooms to get back after a reconnect
        self._ever_logged_in = False
        self._logged_in = False
        self._queue: list[str] = []
        self._status = Status(CONNECTING, nick=nick)
        self._sock: Optional[socket.socket] = None
        self._out = bytearray()
        self._nick_attempts = 0
        self._nick_retry_at: Optional[float] = None
        self._connect_errors: set[str] = set()
        # Secrets: never put into an event, a status or a notice.
        self._password = password or None
        self._password_refused = False  # the server said it is wrong: do not send it again
        self._token: Optional[tuple[str, str]] = None  # (nick, token) from the last `/token`
        self._login_secret = ""  # what the login in flight carries: "", "token" or "password"
        self._token_requests = 0  # our own `/token`s not answered yet
        self._account_changes: deque[tuple[str, Optional[str]]] = deque()  # typed, unanswered
        self._nick_secret: Optional[tuple[str, str]] = None  # a typed `/nick NAME SECRET`
        self._taken_over = False  # the nick's owner logged in elsewhere: wait for the user
        self._reconnect_now = False

    # ---- the GUI thread's side ---------------------------------------------------------------

    def start(self) -> None:
        """Starts the network thread."""
        self._thread.start()

    def send(self, line: str) -> None:
        """Sends a line as typed (commands pass through as they are); never blocks.

        `/reconnect` is the client's own: it ends a stop after a takeover, or a wait between
        connection attempts.
        """
        self._request("send", line)

    def set_login(self, nick: str, password: Optional[str]) -> None:
        """Sets the nick and password to log in with (None or "": no password) and, if the
        server is waiting for a login, logs in with them now."""
        self._request("login", (nick, password))

    def reconnect(self) -> None:
        """Connects again at once: after a takeover stopped the client, or instead of waiting
        out the backoff."""
        self._request("reconnect", None)

    def close(self) -> None:
        """Sends `/quit` if connected and stops; a `Closed` event follows."""
        self._request("quit", None)

    def join(self, timeout: Optional[float] = None) -> bool:
        """Waits for the network thread to end; returns whether it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def snapshot(self) -> tuple[Status, RoomState]:
        """The latest status and room state (thread-safe copies)."""
        with self._lock:
            status, state = self._snapshot
            return status, state.copy()

    def _request(self, kind: str, payload: object) -> None:
        self._requests.put((kind, payload))
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # the pipe is full (already woken) or closed (already stopped)

    # ---- the network thread ------------------------------------------------------------------

    def _run(self) -> None:
        error = None
        try:
            self._loop()
        except _Stop:
            pass
        except Exception as failure:  # a bug: report it rather than vanish silently
            traceback.print_exc()
            error = f"{type(failure).__name__}: {failure}"
        self._set_status(Status(DISCONNECTED, nick=self._current_nick(), queued=len(self._queue)))
        self._close_socket()
        self._wake_r.close()
        self._wake_w.close()
        self.events.put(Closed(error))

    def _loop(self) -> None:
        index = 0  # the server to try next
        attempt = 0  # tries since the last connection that worked
        rounds = 0  # whole rounds of the server list that failed
        while True:
            server = self.servers[index]
            attempt += 1
            first = attempt == 1 and not self._ever_logged_in
            self._set_status(
                Status(
                    CONNECTING if first else RECONNECTING,
                    server=server,
                    nick=self._current_nick(),
                    attempt=attempt,
                    queued=len(self._queue),
                )
            )
            sock = self._connect(server)
            if sock is not None:
                reason = self._session(sock, server)
                attempt, rounds = 0, 0
                if self._taken_over:
                    self._wait_for_reconnect(server)
                    continue
                self._notice(f"Connection to {server} lost: {reason}. Reconnecting…")
                self._wait(self.backoff.delay(1), server, attempt + 1)  # the same server first
                continue
            index = (index + 1) % len(self.servers)
            if attempt % len(self.servers) == 0:  # every server failed once more
                rounds += 1
                self._wait(self.backoff.delay(rounds), self.servers[index], attempt + 1)

    def _wait(self, delay: float, server: Server, attempt: int) -> None:
        """Waits `delay` seconds before the next try (less after `reconnect()`), handling
        requests meanwhile."""
        retry_at = time.monotonic() + delay
        self._set_status(
            Status(
                RECONNECTING,
                server=server,
                nick=self._current_nick(),
                attempt=attempt,
                retry_at=retry_at,
                queued=len(self._queue),
            )
        )
        self._reconnect_now = False
        while not self._reconnect_now:
            left = retry_at - time.monotonic()
            if left <= 0:
                return
            self._wait_for_requests(left)

    def _wait_for_reconnect(self, server: Server) -> None:
        """After a takeover: stays disconnected until `reconnect()`, handling requests."""
        nick = self._current_nick()
        detail = f"{nick} logged in from another connection; /reconnect takes it back"
        self._notice(
            f"{nick} logged in from another connection, so this one stopped."
            " Type /reconnect to take the nick back here."
        )
        self._set_status(
            Status(DISCONNECTED, server=server, nick=nick, detail=detail, queued=len(self._queue))
        )
        self._reconnect_now = False
        while not self._reconnect_now:
            self._wait_for_requests(None)
        self._taken_over = False

    def _wait_for_requests(self, timeout: Optional[float]) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_r, selectors.EVENT_READ)
            if selector.select(timeout):
                self._handle_requests()

    def _connect(self, server: Server) -> Optional[socket.socket]:
        try:
            sock = socket.create_connection(
                (server.host, server.port), timeout=self.connect_timeout
            )
        except OSError as error:
            reason = f"Cannot connect to {server}: {error.strerror or error}."
            if reason not in self._connect_errors:  # say it once per outage, not every retry
                self._connect_errors.add(reason)
                self._notice(reason)
            self._handle_requests()
            return None
        self._connect_errors.clear()
        try:
            self._handle_requests()  # a close() during the connect wins
        except _Stop:
            sock.close()
            raise
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        enable_keepalive(sock)
        sock.setblocking(False)
        return sock

    def _session(self, sock: socket.socket, server: Server) -> str:
        """Runs one connection until it ends; returns why it ended."""
        self._sock = sock
        self._out = bytearray()
        self._logged_in = False
        self._nick_attempts = 0
        self._nick_retry_at = None
        self._token_requests = 0
        self._account_changes.clear()
        self._nick_secret = None
        splitter = LineSplitter()
        self._set_status(
            Status(CONNECTED, server=server, nick=self._current_nick(), queued=len(self._queue))
        )
        self._send_login()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self._wake_r, selectors.EVENT_READ)
                selector.register(sock, selectors.EVENT_READ)
                while True:
                    mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if self._out else 0)
                    selector.modify(sock, mask)
                    timeout = None
                    if self._nick_retry_at is not None:
                        timeout = max(0.0, self._nick_retry_at - time.monotonic())
                    for key, events in selector.select(timeout):
                        if key.fileobj is self._wake_r:
                            self._handle_requests()
                            continue
                        try:
                            if events & selectors.EVENT_READ:
                                data = sock.recv(65536)
                                if not data:
                                    return "the server closed the connection"
                                for line in splitter.feed(data):
                                    self._on_line(line)
                            if events & selectors.EVENT_WRITE and self._out:
                                sent = sock.send(self._out)
                                del self._out[:sent]
                        except (BlockingIOError, InterruptedError):
                            pass  # a spurious wake-up: nothing to do this time
                    if self._nick_retry_at is not None and time.monotonic() >= self._nick_retry_at:
                        self._nick_retry_at = None
                        self._set_status(
                            dataclasses.replace(self._status, retry_at=None, refused="")
                        )
                        self._send_login()
        except OSError as error:
            return error.strerror or str(error)
        finally:
            self._close_socket()
            if self._logged_in:
                # What to get back on the next server if it does not restore our session.
                self._target = self._state.copy()
            self._logged_in = False

    def _send_login(self) -> None:
        """Logs in: `/nick NICK TOKEN` with a token for NICK, else `/nick NICK PASSWORD` with a
        password the server has not refused, else the bare `/nick NICK`."""
        nick = self._current_nick()
        if self._token is not None and name_key(self._token[0]) == name_key(nick):
            self._login_secret = "token"
            self._write(f"/nick {nick} {self._token[1]}")
        elif self._password is not None and not self._password_refused:
            self._login_secret = "password"
            self._write(f"/nick {nick} {self._password}")
        else:
            self._login_secret = ""
            self._write(f"/nick {nick}")

    def _close_socket(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def _write(self, line: str) -> None:
        self._out += (line + "\n").encode("utf-8")
        if self._sock is not None:
            try:
                sent = self._sock.send(self._out)
                del self._out[:sent]
            except (BlockingIOError, InterruptedError):
                pass  # the selector writes the rest when the socket is writable
            except OSError:
                pass  # the read side notices the broken connection

    def _handle_requests(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        while True:
            try:
                kind, payload = self._requests.get_nowait()
            except queue.Empty:
                return
            if kind == "quit":
                self._quit()
            elif kind == "login":
                nick, password = payload  # type: ignore[misc]
                self._set_login(nick, password)
            elif kind == "reconnect":
                self._reconnect_now = True
            else:
                line = str(payload)
                if command_name(line) == "quit":
                    self._quit()
                self._submit(line)

    def _set_login(self, nick: str, password: Optional[str]) -> None:
        """New login details from the user; used at once if the server waits for a login."""
        self._password = password or None
        self._password_refused = False
        if self._logged_in:
            return  # kept for the next login; a new nick is the user's `/nick`
        if valid_name(nick):
            self._desired_nick = nick
        if self._sock is not None and not self._taken_over:
            self._nick_attempts = 0
            self._nick_retry_at = None
            self._set_status(
                dataclasses.replace(
                    self._status, nick=self._current_nick(), refused="", detail="", retry_at=None
                )
            )
            self._send_login()

    def _submit(self, line: str) -> None:
        """A line from the user: sent now, or queued until we are logged in."""
        line = " ".join(
            line.splitlines()
        )  # pasted text must not become several lines (or commands)
        if not line.strip():
            return
        command = command_name(line)
        if command == "reconnect":
            self._reconnect_now = True
            if self._sock is not None:
                self._notice("Already connected; /reconnect is for when the client waits.")
            return
        connected = self._sock is not None
        if self._logged_in or (connected and command in ("nick", "help")):
            words = line.split()
            if command == "nick" and not self._logged_in and len(words) > 1:
                self._desired_nick = words[1]  # the user picked another nick to log in with
                self._nick_retry_at = None
                self._set_status(dataclasses.replace(self._status, refused="", retry_at=None))
                self._login_secret = ""
                if len(words) > 2:  # `/nick NAME PASSWORD`: the password from now on
                    self._password = line.split(None, 2)[2].strip()
                    self._password_refused = False
                    self._login_secret = "password"
            elif command == "nick" and len(words) > 2:
                if name_key(words[1]) != name_key(self._current_nick()):  # (else ignored)
                    self._nick_secret = (words[1], line.split(None, 2)[2].strip())
            elif command in ("register", "password") and len(words) > 1:
                self._account_changes.append((command, line.split(None, 1)[1].strip()))
            elif command == "unregister":
                self._account_changes.append((command, None))
            self._write(line)
            return
        shown = mask_secrets(line)
        if len(self._queue) >= MAX_QUEUED:
            self._notice(
                f"Not connected and {MAX_QUEUED} lines are already waiting; dropped: {shown}"
            )
            return
        self._queue.append(line)
        self.events.put(Queued(shown))
        self._set_status(dataclasses.replace(self._status, queued=len(self._queue)))

    def _quit(self) -> None:
        """Says `/quit` if connected, waits a little for the server to close, and stops."""
        sock = self._sock
        if sock is not None:
            deadline = time.monotonic() + QUIT_TIMEOUT
            splitter = LineSplitter()
            try:
                sock.settimeout(QUIT_TIMEOUT)
                sock.sendall(bytes(self._out) + b"/quit\n")
                while (left := deadline - time.monotonic()) > 0:
                    sock.settimeout(left)
                    data = sock.recv(65536)
                    if not data:
                        break
                    for line in splitter.feed(data):
                        if not _TOKEN_LINE.match(line):
                            self.events.put(parse_line(line))
            except OSError:
                pass  # timed out or the connection broke: we are leaving anyway
        raise _Stop

    def _on_line(self, line: str) -> None:
        event = parse_line(line)
        if isinstance(event, OwnMessage):
            event = dataclasses.replace(event, room=self._state.active)
        if self._token_line(event):
            return
        if isinstance(event, ServerError) and not self._logged_in:
            self._login_refused(event)  # shows the error, or not, and decides what comes next
        else:
            self.events.put(event)
        if self._state.apply(event):
            self._publish_rooms()
        if isinstance(event, Welcome):
            self._logged_in_as(event)
        elif isinstance(event, NickChanged):
            self._desired_nick = event.new
            self._adopt_nick_secret(event.new)
            self._set_status(dataclasses.replace(self._status, nick=event.new))
            self._request_token()  # a token is for one nick
        elif isinstance(event, (Notice, ServerError)) and self._logged_in:
            self._owned_nick_line(event)

    def _token_line(self, event: ServerLine) -> bool:
        """Keeps a resume token, and hides it and the answers to our own `/token`; returns
        whether `event` is such a line (not to be reported)."""
        match = _TOKEN_LINE.match(event.raw)
        if match:
            self._token = (self._state.nick or self._current_nick(), match[1])
            if self._token_requests > 0:
                self._token_requests -= 1
            else:  # the user typed /token
                self._notice(
                    "Got a resume token; the client keeps it to get back in after a dropped"
                    " connection (it is a secret, so it is not shown)."
                )
            return True
        if self._token_requests > 0 and isinstance(event, ServerError):
            # An older server without /token, or no randomness: log in as before.
            if event.text.startswith("unknown command /token") or _AUTH_FAILED.match(event.text):
                self._token_requests -= 1
                return True
        return False

    def _request_token(self) -> None:
        """Asks for a new resume token (the last one is used up or for another nick)."""
        self._token = None
        self._token_requests += 1
        self._write("/token")

    def _adopt_nick_secret(self, nick: str) -> None:
        """A typed `/nick NICK SECRET` got us NICK: SECRET is our password from now on."""
        if self._nick_secret is not None and name_key(self._nick_secret[0]) == name_key(nick):
            self._password = self._nick_secret[1]
            self._password_refused = False
        self._nick_secret = None

    def _owned_nick_line(self, event: Union[Notice, ServerError]) -> None:
        """Follows the answers to a typed `/register`, `/password`, `/unregister` or `/nick
        NAME SECRET`, so that the password used to log back in is the one the server now
        has, and notices a takeover of our nick."""
        if isinstance(event, ServerError):
            if self._nick_secret is not None and _WRONG_PASSWORD.match(event.text):
                self._nick_secret = None
            elif self._account_changes and _ACCOUNT_ERRORS.match(event.text):
                self._account_changes.popleft()
            return
        if _TAKEN_OVER.match(event.text):
            self._taken_over = True
            return
        confirmed = (
            _REGISTERED.match(event.text)
            or _PASSWORD_CHANGED.match(event.text)
            or _UNREGISTERED.match(event.text)
        )
        if confirmed and self._account_changes:
            command, secret = self._account_changes.popleft()
            self._password = secret
            self._password_refused = False

    def _logged_in_as(self, welcome: Welcome) -> None:
        self._logged_in = True
        self._ever_logged_in = True
        self._desired_nick = welcome.nick
        self._nick_retry_at = None
        self._login_secret = ""
        self._adopt_nick_secret(welcome.nick)
        self._request_token()  # first, so its answer comes before those to the lines below
        target, self._target = self._target, None
        if target is not None and not welcome.restored:
            commands = rejoin_commands(target, self._state)
            if commands:
                rooms = (
                    ", ".join(r for r in target.rooms if not self._state.has_room(r))
                    or target.active
                )
                self._notice(f"The server did not keep your rooms; joining them again: {rooms}.")
            for command in commands:
                self._write(command)
        queued, self._queue = self._queue, []
        if queued:
            self._notice(
                f"Sending {len(queued)} line{'s' if len(queued) != 1 else ''} typed while offline."
            )
        for line in queued:
            self._submit(line)  # (so that typed passwords are followed like any other)
        self._set_status(
            dataclasses.replace(
                self._status,
                nick=welcome.nick,
                logged_in=True,
                detail="",
                refused="",
                queued=0,
                attempt=0,
                retry_at=None,
            )
        )

    def _login_refused(self, error: ServerError) -> None:
        """An error before we are logged in: the answer to our login. Reports it (unless it is
        a refused token, which is not news to the user) and decides what to do next."""
        nick = self._current_nick()
        secret, self._login_secret = self._login_secret, ""
        needs_password = f"{nick} is registered and needs its password"

        def about_us(pattern: re.Pattern[str]) -> Optional[re.Match[str]]:
            match = pattern.match(error.text)
            return match if match and name_key(match[1]) == name_key(nick) else None

        wrong_password = about_us(_WRONG_PASSWORD)
        stale_token = about_us(_STALE_TOKEN)
        if secret == "token" and (
            stale_token or wrong_password or error.nick_in_use or _AUTH_FAILED.match(error.text)
        ):
            # Not a live token (the server restarted, or it was used): for a registered nick
            # the server says so (an older server checked it as a password). Either way it is
            # of no more use.
            self._token = None
            refused = stale_token or wrong_password
            if refused and self._password is not None and not self._password_refused:
                self._notice("The saved resume token was not accepted; using the password.")
                self._send_login()
                return
            if refused:
                self._stop_login(PASSWORD_NEEDED, needs_password)
                return
        if wrong_password:
            self._password_refused = True
            self.events.put(error)
            self._stop_login(WRONG_PASSWORD, f"wrong password for {nick}")
        elif locked := about_us(_LOCKED):
            self.events.put(error)
            self._locked(nick, int(locked[2]))
        elif about_us(_NICK_REGISTERED):
            self.events.put(error)
            self._stop_login(PASSWORD_NEEDED, needs_password)
        elif _AUTH_FAILED.match(error.text) and secret:
            self.events.put(error)  # the server was too busy to check: try again in a moment
            self._retry_login(refused="the server could not check the password")
        elif (
            error.nick_in_use is not None
            and self._ever_logged_in
            and name_key(error.nick_in_use) == name_key(nick)
        ):
            # Our own old connection still holds the nick (it is not noticed dead yet, or a dead
            # cluster node's claim has not expired): try again until it is free.
            if self._nick_attempts == 0:  # (the status bar counts the retries)
                self.events.put(error)
            self._retry_login()
        elif error.nick_in_use is not None or error.text.startswith("invalid nick"):
            self.events.put(error)
            detail = f"{error.text}: choose another with /nick NAME"
            self._set_status(dataclasses.replace(self._status, detail=detail))
        else:
            self.events.put(error)

    def _retry_login(self, refused: str = "") -> None:
        """Logs in again after the nick backoff (the status bar counts down and says why)."""
        self._nick_attempts += 1
        self._nick_retry_at = time.monotonic() + self.nick_backoff.delay(self._nick_attempts)
        self._set_status(
            dataclasses.replace(
                self._status,
                attempt=self._nick_attempts + 1,
                retry_at=self._nick_retry_at,
                refused=refused,
            )
        )

    def _locked(self, nick: str, seconds: int) -> None:
        """The nick is locked for `seconds`: try once more then if we have a secret the server
        has not refused (a right one is refused too while locked), else wait for the user."""
        has_secret = self._token is not None or (
            self._password is not None and not self._password_refused
        )
        why = f"{nick} is locked after too many wrong passwords"
        self._nick_retry_at = time.monotonic() + seconds + 1 if has_secret else None
        self._set_status(
            dataclasses.replace(self._status, refused=why, retry_at=self._nick_retry_at)
        )
        self.events.put(LoginRefused(nick, LOCKED, seconds, will_retry=has_secret))

    def _stop_login(self, reason: str, why: str) -> None:
        """Stops logging in until the user gives a password: says why and reports it."""
        nick = self._current_nick()
        self._nick_retry_at = None
        self._notice(f"Not logged in: {why}. Enter it, or type /nick {nick} PASSWORD.")
        self._set_status(dataclasses.replace(self._status, refused=why, retry_at=None))
        self.events.put(LoginRefused(nick, reason))

    # ---- reporting ---------------------------------------------------------------------------

    def _current_nick(self) -> str:
        return self._state.nick if self._logged_in and self._state.nick else self._desired_nick

    def _set_status(self, status: Status) -> None:
        if status != self._status:
            self._status = status
            self.events.put(status)
        with self._lock:
            self._snapshot = (status, self._snapshot[1])

    def _publish_rooms(self) -> None:
        state = self._state.copy()
        with self._lock:
            self._snapshot = (self._snapshot[0], state)
        self.events.put(RoomsChanged(state))

    def _notice(self, text: str) -> None:
        self.events.put(ClientNotice(text))
