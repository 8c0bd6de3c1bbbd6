"""SQLite checkpoints on a thread of their own: no commit of the server's runs one, the thread keeps up."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from preference_store.engine import build_engine
from preference_store.wal_checkpoints import WalCheckpointer, checkpoint
from tests.databases import backend

pytestmark = pytest.mark.skipif(backend() != "sqlite", reason="SQLite's write-ahead log")
ROW = "x" * 3000
AUTOCHECKPOINT_PAGES = 1000


def _write(engine: Engine, rows: int) -> None:
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS t (body TEXT)"))
    for _ in range(rows // 50):  # many small commits, as annotators make them
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (:body)"), [{"body": ROW}] * 50)


def _log_state(path: Path) -> tuple[int, int, int]:
    with sqlite3.connect(path) as probe:
        return checkpoint(probe)


def test_server_connections_leave_the_log_to_the_checkpointer(tmp_path: Path) -> None:
    background = build_engine(f"sqlite:///{tmp_path}/b.db", serving=True)
    inline = build_engine(f"sqlite:///{tmp_path}/i.db")
    _write(background, 2000)  # ~6 MB: past SQLite's automatic checkpoint several times over
    _write(inline, 2000)
    with background.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    # The probe's checkpoint finds every frame since the start still in the log; SQLite's own
    # checkpoints kept restarting the other log.
    assert _log_state(tmp_path / "b.db")[1] > 2 * AUTOCHECKPOINT_PAGES
    assert _log_state(tmp_path / "i.db")[1] < 2 * AUTOCHECKPOINT_PAGES
    background.dispose()
    inline.dispose()


def test_the_checkpointer_copies_the_log_while_writers_run_and_once_more_when_stopped(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    engine = build_engine(f"sqlite:///{path}", serving=True)
    checkpointer = WalCheckpointer(str(path), interval=0.02)
    checkpointer.start()
    try:
        _write(engine, 2000)
        time.sleep(0.2)
        # The thread copied the whole log back, so the next writer starts it over: only its own
        # frames are in it, not the ~2,000 pages written before.
        _write(engine, 50)
        busy, log_frames, copied = _log_state(path)
        assert busy == 0 and 0 < log_frames < 100 and copied == log_frames
        _write(engine, 150)
    finally:
        checkpointer.stop()
    # The last checkpoint put every row in the database file itself: a copy without the log has them.
    alone = tmp_path / "alone.db"
    shutil.copyfile(path, alone)
    with sqlite3.connect(alone) as probe:
        assert probe.execute("SELECT count(*) FROM t").fetchone() == (2200,)
    engine.dispose()
