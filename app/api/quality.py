"""JSON API v1: quality reports (dashboard, annotator and team scorecards, team benchmark) and their downloads.

Every report takes the same filters; `format=csv|parquet|xlsx` downloads the report's table
instead of the JSON (the dashboard's `table` picks agreement, volume or labels).
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator
from typing import IO, Annotated, Any

import pyarrow as pa
import pyarrow.parquet as pq
import xlsxwriter  # type: ignore[import-untyped]
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from app.api.v1 import ERRORS
from app.deps import ApiCall
from app.errors import InvalidInput
from app.services import knowledge_gaps, quality_reports, quality_summary, quality_trends
from app.services.quality_reports import ReportQuery, Table

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["quality"])

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_CHUNK = 64 * 1024


def report_query(
    judged_from: str = "",
    judged_until: str = "",
    teams: str = "",
    language: str = "",
    market: str = "",
    category: str = "",
    group_by: str = "",
    aggregate: str = "",
    resamples: Annotated[int | None, Query(description="Bootstrap resamples for the CIs (100-5000).")] = None,
) -> ReportQuery:
    """The report filters from the query string (comma-separated lists; dates YYYY-MM-DD, inclusive)."""
    return quality_reports.report_query(
        judged_from=judged_from,
        judged_until=judged_until,
        teams=teams,
        language=language,
        market=market,
        category=category,
        group_by=group_by,
        aggregate=aggregate,
        resamples=resamples,
    )


Filters = Annotated[ReportQuery, Depends(report_query)]


def benchmark_query(
    judged_from: str = "",
    judged_until: str = "",
    language: str = "",
    market: str = "",
    category: str = "",
    aggregate: str = "",
    resamples: Annotated[int | None, Query(description="Bootstrap resamples for the CIs (100-5000).")] = None,
) -> ReportQuery:
    """The benchmark's filters: the report filters but teams, which name the teams compared."""
    return report_query(
        judged_from=judged_from,
        judged_until=judged_until,
        language=language,
        market=market,
        category=category,
        aggregate=aggregate,
        resamples=resamples,
    )


BenchmarkFilters = Annotated[ReportQuery, Depends(benchmark_query)]


def _format(value: str) -> str | None:
    if value and value not in FORMATS:
        raise InvalidInput("invalid_format", f"format is one of {', '.join(FORMATS)}.", field="format")
    return value or None


def write_table(table: Table, file_format: str, target: IO[bytes]) -> None:
    """Write a report table as CSV, Parquet or XLSX (one sheet named after the table) into `target`."""
    rows = list(quality_reports.table_rows(table))
    if file_format == "csv":
        text = io.TextIOWrapper(target, encoding="utf-8", newline="", write_through=True)
        writer = csv.writer(text)
        writer.writerow(table.columns)
        writer.writerows(["" if cell is None else cell for cell in row] for row in rows)
        text.detach()
    elif file_format == "parquet":
        columns = {name: [row[index] for row in rows] for index, name in enumerate(table.columns)}
        pq.write_table(pa.table(columns), target)
    else:
        workbook = xlsxwriter.Workbook(target, {"constant_memory": True})
        sheet = workbook.add_worksheet(table.name[:31])
        sheet.write_row(0, 0, table.columns)
        for number, row in enumerate(rows, start=1):
            sheet.write_row(number, 0, row)
        workbook.close()


