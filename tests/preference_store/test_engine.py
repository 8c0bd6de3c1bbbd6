"""SQLite engine settings: WAL, foreign keys, one writer at a time, and the no-wait path."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from preference_store.engine import NOWAIT_SESSION_FLAG, WriterBusy, begin_write, build_engine, session_factory
from tests.databases import backend

pytestmark = pytest.mark.skipif(backend() != "sqlite", reason="SQLite's locking")


def test_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    engine = build_engine(f"sqlite:///{tmp_path}/e.db")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_a_writer_that_must_not_wait_is_told_the_lock_is_busy(tmp_path: Path) -> None:
    engine = build_engine(f"sqlite:///{tmp_path}/w.db")
    sessions = session_factory(engine)
    with sessions() as holder, sessions() as impatient:
        begin_write(holder)
        holder.execute(text("CREATE TABLE t (x INTEGER)"))
        impatient.info[NOWAIT_SESSION_FLAG] = True
        with pytest.raises(WriterBusy):
            begin_write(impatient)
        holder.commit()
        begin_write(impatient)  # free again: it gets the lock at once
        impatient.execute(text("INSERT INTO t VALUES (1)"))
        impatient.commit()
    engine.dispose()


def test_writers_wait_for_each_other_instead_of_failing(tmp_path: Path) -> None:
    engine = build_engine(f"sqlite:///{tmp_path}/q.db")
    sessions = session_factory(engine)
    with sessions() as setup:
        begin_write(setup)
        setup.execute(text("CREATE TABLE counter (n INTEGER)"))
        setup.execute(text("INSERT INTO counter VALUES (0)"))
        setup.commit()
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(50):
                with sessions() as session:
                    begin_write(session)
                    session.execute(text("UPDATE counter SET n = n + 1"))
                    session.commit()
        except BaseException as error:  # collected for the main thread
            errors.append(error)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with sessions() as session:
        assert session.execute(text("SELECT n FROM counter")).scalar() == 400
    engine.dispose()
