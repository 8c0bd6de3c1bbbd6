"""Revision ff9575678947: `judgment.left_position` backfilled from each assignment's shown order, on both engines."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from sqlalchemy import JSON, bindparam, inspect, text

from app.database import alembic_config
from preference_store.engine import build_engine
from tests.databases import fresh_database

BEFORE = "a8b4c2d6e0f1"
REVISION = "ff9575678947"


def test_left_position_is_backfilled_from_the_shown_order_and_dropped_on_downgrade(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        config = alembic_config(url)
        command.upgrade(config, BEFORE)
        engine = build_engine(url, pool_size=1)
        try:
            at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
            rows: list[tuple[str, Mapping[str, object]]] = [
                ("INSERT INTO app_user (id, email, name, role, languages, is_active, created_at) "
                 "VALUES (1, 'a@example.org', 'a', 'annotator', :languages, true, :at)", {"languages": []}),
                ("INSERT INTO project (id, slug, name, kind, guidelines, guidelines_version, overlap, lease_seconds, "
                 "settings, is_archived, created_at) "
                 "VALUES (1, 'p', 'P', 'pairwise', '', 1, 2, 1800, :settings, false, :at)", {"settings": {}}),
                *(
                    ("INSERT INTO item (id, project_id, external_id, messages, metadata, content_hash, is_sensitive, "
                     f"created_at) VALUES ({item}, 1, 'x{item}', :messages, :metadata, 'h', false, :at)",
                     {"messages": [], "metadata": {}})
                    for item in (1, 2)
                ),
                *(
                    ("INSERT INTO assignment (id, project_id, item_id, annotator_id, shown_order, state, queue_rank, "
                     f"leased_until, created_at, closed_at) VALUES ({item}, 1, {item}, 1, :order, 'submitted', {item}, "
                     ":at, :at, :at)", {"order": order})
                    for item, order in ((1, [1, 0]), (2, [0, 1]))
                ),
                *(
                    ("INSERT INTO judgment (id, assignment_id, project_id, item_id, annotator_id, payload, "
                     f"time_spent_ms, guidelines_version, verdict, revision, created_at) VALUES ({item}, {item}, 1, "
                     f"{item}, 1, :payload, 1200, 1, 'p0', 1, :at)", {"payload": {"choice": "A"}})
                    for item in (1, 2)
                ),
            ]  # fmt: skip
            with engine.begin() as connection:
                for statement, values in rows:
                    json_params = [bindparam(name, type_=JSON) for name in values]
                    connection.execute(text(statement).bindparams(*json_params), {**values, "at": at})
            command.upgrade(config, REVISION)
            with engine.connect() as connection:
                stored: dict[int, int] = dict(
                    connection.execute(text("SELECT id, left_position FROM judgment ORDER BY id")).all()
                )
            assert stored == {1: 1, 2: 0}
            command.downgrade(config, BEFORE)
            assert "left_position" not in {column["name"] for column in inspect(engine).get_columns("judgment")}
        finally:
            engine.dispose()
