"""Champion and challenger: a trade's challenger version scores every property in shadow and writes the scores
of a stable share of them; it is then promoted or its challenge ends."""

import datetime as dt
import io

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, transaction

from scoring.challengers import in_challenger_share
from scoring.errors import ChallengeError
from scoring.models import Factor, Property, Score, ScoringModel, Trade
from scoring.services import runs
from scoring.services import scores as scores_service
from scoring.services.preview import scoring_model_preview
from scoring.services.scoring_models import (
    scoring_model_activate,
    scoring_model_challenge,
    scoring_model_challenge_end,
)
from tests.admin_pages import messages_of
from tests.racing import race
from tests.scoring.test_scoring_runs import AS_OF, BOULDER, FACTORS, model_version, storm

# The challenger: roof age alone, on the same ramp; with a 20-day storm window where it has storm factors.
ROOF_FALLBACK = "No roof replacement on record; home built in {year_built:.0f}"
ROOF_ONLY = [("roof_age", "ramp", {"low": 10, "high": 30}, 50, "Roof is {value:.0f} years old")]


def draft(trade: Trade, version: int, factors=ROOF_ONLY, *, window: int = 90) -> ScoringModel:
    model = ScoringModel.objects.create(trade=trade, version=version, storm_window_days=window)
    for position, (feature, transform, params, weight, reason, *given) in enumerate(factors):
        # A factor on roof age says what it falls back to when no roof year is on record (FACTORS names its own).
        fallback = "".join(given) or (ROOF_FALLBACK if reason and feature == "roof_age" else "")
        Factor.objects.create(model=model, position=position, feature=feature, transform=transform, params=params,
                              weight=weight, reason=reason, reason_fallback=fallback)  # fmt: skip
    return model


@pytest.fixture
def roofing(zip_codes):
    trade, _ = Trade.objects.get_or_create(slug="roofing", defaults={"name": "Roofing"})
    ScoringModel.objects.filter(trade=trade).delete()
    return trade


@pytest.fixture
def street(roofing):
    """200 homes built 1990 to 2026 (roofs of 36 down to 0 years), no storms."""
    place = {"city": "Boulder", "state": "CO", "zip_code_id": "80302", "latitude": BOULDER[0], "longitude": BOULDER[1]}
    Property.objects.bulk_create(
        Property(parcel_id=f"S-{n:03d}", address=f"{n} Elm St", year_built=1990 + n % 37, **place) for n in range(200)
    )
    return list(Property.objects.filter(parcel_id__startswith="S-").order_by("pk"))


# Services


def test_a_draft_becomes_the_challenger_with_its_share(roofing):
    model_version(roofing, 1)
    challenger = scoring_model_challenge(model=draft(roofing, 2), share=0.25)

    challenger.refresh_from_db()
    assert (challenger.status, challenger.challenger_share) == (ScoringModel.Status.CHALLENGER, 0.25)
    assert dict(ScoringModel.objects.filter(trade=roofing).values_list("version", "status")) == {
        1: "active",
        2: "challenger",
    }


@pytest.mark.parametrize("share", [0, 1, -0.1, 1.5])
def test_a_share_outside_zero_to_one_is_refused(roofing, share):
    model_version(roofing, 1)
    candidate = draft(roofing, 2)

    with pytest.raises(ChallengeError, match=r"between 0 and 1, both excluded") as refused:
        scoring_model_challenge(model=candidate, share=share)

    assert (refused.value.code, refused.value.http_status) == ("challenger_share_invalid", 400)
    assert ScoringModel.objects.get(pk=candidate.pk).status == ScoringModel.Status.DRAFT


def test_a_trade_without_an_active_version_has_nothing_to_challenge(roofing):
    candidate = draft(roofing, 1)
    with pytest.raises(ChallengeError, match="Roofing has no active version to challenge; activate one first"):
        scoring_model_challenge(model=candidate, share=0.1)
    assert ScoringModel.objects.get(pk=candidate.pk).status == ScoringModel.Status.DRAFT


