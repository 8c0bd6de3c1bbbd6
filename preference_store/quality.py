"""Reading the facts quality reports are computed from: one row per judgment, streamed in batches."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVarTuple

import numpy as np
import numpy.typing as npt
from sqlalchemy import Date, Integer, Select, Text, cast, func, literal_column, null, select
from sqlalchemy.orm import QueryableAttribute, Session
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
class JudgmentArrays:
    """A project's (filtered) judgments as parallel arrays (index = judgment), in judgment id order.

    `verdict_code` indexes `verdicts`, the distinct verdict keys; `left_position` is the stored
    response position shown on the left (-1: unknown); `time_spent_ms` is NaN where unknown;
    `day` counts UTC days since 1970-01-01. `payload` holds the decoded payloads, one per
    judgment, when asked for, else None.
    """

    item_id: npt.NDArray[np.int64]
    annotator_id: npt.NDArray[np.int64]
    verdict_code: npt.NDArray[np.intp]
    verdicts: list[str]
    left_position: npt.NDArray[np.int64]
    time_spent_ms: npt.NDArray[np.float64]
    day: npt.NDArray[np.int64]
    payload: list[dict[str, Any] | None] | None

    def __len__(self) -> int:
        return int(self.item_id.size)


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


_Columns = TypeVarTuple("_Columns")
_SEPARATOR = ","
_VERDICT_SEPARATOR = "\x1e"
"""ASCII record separator: verdict keys are built from names that hold no control characters."""
_UNKNOWN = -1
_UNIX_EPOCH_JULIAN_DAY = 2440587.5


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _joined(
    session: Session, column: ColumnElement[Any] | QueryableAttribute[Any], separator: str = _SEPARATOR
) -> ColumnElement[str]:
    """Every value of `column` over the selected rows as one text (NULLs are skipped: coalesce them first).

    All aggregates of one query see the rows in the same order, so their k-th values belong to one row.
    """
    # A literal, not a bound parameter: SQLite copies a bound separator for every row (twice the time).
    between: ColumnElement[str] = literal_column(f"'{separator}'")
    if _is_sqlite(session):
        return func.group_concat(column, between)
    return func.string_agg(cast(column, Text), between)


def _judged_day(session: Session) -> ColumnElement[int]:
    """The UTC day of `Judgment.created_at`, counted from 1970-01-01."""
    if _is_sqlite(session):
        # SQLite keeps the time in whole milliseconds: far above the doubles' resolution at today's day numbers.
        return cast(func.julianday(Judgment.created_at) - _UNIX_EPOCH_JULIAN_DAY, Integer)
    return cast(cast(func.timezone("UTC", Judgment.created_at), Date) - date(1970, 1, 1), Integer)


def _integers(text: str | None, count: int | None = None) -> npt.NDArray[np.int64]:
    """The integers of a `_joined` text (None: no rows); `count` is how many there must be."""
    values = np.fromstring(text, dtype=np.int64, sep=_SEPARATOR) if text else np.zeros(0, np.int64)
    if count is not None and values.size != count:
        raise RuntimeError(f"read {values.size} values of {count} rows")
    return values


def _filtered(statement: Select[*_Columns], project_id: int, where: JudgmentFilter) -> Select[*_Columns]:
    """`statement` over the project's judgments that `where` selects, joining only what its filters need."""
    statement = statement.where(
        Judgment.project_id == project_id, *where.judgment_conditions(), *where.item_conditions()
    )
    if where.team_ids:
        statement = statement.join(User, User.id == Judgment.annotator_id)
    if where.languages:
        statement = statement.outerjoin(ItemQueue, ItemQueue.item_id == Judgment.item_id)
    if where.markets or where.categories:
        statement = statement.join(Item, Item.id == Judgment.item_id)
    return statement


