"""Quality pages for leads: the project dashboard, annotator scorecards, team scorecards and benchmark."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from annotation_ui.rendering import render
from app.deps import CurrentPrincipal, DbSession
from app.services import knowledge_gaps, quality_reports, quality_trends
from app.services.quality_reports import Dashboard, ReportQuery
from app.services.quality_trends import Trends

router = APIRouter(include_in_schema=False)

FILTER_NAMES = ("judged_from", "judged_until", "teams", "language", "market", "category")


def _kept(request: Request, *names: str) -> dict[str, str]:
    """The report parameters a page takes that its request sets, kept for the form and the download links."""
    return {name: value for name in names if (value := request.query_params.get(name, ""))}


def _links(slug: str, kept: dict[str, str], report: str) -> dict[str, str]:
    """Download links of a report with the page's filters, one per format."""
    base = f"/api/v1/projects/{quote(slug)}/quality/{report}"
    return {fmt: f"{base}?{urlencode({**kept, 'format': fmt})}" for fmt in ("csv", "parquet", "xlsx")}


def _chart_data(view: Dashboard) -> dict[str, Any]:
    """The series the dashboard's charts draw: days and weeks as Unix seconds, NaN gaps as null."""

    def seconds(day: Any) -> int:
        return int(day.toordinal() - 719163) * 86400

    first = [week.agreement[0] if week.agreement else None for week in view.weekly]
    return {
        "volume": [[seconds(entry.day) for entry in view.volume], [entry.judgments for entry in view.volume]],
        "agreement": [
            [seconds(week.week_start) for week in view.weekly],
            [entry.alpha if entry else None for entry in first],
            [entry.alpha_low if entry else None for entry in first],
            [entry.alpha_high if entry else None for entry in first],
        ],
    }


@router.get("/projects/{slug}/quality", response_class=HTMLResponse)
def dashboard_page(request: Request, slug: str, session: DbSession, principal: CurrentPrincipal) -> Response:
    kept = _kept(request, *FILTER_NAMES, "group_by")
    query = _query(kept)
    view = quality_reports.dashboard(session, principal=principal, slug=slug, query=query)
    downloads = {
        table: _links(slug, {**kept, "table": table}, "dashboard") for table in quality_reports.DASHBOARD_TABLES
    }
    context = {
        "view": view,
        "values": kept,
        "facets": view.facets,
        "groupings": quality_reports.GROUPINGS,
        "download_links": downloads,
        "chart": _chart_data(view),
        "action": f"/projects/{slug}/quality",
    }
    return render(request, "quality.html", context, block="report")


def _query(kept: dict[str, str]) -> ReportQuery:
    return quality_reports.report_query(
        judged_from=kept.get("judged_from", ""),
        judged_until=kept.get("judged_until", ""),
        teams=kept.get("teams", ""),
        language=kept.get("language", ""),
        market=kept.get("market", ""),
        category=kept.get("category", ""),
        group_by=kept.get("group_by", ""),
        aggregate=kept.get("aggregate", ""),
    )


@router.get("/projects/{slug}/quality/annotators", response_class=HTMLResponse)
def annotators_page(request: Request, slug: str, session: DbSession, principal: CurrentPrincipal) -> Response:
    kept = _kept(request, *FILTER_NAMES, "aggregate")
    view = quality_reports.annotator_scorecards(session, principal=principal, slug=slug, query=_query(kept))
    facets = quality_reports.report_facets(session, principal=principal, slug=slug)
    context = {
        "view": view,
        "values": kept,
        "facets": facets,
        "aggregates": quality_reports.AGGREGATES,
        "download_links": _links(slug, kept, "annotators"),
        "action": f"/projects/{slug}/quality/annotators",
    }
    return render(request, "quality_annotators.html", context, block="report")


