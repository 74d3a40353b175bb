"""download: sends bench/.data/download-100m.bin (100 MiB) through wsgi.file_wrapper.

/ping answers a short 200 (readiness check). If a server offers no wsgi.file_wrapper the file is
sent in 1 MiB chunks by a generator instead (the response then says X-File-Wrapper: no).
"""
import os

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".data", "download-100m.bin")
BLOCK = 1 << 20


def _chunks(f):
    try:
        while True:
            b = f.read(BLOCK)
            if not b:
                return
            yield b
    finally:
        f.close()


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/ping":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
    f = open(PATH, "rb")
    size = os.fstat(f.fileno()).st_size
    wrapper = environ.get("wsgi.file_wrapper")
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(size)),
                              ("X-File-Wrapper", "yes" if wrapper else "no")])
    return wrapper(f, BLOCK) if wrapper else _chunks(f)
