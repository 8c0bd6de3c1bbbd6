"""The model leaderboard: Bradley-Terry ratings of the models behind a project's responses.

Every human judgment (or every verdict of one imported judge) becomes pairwise outcomes
between the models of the item's responses (`Response.model_name`):

- pairwise and rubric projects: `p0`/`p1` is a win for that position; `tie` and `both_bad`
  are ties (as Chatbot Arena counts "both bad");
- ranking projects: every pair of the ranking (tied groups tie; `all_bad:` rankings still
  order the responses; a bare `all_bad` gives nothing);
- external verdicts: `choice` (the chosen response beats every other), `ranking` as above,
  `scores` ranked by each response's overall score (see `overall_score`).

Responses without a model name are skipped (nothing to attribute them to), and so are pairs
of two responses from the same model. Ratings, intervals and the win-rate matrix come from
`app.quality.bradley_terry`; see `docs/leaderboard.md`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.principal import Principal
from app.quality.bradley_terry import FIRST_WINS, SECOND_WINS, TIE, bradley_terry, ranking_pairs, win_rates
from app.services import quality_reports
from app.services.projects import get_project
from app.services.quality_reports import Facets, ReportQuery, Table, judgment_filter
from preference_store import external_verdicts
from preference_store import leaderboard as store
from preference_store.models import ProjectKind
from preference_store.projects import ProjectRow

GROUPINGS = ("language", "market", "category")
OVERALL = "(all)"
NO_GROUP = "(none)"
HUMANS = "humans"

Pair = tuple[int, int, int]
"""(response position a, response position b, outcome: 0 = a wins, 1 = b wins, 2 = tie)."""


@dataclass(frozen=True, slots=True)
class LeaderboardQuery:
    """The report filters plus whose verdicts are rated (humans, or one imported judge)."""

    report: ReportQuery
    source: str = ""
    judge: str = ""
    reference: str = ""

    @property
    def by_humans(self) -> bool:
        return not self.judge


@dataclass(frozen=True, slots=True)
class ModelRating:
    """One model's rating: Elo-like scale with its 95% bootstrap interval, log-scale strength, counts."""

    model: str
    rank: int
    rating: float
    rating_low: float | None
    rating_high: float | None
    strength: float
    comparisons: int
    wins: int
    losses: int
    ties: int
    score: float | None
    """Share of its comparisons won, ties counting half."""


@dataclass(frozen=True, slots=True)
class Board:
    """One leaderboard: all outcomes, or one group's (language, market or category)."""

    group: str
    items: int
    comparisons: int
    tie_parameter: float
    ratings: list[ModelRating]
    win_rate: list[list[float | None]]
    """Row model's score against the column model (models in rating order)."""
    counts: list[list[int]]


@dataclass(frozen=True, slots=True)
class JudgeSource:
    source: str
    judge: str
    verdicts: int


@dataclass(frozen=True, slots=True)
class Leaderboard:
    project_slug: str
    project_name: str
    kind: str
    query: LeaderboardQuery
    boards: list[Board]
    judges: list[JudgeSource]
    facets: Facets


def leaderboard_query(
    *,
    judged_from: str = "",
    judged_until: str = "",
    teams: str = "",
    language: str = "",
    market: str = "",
    category: str = "",
    group_by: str = "",
    resamples: int | None = None,
    source: str = "",
    judge: str = "",
    reference: str = "",
) -> LeaderboardQuery:
    """Check the filters (as the quality reports do) and whose verdicts to rate; `judge` needs its `source`."""
    if group_by and group_by not in GROUPINGS:
        raise InvalidInput("invalid_group_by", f"group_by is one of {', '.join(GROUPINGS)}.", field="group_by")
    if bool(source.strip()) != bool(judge.strip()):
        raise InvalidInput("invalid_judge", "source and judge go together (both empty for humans).", field="judge")
    report = quality_reports.report_query(
        judged_from=judged_from,
        judged_until=judged_until,
        teams=teams,
        language=language,
        market=market,
        category=category,
        group_by=group_by,
        resamples=resamples,
    )
    return LeaderboardQuery(report, source.strip(), judge.strip(), reference.strip())


def staff_project(session: Session, *, principal: Principal, slug: str) -> ProjectRow:
    principal.require_staff()
    return get_project(session, principal=principal, slug=slug)


# --- verdicts as pairwise outcomes -----------------------------------------------------------


def human_pairs(verdict: str, kind: ProjectKind) -> list[Pair]:
    """Pairwise outcomes of a human verdict key (see the module docstring)."""
    if kind is ProjectKind.RANKING:
        ranking = verdict.split(":", 1)[1] if verdict.startswith("all_bad:") else verdict
        if not ranking or ranking == "all_bad":
            return []
        groups = [[int(position) for position in group.split("=")] for group in ranking.split(">")]
        return ranking_pairs(groups)
    head = verdict.split("|", 1)[0]
    if head in ("tie", "both_bad"):
        return [(0, 1, TIE)]
    if head == "p0":
        return [(0, 1, FIRST_WINS)]
    if head == "p1":
        return [(0, 1, SECOND_WINS)]
    return []


