"""What a server does around serving: the SQLite checkpoint thread, the start-up objects it freezes."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from annotation_ui.asgi import create_app
from app import database
from app.settings import Environment, Settings
from preference_store.engine import build_engine
from tests.databases import backend


def _checkpoint_threads() -> int:
    return sum(thread.name == "prefstack-wal-checkpoint" for thread in threading.enumerate())


@pytest.mark.skipif(backend() != "sqlite", reason="SQLite's write-ahead log")
def test_a_server_on_a_sqlite_file_checkpoints_on_its_own_thread_while_it_runs(
    settings: Settings, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/server.db"
    migrating = build_engine(url)
    database.upgrade(migrating)
    migrating.dispose()
    on_file = settings.model_copy(update={"database_url": url})
    before = _checkpoint_threads()
    with TestClient(create_app(on_file)):
        assert _checkpoint_threads() == before + 1
    assert _checkpoint_threads() == before


def test_a_server_freezes_what_start_up_left_alive_and_a_test_app_does_not(settings: Settings, engine: Engine) -> None:
    gc.unfreeze()
    with TestClient(create_app(settings)):
        assert gc.get_freeze_count() == 0
    served = settings.model_copy(update={"environment": Environment.DEVELOPMENT})
    try:
        with TestClient(create_app(served)):
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
