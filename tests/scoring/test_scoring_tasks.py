"""The Celery task that scores one partition (scoring/tasks.py): how many times it tries follows the setting
SCORING_PARTITION_ATTEMPTS, read when it runs, as a run scored in one process does. The task runs eagerly here
(Celery's apply: its retries follow at once, without their countdowns), against a real fault of PostgreSQL."""

import logging

import pytest
from django.db import connection

from scoring.models import ScoringPartition, Trade
from scoring.services import runs
from scoring.tasks import score_partition
from tests.scoring.test_scoring_runs import AS_OF, FACTORS, home, model_version


@pytest.fixture
def partition(zip_codes):
    trade = Trade.objects.create(slug="roofing-tasks", name="Roofing (tasks)")
    model_version(trade, 1, [FACTORS[0]])
    home("T-1", year_built=1990)
    run = runs.scoring_run_start(trade=trade, as_of=AS_OF, distributed=True)
    [partition] = run.partition_set.all()
    return partition


@pytest.fixture
def claims_lose_a_race():
    """Every claim of a partition fails in PostgreSQL as a transaction that lost a race (SQLSTATE 40001, an
    error worth trying again); the sequence counts the claims tried, whatever rolled back."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE SEQUENCE test_claims_tried;
            CREATE FUNCTION test_claim_fault() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.status = 'running' THEN
                    PERFORM nextval('test_claims_tried');
                    RAISE EXCEPTION 'claim lost a race for the test' USING ERRCODE = '40001';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER test_claim_fault BEFORE UPDATE ON {ScoringPartition._meta.db_table}
            FOR EACH ROW EXECUTE FUNCTION test_claim_fault();
            """
        )

    def tried() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM test_claims_tried")
            return cursor.fetchone()[0]

    yield tried
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER IF EXISTS test_claim_fault ON {ScoringPartition._meta.db_table}")
        cursor.execute("DROP FUNCTION IF EXISTS test_claim_fault()")
        cursor.execute("DROP SEQUENCE IF EXISTS test_claims_tried")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempts", [2, 9])
def test_a_partition_task_tries_as_many_times_as_the_setting_says(
    partition, claims_lose_a_race, settings, caplog, attempts
):
    settings.DB_RETRY_SECONDS = 0  # each try gives up at its first failure
    settings.SCORING_PARTITION_ATTEMPTS = attempts

    with caplog.at_level(logging.WARNING):
        result = score_partition.apply(args=[partition.pk])

    assert (result.state, result.result) == ("SUCCESS", None)
    assert claims_lose_a_race() == attempts
    # The first line of each: PostgreSQL's message goes on with the trigger's context.
    tries_left_for_later = [r.getMessage().splitlines()[0] for r in caplog.records if r.name == "scoring.services.runs"]
    assert tries_left_for_later == [
        (f"scoring partition {partition.pk}: the database stayed unreachable; it is tried again later: "
        "claim lost a race for the test")
    ] * attempts  # fmt: skip
    assert [r.getMessage() for r in caplog.records if r.name == "scoring.tasks"] == [
        f"scoring partition {partition.pk}: no tries left; the recovery sweep sends it again"
    ]
    partition.refresh_from_db()
    assert (partition.status, partition.attempts, partition.lease) == (ScoringPartition.Status.PENDING, 0, "")
