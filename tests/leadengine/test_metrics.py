"""/metrics: off (404) until METRICS_TOKEN or METRICS_ALLOWED_ADDRESSES is set; 401/403 without the right token or
from another address (behind trusted proxies, the address the nearest proxy saw); otherwise every family in the
Prometheus text format, with the values of real work: requests answered, job runs recorded, leads in their states, a
message waiting in the broker. It answers, at once, while Redis or PostgreSQL is down (real outages: closed ports),
saying which source could not be read; and under gunicorn with several workers, the request figures of every worker
add up (PROMETHEUS_MULTIPROC_DIR, gunicorn.conf.py)."""

import datetime as dt
import threading
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from leadengine.celery import app as celery_app
from leadengine.config import env_networks, env_secret
from leadengine.metrics.collectors import LEAD_COUNTS_CACHE_SECONDS
from leadengine.metrics.middleware import REQUEST_DURATION
from leadengine.models import JobRun
from leadengine.services.jobs import job_run_execute, job_run_request
from leads.models import Lead
from leads.services.generation import leads_generate
from leads.services.lifecycle import lead_accept, leads_deliver
from leads.services.routing import leads_route
from scoring.models import ScoringModel
from tests.leadengine.test_database_unavailable import closed_port, postgres_at, silent_server  # noqa: F401
from tests.leadengine.test_redis_down import CLOSED_PORT, cache_at
from tests.leads.factories import owner, scored_home
from tests.production import fetch, production_env, web

pytestmark = pytest.mark.django_db

URL = "/metrics"
TOKEN = "a-metrics-token-for-tests-0123456789"
BEARER = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
FAMILIES = {
    "leadengine_http_request_duration_seconds",
    "leadengine_database_up",
    "leadengine_job_runs",
    "leadengine_job_last_run_duration_seconds",
    "leadengine_job_last_run_finished_timestamp_seconds",
    "leadengine_job_last_success_timestamp_seconds",
    "leadengine_leads",
    "leadengine_broker_up",
    "leadengine_broker_queue_messages",
}


@pytest.fixture(autouse=True)
def requests_forgotten():
    """Each test counts its own requests (the histogram is the process's, kept across tests)."""
    REQUEST_DURATION.clear()
    yield
    REQUEST_DURATION.clear()


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_ADDRESSES = []


def samples(response) -> dict[tuple[str, frozenset], float]:
    """The scrape's samples: {(sample name, its labels): value}; the text must parse as Prometheus reads it."""
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == TEXT_FORMAT
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def families(response) -> set[str]:
    return {family.name for family in text_string_to_metric_families(response.content.decode())}


def value(scraped: dict, name: str, **labels: str) -> float | None:
    return scraped.get((name, frozenset(labels.items())))


def of(scraped: dict, name: str) -> dict[frozenset, float]:
    return {labels: number for (sample, labels), number in scraped.items() if sample == name}


def requests_counted(scraped: dict) -> dict[tuple[str, str, str], float]:
    """{(view, method, status): requests} from the request histogram's counts."""
    counts = of(scraped, "leadengine_http_request_duration_seconds_count")
    return {(labels["view"], labels["method"], labels["status"]): n for labels, n in map(_labelled, counts.items())}


def _labelled(item: tuple[frozenset, float]) -> tuple[dict, float]:
    return dict(item[0]), item[1]


def assert_refused(response, status: int) -> None:
    assert response.status_code == status
    assert "leadengine_" not in response.content.decode()


# --- Protection --------------------------------------------------------------------------------------------------


