"""The demo market's hidden truth: drawn by seed_demo, deterministic, plausible, hard enough to mean
something, free of storms after the day it is worked out for, and out of the product's reach."""

import datetime as dt
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from django.utils import timezone

from demo.models import HiddenTruth
from demo.truth import TRUTH_TRADES, TruthError, truth_on_day, truth_seed, truth_terms, truth_variance_shares
from scoring.models import Property, StormEvent, Trade
from tests.contractors.conftest import trades  # noqa: F401  (fixture)
from tests.demo.conftest import seeded_market

ROOT = Path(__file__).resolve().parents[2]


def stored() -> list[tuple]:
    return list(
        HiddenTruth.objects.order_by("trade_id", "property_id").values_list(
            "property_id", "trade_id", "seen_logit", "unseen_logit"
        )
    )


def test_seed_demo_draws_the_truth_of_every_property_and_demo_trade_the_same_for_a_seed(zip_codes, tmp_path):
    seeded = seeded_market(tmp_path, properties=400)

    rows = stored()
    assert seeded["truth_rows"] == len(rows) == 400 * len(TRUTH_TRADES)
    assert {trade for _, trade, _, _ in rows} == set(
        Trade.objects.filter(slug__in=TRUTH_TRADES).values_list("id", flat=True)
    )
    assert len({(prop, trade) for prop, trade, _, _ in rows}) == len(rows)

    assert truth_seed(seed=5) == len(rows)
    assert stored() == rows

    truth_seed(seed=6)
    other = stored()
    # The seen part comes from the homes' facts alone; the unseen part is the seed's draw.
    assert [row[:3] for row in other] == [row[:3] for row in rows]
    assert sum(a[3] != b[3] for a, b in zip(other, rows, strict=True)) == len(rows)


def test_the_unseen_part_and_the_interactions_carry_their_shares_of_the_variance(zip_codes, tmp_path):
    seeded_market(tmp_path, properties=1_500)
    today = timezone.localdate()

    shares = truth_variance_shares(as_of=today)

    assert shares.rows == 1_500 * len(TRUTH_TRADES)
    assert set(shares.per_trade) == set(TRUTH_TRADES)
    for slug, (unseen, interaction) in shares.per_trade.items():
        assert 0.2 <= unseen < 0.6, slug
        assert 0.1 <= interaction < 0.5, slug
        # The same figures, worked out from the day's truth by hand.
        frame = truth_on_day(trade=Trade.objects.get(slug=slug), property_ids=None, as_of=today)
        logit = frame["seen_logit"] + frame["unseen_logit"]
        assert unseen == pytest.approx(np.var(frame["unseen_logit"]) / np.var(logit))
        interactions = frame["interaction_static"] + frame["interaction_dynamic"]
        assert interaction == pytest.approx(np.var(interactions) / np.var(logit))
    assert shares.unseen_share == pytest.approx(np.mean([s[0] for s in shares.per_trade.values()]))
    assert shares.interaction_share == pytest.approx(np.mean([s[1] for s in shares.per_trade.values()]))


def test_probabilities_are_plausible_most_homes_a_few_percent_the_best_tens(zip_codes, tmp_path):
    seeded_market(tmp_path, properties=1_500)

    for trade in Trade.objects.filter(slug__in=TRUTH_TRADES):
        frame = truth_on_day(trade=trade, property_ids=None, as_of=timezone.localdate())
        probability = frame["probability"]
        assert len(frame) == 1_500
        assert ((probability > 0) & (probability < 1)).all(), trade.slug
        assert 0.005 < probability.median() < 0.08, trade.slug
        assert 0.12 < probability.quantile(0.99) < 0.7, trade.slug
        # The stored static part is the day's seen log-odds but for the storms and sales of the day.
        static = dict(HiddenTruth.objects.filter(trade=trade).values_list("property_id", "seen_logit"))
        dynamic = frame["main_dynamic"] + frame["interaction_dynamic"]
        expected = frame.index.map(static) + dynamic
        assert np.allclose(frame["seen_logit"], expected)


def test_a_storm_after_the_day_does_not_reach_that_days_truth(zip_codes, tmp_path):
    seeded_market(tmp_path, properties=300)
    roofing = Trade.objects.get(slug="roofing")
    home = Property.objects.order_by("id").first()
    day = timezone.localdate() - dt.timedelta(days=10)
    before = truth_on_day(trade=roofing, property_ids=[home.pk], as_of=day).loc[home.pk]

    StormEvent.objects.create(
        event_id="HAIL-TEST-1", event_date=day + dt.timedelta(days=1), kind="hail", magnitude=2.75,
        latitude=home.latitude, longitude=home.longitude, radius_miles=2.0,
    )  # fmt: skip

    same_day = truth_on_day(trade=roofing, property_ids=[home.pk], as_of=day).loc[home.pk]
    assert same_day["probability"] == before["probability"]
    assert same_day["seen_logit"] == before["seen_logit"]
    next_day = truth_on_day(trade=roofing, property_ids=[home.pk], as_of=day + dt.timedelta(days=1)).loc[home.pk]
    assert next_day["main_dynamic"] > before["main_dynamic"] + 0.9
    assert next_day["probability"] > before["probability"]


def test_the_truth_refuses_a_trade_it_has_no_model_for_and_a_market_without_truth(zip_codes, trades):  # noqa: F811
    with pytest.raises(TruthError, match="no model for trade 'plumbing'"):
        truth_terms("plumbing", None, as_of=timezone.localdate())
    with pytest.raises(TruthError, match="no hidden truth is seeded for roofing"):
        truth_on_day(trade=trades["roofing"], property_ids=None, as_of=timezone.localdate())
    with pytest.raises(TruthError, match="no model for trade gutters"):
        truth_variance_shares(trades=["gutters"])


def test_no_product_code_can_import_the_hidden_truth():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["id"] == "hidden-truth"]
    assert contract["type"] == "forbidden"
    assert set(contract["source_modules"]) == {"core", "scoring", "contractors", "territories", "leads", "leadengine"}
    assert set(contract["forbidden_modules"]) == {"demo.models", "demo.truth"}

    lint = Path(sys.executable).with_name("lint-imports")
    checked = subprocess.run(
        [str(lint), "--contract", "hidden-truth"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Contracts: 1 kept, 0 broken." in checked.stdout
