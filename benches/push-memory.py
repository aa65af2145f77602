#!/usr/bin/env python3
"""Pushes a running chat-server towards its memory limit while users chat, and reports what
happened: whether the server survived, how much memory it reached, whether the chat went on.

The pressure is the worst a client can legally cause: readers that stop reading. LURKERS join
one room and never read again (with a tiny receive buffer, so the kernel holds little for
them), BLASTERS fill that room with long lines as fast as the server takes them, and each
lurker's unsent output piles up in the server, up to --sendq per connection. Meanwhile
CHATTERS talk in another room and check that every line they send comes back.

Loopback only, bounded: it stops after --duration seconds or as soon as the server is gone.
benches/run-small-host.sh runs it with the server in a memory-limited cgroup;
BENCHMARKS.md ("Small hosts") has the results.
"""

import argparse
import ipaddress
import json
import os
import socket
import sys
import threading
import time


def connect(host, port, nick, room, rcvbuf=None):
    """A logged-in client in `room`; returns the socket once the join is confirmed."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(30)
    s.connect((host, port))
    s.sendall(f"/nick {nick}\n/join {room}\n".encode())
    buf = b""
    while f"* Joined {room}.".encode() not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError(f"{nick}: closed before the join: {buf[-200:]!r}")
        buf += chunk
    return s


def drain(s, stop):
    """Reads and discards until `stop` or the connection ends."""
    s.settimeout(0.5)
    while not stop.is_set():
        try:
            if not s.recv(1 << 16):
                return
        except socket.timeout:
            continue
        except OSError:
            return


def proc_state(pid):
    """(alive, VmRSS KiB, VmHWM KiB) of the server; a zombie counts as dead."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return False, None, None
    alive = not fields.get("State", "").strip().startswith("Z")
    kib = lambda key: int(fields[key].split()[0]) if key in fields else None
    return alive, kib("VmRSS"), kib("VmHWM")


def scrape(host, port):
    """The server's output gauges from its metrics endpoint, in KiB, by name (none if it does
    not answer)."""
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            text = b""
            while chunk := s.recv(65536):
                text += chunk
    except OSError:
        return None, None
    values = {}
    for line in text.decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("chat_output_"):
            values[parts[0]] = int(float(parts[1])) // 1024
    return values


def cgroup_value(cgroup, name):
    try:
        with open(f"/sys/fs/cgroup/memory/{cgroup}/{name}") as f:
            return f.read()
    except OSError:
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True, help="the server's pid, to watch")
    p.add_argument("--cgroup", help="the server's cgroup v1 memory group, to read")
    p.add_argument("--metrics-port", type=int, help="the server's --metrics port, to scrape")
    p.add_argument("--lurkers", type=int, default=200)
    p.add_argument("--blasters", type=int, default=2)
    p.add_argument("--chatters", type=int, default=10)
    p.add_argument("--line-bytes", type=int, default=1000)
    p.add_argument("--duration", type=float, default=60)
    args = p.parse_args()
    if not ipaddress.ip_address(args.host).is_loopback:
        sys.exit("push-memory: loopback addresses only")

    stop = threading.Event()
    threads = []
    result = {"lurkers": args.lurkers, "blasters": args.blasters, "chatters": args.chatters}

    # Chatters: each sends a line every 0.2 s and counts its echoes.
    sent = [0] * args.chatters
    echoed = [0] * args.chatters
    chat_errors = []

    def chatter(i, s):
        s.settimeout(5)
        buf = b""
        while not stop.is_set():
            try:
                s.sendall(f"chat {i} {sent[i]}\n".encode())
                sent[i] += 1
                deadline = time.monotonic() + 5
                while b"You: chat" not in buf:
                    if time.monotonic() > deadline:
                        raise TimeoutError("no echo within 5 s")
                    chunk = s.recv(4096)
                    if not chunk:
                        raise ConnectionError("closed")
                    buf += chunk
                echoed[i] += 1
                buf = buf[buf.index(b"You: chat") + 9 :]
            except (OSError, TimeoutError, ConnectionError) as e:
                chat_errors.append(f"chatter {i}: {e}")
                return
            stop.wait(0.2)

    chatters = [connect(args.host, args.port, f"chat{i}", "talk") for i in range(args.chatters)]
    lurkers = [
        connect(args.host, args.port, f"lurk{i}", "flood", rcvbuf=4096)
        for i in range(args.lurkers)
    ]
    blasters = [connect(args.host, args.port, f"blast{i}", "flood") for i in range(args.blasters)]
    for i, s in enumerate(chatters):
        threads.append(threading.Thread(target=chatter, args=(i, s), daemon=True))
    for s in blasters:
        threads.append(threading.Thread(target=drain, args=(s, stop), daemon=True))

    blasted = [0] * args.blasters

    def blaster(i, s):
        line = ("x" * (args.line_bytes - 1) + "\n").encode()
        batch = line * 16
        s.settimeout(1)
        while not stop.is_set():
            try:
                s.sendall(batch)
                blasted[i] += 16
            except socket.timeout:
                continue
            except OSError:
                return

    for i, s in enumerate(blasters):
        threads.append(threading.Thread(target=blaster, args=(i, s), daemon=True))
    for t in threads:
        t.start()

    start = time.monotonic()
    peak_rss = 0
    samples = []
    alive = True
    while time.monotonic() - start < args.duration:
        alive, rss, _ = proc_state(args.pid)
        if not alive:
            break
        peak_rss = max(peak_rss, rss or 0)
        usage = cgroup_value(args.cgroup, "memory.usage_in_bytes") if args.cgroup else None
        sample = [round(time.monotonic() - start, 1), rss, usage and int(usage) // 1024]
        if args.metrics_port:
            gauges = scrape(args.host, args.metrics_port)
            sample += [gauges.get("chat_output_pending_bytes"), gauges.get("chat_output_memory_bytes")]
        samples.append(sample)
        time.sleep(0.5)
    elapsed = time.monotonic() - start
    stop.set()
    _, _, hwm = proc_state(args.pid)
    output_peak = scrape(args.host, args.metrics_port).get("chat_output_memory_peak_bytes") if args.metrics_port else None

    result.update(
        {
            "server_alive_at_end": alive,
            "seconds": round(elapsed, 1),
            "server_peak_rss_kib_sampled": peak_rss,
            "server_vmhwm_kib": hwm,
            "lines_blasted": sum(blasted),
            "chat_lines_sent": sum(sent),
            "chat_lines_echoed": sum(echoed),
            "chat_errors": chat_errors[:5],
            # [seconds, VmRSS KiB, cgroup usage KiB(, output pending KiB, output memory KiB)]
            "rss_samples_every_5s": samples[::10],
            # The server's own high-water mark of its output memory (what its budget counts).
            "server_output_memory_peak_kib": output_peak,
        }
    )
    if args.cgroup:
        oom = cgroup_value(args.cgroup, "memory.oom_control") or ""
        result["cgroup_oom_kills"] = next(
            (int(l.split()[1]) for l in oom.splitlines() if l.startswith("oom_kill ")), None
        )
        peak = cgroup_value(args.cgroup, "memory.max_usage_in_bytes")
        result["cgroup_max_usage_kib"] = peak and int(peak) // 1024
        failcnt = cgroup_value(args.cgroup, "memory.failcnt")
        result["cgroup_failcnt"] = failcnt and int(failcnt)
    for s in chatters + lurkers + blasters:
        s.close()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
