"""Real frameworks: the Flask and Django examples, under both MPMs."""

from __future__ import annotations

import http.cookies
import re
import urllib.parse

import pytest

from support import EXAMPLES, MPMS, assert_clean_stderr


@pytest.fixture(params=list(MPMS))
def mpm_args(request):
    return MPMS[request.param]


@pytest.mark.smoke
def test_flask_example(corral, mpm_args):
    c = corral(f"{EXAMPLES / 'flask_app' / 'app.py'}:app", *mpm_args)
    r = c.get("/")
    assert r.status == 200
    assert r.body == b"Hello from Flask!\n"
    assert r.header("Content-Type").startswith("text/plain")

    r = c.get("/json")
    assert r.status == 200
    assert r.header("Content-Type") == "application/json"
    data = r.json()
    assert data["framework"] == "flask" and data["items"] == [1, 2, 3]
    assert data["pid"] in c.descendants()

    r = c.get("/hello/%3Cworld%3E")
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/html")
    assert "<h1>Hello, &lt;world&gt;!</h1>" in r.text  # template rendered, autoescaped

    assert c.get("/missing").status == 404
    assert_clean_stderr(c.stderr_text())


def test_flask_example_default_callable(corral):
    c = corral(EXAMPLES / "flask_app" / "app.py")
    assert c.get("/").body == b"Hello from Flask!\n"


def _cookies(resp) -> dict:
    jar = {}
    for value in resp.header_all("Set-Cookie"):
        c = http.cookies.SimpleCookie()
        c.load(value)
        for k, morsel in c.items():
            jar[k] = morsel.value
    return jar


@pytest.mark.smoke
def test_django_example_notes(corral, tmp_path, mpm_args):
    db = tmp_path / "data" / "notes.sqlite3"
    c = corral(
        "django_site.wsgi:application",
        "--pythonpath",
        EXAMPLES / "django_site",
        *mpm_args,
        env={"DJANGO_SITE_DB": db},
    )
    assert db.exists(), "wsgi.py must create the database at startup"

    r = c.get("/")
    assert r.status == 200
    assert "<h1>Notes</h1>" in r.text
    assert "No notes yet." in r.text

    # the form: a CSRF token in the page and a csrftoken cookie
    r = c.get("/new/")
    assert r.status == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', r.text)
    assert token, r.text
    cookie = _cookies(r).get("csrftoken")
    assert cookie, r.headers

    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1), "text": "served by corral <3"})
    r = c.http(
        "POST",
        "/new/",
        body=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={cookie}"},
    )
    assert r.status == 302, r
    location = r.header("Location")
    assert location in ("/", f"http://127.0.0.1:{c.port}/"), location

    r = c.get(urllib.parse.urlsplit(location).path or "/")
    assert r.status == 200
    assert "<li>served by corral &lt;3</li>" in r.text
    assert "No notes yet." not in r.text

    # the list is the same whichever worker answers
    for _ in range(4):
        assert "served by corral &lt;3" in c.get("/").text

    # POST without a token: Django's CSRF protection answers 403, nothing is saved
    r = c.http(
        "POST",
        "/new/",
        body=b"text=forged",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status == 403
    assert "forged" not in c.get("/").text
    assert_clean_stderr(c.stderr_text())


def test_django_example_without_preload(corral, tmp_path):
    """Every worker imports (and migrates) on its own: the migration lock holds."""
    db = tmp_path / "notes.sqlite3"
    c = corral(
        "django_site.wsgi:application",
        "--pythonpath",
        EXAMPLES / "django_site",
        "--no-preload",
        "--mpm",
        "prefork",
        "-w",
        "2",
        env={"DJANGO_SITE_DB": db},
    )
    for _ in range(4):
        assert c.get("/").status == 200
    assert_clean_stderr(c.stderr_text())


def test_readme_style_invocations(corral, tmp_path):
    """The forms the README shows: --chdir into the project, module without callable."""
    c = corral("app:app", "--chdir", EXAMPLES / "flask_app")
    assert c.get("/").body == b"Hello from Flask!\n"
    c = corral(
        "django_site.wsgi",
        "--chdir",
        EXAMPLES / "django_site",
        env={"DJANGO_SITE_DB": tmp_path / "readme.sqlite3"},
    )
    r = c.get("/")
    assert r.status == 200 and "<h1>Notes</h1>" in r.text
