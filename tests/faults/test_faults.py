"""Faults injected for real (tests/faults/scenarios.py): each scenario finishes within its bound with no manual
step, loses and duplicates nothing, its run records tell the truth, and the work is done within a minute of the
server being back."""

import pytest

from tests.faults.scenarios import SCENARIOS, scenario_run

RECOVERY_BOUND_SECONDS = 60


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_work_completes_unattended_after_the_fault(name, fault_postgres, fault_redis, tmp_path):
    outcome = scenario_run(name, fault_postgres, fault_redis, tmp_path)

    assert not outcome.hang, outcome.notes
    assert outcome.completed_unattended, outcome.notes
    assert (outcome.lost, outcome.duplicated) == (0, 0), outcome.notes
    assert outcome.recovery_s is not None, outcome.notes
    assert outcome.recovery_s < RECOVERY_BOUND_SECONDS, outcome.notes
