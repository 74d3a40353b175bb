"""cpu1ms: CPU-bound pure Python, about 1 ms per request on pyenv CPython 3.11 here.

The iteration count is fixed (not calibrated at start) so that every server does the same work;
the harness records the measured time per call in meta.json (cpu1ms_ms).
"""
N = 27_000
BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def burn(n=N):
    x = 0
    for i in range(n):
        x += i * i
    return x


def application(environ, start_response):
    burn()
    start_response("200 OK", HEADERS)
    return [BODY]
