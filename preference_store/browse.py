"""Browsing a project's items for quality leads: filters, keyset pages, facets, annotators.

Every query filters by project first and pages by item id, so a page of a 100k-item
project reads one page of rows; per-item judgment figures come from one grouped query
over the page's ids, never a query per row.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from preference_store.models import Assignment, AssignmentState, Item, ItemQueue, Judgment, Team, User

FACETS = ("language", "market", "category")
"""Item metadata keys the browser filters on."""


class ItemState(StrEnum):
    OPEN = "open"
    """No judgment yet."""
    IN_PROGRESS = "in_progress"
    """Judged, with open slots or leases still held."""
    COMPLETE = "complete"
    """Judged, no open slot and no lease held."""


@dataclass(frozen=True, slots=True)
class ItemFilters:
    """What a lead narrows the list to; None leaves a filter off."""

    language: str | None = None
    market: str | None = None
    category: str | None = None
    state: ItemState | None = None
    has_disagreement: bool | None = None
    q: str | None = None


@dataclass(frozen=True, slots=True)
class ItemListRow:
    id: int
    external_id: str
    metadata: dict[str, Any]
    messages: list[dict[str, Any]]
    is_sensitive: bool
    open_slots: int
    has_lease: bool


@dataclass(frozen=True, slots=True)
class VerdictCount:
    verdict: str
    count: int


@dataclass(frozen=True, slots=True)
class AnnotatorRow:
    id: int
    name: str
    team: str | None


def metadata_value(key: str) -> ColumnElement[str]:
    """A string value of the item metadata, the same SQL meaning on SQLite and PostgreSQL."""
    value: ColumnElement[str] = Item.metadata_[key].as_string()
    return value


def _judged() -> ColumnElement[bool]:
    return exists().where(Judgment.project_id == Item.project_id, Judgment.item_id == Item.id)


def _leased() -> ColumnElement[bool]:
    # A lease holds its slot until it is submitted, skipped or swept, even past its
    # deadline: an item is only complete once every slot has a judgment.
    return exists().where(Assignment.item_id == Item.id, Assignment.state == AssignmentState.LEASED)


def _distinct_verdicts() -> Any:
    return (
        select(func.count(Judgment.verdict.distinct()))
        .where(Judgment.project_id == Item.project_id, Judgment.item_id == Item.id)
        .scalar_subquery()
    )


def _conditions(filters: ItemFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    for key in FACETS:
        value = getattr(filters, key)
        if value is not None:
            conditions.append(metadata_value(key) == value)
    if filters.q:
        conditions.append(Item.external_id.icontains(filters.q, autoescape=True))
    if filters.state is ItemState.OPEN:
        conditions.append(~_judged())
    elif filters.state is ItemState.IN_PROGRESS:
        conditions.append(and_(_judged(), or_(ItemQueue.open_slots > 0, _leased())))
    elif filters.state is ItemState.COMPLETE:
        conditions.append(and_(_judged(), ItemQueue.open_slots <= 0, ~_leased()))
    if filters.has_disagreement is True:
        conditions.append(_distinct_verdicts() > 1)
    elif filters.has_disagreement is False:
        conditions.append(_distinct_verdicts() == 1)
    return conditions


def list_items(
    session: Session, *, project_id: int, filters: ItemFilters, after: int | None, limit: int
) -> list[ItemListRow]:
    """Up to `limit` items of the project matching `filters`, in id order after `after` (one query)."""
    statement = (
        select(
            Item.id,
            Item.external_id,
            Item.metadata_,
            Item.messages,
            Item.is_sensitive,
            ItemQueue.open_slots,
            _leased(),
        )
        .join(ItemQueue, ItemQueue.item_id == Item.id)
        .where(Item.project_id == project_id, *_conditions(filters))
        .order_by(Item.id)
        .limit(limit)
    )
    if after is not None:
        statement = statement.where(Item.id > after)
    return [
        ItemListRow(
            id=row[0],
            external_id=row[1],
            metadata=dict(row[2] or {}),
            messages=list(row[3] or []),
            is_sensitive=bool(row[4]),
            open_slots=int(row[5]),
            has_lease=bool(row[6]),
        )
        for row in session.execute(statement)
    ]


def verdict_counts(session: Session, *, project_id: int, item_ids: list[int]) -> dict[int, list[VerdictCount]]:
    """Each item's judgments grouped by verdict (most common first), one grouped query."""
    found: dict[int, list[VerdictCount]] = defaultdict(list)
    if not item_ids:
        return found
    count = func.count().label("count")
    rows = session.execute(
        select(Judgment.item_id, Judgment.verdict, count)
        .where(Judgment.project_id == project_id, Judgment.item_id.in_(item_ids))
        .group_by(Judgment.item_id, Judgment.verdict)
        .order_by(Judgment.item_id, count.desc(), Judgment.verdict)
    )
    for item_id, verdict, number in rows:
        found[item_id].append(VerdictCount(str(verdict), int(number)))
    return found


def facet_values(session: Session, *, project_id: int, key: str) -> list[str]:
    """The distinct string values of one metadata key in the project (one grouped query)."""
    # Grouped in an outer query: PostgreSQL binds the JSON key separately in SELECT and
    # GROUP BY and would not see them as the same expression.
    values = select(metadata_value(key).label("value")).where(Item.project_id == project_id).subquery()
    rows = session.scalars(
        select(values.c.value).where(values.c.value.is_not(None)).group_by(values.c.value).order_by(values.c.value)
    )
    return [str(value) for value in rows if value != ""]


def item_id_by_external_id(session: Session, *, project_id: int, external_id: str) -> int | None:
    """The id of the project's item with this external id, or None."""
    found = session.scalar(select(Item.id).where(Item.project_id == project_id, Item.external_id == external_id))
    return None if found is None else int(found)


def annotators(session: Session, *, user_ids: list[int]) -> dict[int, AnnotatorRow]:
    """Names and teams of users, one query."""
    if not user_ids:
        return {}
    rows = session.execute(
        select(User.id, User.name, Team.name)
        .outerjoin(Team, Team.id == User.team_id)
        .where(User.id.in_(sorted(set(user_ids))))
    )
    return {int(row[0]): AnnotatorRow(int(row[0]), str(row[1]), row[2]) for row in rows}
