"""Rules about scores and model versions that PostgreSQL keeps, whatever the writer."""

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from scoring.models import Factor, Property, Score, ScoringModel, Trade
from scoring.services import runs
from tests.scoring.test_scoring_runs import AS_OF, FACTORS, home, model_version


@pytest.fixture
def scored(roofing_trade):
    model = model_version(roofing_trade, 1)
    homes = [home("I-1", year_built=1990), home("I-2", year_built=2000)]
    runs.trade_score(trade=roofing_trade, as_of=AS_OF)
    return model, homes


@pytest.fixture
def roofing_trade(zip_codes):
    trade, _ = Trade.objects.get_or_create(slug="roofing", defaults={"name": "Roofing"})
    ScoringModel.objects.filter(trade=trade).delete()
    return trade


def insert_score(property_id: int, trade_id: int, model_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO scoring_score (property_id, trade_id, model_id, score, urgency, reasons, digest, scored_at)"
            " VALUES (%s, %s, %s, 50, 0, '[]', 1, now())",
            [property_id, trade_id, model_id],
        )


@pytest.mark.parametrize(
    ("reference", "message"),
    [("property", "a score refers to property 987654321"), ("trade", "a score refers to trade 987654321"),
     ("model", "a score refers to scoring model 987654321")],
)  # fmt: skip
def test_a_score_refering_to_something_missing_is_refused(scored, roofing_trade, reference, message):
    model, homes = scored
    Score.objects.filter(property=homes[0]).delete()
    ids = {"property": homes[0].pk, "trade": roofing_trade.pk, "model": model.pk, reference: 987654321}
    with pytest.raises(IntegrityError, match=message), transaction.atomic():
        insert_score(ids["property"], ids["trade"], ids["model"])
    assert not Score.objects.filter(property=homes[0]).exists()


def test_a_score_keeps_its_property_and_trade_and_refers_to_an_existing_model(scored):
    _model, homes = scored
    score = Score.objects.get(property=homes[0])
    with pytest.raises(IntegrityError, match="the property and trade of a score never change"), transaction.atomic():
        Score.objects.filter(pk=score.pk).update(property=homes[1])
    with pytest.raises(IntegrityError, match="scoring model 987654321 which does not exist"), transaction.atomic():
        Score.objects.filter(pk=score.pk).update(model_id=987654321)
    assert Score.objects.get(pk=score.pk).property_id == homes[0].pk


def test_deleting_properties_deletes_their_scores_even_in_plain_sql(scored):
    _model, homes = scored
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM scoring_sale WHERE property_id = %s", [homes[0].pk])
        cursor.execute("DELETE FROM scoring_property WHERE id = %s", [homes[0].pk])
    assert list(Score.objects.values_list("property_id", flat=True)) == [homes[1].pk]
    Property.objects.filter(pk=homes[1].pk).delete()  # the ORM's own cascade agrees
    assert not Score.objects.exists()


def test_a_trade_or_model_version_with_scores_cannot_be_deleted(scored, roofing_trade):
    model, _ = scored
    with connection.cursor() as cursor:
        with pytest.raises(IntegrityError, match=r"scoring_trade .* has scores"), transaction.atomic():
            cursor.execute("DELETE FROM scoring_trade WHERE id = %s", [roofing_trade.pk])
        with pytest.raises(IntegrityError, match=r"has scores and cannot be deleted|frozen"), transaction.atomic():
            cursor.execute("DELETE FROM scoring_scoringmodel WHERE id = %s", [model.pk])
    assert Score.objects.count() == 2
    assert ScoringModel.objects.filter(pk=model.pk).exists()


def test_an_active_or_retired_version_is_frozen(roofing_trade):
    active = model_version(roofing_trade, 1)
    factor = active.factors.first()

    with pytest.raises(IntegrityError, match="its factors are frozen"), transaction.atomic():
        Factor.objects.filter(pk=factor.pk).update(weight=99)
    with pytest.raises(IntegrityError, match="its factors are frozen"), transaction.atomic():
        Factor.objects.create(model=active, position=9, feature="home_age", transform="flag", weight=1)
    with pytest.raises(IntegrityError, match="only its notes and status"), transaction.atomic():
        ScoringModel.objects.filter(pk=active.pk).update(storm_window_days=30)
    with pytest.raises(IntegrityError, match="only its notes and status"), transaction.atomic():
        ScoringModel.objects.filter(pk=active.pk).update(status=ScoringModel.Status.DRAFT)

    ScoringModel.objects.filter(pk=active.pk).update(notes="Reviewed")  # notes stay editable
    assert Factor.objects.get(pk=factor.pk).weight == FACTORS[0][3]
    assert ScoringModel.objects.get(pk=active.pk).storm_window_days == 90


def test_an_unused_version_can_still_be_deleted_but_not_one_that_scored(roofing_trade):
    unused = model_version(roofing_trade, 1)
    ScoringModel.objects.filter(pk=unused.pk).delete()
    assert not Factor.objects.filter(model_id=unused.pk).exists()

    used = model_version(roofing_trade, 2)
    home("I-9")
    runs.trade_score(trade=roofing_trade, as_of=AS_OF)
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM scoring_factor WHERE model_id = %s", [used.pk])
    assert used.factors.count() == len(FACTORS)


def test_reasons_are_stored_as_written_and_read_back_as_lists(scored):
    _, homes = scored
    score = Score.objects.get(property=homes[0])
    text = "No roof replacement on record; home built in 1990"
    assert score.reasons == [{"feature": "roof_age", "value": 36, "points": 50.0, "text": text}]
    with connection.cursor() as cursor:
        cursor.execute("SELECT reasons::text FROM scoring_score WHERE id = %s", [score.pk])
        assert cursor.fetchone()[0] == (f'[{{"feature":"roof_age","value":36,"points":50.0,"text":"{text}"}}]')
    # Rewritten by a later run (an update, not an insert): still as written.
    Property.objects.filter(pk=homes[0].pk).update(year_built=1989)
    runs.trade_score(trade=score.trade, as_of=AS_OF)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reasons::text FROM scoring_score WHERE id = %s", [score.pk])
        assert cursor.fetchone()[0] == (
            '[{"feature":"roof_age","value":37,"points":50.0,'
            '"text":"No roof replacement on record; home built in 1989"}]'
        )
    Score.objects.filter(pk=score.pk).update(reasons=[{"text": "by hand"}], scored_at=timezone.now())
    assert Score.objects.get(pk=score.pk).reasons == [{"text": "by hand"}]


def test_the_storm_window_of_a_model_bounds_the_storms_it_sees(roofing_trade):
    model_version(roofing_trade, 1, window=30)
    homes = [home("W-1", year_built=2016)]
    from tests.scoring.test_scoring_runs import storm

    storm("W-H1", 2.0, AS_OF - dt.timedelta(days=31))
    runs.trade_score(trade=roofing_trade, as_of=AS_OF)
    assert Score.objects.get(property=homes[0]).score == 0.0
