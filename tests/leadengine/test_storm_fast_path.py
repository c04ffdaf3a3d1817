"""The storm fast path end to end: a storm file imported (the command, or the staff API) is picked up by a
real Celery worker, which rescores only the properties the storm reaches, makes their leads, routes them,
and sends them at once: signed lead webhooks to the owners that take them, an urgent-leads email to one
that does not. The same file again sends nothing."""

from __future__ import annotations

import csv
import json
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.utils import timezone

import leadengine.tasks  # noqa: F401  (registers the fast path's task)
from leadengine.flows import imports_rescore
from leadengine.models import JobRun
from leadengine.services.recovery import jobs_recover
from leads.models import Lead, LeadEvent
from leads.services.generation import leads_generate
from leads.services.routing import leads_route
from leads.services.webhooks import idempotency_key
from scoring import features, selectors
from scoring.errors import ScoringError
from scoring.models import (
    Factor,
    ImportRun,
    Property,
    Score,
    ScoringModel,
    ScoringPartition,
    ScoringRun,
    StormEvent,
    Trade,
)
from scoring.services import runs
from scoring.services.scoring_models import scoring_model_activate
from tests.contractors.conftest import trades  # noqa: F401  (fixture)
from tests.leads.factories import api_client, filters, owner, scored_home
from tests.receiver import RECEIVER_ENV, receiver_fixture, signature_valid  # noqa: F401  (fixture)

# A hailstorm over central Denver: 3 miles around this point.
CENTRE = (39.7500, -104.9900)
HIT = {"80202": 10, "80203": 8, "80204": 4}  # homes within a mile of the centre, per ZIP
MISSED = {"80202": 6}  # homes 14 miles north: out of its reach


def storm_model(trade: Trade) -> ScoringModel:
    """Roofing scored on roof age, hail size and how recent the hail is (the urgency). Roofs here are new:
    without hail every home scores 0; a 1.75-inch hail today makes it 75 and urgency 100."""
    ScoringModel.objects.filter(trade=trade, status=ScoringModel.Status.ACTIVE).update(
        status=ScoringModel.Status.RETIRED
    )
    version = (ScoringModel.objects.filter(trade=trade).order_by("-version").values_list("version", flat=True).first()
               or 0) + 1  # fmt: skip
    model = ScoringModel.objects.create(trade=trade, version=version, storm_window_days=30)
    factors = [
        ("roof_age", "ramp", {"low": 10, "high": 30}, 1, "Roof is {value:.0f} years old", "Built {year_built:.0f}"),
        ("hail_inches", "ramp", {"low": 0.5, "high": 1.5}, 2, "{value:.2f} in hail on {hail_date}", ""),
        ("days_since_hail", "decay", {"half_life_days": 14}, 1, "Hail {value:.0f} days ago", ""),
    ]
    for position, (feature, transform, params, weight, reason, fallback) in enumerate(factors):
        Factor.objects.create(
            model=model, position=position, feature=feature, transform=transform, params=params, weight=weight,
            reason=reason, reason_fallback=fallback,
        )  # fmt: skip
    return scoring_model_activate(model=model)


def market() -> tuple[list[Property], list[Property]]:
    """The homes the storm hits and those it misses, roofs replaced 3 years ago."""
    year = timezone.localdate().year

    def home(parcel_id: str, code: str, latitude: float, longitude: float) -> Property:
        return Property(
            parcel_id=parcel_id, address=f"{parcel_id} St", city="Denver", state="CO", zip_code_id=code,
            latitude=latitude, longitude=longitude, year_built=1990, roof_year=year - 3, owner_occupied=True,
        )  # fmt: skip

    hit = [
        home(f"HIT-{code}-{n}", code, CENTRE[0] + 0.001 * n, CENTRE[1] - 0.001 * n)
        for code, count in HIT.items()
        for n in range(count)
    ]
    missed = [
        home(f"DRY-{code}-{n}", code, CENTRE[0] + 0.2, CENTRE[1] + 0.001 * n)
        for code, count in MISSED.items()
        for n in range(count)
    ]
    return Property.objects.bulk_create(hit), Property.objects.bulk_create(missed)


def storm_file(path: Path, *, magnitude: float = 1.75) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["event_id", "event_date", "kind", "magnitude", "latitude", "longitude", "radius_miles"])
        writer.writerow(["HAIL-1", timezone.localdate().isoformat(), "hail", magnitude, *CENTRE, 3])
    return path


