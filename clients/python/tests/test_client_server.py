"""The GUI-free client against the real chat-server binary on a free loopback port: chatting,
a server killed and restarted on the same port, a dropped connection, input typed while
disconnected, nicks that are taken, owned nicks (resume tokens, passwords, a takeover) and the
replay of what was missed."""

from __future__ import annotations

import datetime
import re
import unittest

from support import ChatServer, EventLog, LineClient, Proxy, core, wait_until, welcomes

#: The resume tokens the server keeps per nick (docs/ACCOUNTS.md): asking for this many more
#: makes an older one stale.
TOKENS_PER_NICK = 4


def minutes_until_now(since: datetime.datetime) -> set[str]:
    """Every UTC `HH:MM` from `since` to now: the times a line sent meanwhile can carry."""
    now = datetime.datetime.now(datetime.timezone.utc)
    moment = since.replace(second=0, microsecond=0)
    minutes = set()
    while moment <= now:
        minutes.add(moment.strftime("%H:%M"))
        moment += datetime.timedelta(minutes=1)
    return minutes


class ClientAgainstServerTest(unittest.TestCase):
    """Each test starts its own server (and proxy) and stops everything afterwards."""

    def start_server(self) -> ChatServer:
        server = ChatServer()
        self.addCleanup(server.stop)
        return server

    def start_client(
        self, port: int, nick: str = "alice", password: str | None = None
    ) -> tuple[core.ChatClient, EventLog]:
        client = core.ChatClient([core.Server("127.0.0.1", port)], nick, password=password)
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
        """alice logged in through a proxy the test can cut, in her three rooms.

        The answer to the client's `/token` (asked for right after the welcome, so answered
        before the joins) has arrived by the time this returns.
        """
        server = self.start_server()
        proxy = Proxy(server.port)
        self.addCleanup(proxy.stop)
        client, log = self.start_client(proxy.port)
        log.wait_logged_in()
        self.join_rooms(client, log)
        return client, log, server, proxy

    def away(self, proxy: Proxy, witness: LineClient, nick: str = "alice") -> None:
        """Drops the client's connection and keeps it from coming back until `proxy.refuse`
        is False again; returns once `witness` (in main) saw the server notice it."""
        proxy.refuse = True
        proxy.cut()
        witness.expect(f"* [main] {nick} disconnected")

    def make_tokens_stale(self, server: ChatServer, nick: str, secret: str = "") -> None:
        """Logs in as `nick` from another connection while its client is away and asks for
        enough tokens that the client's own is no longer kept; then quits."""
        other = LineClient(server.port)
        self.addCleanup(other.close)
        other.login(nick, secret)
        for _ in range(TOKENS_PER_NICK):
            other.send("/token")
            other.expect(lambda line: line.startswith("* Resume token: "))
        other.send("/quit")
        other.expect(lambda line: line.startswith("* Bye"))

    def assert_no_secret_in(self, log: EventLog, *secrets: str) -> None:
        """No event the client reported carries a secret or a token line."""
        text = repr(log.of_type(object))
        self.assertNotIn("Resume token", text)
        for secret in secrets:
            self.assertNotIn(secret, text)

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

        # The connection drops and, before the client is back, someone holds the nick. The
        # client's resume token would take it from them: made stale here, so that the
        # client has only the nick, like after a server restart or on a cluster.
        proxy.refuse = True
        proxy.cut()
        self.make_tokens_stale(server, "alice")
        holder = LineClient(server.port)
        self.addCleanup(holder.close)
        wait_until(lambda: holder.try_login("alice"), "the other connection to get the nick")
        proxy.refuse = False
        log.wait_line("! nick alice is in use")
        wait_until(
            lambda: "still held" in client.snapshot()[0].describe(), "the status to say it retries"
        )
        holder.send("/quit")
        welcome = log.wait_logged_in()
        self.assertEqual(welcome.nick, "alice")
        log.wait_rooms(["main", "dev", "кухня"], "dev")

    def test_token_takes_the_nick_back_from_a_connection_the_server_still_holds(self) -> None:
        client, log, _server, proxy = self.in_rooms_behind_proxy()

        for drop in (1, 2):  # twice: a token works once, so the client needs a new one each time
            with self.subTest(drop=drop):
                # The network vanished without a word: the server still holds the old
                # connection, and with it the nick.
                proxy.abandon()
                welcome = log.wait_logged_in()
                self.assertEqual((welcome.nick, welcome.restored), ("alice", True))
                log.wait_rooms(["main", "dev", "кухня"], "dev")
                wait_until(proxy.held_closed, "the server to close the old connection")
                self.assertIn(
                    "* alice logged in from another connection; this one is closed.",
                    proxy.held_text(),
                )
        # In at once: never refused for a nick in use, so never retried.
        self.assertFalse([e for e in log.of_type(core.ServerError)])
        self.assertEqual(client.snapshot()[0].attempt, 0)
        self.assert_no_secret_in(log)

    def test_registered_through_the_client_then_back_with_token_or_password(self) -> None:
        client, log, server, proxy = self.in_rooms_behind_proxy()
        bob = self.other_user(server.port, "bob")
        password = "correct horse"  # (inner spaces are part of a password)
        client.send(f"/register {password}")  # typed like any line
        log.wait_line(
            "* alice is now registered: from now on /nick alice PASSWORD logs in as alice."
        )
        bob.send("/nick alice")
        bob.expect("! nick alice is registered; use /nick alice PASSWORD")

        # A dropped connection: back in with the token.
        proxy.cut()
        self.assertTrue(log.wait_logged_in().restored)

        # Away while the nick logs in elsewhere and the client's token goes stale: the server
        # checks it as a password and refuses it; the client falls back to the password.
        self.away(proxy, bob)
        self.make_tokens_stale(server, "alice", password)
        proxy.refuse = False
        log.wait_for(
            lambda e: isinstance(e, core.ClientNotice) and "token was not accepted" in e.text,
            "the fallback to the password",
        )
        welcome = log.wait_logged_in()
        self.assertEqual((welcome.nick, welcome.restored), ("alice", True))
        log.wait_rooms(["main", "dev", "кухня"], "dev")
        self.assertFalse(log.of_type(core.ServerError))  # the refused token is not news
        self.assertFalse(log.of_type(core.LoginRefused))

        # /password changes the password the client logs back in with.
        client.send("/password n3w one")
        log.wait_line("* The password of alice is changed.")
        self.away(proxy, bob)
        self.make_tokens_stale(server, "alice", "n3w one")
        proxy.refuse = False
        self.assertTrue(log.wait_logged_in().restored)
        self.assertFalse(log.of_type(core.ServerError))
        self.assert_no_secret_in(log, password, "n3w one")

    def test_wrong_password_is_reported_once_and_not_retried(self) -> None:
        server = self.start_server()
        owner = LineClient(server.port).login("carol")
        owner.send("/register right one")
        owner.expect(lambda line: line.startswith("* carol is now registered"))
        owner.send("/join dev")
        owner.expect("* Joined dev. Active room: dev.")
        owner.send("/quit")
        owner.expect(lambda line: line.startswith("* Bye"))
        owner.close()
        proxy = Proxy(server.port)
        self.addCleanup(proxy.stop)

        client, log = self.start_client(proxy.port, "carol", password="wrong one")
        log.wait_line("! wrong password for carol")
        refused = log.wait_for(lambda e: isinstance(e, core.LoginRefused), "the refusal")
        self.assertEqual(refused, core.LoginRefused("carol", core.WRONG_PASSWORD))
        status = client.snapshot()[0]
        self.assertFalse(status.logged_in)
        self.assertEqual(status.refused, "wrong password for carol")
        self.assertEqual(status.retry_at, None)  # waiting for the user, not for a timer

        # A new connection does not send the refused password again: only the bare nick.
        proxy.cut()
        log.wait_line("! nick carol is registered; use /nick carol PASSWORD")
        refused = log.wait_for(lambda e: isinstance(e, core.LoginRefused), "the second refusal")
        self.assertEqual(refused.reason, core.PASSWORD_NEEDED)
        wrong = [e for e in log.of_type(core.ServerError) if "wrong password" in e.text]
        self.assertEqual(len(wrong), 1)

        client.set_login("carol", "right one")  # what the window's dialog does
        welcome = log.wait_logged_in()
        self.assertEqual(
            (welcome.nick, welcome.restored, welcome.rooms), ("carol", True, ("main", "dev"))
        )
        self.assertEqual(client.snapshot()[0].refused, "")
        self.assertFalse([e for e in log.of_type(core.ServerError) if "too many" in e.text])
        self.assert_no_secret_in(log, "wrong one", "right one")

    def test_a_takeover_stops_the_client_until_it_is_told_to_reconnect(self) -> None:
        server = self.start_server()
        client, log = self.start_client(server.port, "carol", password="pw")
        log.wait_logged_in()
        client.send("/register pw")
        log.wait_line(
            "* carol is now registered: from now on /nick carol PASSWORD logs in as carol."
        )

        other = LineClient(server.port).login("carol", "pw")  # the owner, elsewhere
        self.addCleanup(other.close)
        log.wait_line("* carol logged in from another connection; this one is closed.")
        status = log.wait_for(
            lambda e: isinstance(e, core.Status) and e.state == core.DISCONNECTED, "the stop"
        )
        self.assertIn("/reconnect", status.detail)
        other.send("/who")  # still logged in there
        other.expect("* Members of main (1): carol")
        self.assertEqual(client.snapshot()[0].state, core.DISCONNECTED)

        client.send("/reconnect")  # take it back: the token (or the password) gets in at once
        self.assertEqual(log.wait_logged_in().nick, "carol")
        other.expect("* carol logged in from another connection; this one is closed.")

    def test_missed_messages_and_history_reach_the_client_with_their_time(self) -> None:
        client, log, server, proxy = self.in_rooms_behind_proxy()
        bob = self.other_user(server.port, "bob")
        bob.send("/join dev")
        log.wait_line("* [dev] bob joined")

        self.away(proxy, bob)
        before = datetime.datetime.now(datetime.timezone.utc)
        bob.send("while you were out")
        bob.send("/me waves")
        bob.send("/msg alice call me")
        bob.expect("* alice is away; your message will be delivered when they return.")
        minutes = minutes_until_now(before)
        proxy.refuse = False

        self.assertTrue(log.wait_logged_in().restored)
        header = log.wait_for(lambda e: core.replay_frame(e) is not None, "the missed header")
        self.assertEqual(core.replay_frame(header), core.ReplayFrame(core.MISSED, "dev", True))
        self.assertRegex(header.raw, r"^\* Missed in dev: 2 messages since \d\d:\d\d UTC\.$")
        said = log.wait_for(lambda e: isinstance(e, core.ServerLine), "the first replayed line")
        acted = log.wait_for(lambda e: isinstance(e, core.ServerLine), "the second one")
        end = log.wait_for(lambda e: isinstance(e, core.ServerLine), "the end of the block")
        self.assertIsInstance(said, core.ReplayedMessage)
        self.assertEqual(
            (said.room, said.nick, said.text, said.action),
            ("dev", "bob", "while you were out", False),
        )
        self.assertEqual(
            (acted.room, acted.nick, acted.text, acted.action), ("dev", "bob", "waves", True)
        )
        for line in (said, acted):
            self.assertIn(line.time, minutes)  # the time it was sent, in UTC
        self.assertEqual(core.replay_frame(end), core.ReplayFrame(core.MISSED, "dev", False))
        private_header = log.wait_for(lambda e: isinstance(e, core.ServerLine), "the PM header")
        self.assertEqual(
            core.replay_frame(private_header), core.ReplayFrame(core.MISSED_PRIVATE, None, True)
        )
        kept = log.wait_for(lambda e: isinstance(e, core.ServerLine), "the kept PM")
        self.assertEqual(core.ReplayedPrivate(kept.raw, kept.time, "bob", "call me"), kept)
        self.assertIn(kept.time, minutes)
        log.wait_line("* End of missed private messages.")

        # Live lines are not replayed ones, and /history answers in the same framing.
        bob.send("live again")
        self.assertIsInstance(log.wait_line("[dev] bob: live again"), core.RoomMessage)
        client.send("/history dev 2")
        log.wait_line("* History of dev: the last 2 messages.")
        first = log.wait_for(lambda e: isinstance(e, core.ServerLine), "a history line")
        second = log.wait_for(lambda e: isinstance(e, core.ServerLine), "another")
        self.assertEqual(
            [(type(e), e.text) for e in (first, second)],
            [(core.ReplayedMessage, "waves"), (core.ReplayedMessage, "live again")],
        )
        log.wait_line("* End of history of dev.")


if __name__ == "__main__":
    unittest.main()
