"""Pages for leads: the model leaderboard and the model-vs-human (judges) report."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from annotation_ui.rendering import render
from app.deps import CurrentPrincipal, DbSession
from app.services import leaderboard as leaderboard_service
from app.services import model_vs_human
from app.services.leaderboard import Leaderboard

router = APIRouter(include_in_schema=False)

FILTER_NAMES = ("judged_from", "judged_until", "teams", "language", "market", "category")
DOWNLOAD_FORMATS = ("csv", "parquet", "xlsx")


def _kept(request: Request, *names: str) -> dict[str, str]:
    return {name: value for name in names if (value := request.query_params.get(name, ""))}


def _links(base: str, kept: dict[str, str], formats: tuple[str, ...] = DOWNLOAD_FORMATS) -> dict[str, str]:
    return {fmt: f"{base}?{urlencode({**kept, 'format': fmt})}" for fmt in formats}


def _judge_params(kept: dict[str, str]) -> dict[str, str]:
    """The page's `judge` select holds `source/judge`; the API takes them apart."""
    params = {name: value for name, value in kept.items() if name != "judge"}
    source, _, judge = kept.get("judge", "").partition("/")
    if source and judge:
        params.update(source=source, judge=judge)
    return params


def _chart_data(view: Leaderboard) -> dict[str, Any]:
    """Per board: models in rating order with their rating and interval (null where unknown)."""
    return {
        "boards": [
            {
                "group": board.group,
                "models": [rating.model for rating in board.ratings],
                "rating": [rating.rating for rating in board.ratings],
                "low": [rating.rating_low for rating in board.ratings],
                "high": [rating.rating_high for rating in board.ratings],
            }
            for board in view.boards
        ]
    }


@router.get("/projects/{slug}/leaderboard", response_class=HTMLResponse)
def leaderboard_page(request: Request, slug: str, session: DbSession, principal: CurrentPrincipal) -> Response:
    kept = _kept(request, *FILTER_NAMES, "group_by", "judge", "reference")
    params = _judge_params(kept)
    query = leaderboard_service.leaderboard_query(
        judged_from=params.get("judged_from", ""),
        judged_until=params.get("judged_until", ""),
        teams=params.get("teams", ""),
        language=params.get("language", ""),
        market=params.get("market", ""),
        category=params.get("category", ""),
        group_by=params.get("group_by", ""),
        source=params.get("source", ""),
        judge=params.get("judge", ""),
        reference=params.get("reference", ""),
    )
    view = leaderboard_service.leaderboard(session, principal=principal, slug=slug, query=query)
    base = f"/api/v1/projects/{quote(slug)}/leaderboard"
    context = {
        "view": view,
        "values": kept,
        "facets": view.facets,
        "groupings": leaderboard_service.GROUPINGS,
        "download_links": {table: _links(base, {**params, "table": table}) for table in ("ratings", "win_rate")},
        "chart": _chart_data(view),
        "action": f"/projects/{slug}/leaderboard",
    }
    return render(request, "leaderboard.html", context, block="report")


@router.get("/projects/{slug}/quality/judges", response_class=HTMLResponse)
def judges_page(request: Request, slug: str, session: DbSession, principal: CurrentPrincipal) -> Response:
    kept = _kept(request, *FILTER_NAMES, "min_judgments")
    minimum = kept.get("min_judgments", "")
    query = model_vs_human.judges_query(
        judged_from=kept.get("judged_from", ""),
        judged_until=kept.get("judged_until", ""),
        teams=kept.get("teams", ""),
        language=kept.get("language", ""),
        market=kept.get("market", ""),
        category=kept.get("category", ""),
        min_judgments=int(minimum) if minimum.isdigit() else None,
    )
    view = model_vs_human.judges_report(session, principal=principal, slug=slug, query=query)
    base = f"/api/v1/projects/{quote(slug)}/quality/judges"
    context = {
        "view": view,
        "values": kept,
        "facets": view.facets,
        "download_links": {table: _links(base, {**kept, "table": table}) for table in model_vs_human.JUDGES_TABLES},
        "examples_link": f"{base}?{urlencode({**kept, 'format': 'jsonl'})}",
        "shown": model_vs_human.DISAGREEMENTS_SHOWN,
        "action": f"/projects/{slug}/quality/judges",
    }
    return render(request, "quality_judges.html", context, block="report")
