"""Background runs staff start through the API (/api/v1/runs/): recorded, queued on the real Redis broker,
executed by a real Celery worker against the test database; one active run per job and trade; a run's
lock keeps a second copy from running beside it."""

import datetime as dt
import threading
import time
from contextlib import contextmanager

import pytest
from django.db import connections
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from leadengine.models import JobRun
from leadengine.services import jobs
from leadengine.services.jobs import JobBusy, job_run_execute, job_run_request
from leads.models import Lead
from scoring.models import Score, ScoringModel, ScoringRun
from tests.contractors.conftest import trades  # noqa: F401  (fixture)
from tests.leads.factories import api_client, home, owner, scored_home
from tests.racing import race

URL = "/api/v1/runs/"
# The failing job of test_a_job_that_raises_is_recorded_failed_with_its_error, if a worker ran it.
WORKER_MAY_LOG = "no active scoring model"


def wait_for_end(client: APIClient, run_id: int, *, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"{URL}{run_id}/").json()
        if body["status"] not in ("queued", "running"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not end in {timeout} s")


# --- Through a real worker ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_staff_start_a_scoring_run_and_follow_it_to_its_end(staff_api, roofing, worker):
    _user, client = staff_api
    homes = [home(zip_code="80202") for _ in range(3)]

    response = client.post(URL, {"job": "scoring", "trade": "roofing"}, format="json")

    assert response.status_code == 202
    queued = response.json()
    assert (queued["job"], queued["trade"], queued["status"], queued["requested_by"]) == (
        "scoring",
        "roofing",
        "queued",
        "ops",
    )
    assert (queued["started_at"], queued["finished_at"], queued["counts"]) == (None, None, {})
    assert response["Location"] == f"{URL}{queued['id']}/"
    done = wait_for_end(client, queued["id"])
    scoring_run = ScoringRun.objects.get(trade=roofing)
    assert (done["status"], done["error"]) == ("succeeded", "")
    assert done["counts"] == {"scoring_run": scoring_run.pk, "properties_scored": 3, "scores_changed": 3}
    assert (scoring_run.status, scoring_run.distributed) == (ScoringRun.Status.SUCCEEDED, True)  # on the workers
    assert set(Score.objects.filter(trade=roofing).values_list("property_id", flat=True)) == {h.pk for h in homes}
    run = JobRun.objects.get(pk=queued["id"])
    assert (run.scoring_run, run.waiting) == (scoring_run, False)
    assert run.started_at <= run.finished_at
    assert done["duration_seconds"] == round(run.duration_seconds, 3)  # to the millisecond


@pytest.mark.django_db(transaction=True)
def test_a_lead_generation_run_makes_and_routes_the_leads(staff_api, roofing, worker):
    _user, client = staff_api
    acme = owner(roofing, "80202")
    for score in (91, 85):
        scored_home(roofing, score=score, zip_code="80202")
    scored_home(roofing, score=88, zip_code="80203")  # nobody owns 80203: it waits in the pool

    run_id = client.post(URL, {"job": "lead_generation", "trade": "roofing"}, format="json").json()["id"]
    done = wait_for_end(client, run_id)

    assert (done["status"], done["counts"]) == (
        "succeeded",
        {"leads_generated": 3, "leads_routed": 2, "leads_in_pool": 1},  # acme has no webhook: nothing to post
    )
    assert sorted(Lead.objects.values_list("zip_code", "state", "contractor_id")) == [
        ("80202", "assigned", acme.pk),
        ("80202", "assigned", acme.pk),
        ("80203", "generated", None),
    ]


# --- The request ---------------------------------------------------------------------------------------


def test_a_run_is_queued_once_its_request_commits(staff_api, roofing, idle_queue, django_capture_on_commit_callbacks):
    user, _client = staff_api

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run = job_run_request(job="scoring", trade=roofing, user=user)

    assert len(callbacks) == 1
    assert len(idle_queue()) == 1
    assert (run.status, run.requested_by, run.started_at) == ("queued", user, None)


def test_a_second_request_while_one_is_queued_is_409_naming_it(staff_api, roofing, idle_queue):
    _user, client = staff_api
    first = client.post(URL, {"job": "scoring", "trade": "roofing"}, format="json").json()

    response = client.post(URL, {"job": "scoring", "trade": "roofing"}, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "code": "job_busy",
        "detail": f"Score every property for Roofing is already queued (run {first['id']}); wait for it to end.",
        "fields": {},
    }
    assert list(JobRun.objects.values_list("id", flat=True)) == [first["id"]]
    # Another job, or the same job for another trade, is not held up.
    other = client.post(URL, {"job": "lead_generation", "trade": "roofing"}, format="json")
    assert other.status_code == 202


@pytest.mark.django_db(transaction=True)
def test_racing_requests_for_one_job_create_one_run(roofing, idle_queue):
    results, errors = race(lambda _: job_run_request(job="scoring", trade=roofing), range(6))

    assert JobRun.objects.count() == 1
    assert sum(result is not None for result in results) == 1
    assert len(errors) == 5
    assert all(isinstance(error, JobBusy) for error in errors)


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({"job": "vacuum", "trade": "roofing"}, {"job": ['"vacuum" is not a valid choice.']}),
        ({"job": "scoring", "trade": "gutters"}, {"trade": ["Object with slug=gutters does not exist."]}),
        ({}, {"job": ["This field is required."]}),
        ({"job": "scoring"}, {"trade": ["Score every property runs per trade: name the trade."]}),
        (
            {"job": "lead_expiry", "trade": "roofing"},
            {"trade": ["Expire overdue leads covers every trade: name no trade."]},
        ),
    ],
)
def test_a_bad_run_request_gets_field_errors_and_queues_nothing(staff_api, roofing, idle_queue, payload, fields):
    _user, client = staff_api

    response = client.post(URL, payload, format="json")

    assert response.status_code == 400
    assert response.json()["fields"] == fields
    assert (JobRun.objects.count(), idle_queue()) == (0, [])


