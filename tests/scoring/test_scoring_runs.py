import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from scoring import geo
from scoring.errors import ScoringError, ScoringRunBusy
from scoring.models import Factor, Property, Score, ScoringModel, ScoringPartition, ScoringRun, StormEvent, Trade
from scoring.services import runs
from scoring.services import scores as scores_service
from scoring.services.scoring_models import scoring_model_activate
from tests.racing import race

AS_OF = dt.date(2026, 6, 1)
MILE = 1 / geo.MILES_PER_DEGREE
BOULDER = (40.0150, -105.2705)  # in ZIP 80302

# A small model whose scores can be worked out by hand. Without a roof year on record, the roof's age is
# the home's, and its reason says that.
FACTORS = [
    (
        "roof_age",
        "ramp",
        {"low": 10, "high": 30},
        50,
        "Roof is {value:.0f} years old",
        "No roof replacement on record; home built in {year_built:.0f}",
    ),
    ("hail_inches", "step", {"threshold": 1.0}, 30, "{value:.2f} in hail {hail_where} on {hail_date}"),
    ("days_since_hail", "decay", {"half_life_days": 30}, 20, "Hail {value:.0f} days ago"),
]


def model_version(trade: Trade, version: int, factors=FACTORS, *, window: int = 90) -> ScoringModel:
    model = ScoringModel.objects.create(trade=trade, version=version, storm_window_days=window)
    for position, (feature, transform, params, weight, reason, *fallback) in enumerate(factors):
        Factor.objects.create(model=model, position=position, feature=feature, transform=transform, params=params,
                              weight=weight, reason=reason, reason_fallback="".join(fallback))  # fmt: skip
    return scoring_model_activate(model=model)


def home(parcel: str, **values) -> Property:
    defaults = {"address": f"{parcel} Main St", "city": "Boulder", "state": "CO", "zip_code_id": "80302",
                "latitude": BOULDER[0], "longitude": BOULDER[1], "year_built": 2000}  # fmt: skip
    return Property.objects.create(parcel_id=parcel, **{**defaults, **values})


def storm(event_id: str, inches: float, date: dt.date, **values) -> StormEvent:
    located = {"latitude": BOULDER[0], "longitude": BOULDER[1], "radius_miles": 2.0}
    return StormEvent.objects.create(
        event_id=event_id, event_date=date, kind="hail", magnitude=inches, **{**located, **values}
    )


@pytest.fixture
def roofing(zip_codes):
    trade, _ = Trade.objects.get_or_create(slug="roofing", defaults={"name": "Roofing"})
    ScoringModel.objects.filter(trade=trade).delete()
    return trade


@pytest.fixture
def market(roofing):
    """Four homes whose roofing scores on AS_OF are worked out in the test below."""
    homes = {
        "old_roof_hail": home("A-1", year_built=1996, latitude=BOULDER[0] + 1 * MILE),
        "new_roof": home("A-2", year_built=1960, roof_year=2016),
        "no_coordinates": home("A-3", year_built=2006, latitude=None, longitude=None, zip_code_id="80301"),
        "young": home("A-4", year_built=2020),
    }
    storm("H-1", 1.5, AS_OF - dt.timedelta(days=30))  # reaches A-1 (1 mile), A-2, A-4 (0 miles)
    storm("H-2", 1.0, AS_OF - dt.timedelta(days=60), latitude=None, longitude=None, radius_miles=None,
          zip_code_id="80301")  # fmt: skip
    storm("H-3", 3.0, AS_OF - dt.timedelta(days=100))  # before the 90-day window
    return homes


def scores(trade: Trade) -> dict[str, tuple]:
    return {
        score.property.parcel_id: (score.score, score.urgency, score.model.version, [r["text"] for r in score.reasons])
        for score in Score.objects.filter(trade=trade).select_related("property", "model")
    }


def test_a_run_gives_exactly_the_scores_worked_out_by_hand(roofing, market):
    model_version(roofing, 1)
    run = runs.trade_score(trade=roofing, as_of=AS_OF)

    assert scores(roofing) == {
        # roof 30 years: 50; hail 1.5 in: 30; 30 days ago: 20 x 0.5 = 10.
        "A-1": (
            90.0,
            50.0,
            1,
            [
                "No roof replacement on record; home built in 1996",
                "1.50 in hail 1.0 mi away on 2026-05-02",
                "Hail 30 days ago",
            ],
        ),
        # roof 10 years: 0; the same storm, right overhead.
        "A-2": (40.0, 50.0, 1, ["1.50 in hail 0.0 mi away on 2026-05-02", "Hail 30 days ago"]),
        # No coordinates: at its ZIP's centroid, miles from H-1, but in the ZIP of H-2 (60 days: 20 x 0.25).
        "A-3": (
            60.0,
            25.0,
            1,
            [
                "1.00 in hail in its ZIP on 2026-04-02",
                "No roof replacement on record; home built in 2006",
                "Hail 60 days ago",
            ],
        ),
        "A-4": (40.0, 50.0, 1, ["1.50 in hail 0.0 mi away on 2026-05-02", "Hail 30 days ago"]),
    }
    reasons = Score.objects.get(property=market["old_roof_hail"], trade=roofing).reasons
    assert reasons[0] == {
        "feature": "roof_age", "value": 30, "points": 50.0, "text": "No roof replacement on record; home built in 1996"
    }  # fmt: skip
    assert (run.status, run.properties_scored, run.scores_changed, run.partitions, run.error) == (
        ScoringRun.Status.SUCCEEDED, 4, 4, 1, ""
    )  # fmt: skip
    assert run.distribution == {
        "count": 4, "mean_score": 57.5, "mean_urgency": 43.75,
        "p5": 40.0, "p10": 40.0, "p25": 40.0, "p50": 40.0, "p75": 60.0, "p90": 90.0, "p95": 90.0, "p99": 90.0,
        "histogram": {"0-10": 0, "10-20": 0, "20-30": 0, "30-40": 0, "40-50": 2, "50-60": 0, "60-70": 1, "70-80": 0,
                      "80-90": 0, "90-100": 1},
    }  # fmt: skip


