"""JSON API v1: quality reports (dashboard, annotator and team scorecards, team benchmark) and their downloads.

Every report takes the same filters; `format=csv|parquet|xlsx` downloads the report's table
instead of the JSON (the dashboard's `table` picks agreement, volume or labels).
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import IO, Annotated, Any, TypeVar

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
ViewT = TypeVar("ViewT")


@dataclass(frozen=True, slots=True)
class ItemFilters:
    """When the judgments were made and which items they judged: every report's query parameters.

    Lists are comma-separated; dates are YYYY-MM-DD, inclusive.
    """

    judged_from: str = ""
    judged_until: str = ""
    language: str = ""
    market: str = ""
    category: str = ""


@dataclass(frozen=True, slots=True)
class TeamFilters(ItemFilters):
    """The item filters, and `teams`: only judgments by members of these teams count."""

    teams: str = ""


Resamples = Annotated[int | None, Query(description="Bootstrap resamples for the CIs (100-5000).")]


def report_query(
    filters: Annotated[TeamFilters, Depends()],
    group_by: str = "",
    aggregate: str = "",
    resamples: Resamples = None,
) -> ReportQuery:
    """The report filters from the query string."""
    return quality_reports.report_query(**asdict(filters), group_by=group_by, aggregate=aggregate, resamples=resamples)


Filters = Annotated[ReportQuery, Depends(report_query)]


def benchmark_query(
    filters: Annotated[ItemFilters, Depends()], aggregate: str = "", resamples: Resamples = None
) -> ReportQuery:
    """The benchmark's filters: the report filters but teams, which name the teams compared."""
    return quality_reports.report_query(**asdict(filters), aggregate=aggregate, resamples=resamples)


BenchmarkFilters = Annotated[ReportQuery, Depends(benchmark_query)]


def download_format(value: str, *extra: str) -> str | None:
    """The file format asked for (None: the JSON report): csv, parquet, xlsx or one of `extra`."""
    allowed = (*FORMATS, *extra)
    if value and value not in allowed:
        raise InvalidInput("invalid_format", f"format is one of {', '.join(allowed)}.", field="format")
    return value or None


def _table_format(format: str = "") -> str | None:
    return download_format(format)


TableFormat = Annotated[str | None, Depends(_table_format)]
"""`format=csv|parquet|xlsx` downloads the report's table instead of the JSON."""


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


def view_or_download(
    view: ViewT, table: Callable[[ViewT], Table], file_format: str | None, *, slug: str
) -> ViewT | StreamingResponse:
    """The report for FastAPI to answer as JSON, or its `table` as a file when a format was asked for."""
    if file_format is None:
        return view
    return table_download(table(view), file_format, slug=slug)


@router.get("/projects/{slug}/quality/dashboard", response_model=quality_reports.Dashboard)
def dashboard(slug: str, call: ApiCall, query: Filters, file_format: TableFormat, table: str = "agreement") -> Any:
    """Leads: volume per day, agreement with 95% CIs overall, per week and per group, label distribution."""
    view = quality_reports.dashboard(call.session, principal=call.principal, slug=slug, query=query)
    return view_or_download(view, lambda shown: quality_reports.dashboard_table(shown, table), file_format, slug=slug)


@router.get("/projects/{slug}/quality/annotators", response_model=quality_reports.Scorecards)
def annotators(slug: str, call: ApiCall, query: Filters, file_format: TableFormat) -> Any:
    """Leads: one scorecard per annotator, with outlier flags and the items behind each."""
    view = quality_reports.annotator_scorecards(call.session, principal=call.principal, slug=slug, query=query)
    return view_or_download(view, quality_reports.annotators_table, file_format, slug=slug)


