"""The site as production serves it, in a real browser: the Procfile's release step (collectstatic into a
STATIC_ROOT of the test's own among its steps), then its web line, a real gunicorn with DEBUG off on the test
database. The admin's, the dashboard's and Swagger UI's stylesheets and scripts are answered under their hashed
names by WhiteNoise, each loaded with a 200 and no console error; a hashed file is cached for years, and gzipped
for a browser that accepts it."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from playwright.sync_api import Request, Response, expect

from tests.browser.conftest import PASSWORD, Screen, open_screen, user
from tests.production import fetch, production_env, release, web

# A name collectstatic gave a file: its name, a dot, 12 hex digits of its content's hash, its extension.
HASHED = re.compile(r"^/static/.+\.[0-9a-f]{12}\.(css|js|svg)$")
# WhiteNoise's answer for a file whose name holds its hash: ten years, never asked for again.
FOREVER = "max-age=315360000, public, immutable"


@dataclass
class Site:
    url: str
    port: int
    static_root: Path

    def hashed(self, name: str) -> str:
        """The name collectstatic gave `name`, from the manifest it wrote."""
        return json.loads((self.static_root / "staticfiles.json").read_text())["paths"][name]


@pytest.fixture(scope="module")
def production(django_db_setup, tmp_path_factory) -> Iterator[Site]:
    """The Procfile's release step, then its web line (one worker of 4 threads), with production's settings
    except two: no redirect to https, which this plain-HTTP test server cannot answer, and ALLOWED_HOSTS the
    address it listens on. The session and CSRF cookies stay Secure, as in production: Chromium keeps Secure
    cookies from http://127.0.0.1 (a loopback address counts as a secure origin), so the login works without
    turning them off. The release's seeds are committed to the test database: the tests that use this fixture
    are transactional, so they are flushed after each."""
    directory = tmp_path_factory.mktemp("production")
    static_root = directory / "static"
    env = production_env(STATIC_ROOT=str(static_root), SECURE_SSL_REDIRECT="false")
    released = release(env)
    assert released.returncode == 0, released.stdout + released.stderr
    with web(env, directory / "gunicorn.log", workers=1) as port:
        yield Site(url=f"http://127.0.0.1:{port}", port=port, static_root=static_root)


@dataclass
class Loads:
    """What the page asked for: every answer, and the requests that got none (refused, aborted)."""

    answers: list[tuple[str, int, str]]  # resource type, status, path
    failed: list[str]

    def of(self, *types: str) -> list[tuple[int, str]]:
        return [(status, path) for kind, status, path in self.answers if kind in types]


@pytest.fixture
def production_screen(request, browser, production: Site, transactional_db) -> Iterator[tuple[Screen, Loads]]:
    with open_screen(request, browser, production.url) as opened:
        loads = Loads(answers=[], failed=[])
        prefix = len(production.url)

        def answered(response: Response) -> None:
            loads.answers.append((response.request.resource_type, response.status, response.url[prefix:]))

        def failed(request: Request) -> None:
            loads.failed.append(f"{request.resource_type} {request.url}: {request.failure}")

        opened.page.on("response", answered)
        opened.page.on("requestfailed", failed)
        yield opened, loads


def production_user(username: str, **fields):
    """A staff user whose password production's hashers accept: the suite hashes test users' passwords with a
    fast hasher (tests/conftest.py) that production's settings do not list."""
    staff = user(username, **fields)
    hasher = PBKDF2PasswordHasher()
    staff.password = hasher.encode(PASSWORD, hasher.salt())
    staff.save(update_fields=["password"])
    return staff


def test_production_serves_the_back_office_and_the_api_docs_with_their_collected_static_files(
    production_screen, market
):
    screen, loads = production_screen
    production_user("boss", is_superuser=True)
    page = screen.page

    screen.log_in("boss")  # the admin's login form, then the dashboard
    expect(page.locator("#dashboard svg.chart")).to_have_count(6)
    swatch = page.locator("#dashboard .chart-swatch.chart-colour-0").first
    # The site's stylesheet applied (leadengine/admin.css), and the admin's own (its header's colour).
    assert swatch.evaluate("node => getComputedStyle(node).backgroundColor") == "rgb(65, 118, 144)"
    assert page.locator("#header").evaluate("node => getComputedStyle(node).display") == "flex"
    screen.shot("dashboard")

    screen.goto("/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("LeadEngine API")
    expect(page.locator(".opblock").first).to_be_visible()  # Swagger UI drew the schema's operations
    screen.shot("api-docs")

    sheets_and_scripts = loads.of("stylesheet", "script")
    assert [(status, path) for status, path in sheets_and_scripts if status != 200] == []
    static = sorted({path for _status, path in sheets_and_scripts if path.startswith("/static/")})
    assert [path for path in static if not HASHED.match(path)] == []
    loaded = {re.sub(r"\.[0-9a-f]{12}\.", ".", path) for path in static}
    assert {
        "/static/admin/css/base.css",
        "/static/admin/css/login.css",
        "/static/admin/css/dashboard.css",
        "/static/leadengine/admin.css",
        "/static/leadengine/dashboard.css",
        "/static/leadengine/api_docs.css",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-standalone-preset.js",
    } <= loaded
    # Nothing else the pages asked for failed either: their images (the admin's icons, the favicon), the schema.
    assert [(kind, status, path) for kind, status, path in loads.answers if status >= 400] == []
    assert {"document", "stylesheet", "script", "image", "fetch"} <= {kind for kind, _status, _path in loads.answers}
    assert loads.failed == []
    assert screen.errors == []


def test_a_hashed_static_file_is_cached_for_years_and_gzipped_for_a_browser_that_accepts_it(
    production: Site, transactional_db
):
    name = "admin/css/base.css"
    hashed = production.hashed(name)
    content = (production.static_root / hashed).read_bytes()

    zipped = fetch(production.port, f"/static/{hashed}", {"Accept-Encoding": "gzip, deflate, br"})
    assert zipped.status == 200
    assert zipped.headers["Cache-Control"] == FOREVER
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Vary"] == "Accept-Encoding"
    assert zipped.headers.get_content_type() == "text/css"
    assert zipped.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert len(zipped.body) < len(content) / 2
    assert gzip.decompress(zipped.body) == content

    plain = fetch(production.port, f"/static/{hashed}")
    assert (plain.status, plain.headers["Cache-Control"], plain.body) == (200, FOREVER, content)
    assert "Content-Encoding" not in plain.headers

    # The name without its hash is served too (a stale page may ask for it), but cached for a minute only. It is
    # the file as its app has it; the hashed copy names the hashed images it draws (url(../img/...)).
    unhashed = fetch(production.port, f"/static/{name}")
    original = (production.static_root / name).read_bytes()
    assert (unhashed.status, unhashed.headers["Cache-Control"], unhashed.body) == (200, "max-age=60, public", original)
    assert b"url(../img/sorting-icons.svg)" in original
    icons = production.hashed("admin/img/sorting-icons.svg").removeprefix("admin/")
    assert f'url("../{icons}")'.encode() in content