def overall_score(aspects: Any) -> float | None:
    """A response's overall score from an imported `scores` entry: its `overall` or `overall_score` aspect when
    present, else the mean of the rated aspects (None when nothing is rated)."""
    if isinstance(aspects, int | float) and not isinstance(aspects, bool):
        return float(aspects)
    if not isinstance(aspects, dict):
        return None
    for key in ("overall", "overall_score"):
        value = aspects.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    rated = [float(v) for v in aspects.values() if isinstance(v, int | float) and not isinstance(v, bool)]
    return sum(rated) / len(rated) if rated else None


def external_pairs(kind: str, payload: dict[str, Any], positions: Iterable[int]) -> list[Pair]:
    """Pairwise outcomes of an imported verdict over the item's response `positions`."""
    if kind == "choice":
        choice = payload.get("choice")
        others = sorted(positions)
        if choice == "tie":
            return [(a, b, TIE) for index, a in enumerate(others) for b in others[index + 1 :]]
        if not isinstance(choice, int) or choice not in others:
            return []
        return [(choice, other, FIRST_WINS) for other in others if other != choice]
    if kind == "ranking":
        ranking = payload.get("ranking") or []
        return ranking_pairs([[int(p) for p in group] for group in ranking])
    if kind == "scores":
        scores = {
            int(position): score
            for position, aspects in (payload.get("scores") or {}).items()
            if (score := overall_score(aspects)) is not None
        }
        groups = [
            [position for position, value in scores.items() if value == level]
            for level in sorted(set(scores.values()), reverse=True)
        ]
        return ranking_pairs(groups)
    return []


# --- the leaderboard ------------------------------------------------------------------------


@dataclass
class _Outcomes:
    """Pairwise outcomes between model codes, with the item each came from and its group."""

    models: list[str]
    first: list[int]
    second: list[int]
    outcome: list[int]
    item: list[int]
    group: list[str]


def _collect(pairs_by_item: Iterable[tuple[int, str, list[Pair]]], models_of: dict[int, dict[int, str]]) -> _Outcomes:
    codes: dict[str, int] = {}
    found = _Outcomes([], [], [], [], [], [])
    for item_id, group, pairs in pairs_by_item:
        names = models_of.get(item_id, {})
        for a, b, outcome in pairs:
            model_a, model_b = names.get(a, ""), names.get(b, "")
            if not model_a or not model_b or model_a == model_b:
                continue
            for name in (model_a, model_b):
                if name not in codes:
                    codes[name] = len(codes)
                    found.models.append(name)
            found.first.append(codes[model_a])
            found.second.append(codes[model_b])
            found.outcome.append(outcome)
            found.item.append(item_id)
            found.group.append(group)
    return found


def _group_of(group_by: str | None, language: str | None, market: str | None, category: str | None) -> str:
    value = {"language": language, "market": market, "category": category}.get(group_by or "")
    return (value or NO_GROUP) if group_by else OVERALL


def _human_outcomes(session: Session, project: ProjectRow, query: LeaderboardQuery) -> _Outcomes:
    where = judgment_filter(session, query.report)
    group_by = query.report.group_by

    def pairs() -> Iterator[tuple[int, str, list[Pair]]]:
        for batch in store.iter_votes(session, project_id=project.id, where=where):
            for vote in batch:
                group = _group_of(group_by, vote.language, vote.market, vote.category)
                yield vote.item_id, group, human_pairs(vote.verdict, project.kind)

    votes = list(pairs())
    return _collect(votes, store.response_models(session, project_id=project.id))


def _judge_outcomes(session: Session, project: ProjectRow, query: LeaderboardQuery) -> _Outcomes:
    where = judgment_filter(session, query.report)
    groups = store.item_groups(session, project_id=project.id, where=where)
    models_of = store.response_models(session, project_id=project.id)
    group_by = query.report.group_by

    def pairs() -> Iterator[tuple[int, str, list[Pair]]]:
        for verdict in external_verdicts.verdicts_of_project(
            session, project_id=project.id, source=query.source, judge=query.judge
        ):
            where_item = groups.get(verdict.item_id)
            if where_item is None:
                continue
            group = _group_of(group_by, where_item.language, where_item.market, where_item.category)
            positions = models_of.get(verdict.item_id, {}).keys()
            yield verdict.item_id, group, external_pairs(verdict.kind, verdict.payload, positions)

    verdicts = list(pairs())
    return _collect(verdicts, models_of)


