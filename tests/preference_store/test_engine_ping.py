"""PostgreSQL connections are pinged after sitting idle, not on every checkout."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from preference_store.engine import PING_AFTER_IDLE_SECONDS, build_engine
from tests.databases import backend

pytestmark = pytest.mark.skipif(backend() != "postgresql", reason="PostgreSQL's connections")


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(database_url: str, pid: int) -> None:
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    finally:
        admin.dispose()
    time.sleep(0.1)


def test_a_connection_idle_past_the_limit_is_pinged_and_replaced_when_the_server_closed_it(
    database_url: str,
) -> None:
    engine = build_engine(database_url, pool_size=1)
    try:
        first = _backend_pid(engine)
        _terminate(database_url, first)
        time.sleep(PING_AFTER_IDLE_SECONDS + 0.2)
        assert _backend_pid(engine) != first
    finally:
        engine.dispose()


def test_a_connection_back_in_use_within_the_limit_is_not_pinged_and_one_failure_resets_the_pool(
    database_url: str,
) -> None:
    engine = build_engine(database_url, pool_size=2)
    try:
        with engine.connect() as one, engine.connect() as two:
            pids = {
                int(one.execute(text("SELECT pg_backend_pid()")).scalar_one()),
                int(two.execute(text("SELECT pg_backend_pid()")).scalar_one()),
            }
        for pid in pids:
            _terminate(database_url, pid)
        with pytest.raises(OperationalError), engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        # The failure dropped every connection of the pool: the next ones are new.
        assert _backend_pid(engine) not in pids
        assert _backend_pid(engine) not in pids
    finally:
        engine.dispose()