def test_contractors_may_not_start_or_read_runs(roofing, idle_queue):
    acme = owner(roofing, "80202")
    run = JobRun.objects.create(job="scoring", trade=roofing, queued_at=timezone.now())
    client = api_client(acme)

    for response in (
        client.post(URL, {"job": "scoring", "trade": "roofing"}, format="json"),
        client.get(URL),
        client.get(f"{URL}{run.pk}/"),
    ):
        assert response.status_code == 403
        assert response.json() == {"code": "permission_denied", "detail": "Only staff may do this.", "fields": {}}
    assert list(JobRun.objects.values_list("id", "status")) == [(run.pk, "queued")]
    assert idle_queue() == []


def test_staff_list_runs_newest_first_and_filter_them_by_status(staff_api, roofing):
    _user, client = staff_api
    now = timezone.now()
    older = JobRun.objects.create(
        job="scoring", trade=roofing, status="succeeded", queued_at=now - dt.timedelta(hours=1),
        started_at=now - dt.timedelta(hours=1), finished_at=now,
    )  # fmt: skip
    newer = JobRun.objects.create(job="lead_generation", trade=roofing, queued_at=now)

    assert [run["id"] for run in client.get(URL).json()["results"]] == [newer.pk, older.pk]
    assert [run["id"] for run in client.get(URL, {"status": "succeeded"}).json()["results"]] == [older.pk]


# --- Execution (the task's body), in process -------------------------------------------------------------


def queued_run(trade, job="scoring") -> JobRun:
    return JobRun.objects.create(job=job, trade=trade, queued_at=timezone.now())


def test_a_job_that_raises_is_recorded_failed_with_its_error(roofing):
    ScoringModel.objects.filter(trade=roofing).update(status=ScoringModel.Status.RETIRED)
    run = queued_run(roofing)

    run = job_run_execute(run_id=run.pk)

    assert run.status == "failed"
    assert run.error.startswith("ScoringError: ")
    assert WORKER_MAY_LOG in run.error
    assert run.started_at <= run.finished_at


def test_a_failed_run_is_emailed_to_ops_and_shown_in_red_in_the_admin(roofing, mailoutbox, settings, admin_client):
    settings.OPS_EMAILS = ["ops@example.com", "oncall@example.com"]
    ScoringModel.objects.filter(trade=roofing).update(status=ScoringModel.Status.RETIRED)

    run = job_run_execute(run_id=queued_run(roofing).pk)

    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert (mail.subject, mail.to) == (
        f"LeadEngine: score every property failed (run {run.pk})",
        ["ops@example.com", "oncall@example.com"],
    )
    assert f"Score every property for Roofing, run {run.pk}" in mail.body
    assert run.error in mail.body
    listing = admin_client.get("/admin/leadengine/jobrun/").content.decode()
    assert '<strong class="status-alert">Failed</strong>' in listing


def test_a_run_that_succeeds_or_fails_with_nobody_to_tell_sends_no_email(roofing, mailoutbox, settings):
    settings.OPS_EMAILS = []
    ScoringModel.objects.filter(trade=roofing).update(status=ScoringModel.Status.RETIRED)

    assert job_run_execute(run_id=queued_run(roofing).pk).status == "failed"
    assert job_run_execute(run_id=queued_run(roofing, "lead_generation").pk).status == "succeeded"
    assert mailoutbox == []


