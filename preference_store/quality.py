"""Reading the facts quality reports are computed from: one row per judgment, streamed in batches."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, func, null, select
from sqlalchemy.orm import Session

from preference_store.judgments import JudgmentFilter, _decode_json
from preference_store.models import Assignment, Item, ItemQueue, Judgment, Response, Team, User

FACT_ROWS_PER_BATCH = 5000
"""Judgment facts fetched and handed over at a time (a server-side cursor on PostgreSQL)."""


@dataclass(frozen=True, slots=True)
class JudgmentFact:
    """One judgment with what a quality report groups and measures it by.

    `left_position` is the stored response position shown on the left (label A) to this
    annotator; `text_chars` counts the characters of the item's responses; `payload` is only
    read when asked for (rubric scores), else None.
    """

    judgment_id: int
    item_id: int
    external_id: str
    annotator_id: int
    annotator_name: str
    team_id: int | None
    team_name: str | None
    is_vendor: bool
    language: str | None
    market: str | None
    category: str | None
    verdict: str
    left_position: int | None
    time_spent_ms: int | None
    text_chars: int
    created_at: datetime
    payload: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class TeamRow:
    id: int
    name: str
    is_vendor: bool


def iter_judgment_facts(
    session: Session,
    *,
    project_id: int,
    where: JudgmentFilter | None = None,
    with_payload: bool = False,
    batch_size: int = FACT_ROWS_PER_BATCH,
) -> Iterator[list[JudgmentFact]]:
    """Stream a project's (filtered) judgments as facts, in judgment id order, `batch_size` at a time."""
    where = where or JudgmentFilter()
    text_chars = (
        select(func.coalesce(func.sum(func.length(Response.content)), 0))
        .where(Response.item_id == Judgment.item_id)
        .correlate(Judgment)
        .scalar_subquery()
    )
    statement = (
        select(
            Judgment.id,
            Judgment.item_id,
            Item.external_id,
            Judgment.annotator_id,
            User.name,
            User.team_id,
            Team.name,
            Team.is_vendor,
            ItemQueue.language,
            Item.metadata_["market"].as_string(),
            Item.metadata_["category"].as_string(),
            Judgment.verdict,
            cast(Assignment.shown_order, Text),
            Judgment.time_spent_ms,
            text_chars,
            Judgment.created_at,
            cast(Judgment.payload if with_payload else null(), Text),
        )
        .join(User, User.id == Judgment.annotator_id)
        .outerjoin(Team, Team.id == User.team_id)
        .join(Item, Item.id == Judgment.item_id)
        .join(Assignment, Assignment.id == Judgment.assignment_id)
        .outerjoin(ItemQueue, ItemQueue.item_id == Judgment.item_id)
        .where(Judgment.project_id == project_id, *where.judgment_conditions(), *where.item_conditions())
        .order_by(Judgment.id)
        .execution_options(yield_per=batch_size)
    )
    with session.connection().execute(statement) as result:
        for rows in result.partitions(batch_size):
            yield [_fact(row) for row in rows]


def _fact(row: Any) -> JudgmentFact:
    shown_order = _decode_json(row[12]) or []
    return JudgmentFact(
        judgment_id=row[0],
        item_id=row[1],
        external_id=row[2],
        annotator_id=row[3],
        annotator_name=row[4],
        team_id=row[5],
        team_name=row[6],
        is_vendor=bool(row[7]),
        language=row[8],
        market=row[9],
        category=row[10],
        verdict=row[11],
        left_position=int(shown_order[0]) if shown_order else None,
        time_spent_ms=row[13],
        text_chars=int(row[14] or 0),
        created_at=row[15],
        payload=_decode_json(row[16]) if row[16] is not None else None,
    )


def teams_by_name(session: Session, *, names: list[str]) -> dict[str, TeamRow]:
    """The teams with these names (unknown names are left out)."""
    if not names:
        return {}
    rows = session.execute(select(Team.id, Team.name, Team.is_vendor).where(Team.name.in_(names)))
    return {row[1]: TeamRow(row[0], row[1], bool(row[2])) for row in rows}


def judging_teams(session: Session, *, project_id: int) -> list[str]:
    """Names of the teams whose members judged anything in the project, sorted."""
    rows = session.scalars(
        select(Team.name)
        .join(User, User.team_id == Team.id)
        .join(Judgment, Judgment.annotator_id == User.id)
        .where(Judgment.project_id == project_id)
        .distinct()
        .order_by(Team.name)
    )
    return list(rows)
