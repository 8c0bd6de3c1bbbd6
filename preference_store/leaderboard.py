"""Reading what the model leaderboard and the model-vs-human report compare: votes, response models, items."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from preference_store.judgments import JudgmentFilter
from preference_store.models import Item, ItemQueue, Judgment, Response, User

VOTE_ROWS_PER_BATCH = 5000
_IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Vote:
    """One human judgment's verdict key with its item's groups."""

    item_id: int
    verdict: str
    language: str | None
    market: str | None
    category: str | None


@dataclass(frozen=True, slots=True)
class ItemGroups:
    language: str | None
    market: str | None
    category: str | None


@dataclass(frozen=True, slots=True)
class ExampleResponse:
    position: int
    model: str
    content: str


@dataclass(frozen=True, slots=True)
class Example:
    """An item's prompt (its messages) and responses, for sets of examples."""

    item_id: int
    external_id: str
    messages: list[dict[str, Any]]
    responses: list[ExampleResponse]


def iter_votes(
    session: Session, *, project_id: int, where: JudgmentFilter | None = None, batch_size: int = VOTE_ROWS_PER_BATCH
) -> Iterator[list[Vote]]:
    """Stream a project's (filtered) judgments as votes, `batch_size` at a time."""
    where = where or JudgmentFilter()
    statement = (
        select(
            Judgment.item_id,
            Judgment.verdict,
            ItemQueue.language,
            Item.metadata_["market"].as_string(),
            Item.metadata_["category"].as_string(),
        )
        .join(Item, Item.id == Judgment.item_id)
        .outerjoin(ItemQueue, ItemQueue.item_id == Judgment.item_id)
        .where(Judgment.project_id == project_id, *where.item_conditions(), *where.judgment_conditions())
        .order_by(Judgment.id)
        .execution_options(yield_per=batch_size)
    )
    if where.team_ids:
        statement = statement.join(User, User.id == Judgment.annotator_id)
    with session.connection().execute(statement) as result:
        for rows in result.partitions(batch_size):
            yield [Vote(row[0], row[1], row[2], row[3], row[4]) for row in rows]


def response_models(session: Session, *, project_id: int) -> dict[int, dict[int, str]]:
    """Item id -> response position -> model name ('' when the response has none), for a whole project."""
    models: dict[int, dict[int, str]] = {}
    rows = session.execute(
        select(Response.item_id, Response.position, Response.model_name)
        .join(Item, Item.id == Response.item_id)
        .where(Item.project_id == project_id)
    )
    for item_id, position, model_name in rows:
        models.setdefault(item_id, {})[position] = model_name or ""
    return models


def item_groups(session: Session, *, project_id: int, where: JudgmentFilter | None = None) -> dict[int, ItemGroups]:
    """Item id -> language, market and category, for the project's items that pass the item filters."""
    where = where or JudgmentFilter()
    rows = session.execute(
        select(
            Item.id,
            ItemQueue.language,
            Item.metadata_["market"].as_string(),
            Item.metadata_["category"].as_string(),
        )
        .outerjoin(ItemQueue, ItemQueue.item_id == Item.id)
        .where(Item.project_id == project_id, *where.item_conditions())
    )
    return {row[0]: ItemGroups(row[1], row[2], row[3]) for row in rows}


def examples(session: Session, *, item_ids: Iterable[int]) -> list[Example]:
    """Items with their messages and responses, in item id order."""
    wanted = sorted(set(item_ids))
    found: dict[int, Example] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        rows = session.execute(
            select(Item.id, Item.external_id, Item.messages, Response.position, Response.model_name, Response.content)
            .join(Response, Response.item_id == Item.id)
            .where(Item.id.in_(chunk))
            .order_by(Item.id, Response.position)
        )
        for item_id, external_id, messages, position, model_name, content in rows:
            example = found.get(item_id)
            if example is None:
                example = found[item_id] = Example(item_id, external_id, list(messages), [])
            example.responses.append(ExampleResponse(position, model_name or "", content))
    return [found[item_id] for item_id in wanted if item_id in found]
