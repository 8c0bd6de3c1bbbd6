"""The knowledge-gap matrix: agreement and gold accuracy by team x category (or policy label) x market.

Every judgment is compared on its *decision*: the pairwise outcome, a rubric's overall choice
(else its full set of scores) or the full ranking, i.e. the verdict key up to its first `|`.
Agreement is the share of a cell's judgments whose decision matches its item's majority
decision, counted on items with at least two judgments and a single most frequent decision;
the majority is taken over every judgment the report reads (all teams, even when the report
shows only some). Gold accuracy is the share of a cell's judgments on gold items whose verdict
is the gold answer or an accepted alternative. Both come with Wilson 95% intervals; cells are
ranked worst first by the interval's lower bound once they hold `min_judgments` counted
judgments. See `docs/quality-reports.md`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.principal import Principal
from app.quality.signals import wilson_interval
from app.services import quality_reports
from app.services.projects import get_project
from app.services.quality_reports import Facets, ReportQuery, Table
from preference_store import quality as quality_store
from preference_store.judgments import JudgmentFilter
from preference_store.quality_gaps import JudgmentColumns, judgment_columns

GAP_COLUMNS = ("category", "label")
RANK_BY = ("agreement", "gold")
DEFAULT_MIN_JUDGMENTS = 10
MAX_MIN_JUDGMENTS = 10_000
EXAMPLES_SHOWN = 10
NO_GROUP = quality_reports.NO_GROUP


@dataclass(frozen=True, slots=True)
class GapQuery:
    """The report filters, what the matrix's columns are, and how cells are ranked."""

    report: ReportQuery
    columns: str = "category"
    min_judgments: int = DEFAULT_MIN_JUDGMENTS
    rank_by: str = "agreement"


@dataclass(frozen=True, slots=True)
class GapCell:
    """One team x column (x market) cell; `market` is None in the matrix (markets pooled)."""

    team: str
    column: str
    market: str | None
    judgments: int
    items: int
    agreement: float | None
    agreement_low: float | None
    agreement_high: float | None
    agreement_judgments: int
    """Judgments on items with two or more judgments and a single majority decision."""
    gold_accuracy: float | None
    gold_low: float | None
    gold_high: float | None
    gold_judgments: int
    ranked: bool
    """Whether the cell holds at least `min_judgments` counted judgments for the ranking measure."""
    misses: int
    """Items of the cell with a judgment against the majority or the gold answer."""
    examples: list[str]
    """External ids of up to `EXAMPLES_SHOWN` of those items."""


@dataclass(frozen=True, slots=True)
class GapMatrix:
    project_slug: str
    project_name: str
    kind: str
    query: GapQuery
    judgments: int
    has_gold: bool
    teams: list[str]
    columns: list[str]
    matrix: list[list[GapCell | None]]
    """Rows follow `teams`, cells follow `columns`; None where the team judged nothing there."""
    cells: list[GapCell]
    """Team x column x market, worst first."""
    facets: Facets


def gap_query(
    *,
    judged_from: str = "",
    judged_until: str = "",
    teams: str = "",
    language: str = "",
    market: str = "",
    category: str = "",
    columns: str = "",
    min_judgments: str = "",
    rank_by: str = "",
) -> GapQuery:
    """Check the matrix's parameters (the report filters, `columns`, `min_judgments`, `rank_by`)."""
    report = quality_reports.report_query(
        judged_from=judged_from,
        judged_until=judged_until,
        teams=teams,
        language=language,
        market=market,
        category=category,
    )
    if columns and columns not in GAP_COLUMNS:
        raise InvalidInput("invalid_columns", f"columns is one of {', '.join(GAP_COLUMNS)}.", field="columns")
    if rank_by and rank_by not in RANK_BY:
        raise InvalidInput("invalid_rank_by", f"rank_by is one of {', '.join(RANK_BY)}.", field="rank_by")
    minimum = DEFAULT_MIN_JUDGMENTS
    if min_judgments:
        try:
            minimum = int(min_judgments)
        except ValueError:
            minimum = -1
        if not 1 <= minimum <= MAX_MIN_JUDGMENTS:
            raise InvalidInput(
                "invalid_min_judgments",
                f"min_judgments is a whole number from 1 to {MAX_MIN_JUDGMENTS}.",
                field="min_judgments",
            )
    return GapQuery(report, columns or "category", minimum, rank_by or "agreement")