def wait_for(what: str, check, *, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    imports = list(ImportRun.objects.values_list("pk", "rescoring", "rescoring_note"))
    leads = sorted(Lead.objects.values_list("contractor_id", "state").distinct())
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; imports {imports}, leads {leads}")


@pytest.fixture
def storm_market(trades, zip_codes):  # noqa: F811
    roofing = trades["roofing"]
    ScoringModel.objects.exclude(trade=roofing).filter(status=ScoringModel.Status.ACTIVE).update(
        status=ScoringModel.Status.RETIRED
    )
    filters(roofing, min_score=40, urgent_urgency=70)
    storm_model(roofing)
    hit, missed = market()
    assert runs.trade_score(trade=roofing).status == ScoringRun.Status.SUCCEEDED  # the night's scores: all 0
    return roofing, hit, missed


@pytest.mark.django_db(transaction=True)
def test_a_storm_import_sends_signed_webhooks_and_an_urgent_email_within_seconds_and_the_same_file_again_nothing(
    storm_market, receiver, workers, tmp_path
):
    roofing, hit, missed = storm_market
    worker = workers(**RECEIVER_ENV)
    acme = owner(roofing, "80202", webhook_url=receiver.url)
    bob = owner(roofing, "80203", webhook_url="", contact_email="bob@example.com")
    before = dict(Score.objects.filter(trade=roofing).values_list("property_id", "scored_at"))
    assert set(Score.objects.filter(trade=roofing).values_list("score", flat=True)) == {0.0}

    started = time.monotonic()
    call_command("import_data", "storms", str(storm_file(tmp_path / "storms.csv")))
    acme_hit = {home.pk for home in hit if home.zip_code_id == "80202"}
    wait_for(
        "acme's leads delivered",
        lambda: Lead.objects.filter(contractor=acme, state="delivered").count() == len(acme_hit),
        timeout=60,
    )
    bob_hit = {home.pk for home in hit if home.zip_code_id == "80203"}
    wait_for(
        "bob's urgent email",
        lambda: Lead.objects.filter(contractor=bob, state="delivered").count() == len(bob_hit),
        timeout=60,
    )
    took = time.monotonic() - started
    assert took < 30, took  # generous for a busy machine; bench/storm.py measures it

    # Only the homes the storm reaches were rescored, by one incremental run; the others keep their scores.
    run = ScoringRun.objects.get(kind="incremental")
    storms_import = ImportRun.objects.get(kind="storms")
    assert (run.trade, run.status, run.properties_scored, run.scores_changed, run.cause) == (
        roofing, "succeeded", len(hit), len(hit), f"import {storms_import.pk}",
    )  # fmt: skip
    after = dict(Score.objects.filter(trade=roofing).values_list("property_id", "scored_at"))
    assert {pk for pk in after if after[pk] != before[pk]} == {home.pk for home in hit}
    assert set(Score.objects.filter(property__in=missed).values_list("score", flat=True)) == {0.0}
    assert set(Score.objects.filter(property__in=hit).values_list("score", "urgency")) == {(75.0, 100.0)}
    note = (
        f"{len(hit)} properties rescored for 1 trade ({len(hit)} scores changed); {len(hit)} new leads, "
        f"{len(acme_hit) + len(bob_hit)} assigned."
    )
    assert (storms_import.rescoring, storms_import.rescoring_note) == ("done", note)

    # Every hit home is an urgent lead; acme's came by signed webhook, bob's by the urgent email.
    leads = {lead.property_id: lead for lead in Lead.objects.filter(trade=roofing)}
    assert set(leads) == {home.pk for home in hit}
    assert {lead.urgent for lead in leads.values()} == {True}
    by_contractor = {(lead.contractor_id, lead.state) for lead in leads.values()}
    assert by_contractor == {(acme.pk, "delivered"), (bob.pk, "delivered"), (None, "generated")}
    posted = {}
    for headers, body in receiver.requests:
        data = json.loads(body)
        assert signature_valid(acme.webhook_secret, headers, body)
        assert (headers["X-LeadEngine-Event"], data["event"]) == ("lead.assigned", "lead.assigned")
        lead = leads[Property.objects.get(parcel_id=data["property"]["parcel_id"]).pk]
        assert headers["Idempotency-Key"] == idempotency_key(lead_id=lead.pk, assigned_at=lead.assigned_at)
        assert data["urgent"] is True
        posted[lead.property_id] = data
    assert set(posted) == acme_hit
    assert set(LeadEvent.objects.filter(lead__contractor=bob, action="deliver").values_list("reason", flat=True)) == {
        "email"
    }
    log = Path(worker.log).read_text()
    assert "Subject: LeadEngine: 8 urgent leads" in log
    assert "To: bob@example.com" in log

    # The same file again: nothing changed, nothing pending, nothing sent.
    requests, lead_count, runs_count = len(receiver.requests), Lead.objects.count(), ScoringRun.objects.count()
    call_command("import_data", "storms", str(storm_file(tmp_path / "again.csv")))
    again = ImportRun.objects.order_by("-pk").first()
    assert (again.rows_unchanged, again.rescoring) == (1, "")
    assert imports_rescore() is None
    time.sleep(1)
    assert (len(receiver.requests), Lead.objects.count(), ScoringRun.objects.count()) == (
        requests, lead_count, runs_count,
    )  # fmt: skip


# --- The pieces, in this process ----------------------------------------------------------------------------


def import_storm(path: Path) -> ImportRun:
    call_command("import_data", "storms", str(path))
    return ImportRun.objects.order_by("-pk").first()


@pytest.mark.django_db
def test_the_properties_a_storm_reaches_are_exactly_those_its_features_count(storm_market, tmp_path):
    roofing, hit, missed = storm_market
    # Around the edge of the radius too: homes 2.9 to 3.1 miles east of the centre.
    year = timezone.localdate().year
    edge = Property.objects.bulk_create(
        Property(parcel_id=f"EDGE-{n}", address=f"{n} Edge Rd", city="Denver", state="CO", zip_code_id="80202",
                 latitude=CENTRE[0], longitude=CENTRE[1] + (2.9 + 0.01 * n) / (69.09 * 0.7688), year_built=1990,
                 roof_year=year - 3)
        for n in range(21)
    )  # fmt: skip
    storms = import_storm(storm_file(tmp_path / "storms.csv"))
    reached = selectors.properties_reached(storm_ids=storms.changed_storms, as_of=timezone.localdate(), window_days=30)
    every = [home.pk for home in (*hit, *missed, *edge)]
    frame = selectors.scoring_properties_of(trade_id=roofing.pk, property_ids=every, as_of=timezone.localdate())
    exposure = features.property_features(
        frame, selectors.scoring_storms(as_of=timezone.localdate(), window_days=30), as_of=timezone.localdate()
    )
    counted = sorted(int(pk) for pk in frame["id"][exposure["hail_inches"].to_numpy() > 0])
    assert reached == counted
    assert {home.pk for home in hit} <= set(reached)
    assert not {home.pk for home in missed} & set(reached)
    assert 0 < len(set(reached) & {home.pk for home in edge}) < len(edge)  # the edge runs through them


@pytest.mark.django_db
def test_a_permit_or_a_property_change_rescores_only_that_property(storm_market, tmp_path):
    roofing, _hit, missed = storm_market
    home = missed[0]
    old = Score.objects.get(property=home, trade=roofing)
    path = tmp_path / "properties.csv"
    path.write_text(f"parcel_id,address,zip,roof_year\n{home.parcel_id},{home.address},{home.zip_code_id},1990\n")
    call_command("import_data", "properties", str(path))
    run = ImportRun.objects.order_by("-pk").first()
    assert (run.rows_updated, run.rescoring, run.changed_properties, run.changed_storms) == (
        1, "pending", [home.pk], [],
    )  # fmt: skip

    done = imports_rescore()

    assert done.properties == 1
    assert done.imports == [run.pk]
    incremental = ScoringRun.objects.get(kind="incremental")
    assert (incremental.properties_scored, incremental.scores_changed, incremental.status) == (1, 1, "succeeded")
    new = Score.objects.get(property=home, trade=roofing)
    assert (old.score, new.score) == (0.0, 25.0)  # a roof of 36 years: the full roof age factor, weight 1 of 4
    assert new.scored_at > old.scored_at
    others = Score.objects.filter(trade=roofing).exclude(property=home)
    assert set(others.values_list("scored_at", flat=True)) == {old.scored_at}
    run.refresh_from_db()
    assert run.rescoring == "done"
    assert imports_rescore() is None  # nothing pending any more


@pytest.mark.django_db
def test_a_storm_is_rescored_beside_a_running_full_run_whose_older_scores_never_replace_it(storm_market, tmp_path):
    """A night's run that read its storms before the storm arrived, and its partition after the storm's
    rescoring (so the digests it read are the storm's): its scores, from older data, are not written."""
    roofing, hit, missed = storm_market
    full = runs.scoring_run_start(trade=roofing, partition_rows=10_000)
    read_at = timezone.now()
    versions = runs._run_versions(full)  # the storms as they were: none

    assert imports_rescore() is None  # nothing imported yet
    import_storm(storm_file(tmp_path / "storms.csv"))
    rescoring = imports_rescore()  # not held back by the full run under way

    assert [run.status for run in rescoring.runs] == ["succeeded"]
    assert ScoringRun.objects.get(pk=full.pk).status == "running"
    partition = ScoringPartition.objects.select_related("run").get(run=full)
    assert runs._partition_claim(partition, "night")
    stale = runs._partition_compute(full, versions, runs._partition_read(full, partition))
    assert set(stale.rows["score"]) == {0.0}  # computed without the storm
    runs._partition_write(partition, stale, "night", read_at)

    assert set(Score.objects.filter(property__in=hit).values_list("score", flat=True)) == {75.0}
    assert set(Score.objects.filter(property__in=missed).values_list("score", flat=True)) == {0.0}
    assert runs.scoring_run_close_if_complete(run_id=full.pk).status == "succeeded"


@pytest.mark.django_db
def test_a_lead_at_or_above_its_trades_urgent_threshold_is_urgent_in_the_api(trades, zip_codes):  # noqa: F811

    roofing = trades["roofing"]
    filters(roofing, urgent_urgency=50)
    calm = scored_home(roofing, score=80, urgency=49.99, zip_code="80202")
    stormy = scored_home(roofing, score=70, urgency=50, zip_code="80202")
    acme = owner(roofing, "80202")

    leads_generate(trade=roofing)
    leads_route(trade_ids=[roofing.pk])

    assert dict(Lead.objects.values_list("property_id", "urgent")) == {calm.pk: False, stormy.pk: True}
    client = api_client(acme)
    urgent = client.get("/api/v1/leads/?urgent=true").json()["results"]
    every = client.get("/api/v1/leads/").json()["results"]
    assert [(lead["property"]["parcel_id"], lead["urgent"]) for lead in urgent] == [(stormy.parcel_id, True)]
    assert sorted(lead["urgent"] for lead in every) == [False, True]


@pytest.mark.django_db
def test_no_threshold_makes_no_lead_urgent(trades, zip_codes):  # noqa: F811

    roofing = trades["roofing"]
    filters(roofing, urgent_urgency=None)
    scored_home(roofing, score=80, urgency=100, zip_code="80202")

    leads_generate(trade=roofing)

    assert list(Lead.objects.values_list("urgent", flat=True)) == [False]


@pytest.mark.django_db
def test_the_recovery_sweep_sends_a_lost_rescoring_and_asks_for_the_urgent_email(storm_market, idle_queue, tmp_path):
    roofing, _hit, _missed = storm_market
    bob = owner(roofing, "80203", webhook_url="", contact_email="bob@example.com")
    storms = import_storm(storm_file(tmp_path / "storms.csv"))  # its task is never sent: no commit here
    later = timezone.now() + timedelta(minutes=2)

    assert jobs_recover(now=timezone.now())["fast_path"] == {"rescoring_sent": False, "urgent_email_asked": False}
    assert jobs_recover(now=later)["fast_path"] == {"rescoring_sent": True, "urgent_email_asked": False}
    assert [m["headers"]["task"] for m in idle_queue()] == ["leadengine.imports_rescore"]

    imports_rescore()  # as the task would
    storms.refresh_from_db()
    assert storms.rescoring == "done"
    assert Lead.objects.filter(contractor=bob, state="assigned", urgent=True).count() == HIT["80203"]
    assert jobs_recover(now=later)["fast_path"] == {"rescoring_sent": False, "urgent_email_asked": True}
    assert list(JobRun.objects.filter(job="urgent_email").values_list("status", flat=True)) == ["queued"]


@pytest.mark.django_db
def test_an_incremental_run_is_not_resumed(storm_market, tmp_path):
    _roofing, _hit, _missed = storm_market
    import_storm(storm_file(tmp_path / "storms.csv"))
    run = imports_rescore().runs[0]
    ScoringRun.objects.filter(pk=run.pk).update(status="failed")
    run.refresh_from_db()

    with pytest.raises(ScoringError, match="is incremental: it is not resumed"):
        runs.scoring_run_resume(run=run)


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_in_the_middle_of_the_fast_path_loses_nothing_and_the_sweep_finishes_it(
    storm_market, receiver, workers, tmp_path
):
    from core import locks
    from tests.leadengine.test_automation import backend_alive, blocked_by
    from tests.workers import database_url

    roofing, hit, _missed = storm_market
    acme = owner(roofing, "80202", webhook_url=receiver.url)
    first = workers(**RECEIVER_ENV)
    before = dict(Score.objects.filter(trade=roofing).values_list("property_id", "scored_at"))

    # The test's own connection holds the trade's generation lock: the fast path rescores (in its transaction),
    # then waits for it before making leads; it is killed there.
    with psycopg.connect(database_url()) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", [locks.LEAD_GENERATION, roofing.pk])
        call_command("import_data", "storms", str(storm_file(tmp_path / "storms.csv")))
        [(pid, query)] = wait_for("the fast path to wait for the generation lock", lambda: blocked_by(holder))
        assert "pg_advisory_xact_lock" in query
        first.kill()
        holder.rollback()
    wait_for("the killed worker's session to end", lambda: not backend_alive(pid), timeout=30)

    # Nothing of the pass stayed: the scores as they were, no incremental run, the import still pending.
    assert dict(Score.objects.filter(trade=roofing).values_list("property_id", "scored_at")) == before
    assert not ScoringRun.objects.filter(kind="incremental").exists()
    assert not Lead.objects.exists()
    assert ImportRun.objects.get(kind="storms").rescoring == "pending"

    # A new worker; the recovery sweep (a minute later) sends the task again, and the pass is done once.
    workers(**RECEIVER_ENV)
    assert jobs_recover(now=timezone.now() + timedelta(minutes=2))["fast_path"]["rescoring_sent"]
    acme_hit = {home.pk for home in hit if home.zip_code_id == "80202"}
    # Delivered once its answer is recorded, just after the receiver got the POST.
    wait_for(
        "acme's leads delivered",
        lambda: Lead.objects.filter(contractor=acme, state="delivered").count() == len(acme_hit),
        timeout=60,
    )
    assert len(receiver.requests) == len(acme_hit)
    assert ImportRun.objects.get(kind="storms").rescoring == "done"
    assert ScoringRun.objects.filter(kind="incremental").count() == 1
    assert Lead.objects.filter(contractor=acme, state="delivered").count() == len(acme_hit)
    assert Lead.objects.count() == len(hit)


@pytest.mark.django_db(transaction=True)
def test_a_full_run_and_the_fast_path_racing_on_their_own_connections_end_with_the_storms_scores(
    storm_market, tmp_path
):
    """The night's run reads its storms first, then scores partition after partition on its threads' own
    connections while the storm is imported and rescored on this one: whichever writes a home's score last,
    every hit home ends with the storm's score, and both runs succeed."""
    import threading

    from django.db import connection as this_connection

    roofing, hit, missed = storm_market
    for attempt in range(3):  # different interleavings each time
        # No storm again, the scores back to 0 (by a full run's own rule: a run reading later data wins).
        StormEvent.objects.all().delete()
        assert runs.trade_score(trade=roofing).status == "succeeded"
        assert set(Score.objects.filter(trade=roofing).values_list("score", flat=True)) == {0.0}
        full = runs.scoring_run_start(trade=roofing, partition_rows=2)
        outcome: dict = {}

        def night(full=full, outcome=outcome) -> None:
            try:
                outcome["run"] = runs.scoring_run_execute(run=full)
            finally:
                this_connection.close()

        thread = threading.Thread(target=night)
        thread.start()
        wait_for("the night's run to start", lambda full=full: full.partition_set.exclude(status="pending").exists())
        import_storm(storm_file(tmp_path / f"storms-{attempt}.csv"))
        rescoring = imports_rescore()
        thread.join(timeout=120)

        assert outcome["run"].status == "succeeded"
        assert [run.status for run in rescoring.runs] == ["succeeded"]
        assert set(Score.objects.filter(property__in=hit).values_list("score", flat=True)) == {75.0}
        assert set(Score.objects.filter(property__in=missed).values_list("score", flat=True)) == {0.0}
