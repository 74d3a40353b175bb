"""Smallest fixture app: 'Hello, world!'.

Every request is appended to the file named by $CORRALTEST_CALL_LOG (if set),
so tests can prove that a malformed request never reached the app.
"""

import os
import warnings
from wsgiref.validate import WSGIWarning, validator

# In the validated variant a validator warning must fail the request visibly.
warnings.simplefilter("error", WSGIWarning)


def application(environ, start_response):
    log = os.environ.get("CORRALTEST_CALL_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}\n")
    body = b"Hello, world!\n"
    start_response(
        "200 OK",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


validated_application = validator(application)