def item_and_date_filter(report: ReportQuery) -> JudgmentFilter:
    """The report's language, market, category and date filters (UTC days, inclusive); not its teams."""
    return JudgmentFilter(
        languages=report.languages,
        markets=report.markets,
        categories=report.categories,
        judged_from=datetime.combine(report.judged_from, time(), UTC) if report.judged_from else None,
        judged_until=(
            datetime.combine(report.judged_until + timedelta(days=1), time(), UTC) if report.judged_until else None
        ),
    )


def decisions(verdicts: list[str]) -> list[str]:
    """The decision of each verdict key: the key up to its first `|` (see the module docstring)."""
    return [verdict.split("|", 1)[0] for verdict in verdicts]


@dataclass(frozen=True)
class Judged:
    """Per judgment: whether it counts for agreement, agrees, is on a gold item, and is right."""

    counted: npt.NDArray[np.bool_]
    agrees: npt.NDArray[np.bool_]
    on_gold: npt.NDArray[np.bool_]
    correct: npt.NDArray[np.bool_]
    item: npt.NDArray[np.intp]
    """Item codes 0..n_items-1."""
    n_items: int


def judge(columns: JudgmentColumns) -> Judged:
    """Compare every judgment with its item's majority decision and with its gold answer."""
    size = len(columns)
    items, item = np.unique(np.asarray(columns.item_id, dtype=np.int64), return_inverse=True)
    item = item.astype(np.intp).reshape(-1)
    decision, names = encode(decisions(columns.verdict))
    n_items, n_codes = int(items.size), max(len(names), 1)
    # (item, decision) tallies from a sort, not an items x decisions matrix: rubric score sets
    # and rankings can have nearly as many distinct decisions as judgments.
    pairs, tally = np.unique(item.astype(np.int64) * n_codes + decision, return_counts=True)
    pair_item = (pairs // n_codes).astype(np.intp)
    top = np.zeros(n_items, dtype=np.int64)
    np.maximum.at(top, pair_item, tally)
    at_top = tally == top[pair_item]
    single = np.bincount(pair_item[at_top], minlength=n_items) == 1
    majority = np.full(n_items, -1, dtype=np.intp)
    majority[pair_item[at_top]] = (pairs[at_top] % n_codes).astype(np.intp)
    counted_item = (np.bincount(item, minlength=n_items) >= 2) & single
    counted = counted_item[item]
    agrees = counted & (decision == majority[item])
    on_gold = np.asarray([gold is not None for gold in columns.gold], dtype=bool).reshape(size)
    correct = np.zeros(size, dtype=bool)
    for row in np.flatnonzero(on_gold).tolist():
        correct[row] = columns.verdict[row] in (columns.gold[row] or ())
    return Judged(counted, agrees, on_gold, correct, item, n_items)


def _none(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def encode(values: list[str]) -> tuple[npt.NDArray[np.intp], list[str]]:
    """Codes 0..k-1 for string values (in order of first appearance), and the values by code."""
    index = {value: code for code, value in enumerate(dict.fromkeys(values))}
    return np.fromiter(map(index.__getitem__, values), np.intp, len(values)), list(index)


def _distinct(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The distinct values, sorted (a sort and a diff: faster than `np.unique` on a million codes)."""
    ordered = np.sort(values)
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))] if ordered.size else ordered


def _cells(
    dimensions: list[tuple[npt.NDArray[np.intp], list[str]]],
    rows: npt.NDArray[np.intp],
    judged: Judged,
    external_ids: list[str],
    *,
    query: GapQuery,
) -> dict[tuple[str, ...], GapCell]:
    """One cell per distinct combination of the dimensions' codes (per expanded row; row i is judgment `rows[i]`)."""
    if rows.size == 0:
        return {}
    combined = np.zeros(rows.size, dtype=np.int64)
    for codes, names in dimensions:
        combined = combined * len(names) + codes
    used, group = np.unique(combined, return_inverse=True)
    group = group.reshape(-1)
    n = int(used.size)
    counted, agrees = judged.counted[rows], judged.agrees[rows]
    on_gold, correct = judged.on_gold[rows], judged.correct[rows]
    judgments = np.bincount(group, minlength=n)
    agree_total = np.bincount(group, weights=counted, minlength=n)
    agree_hits = np.bincount(group, weights=agrees, minlength=n)
    gold_total = np.bincount(group, weights=on_gold, minlength=n)
    gold_hits = np.bincount(group, weights=on_gold & correct, minlength=n)
    span = max(judged.n_items, 1)
    item = judged.item[rows].astype(np.int64)
    items = np.bincount((_distinct(group * span + item) // span).astype(np.intp), minlength=n)
    agree_low, agree_high = wilson_interval(agree_hits, agree_total)
    gold_low, gold_high = wilson_interval(gold_hits, gold_total)
    missed = (counted & ~agrees) | (on_gold & ~correct)
    # Distinct (cell, item) pairs with a miss, sorted: each cell's items in item order.
    pairs = _distinct(group[missed] * span + item[missed])
    pair_group = (pairs // span).astype(np.intp)
    misses = np.bincount(pair_group, minlength=n)
    starts = np.searchsorted(pair_group, np.arange(n))
    first_row = np.unique(judged.item, return_index=True)[1]
    cells = {}
    for k in range(n):
        key, rest = [], int(used[k])
        for _, names in reversed(dimensions):
            key.append(names[rest % len(names)])
            rest //= len(names)
        example_items = pairs[starts[k] : starts[k] + min(int(misses[k]), EXAMPLES_SHOWN)] % span
        cell_key = tuple(reversed(key))
        cells[cell_key] = GapCell(
            team=cell_key[0],
            column=cell_key[1],
            market=cell_key[2] if len(cell_key) > 2 else None,
            judgments=int(judgments[k]),
            items=int(items[k]),
            agreement=float(agree_hits[k] / agree_total[k]) if agree_total[k] else None,
            agreement_low=_none(agree_low[k]),
            agreement_high=_none(agree_high[k]),
            agreement_judgments=int(agree_total[k]),
            gold_accuracy=float(gold_hits[k] / gold_total[k]) if gold_total[k] else None,
            gold_low=_none(gold_low[k]),
            gold_high=_none(gold_high[k]),
            gold_judgments=int(gold_total[k]),
            ranked=bool((agree_total if query.rank_by == "agreement" else gold_total)[k] >= query.min_judgments),
            misses=int(misses[k]),
            examples=[external_ids[first_row[code]] for code in example_items.tolist()],
        )
    return cells


def rank_key(cell: GapCell, rank_by: str) -> tuple[Any, ...]:
    """Worst first: ranked cells by lower bound then estimate, then unranked cells by size."""
    low, value = (cell.agreement_low, cell.agreement) if rank_by == "agreement" else (cell.gold_low, cell.gold_accuracy)
    if cell.ranked and low is not None and value is not None:
        return (0, low, value, cell.team, cell.column, cell.market or "")
    return (1, -cell.judgments, 0.0, cell.team, cell.column, cell.market or "")


def knowledge_gaps(session: Session, *, principal: Principal, slug: str, query: GapQuery) -> GapMatrix:
    """The gap matrix (team x column, markets pooled) and its long table, worst cells first (leads)."""
    principal.require_staff()
    project = get_project(session, principal=principal, slug=slug)
    report = query.report
    if report.teams:
        found = quality_store.teams_by_name(session, names=list(report.teams))
        unknown = [name for name in report.teams if name not in found]
        if unknown:
            raise InvalidInput("unknown_team", f"No team named {', '.join(unknown)}.", field="teams")
    columns = judgment_columns(
        session, project_ids=[project.id], where=item_and_date_filter(report), with_labels=query.columns == "label"
    )
    judged = judge(columns)
    team, team_names = encode([name or NO_GROUP for name in columns.team])
    market, market_names = encode([name or NO_GROUP for name in columns.market])
    if query.columns == "label":
        item_labels: dict[int, set[str]] = {}
        for code, labels in zip(judged.item.tolist(), columns.labels, strict=True):
            item_labels.setdefault(code, set()).update(labels)
        column_names = sorted({label for labels in item_labels.values() for label in labels or {NO_GROUP}})
        label_code = {name: code for code, name in enumerate(column_names)}
        item_columns = [
            [label_code[label] for label in sorted(item_labels.get(code) or {NO_GROUP})]
            for code in range(judged.n_items)
        ]
        counts = np.asarray([len(codes) for codes in item_columns], dtype=np.intp)[judged.item]
        rows = np.repeat(np.arange(len(columns), dtype=np.intp), counts)
        column = np.fromiter(
            (code for item in judged.item.tolist() for code in item_columns[item]), np.intp, int(counts.sum())
        )
    else:
        column, column_names = encode([name or NO_GROUP for name in columns.category])
        rows = np.arange(len(columns), dtype=np.intp)
    if report.teams:
        keep = np.isin(team[rows], [code for code, name in enumerate(team_names) if name in report.teams])
        rows, column = rows[keep], column[keep]
    pooled = _cells([(team[rows], team_names), (column, column_names)], rows, judged, columns.external_id, query=query)
    long = _cells(
        [(team[rows], team_names), (column, column_names), (market[rows], market_names)],
        rows,
        judged,
        columns.external_id,
        query=query,
    )
    shown_teams = sorted({key[0] for key in pooled})
    shown_columns = sorted({key[1] for key in pooled})
    return GapMatrix(
        project_slug=project.slug,
        project_name=project.name,
        kind=project.kind.value,
        query=query,
        judgments=len(columns),
        has_gold=bool(judged.on_gold.any()),
        teams=shown_teams,
        columns=shown_columns,
        matrix=[[pooled.get((name, label)) for label in shown_columns] for name in shown_teams],
        cells=sorted(long.values(), key=lambda cell: rank_key(cell, query.rank_by)),
        facets=quality_reports.report_facets(session, principal=principal, slug=slug),
    )


GAP_TABLE_COLUMNS = [
    "team",
    "column",
    "market",
    "judgments",
    "items",
    "agreement",
    "agreement_low",
    "agreement_high",
    "agreement_judgments",
    "gold_accuracy",
    "gold_low",
    "gold_high",
    "gold_judgments",
    "ranked",
    "misses",
    "examples",
]


def gaps_table(view: GapMatrix) -> Table:
    """The long table (team x column x market, worst first) as rows; examples `;`-separated."""
    rows = [
        [
            cell.team,
            cell.column,
            cell.market,
            cell.judgments,
            cell.items,
            cell.agreement,
            cell.agreement_low,
            cell.agreement_high,
            cell.agreement_judgments,
            cell.gold_accuracy,
            cell.gold_low,
            cell.gold_high,
            cell.gold_judgments,
            cell.ranked,
            cell.misses,
            ";".join(cell.examples),
        ]
        for cell in view.cells
    ]
    columns = [view.query.columns if name == "column" else name for name in GAP_TABLE_COLUMNS]
    return Table("gaps", columns, rows)
