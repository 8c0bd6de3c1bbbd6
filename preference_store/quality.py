"""Reading the facts quality reports are computed from: one row per judgment, streamed in batches."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, Text, cast, func, null, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from preference_store.judgments import JudgmentFilter, _decode_json, _decode_json_texts
from preference_store.models import Assignment, Item, ItemQueue, Judgment, Team, User

_IN_CHUNK = 500
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
            Item.response_chars,
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


@dataclass(frozen=True, slots=True)
class JudgmentRows:
    """A project's (filtered) judgments in id order, as the driver's row tuples (columns in `COLUMNS` order).

    `left_position` is the stored response position shown on the left (None: unknown); `judged_at`
    is the UTC time in whole seconds since the epoch. `payload` holds the decoded payloads, one per
    row, when asked for, else None (the rows' payload column is then None).
    """

    COLUMNS = ("item_id", "annotator_id", "verdict", "left_position", "time_spent_ms", "judged_at", "payload")
    rows: list[tuple[int, int, str, int | None, int | None, int, str | None]]
    payload: list[dict[str, Any] | None] | None


@dataclass(frozen=True, slots=True)
class ItemColumns:
    """Items in id order as parallel columns; `text_chars` counts the characters of their responses (as stored)."""

    item_id: list[int]
    external_id: list[str]
    language: list[str | None]
    market: list[str | None]
    category: list[str | None]
    text_chars: list[int]


@dataclass(frozen=True, slots=True)
class RaterRow:
    """An annotator with their team (None without one)."""

    id: int
    name: str
    team_id: int | None
    team_name: str | None
    is_vendor: bool


def _epoch_seconds(session: Session, column: Any) -> ColumnElement[int]:
    if session.get_bind().dialect.name == "sqlite":
        return cast(func.strftime("%s", column), Integer)
    return cast(func.extract("epoch", column), BigInteger)


def judgment_rows(
    session: Session, *, project_id: int, where: JudgmentFilter | None = None, with_payload: bool = False
) -> JudgmentRows:
    """A project's (filtered) judgments as plain row tuples, in judgment id order: only what quality reports measure.

    Joins the user, item and queue rows only when a filter needs them, so the unfiltered read is
    the judgment index and the assignment primary key.
    """
    where = where or JudgmentFilter()
    statement = (
        select(
            Judgment.item_id,
            Judgment.annotator_id,
            Judgment.verdict,
            Assignment.shown_order[0].as_integer(),
            Judgment.time_spent_ms,
            _epoch_seconds(session, Judgment.created_at),
            cast(Judgment.payload if with_payload else null(), Text),
        )
        .join(Assignment, Assignment.id == Judgment.assignment_id)
        .where(Judgment.project_id == project_id, *where.judgment_conditions(), *where.item_conditions())
        .order_by(Judgment.id)
    )
    if where.team_ids:
        statement = statement.join(User, User.id == Judgment.annotator_id)
    if where.languages:
        statement = statement.outerjoin(ItemQueue, ItemQueue.item_id == Judgment.item_id)
    if where.markets or where.categories:
        statement = statement.join(Item, Item.id == Judgment.item_id)
    with session.connection().execute(statement) as result:
        # Plain tuples of ints and strings: no result processing, no Row objects (the caller
        # turns them into arrays in one pass; transposing a million tuples costs more).
        rows = list(result.cursor.fetchall())
    payloads = _decode_json_texts([row[6] for row in rows]) if with_payload else None
    return JudgmentRows(rows, payloads)


def item_columns(session: Session, *, project_id: int, first_id: int, last_id: int) -> ItemColumns:
    """The project's items with ids in [first_id, last_id], in id order, with their grouping metadata."""
    statement = (
        select(
            Item.id,
            Item.external_id,
            ItemQueue.language,
            Item.metadata_["market"].as_string(),
            Item.metadata_["category"].as_string(),
            Item.response_chars,
        )
        .outerjoin(ItemQueue, ItemQueue.item_id == Item.id)
        .where(Item.project_id == project_id, Item.id.between(first_id, last_id))
        .order_by(Item.id)
    )
    with session.connection().execute(statement) as result:
        rows = result.cursor.fetchall()
    if not rows:
        return ItemColumns([], [], [], [], [], [])
    ids, external, language, market, category, chars = (list(column) for column in zip(*rows, strict=True))
    return ItemColumns(ids, external, language, market, category, [int(value or 0) for value in chars])


def response_chars(session: Session, *, project_id: int, first_id: int, last_id: int) -> tuple[list[int], list[int]]:
    """The project's item ids in [first_id, last_id], in id order, and the characters of each one's responses."""
    statement = (
        select(Item.id, Item.response_chars)
        .where(Item.project_id == project_id, Item.id.between(first_id, last_id))
        .order_by(Item.id)
    )
    with session.connection().execute(statement) as result:
        rows = result.cursor.fetchall()
    if not rows:
        return [], []
    ids, chars = zip(*rows, strict=True)
    return list(ids), list(chars)


def external_ids(session: Session, *, item_ids: list[int]) -> dict[int, str]:
    """Item id -> external id for these items (unknown ids are left out)."""
    found: dict[int, str] = {}
    for start in range(0, len(item_ids), _IN_CHUNK):
        chunk = item_ids[start : start + _IN_CHUNK]
        for item_id, external_id in session.execute(select(Item.id, Item.external_id).where(Item.id.in_(chunk))):
            found[item_id] = external_id
    return found


def raters(session: Session, *, annotator_ids: list[int]) -> list[RaterRow]:
    """These annotators with their teams, in the order of `annotator_ids` (unknown ids are left out)."""
    if not annotator_ids:
        return []
    rows = session.execute(
        select(User.id, User.name, User.team_id, Team.name, Team.is_vendor)
        .outerjoin(Team, Team.id == User.team_id)
        .where(User.id.in_(annotator_ids))
    ).all()
    found = {row[0]: RaterRow(row[0], row[1], row[2], row[3], bool(row[4])) for row in rows}
    return [found[annotator_id] for annotator_id in annotator_ids if annotator_id in found]


def teams_by_name(session: Session, *, names: list[str]) -> dict[str, TeamRow]:
    """The teams with these names (unknown names are left out)."""
    if not names:
        return {}
    rows = session.execute(select(Team.id, Team.name, Team.is_vendor).where(Team.name.in_(names)))
    return {row[1]: TeamRow(row[0], row[1], bool(row[2])) for row in rows}


def judging_teams(session: Session, *, project_id: int) -> list[str]:
    """Names of the teams whose members judged anything in the project, sorted."""
    # One probe of ix_judgment_annotator_day per team member, not a pass over the judgments.
    judged = select(Judgment.id).where(Judgment.annotator_id == User.id, Judgment.project_id == project_id).exists()
    rows = session.scalars(
        select(Team.name).join(User, User.team_id == Team.id).where(judged).distinct().order_by(Team.name)
    )
    return list(rows)


def item_facets(session: Session, *, project_id: int, keys: tuple[str, ...]) -> dict[str, list[str]]:
    """The distinct string values of each metadata key in the project, sorted, in one pass over its items."""
    values = select(*(Item.metadata_[key].as_string().label(f"v{n}") for n, key in enumerate(keys))).where(
        Item.project_id == project_id
    )
    grouped = values.subquery()
    combinations = session.execute(select(*grouped.c).group_by(*grouped.c)).all()
    return {key: sorted({row[n] for row in combinations if row[n] is not None}) for n, key in enumerate(keys)}