def judgment_arrays(
    session: Session, *, project_id: int, where: JudgmentFilter | None = None, with_payload: bool = False
) -> JudgmentArrays:
    """A project's (filtered) judgments as arrays, in judgment id order: only what quality reports measure.

    Each column comes back as one text (`group_concat` on SQLite, `string_agg` on PostgreSQL) that
    numpy parses in C: the drivers would otherwise build a tuple and a Python object per value, which
    costs several times the database's own work on a million judgments.
    """
    where = where or JudgmentFilter()
    # Rows stored without their left position look it up on their assignment (one probe each).
    shown_left = (
        select(Assignment.shown_order[0].as_integer()).where(Assignment.id == Judgment.assignment_id).scalar_subquery()
    )
    left = func.coalesce(Judgment.left_position, shown_left, _UNKNOWN)
    statement = _filtered(
        select(
            _joined(session, Judgment.id),
            _joined(session, Judgment.item_id),
            _joined(session, Judgment.annotator_id),
            _joined(session, left),
            _joined(session, func.coalesce(Judgment.time_spent_ms, _UNKNOWN)),
            _joined(session, _judged_day(session)),
            _joined(session, Judgment.verdict, _VERDICT_SEPARATOR),
        ).select_from(Judgment),
        project_id,
        where,
    )
    texts = session.connection().execute(statement).one()
    ids = _integers(texts[0])
    n = int(ids.size)
    item_id, annotator_id, left_position, time_spent_ms, day = (_integers(text, n) for text in texts[1:6])
    verdict_keys = texts[6].split(_VERDICT_SEPARATOR) if n else []
    if len(verdict_keys) != n:
        raise RuntimeError(f"read {len(verdict_keys)} verdicts of {n} judgments")
    verdicts = list(dict.fromkeys(verdict_keys))
    code_of = {verdict: code for code, verdict in enumerate(verdicts)}
    # map() over a C method: no Python frame per verdict.
    verdict_code = np.fromiter(map(code_of.__getitem__, verdict_keys), dtype=np.intp, count=n)
    if n and not (ids[1:] > ids[:-1]).all():
        order = np.argsort(ids, kind="stable")
        item_id, annotator_id, left_position = item_id[order], annotator_id[order], left_position[order]
        time_spent_ms, day, verdict_code = time_spent_ms[order], day[order], verdict_code[order]
    timed = time_spent_ms.astype(np.float64)
    timed[time_spent_ms == _UNKNOWN] = np.nan
    payload = None
    if with_payload:
        read = _filtered(select(cast(Judgment.payload, Text)).select_from(Judgment), project_id, where)
        texts_of_payload = session.connection().execute(read.order_by(Judgment.id)).scalars().all()
        payload = _decode_json_texts(list(texts_of_payload))
    return JudgmentArrays(item_id, annotator_id, verdict_code, verdicts, left_position, timed, day, payload)


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


def response_chars(
    session: Session, *, project_id: int, first_id: int, last_id: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The project's item ids in [first_id, last_id] and the characters of each one's responses (ids ascending)."""
    statement = select(_joined(session, Item.id), _joined(session, func.coalesce(Item.response_chars, 0))).where(
        Item.project_id == project_id, Item.id.between(first_id, last_id)
    )
    ids_text, chars_text = session.connection().execute(statement).one()
    ids = _integers(ids_text)
    chars = _integers(chars_text, ids.size)
    if ids.size and not (ids[1:] > ids[:-1]).all():
        order = np.argsort(ids)
        ids, chars = ids[order], chars[order]
    return ids, chars


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
    """The distinct values of each metadata key in the project (non-strings as JSON text), sorted."""
    # Items share a handful of metadata objects: reading them distinct and picking the keys here
    # spares SQLite a JSON parse per item and key.
    found: dict[str, set[str]] = {key: set() for key in keys}
    for metadata in session.scalars(select(Item.metadata_).where(Item.project_id == project_id).distinct()):
        if not isinstance(metadata, dict):
            continue
        for key in keys:
            value = metadata.get(key)
            if value is not None:
                found[key].add(value if isinstance(value, str) else json.dumps(value))
    return {key: sorted(values) for key, values in found.items()}
