"""Reading judgments back (for exports, reports and their annotators) and revising them."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

import orjson
from sqlalchemy import Connection, Row, Text, bindparam, cast, exists, func, insert, select, update
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.sql.elements import ColumnElement

from preference_store.models import (
    ArbitrationCase,
    ArbitrationState,
    Assignment,
    CalibrationItem,
    GoldAnswer,
    Item,
    ItemQueue,
    Judgment,
    JudgmentRevision,
    Response,
    User,
)
from preference_store.queue import queue_language


@dataclass(frozen=True, slots=True)
class ResponseText:
    position: int
    content: str
    model_name: str


@dataclass(frozen=True, slots=True)
class Vote:
    """Who made one judgment of an item, when, and under which guidelines."""

    annotator_id: int
    team_id: int | None
    guidelines_version: int
    judged_at: datetime
    verdict: str


@dataclass(frozen=True, slots=True)
class ItemJudgments:
    """An item with its responses and every (selected) judgment stored for it, oldest first.

    `payloads`, `annotator_ids` and `votes` run in parallel, one entry per judgment.
    """

    item_id: int
    external_id: str
    messages: list[dict[str, Any]]
    metadata: dict[str, Any]
    responses: list[ResponseText]
    payloads: list[dict[str, Any]]
    annotator_ids: list[int]
    votes: list[Vote] = field(default_factory=list)
    arbitration: dict[str, Any] | None = None
    """The payload of the item's resolved arbitration verdict (by response position), if any."""


