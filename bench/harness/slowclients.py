"""Slow clients for the "slowclients" scenario: N idle connections that dribble a request head.

Each connection sends "GET / HTTP/1.1" and a Host header, then one more byte of a never-ending
header every INTERVAL seconds (with jitter), and never finishes the head. A connection that the
server closes (e.g. a 408 after a header timeout) is reopened after a short pause, so the server
keeps facing N of them. Runs until SIGTERM/SIGINT or --duration, then prints one JSON line of
counters. On stdout, "READY <open>" is printed once the ramp-up is over (or --ramp-timeout passed).

Usage: python slowclients.py --port 18100 [--conns 1000] [--interval 3] [--duration 120]
"""
import argparse
import asyncio
import json
import random
import resource
import signal
import sys

HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
DRIBBLE = b"X-Slow-Client: still-typing\r\n"


class Stats:
    def __init__(self):
        self.open = 0
        self.peak = 0
        self.opened = 0
        self.closed_by_server = 0
        self.connect_errors = 0


async def one_client(port, interval, stats, stop):
    rnd = random.Random()
    while not stop.is_set():
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        except (OSError, asyncio.TimeoutError):
            stats.connect_errors += 1
            await wait_or_stop(stop, 1.0)
            continue
        stats.open += 1
        stats.opened += 1
        stats.peak = max(stats.peak, stats.open)
        try:
            writer.write(HEAD)
            i = 0
            while not stop.is_set():
                # wait for the next byte's turn; an EOF from the server ends the connection
                try:
                    data = await asyncio.wait_for(reader.read(4096), interval * rnd.uniform(0.7, 1.3))
                    if not data:
                        stats.closed_by_server += 1
                        break
                    continue  # e.g. a 408 response: read on until EOF
                except asyncio.TimeoutError:
                    pass
                writer.write(DRIBBLE[i % len(DRIBBLE):i % len(DRIBBLE) + 1])
                await writer.drain()
                i += 1
        except OSError:
            stats.closed_by_server += 1
        finally:
            stats.open -= 1
            writer.close()
        await wait_or_stop(stop, 0.5)


async def wait_or_stop(stop, seconds):
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


async def main(args):
    stats, stop = Stats(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.call_later(args.duration, stop.set)
    tasks = []
    for i in range(args.conns):  # ramp up in batches of 50 so that the accept queue keeps up
        tasks.append(asyncio.create_task(one_client(args.port, args.interval, stats, stop)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    deadline = loop.time() + args.ramp_timeout
    while stats.open < args.conns and loop.time() < deadline and not stop.is_set():
        await asyncio.sleep(0.1)
    print(f"READY {stats.open}", flush=True)
    await stop.wait()
    open_at_stop = stats.open
    await asyncio.wait(tasks, timeout=10)
    print(json.dumps({"target": args.conns, "open_at_stop": open_at_stop, "peak": stats.peak,
                      "opened": stats.opened, "closed_by_server": stats.closed_by_server,
                      "connect_errors": stats.connect_errors}), flush=True)


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
    asyncio.run(main(a))
    sys.exit(0)
