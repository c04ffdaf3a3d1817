"""The pure figures of lead quality (scoring.quality) beyond the ones the evaluation tests work out by hand
(tests/leads/test_quality.py): calibration bands and conversion per group at their edges."""

import pytest

from scoring import quality


def test_calibration_bands_hold_their_scores_best_band_first_and_100_in_the_top_band():
    # Scores 100 and 90 share the 90-100 band; 45 and 41 the 40-50 band; 0 the 0-10 band.
    bands = quality.calibration([100, 90, 45, 41, 0], [1, 0, 1, 0, 0], [1, 1, 2, 2, 1])

    assert [(b.low, b.high, b.leads, b.weight, b.conversions) for b in bands] == [
        (90.0, 100.0, 2, 2.0, 1),
        (40.0, 50.0, 2, 4.0, 1),
        (0.0, 10.0, 1, 1.0, 0),
    ]
    assert [b.mean_score for b in bands] == [95.0, 43.0, 0.0]  # (45 x 2 + 41 x 2) / 4 = 43
    assert [b.conversion_rate for b in bands] == [0.5, 0.5, 0.0]


def test_calibration_refuses_a_band_of_no_width():
    with pytest.raises(ValueError, match="band width"):
        quality.calibration([50], [1], width=0)


def test_a_lead_counts_once_per_group_however_often_it_names_it():
    # Lead 0 names roof_age twice; lead 2 names nothing. Weights 1, 3, 1; converted: lead 0 only.
    groups = quality.rates_by_group([["roof_age", "roof_age", "hail"], ["hail"], []], [1, 0, 0], [1, 3, 1])

    overall = 1 / 5
    assert [(g.name, g.leads, g.weight, g.conversions, g.conversion_rate) for g in groups] == [
        ("hail", 2, 4.0, 1, 0.25),  # leads 0 and 1: 1 of a weight of 4
        ("roof_age", 1, 1.0, 1, 1.0),
    ]
    assert [g.lift for g in groups] == pytest.approx([0.25 / overall, 1 / overall])


def test_groups_without_any_name_or_without_a_conversion_have_no_lift():
    assert quality.rates_by_group([[], []], [0, 1]) == []
    (group,) = quality.rates_by_group([["roof_age"]], [0])
    assert (group.conversion_rate, group.lift) == (0.0, None)
    with pytest.raises(ValueError, match="one value per lead"):
        quality.rates_by_group([["roof_age"]], [0, 1])
