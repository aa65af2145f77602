#!/usr/bin/env python3
"""Fills a running chat-server with durable state for the memory and restart measurements in
BENCHMARKS.md: ROOMS rooms with MESSAGES messages each (64-byte texts, posted by 10 users who join,
post and leave), then SESSIONS saved sessions (a connection that takes a nick and quits).

Usage: benches/fill-state.py HOST:PORT [--rooms 1000] [--messages 200] [--sessions 100000]
Loopback only; it stops when everything is sent and answered.
"""
import argparse
import socket
import threading
import time

POSTERS = 10
SESSION_THREADS = 8


def connect(addr):
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock, sock.makefile("rb")


def post(addr, user, rooms, messages):
    """One user posts MESSAGES lines in each of its rooms; returns when the server has read all."""
    sock, lines = connect(addr)
    lines.readline()
    sock.sendall(f"/nick poster{user}\n".encode())
    lines.readline()
    done = threading.Event()

    def drain():
        for line in lines:
            if line.startswith(b"* Rooms ("):
                break
        done.set()

    threading.Thread(target=drain, daemon=True).start()
    for room in rooms:
        batch = [f"/join h{room}\n"]
        for n in range(messages):
            text = f"room h{room} message {n} "
            batch.append(text + "x" * (64 - len(text)) + "\n")
        batch.append(f"/leave h{room}\n")
        sock.sendall("".join(batch).encode())
    sock.sendall(b"/rooms\n")
    done.wait()
    sock.close()


def sessions(addr, first, count):
    for i in range(first, first + count):
        sock, lines = connect(addr)
        sock.sendall(f"/nick saved{i}\n/quit\n".encode())
        while lines.readline():
            pass
        sock.close()


def run(threads):
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("addr")
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=100_000)
    args = parser.parse_args()
    started = time.time()
    run([threading.Thread(target=post,
                          args=(args.addr, u, range(u, args.rooms, POSTERS), args.messages))
         for u in range(POSTERS)])
    print(f"{args.rooms} rooms x {args.messages} messages in {time.time() - started:.1f} s")
    started = time.time()
    share = args.sessions // SESSION_THREADS
    run([threading.Thread(target=sessions,
                          args=(args.addr, t * share,
                                share if t < SESSION_THREADS - 1
                                else args.sessions - t * share))
         for t in range(SESSION_THREADS)])
    print(f"{args.sessions} saved sessions in {time.time() - started:.1f} s")


if __name__ == "__main__":
    main()
