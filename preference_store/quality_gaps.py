"""Reading judgments as columns for the knowledge-gap matrix and the trends across projects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, null, select
from sqlalchemy.orm import Session

from preference_store.judgments import JudgmentFilter, _decode_json
from preference_store.models import GoldAnswer, Item, ItemQueue, Judgment, Team, User

ROWS_PER_FETCH = 5000


@dataclass(slots=True)
class JudgmentColumns:
    """Judgments as parallel lists (index = judgment), in (project, judgment id) order.

    `gold` holds the item's accepted verdicts (the expected one first) or None for an item
    without a gold answer; `labels` the policy label names the judgment put on any response
    (only read when asked for, else empty lists).
    """

    project_id: list[int] = field(default_factory=list)
    item_id: list[int] = field(default_factory=list)
    external_id: list[str] = field(default_factory=list)
    annotator_id: list[int] = field(default_factory=list)
    team: list[str | None] = field(default_factory=list)
    market: list[str | None] = field(default_factory=list)
    category: list[str | None] = field(default_factory=list)
    verdict: list[str] = field(default_factory=list)
    gold: list[tuple[str, ...] | None] = field(default_factory=list)
    time_spent_ms: list[int | None] = field(default_factory=list)
    created_at: list[datetime] = field(default_factory=list)
    labels: list[list[str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.verdict)


def judgment_columns(
    session: Session,
    *,
    project_ids: Sequence[int],
    where: JudgmentFilter | None = None,
    with_labels: bool = False,
) -> JudgmentColumns:
    """The (filtered) judgments of these projects with team, market, category and gold answer, one query."""
    where = where or JudgmentFilter()
    columns = JudgmentColumns()
    if not project_ids:
        return columns
    statement = (
        select(
            Judgment.project_id,
            Judgment.item_id,
            Item.external_id,
            Judgment.annotator_id,
            Team.name,
            Item.metadata_["market"].as_string(),
            Item.metadata_["category"].as_string(),
            Judgment.verdict,
            GoldAnswer.verdict,
            cast(GoldAnswer.accepted_verdicts, Text),
            Judgment.time_spent_ms,
            Judgment.created_at,
            cast(Judgment.payload, Text) if with_labels else null(),
        )
        .join(User, User.id == Judgment.annotator_id)
        .outerjoin(Team, Team.id == User.team_id)
        .join(Item, Item.id == Judgment.item_id)
        .outerjoin(GoldAnswer, GoldAnswer.item_id == Judgment.item_id)
        .where(Judgment.project_id.in_(list(project_ids)), *where.judgment_conditions())
        .order_by(Judgment.project_id, Judgment.id)
        .execution_options(yield_per=ROWS_PER_FETCH)
    )
    item_conditions = where.item_conditions()
    if where.languages:
        statement = statement.outerjoin(ItemQueue, ItemQueue.item_id == Judgment.item_id)
    if item_conditions:
        statement = statement.where(*item_conditions)
    with session.connection().execute(statement) as result:
        for rows in result.partitions(ROWS_PER_FETCH):
            for row in rows:
                columns.project_id.append(row[0])
                columns.item_id.append(row[1])
                columns.external_id.append(row[2])
                columns.annotator_id.append(row[3])
                columns.team.append(row[4])
                columns.market.append(row[5])
                columns.category.append(row[6])
                columns.verdict.append(row[7])
                columns.gold.append(None if row[8] is None else (row[8], *(_decode_json(row[9]) or ())))
                columns.time_spent_ms.append(row[10])
                columns.created_at.append(row[11])
                columns.labels.append(_label_names(_decode_json(row[12])) if with_labels else [])
    return columns


def _label_names(payload: Any) -> list[str]:
    """Policy label names (severity dropped) a pairwise payload puts on any response, sorted."""
    labels = (payload or {}).get("labels") if isinstance(payload, dict) else None
    if not isinstance(labels, dict):
        return []
    return sorted({str(value).split(":", 1)[0] for values in labels.values() for value in values or ()})
