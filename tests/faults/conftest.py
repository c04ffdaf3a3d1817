"""The fault suite's servers: one throw-away PostgreSQL for the session, holding the template database every
scenario copies, and a throw-away Redis per test (see tests/faults/servers.py)."""

from __future__ import annotations

import pytest

from tests.faults.servers import Postgres, Redis, template_build

MARKET_PROPERTIES = 20_000


@pytest.fixture(scope="session")
def fault_postgres(tmp_path_factory):
    pg = Postgres()
    redis = Redis()
    try:
        template_build(pg, redis, properties=MARKET_PROPERTIES, log=tmp_path_factory.mktemp("faults") / "template.log")
    except BaseException:
        pg.destroy()
        raise
    finally:
        redis.destroy()
    yield pg
    pg.destroy()


@pytest.fixture
def fault_redis():
    redis = Redis()
    yield redis
    redis.destroy()
