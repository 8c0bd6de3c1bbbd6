"""Model vs human: each imported judge's verdicts compared with the human aggregate of the same items.

The compared label is the preference between the item's two responses: `first`, `second` or
`tie` (humans' `both_bad` counts as a tie, as on the leaderboard). The human aggregate of an
item is the majority of its (filtered) human judgments, counted when the item has at least
`min_judgments` of them and one label has more votes than any other (a split vote is left
out and counted as `split`). A judge's verdict is compared through its implied preference:
`choice` directly, a `ranking` by the order of the two responses, `scores` by the higher
overall score (`leaderboard.overall_score`); items with more than two responses are skipped
(`unsupported`). Agreement is the share of compared items where both labels match, with a
Wilson 95% interval, and Cohen's kappa over the three labels. See `docs/quality-reports.md`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.principal import Principal
from app.quality.agreement import cohen_kappa
from app.quality.bradley_terry import FIRST_WINS, SECOND_WINS, TIE
from app.quality.signals import wilson_interval
from app.services import quality_reports
from app.services.leaderboard import external_pairs, human_pairs, staff_project
from app.services.quality_reports import Facets, ReportQuery, Table, judgment_filter
from preference_store import external_verdicts
from preference_store import leaderboard as store
from preference_store.models import ProjectKind
from preference_store.projects import ProjectRow

LABELS = ("first", "second", "tie")
VOTE_LABELS = ("first", "second", "tie", "both_bad")
NO_GROUP = "(none)"
DISAGREEMENTS_SHOWN = 200
_OUTCOME_LABEL = {FIRST_WINS: 0, SECOND_WINS: 1, TIE: 2}


@dataclass(frozen=True, slots=True)
class JudgesQuery:
    report: ReportQuery
    min_judgments: int = 1
    source: str = ""
    judge: str = ""


@dataclass(frozen=True, slots=True)
class AgreementRow:
    """Agreement of a judge with the human aggregate on a set of items."""

    scope: str
    """`overall`, `category` or `market`."""
    group: str
    items: int
    agreeing: int
    agreement: float | None
    low: float | None
    high: float | None
    kappa: float | None


@dataclass(frozen=True, slots=True)
class Disagreement:
    item_id: int
    external_id: str
    judge_verdict: str
    human_verdict: str
    votes: dict[str, int]
    category: str
    market: str


@dataclass(frozen=True, slots=True)
class JudgeReport:
    source: str
    judge: str
    verdicts: int
    compared: int
    no_human: int
    """Verdicts on items with fewer than `min_judgments` human judgments (after the filters)."""
    split: int
    unsupported: int
    overall: AgreementRow
    by_category: list[AgreementRow]
    by_market: list[AgreementRow]
    confusion: list[list[int]]
    """Judge label (row) x human label (column), in `LABELS` order."""
    disagreements: list[Disagreement]
    disagreement_count: int


@dataclass(frozen=True, slots=True)
class JudgesView:
    project_slug: str
    project_name: str
    kind: str
    query: JudgesQuery
    labels: list[str]
    judges: list[JudgeReport]
    facets: Facets


def judges_query(
    *,
    judged_from: str = "",
    judged_until: str = "",
    teams: str = "",
    language: str = "",
    market: str = "",
    category: str = "",
    min_judgments: int | None = None,
    source: str = "",
    judge: str = "",
) -> JudgesQuery:
    """Check the filters and the minimum number of human judgments an item needs (1 or more)."""
    report = quality_reports.report_query(
        judged_from=judged_from,
        judged_until=judged_until,
        teams=teams,
        language=language,
        market=market,
        category=category,
        resamples=100,
    )
    minimum = 1 if min_judgments is None else min_judgments
    if minimum < 1:
        raise InvalidInput("invalid_min_judgments", "min_judgments must be at least 1.", field="min_judgments")
    if bool(source.strip()) != bool(judge.strip()):
        raise InvalidInput("invalid_judge", "source and judge go together.", field="judge")
    return JudgesQuery(report, minimum, source.strip(), judge.strip())


@dataclass
class _Human:
    votes: list[int]
    category: str
    market: str


def _pair_label(pairs: list[tuple[int, int, int]]) -> int | None:
    """The label (index in `LABELS`) of the outcome between positions 0 and 1, seen from position 0."""
    for a, b, outcome in pairs:
        if (a, b) == (0, 1):
            return _OUTCOME_LABEL[outcome]
        if (a, b) == (1, 0):
            return {0: 1, 1: 0, 2: 2}[_OUTCOME_LABEL[outcome]]
    return None


def _human_votes(session: Session, project: ProjectRow, query: JudgesQuery) -> dict[int, _Human]:
    where = judgment_filter(session, query.report)
    found: dict[int, _Human] = {}
    for batch in store.iter_votes(session, project_id=project.id, where=where):
        for vote in batch:
            if project.kind is ProjectKind.RANKING:
                label = _pair_label(human_pairs(vote.verdict, project.kind))
            else:
                label = {"p0": 0, "p1": 1, "tie": 2, "both_bad": 3}.get(vote.verdict.split("|", 1)[0])
            if label is None:
                continue
            human = found.get(vote.item_id)
            if human is None:
                human = found[vote.item_id] = _Human([0, 0, 0, 0], vote.category or NO_GROUP, vote.market or NO_GROUP)
            human.votes[label] += 1
    return found


def _majority(votes: list[int], minimum: int) -> int | None:
    """The human label (index in `LABELS`), None when too few votes; -1 for a split vote."""
    merged = [votes[0], votes[1], votes[2] + votes[3]]
    if sum(merged) < minimum:
        return None
    top = max(merged)
    return merged.index(top) if merged.count(top) == 1 else -1


def _none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _agreement_row(scope: str, group: str, judge: np.ndarray, human: np.ndarray) -> AgreementRow:
    n = int(judge.size)
    agreeing = int((judge == human).sum())
    if n == 0:
        return AgreementRow(scope, group, 0, 0, None, None, None, None)
    low, high = wilson_interval(np.array([agreeing]), np.array([n]))
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = cohen_kappa(judge.astype(np.float64), human.astype(np.float64), categories=[0.0, 1.0, 2.0])
    return AgreementRow(scope, group, n, agreeing, agreeing / n, _none(low[0]), _none(high[0]), _none(kappa))


def _rows_by(scope: str, keys: list[str], judge: np.ndarray, human: np.ndarray) -> list[AgreementRow]:
    array = np.asarray(keys, dtype=object)
    return [
        _agreement_row(scope, key, judge[array == key], human[array == key])
        for key in sorted(set(keys), key=lambda name: (name == NO_GROUP, name))
    ]


def _judge_report(
    session: Session,
    project: ProjectRow,
    source: str,
    judge: str,
    humans: dict[int, _Human],
    positions: dict[int, dict[int, str]],
    query: JudgesQuery,
    limit: int | None,
) -> JudgeReport:
    verdicts = no_human = split = unsupported = 0
    judge_labels: list[int] = []
    human_labels: list[int] = []
    categories: list[str] = []
    markets: list[str] = []
    disagreements: list[Disagreement] = []
    count = 0
    for verdict in external_verdicts.verdicts_of_project(session, project_id=project.id, source=source, judge=judge):
        verdicts += 1
        human = humans.get(verdict.item_id)
        majority = _majority(human.votes, query.min_judgments) if human else None
        if human is None or majority is None:
            no_human += 1
            continue
        if sorted(positions.get(verdict.item_id, {})) != [0, 1]:
            unsupported += 1
            continue
        label = _pair_label(external_pairs(verdict.kind, verdict.payload, [0, 1]))
        if label is None:
            unsupported += 1
            continue
        if majority < 0:
            split += 1
            continue
        judge_labels.append(label)
        human_labels.append(majority)
        categories.append(human.category)
        markets.append(human.market)
        if label != majority:
            count += 1
            if limit is None or len(disagreements) < limit:
                disagreements.append(
                    Disagreement(
                        item_id=verdict.item_id,
                        external_id=verdict.external_id,
                        judge_verdict=LABELS[label],
                        human_verdict=LABELS[majority],
                        votes=dict(zip(VOTE_LABELS, human.votes, strict=True)),
                        category=human.category,
                        market=human.market,
                    )
                )
    judged = np.asarray(judge_labels, dtype=np.intp)
    humane = np.asarray(human_labels, dtype=np.intp)
    confusion = np.zeros((3, 3), dtype=np.int64)
    np.add.at(confusion, (judged, humane), 1)
    return JudgeReport(
        source=source,
        judge=judge,
        verdicts=verdicts,
        compared=int(judged.size),
        no_human=no_human,
        split=split,
        unsupported=unsupported,
        overall=_agreement_row("overall", "", judged, humane),
        by_category=_rows_by("category", categories, judged, humane),
        by_market=_rows_by("market", markets, judged, humane),
        confusion=confusion.tolist(),
        disagreements=disagreements,
        disagreement_count=count,
    )


def _reports(session: Session, project: ProjectRow, query: JudgesQuery, limit: int | None) -> list[JudgeReport]:
    judges = external_verdicts.judges_of_project(session, project_id=project.id)
    if query.judge:
        judges = [found for found in judges if (found.source, found.judge) == (query.source, query.judge)]
        if not judges:
            raise InvalidInput(
                "judge_not_found", f"No verdicts of {query.source}/{query.judge} in this project.", field="judge"
            )
    if not judges:
        return []
    humans = _human_votes(session, project, query)
    positions = store.response_models(session, project_id=project.id)
    return [
        _judge_report(session, project, found.source, found.judge, humans, positions, query, limit) for found in judges
    ]


def judges_report(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    query: JudgesQuery,
    limit: int | None = DISAGREEMENTS_SHOWN,
) -> JudgesView:
    """Every imported judge (or the one asked for) against the human aggregate (leads); `limit` caps the
    disagreements listed per judge (None: all)."""
    project = staff_project(session, principal=principal, slug=slug)
    reports = _reports(session, project, query, limit)
    facets = quality_reports.report_facets(session, principal=principal, slug=slug)
    return JudgesView(project.slug, project.name, project.kind.value, query, list(LABELS), reports, facets)


JUDGES_TABLES = ("agreement", "disagreements", "confusion")


def judges_table(view: JudgesView, name: str = "agreement") -> Table:
    """Agreement rows (overall, per category and market), the disagreements, or the confusion tables."""
    if name == "disagreements":
        return Table(
            "disagreements",
            [
                "source",
                "judge",
                "external_id",
                "judge_verdict",
                "human_verdict",
                *[f"votes_{v}" for v in VOTE_LABELS],
                "category",
                "market",
            ],
            [
                [
                    report.source,
                    report.judge,
                    entry.external_id,
                    entry.judge_verdict,
                    entry.human_verdict,
                    *(entry.votes[label] for label in VOTE_LABELS),
                    entry.category,
                    entry.market,
                ]
                for report in view.judges
                for entry in report.disagreements
            ],
        )
    if name == "confusion":
        return Table(
            "confusion",
            ["source", "judge", "judge_verdict", *[f"human_{label}" for label in LABELS]],
            [
                [report.source, report.judge, label, *report.confusion[index]]
                for report in view.judges
                for index, label in enumerate(LABELS)
            ],
        )
    if name != "agreement":
        raise InvalidInput("invalid_table", f"table is one of {', '.join(JUDGES_TABLES)}.", field="table")
    columns = ["source", "judge", "scope", "group", "items", "agreeing", "agreement", "low", "high", "kappa"]
    rows: list[list[Any]] = []
    for report in view.judges:
        for row in [report.overall, *report.by_category, *report.by_market]:
            rows.append(
                [
                    report.source,
                    report.judge,
                    row.scope,
                    row.group,
                    row.items,
                    row.agreeing,
                    row.agreement,
                    row.low,
                    row.high,
                    row.kappa,
                ]
            )
    return Table("agreement", columns, rows)


def disagreement_examples(
    session: Session, *, principal: Principal, slug: str, query: JudgesQuery
) -> Iterator[dict[str, Any]]:
    """Every disagreement as an example for the algorithm team: prompt messages, responses, both verdicts, votes."""
    view = judges_report(session, principal=principal, slug=slug, query=query, limit=None)
    wanted = {entry.item_id for report in view.judges for entry in report.disagreements}
    by_item = {example.item_id: example for example in store.examples(session, item_ids=wanted)}
    grouped: dict[int, list[tuple[JudgeReport, Disagreement]]] = defaultdict(list)
    for report in view.judges:
        for entry in report.disagreements:
            grouped[entry.item_id].append((report, entry))
    for item_id in sorted(grouped):
        example = by_item.get(item_id)
        if example is None:
            continue
        for report, entry in grouped[item_id]:
            yield {
                "external_id": example.external_id,
                "prompt": example.messages,
                "responses": [
                    {"position": r.position, "model": r.model, "content": r.content} for r in example.responses
                ],
                "source": report.source,
                "judge": report.judge,
                "judge_verdict": entry.judge_verdict,
                "human_verdict": entry.human_verdict,
                "votes": entry.votes,
                "category": entry.category,
                "market": entry.market,
            }
