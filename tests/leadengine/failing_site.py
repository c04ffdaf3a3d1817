"""A site whose one page raises, for the processes the logging and error-report tests start: LeadEngine's
settings (DJANGO_SETTINGS_MODULE=tests.leadengine.failing_site) with these URLs. The page logs a line, then
raises RuntimeError."""

import logging

from django.urls import path

from leadengine.settings import *  # noqa: F403  (the real settings, URLs aside)

ROOT_URLCONF = __name__
FAILURE = "the page failed on purpose"


def failing_page(request):
    logging.getLogger("leadengine.failing_site").warning("serving the failing page")
    raise RuntimeError(FAILURE)


urlpatterns = [path("fail/", failing_page)]