def _none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _board(group: str, outcomes: _Outcomes, rows: np.ndarray, query: LeaderboardQuery) -> Board:
    first = np.asarray(outcomes.first, dtype=np.intp)[rows]
    second = np.asarray(outcomes.second, dtype=np.intp)[rows]
    used = np.unique(np.concatenate([first, second]))
    local = {int(code): index for index, code in enumerate(used)}
    names = [outcomes.models[int(code)] for code in used]
    reference = names.index(query.reference) if query.reference in names else None
    ratings = bradley_terry(
        np.fromiter((local[int(code)] for code in first), np.intp, first.size),
        np.fromiter((local[int(code)] for code in second), np.intp, second.size),
        np.asarray(outcomes.outcome, dtype=np.intp)[rows],
        n_models=len(names),
        items=np.asarray(outcomes.item)[rows],
        resamples=query.report.resamples,
        reference=reference,
    )
    shares, counts = win_rates(ratings.wins, ratings.ties)
    order = sorted(range(len(names)), key=lambda index: (-ratings.strength[index], names[index]))
    comparisons = ratings.comparisons
    wins = ratings.wins.sum(axis=1)
    losses = ratings.wins.sum(axis=0)
    ties = ratings.ties.sum(axis=1)
    elo, low, high = ratings.elo, ratings.elo_low, ratings.elo_high
    board_ratings = [
        ModelRating(
            model=names[index],
            rank=rank,
            rating=float(elo[index]),
            rating_low=_none(low[index]),
            rating_high=_none(high[index]),
            strength=float(ratings.strength[index]),
            comparisons=int(comparisons[index]),
            wins=int(wins[index]),
            losses=int(losses[index]),
            ties=int(ties[index]),
            score=(float(wins[index] + ties[index] / 2) / comparisons[index]) if comparisons[index] else None,
        )
        for rank, index in enumerate(order, start=1)
    ]
    return Board(
        group=group,
        items=ratings.items,
        comparisons=int(rows.size),
        tie_parameter=ratings.tie_parameter,
        ratings=board_ratings,
        win_rate=[[_none(shares[i, j]) for j in order] for i in order],
        counts=[[int(counts[i, j]) for j in order] for i in order],
    )


def leaderboard(session: Session, *, principal: Principal, slug: str, query: LeaderboardQuery) -> Leaderboard:
    """Ratings of the project's models from human judgments or one judge's verdicts, overall or per group (leads)."""
    project = staff_project(session, principal=principal, slug=slug)
    judges = [
        JudgeSource(found.source, found.judge, found.verdicts)
        for found in external_verdicts.judges_of_project(session, project_id=project.id)
    ]
    if not query.by_humans and not any(j.source == query.source and j.judge == query.judge for j in judges):
        raise NotFound(
            "judge_not_found", f"No verdicts of {query.source}/{query.judge} in this project.", field="judge"
        )
    outcomes = _human_outcomes(session, project, query) if query.by_humans else _judge_outcomes(session, project, query)
    boards: list[Board] = []
    if outcomes.outcome:
        groups = np.asarray(outcomes.group)
        for group in sorted(set(outcomes.group), key=lambda name: (name == NO_GROUP, name)):
            boards.append(_board(group, outcomes, np.flatnonzero(groups == group), query))
    facets = quality_reports.report_facets(session, principal=principal, slug=slug)
    return Leaderboard(project.slug, project.name, project.kind.value, query, boards, judges, facets)


RATING_COLUMNS = [
    "group",
    "rank",
    "model",
    "rating",
    "rating_low",
    "rating_high",
    "strength",
    "comparisons",
    "wins",
    "losses",
    "ties",
    "score",
]
LEADERBOARD_TABLES = ("ratings", "win_rate")


def leaderboard_table(view: Leaderboard, name: str = "ratings") -> Table:
    """The ratings (one row per group and model) or the win-rate matrix in long form (one row per ordered pair)."""
    if name == "win_rate":
        rows: list[list[Any]] = []
        for board in view.boards:
            models = [rating.model for rating in board.ratings]
            for i, model in enumerate(models):
                rows.extend(
                    [board.group, model, other, board.win_rate[i][j], board.counts[i][j]]
                    for j, other in enumerate(models)
                    if i != j and board.counts[i][j]
                )
        return Table("win_rate", ["group", "model", "opponent", "score", "comparisons"], rows)
    if name != "ratings":
        raise InvalidInput("invalid_table", f"table is one of {', '.join(LEADERBOARD_TABLES)}.", field="table")
    rows = [
        [board.group, *(getattr(rating, column) for column in RATING_COLUMNS[1:])]
        for board in view.boards
        for rating in board.ratings
    ]
    return Table("ratings", RATING_COLUMNS, rows)
