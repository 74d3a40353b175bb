"""The forms of APP, --chdir, --pythonpath, --preload/--no-preload."""

from __future__ import annotations

import os
import sys

import pytest

from support import APPS, EXAMPLES, REPO


def test_file_path_default_callable_relative_to_cwd(corral):
    c = corral("tests/apps/hello.py", cwd=REPO)
    r = c.get("/")
    assert (r.status, r.body) == (200, b"Hello, world!\n")


def test_file_path_with_callable(corral):
    c = corral(f"{APPS / 'hello.py'}:validated_application")
    r = c.get("/")
    assert (r.status, r.body) == (200, b"Hello, world!\n")
    assert "AssertionError" not in c.stderr_text()


def test_module_callable_with_pythonpath(corral):
    c = corral("hello:application", "--pythonpath", APPS)
    assert c.get("/").body == b"Hello, world!\n"


def test_factory_call(corral):
    c = corral("factory:make_app()", "--pythonpath", APPS, "-w", "2")
    for _ in range(4):
        r = c.get("/")
        assert r.status == 200
        assert r.body == b"Hello from the factory (call 1)\n"


def test_validated_factory(corral):
    c = corral("factory:make_validated_app()", "--pythonpath", APPS)
    assert c.get("/").status == 200
    assert "AssertionError" not in c.stderr_text()


@pytest.mark.smoke
def test_example_hello(corral):
    c = corral(EXAMPLES / "hello.py")
    r = c.get("/")
    assert (r.status, r.body) == (200, b"Hello, world!\n")


def test_chdir_sets_the_working_directory(corral, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    c = corral(f"{APPS / 'wsgi_app.py'}:application", "--chdir", workdir)
    info = c.get("/sysinfo").json()
    assert os.path.realpath(info["cwd"]) == os.path.realpath(workdir)


def test_chdir_then_relative_module(corral):
    """Like gunicorn: the --chdir directory is where a module app is imported from."""
    c = corral("hello:application", "--chdir", APPS)
    assert c.get("/").body == b"Hello, world!\n"


def test_pythonpath_is_on_sys_path(corral, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    c = corral(f"{APPS / 'wsgi_app.py'}:application", "--pythonpath", extra)
    info = c.get("/sysinfo").json()
    assert str(extra) in info["path"], info["path"]


@pytest.mark.parametrize("preload", ["--preload", "--no-preload"])
def test_preload_flags(corral, preload):
    c = corral(f"{APPS / 'wsgi_app.py'}:application", preload, "--mpm", "prefork", "-w", "2")
    for _ in range(3):
        assert c.get("/hello").status == 200


def test_missing_callable_is_a_startup_error(corral):
    c = corral(f"{APPS / 'hello.py'}:no_such_callable", wait=False)
    status = c.wait(30)
    assert status != 0
    assert "no_such_callable" in c.stderr_text()
    assert c.leftovers() == []


def test_a_worker_that_cannot_import_the_app_stops_corral_with_status_3(corral):
    """--no-preload: the workers import the app; the first failure is reported and corral
    exits with the import error (status 3), as when the zygote fails to preload it."""
    c = corral(f"{APPS / 'hello.py'}:no_such_callable", "--no-preload", wait=False)
    status = c.wait(30)
    assert status == 3, c.stderr_text()[-2000:]
    assert "no_such_callable" in c.stderr_text()
    assert c.leftovers() == []


def test_missing_file_is_a_startup_error(corral, tmp_path):
    c = corral(tmp_path / "does_not_exist.py", wait=False)
    status = c.wait(30)
    assert status != 0
    assert "does_not_exist.py" in c.stderr_text()
    assert c.leftovers() == []


def test_virtualenv_option(corral):
    """--virtualenv selects the environment explicitly (here without $VIRTUAL_ENV)."""
    c = corral(f"{APPS / 'wsgi_app.py'}:application", "--virtualenv", sys.prefix, env={"VIRTUAL_ENV": None})
    info = c.get("/sysinfo").json()
    assert os.path.realpath(info["prefix"]) == os.path.realpath(sys.prefix), info
