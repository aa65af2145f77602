"""The GUI-free client against the real chat-server binary on a free loopback port: chatting,
a server killed and restarted on the same port, a dropped connection, input typed while
disconnected, and nicks that are taken."""

from __future__ import annotations

import unittest

from support import ChatServer, EventLog, LineClient, Proxy, core, wait_until


class ClientAgainstServerTest(unittest.TestCase):
    """Each test starts its own server (and proxy) and stops everything afterwards."""

    def start_server(self) -> ChatServer:
        server = ChatServer()
        self.addCleanup(server.stop)
        return server

    def start_client(self, port: int, nick: str = "alice") -> tuple[core.ChatClient, EventLog]:
        client = core.ChatClient([core.Server("127.0.0.1", port)], nick)
        log = EventLog(client)
        client.start()
        self.addCleanup(client.join, 10)
        self.addCleanup(client.close)
        return client, log

    def other_user(self, port: int, nick: str) -> LineClient:
        user = LineClient(port).login(nick)
        self.addCleanup(user.close)
        return user

    def join_rooms(self, client: core.ChatClient, log: EventLog) -> None:
        """alice ends up in main, dev and кухня with dev active."""
        for line in ("/join dev", "/join кухня", "/join dev"):
            client.send(line)
        log.wait_rooms(["main", "dev", "кухня"], "dev")

    def in_rooms_behind_proxy(self) -> tuple[core.ChatClient, EventLog, ChatServer, Proxy]:
        """alice logged in through a proxy the test can cut, in her three rooms."""
        server = self.start_server()
        proxy = Proxy(server.port)
        self.addCleanup(proxy.stop)
        client, log = self.start_client(proxy.port)
        log.wait_logged_in()
        self.join_rooms(client, log)
        return client, log, server, proxy

    def test_chat_then_server_killed_and_restarted(self) -> None:
        server = self.start_server()
        bob = self.other_user(server.port, "bob")
        client, log = self.start_client(server.port)
        self.assertEqual(log.wait_logged_in().nick, "alice")
        bob.expect("* [main] alice joined")
        self.join_rooms(client, log)

        bob.send("/join dev")
        log.wait_line("* [dev] bob joined")
        client.send("привет,\nbob")  # pasted over two lines: one message
        echo = log.wait_line("You: привет, bob")
        self.assertEqual(echo.room, "dev")
        bob.expect("[dev] alice: привет, bob")
        bob.send("hi Алиса 👋")
        self.assertIsInstance(log.wait_line("[dev] bob: hi Алиса 👋"), core.RoomMessage)
        client.send("/msg bob psst")
        log.wait_line("(PM to bob) You: psst")
        bob.expect("(PM) alice: psst")
        bob.send("/msg alice back")
        self.assertEqual(
            log.wait_line("(PM) bob: back"), core.PrivateMessage("(PM) bob: back", "bob", "back")
        )

        server.kill()
        log.wait_for(
            lambda e: isinstance(e, core.Status) and e.state == core.RECONNECTING, "reconnecting"
        )
        server.start()  # same port, empty: the standalone server has forgotten every session
        welcome = log.wait_logged_in()
        self.assertEqual((welcome.nick, welcome.restored), ("alice", False))
        log.wait_for(
            lambda e: isinstance(e, core.ClientNotice) and "joining them again" in e.text,
            "the re-join notice",
        )
        log.wait_rooms(["main", "dev", "кухня"], "dev")

        # The server agrees: alice is back in her rooms, and talks in dev.
        bob = self.other_user(server.port, "bob")
        bob.send("/who dev")
        bob.expect("* Members of dev (1): alice")
        bob.send("/who кухня")
        bob.expect("* Members of кухня (1): alice")
        bob.send("/join dev")
        log.wait_line("* [dev] bob joined")
        client.send("back again")
        bob.expect("[dev] alice: back again")

    def test_dropped_connection_gets_the_saved_session_back(self) -> None:
        _client, log, _server, proxy = self.in_rooms_behind_proxy()

        proxy.cut()  # a network failure: the server sees the peer go and saves the session
        welcome = log.wait_logged_in()
        self.assertEqual(
            welcome, core.Welcome(welcome.raw, "alice", ("main", "dev", "кухня"), "dev", True)
        )
        log.wait_rooms(["main", "dev", "кухня"], "dev")
        self.assertFalse(
            [e for e in log.of_type(core.ClientNotice) if "joining them again" in e.text]
        )

    def test_lines_typed_while_disconnected_are_sent_after_reconnecting(self) -> None:
        server = self.start_server()
        client, log = self.start_client(server.port)
        log.wait_logged_in()
        self.join_rooms(client, log)

        server.kill()
        log.wait_for(
            lambda e: isinstance(e, core.Status) and e.state == core.RECONNECTING, "reconnecting"
        )
        client.send("written offline")
        client.send("/me is back")
        log.wait_for(lambda e: e == core.Queued("written offline"), "the line to be queued")
        wait_until(lambda: client.snapshot()[0].queued == 2, "two queued lines in the status")
        server.start()

        # Sent after the rooms are back, so they land in dev, where they were typed.
        echo = log.wait_line("You: written offline")
        self.assertEqual(echo.room, "dev")
        log.wait_line("You: * alice is back")
        self.assertEqual(client.snapshot()[0].queued, 0)

    def test_a_nick_held_by_someone_else_on_first_login(self) -> None:
        server = self.start_server()
        self.other_user(server.port, "alice")
        client, log = self.start_client(server.port)
        log.wait_line("! nick alice is in use")
        status = wait_until(
            lambda: client.snapshot()[0].detail and client.snapshot()[0], "the status to explain"
        )
        self.assertIn("/nick", status.detail)
        self.assertFalse(status.logged_in)
        client.send("hello")  # kept until logged in
        log.wait_for(lambda e: e == core.Queued("hello"), "the line to be queued")
        client.send("/nick alice2")
        self.assertEqual(log.wait_logged_in().nick, "alice2")
        log.wait_line("You: hello")

    def test_nick_retried_until_the_old_connection_lets_go(self) -> None:
        client, log, server, proxy = self.in_rooms_behind_proxy()

        # The connection drops and, before the client is back, someone holds the nick.
        proxy.refuse = True
        proxy.cut()
        holder = LineClient(server.port)
        self.addCleanup(holder.close)

        def took_nick() -> bool:
            holder.send("/nick alice")
            # Not "* Welcome" alone: the greeting starts so too, and taking it for the answer let
            # the client back in before the holder had the nick (when the server saw the cut late).
            answer = ("* Welcome, alice.", "* Welcome back, alice.", "! nick")
            return holder.expect(lambda line: line.startswith(answer)).startswith("* Welcome")

        wait_until(took_nick, "the other connection to get the nick")
        proxy.refuse = False
        log.wait_line("! nick alice is in use")
        wait_until(
            lambda: "still held" in client.snapshot()[0].describe(), "the status to say it retries"
        )
        holder.send("/quit")
        welcome = log.wait_logged_in()
        self.assertEqual(welcome.nick, "alice")
        log.wait_rooms(["main", "dev", "кухня"], "dev")


if __name__ == "__main__":
    unittest.main()
