"""Reading judgments back, item by item, for exports and reports."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from preference_store.models import Item, Judgment, Response


@dataclass(frozen=True, slots=True)
class ResponseText:
    position: int
    content: str
    model_name: str


@dataclass(frozen=True, slots=True)
class ItemJudgments:
    """An item with its responses and every judgment stored for it, oldest first."""

    item_id: int
    external_id: str
    messages: list[dict[str, Any]]
    metadata: dict[str, Any]
    responses: list[ResponseText]
    payloads: list[dict[str, Any]]
    annotator_ids: list[int]


def iter_judged_items(session: Session, *, project_id: int, batch_size: int = 500) -> Iterator[ItemJudgments]:
    """Stream the project's judged items in id order, a batch of items at a time."""
    after = 0
    while True:
        item_ids = list(
            session.scalars(
                select(Judgment.item_id)
                .where(Judgment.project_id == project_id, Judgment.item_id > after)
                .group_by(Judgment.item_id)
                .order_by(Judgment.item_id)
                .limit(batch_size)
            )
        )
        if not item_ids:
            return
        yield from _load_batch(session, item_ids)
        after = item_ids[-1]


def _load_batch(session: Session, item_ids: list[int]) -> Iterator[ItemJudgments]:
    responses: dict[int, list[ResponseText]] = defaultdict(list)
    for item_id, position, content, model_name in session.execute(
        select(Response.item_id, Response.position, Response.content, Response.model_name)
        .where(Response.item_id.in_(item_ids))
        .order_by(Response.item_id, Response.position)
    ):
        responses[item_id].append(ResponseText(position, content, model_name))
    judgments: dict[int, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for item_id, annotator_id, payload in session.execute(
        select(Judgment.item_id, Judgment.annotator_id, Judgment.payload)
        .where(Judgment.item_id.in_(item_ids))
        .order_by(Judgment.item_id, Judgment.id)
    ):
        judgments[item_id].append((annotator_id, dict(payload)))
    for item_id, external_id, messages, metadata in session.execute(
        select(Item.id, Item.external_id, Item.messages, Item.metadata_).where(Item.id.in_(item_ids)).order_by(Item.id)
    ):
        votes = judgments[item_id]
        yield ItemJudgments(
            item_id=item_id,
            external_id=external_id,
            messages=list(messages),
            metadata=dict(metadata or {}),
            responses=responses[item_id],
            payloads=[payload for _, payload in votes],
            annotator_ids=[annotator_id for annotator_id, _ in votes],
        )