def test_partitioned_and_single_partition_runs_write_the_same_scores(roofing, market):
    model_version(roofing, 1)
    single = runs.trade_score(trade=roofing, as_of=AS_OF, partition_rows=1000)
    whole = scores(roofing)
    Score.objects.all().delete()

    partitioned = runs.trade_score(trade=roofing, as_of=AS_OF, partition_rows=1)

    assert (single.partitions, partitioned.partitions) == (1, 4)
    assert scores(roofing) == whole
    assert partitioned.distribution == single.distribution
    ranges = list(partitioned.partition_set.values_list("first_id", "last_id"))
    ids = sorted(p.pk for p in market.values())
    assert ranges == [(pk, pk) for pk in ids]


def test_a_rerun_writes_only_the_scores_that_changed(roofing, market):
    model_version(roofing, 1)
    runs.trade_score(trade=roofing, as_of=AS_OF)
    before = dict(Score.objects.values_list("property__parcel_id", "scored_at"))

    same_day = runs.trade_score(trade=roofing, as_of=AS_OF)
    next_day = runs.trade_score(trade=roofing, as_of=AS_OF + dt.timedelta(days=1))

    assert (same_day.properties_scored, same_day.scores_changed) == (4, 0)
    assert (next_day.properties_scored, next_day.scores_changed) == (4, 4)  # every storm decayed a day
    after = dict(Score.objects.values_list("property__parcel_id", "scored_at"))
    assert all(after[parcel] > before[parcel] for parcel in before)


def test_a_failing_partition_fails_the_run_leaves_whole_rows_and_resuming_completes(roofing, market, failing_property):
    model_version(roofing, 1)
    runs.trade_score(trade=roofing, as_of=AS_OF)
    version_one = scores(roofing)
    # Version 2 weighs the roof alone.
    model_version(roofing, 2, [FACTORS[0]])
    failing_property(market["no_coordinates"].pk)

    run = runs.trade_score(trade=roofing, as_of=AS_OF, partition_rows=1)

    assert run.status == ScoringRun.Status.FAILED
    failed = run.partition_set.get(status=ScoringPartition.Status.FAILED)
    assert (failed.first_id, failed.attempts) == (market["no_coordinates"].pk, 1)  # not a lost connection
    assert "storage fault for the test" in failed.error
    assert run.error.startswith(f"partition {failed.number} (properties {failed.first_id}-{failed.last_id}): ")
    assert run.properties_scored == 3
    # Every score is one version's whole row: A-3 still version 1's, the others version 2's.
    assert scores(roofing) == {
        "A-1": (100.0, 0.0, 2, ["No roof replacement on record; home built in 1996"]),
        "A-2": (0.0, 0.0, 2, []),
        "A-3": version_one["A-3"],
        "A-4": (0.0, 0.0, 2, []),
    }

    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_score_fault ON scoring_score")
    resumed = runs.scoring_run_execute(run=runs.scoring_run_resume(run=run))

    assert (resumed.pk, resumed.status, resumed.properties_scored, resumed.error) == (
        run.pk, ScoringRun.Status.SUCCEEDED, 4, ""
    )  # fmt: skip
    assert scores(roofing)["A-3"] == (50.0, 0.0, 2, ["No roof replacement on record; home built in 2006"])
    assert resumed.partition_set.get(pk=failed.pk).attempts == 2


def test_a_second_run_of_a_trade_is_refused_while_one_runs_and_an_abandoned_one_is_closed(roofing, market, settings):
    model_version(roofing, 1)
    first = runs.scoring_run_start(trade=roofing, as_of=AS_OF)

    with pytest.raises(ScoringRunBusy, match=f"a scoring run of Roofing is already running \\(run {first.pk}\\)"):
        runs.scoring_run_start(trade=roofing, as_of=AS_OF)
    assert ScoringRun.objects.count() == 1

    ScoringRun.objects.filter(pk=first.pk).update(heartbeat_at=timezone.now() - dt.timedelta(seconds=61))
    second = runs.trade_score(trade=roofing, as_of=AS_OF)

    first.refresh_from_db()
    assert first.status == ScoringRun.Status.FAILED
    assert first.error == "abandoned: no progress for 60 s (its process or workers stopped); resume it to finish"
    assert second.status == ScoringRun.Status.SUCCEEDED


