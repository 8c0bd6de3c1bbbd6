"""Revision b3d5f7a9c1e2: `item.response_chars` backfilled from the stored responses, on both engines."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from sqlalchemy import JSON, bindparam, inspect, text

from app.database import alembic_config
from preference_store.engine import build_engine
from tests.databases import fresh_database

BEFORE = "e6f0a2c4b8d1"
REVISION = "b3d5f7a9c1e2"
THAI = "คำตอบที่ดีกว่า"  # 14 characters, 42 bytes in UTF-8: counted as characters


def test_response_chars_are_backfilled_per_item_and_dropped_on_downgrade(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        config = alembic_config(url)
        command.upgrade(config, BEFORE)
        engine = build_engine(url, pool_size=1)
        try:
            at = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
            with engine.begin() as connection:
                connection.execute(
                    text(
                        "INSERT INTO project (id, slug, name, kind, guidelines, guidelines_version, overlap, "
                        "lease_seconds, settings, is_archived, created_at) "
                        "VALUES (1, 'kept', 'Kept', 'pairwise', '', 1, 1, 1800, :settings, false, :at)"
                    ).bindparams(bindparam("settings", type_=JSON)),
                    {"settings": {}, "at": at},
                )
                for item_id in (1, 2, 3):
                    connection.execute(
                        text(
                            "INSERT INTO item (id, project_id, external_id, messages, metadata, content_hash, "
                            "is_sensitive, created_at) "
                            "VALUES (:id, 1, :external_id, :messages, :metadata, 'h', false, :at)"
                        ).bindparams(bindparam("messages", type_=JSON), bindparam("metadata", type_=JSON)),
                        {"id": item_id, "external_id": f"x{item_id}", "messages": [], "metadata": {}, "at": at},
                    )
                responses = [(1, 0, "a" * 1500), (1, 1, THAI), (2, 0, "short"), (2, 1, "")]
                for item_id, position, content in responses:
                    connection.execute(
                        text(
                            "INSERT INTO response (item_id, position, model_name, content, metadata) "
                            "VALUES (:item_id, :position, 'm', :content, :metadata)"
                        ).bindparams(bindparam("metadata", type_=JSON)),
                        {"item_id": item_id, "position": position, "content": content, "metadata": {}},
                    )
            command.upgrade(config, REVISION)
            with engine.connect() as connection:
                stored: dict[int, int] = dict(
                    connection.execute(text("SELECT id, response_chars FROM item ORDER BY id")).all()
                )
            # Item 3 has no responses: 0, not NULL.
            assert stored == {1: 1500 + len(THAI), 2: 5, 3: 0}
            command.downgrade(config, BEFORE)
            assert "response_chars" not in {column["name"] for column in inspect(engine).get_columns("item")}
        finally:
            engine.dispose()
