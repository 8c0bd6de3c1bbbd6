"""A server's PostgreSQL connections: no JIT compilation on the annotation path."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from preference_store.engine import build_engine
from tests.databases import backend

pytestmark = pytest.mark.skipif(backend() != "postgresql", reason="PostgreSQL's JIT")


def _jit(engine: Engine) -> str:
    with engine.connect() as connection:
        return str(connection.execute(text("SHOW jit")).scalar())


def test_a_serving_engine_turns_jit_off_on_every_connection_and_others_keep_the_servers_choice(
    database_url: str,
) -> None:
    serving = build_engine(database_url, pool_size=1, serving=True)
    plain = build_engine(database_url, pool_size=1)
    try:
        default = _jit(plain)
        assert [_jit(serving) for _ in range(3)] == ["off"] * 3
        serving.dispose()  # new connections get it too
        assert _jit(serving) == "off"
        assert _jit(plain) == default
    finally:
        serving.dispose()
        plain.dispose()
