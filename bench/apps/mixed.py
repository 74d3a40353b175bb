"""mixed: fast requests plus a slow path (/slow sleeps 200 ms).

lua/mixed.lua sends /slow for 5 % of requests and /fast otherwise, each with ?id=N; the app
echoes N in the X-Bench-Id header so that the script can match a response to its request and
record the latency per path.
"""
import time

HELLO = b"Hello, World!"


def application(environ, start_response):
    qs = environ.get("QUERY_STRING", "")
    rid = qs[3:] if qs.startswith("id=") else "0"
    if environ.get("PATH_INFO") == "/slow":
        time.sleep(0.200)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO))),
                              ("X-Bench-Id", rid)])
    return [HELLO]
