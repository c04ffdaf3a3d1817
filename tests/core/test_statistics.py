"""core.statistics: a table the night's writes changed past the rule is analyzed, once; one barely
touched is left to autovacuum. Committed rows on the real server (the statistics count committed work)."""

from __future__ import annotations

import pytest
from django.db import connection

from core.statistics import STALE_ROWS, STALE_SHARE, analyze_if_stale
from scoring.models import Property

pytestmark = pytest.mark.django_db(transaction=True)


def homes(first: int, count: int) -> None:
    Property.objects.bulk_create(
        Property(
            parcel_id=f"S-{number:06d}", address=f"{number} Stats St", city="Denver", state="CO", zip_code_id="80202"
        )
        for number in range(first, first + count)
    )


def planner_rows() -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'scoring_property'::regclass")
        return cursor.fetchone()[0]


def test_a_table_changed_past_the_rule_is_analyzed_once_and_a_barely_changed_one_is_not(zip_codes):
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE scoring_property")  # the count of changes starts at 0
    homes(0, 100)  # under 500 + 10% of the rows
    assert analyze_if_stale(Property) == []
    before = planner_rows()

    homes(100, 2_000)
    assert analyze_if_stale(Property) == ["scoring_property"]
    assert planner_rows() == 2_100 != before
    assert analyze_if_stale(Property) == []  # just analyzed

    homes(2_100, int(STALE_ROWS + STALE_SHARE * 2_100) - 10)  # still under the rule for 2,100 rows
    assert analyze_if_stale(Property) == []
