"""What the benchmark scripts share: sizes, logging, and scratch databases (SQLite files,
PostgreSQL databases made from templates)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url


def parse_size(value: str) -> int:
    """`10k`, `200k`, `1m` or a plain number of items."""
    value = value.strip().lower()
    for suffix, factor in (("k", 1_000), ("m", 1_000_000)):
        if value.endswith(suffix):
            return int(float(value[:-1]) * factor)
    return int(value)


def size_label(items: int) -> str:
    return f"{items // 1000}k" if items % 1000 == 0 else str(items)


def str_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pg_database_url(admin_url: str, database: str) -> str:
    return make_url(admin_url).set(database=database).render_as_string(hide_password=False)


@contextmanager
def pg_admin(admin_url: str) -> Iterator[Engine]:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        yield engine
    finally:
        engine.dispose()


def pg_execute(admin_url: str, *statements: str) -> None:
    with pg_admin(admin_url) as engine, engine.connect() as connection:
        for statement in statements:
            connection.execute(text(statement))


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".writelock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