def test_a_trade_without_an_active_model_is_not_scored(roofing, market):
    with pytest.raises(ScoringError, match="Roofing has no active scoring model"):
        runs.scoring_run_start(trade=roofing)
    assert not ScoringRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_runs_of_one_trade_started_at_the_same_moment_never_overlap(zip_codes):
    trade = Trade.objects.create(slug="roofing-race", name="Roofing race")
    model_version(trade, 1)
    home("R-1")

    def start(_):
        return runs.scoring_run_start(trade=trade, as_of=AS_OF)

    results, errors = race(start, range(8))

    assert len([result for result in results if result is not None]) == 1
    assert len(errors) == 7
    assert all(isinstance(error, ScoringRunBusy) for error in errors)
    assert ScoringRun.objects.filter(trade=trade).count() == 1


def test_rescoring_a_changed_property_gives_what_a_full_run_gives(roofing, market):
    model_version(roofing, 1)
    runs.trade_score(trade=roofing, as_of=AS_OF)
    changed = market["new_roof"]
    Property.objects.filter(pk=changed.pk).update(roof_year=None)  # the roof is as old as the house: 66 years

    rescored = scores_service.property_rescore(property_id=changed.pk, as_of=AS_OF)

    # Every trade with an active model: the seeded trades' default models, and this test's roofing model.
    assert {s.trade.slug for s in rescored} == set(
        ScoringModel.objects.filter(status="active").values_list("trade__slug", flat=True)
    )
    assert [(s.score, s.model.version) for s in rescored if s.trade == roofing] == [(90.0, 1)]
    after_rescore = scores(roofing)
    Score.objects.all().delete()
    runs.trade_score(trade=roofing, as_of=AS_OF)
    assert scores(roofing) == after_rescore
    assert after_rescore["A-2"][0] == 90.0


def test_the_score_command_scores_every_trade_with_an_active_model_and_reports(roofing, market):
    model_version(roofing, 1)
    out, err = io.StringIO(), io.StringIO()
    call_command("score", "--as-of", "2026-06-01", stdout=out, stderr=err)

    run = ScoringRun.objects.get(trade=roofing)
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == sorted(
        ScoringModel.objects.filter(status="active").values_list("trade__slug", flat=True)
    )
    roofing_line = next(line for line in lines if line.startswith("roofing:"))
    assert roofing_line.startswith(
        f"roofing: run {run.pk} succeeded, model v1, 4 properties scored (4 scores changed) in "
    )
    assert roofing_line.endswith("; median score 40.0, 90th percentile 90.0")
    assert Score.objects.filter(trade=roofing).count() == 4


def test_the_score_command_refuses_an_unknown_trade_and_names_the_trades(roofing, market):
    with pytest.raises(Exception, match=r"unknown trade plumbing; the trades are .*roofing"):
        call_command("score", "--trade", "plumbing")
    assert not ScoringRun.objects.exists()


def test_the_score_command_exits_2_when_no_run_could_start(roofing, market):
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("score", "--trade", "roofing", stderr=err)
    assert exit_.value.code == 2
    assert err.getvalue() == "Roofing has no active scoring model; activate one in the admin first\n"


@pytest.mark.django_db(transaction=True)
def test_a_run_on_its_own_threads_records_a_failing_partition_and_scores_the_others(zip_codes, failing_property):
    trade = Trade.objects.create(slug="roofing-threads", name="Roofing (threads)")
    model_version(trade, 1, [FACTORS[0]])
    homes = [home(f"T-{n}", year_built=2000 + 2 * n) for n in range(5)]  # roofs of 26, 24, ... 18 years
    failing_property(homes[2].pk)

    run = runs.trade_score(trade=trade, as_of=AS_OF, partition_rows=1)

    assert (run.status, run.partitions, run.properties_scored) == (ScoringRun.Status.FAILED, 5, 4)
    failed = run.partition_set.get(status=ScoringPartition.Status.FAILED)
    assert (failed.number, failed.attempts) == (3, 1)
    assert "storage fault for the test" in failed.error
    assert dict(Score.objects.filter(trade=trade).values_list("property__parcel_id", "score")) == {
        "T-0": 80.0, "T-1": 70.0, "T-3": 50.0, "T-4": 40.0,
    }  # fmt: skip


def test_a_run_over_a_market_without_properties_succeeds_with_nothing_scored(roofing):
    model_version(roofing, 1)
    here = runs.trade_score(trade=roofing, as_of=AS_OF)
    sent = runs.scoring_run_start(trade=roofing, as_of=AS_OF, distributed=True)

    assert runs.scoring_run_dispatch(run=sent) == 0
    sent.refresh_from_db()
    for run in (here, sent):
        assert (run.status, run.partitions, run.properties_scored, run.distribution) == (
            ScoringRun.Status.SUCCEEDED, 0, 0, {"count": 0}
        )  # fmt: skip
