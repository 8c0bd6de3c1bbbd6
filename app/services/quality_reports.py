"""Quality reports for leads: the project dashboard, annotator and team scorecards, team benchmarks.

Judgments are read once as facts (`preference_store.quality`) and turned into *units*: one
rated thing per row with a category code. Pairwise outcomes are one unit per item (nominal);
rubric scores one unit per (item, response) and criterion (ordinal); rankings one unit per
(item, response pair) holding the pair's order (nominal). The measures of `app.quality` then
run on those units. See `docs/quality-reports.md` for every figure and flag.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from itertools import combinations
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.principal import Principal
from app.quality.additive import counts_to_ratings, rating_patterns
from app.quality.agreement import percent_agreement_terms
from app.quality.bootstrap import bootstrap_ci_weighted
from app.quality.dawid_skene import DawidSkeneResult, dawid_skene
from app.quality.kinds import PAIRWISE_LABELS, PairwiseOutcome
from app.quality.krippendorff import alpha_terms
from app.quality.majority import majority_vote
from app.quality.ratings import Level
from app.quality.signals import (
    ShownChoice,
    agreement_with_aggregate,
    choice_rate,
    gold_accuracy,
    holm_adjusted,
    position_bias,
    seconds_per_thousand_characters,
    straight_lining,
    too_fast_share,
    wilson_interval,
)
from app.services import repeat_consistency
from app.services.project_options import scale_key
from app.services.projects import cached_options, get_project
from preference_store import browse
from preference_store import gold as gold_store
from preference_store import quality as quality_store
from preference_store.judgments import JudgmentFilter
from preference_store.models import ProjectKind
from preference_store.projects import ProjectRow

DEFAULT_RESAMPLES = 1000
MAX_RESAMPLES = 5000
GROUPINGS = ("team", "language", "market", "category")
AGGREGATES = ("majority", "dawid_skene")
FLAG_ITEMS_SHOWN = 20
NO_GROUP = "(none)"
DAWID_SKENE_TOLERANCE = 1e-6
DAWID_SKENE_MAX_ITERATIONS = 50
"""Looser than the measure's defaults: reports need labels and competences, not the fixed point
(`app.quality.dawid_skene`: 1e-6 stops within 0.03 of it), and each EM step costs a pass over
every rating. Reports fit with SQUAREM acceleration (`accelerate=True`): on the benchmark's
million judgments it stops after 12 steps, nearer the fixed point than 50 plain EM steps."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a scorecard flags an annotator (or team); shares are 0..1."""

    low_agreement: float = 0.5
    """Flag when agreement with the aggregate is below this."""
    position_bias_p: float = 0.01
    """Flag when the Holm-adjusted binomial p-value of the left-side share is below this."""
    too_fast_seconds: float = 3.0
    """A judgment made in less active time than this is too fast."""
    too_fast_share: float = 0.25
    """Flag when more than this share of judgments is too fast."""
    straight_lining_share: float = 0.5
    """Flag when more than this share of rubric score sets gives every criterion one score."""
    min_judgments: int = 10
    """Agreement, speed and straight-lining flags need at least this many counted judgments."""
    low_gold_accuracy: float = 0.7
    """Flag when accuracy on gold items is below this."""
    min_gold_judgments: int = 5
    """The gold accuracy flag needs at least this many judged gold items."""
    low_self_consistency: float = 0.7
    """Flag when self-consistency on repeated items is below this."""
    min_repeats: int = 5
    """The self-consistency flag needs at least this many answered repeats."""


DEFAULT_THRESHOLDS = Thresholds()


def project_thresholds(project: ProjectRow) -> Thresholds:
    """The flag thresholds of a project's `quality` options (the defaults where unset)."""
    options = cached_options(project).quality
    return Thresholds(
        low_agreement=options.low_agreement,
        position_bias_p=options.position_bias_p,
        too_fast_seconds=options.too_fast_seconds,
        too_fast_share=options.too_fast_share,
        straight_lining_share=options.straight_lining_share,
        min_judgments=options.min_judgments,
        low_gold_accuracy=options.low_gold_accuracy,
        min_gold_judgments=options.min_gold_judgments,
        low_self_consistency=options.low_self_consistency,
        min_repeats=options.min_repeats,
    )


@dataclass(frozen=True, slots=True)
class ReportQuery:
    """Which judgments a report reads and how it presents them."""

    judged_from: date | None = None
    judged_until: date | None = None
    """Inclusive (UTC days)."""
    teams: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    markets: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    group_by: str | None = None
    aggregate: str = "majority"
    resamples: int = DEFAULT_RESAMPLES


@dataclass(frozen=True, slots=True)
class Agreement:
    """Agreement on one measure: Krippendorff's alpha with its bootstrap 95% CI, and percent agreement."""

    measure: str
    level: str
    alpha: float | None
    alpha_low: float | None
    alpha_high: float | None
    percent: float | None
    units: int
    """Units (items, or item parts) with at least two ratings."""


@dataclass(frozen=True, slots=True)
class DayVolume:
    day: date
    judgments: int


@dataclass(frozen=True, slots=True)
class WeekAgreement:
    week_start: date
    judgments: int
    agreement: list[Agreement]


@dataclass(frozen=True, slots=True)
class LabelCount:
    measure: str
    label: str
    count: int
    share: float


@dataclass(frozen=True, slots=True)
class GroupAgreement:
    group: str
    judgments: int
    annotators: int
    agreement: list[Agreement]


@dataclass(frozen=True, slots=True)
class Facets:
    """Values the filter form offers."""

    teams: list[str]
    languages: list[str]
    markets: list[str]
    categories: list[str]


@dataclass(frozen=True, slots=True)
class Dashboard:
    project_slug: str
    project_name: str
    kind: str
    query: ReportQuery
    judgments: int
    items: int
    annotators: int
    volume: list[DayVolume]
    agreement: list[Agreement]
    weekly: list[WeekAgreement]
    labels: list[LabelCount]
    groups: list[GroupAgreement]
    facets: Facets


@dataclass(frozen=True, slots=True)
class Flag:
    """An outlier signal and the items behind it (external ids, at most `FLAG_ITEMS_SHOWN`)."""

    code: str
    items: list[str]
    count: int


@dataclass(frozen=True, slots=True)
class Score:
    """The per-annotator (or per-team) signals; None where nothing was counted."""

    judgments: int
    agreement_with_aggregate: float | None
    agreement_units: int
    competence: float | None
    left_share: float | None
    decided: int
    position_bias_p: float | None
    position_bias_p_adjusted: float | None
    tie_rate: float | None
    both_bad_rate: float | None
    seconds_per_1k_chars: float | None
    too_fast_share: float | None
    straight_lining_share: float | None
    gold_judgments: int = 0
    """Judgments of gold items; accuracy counts the gold verdict or an accepted alternative as correct."""
    gold_accuracy: float | None = None
    gold_accuracy_low: float | None = None
    gold_accuracy_high: float | None = None
    """Wilson 95% interval of the gold accuracy."""
    repeats: int = 0
    """Answered repeats (items served again, sides swapped) whose first judgment is in the report."""
    self_consistency: float | None = None
    """Share of repeats answered as the first time."""
    self_consistency_low: float | None = None
    self_consistency_high: float | None = None
    """Wilson 95% interval of the self-consistency."""


