"""Fixture: an app module with a syntax error (corral must exit with status 3)."""


def application(environ, start_response)  # deliberately missing colon: syntax_error fixture
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"unreachable\n"]
