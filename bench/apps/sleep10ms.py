"""sleep10ms: I/O-bound handler, blocks 10 ms in time.sleep (the GIL is released meanwhile).

Limit: N concurrent slots can serve at most N / 10 ms (2 processes: 200 req/s, 8 threads: 800).
"""
import time

BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    time.sleep(0.010)
    start_response("200 OK", HEADERS)
    return [BODY]