def test_a_second_challenger_for_the_trade_is_refused(roofing):
    model_version(roofing, 1)
    scoring_model_challenge(model=draft(roofing, 2), share=0.1)
    second = draft(roofing, 3)

    with pytest.raises(ChallengeError, match="Roofing already runs a challenger, v2: promote it or end its challenge"):
        scoring_model_challenge(model=second, share=0.1)

    assert ScoringModel.objects.get(pk=second.pk).status == ScoringModel.Status.DRAFT
    # The database holds the rule too.
    with pytest.raises(IntegrityError, match="one_challenger_per_trade"), transaction.atomic():
        ScoringModel.objects.filter(pk=second.pk).update(status=ScoringModel.Status.CHALLENGER)


def test_only_a_draft_with_a_valid_definition_becomes_a_challenger(roofing):
    active = model_version(roofing, 1)
    with pytest.raises(ChallengeError, match=r"Roofing v1 \(Active\) is not a draft"):
        scoring_model_challenge(model=active, share=0.1)

    bad = draft(roofing, 2, [("roof_age", "ramp", {"low": 30, "high": 10}, 50, "")])
    with pytest.raises(ValidationError, match="a ramp needs low < high"):
        scoring_model_challenge(model=bad, share=0.1)
    assert ScoringModel.objects.get(pk=bad.pk).status == ScoringModel.Status.DRAFT


@pytest.mark.django_db(transaction=True)
def test_racing_challenges_leave_exactly_one_challenger(zip_codes):
    trade = Trade.objects.create(slug="gutters", name="Gutters")
    model_version(trade, 1)
    candidates = [draft(trade, number) for number in range(2, 6)]

    results, errors = race(lambda model: scoring_model_challenge(model=model, share=0.1), candidates)

    assert len([result for result in results if result is not None]) == 1
    assert len(errors) == 3
    assert all(isinstance(error, ChallengeError) for error in errors)
    assert sorted(ScoringModel.objects.filter(trade=trade).values_list("status", flat=True)) == [
        "active", "challenger", "draft", "draft", "draft",
    ]  # fmt: skip


def test_the_factors_and_share_of_a_challenger_are_frozen(roofing):
    model_version(roofing, 1)
    challenger = scoring_model_challenge(model=draft(roofing, 2), share=0.1)
    factor = challenger.factors.get()

    with pytest.raises(IntegrityError, match="its factors are frozen"), transaction.atomic():
        Factor.objects.filter(pk=factor.pk).update(weight=99)
    with pytest.raises(IntegrityError, match="its factors are frozen"), transaction.atomic():
        Factor.objects.create(model=challenger, position=1, feature="home_age", transform="ramp",
                              params={"low": 1, "high": 2}, weight=1)  # fmt: skip
    with pytest.raises(IntegrityError, match="only its notes and status"), transaction.atomic():
        ScoringModel.objects.filter(pk=challenger.pk).update(challenger_share=0.5)
    with pytest.raises(IntegrityError, match="only its notes and status"), transaction.atomic():
        ScoringModel.objects.filter(pk=challenger.pk).update(status=ScoringModel.Status.DRAFT)
    assert ScoringModel.objects.get(pk=challenger.pk).challenger_share == 0.1


def test_ending_a_challenge_retires_the_challenger(roofing):
    active = model_version(roofing, 1)
    challenger = scoring_model_challenge(model=draft(roofing, 2), share=0.1)

    ended = scoring_model_challenge_end(model=challenger)

    assert ended.status == ScoringModel.Status.RETIRED
    assert ScoringModel.objects.get(pk=active.pk).status == ScoringModel.Status.ACTIVE
    with pytest.raises(ChallengeError, match=r"Roofing v2 \(Retired\) is not a challenger"):
        scoring_model_challenge_end(model=ended)
    # The trade may run a new challenger now.
    assert scoring_model_challenge(model=draft(roofing, 3), share=0.2).status == ScoringModel.Status.CHALLENGER