@dataclass(frozen=True, slots=True)
class AnnotatorScorecard:
    annotator_id: int
    name: str
    team: str | None
    score: Score
    flags: list[Flag]


@dataclass(frozen=True, slots=True)
class TeamScorecard:
    team: str
    is_vendor: bool
    annotators: int
    score: Score
    within_team: list[Agreement]
    flags: list[Flag]


@dataclass(frozen=True, slots=True)
class Scorecards:
    project_slug: str
    project_name: str
    kind: str
    query: ReportQuery
    thresholds: Thresholds
    annotators: list[AnnotatorScorecard]


@dataclass(frozen=True, slots=True)
class TeamScorecards:
    project_slug: str
    project_name: str
    kind: str
    query: ReportQuery
    thresholds: Thresholds
    teams: list[TeamScorecard]


@dataclass(frozen=True, slots=True)
class BenchmarkTeam:
    """One team on the shared items: its own agreement and its agreement with the overall aggregate."""

    team: str
    judgments: int
    within_team: list[Agreement]
    vs_aggregate: float | None
    vs_aggregate_low: float | None
    vs_aggregate_high: float | None
    vs_aggregate_units: int


@dataclass(frozen=True, slots=True)
class Benchmark:
    """Teams compared on the items every one of them judged."""

    project_slug: str
    project_name: str
    kind: str
    query: ReportQuery
    shared_items: int
    between_teams: list[Agreement]
    """Alpha over the teams' majority labels (each team one rater)."""
    teams: list[BenchmarkTeam]


@dataclass(frozen=True, slots=True)
class Table:
    """A report as one flat table, for CSV, Parquet and XLSX downloads."""

    name: str
    columns: list[str]
    rows: list[list[Any]]


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _day(value: str, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"invalid_{name}", f"{name} is a date, YYYY-MM-DD.", field=name) from None


def report_query(
    *,
    judged_from: str = "",
    judged_until: str = "",
    teams: str = "",
    language: str = "",
    market: str = "",
    category: str = "",
    group_by: str = "",
    aggregate: str = "",
    resamples: int | None = None,
) -> ReportQuery:
    """Check filter values (comma-separated lists; empty means no filter) and build the query."""
    start, end = _day(judged_from, "judged_from"), _day(judged_until, "judged_until")
    if start and end and end < start:
        raise InvalidInput("invalid_judged_until", "judged_until is before judged_from.", field="judged_until")
    if group_by and group_by not in GROUPINGS:
        raise InvalidInput("invalid_group_by", f"group_by is one of {', '.join(GROUPINGS)}.", field="group_by")
    if aggregate and aggregate not in AGGREGATES:
        raise InvalidInput("invalid_aggregate", f"aggregate is one of {', '.join(AGGREGATES)}.", field="aggregate")
    count = DEFAULT_RESAMPLES if resamples is None else resamples
    if not 100 <= count <= MAX_RESAMPLES:
        raise InvalidInput(
            "invalid_resamples", f"resamples must be between 100 and {MAX_RESAMPLES}.", field="resamples"
        )
    return ReportQuery(
        judged_from=start,
        judged_until=end,
        teams=_split(teams),
        languages=_split(language),
        markets=_split(market),
        categories=_split(category),
        group_by=group_by or None,
        aggregate=aggregate or "majority",
        resamples=count,
    )


# --- loading -----------------------------------------------------------------------------


@dataclass
class _Facts:
    """The judgments of a report as parallel columns (index = judgment row).

    Item-level values (external id, language, market, category) are kept once per item code;
    `verdict_code` indexes `verdicts`, the distinct verdict keys. `day` counts UTC days since
    1970-01-01. Derived arrays (measures, Dawid-Skene fits) are cached in `cache` for every
    report computed from the same facts.
    """

    project: ProjectRow
    item: npt.NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, np.intp))
    item_ids: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    """Stored item id by item code; external ids and grouping metadata are read when a report needs them."""
    annotator: npt.NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, np.intp))
    annotator_ids: list[int] = field(default_factory=list)
    annotator_names: list[str] = field(default_factory=list)
    annotator_team: list[int] = field(default_factory=list)
    team: npt.NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, np.intp))
    team_names: list[str] = field(default_factory=list)
    team_is_vendor: list[bool] = field(default_factory=list)
    verdict_code: npt.NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, np.intp))
    verdicts: list[str] = field(default_factory=list)
    left_position: npt.NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, np.intp))
    seconds: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    text_chars: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    day: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    payload: list[dict[str, Any] | None] = field(default_factory=list)
    gold: npt.NDArray[np.int8] = field(default_factory=lambda: np.zeros(0, np.int8))
    """Per judgment row: 1 right on a gold item, 0 wrong, -1 not a gold item."""
    repeats: repeat_consistency.RepeatPairs = field(default_factory=repeat_consistency.RepeatPairs.empty)
    """Answered repeats, each pointing at the judgment row it repeats."""
    cache: dict[Any, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.verdict_code)

    @property
    def n_items(self) -> int:
        return int(self.item_ids.size)

    def verdict_keys(self) -> list[str]:
        """Each judgment row's verdict key."""
        return [self.verdicts[code] for code in self.verdict_code.tolist()]


@dataclass(frozen=True)
class ReportFacts:
    """The judgments one set of filters selects, read once and shared by every report of a request.

    Pass it as `facts=` to `dashboard`, `annotator_scorecards`, `team_scorecards` and
    `team_benchmark` with the same slug and filters; `load_report_facts` builds it.
    """

    slug: str
    query: ReportQuery
    facts: _Facts


def _staff_project(session: Session, *, principal: Principal, slug: str) -> ProjectRow:
    principal.require_staff()
    return get_project(session, principal=principal, slug=slug)


def judgment_filter(session: Session, query: ReportQuery) -> JudgmentFilter:
    """The store filter of a report query (team names resolved; unknown ones refused)."""
    team_ids: tuple[int, ...] = ()
    if query.teams:
        found = quality_store.teams_by_name(session, names=list(query.teams))
        unknown = [name for name in query.teams if name not in found]
        if unknown:
            raise InvalidInput("unknown_team", f"No team named {', '.join(unknown)}.", field="teams")
        team_ids = tuple(found[name].id for name in query.teams)
    return JudgmentFilter(
        languages=query.languages,
        markets=query.markets,
        categories=query.categories,
        judged_from=datetime.combine(query.judged_from, time(), UTC) if query.judged_from else None,
        judged_until=(
            datetime.combine(query.judged_until + timedelta(days=1), time(), UTC) if query.judged_until else None
        ),
        team_ids=team_ids,
    )