def test_metrics_are_off_and_answer_404_when_neither_a_token_nor_addresses_are_set(client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_ADDRESSES = "", []

    assert_refused(client.get(URL), 404)
    assert_refused(client.get(URL, **BEARER), 404)


def test_a_scrape_without_the_token_is_401_and_with_a_wrong_one_403(client, token):
    missing = client.get(URL)

    assert_refused(missing, 401)
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert_refused(client.get(URL, HTTP_AUTHORIZATION=f"Basic {TOKEN}"), 401)
    assert_refused(client.get(URL, HTTP_AUTHORIZATION="Bearer "), 401)
    assert_refused(client.get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN[:-1]}"), 403)
    assert_refused(client.get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}x"), 403)


def test_a_scrape_with_the_token_gets_every_family_in_the_prometheus_text_format(client, token, idle_queue):
    response = client.get(URL, HTTP_AUTHORIZATION=f"bearer {TOKEN}")

    assert response.status_code == 200
    assert response["Content-Type"] == TEXT_FORMAT
    assert response["Cache-Control"] == "no-store"
    assert families(response) == FAMILIES  # declared even before they have a sample
    openmetrics = client.get(URL, HTTP_ACCEPT="application/openmetrics-text; version=1.0.0", **BEARER)
    assert openmetrics["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert openmetrics.content.decode().endswith("# EOF\n")


def test_a_scrape_from_an_allowed_address_or_network_needs_no_token(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_ADDRESSES = ["10.20.0.0/16", "192.0.2.7/32", "fd00::/8"]

    for address in ("10.20.3.4", "192.0.2.7", "fd00::5", "::ffff:10.20.0.1"):
        assert client.get(URL, REMOTE_ADDR=address).status_code == 200, address
    for address in ("10.21.0.1", "192.0.2.8", "127.0.0.1", "2001:db8::1"):
        assert_refused(client.get(URL, REMOTE_ADDR=address), 403)


def test_behind_a_proxy_the_address_is_the_one_the_proxy_saw_never_one_the_client_wrote(client, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}  # TRUSTED_PROXIES=1
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_ADDRESSES = ["10.0.0.0/8"]
    proxy = {"REMOTE_ADDR": "10.0.0.2"}  # the proxy itself is inside the allowed network

    # A client outside, through the proxy: refused, although the connection comes from an allowed address.
    assert_refused(client.get(URL, HTTP_X_FORWARDED_FOR="203.0.113.9", **proxy), 403)
    # The same client writing an allowed address first: the proxy appends what it saw, and that is what counts.
    assert_refused(client.get(URL, HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.9", **proxy), 403)
    # Prometheus inside the network, through the proxy.
    assert client.get(URL, HTTP_X_FORWARDED_FOR="10.1.2.3", **proxy).status_code == 200


def test_with_both_set_a_scrape_needs_the_address_and_the_token(client, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_ADDRESSES = ["10.0.0.0/8"]

    assert client.get(URL, REMOTE_ADDR="10.1.1.1", **BEARER).status_code == 200
    assert_refused(client.get(URL, REMOTE_ADDR="10.1.1.1"), 401)
    assert_refused(client.get(URL, REMOTE_ADDR="192.0.2.1", **BEARER), 403)


def test_metrics_are_served_over_plain_http_where_the_site_redirects_to_https(client, token, settings):
    settings.SECURE_SSL_REDIRECT = True

    assert client.get(URL, **BEARER).status_code == 200
    assert client.get("/metrics/", **BEARER).status_code == 301  # only the exact path is exempt
    assert client.get("/admin/").status_code == 301


def test_only_reads_are_answered(client, token):
    assert client.post(URL, **BEARER).status_code == 405
    assert client.head(URL, **BEARER).status_code == 200


@pytest.mark.parametrize(
    ("raw", "networks"),
    [("", []), ("10.0.0.0/8, 192.0.2.7", ["10.0.0.0/8", "192.0.2.7/32"]), ("fd00::/8", ["fd00::/8"])],
)
def test_allowed_addresses_are_read_as_networks(raw, networks):
    assert env_networks({"METRICS_ALLOWED_ADDRESSES": raw}, "METRICS_ALLOWED_ADDRESSES") == networks


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("10.0.0.0/33", "METRICS_ALLOWED_ADDRESSES: '10.0.0.0/33' is not an address or a network in CIDR notation"),
        ("10.0.0.5/8", "METRICS_ALLOWED_ADDRESSES: '10.0.0.5/8' is not an address or a network in CIDR notation"),
        ("prometheus.internal", "METRICS_ALLOWED_ADDRESSES: 'prometheus.internal' is not an address"),
    ],
)
def test_a_bad_allowed_address_stops_the_process_at_start_with_its_name(raw, message):
    with pytest.raises(ImproperlyConfigured, match=message.replace("(", r"\(").replace(")", r"\)")):
        env_networks({"METRICS_ALLOWED_ADDRESSES": raw}, "METRICS_ALLOWED_ADDRESSES")


def test_a_short_or_unprintable_token_stops_the_process_at_start():
    assert env_secret({}, "METRICS_TOKEN", minimum_length=16) == ""
    assert env_secret({"METRICS_TOKEN": f" {TOKEN} "}, "METRICS_TOKEN", minimum_length=16) == TOKEN
    with pytest.raises(ImproperlyConfigured, match="METRICS_TOKEN is 6 characters long; use at least 16"):
        env_secret({"METRICS_TOKEN": "secret"}, "METRICS_TOKEN", minimum_length=16)
    with pytest.raises(ImproperlyConfigured, match="METRICS_TOKEN must be printable ASCII without spaces"):
        env_secret({"METRICS_TOKEN": "a token with spaces in it"}, "METRICS_TOKEN", minimum_length=16)


# --- The families, after real work -------------------------------------------------------------------------------


def test_requests_are_timed_by_resolved_view_method_and_status_class_never_by_path(staff_client, token):
    for _ in range(3):
        assert staff_client.get("/healthz").status_code == 200
    assert staff_client.get("/api/v1/runs/").status_code == 200
    assert staff_client.get("/api/v1/runs/12345/").status_code == 404
    assert staff_client.get("/api/v1/runs/67890/").status_code == 404
    assert staff_client.get("/no/such/page-1").status_code == 404
    assert staff_client.get("/no/such/page-2").status_code == 404
    assert staff_client.get("/").status_code == 302  # a route without a name: its pattern
    assert staff_client.generic("BREW", "/healthz").status_code == 405
    static = staff_client.get("/static/leadengine/admin.css").status_code  # WhiteNoise's, or 404 where not collected

    scraped = samples(staff_client.get(URL, **BEARER))

    assert requests_counted(scraped) == {
        ("healthz", "GET", "2xx"): 3,
        ("jobrun-list", "GET", "2xx"): 1,
        ("jobrun-detail", "GET", "4xx"): 2,
        ("<unmatched>", "GET", "4xx"): 2,
        ("/", "GET", "3xx"): 1,
        ("healthz", "OTHER", "4xx"): 1,
        ("<static>", "GET", f"{static // 100}xx"): 1,
    }
    healthz = {"view": "healthz", "method": "GET", "status": "2xx"}
    buckets = of(scraped, "leadengine_http_request_duration_seconds_bucket")
    assert buckets[frozenset((healthz | {"le": "+Inf"}).items())] == 3
    assert 0 < value(scraped, "leadengine_http_request_duration_seconds_sum", **healthz) < 30
    # The scrape itself is counted from the next one on.
    again = samples(staff_client.get(URL, **BEARER))
    assert requests_counted(again)[("metrics", "GET", "2xx")] == 1


def test_job_runs_by_job_and_status_and_each_jobs_last_run(
    client, token, roofing, idle_queue, django_capture_on_commit_callbacks
):
    expiry = job_run_execute(run_id=JobRun.objects.create(job="lead_expiry", queued_at=timezone.now()).pk)
    expiry_again = job_run_execute(run_id=JobRun.objects.create(job="lead_expiry", queued_at=timezone.now()).pk)
    ScoringModel.objects.filter(trade=roofing).update(status=ScoringModel.Status.RETIRED)
    scoring = job_run_execute(run_id=JobRun.objects.create(job="scoring", trade=roofing, queued_at=timezone.now()).pk)
    with django_capture_on_commit_callbacks(execute=True):
        queued = job_run_request(job="webhook_delivery")
    two_days_ago = timezone.now() - dt.timedelta(days=2)
    JobRun.objects.create(
        job="daily_report",
        status="succeeded",
        queued_at=two_days_ago,
        started_at=two_days_ago,
        finished_at=two_days_ago + dt.timedelta(seconds=5),
    )  # fmt: skip  (outside the window: not counted)
    assert (expiry.status, expiry_again.status, scoring.status, queued.status) == (
        "succeeded", "succeeded", "failed", "queued"
    )  # fmt: skip

    scraped = samples(client.get(URL, **BEARER))

    assert of(scraped, "leadengine_job_runs") == {
        frozenset({"job": "lead_expiry", "trade": "", "status": "succeeded"}.items()): 2,
        frozenset({"job": "scoring", "trade": "roofing", "status": "failed"}.items()): 1,
        frozenset({"job": "webhook_delivery", "trade": "", "status": "queued"}.items()): 1,
    }
    assert of(scraped, "leadengine_job_last_run_duration_seconds") == {
        frozenset({"job": "lead_expiry", "trade": ""}.items()): pytest.approx(expiry_again.duration_seconds),
        frozenset({"job": "scoring", "trade": "roofing"}.items()): pytest.approx(scoring.duration_seconds),
    }
    assert of(scraped, "leadengine_job_last_run_finished_timestamp_seconds") == {
        frozenset({"job": "lead_expiry", "trade": "", "status": "succeeded"}.items()): pytest.approx(
            expiry_again.finished_at.timestamp()
        ),
        frozenset({"job": "scoring", "trade": "roofing", "status": "failed"}.items()): pytest.approx(
            scoring.finished_at.timestamp()
        ),
    }
    assert of(scraped, "leadengine_job_last_success_timestamp_seconds") == {
        frozenset({"job": "lead_expiry", "trade": ""}.items()): pytest.approx(expiry_again.finished_at.timestamp()),
    }
    # The queued run's message waits in the broker, in the queue tasks are sent to.
    assert value(scraped, "leadengine_broker_up") == 1
    assert of(scraped, "leadengine_broker_queue_messages") == {
        frozenset({"queue": celery_app.conf.task_default_queue}.items()): 1
    }


def test_leads_by_trade_and_state_with_zeros_and_counted_at_most_a_minute_ago(client, token, roofing):
    owner(roofing, "80202")
    for score in (95, 90, 85):
        scored_home(roofing, score=score, zip_code="80202")
    scored_home(roofing, score=80, zip_code="80203")  # nobody owns 80203: the lead waits in the pool
    leads_generate(trade=roofing)
    leads_route()
    assigned = list(Lead.objects.filter(state="assigned").order_by("-score"))
    leads_deliver(lead_ids=[lead.pk for lead in assigned[:2]], via="api")
    lead_accept(lead=Lead.objects.get(pk=assigned[0].pk), actor="contractor")

    leads = of(samples(client.get(URL, **BEARER)), "leadengine_leads")

    expected = dict.fromkeys(Lead.State.values, 0) | {"generated": 1, "assigned": 1, "delivered": 1, "accepted": 1}
    assert leads == {frozenset({"trade": "roofing", "state": state}.items()): n for state, n in expected.items()}
    # Counted once a minute at most: a lead accepted now shows at the next count.
    lead_accept(lead=Lead.objects.get(pk=assigned[1].pk), actor="contractor")
    cached = of(samples(client.get(URL, **BEARER)), "leadengine_leads")
    assert cached == leads
    assert LEAD_COUNTS_CACHE_SECONDS == 60


def test_a_scrape_reads_the_database_in_two_queries_whatever_the_number_of_runs_and_leads(
    client, token, roofing, django_assert_num_queries
):
    now = timezone.now()
    for job in ("lead_expiry", "offer_expiry", "daily_report", "evaluation", "overdue_check"):
        for minutes in range(5):
            at = now - dt.timedelta(minutes=minutes + 1)
            JobRun.objects.create(job=job, status="succeeded", queued_at=at, started_at=at, finished_at=now)
    client.get("/healthz")

    with django_assert_num_queries(2):  # the job runs' grouped query, the leads' grouped count
        assert client.get(URL, **BEARER).status_code == 200
    with django_assert_num_queries(1):  # the leads' count is cached for a minute
        assert client.get(URL, **BEARER).status_code == 200


# --- Outages -----------------------------------------------------------------------------------------------------


@pytest.fixture
def broker_unreachable():
    """The Celery app reads its broker at a closed port (tasks are still sent to the real one)."""
    before = celery_app.conf.get("broker_read_url")
    celery_app.conf.broker_read_url = CLOSED_PORT
    yield
    celery_app.conf.broker_read_url = before


def test_with_redis_down_the_endpoint_answers_at_once_saying_the_broker_could_not_be_read(
    client, token, settings, roofing, broker_unreachable
):
    scored_home(roofing, score=90, zip_code="80203")
    leads_generate(trade=roofing)
    cache_at(settings, CLOSED_PORT)  # the cache too: the leads are counted directly
    client.get("/healthz")

    started = time.monotonic()
    response = client.get(URL, **BEARER)
    took = time.monotonic() - started

    scraped = samples(response)
    assert took < 1.0
    assert value(scraped, "leadengine_broker_up") == 0
    assert value(scraped, "leadengine_database_up") == 1
    assert families(response) == FAMILIES - {"leadengine_broker_queue_messages"}
    assert requests_counted(scraped) == {("healthz", "GET", "2xx"): 1}
    assert value(scraped, "leadengine_leads", trade="roofing", state="generated") == 1


def test_a_broker_that_accepts_and_never_answers_costs_a_scrape_one_timeout(
    client,
    token,
    silent_server,  # noqa: F811
):
    before = celery_app.conf.get("broker_read_url")
    celery_app.conf.broker_read_url = f"redis://127.0.0.1:{silent_server}/0"
    try:
        started = time.monotonic()
        scraped = samples(client.get(URL, **BEARER))
        took = time.monotonic() - started
    finally:
        celery_app.conf.broker_read_url = before

    assert value(scraped, "leadengine_broker_up") == 0
    assert took < 4  # one wait of BROKER_TIMEOUT_SECONDS (2 s): the broker is tried once


@pytest.mark.django_db(transaction=True)
def test_with_postgresql_down_the_endpoint_answers_at_once_with_the_broker_and_the_requests(
    client,
    token,
    postgres_at,  # noqa: F811
):
    client.get("/healthz")
    postgres_at(closed_port())

    started = time.monotonic()
    response = client.get(URL, **BEARER)
    took = time.monotonic() - started

    scraped = samples(response)
    assert took < 1.0
    assert value(scraped, "leadengine_database_up") == 0
    assert value(scraped, "leadengine_broker_up") == 1
    assert families(response) == {
        "leadengine_http_request_duration_seconds",
        "leadengine_database_up",
        "leadengine_broker_up",
        "leadengine_broker_queue_messages",
    }
    assert requests_counted(scraped) == {("healthz", "GET", "2xx"): 1}


@pytest.mark.django_db(transaction=True)
def test_a_postgresql_that_accepts_and_never_answers_costs_a_scrape_one_connect_timeout(
    client,
    token,
    postgres_at,  # noqa: F811
    silent_server,  # noqa: F811
):
    postgres_at(silent_server, connect_timeout=2)  # DB_CONNECT_TIMEOUT=2 (libpq's least)

    started = time.monotonic()
    scraped = samples(client.get(URL, **BEARER))
    took = time.monotonic() - started

    assert value(scraped, "leadengine_database_up") == 0
    assert value(scraped, "leadengine_broker_up") == 1
    assert 2 <= took < 4  # one connection attempt: the leads are not tried once the job runs failed


# --- Several gunicorn workers ------------------------------------------------------------------------------------


def test_under_gunicorn_the_requests_of_every_worker_add_up_in_the_multiprocess_directory(tmp_path):
    """The Procfile's web line, as a platform runs it, with PROMETHEUS_MULTIPROC_DIR set: gunicorn.conf.py empties
    the directory at start; every worker writes its figures there, and a scrape (whichever worker answers it)
    counts them all."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    (directory / "histogram_99999.db").write_bytes(b"left by a previous server")  # emptied at start
    env = production_env(METRICS_TOKEN=TOKEN, PROMETHEUS_MULTIPROC_DIR=str(directory))

    with web(env, tmp_path / "gunicorn.log") as port:
        assert not (directory / "histogram_99999.db").exists()

        # Requests from several threads at once, so that both workers answer some.
        def ask() -> None:
            for _ in range(10):
                assert fetch(port, "/readyz").status == 200

        threads = [threading.Thread(target=ask) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        scrape = fetch(port, URL, {"Authorization": f"Bearer {TOKEN}"})

    assert scrape.status == 200, scrape.body
    counts = {
        sample.labels["view"]: sample.value
        for family in text_string_to_metric_families(scrape.body.decode())
        for sample in family.samples
        if sample.name == "leadengine_http_request_duration_seconds_count"
    }
    assert counts["readyz"] == 60
    workers = {path.name.rsplit("_", 1)[1] for path in directory.glob("histogram_*.db")}
    assert len(workers) == 2, sorted(path.name for path in directory.iterdir())
