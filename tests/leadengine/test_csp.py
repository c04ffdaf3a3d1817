"""The Content-Security-Policy (leadengine/csp.py): the exact policy on pages (admin, dashboard, API docs, error
pages) and on everything else, report-only on request, and pages that need nothing the policy refuses: no inline
<script> or <style>, no style="..." attribute, no on... handler. The browser's side is in tests/browser."""

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse

from core import charts

ROOT = Path(__file__).resolve().parents[2]
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)
DEBUG_ERROR_PAGE_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; "
    "form-action 'self'"
)
OTHER_POLICY = "default-src 'none'; frame-ancestors 'none'"
BROWSABLE_API_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)
# <script type="application/json"> holds data the admin's scripts read; the browser never runs it.
DATA_SCRIPT_TYPES = {"application/json"}


class InlineCode(HTMLParser):
    """What in a page needs 'unsafe-inline': inline scripts and style sheets, style attributes, handlers."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        named = dict(attrs)
        if tag == "script" and not named.get("src") and named.get("type") not in DATA_SCRIPT_TYPES:
            self._in = "script"
        if tag == "style":
            self._in = "style"
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.found.append(f"<{tag} {name}={value!r}>")
            if name in {"href", "src", "action"} and (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value!r}>")

    def handle_data(self, data):
        if self._in and data.strip():
            self.found.append(f"<{self._in}>{data.strip()[:60]}")

    def handle_endtag(self, tag):
        if tag in {"script", "style"}:
            self._in = None


def inline_code(response) -> list[str]:
    parser = InlineCode()
    parser.feed(response.content.decode())
    return parser.found


def test_the_admin_login_page_carries_the_page_policy(client, db):
    response = client.get("/admin/login/?next=/admin/")

    assert response.status_code == 200
    assert response["Content-Security-Policy"] == PAGE_POLICY
    assert "Content-Security-Policy-Report-Only" not in response
    assert inline_code(response) == []


def test_the_dashboard_carries_the_page_policy_and_colours_its_legends_with_classes(staff_client, roofing):
    response = staff_client.get("/admin/")

    assert response.status_code == 200
    assert response["Content-Security-Policy"] == PAGE_POLICY
    assert inline_code(response) == []
    page = response.content.decode()
    assert '<div id="dashboard">' in page
    assert '<span class="chart-swatch chart-colour-0"></span>generated' in page
    assert '<link rel="stylesheet" href="/static/leadengine/admin.css">' in page


def test_the_api_docs_page_carries_the_page_policy_and_loads_its_start_script_from_the_site(client, db):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Security-Policy"] == PAGE_POLICY
    assert inline_code(response) == []
    page = response.content.decode()
    scripts = re.findall(r'<script src="([^"]+)"></script>', page)
    assert scripts == [
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-standalone-preset.js",
        "/api/docs/?script=",
    ]
    assert '<link rel="stylesheet" href="/static/leadengine/api_docs.css">' in page

    start = client.get("/api/docs/?script=")

    assert start.status_code == 200
    assert start["Content-Type"] == "application/javascript"
    assert start["Content-Security-Policy"] == OTHER_POLICY
    script = start.content.decode()
    assert 'url: "/api/schema/"' in script
    assert '"validatorUrl": null' in script  # no badge image from swagger.io


def test_a_page_that_does_not_exist_carries_the_page_policy(client, db):
    response = client.get("/nothing-is-served-here/")

    assert response.status_code == 404
    assert response["Content-Security-Policy"] == PAGE_POLICY
    assert inline_code(response) == []


def test_djangos_debugging_404_page_may_run_its_inline_styles_in_debug_only(client, db, settings):
    settings.DEBUG = True

    response = client.get("/nothing-is-served-here/")

    assert response.status_code == 404
    assert "Page not found" in response.content.decode()
    assert response["Content-Security-Policy"] == DEBUG_ERROR_PAGE_POLICY


def test_a_debug_site_keeps_the_strict_policy_on_pages_that_are_no_error(client, db, settings):
    settings.DEBUG = True

    response = client.get("/admin/login/")

    assert response.status_code == 200
    assert response["Content-Security-Policy"] == PAGE_POLICY


def test_a_form_sent_without_its_csrf_token_gets_a_page_without_inline_styles(db):
    from django.test import Client

    users = get_user_model().objects.count()
    client = Client(enforce_csrf_checks=True)

    response = client.post("/admin/login/", {"username": "someone", "password": "whatever"})

    assert response.status_code == 403
    assert response["Content-Security-Policy"] == PAGE_POLICY
    assert inline_code(response) == []
    page = response.content.decode()
    assert "The form could not be sent <small>(403)</small>" in page
    assert '<link rel="stylesheet" href="/static/leadengine/error.css">' in page
    assert get_user_model().objects.count() == users


def test_json_answers_load_nothing_and_are_never_framed(client, db):
    health = client.get("/healthz")
    missing = client.get("/api/v1/nothing-here/")

    assert (health.status_code, health["Content-Type"]) == (200, "application/json")
    assert health["Content-Security-Policy"] == OTHER_POLICY
    assert (missing.status_code, missing["Content-Type"]) == (404, "application/json")
    assert missing["Content-Security-Policy"] == OTHER_POLICY


def test_static_files_load_nothing_and_are_never_framed_but_an_html_file_is_a_page(client, db):
    sheet = client.get("/static/leadengine/admin.css")
    icon = client.get("/static/admin/img/search.svg")
    page = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/oauth2-redirect.html")

    assert (sheet.status_code, sheet["Content-Type"]) == (200, 'text/css; charset="utf-8"')
    assert sheet["Content-Security-Policy"] == OTHER_POLICY
    assert (icon.status_code, icon["Content-Type"]) == (200, "image/svg+xml")
    assert icon["Content-Security-Policy"] == OTHER_POLICY
    assert (page.status_code, page["Content-Type"]) == (200, 'text/html; charset="utf-8"')
    assert page["Content-Security-Policy"] == PAGE_POLICY
    for response in (sheet, icon, page):
        response.close()


def test_the_browsable_api_may_use_inline_styles_and_runs_no_inline_script(staff_client, roofing):
    response = staff_client.get("/api/v1/leads/", HTTP_ACCEPT="text/html")

    assert (response.status_code, response["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert response["Content-Security-Policy"] == BROWSABLE_API_POLICY
    needs_inline_script = [code for code in inline_code(response) if re.match(r"<script>|<\w+ (on\w+|href|src)=", code)]
    assert needs_inline_script == []
    assert any(" style=" in code for code in inline_code(response))


def test_report_only_sends_the_same_policy_without_enforcing_it(client, db, settings):
    settings.CSP_REPORT_ONLY = True

    page = client.get("/admin/login/")
    health = client.get("/healthz")

    assert page["Content-Security-Policy-Report-Only"] == PAGE_POLICY
    assert "Content-Security-Policy" not in page
    assert health["Content-Security-Policy-Report-Only"] == OTHER_POLICY
    assert "Content-Security-Policy" not in health
    sheet = client.get("/static/leadengine/admin.css")
    sheet.close()
    assert sheet["Content-Security-Policy-Report-Only"] == OTHER_POLICY
    assert "Content-Security-Policy" not in sheet


def test_a_report_only_setting_that_is_no_boolean_stops_the_site_naming_it():
    env = {**os.environ, "CSP_REPORT_ONLY": "sometimes", "DJANGO_SETTINGS_MODULE": "leadengine.settings"}

    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert result.returncode == 1
    assert "CSP_REPORT_ONLY='sometimes' is not a boolean (use true/false, yes/no, 1/0)" in result.stderr


def test_every_admin_list_and_form_needs_no_inline_code(staff_client, roofing):
    """Each registered model's list and add form, and a change form, as a superuser sees them."""
    pages = [reverse("admin:auth_user_change", args=[get_user_model().objects.get(username="staff").pk])]
    for model in admin.site._registry:
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        pages += [reverse(f"{name}_changelist"), reverse(f"{name}_add")]

    checked = 0
    for path in pages:
        response = staff_client.get(path, follow=True)  # an add that is a page of its own redirects there
        if response.status_code == 403:  # a model staff may not add by hand
            continue
        assert response.status_code == 200, path
        assert response["Content-Security-Policy"] == PAGE_POLICY, path
        assert inline_code(response) == [], path
        checked += 1
    assert checked > len(admin.site._registry)


@pytest.mark.parametrize("index", range(len(charts.COLOURS)))
def test_the_legend_classes_give_the_charts_colours(index):
    css = (ROOT / "leadengine/static/leadengine/admin.css").read_text()

    assert f".chart-colour-{index} {{ background: {charts.COLOURS[index]}; }}" in css
    assert f".chart-colour-muted {{ background: {charts.MUTED}; }}" in css