def _filters(query: ReportQuery) -> tuple[Any, ...]:
    return (query.judged_from, query.judged_until, query.teams, query.languages, query.markets, query.categories)


def load_report_facts(session: Session, *, principal: Principal, slug: str, query: ReportQuery) -> ReportFacts:
    """Read the judgments a report's filters select, once, for several reports of one request (leads)."""
    project = _staff_project(session, principal=principal, slug=slug)
    return ReportFacts(project.slug, query, _load(session, project, query))


def _facts_for(session: Session, project: ProjectRow, query: ReportQuery, shared: ReportFacts | None) -> _Facts:
    if shared is None:
        return _load(session, project, query)
    if shared.slug != project.slug or _filters(shared.query) != _filters(query):
        raise ValueError("shared report facts were loaded for another project or other filters")
    return shared.facts


def _codes(values: Sequence[Any]) -> tuple[npt.NDArray[np.intp], list[Any]]:
    """Each value's index into the distinct values (in first-seen order), and those values."""
    distinct = list(dict.fromkeys(values))
    code_of = {value: code for code, value in enumerate(distinct)}
    # map() over a C method: no Python frame per value (a million verdicts).
    codes = np.fromiter(map(code_of.__getitem__, values), dtype=np.intp, count=len(values))
    return codes, distinct


def _distinct_ids(
    ids: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64], npt.NDArray[np.intp]]:
    """Each id's index into the distinct ids, the distinct ids (ascending) and the row where each first occurs.

    What `np.unique(ids, return_index=True, return_inverse=True)` returns, by a lookup table over
    the id range when it is not much wider than the ids (one pass instead of a sort).
    """
    low = int(ids.min())
    span = int(ids.max()) - low + 1
    if span > 4 * ids.size + 1024:
        distinct, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        return inverse.reshape(-1).astype(np.intp), distinct, first.astype(np.intp)
    offset = ids - low
    first_row = np.full(span, ids.size, dtype=np.intp)
    np.minimum.at(first_row, offset, np.arange(ids.size, dtype=np.intp))
    present = first_row < ids.size
    code_of = np.cumsum(present, dtype=np.intp) - 1
    return code_of[offset], np.flatnonzero(present).astype(np.int64) + low, first_row[present]


def _load(session: Session, project: ProjectRow, query: ReportQuery) -> _Facts:
    facts = _Facts(project=project)
    where = judgment_filter(session, query)
    rubric = project.kind is ProjectKind.RUBRIC
    read = quality_store.judgment_arrays(session, project_id=project.id, where=where, with_payload=rubric)
    if not len(read):
        return facts
    # Item codes in first-judged order, so flags list items as they were judged.
    inverse, used, first_row = _distinct_ids(read.item_id)
    order = np.argsort(first_row, kind="stable")
    rank = np.empty(order.size, dtype=np.intp)
    rank[order] = np.arange(order.size)
    facts.item = rank[inverse]
    facts.item_ids = used[order]
    stored_ids, stored_chars = quality_store.response_chars(
        session, project_id=project.id, first_id=int(used[0]), last_id=int(used[-1])
    )
    item_chars = stored_chars[np.searchsorted(stored_ids, facts.item_ids)].astype(np.float64)
    facts.text_chars = item_chars[facts.item]

    facts.annotator, annotator_ids, _ = _distinct_ids(read.annotator_id)
    facts.annotator_ids = annotator_ids.tolist()
    found = {row.id: row for row in quality_store.raters(session, annotator_ids=facts.annotator_ids)}
    team_codes: dict[int | None, int] = {}
    for annotator_id in facts.annotator_ids:
        rater = found.get(annotator_id)
        team_id = rater.team_id if rater else None
        if team_id not in team_codes:
            team_codes[team_id] = len(team_codes)
            facts.team_names.append((rater.team_name if rater else None) or NO_GROUP)
            facts.team_is_vendor.append(bool(rater.is_vendor) if rater else False)
        facts.annotator_names.append(rater.name if rater else str(annotator_id))
        facts.annotator_team.append(team_codes[team_id])
    facts.team = np.asarray(facts.annotator_team, dtype=np.intp)[facts.annotator]

    facts.verdict_code, facts.verdicts = read.verdict_code, read.verdicts
    facts.left_position = read.left_position.astype(np.intp)
    facts.seconds = read.time_spent_ms / 1000.0
    facts.day = read.day
    facts.payload = read.payload if read.payload is not None else [None] * len(read)
    facts.gold = _gold_results(session, project, facts, used[order])
    facts.repeats = repeat_consistency.load_repeat_pairs(
        session,
        project_id=project.id,
        item_ids=facts.item_ids,
        item=facts.item,
        annotator_ids=facts.annotator_ids,
        annotator=facts.annotator,
    )
    return facts


def _gold_results(
    session: Session, project: ProjectRow, facts: _Facts, item_ids: npt.NDArray[np.int64]
) -> npt.NDArray[np.int8]:
    """Per judgment row whether it matches its item's gold answer (1), does not (0), or has none (-1)."""
    results = np.full(facts.size, -1, dtype=np.int8)
    answers = gold_store.gold_answers_of_project(session, project_id=project.id)
    if not answers:
        return results
    position = {int(item_id): code for code, item_id in enumerate(item_ids.tolist())}
    gold_codes = {position[item_id]: answer for item_id, answer in answers.items() if item_id in position}
    if not gold_codes:
        return results
    on_gold = np.flatnonzero(np.isin(facts.item, np.fromiter(gold_codes, np.intp, len(gold_codes))))
    for row in on_gold.tolist():
        verdict, accepted = gold_codes[int(facts.item[row])]
        given = facts.verdicts[facts.verdict_code[row]]
        results[row] = 1 if given == verdict or given in accepted else 0
    return results


# --- units ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Measure:
    """One measure's units: a row per rating, pointing at its judgment row."""

    name: str
    level: Level
    labels: list[str]
    """Category names by code."""
    unit: npt.NDArray[np.intp]
    judgment: npt.NDArray[np.intp]
    value: npt.NDArray[np.intp]
    n_units: int

    def subset(self, keep: npt.NDArray[np.bool_]) -> _Measure:
        """The ratings whose judgment rows are kept (`keep` is per judgment row)."""
        rows = keep[self.judgment]
        return _Measure(
            self.name, self.level, self.labels, self.unit[rows], self.judgment[rows], self.value[rows], self.n_units
        )


