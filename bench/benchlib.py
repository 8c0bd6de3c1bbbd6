"""What the benchmark scripts share: sizes, logging, and scratch databases (SQLite files,
PostgreSQL databases made from templates)."""

from __future__ import annotations

import random
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def drop_databases(admin_url: str, prefix: str) -> list[str]:
    """Drop every database whose name starts with `prefix` (connections closed by force); their names."""
    with pg_admin(admin_url) as engine, engine.connect() as connection:
        like = prefix.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "%"
        found = connection.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :like"), {"like": like})
        names = list(found.scalars())
        for name in names:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return names


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".writelock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextmanager
def template_copy(template_url: str, *, copy_path: Path, pg_url: str, pg_database: str) -> Iterator[str]:
    """A fresh copy of a template database, dropped afterwards: a file copy, or CREATE DATABASE ... TEMPLATE."""
    url = make_url(template_url)
    if url.get_backend_name() == "sqlite":
        remove_sqlite(copy_path)
        shutil.copyfile(str(url.database), copy_path)
        try:
            yield f"sqlite:///{copy_path}"
        finally:
            remove_sqlite(copy_path)
        return
    pg_execute(
        pg_url,
        f'DROP DATABASE IF EXISTS "{pg_database}" WITH (FORCE)',
        f'CREATE DATABASE "{pg_database}" TEMPLATE "{url.database}"',
    )
    try:
        yield pg_database_url(pg_url, pg_database)
    finally:
        pg_execute(pg_url, f'DROP DATABASE IF EXISTS "{pg_database}" WITH (FORCE)')


def bench_item(rnd: random.Random, words: list[str], number: int) -> dict[str, Any]:
    """One native-format item: a ~300-character prompt and two ~1,500-character responses."""

    def prose(chars: int) -> str:
        out: list[str] = []
        length = 0
        while length < chars:
            word = rnd.choice(words)
            out.append(word)
            length += len(word) + 1
        return " ".join(out)[:chars].rstrip() + "."

    return {
        "external_id": f"bench-{number:07d}",
        "prompt": f"Question {number}: {prose(280)}",
        "responses": [{"model": "model-a", "content": prose(1500)}, {"model": "model-b", "content": prose(1500)}],
    }
