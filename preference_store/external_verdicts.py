"""External verdicts: judgments made outside prefstack, stored with the items they judge.

Nothing an annotator reads (task pages, the annotator API) may query this table.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from preference_store.base import utcnow
from preference_store.models import ExternalVerdict, Item

_V = cast(Table, ExternalVerdict.__table__)
_STREAM_BATCH = 1000


@dataclass(frozen=True, slots=True)
class NewVerdict:
    """A checked external verdict to store for an item (payload by response position)."""

    item_id: int
    source: str
    judge: str
    kind: str
    payload: dict[str, Any]
    verdict: str | None


@dataclass(frozen=True, slots=True)
class StoredVerdict:
    item_id: int
    external_id: str
    source: str
    judge: str
    kind: str
    payload: dict[str, Any]
    verdict: str | None
    imported_at: datetime


@dataclass(frozen=True, slots=True)
class JudgeCount:
    """One source/judge pair of a project and how many items it judged."""

    source: str
    judge: str
    verdicts: int


def upsert_verdicts(session: Session, *, project_id: int, verdicts: Sequence[NewVerdict]) -> int:
    """Store verdicts, replacing the one an item already has from the same source and judge; returns how many."""
    # one row per key: PostgreSQL refuses an upsert that touches the same row twice in one statement
    latest = {(verdict.item_id, verdict.source, verdict.judge): verdict for verdict in verdicts}
    if not latest:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert(_V) if dialect == "postgresql" else sqlite.insert(_V)
    statement = insert.on_conflict_do_update(
        index_elements=[_V.c.item_id, _V.c.source, _V.c.judge],
        set_={
            "kind": insert.excluded.kind,
            "payload": insert.excluded.payload,
            "verdict": insert.excluded.verdict,
            "imported_at": insert.excluded.imported_at,
        },
    )
    now = utcnow()
    session.execute(
        statement,
        [
            {
                "project_id": project_id,
                "item_id": verdict.item_id,
                "source": verdict.source,
                "judge": verdict.judge,
                "kind": verdict.kind,
                "payload": verdict.payload,
                "verdict": verdict.verdict,
                "imported_at": now,
            }
            for verdict in latest.values()
        ],
    )
    return len(latest)


def verdicts_of_project(
    session: Session, *, project_id: int, source: str | None = None, judge: str | None = None
) -> Iterator[StoredVerdict]:
    """Stream a project's external verdicts (optionally of one source and/or judge), by item id."""
    statement = (
        select(
            _V.c.item_id,
            Item.external_id,
            _V.c.source,
            _V.c.judge,
            _V.c.kind,
            _V.c.payload,
            _V.c.verdict,
            _V.c.imported_at,
        )
        .join(Item, Item.id == _V.c.item_id)
        .where(_V.c.project_id == project_id)
        .order_by(_V.c.item_id, _V.c.source, _V.c.judge)
    )
    if source is not None:
        statement = statement.where(_V.c.source == source)
    if judge is not None:
        statement = statement.where(_V.c.judge == judge)
    for row in session.execute(statement.execution_options(yield_per=_STREAM_BATCH)):
        yield StoredVerdict(
            item_id=row.item_id,
            external_id=row.external_id,
            source=row.source,
            judge=row.judge,
            kind=row.kind,
            payload=dict(row.payload),
            verdict=row.verdict,
            imported_at=row.imported_at,
        )


def judges_of_project(session: Session, *, project_id: int) -> list[JudgeCount]:
    """The source/judge pairs with verdicts in a project, with how many each, by source then judge."""
    rows = session.execute(
        select(_V.c.source, _V.c.judge, func.count())
        .where(_V.c.project_id == project_id)
        .group_by(_V.c.source, _V.c.judge)
        .order_by(_V.c.source, _V.c.judge)
    )
    return [JudgeCount(source, judge, int(count)) for source, judge, count in rows]
