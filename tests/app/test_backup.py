"""`prefstack db backup` / `db restore`: an online SQLite copy under writes, and a restore drill."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app import database
from app.cli import cli
from preference_store.backup import BackupError, backup_sqlite, pg_dump_command, restore_sqlite
from preference_store.engine import build_engine
from tests.conftest import native_item

runner = CliRunner()


def _ok(args: list[str]) -> str:
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def sqlite_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A migrated SQLite file with a lead, a project and 50 items (whatever the run's backend)."""
    path = tmp_path / "live" / "prefstack.db"
    path.parent.mkdir()
    monkeypatch.setenv("PREFSTACK_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.chdir(tmp_path)
    _ok(["db", "upgrade"])
    _ok(["user", "create", "--email", "lead@example.org", "--name", "Lead", "--role", "lead", "--password", "x" * 12])
    _ok(["project", "create", "--slug", "drill", "--name", "Drill"])
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(native_item(f"i{n}")) + "\n" for n in range(50)), encoding="utf-8")
    _ok(["import", str(items), "--project", "drill"])
    return path


def _count(path: Path, table: str) -> int:
    with closing(sqlite3.connect(path)) as connection:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_restore_drill_brings_back_every_row(sqlite_database: Path, tmp_path: Path) -> None:
    saved = tmp_path / "backups" / "before.db"
    output = _ok(["db", "backup", "--to", str(saved)])
    assert "integrity check ok" in output
    assert _count(saved, "item") == 50

    with closing(sqlite3.connect(sqlite_database)) as connection:
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("DELETE FROM item WHERE external_id LIKE 'i1%'")
        connection.commit()
    assert _count(sqlite_database, "item") == 39

    output = _ok(["db", "restore", str(saved), "--yes"])
    assert "restored" in output
    assert _count(sqlite_database, "item") == 50
    assert _count(sqlite_database, "response") == 100
    engine = build_engine(f"sqlite:///{sqlite_database}", pool_size=1)
    try:
        assert database.applied_revision(engine) == database.head_revision()
    finally:
        engine.dispose()


CHILDREN = 3
"""Responses the writer adds with each item, in the item's transaction."""


def _write_transactions(database_path: Path, stop: threading.Event, committed: threading.Event) -> None:
    """Commit transactions `w0`, `w1`, ... until stopped: each inserts an item, then its responses, then renames
    the project after the item, so a copy that tears a transaction shows a count or a name that disagrees."""
    with closing(sqlite3.connect(database_path, timeout=30, isolation_level=None)) as connection:
        connection.execute("PRAGMA journal_mode = WAL")
        number = 0
        while not stop.is_set():
            connection.execute("BEGIN IMMEDIATE")
            cursor = connection.execute(
                "INSERT INTO item (project_id, external_id, messages, metadata, content_hash, is_sensitive,"
                " created_at) SELECT id, ?, '[]', '{}', 'h', 0, '2026-12-02 00:00:00' FROM project"
                " WHERE slug = 'drill'",
                (f"w{number}",),
            )
            time.sleep(0.001)  # keep the transaction open across a backup now and then
            for position in range(CHILDREN):
                connection.execute(
                    "INSERT INTO response (item_id, position, model_name, content, metadata)"
                    " VALUES (?, ?, 'm', 'x', '{}')",
                    (cursor.lastrowid, position),
                )
            connection.execute("UPDATE project SET name = ? WHERE slug = 'drill'", (f"Drill after w{number}",))
            connection.execute("COMMIT")
            number += 1
            committed.set()


def _written_in(copy: Path) -> int:
    """How many writer transactions a copy holds, after checking it holds each of them whole."""
    with closing(sqlite3.connect(copy)) as connection:
        numbers = sorted(
            int(external_id[1:])
            for (external_id,) in connection.execute("SELECT external_id FROM item WHERE external_id LIKE 'w%'")
        )
        children = connection.execute(
            "SELECT item.external_id, count(response.id) FROM item LEFT JOIN response ON response.item_id = item.id"
            " WHERE item.external_id LIKE 'w%' GROUP BY item.id"
        ).fetchall()
        orphans = connection.execute(
            "SELECT count(*) FROM item LEFT JOIN response ON response.item_id = item.id WHERE response.id IS NULL"
        ).fetchone()[0]
        name = connection.execute("SELECT name FROM project WHERE slug = 'drill'").fetchone()[0]
        dangling = connection.execute("PRAGMA foreign_key_check").fetchall()
    assert numbers == list(range(len(numbers))), "transactions are committed in order: a snapshot holds a prefix"
    assert all(count == CHILDREN for _, count in children), children
    assert orphans == 0
    assert dangling == []
    assert name == (f"Drill after w{numbers[-1]}" if numbers else "Drill")
    return len(numbers)


def test_a_backup_taken_during_writes_is_a_consistent_snapshot(sqlite_database: Path, tmp_path: Path) -> None:
    stop, committed = threading.Event(), threading.Event()
    writer = threading.Thread(target=_write_transactions, args=(sqlite_database, stop, committed))
    writer.start()
    copies = []
    try:
        for n in range(5):
            assert committed.wait(timeout=30), "the writer commits nothing"
            copies.append(backup_sqlite(sqlite_database, tmp_path / f"copy-{n}.db"))
            committed.clear()
    finally:
        stop.set()
        writer.join()
    written = [_written_in(copy.path) for copy in copies]
    assert written[0] > 0
    assert written == sorted(set(written)), f"each backup comes after more commits: {written}"
    for copy in copies:
        assert copy.revision == database.head_revision()


def test_restore_refuses_a_file_that_is_not_a_prefstack_database(sqlite_database: Path, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger.db"
    with closing(sqlite3.connect(stranger)) as connection:
        connection.execute("CREATE TABLE t (x)")
    with pytest.raises(BackupError, match="not a prefstack database"):
        restore_sqlite(stranger, sqlite_database)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    result = runner.invoke(cli, ["db", "restore", str(garbage), "--yes"])
    assert result.exit_code == 1
    assert _count(sqlite_database, "item") == 50


def test_a_backup_never_overwrites_the_database_itself(sqlite_database: Path) -> None:
    with pytest.raises(BackupError, match="must not overwrite"):
        backup_sqlite(sqlite_database, sqlite_database)


def test_postgresql_backups_are_pg_dump_without_the_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = "postgresql+psycopg://annotate:hunter2@db.internal:6432/prefstack"
    command = pg_dump_command(url, tmp_path / "nightly.dump")
    assert command[:3] == ["pg_dump", "--format=custom", "--no-owner"]
    assert "--host=db.internal" in command and "--port=6432" in command and "--dbname=prefstack" in command
    assert not any("hunter2" in part for part in command)
    monkeypatch.setenv("PREFSTACK_DATABASE_URL", url)
    output = _ok(["db", "backup", "--to", str(tmp_path / "nightly.dump")])
    assert "pg_dump --format=custom" in output and "hunter2" not in output