def test_leads_routed_to_a_webhook_are_posted_at_once_by_a_delivery_run(
    roofing, idle_queue, django_capture_on_commit_callbacks
):
    owner(roofing, "80202", webhook_url="https://crm.example.com/hook")
    scored_home(roofing, score=90, zip_code="80202")

    with django_capture_on_commit_callbacks(execute=True):
        run = job_run_execute(run_id=queued_run(roofing, "lead_generation").pk)

    delivery = JobRun.objects.get(job="webhook_delivery")
    assert (delivery.status, delivery.requested_by) == ("queued", None)
    assert run.counts == {"leads_generated": 1, "leads_routed": 1, "leads_in_pool": 0, "webhook_run": delivery.pk}
    assert [m["headers"]["task"] for m in idle_queue()] == ["leadengine.job_run"]  # its task is on the broker


def test_a_delivery_run_already_waiting_takes_the_routed_leads(roofing, idle_queue):
    owner(roofing, "80202", webhook_url="https://crm.example.com/hook")
    scored_home(roofing, score=90, zip_code="80202")
    waiting = job_run_request(job="webhook_delivery")

    run = job_run_execute(run_id=queued_run(roofing, "lead_generation").pk)

    assert run.counts["webhook_run"] == waiting.pk
    assert JobRun.objects.filter(job="webhook_delivery").count() == 1


def test_a_run_delivered_twice_does_its_work_once(roofing):
    scored_home(roofing, score=90, zip_code="80203")
    run = queued_run(roofing, "lead_generation")

    first = job_run_execute(run_id=run.pk)
    again = job_run_execute(run_id=run.pk)

    assert (first.status, first.counts["leads_generated"]) == ("succeeded", 1)
    assert (again.status, again.finished_at, again.counts) == ("succeeded", first.finished_at, first.counts)
    assert Lead.objects.count() == 1


@contextmanager
def lock_held_elsewhere(run: JobRun):
    """The run's lock held, for the block, by another connection: a live worker's copy of the run."""
    held, release = threading.Event(), threading.Event()

    def live_copy():
        try:
            assert jobs._lock_try(run)
            held.set()
            release.wait(30)
            jobs._lock_release(run)
        finally:
            connections.close_all()

    thread = threading.Thread(target=live_copy)
    thread.start()
    assert held.wait(30)
    try:
        yield
    finally:
        release.set()
        thread.join(30)


@pytest.mark.django_db(transaction=True)
def test_a_copy_of_a_run_started_while_another_holds_its_lock_does_nothing(roofing):
    scored_home(roofing, score=90, zip_code="80203")
    run = queued_run(roofing, "lead_generation")

    with lock_held_elsewhere(run):
        skipped = job_run_execute(run_id=run.pk)

    assert (skipped.status, Lead.objects.count()) == ("queued", 0)
    assert job_run_execute(run_id=run.pk).status == "succeeded"
    assert Lead.objects.count() == 1


def test_a_run_left_running_by_a_dead_worker_is_closed_when_asked_for_again(staff_api, roofing, idle_queue):
    _user, client = staff_api
    dead = JobRun.objects.create(
        job="scoring", trade=roofing, status="running", queued_at=timezone.now(), started_at=timezone.now()
    )

    response = client.post(URL, {"job": "scoring", "trade": "roofing"}, format="json")

    assert response.status_code == 202
    dead.refresh_from_db()
    assert (dead.status, dead.error) == ("failed", "Abandoned: the worker running it stopped.")
    assert dead.finished_at is not None


@override_settings(JOB_QUEUE_TIMEOUT_MINUTES=30)
def test_a_run_no_worker_took_is_closed_after_the_queue_timeout(staff_api, roofing, idle_queue):
    _user, client = staff_api
    waiting = JobRun.objects.create(job="scoring", trade=roofing, queued_at=timezone.now() - dt.timedelta(minutes=29))
    assert client.post(URL, {"job": "scoring", "trade": "roofing"}, format="json").status_code == 409
    JobRun.objects.filter(pk=waiting.pk).update(queued_at=timezone.now() - dt.timedelta(minutes=31))

    response = client.post(URL, {"job": "scoring", "trade": "roofing"}, format="json")

    assert response.status_code == 202
    waiting.refresh_from_db()
    assert (waiting.status, waiting.error) == ("failed", "Never started: no worker took it within 30 minutes.")


