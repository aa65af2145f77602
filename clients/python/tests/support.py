"""Helpers for the desktop client's tests: real processes on free loopback ports and waiting.

- `ChatServer`: the real chat-server binary (CHAT_SERVER_BIN, else release/chat-server in
  cargo's target directory), which can be killed and started again on the same port;
- `Redis`: a real redis-server without persistence, for cluster mode;
- `LineClient`: a plain socket client speaking the line protocol (the "other user");
- `Proxy`: a loopback TCP forwarder whose connections the test can cut, to drop a client's
  connection while the server stays up, or abandon, so the server still holds the old one;
- `EventLog`: collects a ChatClient's events and waits for one that matches;
- `wait_until`: polls a condition up to a generous deadline.

Every wait has a deadline (so a test stops by itself) and asserts what happened, never how fast.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
from pathlib import Path
from typing import Callable, Optional, TypeVar

CLIENT_DIR = Path(__file__).resolve().parent.parent
REPO = CLIENT_DIR.parent.parent
sys.path.insert(0, str(CLIENT_DIR))

import chat_core as core  # noqa: E402  (needs the path above)

#: Longest a test waits for one expected thing before failing.
DEADLINE = 20.0

T = TypeVar("T")


def wait_until(
    condition: Callable[[], Optional[T]],
    what: str,
    timeout: float = DEADLINE,
    pump: Optional[Callable[[], None]] = None,
) -> T:
    """Calls `condition` until it returns something truthy (returned); fails after `timeout`.

    `pump` runs between tries (e.g. a Tk window's update) instead of a plain sleep.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        if pump is not None:
            pump()
        time.sleep(0.02)


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen, name: str) -> None:
    """Waits until something accepts connections on the loopback `port`."""

    def accepts() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until(accepts, f"{name} to listen on port {port}")