# Scoring with a challenger


def test_a_run_writes_the_challengers_scores_for_its_share_and_the_active_ones_for_the_rest(roofing, street):
    active = model_version(roofing, 1)
    challenger = scoring_model_challenge(model=draft(roofing, 2), share=0.3)

    run = runs.trade_score(trade=roofing, as_of=AS_OF, partition_rows=64)

    ids = np.array([home.pk for home in street])
    theirs = in_challenger_share(ids, 0.3)
    assert abs(theirs.mean() - 0.3) < 0.03  # the stable hash spreads consecutive ids evenly
    written = {s.property_id: s for s in Score.objects.filter(trade=roofing)}
    for home_, in_share in zip(street, theirs, strict=True):
        score = written[home_.pk]
        roof = min(max(2026 - home_.year_built - 10, 0), 20) / 20  # the 10-30 ramp both versions share
        if in_share:
            # Roof age alone, weight 50 of 50; the street has no roof year on record, so its reason falls back.
            assert (score.model_id, score.score) == (challenger.pk, round(100 * roof, 2))
            assert score.reasons == ([] if roof == 0 else [
                {"feature": "roof_age", "value": 2026 - home_.year_built, "points": round(100 * roof, 2),
                 "text": f"No roof replacement on record; home built in {home_.year_built}"}
            ])  # fmt: skip
        else:
            # FACTORS: roof age 50 of 100, no storms.
            assert (score.model_id, score.score) == (active.pk, round(50 * roof, 2))
    assert (run.challenger_id, run.properties_scored, run.scores_changed) == (challenger.pk, 200, 200)
    assert run.shadow_distribution["active"]["count"] == run.shadow_distribution["challenger"]["count"] == 200
    # Both versions over every property: the challenger's roof-only scores are twice the active ones.
    assert run.shadow_distribution["challenger"]["mean_score"] == pytest.approx(
        2 * run.shadow_distribution["active"]["mean_score"], abs=0.02
    )


def test_the_split_is_stable_across_runs_and_rescores(roofing, street):
    model_version(roofing, 1)
    challenger = scoring_model_challenge(model=draft(roofing, 2), share=0.3)
    runs.trade_score(trade=roofing, as_of=AS_OF)
    first = dict(Score.objects.filter(trade=roofing).values_list("property_id", "model_id"))

    again = runs.trade_score(trade=roofing, as_of=AS_OF, partition_rows=7)
    home_in_share = next(h for h in street if in_challenger_share([h.pk], 0.3)[0])
    rescored = scores_service.property_rescore(property_id=home_in_share.pk, as_of=AS_OF)

    assert again.scores_changed == 0  # same properties, same versions, same scores
    assert dict(Score.objects.filter(trade=roofing).values_list("property_id", "model_id")) == first
    assert [s.model_id for s in rescored if s.trade_id == roofing.pk] == [challenger.pk]
    assert first[home_in_share.pk] == challenger.pk


def test_promoting_the_challenger_retires_the_active_version_and_its_scores_keep_their_model(roofing, street):
    active = model_version(roofing, 1)
    challenger = scoring_model_challenge(model=draft(roofing, 2), share=0.3)
    runs.trade_score(trade=roofing, as_of=AS_OF)
    theirs = {pk for pk, model in Score.objects.filter(trade=roofing).values_list("property_id", "model_id")
              if model == challenger.pk}  # fmt: skip
    before = dict(Score.objects.filter(property_id__in=theirs).values_list("property_id", "scored_at"))

    promoted = scoring_model_activate(model=challenger)
    run = runs.trade_score(trade=roofing, as_of=AS_OF)

    assert promoted.status == ScoringModel.Status.ACTIVE
    assert promoted.activated_at is not None
    assert ScoringModel.objects.get(pk=active.pk).status == ScoringModel.Status.RETIRED
    assert (run.challenger_id, run.shadow_distribution) == (None, {})
    # The challenger's rows were already this version's: unchanged, untouched.
    after = dict(Score.objects.filter(property_id__in=theirs).values_list("property_id", "scored_at"))
    assert after == before
    assert set(Score.objects.filter(trade=roofing).values_list("model_id", flat=True)) == {challenger.pk}
    # The others changed version; those with a roof under 10 years score 0 under both, but the version is
    # part of what a score is, so every one of them was written.
    assert run.scores_changed == 200 - len(theirs)


