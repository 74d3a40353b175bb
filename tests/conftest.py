"""pytest configuration of corral's integration tests.

Run from the repository root, in a virtualenv made with the same Python that
corral was built against:

    python3 -m venv .venv-test && .venv-test/bin/pip install -r tests/requirements.txt
    cargo build && .venv-test/bin/pytest tests

The binary is $CORRAL_BIN, else target/debug/corral. If it is missing the whole
session fails (it is never skipped).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

import support
from support import Corral


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "app_errors: the test expects app tracebacks on corral's stderr"
    )


def pytest_sessionstart(session):
    if session.config.option.collectonly:
        return
    binary = support.corral_bin()
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.exit(
            f"corral binary not found or not executable: {binary}\n"
            "Build it first (cargo build -p corral) or point CORRAL_BIN at it.",
            returncode=1,
        )


class _Starter:
    """Starts corral processes and kills every one of them (by pid) at teardown."""

    def __init__(self, default_cwd):
        self.default_cwd = default_cwd
        self.started: list[Corral] = []

    def __call__(self, app=None, *args, cwd=None, env=None, bind=("127.0.0.1:0",), wait=True, command="serve"):
        c = Corral(app, args, cwd=cwd or self.default_cwd, env=env, bind=bind, command=command)
        self.started.append(c)
        c.start()
        if wait:
            c.wait_ready()
        return c

    def cleanup(self):
        for c in self.started:
            c.kill()


@pytest.fixture
def short_dir():
    """A directory with a short path, for Unix sockets (sun_path holds 108 bytes)."""
    d = Path(tempfile.mkdtemp(prefix="corral-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def corral(tmp_path):
    """Factory: ``corral(app, *args, cwd=None, env=None, bind=(...), wait=True)``.

    Returns a started (and, unless wait=False, ready) :class:`support.Corral`.
    The default working directory is the test's tmp_path, so no stray
    corral.toml or pyproject.toml is picked up.
    """
    starter = _Starter(tmp_path)
    yield starter
    starter.cleanup()


@pytest.fixture(scope="module")
def module_corral(tmp_path_factory):
    """Like ``corral`` but module-scoped, for servers shared by several tests."""
    starter = _Starter(tmp_path_factory.mktemp("corral-cwd"))
    yield starter
    starter.cleanup()