def cargo_target_dir() -> Path:
    """Where cargo builds (honours CARGO_TARGET_DIR and .cargo/config); `target/` if cargo
    cannot say."""
    try:
        metadata = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps"],
            cwd=REPO,
            capture_output=True,
            check=True,
            timeout=60,
        )
        return Path(json.loads(metadata.stdout)["target_directory"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return REPO / "target"


def server_binary() -> str:
    """The chat-server binary to test against; skips the test if there is none."""
    path = os.environ.get("CHAT_SERVER_BIN") or str(cargo_target_dir() / "release" / "chat-server")
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest(f"no chat-server binary at {path} (cargo build --release)")
    return path


class ChatServer:
    """The real chat-server on 127.0.0.1; `kill()` and `start()` again keep the port."""

    def __init__(self, port: Optional[int] = None, extra: tuple[str, ...] = ()) -> None:
        self.binary = server_binary()
        self.port = port or free_port()
        self.extra = extra
        self.process: Optional[subprocess.Popen] = None
        self.start()

    @property
    def address(self) -> core.Server:
        """Where clients connect."""
        return core.Server("127.0.0.1", self.port)

    def start(self) -> None:
        """Starts the server (again) and waits until it accepts connections."""
        self.process = subprocess.Popen(
            [self.binary, "--listen", f"127.0.0.1:{self.port}", "--log-level", "warn", *self.extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        wait_listening(self.port, self.process, "chat-server")

    def kill(self) -> None:
        """SIGKILL: connections drop without a goodbye, all standalone state is lost."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=DEADLINE)
        self.process = None

    def stop(self) -> None:
        """Stops the server however it is (used in cleanups)."""
        self.kill()


class Redis:
    """A real redis-server on a free loopback port, without persistence."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise unittest.SkipTest("redis-server is not installed (./test.sh installs it)")
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        wait_listening(self.port, self.process, "redis-server")

    @property
    def url(self) -> str:
        """The URL for chat-server's --redis."""
        return f"redis://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        """Kills the server."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=DEADLINE)


class LineClient:
    """A line-protocol client over a plain socket: the other user in the tests."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        self.splitter = core.LineSplitter()
        self.lines: list[str] = []
        self.seen: list[str] = []

    def send(self, line: str) -> None:
        """Sends one line."""
        self.sock.sendall((line + "\n").encode("utf-8"))

    def expect(self, wanted: str | Callable[[str], bool], timeout: float = DEADLINE) -> str:
        """Reads lines until one equals `wanted` (or satisfies it); returns that line."""
        matches = wanted if callable(wanted) else (lambda line: line == wanted)
        deadline = time.monotonic() + timeout
        while True:
            while self.lines:
                line = self.lines.pop(0)
                self.seen.append(line)
                if matches(line):
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"never got {wanted!r}; got {self.seen[-10:]!r}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                raise AssertionError(
                    f"connection closed before {wanted!r}; got {self.seen[-10:]!r}"
                )
            self.lines.extend(self.splitter.feed(data))

    def login(self, nick: str, secret: str = "") -> LineClient:
        """Sets the nick (with a password or token if given) and waits for the welcome."""
        self.send(f"/nick {nick} {secret}".rstrip())
        self.expect(lambda line: welcomes(line, nick))
        return self

    def try_login(self, nick: str) -> bool:
        """Sends `/nick NICK`; whether the server welcomed us (else it said why not)."""
        self.send(f"/nick {nick}")
        answer = self.expect(lambda line: welcomes(line, nick) or line.startswith("! "))
        return welcomes(answer, nick)

    def close(self) -> None:
        """Closes the socket."""
        self.sock.close()


def welcomes(line: str, nick: str) -> bool:
    """Whether `line` is the server's welcome for `nick` (fresh or restored)."""
    return line.startswith((f"* Welcome, {nick}.", f"* Welcome back, {nick}."))


class Proxy:
    """A TCP forwarder on a loopback port to `target`; `cut()` drops its connections.

    To the client behind it, a cut looks like a network failure; the server sees its peer
    close and saves the session, so a reconnect gets `Welcome back`. `abandon()` drops only
    the client's side: the server still holds a live connection (like one whose network
    vanished without a word), and what it sends there is kept in `held_text()`.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.refuse = False  # while True, new connections are closed at once (the server is "away")
        self.held: dict[socket.socket, bytearray] = {}  # abandoned server sides: what came
        self.held_ended: set[socket.socket] = set()  # abandoned server sides the server closed
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            if self.refuse:
                downstream.close()
                continue
            try:
                upstream = socket.create_connection(
                    ("127.0.0.1", self.target_port), timeout=DEADLINE
                )
            except OSError:
                downstream.close()
                continue
            with self.lock:
                self.sockets += [downstream, upstream]
            for a, b in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            source.settimeout(None)
            while data := source.recv(65536):
                with self.lock:
                    held = self.held.get(source)
                    if held is not None:
                        held += data  # the server talks to a connection nobody listens to
                        continue
                try:
                    sink.sendall(data)
                except OSError:
                    with self.lock:
                        if source not in self.held:
                            break
                        self.held[source] += data
        except OSError:
            pass
        with self.lock:
            if source in self.held:
                self.held_ended.add(source)
            keep = [sock for sock in (source, sink) if sock in self.held and sock is not source]
        for sock in (source, sink):
            if sock not in keep:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def abandon(self) -> None:
        """Drops the client's side of every connection but leaves the server's side open and
        read (the server notices nothing); the client reconnects while its old connection
        still holds its nick."""
        with self.lock:
            sockets, self.sockets = self.sockets, []
            pairs = list(zip(sockets[::2], sockets[1::2]))
            for _downstream, upstream in pairs:
                self.held[upstream] = bytearray()
        for downstream, _upstream in pairs:
            try:
                downstream.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            downstream.close()

    def held_text(self) -> str:
        """What the server sent to the abandoned connections since they were abandoned."""
        with self.lock:
            return "".join(bytes(data).decode("utf-8", "replace") for data in self.held.values())

    def held_closed(self) -> bool:
        """Whether the server has closed every abandoned connection."""
        with self.lock:
            return bool(self.held) and self.held_ended >= set(self.held)

    def cut(self) -> None:
        """Drops every connection through the proxy (new ones are still accepted)."""
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def stop(self) -> None:
        """Stops accepting and drops everything."""
        self.listener.close()
        self.cut()
        with self.lock:
            held = list(self.held)
        for sock in held:
            sock.close()


class EventLog:
    """Collects the events of a ChatClient and waits for particular ones."""

    def __init__(self, client: core.ChatClient) -> None:
        self.client = client
        self.events: list[core.ClientEvent] = []
        self._checked = 0

    def _drain(self) -> None:
        while True:
            try:
                self.events.append(self.client.events.get_nowait())
            except core.queue.Empty:
                return

    def wait_for(
        self, matches: Callable[[core.ClientEvent], bool], what: str, timeout: float = DEADLINE
    ) -> core.ClientEvent:
        """The first event after the previous match that `matches`; fails after `timeout`."""

        def find() -> Optional[core.ClientEvent]:
            self._drain()
            for index in range(self._checked, len(self.events)):
                if matches(self.events[index]):
                    self._checked = index + 1
                    return self.events[index]
            return None

        try:
            return wait_until(find, what, timeout)
        except AssertionError:
            raise AssertionError(
                f"gave up waiting for {what}; last events: {self.events[-15:]!r}"
            ) from None

    def wait_line(self, raw: str, timeout: float = DEADLINE) -> core.ServerLine:
        """Waits for the server line `raw`."""
        return self.wait_for(
            lambda e: isinstance(e, core.ServerLine) and e.raw == raw, repr(raw), timeout
        )

    def wait_logged_in(self, timeout: float = DEADLINE) -> core.Welcome:
        """Waits for the next welcome (a login, first or after a reconnect)."""
        return self.wait_for(lambda e: isinstance(e, core.Welcome), "a welcome", timeout)

    def wait_rooms(
        self, rooms: list[str], active: str, timeout: float = DEADLINE
    ) -> core.RoomState:
        """Waits until the client's room state is `rooms` with `active` active."""

        def settled() -> Optional[core.RoomState]:
            self._drain()
            status, state = self.client.snapshot()
            if status.logged_in and state.rooms == rooms and state.active == active:
                return state
            return None

        try:
            return wait_until(settled, "", timeout)
        except AssertionError:
            raise AssertionError(
                f"rooms never became {rooms} with {active} active; now {self.client.snapshot()}"
            ) from None

    def of_type(self, kind: type) -> list[core.ClientEvent]:
        """All events so far of one type."""
        self._drain()
        return [e for e in self.events if isinstance(e, kind)]