def test_after_the_challenge_ends_the_active_version_scores_everything_again(roofing, street):
    active = model_version(roofing, 1)
    challenger = scoring_model_challenge(model=draft(roofing, 2), share=0.3)
    runs.trade_score(trade=roofing, as_of=AS_OF)
    scoring_model_challenge_end(model=challenger)

    run = runs.trade_score(trade=roofing, as_of=AS_OF)

    assert set(Score.objects.filter(trade=roofing).values_list("model_id", flat=True)) == {active.pk}
    # The challenger's rows are the active version's again (a score's version is part of the score).
    assert run.scores_changed == in_challenger_share([h.pk for h in street], 0.3).sum()


def test_shadow_distributions_are_what_each_version_alone_would_give(roofing, street):
    active = model_version(roofing, 1)
    alone = runs.trade_score(trade=roofing, as_of=AS_OF)
    challenger = scoring_model_challenge(model=draft(roofing, 2), share=0.3)

    together = runs.trade_score(trade=roofing, as_of=AS_OF, partition_rows=50)
    scoring_model_activate(model=challenger)
    promoted = runs.trade_score(trade=roofing, as_of=AS_OF)

    assert together.shadow_distribution == {"active": alone.distribution, "challenger": promoted.distribution}
    assert (alone.model_id, promoted.model_id) == (active.pk, challenger.pk)


def test_a_run_keeps_the_challenger_it_started_with(roofing, street):
    model_version(roofing, 1)
    challenger = scoring_model_challenge(model=draft(roofing, 2), share=0.3)
    run = runs.scoring_run_start(trade=roofing, as_of=AS_OF, partition_rows=100)
    scoring_model_challenge_end(model=challenger)  # while the run is under way

    run = runs.scoring_run_execute(run=run)

    assert run.challenger_id == challenger.pk
    assert (
        Score.objects.filter(trade=roofing, model=challenger).count()
        == in_challenger_share([h.pk for h in street], 0.3).sum()
    )


def test_a_challenger_that_cannot_be_computed_stops_the_run_before_it_starts(roofing, street):
    model_version(roofing, 1)
    # A definition the code cannot compute (as after a feature was renamed), made a challenger past the service.
    bad = draft(roofing, 2, [("roof_colour", "flag", {}, 10, "")])
    ScoringModel.objects.filter(pk=bad.pk).update(status=ScoringModel.Status.CHALLENGER)

    with pytest.raises(ValidationError, match="unknown feature"):
        runs.scoring_run_start(trade=roofing, as_of=AS_OF)
    assert not roofing.scoring_runs.exists()
    assert not Score.objects.filter(trade=roofing).exists()


