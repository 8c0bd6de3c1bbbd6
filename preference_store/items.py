"""Items, their responses and their place in the claim queue."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.orm import Session

from preference_store.models import Item, ItemQueue, Response
from preference_store.queue import queue_language, queue_rank

_IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class NewResponse:
    """A candidate response to be stored with a new item."""

    content: str
    model_name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewItem:
    """An item to be stored, already validated."""

    external_id: str
    messages: list[dict[str, Any]]
    responses: list[NewResponse]
    metadata: dict[str, Any]
    content_hash: str
    priority: int = 0
    is_sensitive: bool = False


@dataclass(frozen=True, slots=True)
class StoredResponse:
    position: int
    content: str
    model_name: str
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ItemContent:
    """What an annotator is shown of an item, in stored (unshuffled) order."""

    id: int
    project_id: int
    external_id: str
    messages: list[dict[str, Any]]
    metadata: dict[str, Any]
    is_sensitive: bool
    responses: list[StoredResponse]


_I = cast(Table, Item.__table__)
_R = cast(Table, Response.__table__)
_ITEM_WITH_RESPONSES = (
    select(
        _I.c.id,
        _I.c.project_id,
        _I.c.external_id,
        _I.c.messages,
        _I.c.metadata,
        _I.c.is_sensitive,
        _R.c.position,
        _R.c.content,
        _R.c.model_name,
        _R.c.metadata.label("response_metadata"),
    )
    .join(_R, _R.c.item_id == _I.c.id)
    .where(_I.c.id == bindparam("item_id"))
    .order_by(_R.c.position)
)


def existing_content_hashes(session: Session, *, project_id: int, external_ids: Iterable[str]) -> dict[str, str]:
    """Map each already-stored external id of the project to its content hash."""
    ids = list(external_ids)
    found: dict[str, str] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        rows = session.execute(
            select(Item.external_id, Item.content_hash).where(
                Item.project_id == project_id, Item.external_id.in_(chunk)
            )
        )
        found.update((external_id, content_hash) for external_id, content_hash in rows)
    return found


def insert_items(session: Session, *, project_id: int, items: Sequence[NewItem], open_slots: int) -> int:
    """Insert new items with their responses and queue rows; returns how many."""
    if not items:
        return 0
    item_ids = session.scalars(
        insert(Item).returning(Item.id, sort_by_parameter_order=True),
        [
            {
                "project_id": project_id,
                "external_id": item.external_id,
                "messages": item.messages,
                "metadata_": item.metadata,
                "content_hash": item.content_hash,
                "is_sensitive": item.is_sensitive,
            }
            for item in items
        ],
    ).all()
    session.execute(
        insert(Response),
        [
            {
                "item_id": item_id,
                "position": position,
                "model_name": response.model_name,
                "content": response.content,
                "metadata_": response.metadata,
            }
            for item_id, item in zip(item_ids, items, strict=True)
            for position, response in enumerate(item.responses)
        ],
    )
    session.execute(
        insert(ItemQueue),
        [
            {
                "item_id": item_id,
                "project_id": project_id,
                "open_slots": open_slots,
                "is_reopened": False,
                "rank": queue_rank(item_id, item.priority),
                "language": queue_language(item.metadata.get("language")),
            }
            for item_id, item in zip(item_ids, items, strict=True)
        ],
    )
    return len(item_ids)


def load_item_content(session: Session, *, item_id: int) -> ItemContent | None:
    """Read an item and its responses (one query), or None."""
    rows = session.connection().execute(_ITEM_WITH_RESPONSES, {"item_id": item_id}).all()
    if not rows:
        return None
    first = rows[0]
    return ItemContent(
        id=first.id,
        project_id=first.project_id,
        external_id=first.external_id,
        messages=list(first.messages),
        metadata=dict(first.metadata or {}),
        is_sensitive=bool(first.is_sensitive),
        responses=[
            StoredResponse(row.position, row.content, row.model_name, dict(row.response_metadata or {})) for row in rows
        ],
    )