def test_a_running_run_whose_worker_lives_is_not_closed(staff_api, roofing, idle_queue):
    _user, client = staff_api
    live = JobRun.objects.create(
        job="scoring", trade=roofing, status="running", queued_at=timezone.now(), started_at=timezone.now()
    )
    held, release = threading.Event(), threading.Event()

    def live_worker():
        try:
            jobs._lock_try(live)
            held.set()
            release.wait(30)
            jobs._lock_release(live)
        finally:
            connections.close_all()

    thread = threading.Thread(target=live_worker)
    thread.start()
    assert held.wait(30)
    response = client.post(URL, {"job": "scoring", "trade": "roofing"}, format="json")
    release.set()
    thread.join(30)

    assert response.status_code == 409
    live.refresh_from_db()
    assert live.status == "running"


def test_staff_see_runs_in_the_admin_without_editing_them(admin_client, roofing):
    run = JobRun.objects.create(job="lead_generation", trade=roofing, queued_at=timezone.now())

    listing = admin_client.get("/admin/leadengine/jobrun/")
    page = admin_client.get(f"/admin/leadengine/jobrun/{run.pk}/change/")

    assert listing.status_code == page.status_code == 200
    assert "Generate and route leads" in listing.content.decode()
    assert admin_client.get("/admin/leadengine/jobrun/add/").status_code == 403
    assert admin_client.post(f"/admin/leadengine/jobrun/{run.pk}/change/", {"status": "succeeded"}).status_code == 403
    run.refresh_from_db()
    assert run.status == "queued"


def test_a_job_of_every_trade_is_started_without_a_trade_and_runs_alone(staff_api, roofing, idle_queue):
    _user, client = staff_api

    first = client.post(URL, {"job": "lead_expiry"}, format="json")
    second = client.post(URL, {"job": "lead_expiry", "trade": None}, format="json")

    assert (first.status_code, first.json()["trade"], first.json()["status"]) == (202, None, "queued")
    assert (second.status_code, second.json()["detail"]) == (
        409,
        f"Expire overdue leads is already queued (run {first.json()['id']}); wait for it to end.",
    )
    assert list(JobRun.objects.values_list("job", "trade", "status")) == [("lead_expiry", None, "queued")]


def test_the_database_refuses_a_run_with_the_wrong_trade_for_its_job(roofing):
    from django.db import IntegrityError, transaction

    for job, trade in (("scoring", None), ("lead_expiry", roofing)):
        with pytest.raises(IntegrityError), transaction.atomic():
            JobRun.objects.create(job=job, trade=trade, queued_at=timezone.now())


def test_lead_expiry_and_offer_expiry_runs_record_what_they_expired(roofing):
    lead_home = scored_home(roofing, score=90, zip_code="80203")
    from leads.services.generation import leads_generate

    leads_generate(trade=roofing)
    Lead.objects.filter(property=lead_home).update(expires_at=timezone.now() - dt.timedelta(minutes=1))

    leads_run = job_run_execute(run_id=JobRun.objects.create(job="lead_expiry", queued_at=timezone.now()).pk)
    offers_run = job_run_execute(run_id=JobRun.objects.create(job="offer_expiry", queued_at=timezone.now()).pk)

    assert (leads_run.status, leads_run.counts) == ("succeeded", {"unassigned_expired": 1, "unaccepted_expired": 0})
    assert (offers_run.status, offers_run.counts) == (
        "succeeded", {"offers_expired": 0, "territories_given": 0, "leads_routed": 0},
    )  # fmt: skip
    assert Lead.objects.get().state == "expired"


def test_a_webhook_delivery_run_records_what_it_sent(roofing):
    run = job_run_execute(run_id=JobRun.objects.create(job="webhook_delivery", queued_at=timezone.now()).pk)

    assert (run.status, run.counts) == (
        "succeeded",
        {"delivered": 0, "retried": 0, "gave_up": 0, "refused": 0, "notices_delivered": 0, "notices_retried": 0,
         "notices_gave_up": 0, "notices_refused": 0},
    )  # fmt: skip


def test_an_evaluation_run_records_an_evaluation_of_each_version_with_outcomes(roofing):
    from scoring.models import EvaluationRun
    from tests.leads.factories import active_model, tiny_set

    tiny_set(roofing, active_model(roofing), owner(roofing, "80202"))

    run = job_run_execute(run_id=JobRun.objects.create(job="evaluation", queued_at=timezone.now()).pk)

    evaluation = EvaluationRun.objects.get()
    assert (run.status, run.counts) == ("succeeded", {"evaluations": 1, "outcomes": 10})
    assert (evaluation.model, evaluation.outcomes, evaluation.last_day) == (
        active_model(roofing), 10, timezone.localdate(),
    )  # fmt: skip
    assert evaluation.first_day == timezone.localdate() - dt.timedelta(days=89)