def table_download(table: Table, file_format: str, *, slug: str) -> StreamingResponse:
    """A report table as an attachment, written to a temporary file and streamed from it."""
    filename = f"{slug}-quality-{table.name}.{file_format}"
    return StreamingResponse(
        _written(table, file_format),
        media_type=FORMATS[file_format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


def _written(table: Table, file_format: str) -> Iterator[bytes]:
    with tempfile.TemporaryFile() as spool:
        write_table(table, file_format, spool)
        spool.seek(0)
        while chunk := spool.read(_CHUNK):
            yield chunk


@router.get("/projects/{slug}/quality/dashboard", response_model=quality_reports.Dashboard)
def dashboard(slug: str, call: ApiCall, query: Filters, format: str = "", table: str = "agreement") -> Any:
    """Leads: volume per day, agreement with 95% CIs overall, per week and per group, label distribution."""
    file_format = _format(format)
    view = quality_reports.dashboard(call.session, principal=call.principal, slug=slug, query=query)
    if file_format is None:
        return view
    return table_download(quality_reports.dashboard_table(view, table), file_format, slug=slug)


@router.get("/projects/{slug}/quality/annotators", response_model=quality_reports.Scorecards)
def annotators(slug: str, call: ApiCall, query: Filters, format: str = "") -> Any:
    """Leads: one scorecard per annotator, with outlier flags and the items behind each."""
    file_format = _format(format)
    view = quality_reports.annotator_scorecards(call.session, principal=call.principal, slug=slug, query=query)
    if file_format is None:
        return view
    return table_download(quality_reports.annotators_table(view), file_format, slug=slug)


@router.get("/projects/{slug}/quality/teams", response_model=quality_reports.TeamScorecards)
def teams(slug: str, call: ApiCall, query: Filters, format: str = "") -> Any:
    """Leads: one scorecard per team (vendor), pooled over its members, with agreement within the team."""
    file_format = _format(format)
    view = quality_reports.team_scorecards(call.session, principal=call.principal, slug=slug, query=query)
    if file_format is None:
        return view
    return table_download(quality_reports.teams_table(view), file_format, slug=slug)


@router.get("/projects/{slug}/quality/benchmark", response_model=quality_reports.Benchmark)
def benchmark(
    slug: str,
    call: ApiCall,
    query: BenchmarkFilters,
    teams: Annotated[str, Query(description="The teams to compare, comma-separated (two or more).")] = "",
    format: str = "",
) -> Any:
    """Leads: teams compared on the items all of them judged (`teams=a,b`), against each other and the aggregate."""
    file_format = _format(format)
    view = quality_reports.team_benchmark(
        call.session, principal=call.principal, slug=slug, query=query, teams=teams.split(",")
    )
    if file_format is None:
        return view
    return table_download(quality_reports.benchmark_table(view), file_format, slug=slug)


@router.get("/projects/{slug}/quality", response_model=quality_summary.QualitySummary)
def summary(slug: str, call: ApiCall, query: Filters) -> Any:
    """Leads: the headline figures: volume, agreement with CIs, team scorecards, flagged annotators."""
    return quality_summary.quality_summary(call.session, principal=call.principal, slug=slug, query=query)


def gap_query(
    judged_from: str = "",
    judged_until: str = "",
    teams: str = "",
    language: str = "",
    market: str = "",
    category: str = "",
    columns: Annotated[str, Query(description="Matrix columns: category or label (policy label).")] = "",
    min_judgments: Annotated[str, Query(description="Counted judgments a cell needs to be ranked.")] = "",
    rank_by: Annotated[str, Query(description="Rank cells by agreement or gold (accuracy).")] = "",
) -> knowledge_gaps.GapQuery:
    """The gap matrix's parameters from the query string."""
    return knowledge_gaps.gap_query(
        judged_from=judged_from,
        judged_until=judged_until,
        teams=teams,
        language=language,
        market=market,
        category=category,
        columns=columns,
        min_judgments=min_judgments,
        rank_by=rank_by,
    )


@router.get("/projects/{slug}/quality/gaps", response_model=knowledge_gaps.GapMatrix)
def gaps(
    slug: str, call: ApiCall, query: Annotated[knowledge_gaps.GapQuery, Depends(gap_query)], format: str = ""
) -> Any:
    """Leads: agreement and gold accuracy by team x category (or policy label) x market, worst cells first."""
    file_format = _format(format)
    view = knowledge_gaps.knowledge_gaps(call.session, principal=call.principal, slug=slug, query=query)
    if file_format is None:
        return view
    return table_download(knowledge_gaps.gaps_table(view), file_format, slug=slug)


@router.get("/projects/{slug}/quality/gaps.{file_format}", include_in_schema=False)
def gaps_file(
    slug: str, file_format: str, call: ApiCall, query: Annotated[knowledge_gaps.GapQuery, Depends(gap_query)]
) -> Any:
    """The gap table as `.csv`, `.parquet` or `.xlsx`."""
    checked = _format(file_format) or "csv"
    view = knowledge_gaps.knowledge_gaps(call.session, principal=call.principal, slug=slug, query=query)
    return table_download(knowledge_gaps.gaps_table(view), checked, slug=slug)


def trend_query(
    judged_from: str = "",
    judged_until: str = "",
    projects: Annotated[str, Query(description="Project slugs, comma-separated; empty means all.")] = "",
    period: Annotated[str, Query(description="week or day.")] = "",
    language: str = "",
    market: str = "",
    category: str = "",
    resamples: Annotated[int | None, Query(description="Bootstrap resamples for the CIs (100-5000).")] = None,
) -> quality_trends.TrendQuery:
    """The trends' parameters from the query string."""
    return quality_trends.trend_query(
        judged_from=judged_from,
        judged_until=judged_until,
        projects=projects,
        period=period,
        language=language,
        market=market,
        category=category,
        resamples=resamples,
    )


@router.get("/quality/trends", response_model=quality_trends.Trends)
def trends(call: ApiCall, query: Annotated[quality_trends.TrendQuery, Depends(trend_query)], format: str = "") -> Any:
    """Leads: per project and week (or day): judgments, annotators, agreement with CI, gold accuracy, speed."""
    file_format = _format(format)
    view = quality_trends.quality_trends(call.session, principal=call.principal, query=query)
    if file_format is None:
        return view
    return table_download(quality_trends.trends_table(view), file_format, slug="all")
