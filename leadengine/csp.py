"""Content-Security-Policy on every response (README, "Back office").

Pages (HTML: the admin, the dashboard, the API docs, error pages) get one strict policy: scripts, styles,
fonts and requests from the site itself only, images from the site or data: URIs, no plugins, no inline
script or style (neither <script>/<style> elements nor style="..." attributes or onclick=... handlers), no
framing, forms posted to the site only. What the pages need is served as static files: the dashboard's
colours are classes (leadengine/static/leadengine/admin.css), Swagger UI's start script is a URL of its own
(SpectacularSwaggerSplitView) and its page styles a static file, the schedules form's script a file of its
own. Everything else (JSON, CSV, the OpenAPI schema, scripts) gets `default-src 'none'`: a response that is
not a page loads nothing and is never framed. Two kinds of page allow inline styles, and say why below: the
browsable API, and Django's debugging pages while DEBUG is on (inline scripts too).

Static files are answered by WhiteNoise before this middleware runs (settings.MIDDLEWARE): they get their policy
from `static_file_policy`, the same rule by content type, when WhiteNoise reads them.

CSP_REPORT_ONLY=true sends the same policies as Content-Security-Policy-Report-Only: the browser reports
what the policy would block in its console and blocks nothing, a way out while a page that breaks is fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from wsgiref.headers import Headers

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.renderers import BrowsableAPIRenderer

PAGE_DIRECTIVES = (
    ("default-src", "'self'"),
    ("script-src", "'self'"),
    ("style-src", "'self'"),
    ("img-src", "'self' data:"),
    ("font-src", "'self'"),
    ("connect-src", "'self'"),
    ("object-src", "'none'"),
    ("base-uri", "'self'"),
    ("frame-ancestors", "'none'"),
    ("form-action", "'self'"),
)
PAGE_POLICY = "; ".join(f"{name} {sources}" for name, sources in PAGE_DIRECTIVES)
OTHER_POLICY = "default-src 'none'; frame-ancestors 'none'"
# Django's own debugging pages (DEBUG only: the traceback of a 500, the URL list of a 404) are written with
# inline styles, scripts and onclick handlers: there inline code runs, the only pages where inline scripts do.
DEBUG_ERROR_PAGE_POLICY = PAGE_POLICY.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'").replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)
DEBUG_ERROR_STATUSES = frozenset({404, 500})
# Django REST framework's browsable API (the API's answers as pages, for staff signed in to the admin) lays
# itself out with style="..." attributes in all its templates, and its description's code colours in a <style>:
# there inline styles apply. Its scripts are still the site's files only.
BROWSABLE_API_POLICY = PAGE_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")

ENFORCED = "Content-Security-Policy"
REPORT_ONLY = "Content-Security-Policy-Report-Only"


def _is_page(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "text/html"


def policy_for(response: HttpResponse, *, debug: bool) -> str:
    """The policy a response gets: the page policy for HTML, `default-src 'none'` for anything else."""
    if not _is_page(response.get("Content-Type", "")):
        return OTHER_POLICY
    if debug and response.status_code in DEBUG_ERROR_STATUSES:
        return DEBUG_ERROR_PAGE_POLICY
    if isinstance(getattr(response, "accepted_renderer", None), BrowsableAPIRenderer):
        return BROWSABLE_API_POLICY
    return PAGE_POLICY


def _header() -> str:
    return REPORT_ONLY if settings.CSP_REPORT_ONLY else ENFORCED


def static_file_policy(headers: Headers, path: str, url: str) -> None:
    """WhiteNoise's hook for a static file's headers (WHITENOISE_ADD_HEADERS_FUNCTION): the page policy for an HTML
    file (Swagger UI ships one), `default-src 'none'` for anything else. A stylesheet, a script or an image obeys
    the policy of the page that loads it; its own matters when it is opened by itself (an SVG's scripts)."""
    headers[_header()] = PAGE_POLICY if _is_page(headers.get("Content-Type", "")) else OTHER_POLICY


class ContentSecurityPolicyMiddleware:
    """Sets the policy on every response that does not carry one of its own. Placed before the middleware that
    answer some requests themselves (a CSRF failure, a login lock), so their answers get it too; static files,
    answered by WhiteNoise before it, get theirs from `static_file_policy`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        header = _header()
        if ENFORCED not in response and REPORT_ONLY not in response:
            response[header] = policy_for(response, debug=settings.DEBUG)
        return response
