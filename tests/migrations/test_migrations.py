"""Alembic: empty -> head -> check clean -> base -> head again, one head."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, bindparam, inspect, text

from app import database
from app.database import alembic_config
from preference_store.base import Base
from preference_store.engine import build_engine
from tests.databases import fresh_database


def test_upgrade_check_downgrade_upgrade_on_an_empty_database(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        config = alembic_config(url)
        command.upgrade(config, "head")
        command.check(config)  # raises if autogenerate would emit anything
        engine = build_engine(url, pool_size=1)
        try:
            tables = set(inspect(engine).get_table_names())
            assert set(Base.metadata.tables) <= tables
            command.downgrade(config, "base")
            assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
            command.upgrade(config, "head")
            assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
        finally:
            engine.dispose()


def test_there_is_one_head_and_revisions_are_date_prefixed() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    for revision in script.walk_revisions():
        assert revision.path is not None
        assert Path(revision.path).name[:8].isdigit()


def test_revisions_do_not_import_models() -> None:
    versions = Path(__file__).resolve().parents[2] / "migrations" / "versions"
    for path in versions.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert "preference_store" not in source, path.name
        assert "def downgrade" in source


def test_upgrading_an_existing_database_keeps_its_rows(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        command.upgrade(alembic_config(url), "59456bef5dca")
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
                connection.execute(
                    text(
                        "INSERT INTO item (id, project_id, external_id, messages, metadata, content_hash, created_at) "
                        "VALUES (1, 1, 'x', :messages, :metadata, 'h', :at)"
                    ).bindparams(bindparam("messages", type_=JSON), bindparam("metadata", type_=JSON)),
                    {"messages": [], "metadata": {}, "at": at},
                )
                connection.execute(
                    text(
                        "INSERT INTO item_queue (item_id, project_id, open_slots, is_reopened) VALUES (1, 1, 1, false)"
                    )
                )
            database.upgrade(engine)
            with engine.connect() as connection:
                assert connection.execute(text("SELECT count(*) FROM item_queue")).scalar() == 1
        finally:
            engine.dispose()


def test_workbench_revision_backfills_rows_written_under_the_first_schema(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        config = alembic_config(url)
        command.upgrade(config, "59456bef5dca")
        engine = build_engine(url, pool_size=1)
        try:
            at = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
            rows: list[tuple[str, Mapping[str, object]]] = [
                ("INSERT INTO app_user (id, email, name, role, languages, is_active, created_at) "
                 "VALUES (1, 'old@example.org', 'old', 'annotator', :languages, true, :at)", {"languages": ["th"]}),
                ("INSERT INTO project (id, slug, name, kind, guidelines, guidelines_version, overlap, lease_seconds, "
                 "settings, is_archived, created_by_id, created_at) "
                 "VALUES (1, 'legacy', 'Legacy', 'pairwise', '# Be kind', 1, 2, 1800, :settings, false, 1, :at)",
                 {"settings": {}}),
                ("INSERT INTO item (id, project_id, external_id, messages, metadata, content_hash, created_at) "
                 "VALUES (7, 1, 'x-7', :messages, :metadata, 'h', :at)",
                 {"messages": [{"role": "user", "content": "Hi"}], "metadata": {"language": "th-TH"}}),
                ("INSERT INTO item (id, project_id, external_id, messages, metadata, content_hash, created_at) "
                 "VALUES (8, 1, 'x-8', :messages, :metadata, 'h', :at)",
                 {"messages": [{"role": "user", "content": "Hi"}], "metadata": {}}),
                ("INSERT INTO item_queue (item_id, project_id, open_slots, is_reopened) VALUES (7, 1, 1, false)", {}),
                ("INSERT INTO item_queue (item_id, project_id, open_slots, is_reopened) VALUES (8, 1, 2, false)", {}),
                ("INSERT INTO assignment (id, project_id, item_id, annotator_id, shown_order, state, leased_until, "
                 "created_at, closed_at) VALUES (3, 1, 7, 1, :order, 'submitted', :at, :at, :at)", {"order": [1, 0]}),
                ("INSERT INTO judgment (id, assignment_id, project_id, item_id, annotator_id, payload, time_spent_ms, "
                 "guidelines_version, created_at) VALUES (5, 3, 1, 7, 1, :payload, 1200, 1, :at)",
                 {"payload": {"choice": "A", "preferred_position": 1, "rationale": None}}),
            ]  # fmt: skip
            with engine.begin() as connection:
                for statement, values in rows:
                    json_params = [bindparam(name, type_=JSON) for name in values]
                    connection.execute(text(statement).bindparams(*json_params), {**values, "at": at})
            database.upgrade(engine)
            base = 1000 * 2**40
            with engine.connect() as connection:
                queue_rows = connection.execute(text("SELECT item_id, rank, language FROM item_queue ORDER BY 1")).all()
                assert [tuple(row) for row in queue_rows] == [(7, base + 7, "th"), (8, base + 8, None)]
                assert connection.execute(text("SELECT queue_rank FROM assignment WHERE id = 3")).scalar() == base + 7
                judgment = connection.execute(text("SELECT verdict, revision FROM judgment WHERE id = 5")).one()
                assert tuple(judgment) == ("p1", 1)
                versions = connection.execute(
                    text("SELECT project_id, version, text, note, created_by_id FROM guidelines_version")
                ).all()
                assert [tuple(row) for row in versions] == [(1, 1, "# Be kind", "", 1)]
            command.downgrade(config, "base")
            assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        finally:
            engine.dispose()
