"""corral check, config files, environment, precedence (CLI > env > file > defaults)."""

from __future__ import annotations

import pytest

from support import APPS, run_corral

HELLO = APPS / "hello.py"
WSGI_APP = f"{APPS / 'wsgi_app.py'}:application"


def test_check_ok(tmp_path):
    res = run_corral(["check", HELLO], cwd=tmp_path)
    assert res.returncode == 0, res.stderr


def test_check_broken_app(tmp_path):
    res = run_corral(["check", APPS / "import_error.py"], cwd=tmp_path)
    assert res.returncode != 0
    assert "deliberately fails to import" in res.stderr + res.stdout


def test_check_bad_option_value(tmp_path):
    res = run_corral(["check", HELLO, "--mpm", "nosuchmpm"], cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "nosuchmpm" in res.stderr


def test_a_bad_scheduling_names_both_policies(tmp_path):
    (tmp_path / "corral.toml").write_text('scheduling = "fifo"\n')
    res = run_corral(["check", HELLO], cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "scheduling" in res.stderr and "fifo" in res.stderr, res.stderr
    assert '"batch"' in res.stderr and '"normal"' in res.stderr, res.stderr


@pytest.mark.parametrize("args", [["--workers", "many"], ["--max-body", "lots"], ["--no-such-option"]])
def test_serve_bad_cli_is_exit_2(tmp_path, args):
    res = run_corral(["serve", HELLO, "-b", "127.0.0.1:0", *args], cwd=tmp_path)
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert res.stderr.strip()


@pytest.mark.parametrize("command", ["serve", "check"])
def test_unknown_key_in_corral_toml(tmp_path, command):
    (tmp_path / "corral.toml").write_text('wokers = 2\n')
    res = run_corral([command, HELLO, "-b", "127.0.0.1:0"], cwd=tmp_path)
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "wokers" in res.stderr
    assert "corral.toml" in res.stderr
    assert "workers" in res.stderr.replace("wokers", ""), "the closest valid key must be suggested"


def test_unknown_key_in_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\n\n[tool.corral]\nmax-bdy = "1KiB"\n')
    res = run_corral(["serve", HELLO, "-b", "127.0.0.1:0"], cwd=tmp_path)
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "max-bdy" in res.stderr
    assert "pyproject.toml" in res.stderr
    assert "max-body" in res.stderr


def test_unknown_key_in_explicit_config_file(tmp_path):
    conf = tmp_path / "conf" / "site.toml"
    conf.parent.mkdir()
    conf.write_text('threds = 4\n')
    res = run_corral(["serve", HELLO, "-b", "127.0.0.1:0", "--config", conf], cwd=tmp_path)
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "threds" in res.stderr and "site.toml" in res.stderr and "threads" in res.stderr.replace("threds", "")


def _post_status(c, size):
    return c.http("POST", "/echo", body=b"x" * size).status


def test_max_body_from_corral_toml(corral, tmp_path):
    (tmp_path / "corral.toml").write_text('max-body = "1KiB"\n')
    c = corral(WSGI_APP, cwd=tmp_path)
    assert _post_status(c, 1000) == 200
    assert _post_status(c, 2000) == 413


def test_max_body_from_pyproject(corral, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\n\n[tool.corral]\nmax-body = "1KiB"\n')
    c = corral(WSGI_APP, cwd=tmp_path)
    assert _post_status(c, 1000) == 200
    assert _post_status(c, 2000) == 413


def test_env_beats_file(corral, tmp_path):
    (tmp_path / "corral.toml").write_text('max-body = "1KiB"\n')
    c = corral(WSGI_APP, cwd=tmp_path, env={"CORRAL_MAX_BODY": "4KiB"})
    assert _post_status(c, 2000) == 200
    assert _post_status(c, 8000) == 413


def test_cli_beats_env_and_file(corral, tmp_path):
    (tmp_path / "corral.toml").write_text('max-body = "1KiB"\n')
    c = corral(WSGI_APP, "--max-body", "16KiB", cwd=tmp_path, env={"CORRAL_MAX_BODY": "4KiB"})
    assert _post_status(c, 8000) == 200
    assert _post_status(c, 20000) == 413


def test_workers_precedence(corral, tmp_path):
    """workers = 2 in the file gives wsgi.multiprocess; -w 1 on the command line wins."""
    (tmp_path / "corral.toml").write_text('mpm = "prefork"\nworkers = 2\n')
    c = corral(WSGI_APP, cwd=tmp_path)
    assert c.get("/environ").json()["wsgi.multiprocess"]["value"] is True
    c.stop()
    c = corral(WSGI_APP, cwd=tmp_path, env={"CORRAL_WORKERS": "1"})
    assert c.get("/environ").json()["wsgi.multiprocess"]["value"] is False
    c.stop()
    c = corral(WSGI_APP, "-w", "2", cwd=tmp_path, env={"CORRAL_WORKERS": "1"})
    assert c.get("/environ").json()["wsgi.multiprocess"]["value"] is True


def test_app_from_config_file(corral, tmp_path):
    (tmp_path / "corral.toml").write_text(f'app = "{HELLO}"\n')
    c = corral(None, cwd=tmp_path)
    assert c.get("/").body == b"Hello, world!\n"


def test_explicit_config_file(corral, tmp_path):
    conf = tmp_path / "elsewhere" / "corral-prod.toml"
    conf.parent.mkdir()
    conf.write_text(f'app = "{WSGI_APP}"\nmax-body = "1KiB"\n')
    c = corral(None, "--config", conf, cwd=tmp_path)
    assert _post_status(c, 2000) == 413


def test_check_validates_config_file(tmp_path):
    (tmp_path / "corral.toml").write_text(f'app = "{HELLO}"\nworkers = 2\n')
    res = run_corral(["check"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
