"""Throwaway databases for tests: a SQLite file, or a fresh PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine.url import make_url

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def backend() -> str:
    """The database this test run uses: `sqlite` (default) or `postgresql`."""
    return os.environ.get("PREFSTACK_TEST_BACKEND", "sqlite")


def postgres_admin_url() -> str:
    return os.environ.get("PREFSTACK_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


@contextmanager
def fresh_database(workdir: Path) -> Iterator[str]:
    """Yield the URL of a new, empty database of the run's backend; drop it afterwards."""
    if backend() == "sqlite":
        path = workdir / f"prefstack-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite:///{path}"
        return
    admin_url = make_url(postgres_admin_url())
    name = f"prefstack_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield admin_url.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def migrated_database(workdir: Path) -> Iterator[str]:
    """Yield the URL of a new database of the run's backend at the latest schema; drop it afterwards."""
    from app import database
    from preference_store.engine import build_engine

    with fresh_database(workdir) as url:
        engine = build_engine(url, pool_size=1)
        try:
            database.upgrade(engine)
        finally:
            engine.dispose()
        yield url


@contextmanager
def rollbacks_on(connection: Connection | Engine) -> Iterator[list[str]]:
    """The ROLLBACKs (and savepoint rollbacks) sent on `connection` (or any of an engine's) inside the block."""
    seen: list[str] = []
    listeners = {name: lambda *_args, name=name: seen.append(name) for name in ("rollback", "rollback_savepoint")}
    for name, listener in listeners.items():
        event.listen(connection, name, listener)
    try:
        yield seen
    finally:
        for name, listener in listeners.items():
            event.remove(connection, name, listener)
