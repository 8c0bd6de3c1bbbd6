"""Quality trends across projects: per week (or day) and project, volume, agreement, gold accuracy, speed.

Agreement is Krippendorff's alpha (nominal) on each judgment's decision (`knowledge_gaps.decisions`:
the pairwise outcome, a rubric's overall choice or full scores, the full ranking) over the items
judged two or more times within the period, with its bootstrap 95% CI (items resampled), and
the percent agreement on the same items (defined even where alpha is not, e.g. when everyone
agrees on one label). Gold accuracy comes with a Wilson 95% interval. See `docs/quality-reports.md`.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, timedelta

import numpy as np
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.principal import Principal
from app.quality.agreement import percent_agreement_terms
from app.quality.bootstrap import bootstrap_ci
from app.quality.krippendorff import alpha_terms
from app.quality.ratings import Level, slot_matrix
from app.quality.signals import wilson_interval
from app.services import quality_reports
from app.services.knowledge_gaps import decisions, item_and_date_filter
from app.services.quality_reports import ReportQuery, Table
from preference_store import projects as project_store
from preference_store.quality_gaps import JudgmentColumns, judgment_columns

PERIODS = ("week", "day")


@dataclass(frozen=True, slots=True)
class TrendQuery:
    """Which projects and judgments the trends read, and the period they are counted by."""

    report: ReportQuery
    projects: tuple[str, ...] = ()
    """Project slugs; empty means every active project."""
    period: str = "week"


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One project in one period (weeks start on Monday, UTC)."""

    period_start: date
    judgments: int
    annotators: int
    items: int
    alpha: float | None
    alpha_low: float | None
    alpha_high: float | None
    percent_agreement: float | None
    agreement_items: int
    """Items judged at least twice within the period."""
    gold_accuracy: float | None
    gold_low: float | None
    gold_high: float | None
    gold_judgments: int
    median_seconds: float | None
    """Median active time per judgment."""


@dataclass(frozen=True, slots=True)
class ProjectTrend:
    slug: str
    name: str
    kind: str
    judgments: int
    points: list[TrendPoint]


@dataclass(frozen=True, slots=True)
class Trends:
    query: TrendQuery
    periods: list[date]
    """Every period any shown project has judgments in, sorted."""
    projects: list[ProjectTrend]
    project_choices: list[str]
    """Slugs of every active project (for the filter form)."""


def trend_query(
    *,
    judged_from: str = "",
    judged_until: str = "",
    projects: str = "",
    period: str = "",
    language: str = "",
    market: str = "",
    category: str = "",
    resamples: int | None = None,
) -> TrendQuery:
    """Check the trend parameters: report date and item filters, `projects` (slugs), `period` (week, day)."""
    report = quality_reports.report_query(
        judged_from=judged_from,
        judged_until=judged_until,
        language=language,
        market=market,
        category=category,
        resamples=resamples,
    )
    if period and period not in PERIODS:
        raise InvalidInput("invalid_period", f"period is one of {', '.join(PERIODS)}.", field="period")
    slugs = tuple(dict.fromkeys(part.strip() for part in projects.split(",") if part.strip()))
    return TrendQuery(report, slugs, period or "week")


def _period_start(day: date, period: str) -> date:
    return day - timedelta(days=day.weekday()) if period == "week" else day


def _none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def quality_trends(session: Session, *, principal: Principal, query: TrendQuery) -> Trends:
    """Per project and period: judgments, annotators, agreement with CI, gold accuracy, median time (leads)."""
    principal.require_staff()
    every = project_store.list_projects(session)
    by_slug = {project.slug: project for project in every}
    unknown = [slug for slug in query.projects if slug not in by_slug]
    if unknown:
        raise NotFound("project_not_found", f"No project '{', '.join(unknown)}'.", field="projects")
    chosen = [by_slug[slug] for slug in query.projects] if query.projects else every
    columns = judgment_columns(
        session, project_ids=[project.id for project in chosen], where=item_and_date_filter(query.report)
    )
    periods = [_period_start(moment.astimezone(UTC).date(), query.period) for moment in columns.created_at]
    decision = decisions(columns.verdict)
    rows_of: dict[tuple[int, date], list[int]] = defaultdict(list)
    for row, (project_id, period) in enumerate(zip(columns.project_id, periods, strict=True)):
        rows_of[(project_id, period)].append(row)
    trends = []
    for project in chosen:
        points = [
            _point(columns, decision, rows, period, query.report.resamples)
            for (project_id, period), rows in sorted(rows_of.items(), key=lambda entry: entry[0][1])
            if project_id == project.id
        ]
        trends.append(
            ProjectTrend(project.slug, project.name, project.kind.value, sum(p.judgments for p in points), points)
        )
    shown = sorted({point.period_start for trend in trends for point in trend.points})
    return Trends(query, shown, trends, [project.slug for project in every])


def _point(columns: JudgmentColumns, decision: list[str], rows: list[int], period: date, resamples: int) -> TrendPoint:
    items = [columns.item_id[row] for row in rows]
    per_item: dict[int, int] = defaultdict(int)
    for item in items:
        per_item[item] += 1
    paired = [row for row, item in zip(rows, items, strict=True) if per_item[item] >= 2]
    alpha = low = high = percent = None
    if paired:
        codes: dict[str, int] = {}
        values = [codes.setdefault(decision[row], len(codes)) for row in paired]
        matrix = slot_matrix([columns.item_id[row] for row in paired], values).values
        interval = bootstrap_ci(alpha_terms(matrix, Level.NOMINAL), n_resamples=resamples, seed=0)
        alpha, low, high = _none(interval.estimate), _none(interval.low), _none(interval.high)
        percent = _none(percent_agreement_terms(matrix).value())
    gold_rows = [row for row in rows if columns.gold[row] is not None]
    hits = sum(1 for row in gold_rows if columns.verdict[row] in (columns.gold[row] or ()))
    gold_low, gold_high = wilson_interval(np.asarray([hits]), np.asarray([len(gold_rows)]))
    seconds = [ms / 1000.0 for row in rows if (ms := columns.time_spent_ms[row]) is not None]
    return TrendPoint(
        period_start=period,
        judgments=len(rows),
        annotators=len({columns.annotator_id[row] for row in rows}),
        items=len(per_item),
        alpha=alpha,
        alpha_low=low,
        alpha_high=high,
        percent_agreement=percent,
        agreement_items=sum(1 for count in per_item.values() if count >= 2),
        gold_accuracy=hits / len(gold_rows) if gold_rows else None,
        gold_low=_none(gold_low[0]),
        gold_high=_none(gold_high[0]),
        gold_judgments=len(gold_rows),
        median_seconds=statistics.median(seconds) if seconds else None,
    )


TREND_TABLE_COLUMNS = [
    "project",
    "period_start",
    "judgments",
    "annotators",
    "items",
    "alpha",
    "alpha_low",
    "alpha_high",
    "percent_agreement",
    "agreement_items",
    "gold_accuracy",
    "gold_low",
    "gold_high",
    "gold_judgments",
    "median_seconds",
]


def trends_table(view: Trends) -> Table:
    """One row per project and period."""
    rows = [
        [trend.slug, point.period_start.isoformat(), *(getattr(point, name) for name in TREND_TABLE_COLUMNS[2:])]
        for trend in view.projects
        for point in trend.points
    ]
    return Table("trends", TREND_TABLE_COLUMNS, rows)
