"""Fixture: an app module that fails at import time.

corral must print this traceback, exit with status 3 and not respawn.
"""

raise RuntimeError("import_error fixture: this module deliberately fails to import")


def application(environ, start_response):  # never reached
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"unreachable\n"]
