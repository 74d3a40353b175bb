"""Fixture: an application factory, served as ``factory:make_app()``."""

from wsgiref.validate import validator

CREATED = []


def make_app():
    CREATED.append(1)
    greeting = f"Hello from the factory (call {len(CREATED)})\n".encode()

    def app(environ, start_response):
        start_response(
            "200 OK",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(greeting)))],
        )
        return [greeting]

    return app


def make_validated_app():
    return validator(make_app())

