"""Online backups of a SQLite database, restores, and the pg_dump command for PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine.url import make_url


class BackupError(Exception):
    """A backup or restore that could not be made or would not be safe."""


@dataclass(frozen=True, slots=True)
class BackupReport:
    path: Path
    bytes: int
    tables: int
    revision: str | None
    """The migration the copied database is at."""


def sqlite_path(url: str) -> Path:
    """The file behind a SQLite URL; in-memory databases have none."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        raise BackupError(f"not a SQLite file: {parsed.render_as_string(hide_password=True)}")
    return Path(parsed.database).resolve()


def backup_sqlite(source: Path, target: Path) -> BackupReport:
    """Copy a live SQLite database to `target` with SQLite's online backup API.

    The copy is one consistent snapshot; in WAL mode writers carry on while it is taken.
    It is written beside `target` first and renamed into place once it passes
    `PRAGMA integrity_check`, so a failed backup never leaves a half-written file.
    """
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    if target.resolve() == source.resolve():
        raise BackupError("the backup must not overwrite the database itself")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    partial.unlink(missing_ok=True)
    try:
        with closing(_connect(source)) as live, closing(_connect(partial)) as copy:
            live.backup(copy)
        report = _checked(partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return BackupReport(target, target.stat().st_size, report.tables, report.revision)


def restore_sqlite(backup: Path, target: Path) -> BackupReport:
    """Replace the database at `target` with a checked backup (stop the server first)."""
    if not backup.is_file():
        raise BackupError(f"no backup at {backup}")
    report = _checked(backup)
    if report.revision is None:
        raise BackupError(f"{backup} is not a prefstack database (it has no alembic_version)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(_connect(backup)) as saved, closing(_connect(target)) as live:
        saved.backup(live)
    return BackupReport(target, target.stat().st_size, report.tables, report.revision)


def pg_dump_command(url: str, target: Path) -> list[str]:
    """The pg_dump call that backs up a PostgreSQL database (the password stays out of it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise BackupError("not a PostgreSQL URL")
    command = ["pg_dump", "--format=custom", "--no-owner", f"--file={target}"]
    if parsed.host:
        command.append(f"--host={parsed.host}")
    if parsed.port:
        command.append(f"--port={parsed.port}")
    if parsed.username:
        command.append(f"--username={parsed.username}")
    command.append(f"--dbname={parsed.database}")
    return command


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    connection.execute("PRAGMA busy_timeout = 30000")
    return connection


def _checked(path: Path) -> BackupReport:
    with closing(_connect(path)) as connection:
        verdict = connection.execute("PRAGMA integrity_check").fetchone()
        if verdict is None or verdict[0] != "ok":
            raise BackupError(f"{path} fails SQLite's integrity check: {verdict}")
        tables = connection.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        has_versions = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        ).fetchone()
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchone() if has_versions else None
    return BackupReport(path, path.stat().st_size, int(tables), revision[0] if revision else None)
