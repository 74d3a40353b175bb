"""Slow clients for the "slowclients" scenario: N idle connections that dribble a request head.

Each connection sends "GET / HTTP/1.1" and a Host header, then one more byte of a never-ending
header every INTERVAL seconds (with jitter), and never finishes the head. A connection that the
server closes (e.g. a 408 after a header timeout) is reopened after a short pause, so the server
keeps facing N of them. Runs until SIGTERM/SIGINT or --duration, then prints one JSON line of
counters. On stdout, "READY <open>" is printed once the ramp-up is over (or --ramp-timeout passed).

It is one epoll loop over non-blocking sockets with a heap of deadlines, not asyncio: it runs on a
CPU the measured server or wrk also uses, so its own cost must stay small next to theirs. It wakes
once per byte it sends (never in batches, so the server sees the bytes arrive one by one, as from
real clients), and each wake-up costs a few microseconds. The asyncio version it replaced took 4 %
of a CPU for the same 333 bytes a second, and its cache footprint slowed the server beside it.

Usage: python slowclients.py --port 18100 [--conns 1000] [--interval 3] [--duration 120]
"""
import argparse
import errno
import heapq
import json
import random
import resource
import select
import signal
import socket
import sys
import time

HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
DRIBBLE = b"X-Slow-Client: still-typing\r\n"
CONNECT_TIMEOUT = 5.0
RETRY_AFTER_CONNECT_ERROR = 1.0
REOPEN_AFTER_CLOSE = 0.5
RAMP_BATCH, RAMP_PAUSE = 50, 0.05
# Upper bound on one epoll wait, so that a stop signal is noticed promptly.
MAX_WAIT = 0.5


class Stats:
    def __init__(self):
        self.open = 0
        self.peak = 0
        self.opened = 0
        self.closed_by_server = 0
        self.connect_errors = 0


class Conn:
    """One client socket: connecting until its head is sent, then dribbling."""

    def __init__(self, sock):
        self.sock = sock
        self.connected = False
        self.sent = 0  # dribble bytes sent


class SlowClients:
    def __init__(self, port, interval):
        self.addr = ("127.0.0.1", port)
        self.interval = interval
        self.rnd = random.Random()
        self.stats = Stats()
        self.epoll = select.epoll()
        self.conns = {}  # fd -> Conn
        # (due, seq, action, fd, conn): action "open" (fd unused), "byte", or "connect-timeout"
        self.timers = []
        self.seq = 0

    def at(self, due, action, conn=None):
        self.seq += 1
        heapq.heappush(self.timers, (due, self.seq, action, conn))

    def open(self, now):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        err = sock.connect_ex(self.addr)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self.stats.connect_errors += 1
            self.at(now + RETRY_AFTER_CONNECT_ERROR, "open")
            return
        conn = Conn(sock)
        self.conns[sock.fileno()] = conn
        self.epoll.register(sock.fileno(), select.EPOLLOUT)
        self.at(now + CONNECT_TIMEOUT, "connect-timeout", conn)

    def on_connected(self, conn, now):
        err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err != 0 or not self.send(conn, HEAD):
            self.drop(conn)
            self.stats.connect_errors += 1
            self.at(now + RETRY_AFTER_CONNECT_ERROR, "open")
            return
        conn.connected = True
        self.epoll.modify(conn.sock.fileno(), select.EPOLLIN)
        self.stats.open += 1
        self.stats.opened += 1
        self.stats.peak = max(self.stats.peak, self.stats.open)
        self.schedule_byte(conn, now)

    def schedule_byte(self, conn, now):
        self.at(now + self.interval * self.rnd.uniform(0.7, 1.3), "byte", conn)

    def send(self, conn, data):
        try:
            return conn.sock.send(data) == len(data)
        except OSError:
            return False

    def drop(self, conn):
        fd = conn.sock.fileno()
        if self.conns.get(fd) is conn:
            del self.conns[fd]
            self.epoll.unregister(fd)
        if conn.connected:
            self.stats.open -= 1
            conn.connected = False
        conn.sock.close()

    def closed_by_server(self, conn, now):
        self.stats.closed_by_server += 1
        self.drop(conn)
        self.at(now + REOPEN_AFTER_CLOSE, "open")

    def on_readable(self, conn, now):
        """The server answered (e.g. a 408): read on until it closes."""
        try:
            data = conn.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.closed_by_server(conn, now)

    def on_timer(self, action, conn, now):
        if action == "open":
            self.open(now)
        elif conn.sock.fileno() < 0 or self.conns.get(conn.sock.fileno()) is not conn:
            return  # that connection is gone
        elif action == "connect-timeout":
            if not conn.connected:
                self.drop(conn)
                self.stats.connect_errors += 1
                self.at(now + RETRY_AFTER_CONNECT_ERROR, "open")
        elif action == "byte":
            i = conn.sent % len(DRIBBLE)
            if self.send(conn, DRIBBLE[i:i + 1]):
                conn.sent += 1
                self.schedule_byte(conn, now)
            else:
                self.closed_by_server(conn, now)

    def run(self, conns, duration, ramp_timeout, stop):
        start = time.monotonic()
        end = start + duration
        for i in range(conns):  # ramp up in batches so that the accept queue keeps up
            self.at(start + (i // RAMP_BATCH) * RAMP_PAUSE, "open")
        ready_by = start + ramp_timeout
        ready = False
        while not stop and time.monotonic() < end:
            now = time.monotonic()
            if not ready and (self.stats.open >= conns or now >= ready_by):
                print(f"READY {self.stats.open}", flush=True)
                ready = True
            wait = MAX_WAIT
            if self.timers:
                wait = min(wait, max(0.0, self.timers[0][0] - now))
            for fd, events in self.epoll.poll(wait):
                conn = self.conns.get(fd)
                if conn is None:
                    continue
                if conn.connected:
                    self.on_readable(conn, time.monotonic())
                elif events & (select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP):
                    self.on_connected(conn, time.monotonic())
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, action, conn = heapq.heappop(self.timers)
                self.on_timer(action, conn, now)
        open_at_stop = self.stats.open
        for conn in list(self.conns.values()):
            self.drop(conn)
        return open_at_stop


def main(args):
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))
    clients = SlowClients(args.port, args.interval)
    open_at_stop = clients.run(args.conns, args.duration, args.ramp_timeout, stop)
    s = clients.stats
    print(json.dumps({"target": args.conns, "open_at_stop": open_at_stop, "peak": s.peak,
                      "opened": s.opened, "closed_by_server": s.closed_by_server,
                      "connect_errors": s.connect_errors}), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--conns", type=int, default=1000)
    p.add_argument("--interval", type=float, default=3.0, help="seconds between header bytes")
    p.add_argument("--duration", type=float, default=600.0, help="hard limit on the run time")
    p.add_argument("--ramp-timeout", type=float, default=20.0)
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, a.conns + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    main(a)
    sys.exit(0)
