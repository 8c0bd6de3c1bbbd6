"""JSON API v1: the model leaderboard and the model-vs-human (judges) report, with their downloads.

Both take the quality reports' filters; `format=csv|parquet|xlsx` downloads a table instead of
the JSON (`table` picks which), and the judges report also answers `format=jsonl` with its
disagreements as a set of examples (prompt, responses, both verdicts, votes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from app.api.quality import Resamples, TableFormat, TeamFilters, download_format, view_or_download
from app.api.v1 import ERRORS
from app.deps import ApiCall
from app.services import leaderboard as leaderboard_service
from app.services import model_vs_human
from app.services.leaderboard import LeaderboardQuery
from app.services.model_vs_human import JudgesQuery

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["quality"])


def leaderboard_query(
    filters: Annotated[TeamFilters, Depends()],
    group_by: Annotated[str, Query(description="One leaderboard per language, market or category.")] = "",
    resamples: Resamples = None,
    source: Annotated[str, Query(description="Rate an imported judge's verdicts: its source (with judge).")] = "",
    judge: Annotated[str, Query(description="Rate an imported judge's verdicts: its name (with source).")] = "",
    reference: Annotated[str, Query(description="Anchor this model at rating 1000 (else the mean is).")] = "",
) -> LeaderboardQuery:
    """The leaderboard's filters from the query string."""
    return leaderboard_service.leaderboard_query(
        **asdict(filters), group_by=group_by, resamples=resamples, source=source, judge=judge, reference=reference
    )


def judges_query(
    filters: Annotated[TeamFilters, Depends()],
    min_judgments: Annotated[
        int | None, Query(description="Human judgments an item needs to have an aggregate (default 1).")
    ] = None,
    source: str = "",
    judge: str = "",
) -> JudgesQuery:
    """The judges report's filters; `source` and `judge` restrict it to one judge."""
    return model_vs_human.judges_query(**asdict(filters), min_judgments=min_judgments, source=source, judge=judge)


def _judges_format(format: str = "") -> str | None:
    return download_format(format, "jsonl")


@router.get("/projects/{slug}/leaderboard", response_model=leaderboard_service.Leaderboard)
def leaderboard(
    slug: str,
    call: ApiCall,
    query: Annotated[LeaderboardQuery, Depends(leaderboard_query)],
    file_format: TableFormat,
    table: Annotated[str, Query(description="ratings or win_rate (downloads).")] = "ratings",
) -> Any:
    """Leads: Bradley-Terry ratings (ties handled) of the models with 95% bootstrap CIs and the win-rate matrix."""
    view = leaderboard_service.leaderboard(call.session, principal=call.principal, slug=slug, query=query)
    return view_or_download(
        view, lambda shown: leaderboard_service.leaderboard_table(shown, table), file_format, slug=slug
    )


@router.get("/projects/{slug}/quality/judges", response_model=model_vs_human.JudgesView)
def judges(
    slug: str,
    call: ApiCall,
    query: Annotated[JudgesQuery, Depends(judges_query)],
    file_format: Annotated[str | None, Depends(_judges_format)],
    table: Annotated[str, Query(description="agreement, disagreements or confusion (downloads).")] = "agreement",
) -> Any:
    """Leads: each imported judge against the human majority: agreement with CI, kappa, confusion, disagreements."""
    if file_format == "jsonl":
        examples = list(
            model_vs_human.disagreement_examples(call.session, principal=call.principal, slug=slug, query=query)
        )
        return StreamingResponse(
            _jsonl(examples),
            media_type="application/x-ndjson",
            headers={
                "Content-Disposition": f'attachment; filename="{slug}-judge-disagreements.jsonl"',
                "Cache-Control": "no-store",
            },
        )
    limit = None if file_format else model_vs_human.DISAGREEMENTS_SHOWN
    view = model_vs_human.judges_report(call.session, principal=call.principal, slug=slug, query=query, limit=limit)
    return view_or_download(view, lambda shown: model_vs_human.judges_table(shown, table), file_format, slug=slug)


def _jsonl(examples: list[dict[str, Any]]) -> Iterator[bytes]:
    for example in examples:
        yield orjson.dumps(example) + b"\n"