def _pairwise_outcomes(facts: _Facts) -> npt.NDArray[np.intp]:
    """Per judgment row: `PairwiseOutcome` code, or -1 (no pairwise decision in the verdict)."""
    cached = facts.cache.get("outcomes")
    if cached is None:
        codes = {"p0": PairwiseOutcome.FIRST, "p1": PairwiseOutcome.SECOND, "tie": PairwiseOutcome.TIE}
        codes["both_bad"] = PairwiseOutcome.BOTH_BAD
        table = np.asarray([codes.get(verdict.split("|", 1)[0], -1) for verdict in facts.verdicts], dtype=np.intp)
        cached = facts.cache["outcomes"] = table[facts.verdict_code] if facts.size else np.zeros(0, np.intp)
    outcomes: npt.NDArray[np.intp] = cached
    return outcomes


def _shown_choices(facts: _Facts, outcomes: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """Per judgment row: `ShownChoice` (left/right by the side the preferred response was shown on), or -1."""
    cached: npt.NDArray[np.intp] | None = facts.cache.get("choices")
    if cached is not None:
        return cached
    choices = np.full(outcomes.shape, -1, dtype=np.intp)
    preferred = np.isin(outcomes, (PairwiseOutcome.FIRST, PairwiseOutcome.SECOND))
    known = preferred & (facts.left_position >= 0)
    choices[known] = np.where(outcomes[known] == facts.left_position[known], ShownChoice.LEFT, ShownChoice.RIGHT)
    choices[outcomes == PairwiseOutcome.TIE] = ShownChoice.TIE
    choices[outcomes == PairwiseOutcome.BOTH_BAD] = ShownChoice.BOTH_BAD
    facts.cache["choices"] = choices
    return choices


def _from_triples(name: str, level: Level, labels: list[str], triples: list[tuple[Any, int, int]]) -> _Measure | None:
    """A measure from (unit key, judgment row, value code) triples; None without any."""
    if not triples:
        return None
    unit_codes: dict[Any, int] = {}
    units = np.fromiter((unit_codes.setdefault(key, len(unit_codes)) for key, _, _ in triples), np.intp, len(triples))
    rows = np.fromiter((row for _, row, _ in triples), np.intp, len(triples))
    values = np.fromiter((value for _, _, value in triples), np.intp, len(triples))
    return _Measure(name, level, labels, units, rows, values, len(unit_codes))


def _measures(facts: _Facts) -> list[_Measure]:
    """The measures a project's kind is judged on (see the module docstring); computed once per facts."""
    cached = facts.cache.get("measures")
    if cached is None:
        cached = facts.cache["measures"] = _build_measures(facts)
    measures: list[_Measure] = cached
    return list(measures)


def _build_measures(facts: _Facts) -> list[_Measure]:
    kind = facts.project.kind
    measures: list[_Measure] = []
    if kind is ProjectKind.PAIRWISE or kind is ProjectKind.RUBRIC:
        outcomes = _pairwise_outcomes(facts)
        rows = np.flatnonzero(outcomes >= 0)
        if rows.size:
            measures.append(
                _Measure(
                    "outcome",
                    Level.NOMINAL,
                    list(PAIRWISE_LABELS),
                    facts.item[rows],
                    rows,
                    outcomes[rows],
                    facts.n_items,
                )
            )
    if kind is ProjectKind.RUBRIC:
        for criterion in cached_options(facts.project).rubric:
            scale = [scale_key(value) for value in criterion.scale.values()]
            code_of = {value: code for code, value in enumerate(scale)}
            triples: list[tuple[Any, int, int]] = []
            for row, payload in enumerate(facts.payload):
                for position, scores in ((payload or {}).get("scores") or {}).items():
                    if criterion.name in scores:
                        code = code_of.get(scale_key(scores[criterion.name]))
                        if code is not None:
                            triples.append(((int(facts.item[row]), position), row, code))
            measure = _from_triples(criterion.name, Level.ORDINAL, scale, triples)
            if measure is not None:
                measures.append(measure)
    if kind is ProjectKind.RANKING:
        triples = []
        for row, verdict in enumerate(facts.verdict_keys()):
            rank = _ranks(verdict)
            for first, second in combinations(sorted(rank), 2):
                order = 0 if rank[first] < rank[second] else 1 if rank[first] > rank[second] else 2
                triples.append(((int(facts.item[row]), first, second), row, order))
        measure = _from_triples("pair order", Level.NOMINAL, ["above", "below", "tied"], triples)
        if measure is not None:
            measures.append(measure)
    return measures


def _ranks(verdict: str) -> dict[int, int]:
    """Response position -> rank (0 = best) from a ranking verdict key such as `1>0=2` or `all_bad:0>1`."""
    ranking = verdict.split(":", 1)[1] if verdict.startswith("all_bad:") else verdict
    if not ranking or ranking == "all_bad":
        return {}
    return {int(position): rank for rank, group in enumerate(ranking.split(">")) for position in group.split("=")}


# --- agreement -----------------------------------------------------------------------------


def _none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _agreement(measure: _Measure, resamples: int) -> Agreement:
    """Alpha (with bootstrap CI over units) and percent agreement on a measure's units.

    Both depend on a unit only through its count of ratings per category, so they are computed
    on the distinct count rows, each weighted by how many units share it; the bootstrap draws
    units from those groups (`bootstrap_ci_weighted`).
    """
    if not measure.unit.size:
        return Agreement(measure.name, measure.level.value, None, None, None, None, 0)
    patterns, multiplicity = rating_patterns(
        measure.unit, measure.value, n_units=measure.n_units, n_categories=len(measure.labels)
    )
    pairable = int(multiplicity.sum())
    if pairable == 0:
        return Agreement(measure.name, measure.level.value, None, None, None, None, 0)
    matrix = counts_to_ratings(patterns)
    alpha = bootstrap_ci_weighted(alpha_terms(matrix, measure.level), multiplicity, n_resamples=resamples, seed=0)
    agreement_terms = percent_agreement_terms(matrix)
    percent = float(
        agreement_terms.combine(agreement_terms.weighted_totals(multiplicity[None, :].astype(np.float64)))[0]
    )
    return Agreement(
        measure.name,
        measure.level.value,
        _none(alpha.estimate),
        _none(alpha.low),
        _none(alpha.high),
        _none(percent),
        pairable,
    )


def _agreements(measures: Sequence[_Measure], keep: npt.NDArray[np.bool_] | None, resamples: int) -> list[Agreement]:
    return [_agreement(measure if keep is None else measure.subset(keep), resamples) for measure in measures]


def _group_codes(session: Session, facts: _Facts, group_by: str) -> tuple[npt.NDArray[np.intp], list[str]]:
    """Per judgment row its group's code, and the group names by code."""
    if group_by == "team":
        return facts.team, facts.team_names
    if not facts.size:
        return np.zeros(0, np.intp), []
    items = facts.cache.get("items")
    if items is None:
        items = facts.cache["items"] = quality_store.item_columns(
            session,
            project_id=facts.project.id,
            first_id=int(facts.item_ids.min()),
            last_id=int(facts.item_ids.max()),
        )
    stored: quality_store.ItemColumns = items
    at = np.searchsorted(np.asarray(stored.item_id, dtype=np.int64), facts.item_ids).tolist()
    values = {"language": stored.language, "market": stored.market, "category": stored.category}[group_by]
    codes, names = _codes([values[i] or NO_GROUP for i in at])
    return codes[facts.item], names


def _epoch_day(day: int) -> date:
    return _EPOCH + timedelta(days=day)


_EPOCH = date(1970, 1, 1)


# --- dashboard -----------------------------------------------------------------------------


def dashboard(
    session: Session, *, principal: Principal, slug: str, query: ReportQuery, shared: ReportFacts | None = None
) -> Dashboard:
    """Volume per day, agreement overall and per week with CIs, label distribution, optional groups (leads).

    `shared`: facts already loaded for the same slug and filters (`load_report_facts`).
    """
    project = _staff_project(session, principal=principal, slug=slug)
    facts = _facts_for(session, project, query, shared)
    measures = _measures(facts)
    days, per_day = np.unique(facts.day, return_counts=True)
    # 1970-01-01 was a Thursday: (day + 3) % 7 is the weekday, Monday = 0.
    weeks = facts.day - (facts.day + 3) % 7
    weekly = [
        WeekAgreement(
            _epoch_day(int(week)),
            int((weeks == week).sum()),
            _agreements(measures, weeks == week, query.resamples),
        )
        for week in np.unique(weeks)
    ]
    groups: list[GroupAgreement] = []
    if query.group_by:
        codes, names = _group_codes(session, facts, query.group_by)
        for code, group in sorted(enumerate(names), key=lambda entry: entry[1]):
            keep = codes == code
            if not keep.any():
                continue
            groups.append(
                GroupAgreement(
                    group,
                    int(keep.sum()),
                    int(np.unique(facts.annotator[keep]).size),
                    _agreements(measures, keep, query.resamples),
                )
            )
    return Dashboard(
        project_slug=project.slug,
        project_name=project.name,
        kind=project.kind.value,
        query=query,
        judgments=facts.size,
        items=facts.n_items,
        annotators=len(facts.annotator_ids),
        volume=[DayVolume(_epoch_day(int(day)), int(count)) for day, count in zip(days, per_day, strict=True)],
        agreement=_agreements(measures, None, query.resamples),
        weekly=weekly,
        labels=_label_counts(measures),
        groups=groups,
        facets=_facets(session, project),
    )


def _facets(session: Session, project: ProjectRow) -> Facets:
    found = quality_store.item_facets(session, project_id=project.id, keys=browse.FACETS)
    return Facets(
        teams=quality_store.judging_teams(session, project_id=project.id),
        languages=found["language"],
        markets=found["market"],
        categories=found["category"],
    )


def report_facets(session: Session, *, principal: Principal, slug: str) -> Facets:
    """The values a report's filter form offers: teams that judged, item languages, markets, categories (leads)."""
    return _facets(session, _staff_project(session, principal=principal, slug=slug))


def _label_counts(measures: Iterable[_Measure]) -> list[LabelCount]:
    counts: list[LabelCount] = []
    for measure in measures:
        tally = np.bincount(measure.value, minlength=len(measure.labels))
        total = int(tally.sum())
        counts.extend(
            LabelCount(measure.name, label, int(count), int(count) / total if total else 0.0)
            for label, count in zip(measure.labels, tally, strict=True)
        )
    return counts


# --- scorecards ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Signals:
    """Every signal per rater code (annotator or team), and per judgment row what each flag points at."""

    score: list[Score]
    disagrees: npt.NDArray[np.bool_]
    chose_left: npt.NDArray[np.bool_]
    too_fast: npt.NDArray[np.bool_]
    straight: npt.NDArray[np.bool_]
    gold_wrong: npt.NDArray[np.bool_]
    inconsistent: npt.NDArray[np.bool_]


def _dawid_skene(measure: _Measure, facts: _Facts, cache_key: Any) -> DawidSkeneResult:
    """Dawid-Skene fitted on a measure's ratings, once per facts for a given `cache_key` (None: not cached)."""
    fitted: DawidSkeneResult | None = facts.cache.get(("dawid_skene", cache_key)) if cache_key is not None else None
    if fitted is None:
        fitted = dawid_skene(
            measure.unit,
            facts.annotator[measure.judgment],
            measure.value,
            n_items=measure.n_units,
            n_annotators=len(facts.annotator_ids),
            n_classes=len(measure.labels),
            tolerance=DAWID_SKENE_TOLERANCE,
            max_iterations=DAWID_SKENE_MAX_ITERATIONS,
            accelerate=True,
        )
        if cache_key is not None:
            facts.cache[("dawid_skene", cache_key)] = fitted
    return fitted


def _aggregate_labels(
    measure: _Measure, facts: _Facts, aggregate: str, *, cache_key: Any = None, competence: bool = True
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """Per rating: its unit's aggregate label (-1 when none: a majority tie); and each annotator's DS competence.

    Without `competence` a majority aggregate skips the Dawid-Skene fit (competence is then empty).
    """
    n_classes = len(measure.labels)
    fitted = _dawid_skene(measure, facts, cache_key) if competence or aggregate == "dawid_skene" else None
    skills = fitted.competence if fitted is not None else np.zeros(0)
    if aggregate == "dawid_skene" and fitted is not None:
        return fitted.labels[measure.unit], skills
    cached: npt.NDArray[np.intp] | None = facts.cache.get(("majority", cache_key)) if cache_key is not None else None
    if cached is None:
        vote = majority_vote(measure.unit, measure.value, n_items=measure.n_units, n_classes=n_classes)
        cached = np.where(vote.is_tie, -1, vote.labels)[measure.unit]
        if cache_key is not None:
            facts.cache[("majority", cache_key)] = cached
    return cached, skills


def _signals(
    facts: _Facts,
    measures: list[_Measure],
    codes: npt.NDArray[np.intp],
    n: int,
    *,
    aggregate: str,
    thresholds: Thresholds,
) -> _Signals:
    """Signals per rater code; `codes` maps each judgment row to its rater (an annotator or a team)."""
    disagrees = np.zeros(facts.size, dtype=bool)
    hits = np.zeros(n)
    totals = np.zeros(n)
    competence_sum = np.zeros(n)
    competence_weight = np.zeros(n)
    rater_of_annotator = np.zeros(len(facts.annotator_ids), dtype=np.intp)
    rater_of_annotator[facts.annotator] = codes
    for measure in measures:
        labels, competence = _aggregate_labels(measure, facts, aggregate, cache_key=measure.name)
        shares = agreement_with_aggregate(codes[measure.judgment], measure.value, labels, n_annotators=n)
        hits += shares.hits
        totals += shares.total
        disagrees[measure.judgment[(labels >= 0) & (labels != measure.value)]] = True
        # A team's competence is its members' competences weighted by their ratings.
        ratings = np.bincount(facts.annotator[measure.judgment], minlength=len(facts.annotator_ids))
        np.add.at(competence_sum, rater_of_annotator, competence * ratings)
        np.add.at(competence_weight, rater_of_annotator, ratings)
    outcomes = _pairwise_outcomes(facts)
    pairwise = outcomes >= 0
    choices = _shown_choices(facts, outcomes)
    shown = choices >= 0
    bias = position_bias(codes[shown], choices[shown], n_annotators=n)
    adjusted = holm_adjusted(bias.p_value)
    ties = choice_rate(codes[pairwise], outcomes[pairwise], PairwiseOutcome.TIE, n_annotators=n)
    both_bad = choice_rate(codes[pairwise], outcomes[pairwise], PairwiseOutcome.BOTH_BAD, n_annotators=n)
    timed = ~np.isnan(facts.seconds) & (facts.text_chars > 0)
    speed = seconds_per_thousand_characters(codes[timed], facts.seconds[timed], facts.text_chars[timed], n_annotators=n)
    fast = too_fast_share(
        codes[timed], facts.seconds[timed], threshold_seconds=thresholds.too_fast_seconds, n_annotators=n
    )
    straight_share, straight_rows = _straight_lining(facts, codes, n)
    on_gold = facts.gold >= 0
    gold = gold_accuracy(codes[on_gold], facts.gold[on_gold] == 1, n_annotators=n)
    gold_low, gold_high = wilson_interval(gold.hits, gold.total)
    repeats = repeat_consistency.consistency(
        facts.repeats, first_choices=choices, first_left_position=facts.left_position, codes=codes, n=n
    )
    judgments = np.bincount(codes, minlength=n)
    scores = [
        Score(
            judgments=int(judgments[k]),
            agreement_with_aggregate=float(hits[k] / totals[k]) if totals[k] else None,
            agreement_units=int(totals[k]),
            competence=float(competence_sum[k] / competence_weight[k]) if competence_weight[k] else None,
            left_share=_none(bias.left_share[k]),
            decided=int(bias.decided[k]),
            position_bias_p=_none(bias.p_value[k]),
            position_bias_p_adjusted=_none(adjusted[k]),
            tie_rate=_none(ties.share[k]),
            both_bad_rate=_none(both_bad.share[k]),
            seconds_per_1k_chars=_none(speed[k]),
            too_fast_share=_none(fast.share[k]),
            straight_lining_share=straight_share[k],
            gold_judgments=int(gold.total[k]),
            gold_accuracy=_none(gold.share[k]),
            gold_accuracy_low=_none(gold_low[k]),
            gold_accuracy_high=_none(gold_high[k]),
            repeats=int(repeats.shares.total[k]),
            self_consistency=_none(repeats.shares.share[k]),
            self_consistency_low=_none(repeats.low[k]),
            self_consistency_high=_none(repeats.high[k]),
        )
        for k in range(n)
    ]
    return _Signals(
        scores,
        disagrees,
        choices == ShownChoice.LEFT,
        timed & (facts.seconds < thresholds.too_fast_seconds),
        straight_rows,
        facts.gold == 0,
        repeats.inconsistent_rows,
    )


def _straight_lining(
    facts: _Facts, codes: npt.NDArray[np.intp], n: int
) -> tuple[list[float | None], npt.NDArray[np.bool_]]:
    """Per rater: share of rubric score sets (one judgment, one response) giving every criterion one score.

    Scores are compared as steps on each criterion's scale (the same step = the same score).
    Also returns, per judgment row, whether any of its score sets was flat.
    """
    flat_rows = np.zeros(facts.size, dtype=bool)
    criteria = cached_options(facts.project).rubric if facts.project.kind is ProjectKind.RUBRIC else []
    if len(criteria) < 2:
        return [None] * n, flat_rows
    steps = [{scale_key(value): step for step, value in enumerate(c.scale.values())} for c in criteria]
    set_rows: list[int] = []
    set_scores: list[list[float]] = []
    for row, payload in enumerate(facts.payload):
        for scores in ((payload or {}).get("scores") or {}).values():
            values = [
                float(steps[column].get(scale_key(scores[c.name]), math.nan)) if c.name in scores else math.nan
                for column, c in enumerate(criteria)
            ]
            set_rows.append(row)
            set_scores.append(values)
    if not set_rows:
        return [None] * n, flat_rows
    rows = np.asarray(set_rows, dtype=np.intp)
    matrix = np.asarray(set_scores, dtype=np.float64)
    result = straight_lining(codes[rows], matrix, n_annotators=n)
    scored = (~np.isnan(matrix)).sum(axis=1) >= 2
    filled_low = np.where(np.isnan(matrix), np.inf, matrix).min(axis=1)
    filled_high = np.where(np.isnan(matrix), -np.inf, matrix).max(axis=1)
    flat_rows[rows[scored & (filled_low == filled_high)]] = True
    return [_none(value) for value in result.share], flat_rows


def _flags(
    score: Score, signals: _Signals, facts: _Facts, rows: npt.NDArray[np.bool_], thresholds: Thresholds
) -> list[_Raised]:
    """The outlier flags of one rater (its judgment rows are `rows`), each with the items behind it."""
    raised: list[tuple[str, npt.NDArray[np.bool_]]] = []
    enough = score.agreement_units >= thresholds.min_judgments
    if (
        enough
        and score.agreement_with_aggregate is not None
        and score.agreement_with_aggregate < thresholds.low_agreement
    ):
        raised.append(("low_agreement", signals.disagrees))
    if score.position_bias_p_adjusted is not None and score.position_bias_p_adjusted < thresholds.position_bias_p:
        raised.append(("position_bias", signals.chose_left))
    if (
        score.judgments >= thresholds.min_judgments
        and score.too_fast_share is not None
        and score.too_fast_share > thresholds.too_fast_share
    ):
        raised.append(("too_fast", signals.too_fast))
    if (
        score.judgments >= thresholds.min_judgments
        and score.straight_lining_share is not None
        and score.straight_lining_share > thresholds.straight_lining_share
    ):
        raised.append(("straight_lining", signals.straight))
    if (
        score.gold_judgments >= thresholds.min_gold_judgments
        and score.gold_accuracy_high is not None
        # Confidently below: the whole 95% interval, so five gold items answered 3/5 by a good rater is no flag.
        and score.gold_accuracy_high < thresholds.low_gold_accuracy
    ):
        raised.append(("low_gold_accuracy", signals.gold_wrong))
    if (
        score.repeats >= thresholds.min_repeats
        and score.self_consistency_high is not None
        and score.self_consistency_high < thresholds.low_self_consistency
    ):
        raised.append(("inconsistent", signals.inconsistent))
    flags = []
    for code, behind in raised:
        items = facts.item[rows & behind]
        _, first = np.unique(items, return_index=True)
        shown = facts.item_ids[items[np.sort(first)[:FLAG_ITEMS_SHOWN]]]
        flags.append(_Raised(code, shown.tolist(), int(first.size)))
    return flags


@dataclass(frozen=True, slots=True)
class _Raised:
    code: str
    item_ids: list[int]
    """The first items behind the flag (stored ids, in judged order)."""
    items: int


def _named_flags(session: Session, raised: list[list[_Raised]]) -> list[list[Flag]]:
    """Each rater's raised flags with their items' external ids (one query for all raters)."""
    wanted = sorted({item_id for flags in raised for flag in flags for item_id in flag.item_ids})
    names = quality_store.external_ids(session, item_ids=wanted)
    return [[Flag(flag.code, [names[i] for i in flag.item_ids], flag.items) for flag in flags] for flags in raised]


def annotator_scorecards(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    query: ReportQuery,
    thresholds: Thresholds | None = None,
    shared: ReportFacts | None = None,
) -> Scorecards:
    """Per annotator: every signal, and flags for outliers with the items behind each (leads).

    `thresholds` default to the project's `quality` options; `shared` as in `dashboard`.
    """
    project = _staff_project(session, principal=principal, slug=slug)
    thresholds = thresholds or project_thresholds(project)
    facts = _facts_for(session, project, query, shared)
    n = len(facts.annotator_ids)
    signals = _signals(facts, _measures(facts), facts.annotator, n, aggregate=query.aggregate, thresholds=thresholds)
    flags = _named_flags(
        session, [_flags(signals.score[k], signals, facts, facts.annotator == k, thresholds) for k in range(n)]
    )
    cards = [
        AnnotatorScorecard(
            annotator_id=facts.annotator_ids[k],
            name=facts.annotator_names[k],
            team=None
            if facts.team_names[facts.annotator_team[k]] == NO_GROUP
            else facts.team_names[facts.annotator_team[k]],
            score=signals.score[k],
            flags=flags[k],
        )
        for k in range(n)
    ]
    cards.sort(key=lambda card: (-len(card.flags), card.name))
    return Scorecards(project.slug, project.name, project.kind.value, query, thresholds, cards)


def team_scorecards(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    query: ReportQuery,
    thresholds: Thresholds | None = None,
    shared: ReportFacts | None = None,
) -> TeamScorecards:
    """Per team (vendor): the annotator signals pooled over its members, and agreement within it (leads).

    `thresholds` default to the project's `quality` options; `shared` as in `dashboard`.
    """
    project = _staff_project(session, principal=principal, slug=slug)
    thresholds = thresholds or project_thresholds(project)
    facts = _facts_for(session, project, query, shared)
    n = len(facts.team_names)
    measures = _measures(facts)
    signals = _signals(facts, measures, facts.team, n, aggregate=query.aggregate, thresholds=thresholds)
    flags = _named_flags(
        session, [_flags(signals.score[k], signals, facts, facts.team == k, thresholds) for k in range(n)]
    )
    cards = [
        TeamScorecard(
            team=facts.team_names[k],
            is_vendor=facts.team_is_vendor[k],
            annotators=int(np.unique(facts.annotator[facts.team == k]).size),
            score=signals.score[k],
            within_team=_agreements(measures, facts.team == k, query.resamples),
            flags=flags[k],
        )
        for k in range(n)
    ]
    cards.sort(key=lambda card: card.team)
    return TeamScorecards(project.slug, project.name, project.kind.value, query, thresholds, cards)


def team_benchmark(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    query: ReportQuery,
    teams: Sequence[str],
    shared: ReportFacts | None = None,
) -> Benchmark:
    """Two or more teams on the items each of them judged: within, between and against the aggregate (leads).

    `shared` as in `dashboard`.
    """
    project = _staff_project(session, principal=principal, slug=slug)
    names = list(dict.fromkeys(name.strip() for name in teams if name.strip()))
    if len(names) < 2:
        raise InvalidInput("invalid_teams", "Name at least two teams to compare.", field="teams")
    known = quality_store.teams_by_name(session, names=names)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InvalidInput("unknown_team", f"No team named {', '.join(unknown)}.", field="teams")
    facts = _facts_for(session, project, query, shared)
    team_code = {name: code for code, name in enumerate(facts.team_names)}
    judged_by = np.zeros((len(names), facts.n_items), dtype=bool)
    for position, name in enumerate(names):
        if name in team_code:
            judged_by[position, facts.item[facts.team == team_code[name]]] = True
    shared_items = np.asarray(judged_by.all(axis=0), dtype=bool)
    on_shared = shared_items[facts.item]
    measures = [measure.subset(on_shared) for measure in _measures(facts)]
    between = []
    benchmark_teams = []
    # The overall aggregate of each unit, from every team's judgments on the shared items.
    aggregates = [
        _aggregate_labels(measure, facts, query.aggregate, competence=False)[0] if measure.unit.size else measure.value
        for measure in measures
    ]
    for name in names:
        keep = on_shared & (facts.team == team_code.get(name, -1))
        vs_hits = vs_total = 0
        for measure, labels in zip(measures, aggregates, strict=True):
            mine = keep[measure.judgment] & (labels >= 0)
            vs_hits += int((measure.value[mine] == labels[mine]).sum())
            vs_total += int(mine.sum())
        low, high = wilson_interval(np.asarray([vs_hits]), np.asarray([vs_total]))
        benchmark_teams.append(
            BenchmarkTeam(
                team=name,
                judgments=int(keep.sum()),
                within_team=_agreements(measures, keep, query.resamples),
                vs_aggregate=vs_hits / vs_total if vs_total else None,
                vs_aggregate_low=_none(low[0]),
                vs_aggregate_high=_none(high[0]),
                vs_aggregate_units=vs_total,
            )
        )
    for measure in measures:
        between.append(
            _agreement(_team_majorities(measure, facts, [team_code.get(name, -1) for name in names]), query.resamples)
        )
    return Benchmark(
        project_slug=project.slug,
        project_name=project.name,
        kind=project.kind.value,
        query=query,
        shared_items=int(shared_items.sum()),
        between_teams=between,
        teams=benchmark_teams,
    )


@dataclass(frozen=True, slots=True)
class FullReport:
    """Every quality report of a project with one set of filters, computed on one read of the facts."""

    dashboard: Dashboard
    annotators: Scorecards
    teams: TeamScorecards
    benchmark: Benchmark | None
    """All judging teams compared (None with fewer than two teams)."""


def full_report(
    session: Session, *, principal: Principal, slug: str, query: ReportQuery | None = None, resamples: int | None = None
) -> FullReport:
    """The dashboard, annotator and team scorecards and the benchmark of every judging team (leads).

    What `prefstack quality report` computes; `bench/quality.py` times it.
    """
    query = query or ReportQuery()
    if resamples is not None:
        query = replace(query, resamples=resamples)
    shared = load_report_facts(session, principal=principal, slug=slug, query=query)
    view = dashboard(session, principal=principal, slug=slug, query=query, shared=shared)
    annotators = annotator_scorecards(session, principal=principal, slug=slug, query=query, shared=shared)
    teams = team_scorecards(session, principal=principal, slug=slug, query=query, shared=shared)
    names = [card.team for card in teams.teams if card.team != NO_GROUP]
    benchmark = (
        team_benchmark(session, principal=principal, slug=slug, query=query, teams=names, shared=shared)
        if len(names) >= 2
        else None
    )
    return FullReport(view, annotators, teams, benchmark)


def _team_majorities(measure: _Measure, facts: _Facts, team_codes: list[int]) -> _Measure:
    """One rating per (unit, team): the team's majority label (units where a team is tied get none from it)."""
    units: list[npt.NDArray[np.intp]] = []
    values: list[npt.NDArray[np.intp]] = []
    rows: list[npt.NDArray[np.intp]] = []
    rating_team = facts.team[measure.judgment]
    for team in team_codes:
        mine = rating_team == team
        if not mine.any():
            continue
        vote = majority_vote(
            measure.unit[mine], measure.value[mine], n_items=measure.n_units, n_classes=len(measure.labels)
        )
        decided = np.flatnonzero((vote.labels >= 0) & ~vote.is_tie)
        units.append(decided)
        values.append(vote.labels[decided])
        rows.append(np.zeros(decided.size, dtype=np.intp))
    if not units:
        empty = np.zeros(0, dtype=np.intp)
        return _Measure(measure.name, measure.level, measure.labels, empty, empty, empty, measure.n_units)
    return _Measure(
        measure.name,
        measure.level,
        measure.labels,
        np.concatenate(units),
        np.concatenate(rows),
        np.concatenate(values),
        measure.n_units,
    )


# --- tables --------------------------------------------------------------------------------

_AGREEMENT_COLUMNS = ["measure", "level", "alpha", "alpha_low", "alpha_high", "percent_agreement", "units"]
_SCORE_COLUMNS = [
    "judgments",
    "agreement_with_aggregate",
    "agreement_units",
    "competence",
    "left_share",
    "decided",
    "position_bias_p",
    "position_bias_p_adjusted",
    "tie_rate",
    "both_bad_rate",
    "seconds_per_1k_chars",
    "too_fast_share",
    "straight_lining_share",
    "gold_judgments",
    "gold_accuracy",
    "gold_accuracy_low",
    "gold_accuracy_high",
    "repeats",
    "self_consistency",
    "self_consistency_low",
    "self_consistency_high",
]
DASHBOARD_TABLES = ("agreement", "volume", "labels")


def _agreement_cells(agreement: Agreement) -> list[Any]:
    return [
        agreement.measure,
        agreement.level,
        agreement.alpha,
        agreement.alpha_low,
        agreement.alpha_high,
        agreement.percent,
        agreement.units,
    ]


def _score_cells(score: Score) -> list[Any]:
    return [getattr(score, name) for name in _SCORE_COLUMNS]


def dashboard_table(view: Dashboard, name: str) -> Table:
    """One of the dashboard's tables (`agreement`, `volume` or `labels`) as rows."""
    if name == "volume":
        return Table(
            "volume", ["day", "judgments"], [[entry.day.isoformat(), entry.judgments] for entry in view.volume]
        )
    if name == "labels":
        return Table(
            "labels",
            ["measure", "label", "count", "share"],
            [[entry.measure, entry.label, entry.count, entry.share] for entry in view.labels],
        )
    if name != "agreement":
        raise InvalidInput("invalid_table", f"table is one of {', '.join(DASHBOARD_TABLES)}.", field="table")
    rows = [["overall", "", *_agreement_cells(agreement)] for agreement in view.agreement]
    for week in view.weekly:
        rows.extend(["week", week.week_start.isoformat(), *_agreement_cells(a)] for a in week.agreement)
    for group in view.groups:
        rows.extend([view.query.group_by or "", group.group, *_agreement_cells(a)] for a in group.agreement)
    return Table("agreement", ["scope", "group", *_AGREEMENT_COLUMNS], rows)


def annotators_table(view: Scorecards) -> Table:
    """The annotator scorecards as rows (flags as a `;`-separated list of codes)."""
    rows = [
        [card.annotator_id, card.name, card.team, *_score_cells(card.score), ";".join(f.code for f in card.flags)]
        for card in view.annotators
    ]
    return Table("annotators", ["annotator_id", "annotator", "team", *_SCORE_COLUMNS, "flags"], rows)


def teams_table(view: TeamScorecards) -> Table:
    """The team scorecards as rows, with the first measure's within-team alpha."""
    rows = []
    for card in view.teams:
        within = card.within_team[0] if card.within_team else None
        rows.append(
            [
                card.team,
                card.is_vendor,
                card.annotators,
                *_score_cells(card.score),
                within.alpha if within else None,
                within.alpha_low if within else None,
                within.alpha_high if within else None,
                ";".join(f.code for f in card.flags),
            ]
        )
    columns = ["team", "is_vendor", "annotators", *_SCORE_COLUMNS, "within_alpha", "within_alpha_low"]
    return Table("teams", [*columns, "within_alpha_high", "flags"], rows)


def benchmark_table(view: Benchmark) -> Table:
    """The benchmark as rows: each team's within-team agreement, then the between-teams agreement."""
    rows: list[list[Any]] = []
    for team in view.teams:
        for agreement in team.within_team:
            rows.append(
                [
                    team.team,
                    *_agreement_cells(agreement),
                    team.vs_aggregate,
                    team.vs_aggregate_low,
                    team.vs_aggregate_high,
                    view.shared_items,
                ]
            )
    rows.extend(
        ["between teams", *_agreement_cells(a), None, None, None, view.shared_items] for a in view.between_teams
    )
    columns = ["team", *_AGREEMENT_COLUMNS, "vs_aggregate", "vs_aggregate_low", "vs_aggregate_high", "shared_items"]
    return Table("benchmark", columns, rows)


def table_rows(table: Table) -> Iterable[list[Any]]:
    """The rows with NaN written as empty (None)."""
    for row in table.rows:
        yield [None if isinstance(cell, float) and math.isnan(cell) else cell for cell in row]
