"""How an import's batches reach the database: exact values, verdicts that follow their items, and
(on PostgreSQL, where a batch is stored in the background while the next is read) a batch the
database refuses failing the whole import."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.import_formats.rows import ExternalVerdict, SourceRow
from app.principal import Principal
from app.services import importing, projects
from preference_store import external_verdicts
from preference_store.items import load_item_content
from preference_store.models import Item, ItemQueue, Response
from tests.conftest import native_item
from tests.databases import backend

AWKWARD_TEXTS = [
    "back\\slash and \\N and \\t spelled out",
    "tab\there, newline\nhere, carriage return\r\nthere",
    "ภาษาไทย ไม่มีช่องว่างระหว่างคำ, tiếng Việt có dấu, bahasa Indonesia, 🙂 and \u200b zero width",
    "<script>alert(1)</script> & \"quotes\" 'single'",
    "\\",
    "ends with a backslash \\",
]


def _awkward_item(number: int) -> dict[str, Any]:
    text_a = AWKWARD_TEXTS[number % len(AWKWARD_TEXTS)]
    text_b = AWKWARD_TEXTS[(number + 1) % len(AWKWARD_TEXTS)]
    return {
        "external_id": f"awkward\t{number}\\",
        "messages": [
            {"role": "system", "content": "Judge\tcarefully.\n"},
            {"role": "user", "content": f"{text_a} #{number}"},
        ],
        "responses": [
            {"model": "model\\a", "content": text_a, "metadata": {"note": text_b}},
            {"model": "model\tb", "content": text_b},
        ],
        "metadata": {"language": "th", "category": "spam\\ham", "tags": ["a\nb", "c\\d"], "n": number},
        "priority": number % 3,
    }


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> int:
    """Batches of 3 items, so a handful of rows spans several batches (and several background writes)."""
    monkeypatch.setattr(importing, "INSERT_BATCH", 3)
    return 3


def test_every_value_is_stored_exactly_across_batches(
    session: Session, operator: Principal, small_batches: int
) -> None:
    project = projects.create_project(session, principal=operator, slug="awkward", name="Awkward")
    sources = [_awkward_item(number) for number in range(4 * small_batches + 1)]
    verdicts = [
        (ExternalVerdict(source="judge", judge="j\\1", kind="choice", payload={"choice": number % 2}),)
        for number in range(len(sources))
    ]
    rows = [
        SourceRow(number, source, verdict)
        for number, (source, verdict) in enumerate(zip(sources, verdicts, strict=True), start=1)
    ]

    result = importing.import_items(session, principal=operator, slug="awkward", rows=rows)

    assert (result.created, result.verdicts) == (len(sources), len(sources))
    stored_ids = dict(session.execute(select(Item.external_id, Item.id).where(Item.project_id == project.id)).all())
    assert sorted(stored_ids) == sorted(source["external_id"] for source in sources)
    for number, source in enumerate(sources):
        content = load_item_content(session, item_id=stored_ids[source["external_id"]])
        assert content is not None
        assert content.messages == source["messages"]
        assert content.metadata == source["metadata"]
        assert [(r.model_name, r.content, r.metadata) for r in content.responses] == [
            (response["model"], response["content"], response.get("metadata", {})) for response in source["responses"]
        ], number
    judged = external_verdicts.verdicts_of_project(session, project_id=project.id)
    choices = {verdict.item_id: verdict.payload["choice"] for verdict in judged}
    assert choices == {stored_ids[source["external_id"]]: number % 2 for number, source in enumerate(sources)}
    stored_chars = session.scalar(select(func.sum(Item.response_chars)).where(Item.project_id == project.id))
    assert stored_chars == sum(len(r["content"]) for source in sources for r in source["responses"])
    queued = session.scalar(select(func.count()).select_from(ItemQueue).where(ItemQueue.project_id == project.id))
    assert queued == len(sources)


@pytest.mark.skipif(backend() != "postgresql", reason="the background COPY is PostgreSQL's")
def test_a_batch_the_database_refuses_in_the_background_fails_the_import_and_leaves_nothing(
    session: Session, operator: Principal, small_batches: int
) -> None:
    project = projects.create_project(session, principal=operator, slug="refused", name="Refused")
    importing.import_items(session, principal=operator, slug="refused", rows=[(1, native_item("kept"))])
    session.commit()
    # Take an id the sequence will hand out to the import's third batch, so that batch's COPY hits
    # the primary key while the importer is already reading the fourth.
    upcoming = session.scalar(text("SELECT last_value FROM item_id_seq")) + 2 * small_batches + 2
    session.execute(
        text(
            "INSERT INTO item (id, project_id, external_id, messages, metadata, content_hash, is_sensitive,"
            " created_at, response_chars) VALUES (:id, :project, 'squatter', '[]', '{}', '', false, now(), 0)"
        ),
        {"id": upcoming, "project": project.id},
    )
    session.commit()
    before = _counts(session, project.id)
    rows = [(number, native_item(f"new-{number}")) for number in range(1, 5 * small_batches)]

    with pytest.raises(psycopg.errors.UniqueViolation):
        importing.import_items(session, principal=operator, slug="refused", rows=rows)

    assert _counts(session, project.id) == before
    again = importing.import_items(session, principal=operator, slug="refused", rows=rows[:2])
    assert again.created == 2


def _counts(session: Session, project_id: int) -> tuple[int, int, int]:
    items = select(Item.id).where(Item.project_id == project_id)
    return (
        session.scalar(select(func.count()).select_from(Item).where(Item.project_id == project_id)) or 0,
        session.scalar(select(func.count()).select_from(Response).where(Response.item_id.in_(items))) or 0,
        session.scalar(select(func.count()).select_from(ItemQueue).where(ItemQueue.project_id == project_id)) or 0,
    )