@router.get("/projects/{slug}/quality/teams", response_model=quality_reports.TeamScorecards)
def teams(slug: str, call: ApiCall, query: Filters, file_format: TableFormat) -> Any:
    """Leads: one scorecard per team (vendor), pooled over its members, with agreement within the team."""
    view = quality_reports.team_scorecards(call.session, principal=call.principal, slug=slug, query=query)
    return view_or_download(view, quality_reports.teams_table, file_format, slug=slug)


@router.get("/projects/{slug}/quality/benchmark", response_model=quality_reports.Benchmark)
def benchmark(
    slug: str,
    call: ApiCall,
    query: BenchmarkFilters,
    file_format: TableFormat,
    teams: Annotated[str, Query(description="The teams to compare, comma-separated (two or more).")] = "",
) -> Any:
    """Leads: teams compared on the items all of them judged (`teams=a,b`), against each other and the aggregate."""
    view = quality_reports.team_benchmark(
        call.session, principal=call.principal, slug=slug, query=query, teams=teams.split(",")
    )
    return view_or_download(view, quality_reports.benchmark_table, file_format, slug=slug)


@router.get("/projects/{slug}/quality", response_model=quality_summary.QualitySummary)
def summary(slug: str, call: ApiCall, query: Filters) -> Any:
    """Leads: the headline figures: volume, agreement with CIs, team scorecards, flagged annotators."""
    return quality_summary.quality_summary(call.session, principal=call.principal, slug=slug, query=query)


def gap_query(
    filters: Annotated[TeamFilters, Depends()],
    columns: Annotated[str, Query(description="Matrix columns: category or label (policy label).")] = "",
    min_judgments: Annotated[str, Query(description="Counted judgments a cell needs to be ranked.")] = "",
    rank_by: Annotated[str, Query(description="Rank cells by agreement or gold (accuracy).")] = "",
) -> knowledge_gaps.GapQuery:
    """The gap matrix's parameters from the query string."""
    return knowledge_gaps.gap_query(**asdict(filters), columns=columns, min_judgments=min_judgments, rank_by=rank_by)


GapFilters = Annotated[knowledge_gaps.GapQuery, Depends(gap_query)]


@router.get("/projects/{slug}/quality/gaps", response_model=knowledge_gaps.GapMatrix)
def gaps(slug: str, call: ApiCall, query: GapFilters, file_format: TableFormat) -> Any:
    """Leads: agreement and gold accuracy by team x category (or policy label) x market, worst cells first."""
    view = knowledge_gaps.knowledge_gaps(call.session, principal=call.principal, slug=slug, query=query)
    return view_or_download(view, knowledge_gaps.gaps_table, file_format, slug=slug)


@router.get("/projects/{slug}/quality/gaps.{file_format}", include_in_schema=False)
def gaps_file(slug: str, file_format: str, call: ApiCall, query: GapFilters) -> Any:
    """The gap table as `.csv`, `.parquet` or `.xlsx`."""
    checked = download_format(file_format) or "csv"
    view = knowledge_gaps.knowledge_gaps(call.session, principal=call.principal, slug=slug, query=query)
    return table_download(knowledge_gaps.gaps_table(view), checked, slug=slug)


def trend_query(
    filters: Annotated[ItemFilters, Depends()],
    projects: Annotated[str, Query(description="Project slugs, comma-separated; empty means all.")] = "",
    period: Annotated[str, Query(description="week or day.")] = "",
    resamples: Resamples = None,
) -> quality_trends.TrendQuery:
    """The trends' parameters from the query string."""
    return quality_trends.trend_query(**asdict(filters), projects=projects, period=period, resamples=resamples)


@router.get("/quality/trends", response_model=quality_trends.Trends)
def trends(
    call: ApiCall, query: Annotated[quality_trends.TrendQuery, Depends(trend_query)], file_format: TableFormat
) -> Any:
    """Leads: per project and week (or day): judgments, annotators, agreement with CI, gold accuracy, speed."""
    view = quality_trends.quality_trends(call.session, principal=call.principal, query=query)
    return view_or_download(view, quality_trends.trends_table, file_format, slug="all")
