"""Cluster failover: two real chat-server nodes sharing a real redis-server; the client, given
both as its server list, loses its node to SIGKILL and carries on on the other one with its
rooms and active room. Takes about half a minute: the dead node's claim on the nick lives in
Redis until its 30 s TTL runs out, and the client keeps retrying `/nick` until then."""

from __future__ import annotations

import unittest

from support import ChatServer, EventLog, LineClient, Redis, core

#: The nick claim of a killed node expires within 30 s; allow plenty more.
FAILOVER_DEADLINE = 120.0


class ClusterFailoverTest(unittest.TestCase):
    def node(self, redis: Redis, name: str) -> ChatServer:
        node = ChatServer(extra=("--redis", redis.url, "--node", name))
        self.addCleanup(node.stop)
        return node

    def test_client_moves_to_the_other_node_and_gets_its_rooms_back(self) -> None:
        redis = Redis()
        self.addCleanup(redis.stop)
        a, b = self.node(redis, "a"), self.node(redis, "b")
        vasya = LineClient(b.port).login("Вася")
        self.addCleanup(vasya.close)

        client = core.ChatClient([a.address, b.address], "alice")
        log = EventLog(client)
        client.start()
        self.addCleanup(client.join, 10)
        self.addCleanup(client.close)
        self.assertFalse(log.wait_logged_in().restored)
        self.assertEqual(client.snapshot()[0].server, a.address)
        for line in ("/join dev", "/join кухня", "/join dev"):
            client.send(line)
        log.wait_rooms(["main", "dev", "кухня"], "dev")
        vasya.send("/join dev")
        log.wait_line("* [dev] Вася joined")  # across the nodes

        a.kill()
        welcome = log.wait_logged_in(timeout=FAILOVER_DEADLINE)
        self.assertEqual((welcome.nick, welcome.restored), ("alice", True))
        # The dead node's claim was still in Redis when the client reached node b: it was told
        # so and kept trying.
        refusals = [e for e in log.of_type(core.ServerError) if e.nick_in_use == "alice"]
        self.assertTrue(refusals)
        self.assertEqual(client.snapshot()[0].server, b.address)
        log.wait_rooms(["main", "dev", "кухня"], "dev")
        client.send("back, now on node b")
        vasya.expect("[dev] alice: back, now on node b")


if __name__ == "__main__":
    unittest.main()
