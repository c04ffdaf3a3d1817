"""What each process of the throttle race runs (tests/core/test_throttling.py); a module of its own because a
process imports it before Django is set up."""


def requests_allowed(job: tuple[str, str, int], start) -> int:
    """Make `attempts` requests from one address through the throttle at `throttle_path` with API_ANON_RATE
    `rate`, on this process's own Redis connection, once every process is ready; how many went through."""
    from django.conf import settings
    from django.test import RequestFactory
    from django.utils.module_loading import import_string
    from rest_framework.request import Request

    throttle_path, rate, attempts = job
    settings.API_ANON_RATE = rate
    throttle_class = import_string(throttle_path)
    factory = RequestFactory()
    requests = [Request(factory.get("/api/v1/leads/", REMOTE_ADDR="203.0.113.7")) for _ in range(attempts)]
    throttle_class().allow_request(Request(factory.get("/", REMOTE_ADDR="192.0.2.1")), None)  # connected
    start()
    return sum(throttle_class().allow_request(request, None) for request in requests)
