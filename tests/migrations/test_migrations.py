"""Alembic: empty -> head -> check clean -> base -> head again, one head."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

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
