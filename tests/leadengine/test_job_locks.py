"""The lock a job run holds while it executes (leadengine.services.jobs, core.locks.JOB_RUN): its key follows
from the job's name and trade, never from the order of the Job enumeration, and no two jobs and trades share
one."""

import pytest
from django.db import connection

from core import locks
from leadengine.models import JobRun
from leadengine.services import jobs
from scoring.models import Trade

Job = JobRun.Job


def key(job: str, trade_id: int | None = None) -> int:
    return jobs._lock_key(JobRun(job=job, trade_id=trade_id))


def test_the_lock_key_of_a_job_is_pinned_by_its_name():
    assert key(Job.SCORING, 3) == 565_000_003
    assert key(Job.SCORING) == 565_000_000
    assert key(Job.OVERDUE_CHECK) == 2_087_000_000
    assert key(Job.LEAD_GENERATION, 12) == 1_337_000_012


def test_lock_keys_are_distinct_for_every_job_and_trade_and_fit_an_int4():
    trade_ids = [None, *range(1, 1_000), 999_999]
    keys = [key(job, trade_id) for job in Job.values for trade_id in trade_ids]

    assert len(set(keys)) == len(Job.values) * len(trade_ids)
    assert min(keys) >= 0
    assert max(keys) < 2**31


@pytest.mark.django_db(transaction=True)
def test_a_run_s_lock_is_held_under_the_registered_use_and_its_job_key():
    trade = Trade.objects.create(slug="roofing-locks", name="Roofing (locks)")
    run = JobRun(job=Job.SCORING, trade=trade)
    assert jobs._lock_try(run)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT classid::int8, objid::int8, objsubid FROM pg_locks "
                "WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            )
            held = cursor.fetchall()
        assert held == [(locks.JOB_RUN, 565_000_000 + trade.pk, 2)]
        assert jobs._lock_held(run)
    finally:
        jobs._lock_release(run)
    assert not jobs._lock_held(run)