@router.get("/projects/{slug}/quality/teams", response_class=HTMLResponse)
def teams_page(
    request: Request, slug: str, session: DbSession, principal: CurrentPrincipal, first: str = "", second: str = ""
) -> Response:
    kept = _kept(request, "judged_from", "judged_until", "language", "market", "category", "aggregate")
    query = _query(kept)
    view = quality_reports.team_scorecards(session, principal=principal, slug=slug, query=query)
    benchmark = None
    if first and second:
        benchmark = quality_reports.team_benchmark(
            session, principal=principal, slug=slug, query=query, teams=[first, second]
        )
    facets = quality_reports.report_facets(session, principal=principal, slug=slug)
    compared = {**kept, "teams": f"{first},{second}"} if benchmark else None
    context = {
        "view": view,
        "benchmark": benchmark,
        "values": {**kept, "first": first, "second": second},
        "facets": facets,
        "aggregates": quality_reports.AGGREGATES,
        "download_links": _links(slug, kept, "teams"),
        "benchmark_downloads": _links(slug, compared, "benchmark") if compared else None,
        "action": f"/projects/{slug}/quality/teams",
    }
    return render(request, "quality_teams.html", context, block="report")


GAP_NAMES = ("columns", "min_judgments", "rank_by")


def _heat(value: float | None) -> str:
    """A cell's background: red (0) through amber to green (1); the number stays in the cell."""
    if value is None:
        return ""
    return f"background-color: hsl({round(max(0.0, min(1.0, value)) * 120)}, 70%, 86%)"


@router.get("/projects/{slug}/quality/gaps", response_class=HTMLResponse)
def gaps_page(request: Request, slug: str, session: DbSession, principal: CurrentPrincipal) -> Response:
    kept = _kept(request, *FILTER_NAMES, *GAP_NAMES)
    query = knowledge_gaps.gap_query(**kept)
    view = knowledge_gaps.knowledge_gaps(session, principal=principal, slug=slug, query=query)
    context = {
        "view": view,
        "values": kept,
        "facets": view.facets,
        "gap_columns": knowledge_gaps.GAP_COLUMNS,
        "rank_by": knowledge_gaps.RANK_BY,
        "min_judgments": query.min_judgments,
        "heat": _heat,
        "browse_base": f"/projects/{quote(slug)}/items",
        "download_links": _links(slug, kept, "gaps"),
        "action": f"/projects/{slug}/quality/gaps",
    }
    return render(request, "quality_gaps.html", context, block="report")


def _trend_chart_data(view: Trends) -> dict[str, Any]:
    """One multi-series chart per figure: x = period starts (Unix seconds), one series per project."""

    def seconds(day: Any) -> int:
        return int(day.toordinal() - 719163) * 86400

    x = [seconds(period) for period in view.periods]
    shown = [trend for trend in view.projects if trend.points]

    def series(name: str) -> dict[str, Any]:
        columns = []
        for trend in shown:
            by_period = {point.period_start: getattr(point, name) for point in trend.points}
            columns.append([by_period.get(period) for period in view.periods])
        return {"labels": [trend.slug for trend in shown], "data": [x, *columns]}

    return {
        "trend_alpha": series("alpha"),
        "trend_judgments": series("judgments"),
        "trend_gold": series("gold_accuracy"),
        "trend_seconds": series("median_seconds"),
    }


@router.get("/quality/trends", response_class=HTMLResponse)
def trends_page(request: Request, session: DbSession, principal: CurrentPrincipal) -> Response:
    kept = _kept(request, "judged_from", "judged_until", "projects", "period", "language", "market", "category")
    query = quality_trends.trend_query(
        judged_from=kept.get("judged_from", ""),
        judged_until=kept.get("judged_until", ""),
        projects=kept.get("projects", ""),
        period=kept.get("period", ""),
        language=kept.get("language", ""),
        market=kept.get("market", ""),
        category=kept.get("category", ""),
    )
    view = quality_trends.quality_trends(session, principal=principal, query=query)
    base = "/api/v1/quality/trends"
    context = {
        "view": view,
        "values": kept,
        "periods": quality_trends.PERIODS,
        "has_gold": any(point.gold_judgments for trend in view.projects for point in trend.points),
        "chart": _trend_chart_data(view),
        "download_links": {fmt: f"{base}?{urlencode({**kept, 'format': fmt})}" for fmt in ("csv", "parquet", "xlsx")},
        "action": "/quality/trends",
    }
    return render(request, "quality_trends.html", context, block="report")