def test_each_version_scores_with_its_own_storm_window(roofing, street):
    """Hail 30 days ago over the street: the active version's 90-day window sees it, the challenger's 20 days
    do not; both versions are FACTORS otherwise."""
    storm("H-30", 1.5, AS_OF - dt.timedelta(days=30), radius_miles=5.0)
    active = model_version(roofing, 1)
    challenger = scoring_model_challenge(model=draft(roofing, 2, FACTORS, window=20), share=0.3)

    run = runs.trade_score(trade=roofing, as_of=AS_OF)

    written = {s.property_id: s for s in Score.objects.filter(trade=roofing)}
    for home_ in street:
        roof = 50 * min(max(2026 - home_.year_built - 10, 0), 20) / 20
        if in_challenger_share([home_.pk], 0.3)[0]:
            expected = (challenger.pk, round(roof, 2), 0.0)  # no storm in 20 days
        else:
            expected = (active.pk, round(roof + 30 + 20 * 0.5, 2), 50.0)  # 1.5 in hail; 30 days: half the decay
        score = written[home_.pk]
        assert (score.model_id, score.score, score.urgency) == expected
    assert run.shadow_distribution["challenger"]["mean_urgency"] == 0.0
    assert run.shadow_distribution["active"]["mean_urgency"] == 50.0
    # A rescore reads each version's window too, and gives what the run gave.
    for home_ in street[:20]:
        rescored = scores_service.property_rescore(property_id=home_.pk, as_of=AS_OF)
        [score] = [s for s in rescored if s.trade_id == roofing.pk]
        assert (score.model_id, score.score) == (written[home_.pk].model_id, written[home_.pk].score)


def test_a_run_without_a_challenger_scores_everything_with_the_active_version(roofing, street):
    active = model_version(roofing, 1)
    run = runs.trade_score(trade=roofing, as_of=AS_OF, partition_rows=100)

    assert (run.challenger_id, run.shadow_distribution, run.properties_scored) == (None, {}, 200)
    assert [partition.shadow for partition in run.partition_set.all()] == [{}, {}]
    assert set(Score.objects.filter(trade=roofing).values_list("model_id", flat=True)) == {active.pk}


# The preview


def test_the_preview_shows_the_challenger_and_each_propertys_score_now(roofing, street):
    active = model_version(roofing, 1)
    challenger = scoring_model_challenge(model=draft(roofing, 2), share=0.3)
    candidate = draft(roofing, 3, [("home_age", "ramp", {"low": 0, "high": 40}, 10, "Built {value:.0f} years ago")])

    preview = scoring_model_preview(model=candidate, as_of=AS_OF, sample_size=200)

    assert (preview.active, preview.challenger, preview.sample_size) == (active, challenger, 200)
    assert preview.challenger_distribution["count"] == preview.current_distribution["count"] == 200
    for row in preview.top:
        roof = min(max(2026 - row["property"].year_built - 10, 0), 20) / 20
        if in_challenger_share([row["property"].pk], 0.3)[0]:
            assert (row["current_version"], row["current_score"]) == (2, round(100 * roof, 2))
        else:
            assert (row["current_version"], row["current_score"]) == (1, round(50 * roof, 2))
        assert row["active_score"] == round(50 * roof, 2)
    # The scores a run writes now are the preview's "now".
    runs.trade_score(trade=roofing, as_of=AS_OF)
    written = dict(Score.objects.filter(trade=roofing).values_list("property_id", "score"))
    assert all(written[row["property"].pk] == row["current_score"] for row in preview.top)


def test_the_preview_of_the_challenger_compares_it_with_the_active_version(roofing, street):
    active = model_version(roofing, 1)
    challenger = scoring_model_challenge(model=draft(roofing, 2), share=0.3)

    preview = scoring_model_preview(model=challenger, as_of=AS_OF, sample_size=200)

    assert (preview.active, preview.challenger) == (active, None)  # the model itself is not compared with itself
    assert preview.current_distribution["count"] == 200


# The admin

CHANGELIST = "/admin/scoring/scoringmodel/"


def test_staff_run_a_draft_as_challenger_with_a_share_from_the_admin(staff_client, roofing):
    model_version(roofing, 1)
    candidate = draft(roofing, 2)

    confirm = staff_client.post(CHANGELIST, {"action": "challenge", "_selected_action": [candidate.pk]})
    assert "Run as challenger" in confirm.content.decode()
    assert 'name="share"' in confirm.content.decode()
    assert ScoringModel.objects.get(pk=candidate.pk).status == ScoringModel.Status.DRAFT

    response = staff_client.post(
        CHANGELIST,
        {"action": "challenge", "_selected_action": [candidate.pk], "apply": "yes", "share": "0.2"},
        follow=True,
    )

    assert ("success", "Roofing v2 is now the challenger on 20%.") in messages_of(response)
    candidate.refresh_from_db()
    assert (candidate.status, candidate.challenger_share) == (ScoringModel.Status.CHALLENGER, 0.2)
    listing = staff_client.get(CHANGELIST, {"status__exact": "challenger"}).content.decode()
    assert "Challenger" in listing
    assert "20%" in listing
    assert listing.count('name="_selected_action"') == 1