@dataclass(frozen=True, slots=True)
class JudgmentFilter:
    """Which items and judgments an export reads; empty fields do not filter.

    Item filters (language, market, category) keep or drop whole items; judgment filters
    (date range, team, guidelines version) keep only matching judgments, and items with none.
    """

    languages: tuple[str, ...] = ()
    markets: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    judged_from: datetime | None = None
    judged_until: datetime | None = None
    team_ids: tuple[int, ...] = ()
    guidelines_versions: tuple[int, ...] = ()
    without_calibration_items: bool = False
    """Drop items used in any calibration session (whole items: every judgment of them)."""
    without_gold_items: bool = False
    """Drop items that have a gold answer (whole items)."""

    def judgment_conditions(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.without_calibration_items:
            conditions.append(~exists().where(CalibrationItem.item_id == Judgment.item_id))
        if self.without_gold_items:
            conditions.append(~exists().where(GoldAnswer.item_id == Judgment.item_id))
        if self.judged_from is not None:
            conditions.append(Judgment.created_at >= self.judged_from)
        if self.judged_until is not None:
            conditions.append(Judgment.created_at < self.judged_until)
        if self.team_ids:
            conditions.append(User.team_id.in_(self.team_ids))
        if self.guidelines_versions:
            conditions.append(Judgment.guidelines_version.in_(self.guidelines_versions))
        return conditions

    def item_conditions(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.languages:
            conditions.append(ItemQueue.language.in_([queue_language(code) for code in self.languages]))
        for key, wanted in (("market", self.markets), ("category", self.categories)):
            if wanted:
                conditions.append(Item.metadata_[key].as_string().in_(wanted))
        return conditions


_JudgmentRow = Row[int, str, int, int | None, int, datetime, str]
"""item_id, payload text, annotator_id, team_id, guidelines_version, created_at, verdict."""

_DIGIT_BYTES = bytes(1 if ord("0") <= byte <= ord("9") else 0 for byte in range(256))
_LONG_DIGIT_RUN = b"\x01" * 19

JUDGMENT_ROWS_PER_FETCH = 5000
"""Judgment rows a streamed export read fetches at a time (a server-side cursor on PostgreSQL)."""


def iter_judged_items(
    session: Session, *, project_id: int, batch_size: int = 2000, where: JudgmentFilter | None = None
) -> Generator[ItemJudgments]:
    """Stream the project's judged items in id order, a batch of items at a time.

    One streamed pass reads the project's (filtered) judgments in item order; each batch of
    `batch_size` items then loads its items and responses by id range (or id list when the ids
    are far apart), so the work grows with the judgments read and memory with the batch, not
    with the project. The session must stay open while the items are read; other queries may
    run on it in between.
    """
    where = where or JudgmentFilter()
    statement = (
        select(
            Judgment.item_id,
            _json_text(Judgment.payload),
            Judgment.annotator_id,
            User.team_id,
            Judgment.guidelines_version,
            Judgment.created_at,
            Judgment.verdict,
        )
        .join(User, User.id == Judgment.annotator_id)
        .where(Judgment.project_id == project_id, *where.judgment_conditions())
        .order_by(Judgment.item_id, Judgment.id)
        .execution_options(yield_per=JUDGMENT_ROWS_PER_FETCH)
    )
    item_conditions = where.item_conditions()
    if item_conditions:
        statement = (
            statement.join(Item, Item.id == Judgment.item_id)
            .join(ItemQueue, ItemQueue.item_id == Judgment.item_id)
            .where(*item_conditions)
        )
    connection = session.connection()
    has_verdicts = _has_verdicts(connection, project_id)
    pending: dict[int, list[_JudgmentRow]] = {}
    with connection.execute(statement) as result:
        for rows in result.partitions():
            for row in rows:
                judgments = pending.get(row[0])
                if judgments is None:
                    # Rows come in item order: a new item means every pending item is complete.
                    if len(pending) >= batch_size:
                        yield from _load_batch(connection, pending, project_id if has_verdicts else None)
                        pending = {}
                    judgments = pending[row[0]] = []
                judgments.append(row)
    if pending:
        yield from _load_batch(connection, pending, project_id if has_verdicts else None)


def _has_verdicts(connection: Connection, project_id: int) -> bool:
    """Whether any case of the project is resolved: only then do batches look their verdicts up."""
    found = connection.execute(
        select(ArbitrationCase.id)
        .where(ArbitrationCase.project_id == project_id, ArbitrationCase.state == ArbitrationState.RESOLVED)
        .limit(1)
    ).first()
    return found is not None


def _resolved_verdicts(connection: Connection, project_id: int, first: int, last: int) -> dict[int, dict[str, Any]]:
    """Resolved arbitration verdicts of the project's items with ids in [first, last]."""
    rows = connection.execute(
        select(ArbitrationCase.item_id, _json_text(ArbitrationCase.payload)).where(
            ArbitrationCase.project_id == project_id,
            ArbitrationCase.state == ArbitrationState.RESOLVED,
            ArbitrationCase.item_id.between(first, last),
        )
    ).all()
    payloads = _decode_json_texts([row[1] for row in rows])
    return {int(row[0]): payload for row, payload in zip(rows, payloads, strict=True) if payload is not None}


def iter_votes(
    session: Session, *, project_id: int, where: JudgmentFilter | None = None
) -> Iterator[tuple[int, int, str]]:
    """Stream `(item_id, annotator_id, verdict)` of the project's (filtered) judgments in item order."""
    where = where or JudgmentFilter()
    statement = (
        select(Judgment.item_id, Judgment.annotator_id, Judgment.verdict)
        .join(User, User.id == Judgment.annotator_id)
        .where(Judgment.project_id == project_id, *where.judgment_conditions())
        .order_by(Judgment.item_id, Judgment.id)
        .execution_options(yield_per=JUDGMENT_ROWS_PER_FETCH)
    )
    item_conditions = where.item_conditions()
    if item_conditions:
        statement = (
            statement.join(Item, Item.id == Judgment.item_id)
            .join(ItemQueue, ItemQueue.item_id == Judgment.item_id)
            .where(*item_conditions)
        )
    with session.connection().execute(statement) as result:
        for rows in result.partitions():
            yield from ((item_id, annotator_id, verdict) for item_id, annotator_id, verdict in rows)


def _load_batch(
    connection: Connection, judgments: dict[int, list[_JudgmentRow]], verdicts_of: int | None = None
) -> Iterator[ItemJudgments]:
    """The items of a batch of judgment rows (grouped by item id, ascending), with their responses.

    With `verdicts_of` (a project id), each item also gets its resolved arbitration verdict.
    """
    item_ids = list(judgments)
    first, last = item_ids[0], item_ids[-1]
    verdicts = _resolved_verdicts(connection, verdicts_of, first, last) if verdicts_of is not None else {}
    if last - first < 2 * len(item_ids):
        # Ids close together (items imported in bulk): a range scan, skipping the few other items in it,
        # costs the drivers far less than binding thousands of parameters.
        response_ids, wanted_ids = Response.item_id.between(first, last), Item.id.between(first, last)
    else:
        response_ids, wanted_ids = Response.item_id.in_(item_ids), Item.id.in_(item_ids)
    responses: dict[int, list[ResponseText]] = defaultdict(list)
    for item_id, position, content, model_name in connection.execute(
        select(Response.item_id, Response.position, Response.content, Response.model_name)
        .where(response_ids)
        .order_by(Response.item_id, Response.position)
    ).all():
        if item_id in judgments:
            responses[item_id].append(ResponseText(position, content, model_name))
    items = [
        item
        for item in connection.execute(
            select(Item.id, Item.external_id, _json_text(Item.messages), _json_text(Item.metadata_))
            .where(wanted_ids)
            .order_by(Item.id)
        ).all()
        if item[0] in judgments
    ]
    messages = _decode_json_texts([item[2] for item in items])
    metadata = _decode_json_texts([item[3] for item in items])
    payloads = iter(_decode_json_texts([row[1] for item in items for row in judgments[item[0]]]))
    for (item_id, external_id, _, _), item_messages, item_metadata in zip(items, messages, metadata, strict=True):
        rows = judgments[item_id]
        votes = [Vote(row[2], row[3], row[4], row[5], row[6]) for row in rows]
        yield ItemJudgments(
            item_id=item_id,
            external_id=external_id,
            messages=item_messages,
            metadata=item_metadata or {},
            responses=responses[item_id],
            payloads=list(islice(payloads, len(rows))),
            annotator_ids=[vote.annotator_id for vote in votes],
            votes=votes,
            arbitration=verdicts.get(item_id),
        )


def _json_text(column: QueryableAttribute[Any]) -> ColumnElement[str]:
    """A JSON column read as its stored text, for `_decode_json_texts`.

    The drivers decode JSON with the stdlib `json`; orjson on the text is several times faster,
    and a large export decodes every payload, message list and metadata object it reads.
    """
    return cast(column, Text)


def _decode_json_texts(texts: list[str | None]) -> list[Any]:
    """Many JSON texts decoded as the stdlib `json` would, in one orjson call over an array of them."""
    joined = "[" + ",".join("null" if text is None else text for text in texts) + "]"
    if not _has_long_digit_run(joined):
        try:
            values = orjson.loads(joined)
        except orjson.JSONDecodeError:
            values = None
        if isinstance(values, list) and len(values) == len(texts):
            return values
    return [_decode_json(text) for text in texts]


def _has_long_digit_run(text: str) -> bool:
    """Whether 19 digits follow each other: maybe an integer beyond 64 bits, which orjson reads as a float."""
    # Several times faster than a regex: bytes.translate marks the digits, `in` finds a run of 19 marks.
    return _LONG_DIGIT_RUN in text.encode(errors="surrogatepass").translate(_DIGIT_BYTES)


def _decode_json(text: str | None) -> Any:
    """The value the stdlib `json` would give, decoded by orjson wherever both agree."""
    if text is None:
        return None
    if not _has_long_digit_run(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # NaN, Infinity, lone surrogates: the stdlib json writes and reads them
    return json.loads(text)


@dataclass(frozen=True, slots=True)
class JudgmentRow:
    """A stored judgment with what is needed to show it in the labels its annotator saw."""

    id: int
    project_id: int
    item_id: int
    external_id: str
    annotator_id: int
    assignment_id: int
    shown_order: list[int]
    payload: dict[str, Any]
    verdict: str
    time_spent_ms: int | None
    guidelines_version: int
    revision: int
    created_at: datetime
    revised_at: datetime | None


@dataclass(frozen=True, slots=True)
class RevisionRow:
    revision: int
    payload: dict[str, Any]
    verdict: str
    time_spent_ms: int | None
    guidelines_version: int
    made_at: datetime
    replaced_at: datetime


_JUDGMENT_COLUMNS = (
    Judgment.id,
    Judgment.project_id,
    Judgment.item_id,
    Item.external_id,
    Judgment.annotator_id,
    Judgment.assignment_id,
    Assignment.shown_order,
    Judgment.payload,
    Judgment.verdict,
    Judgment.time_spent_ms,
    Judgment.guidelines_version,
    Judgment.revision,
    Judgment.created_at,
    Judgment.revised_at,
)


def _judgments() -> Any:
    return (
        select(*_JUDGMENT_COLUMNS)
        .join(Assignment, Assignment.id == Judgment.assignment_id)
        .join(Item, Item.id == Judgment.item_id)
    )


# Built once and sent on the session's connection (the ORM's execute path costs more than the
# statement): the page's answer to every submit lists the annotator's recent judgments.
_RECENT_JUDGMENTS = (
    _judgments()
    .where(Judgment.annotator_id == bindparam("annotator_id"), Judgment.project_id == bindparam("project_id"))
    .order_by(Judgment.created_at.desc(), Judgment.id.desc())
    .limit(bindparam("limit"))
)


def _judgment_row(row: Any) -> JudgmentRow:
    values = list(row)
    values[6] = list(values[6])
    values[7] = dict(values[7])
    return JudgmentRow(*values)


def count_since(session: Session, *, annotator_id: int, project_id: int | None, since: datetime) -> int:
    """How many judgments an annotator made since a moment (in one project, or in all)."""
    statement = (
        select(func.count())
        .select_from(Judgment)
        .where(Judgment.annotator_id == annotator_id, Judgment.created_at >= since)
    )
    if project_id is not None:
        statement = statement.where(Judgment.project_id == project_id)
    return int(session.scalar(statement) or 0)


@dataclass(frozen=True, slots=True)
class JudgedSince:
    """An annotator's judgments since a moment: in one project, in all, and of items flagged sensitive."""

    in_project: int
    anywhere: int
    sensitive: int
    """In any project."""


# Per judgment, one probe of the item's key. A join would let PostgreSQL start from the items:
# few are flagged, so it expects few rows there and scans the item table for them.
_SENSITIVE_ITEM = select(Item.is_sensitive).where(Item.id == Judgment.item_id).scalar_subquery()
# Built once and sent on the session's connection: the progress strip asks after every judgment.
_JUDGED_SINCE = (
    select(
        func.count().filter(Judgment.project_id == bindparam("project_id")),
        func.count(),
        func.count().filter(_SENSITIVE_ITEM),
    )
    .select_from(Judgment)
    .where(Judgment.annotator_id == bindparam("annotator_id"), Judgment.created_at >= bindparam("since"))
)


def judged_since(session: Session, *, annotator_id: int, project_id: int, since: datetime) -> JudgedSince:
    """Count an annotator's judgments since a moment, three ways, in one read of them (by
    `ix_judgment_annotator_id_created_at`)."""
    params = {"annotator_id": annotator_id, "project_id": project_id, "since": since}
    in_project, anywhere, flagged = session.connection().execute(_JUDGED_SINCE, params).one()
    return JudgedSince(int(in_project), int(anywhere), int(flagged))


def days_with_judgments(session: Session, *, annotator_id: int, since: datetime, before: datetime) -> set[str]:
    """The UTC days (YYYY-MM-DD) on which an annotator judged anything, from `since` up to `before`."""
    dialect = session.get_bind().dialect.name
    day = (
        func.to_char(func.timezone("UTC", Judgment.created_at), "YYYY-MM-DD")
        if dialect == "postgresql"
        else func.substr(Judgment.created_at, 1, 10)
    )
    in_span = (Judgment.annotator_id == annotator_id, Judgment.created_at >= since, Judgment.created_at < before)
    return {str(value) for value in session.scalars(select(day).where(*in_span).group_by(day))}


def recent_judgments(session: Session, *, annotator_id: int, project_id: int, limit: int) -> list[JudgmentRow]:
    """An annotator's latest judgments in a project, newest first."""
    if limit <= 0:
        return []
    params = {"annotator_id": annotator_id, "project_id": project_id, "limit": limit}
    rows = session.connection().execute(_RECENT_JUDGMENTS, params)
    return [_judgment_row(row) for row in rows]


def get_judgment(session: Session, *, judgment_id: int) -> JudgmentRow | None:
    row = session.execute(_judgments().where(Judgment.id == judgment_id)).first()
    return None if row is None else _judgment_row(row)


def judgments_of_item(session: Session, *, item_id: int) -> list[JudgmentRow]:
    """Every judgment of an item, oldest first."""
    rows = session.execute(_judgments().where(Judgment.item_id == item_id).order_by(Judgment.id))
    return [_judgment_row(row) for row in rows]


def revisions_of(session: Session, *, judgment_ids: list[int]) -> dict[int, list[RevisionRow]]:
    """Earlier versions of judgments, oldest first."""
    found: dict[int, list[RevisionRow]] = defaultdict(list)
    if not judgment_ids:
        return found
    rows = session.execute(
        select(
            JudgmentRevision.judgment_id,
            JudgmentRevision.revision,
            JudgmentRevision.payload,
            JudgmentRevision.verdict,
            JudgmentRevision.time_spent_ms,
            JudgmentRevision.guidelines_version,
            JudgmentRevision.made_at,
            JudgmentRevision.replaced_at,
        )
        .where(JudgmentRevision.judgment_id.in_(judgment_ids))
        .order_by(JudgmentRevision.judgment_id, JudgmentRevision.revision)
    )
    for judgment_id, *values in rows:
        found[judgment_id].append(RevisionRow(*values))
    return found


def revise(
    session: Session,
    *,
    current: JudgmentRow,
    payload: dict[str, Any],
    verdict: str,
    time_spent_ms: int | None,
    guidelines_version: int,
    now: datetime,
) -> bool:
    """Keep the current version as a revision and store the new one; False if it changed meanwhile."""
    changed = session.execute(
        update(Judgment)
        .where(Judgment.id == current.id, Judgment.revision == current.revision)
        .values(
            payload=payload,
            verdict=verdict,
            time_spent_ms=time_spent_ms,
            guidelines_version=guidelines_version,
            revision=current.revision + 1,
            revised_at=now,
        )
    )
    if getattr(changed, "rowcount", 0) != 1:
        return False
    session.execute(
        insert(JudgmentRevision).values(
            judgment_id=current.id,
            revision=current.revision,
            payload=current.payload,
            verdict=current.verdict,
            time_spent_ms=current.time_spent_ms,
            guidelines_version=current.guidelines_version,
            made_at=current.revised_at or current.created_at,
            replaced_at=now,
        )
    )
    return True
