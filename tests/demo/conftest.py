import pytest
from django.utils import timezone

from demo.market import demo_market_seed


@pytest.fixture(autouse=True)
def debug_on(settings):
    """DEBUG on, as `make run` has it; the tests of the production guard turn it off."""
    settings.DEBUG = True


def seeded_market(tmp_path, *, properties: int, seed: int = 5) -> dict:
    """A demo market of `properties` homes seeded through seed_demo's path (its hidden truth with it)."""
    seeded = demo_market_seed(properties=properties, seed=seed, out_dir=tmp_path, today=timezone.localdate())
    assert all(result.exit_code == 0 for result in seeded["results"].values())
    return seeded