def test_the_admin_says_why_a_challenge_is_refused(staff_client, roofing):
    active = model_version(roofing, 1)

    form = {"action": "challenge", "_selected_action": [active.pk], "apply": "yes", "share": "0.2"}
    response = staff_client.post(CHANGELIST, form, follow=True)
    refusal = "Roofing v1 (Active) is not a draft: only a draft can become a challenger"
    assert ("error", refusal) in messages_of(response)
    bad_share = staff_client.post(
        CHANGELIST, {"action": "challenge", "_selected_action": [active.pk], "apply": "yes", "share": "1.5"}
    )
    assert "Ensure this value is less than or equal to 0.99." in bad_share.content.decode()


def test_staff_promote_a_challenger_or_end_its_challenge_from_the_admin(staff_client, roofing):
    active = model_version(roofing, 1)
    first = scoring_model_challenge(model=draft(roofing, 2), share=0.1)

    ended = staff_client.post(CHANGELIST, {"action": "end_challenge", "_selected_action": [first.pk]}, follow=True)
    assert ("success", "The challenge of Roofing v2 ended; it is retired.") in messages_of(ended)
    second = scoring_model_challenge(model=draft(roofing, 3), share=0.1)
    refused = staff_client.post(CHANGELIST, {"action": "promote", "_selected_action": [active.pk]}, follow=True)
    assert ("error", "Roofing v1 (Active) is not a challenger; nothing done.") in messages_of(refused)
    promoted = staff_client.post(CHANGELIST, {"action": "promote", "_selected_action": [second.pk]}, follow=True)

    assert ("success", "Roofing v3 is now active.") in messages_of(promoted)
    assert dict(ScoringModel.objects.filter(trade=roofing).values_list("version", "status")) == {
        1: "retired", 2: "retired", 3: "active",
    }  # fmt: skip


def written(trade: Trade) -> set[tuple]:
    return set(Score.objects.filter(trade=trade).values_list("property_id", "model_id", "score", "digest"))


def test_partitions_scored_by_workers_split_as_an_in_process_run_does(roofing, street):
    """The worker's path (scoring_partition_attempt, one partition at a time) with a challenger."""
    model_version(roofing, 1)
    scoring_model_challenge(model=draft(roofing, 2, FACTORS, window=20), share=0.3)
    here = runs.trade_score(trade=roofing, as_of=AS_OF, partition_rows=64)
    expected = written(roofing)
    Score.objects.filter(trade=roofing).delete()

    run = runs.scoring_run_start(trade=roofing, as_of=AS_OF, partition_rows=64)
    for partition in run.partition_set.order_by("number"):
        assert runs.scoring_partition_attempt(partition_id=partition.pk, lease=f"task-{partition.number}") is False
    run.refresh_from_db()

    assert run.status == "succeeded"
    assert written(roofing) == expected
    assert (run.distribution, run.shadow_distribution) == (here.distribution, here.shadow_distribution)


def test_the_score_command_names_the_challenger_of_a_run(roofing, street):
    model_version(roofing, 1)
    scoring_model_challenge(model=draft(roofing, 2), share=0.25)
    out = io.StringIO()

    call_command("score", "--trade", "roofing", "--as-of", AS_OF.isoformat(), stdout=out)

    assert "model v1, challenger v2 on 25%, 200 properties scored (200 scores changed)" in out.getvalue()
