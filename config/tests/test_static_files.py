"""The production path serves its own static files: gunicorn, DEBUG off, after `collectstatic` (README "Production").

Without WhiteNoise such a server answers 404 for /static/ and the admin renders with no CSS unless a proxy rule
serves the folder. These tests run the README's steps in a subprocess with a minimal production environment
(config.settings, not the test settings): collectstatic into a temporary STATIC_ROOT, then gunicorn on a free
port, and read the admin's stylesheet the way a browser does.
"""

import http.client
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
YEAR = "max-age=315360000"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def get(port: int, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    response.read()
    return response


class Site:
    def __init__(self, port: int, static_root: Path) -> None:
        self.port = port
        self.static_root = static_root

    def get(self, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        return get(self.port, path, headers)

    def read(self, path: str) -> tuple[http.client.HTTPResponse, str]:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=10)
        connection.request("GET", path)
        response = connection.getresponse()
        return response, response.read().decode()

    def hashed(self, name: str) -> str:
        return json.loads((self.static_root / "staticfiles.json").read_text())["paths"][name]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    work = tmp_path_factory.mktemp("static-site")
    static_root = work / "static"
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "ALLOWED_HOSTS": HOST,
            "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}",
            "STATIC_ROOT": str(static_root),
            "LOG_DIR": str(work / "logs"),
        }
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    # no migrate: nothing here reads the database
    port = free_port()
    log = (work / "gunicorn.log").open("ab")
    command = [str(BIN / "gunicorn"), "config.wsgi:application", "--workers", "1", "--bind", f"{HOST}:{port}"]
    command += ["--no-control-socket"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:  # up when it answers at all; what it answers is the tests' business
            assert process.poll() is None, (work / "gunicorn.log").read_text()
            try:
                get(port, "/health/")
                break
            except OSError:
                assert time.monotonic() < deadline, (work / "gunicorn.log").read_text()
                time.sleep(0.2)
        yield Site(port, static_root)
    finally:
        process.terminate()
        process.wait(15)
        log.close()


def test_the_admin_stylesheet_is_served_under_its_hashed_name_cached_for_a_year(site):
    hashed = site.hashed("admin/css/base.css")
    assert hashed != "admin/css/base.css"

    response = site.get(f"/static/{hashed}")

    assert response.status == 200
    assert response.getheader("Content-Type").startswith("text/css")
    assert YEAR in response.getheader("Cache-Control")
    assert "immutable" in response.getheader("Cache-Control")


def test_a_browser_that_accepts_gzip_gets_the_compressed_copy(site):
    response = site.get(f"/static/{site.hashed('admin/css/base.css')}", {"Accept-Encoding": "gzip"})

    assert response.status == 200
    assert response.getheader("Content-Encoding") == "gzip"
    assert response.getheader("Content-Type").startswith("text/css")


def test_the_plain_name_is_served_too_but_not_cached_for_long(site):
    response = site.get("/static/admin/css/base.css")

    assert response.status == 200
    assert response.getheader("Content-Type").startswith("text/css")
    assert YEAR not in (response.getheader("Cache-Control") or "")


def test_a_static_name_that_was_never_collected_is_404(site):
    assert site.get("/static/admin/css/no-such-file.css").status == 404


def test_the_admin_login_page_links_stylesheets_that_load_and_its_policy_allows(site):
    response, html = site.read("/admin/login/")
    assert response.status == 200

    stylesheets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', html)
    assert f"/static/{site.hashed('admin/css/base.css')}" in stylesheets
    for href in stylesheets:
        assert href.startswith("/static/"), href  # same origin: what style-src 'self' allows
        sheet = site.get(href)
        assert (sheet.status, sheet.getheader("Content-Type").split(";")[0]) == (200, "text/css"), href
    policy = dict(
        directive.strip().split(" ", 1) for directive in response.getheader("Content-Security-Policy").split(";")
    )
    assert "'self'" in policy["style-src"].split()
