"""Exports: who may export a project, the rows each kind yields, and the dataset directory they go to."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.principal import Principal
from app.services.export_labels import Aggregation, dawid_skene_labels
from app.services.projects import cached_options, get_project
from export.aggregate import Abstain, ArbitrationMode, ModelLabel, arbitrated_payloads
from export.card import CARD_NAME, CardStats, write_card
from export.dpo import DpoOptions, build_dpo_rows
from export.formats import RowFormat
from export.kto import KtoOptions, build_kto_rows, seeded_shuffle, shuffle_bucket
from export.manifest import SourceProject, build_manifest, write_manifest
from export.pairs import RankingPairs
from export.reward import RewardOptions, build_reward_rows
from export.rubric import RubricOptions, build_rubric_rows
from export.sft import SftOptions, build_sft_rows
from export.split import SplitSpec, split_of, split_rows
from export.writers import ExportFormat, staged_directory, unsplit, write_splits
from preference_store import users as user_store
from preference_store.base import INTEGER_MAX
from preference_store.judgments import ItemJudgments, JudgmentFilter, iter_judged_items, iter_votes
from preference_store.models import ProjectKind
from preference_store.projects import ProjectRow

EXPORT_KINDS = ("dpo", "reward", "kto", "sft", "rubric")
PROVENANCE_COLUMNS = ("external_id", "source", "annotators", "votes", "agreement")
KTO_SPILL_BUCKETS = 64
"""Spill files of the KTO shuffle: each holds about 1/64 of the rows when it is sorted in memory."""

Row = dict[str, Any]
_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """Everything an export is made with; recorded as plain values in the card and the manifest.

    Args:
        kind: one of `EXPORT_KINDS`.
        fmt: jsonl, parquet or hf (a `datasets` directory).
        gzip: gzip the JSONL files.
        row_format: conversational (default) or standard (plain strings, single-turn items only).
        test_size, validation_size: expected shares of the grouped split; both 0 writes one `train` split.
        seed: the split's (and the KTO shuffle's) seed.
        provenance: keep the provenance columns (external_id, source, annotators, votes, agreement).
        min_judgments, min_agreement, ties, both_bad: the majority rule.
        aggregation: majority, or Dawid-Skene fitted over the export's pairwise votes (then
            `min_agreement` applies to each item's posterior).
        ranking_pairs: pairs a ranked item gives (`all_pairs` or `best_vs_rest`).
        rewrites: pairs (dpo, reward) and conversations (sft) from annotators' rewrites.
        margin: reward rows carry a `margin`.
        kto_desirable_at, kto_undesirable_at: rubric overall score (0..1) thresholds for KTO labels.
        where: item and judgment filters.
        teams: team names whose judgments are kept (resolved to ids; none = every team).
        arbitration: `verdict-first` (a resolved arbitration case's verdict is the item's label)
            or `ignore` (every item aggregated from its judgments).
        include_calibration: keep items used in calibration sessions (left out by default).
        include_gold: keep gold items (left out by default: their labels were set, not judged).
    """

    kind: str = "dpo"
    fmt: ExportFormat = ExportFormat.JSONL
    gzip: bool = False
    row_format: RowFormat = RowFormat.CONVERSATIONAL
    test_size: float = 0.0
    validation_size: float = 0.0
    seed: int = 0
    provenance: bool = False
    min_judgments: int = 1
    min_agreement: float = 0.0
    ties: Abstain = Abstain.KEEP
    both_bad: Abstain = Abstain.KEEP
    aggregation: Aggregation = Aggregation.MAJORITY
    ranking_pairs: RankingPairs = RankingPairs.ALL_PAIRS
    rewrites: bool = True
    margin: bool = True
    kto_desirable_at: float | None = None
    kto_undesirable_at: float | None = None
    where: JudgmentFilter = field(default_factory=JudgmentFilter)
    teams: tuple[str, ...] = ()
    arbitration: ArbitrationMode = ArbitrationMode.VERDICT_FIRST
    include_calibration: bool = False
    include_gold: bool = False

    @property
    def split(self) -> SplitSpec | None:
        """The grouped split, or None for one `train` split."""
        if not self.test_size and not self.validation_size:
            return None
        return SplitSpec(test=self.test_size, validation=self.validation_size, seed=self.seed)

    def check(self) -> None:
        """Raise `InvalidInput` naming the first bad field."""
        if self.kind not in EXPORT_KINDS:
            raise InvalidInput("invalid_export_kind", f"kind must be one of {', '.join(EXPORT_KINDS)}.", field="kind")
        for name in ("test_size", "validation_size"):
            if not 0 <= getattr(self, name) < 1:
                raise InvalidInput("invalid_split", f"{name} must be at least 0 and below 1.", field=name)
        if self.test_size + self.validation_size >= 1:
            raise InvalidInput(
                "invalid_split", "test and validation sizes must leave rows for train.", field="test_size"
            )
        if self.min_judgments < 1:
            raise InvalidInput("invalid_min_judgments", "min_judgments must be at least 1.", field="min_judgments")
        for name in ("min_agreement", "kto_desirable_at", "kto_undesirable_at"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise InvalidInput("invalid_share", f"{name} must be between 0 and 1.", field=name)
        if self.gzip and self.fmt is not ExportFormat.JSONL:
            raise InvalidInput("invalid_gzip", "gzip applies to the jsonl format only.", field="gzip")
        for version in self.where.guidelines_versions:
            if not 1 <= version <= INTEGER_MAX:
                raise InvalidInput(
                    "invalid_guidelines_version",
                    f"{version} is not a guidelines version: versions are numbered from 1.",
                    field="guidelines_version",
                )

    def parameters(self) -> dict[str, Any]:
        """The request as plain JSON values (team ids, not names: the card names no team)."""
        where = self.where
        return {
            "kind": self.kind,
            "format": self.fmt.value,
            "gzip": self.gzip,
            "row_format": self.row_format.value,
            "test_size": self.test_size,
            "validation_size": self.validation_size,
            "seed": self.seed,
            "provenance": self.provenance,
            "min_judgments": self.min_judgments,
            "min_agreement": self.min_agreement,
            "ties": self.ties.value,
            "both_bad": self.both_bad.value,
            "aggregation": self.aggregation.value,
            "ranking_pairs": self.ranking_pairs.value,
            "rewrites": self.rewrites,
            "margin": self.margin,
            "kto_desirable_at": self.kto_desirable_at,
            "kto_undesirable_at": self.kto_undesirable_at,
            "languages": list(where.languages),
            "markets": list(where.markets),
            "categories": list(where.categories),
            "judged_from": where.judged_from.isoformat() if where.judged_from else None,
            "judged_until": where.judged_until.isoformat() if where.judged_until else None,
            "team_ids": sorted(where.team_ids),
            "guidelines_versions": sorted(where.guidelines_versions),
            "arbitration": self.arbitration.value,
            "include_calibration": self.include_calibration,
            "include_gold": self.include_gold,
        }


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What an export wrote."""

    kind: str
    directory: Path
    split_rows: dict[str, int]
    items_read: int
    skips: dict[str, int]
    content_sha256: str

    @property
    def rows(self) -> int:
        return sum(self.split_rows.values())


def authorize_export(session: Session, *, principal: Principal, slug: str) -> ProjectRow:
    """The project to export, if the caller is a lead or admin."""
    principal.require_staff()
    return get_project(session, principal=principal, slug=slug)


def dpo_rows(session: Session, *, project_id: int, options: DpoOptions | None = None) -> Iterator[Row]:
    """Stream the project's DPO rows; the session must stay open while they are read."""
    return build_dpo_rows(iter_judged_items(session, project_id=project_id), options)


def resolve_request(session: Session, *, project: ProjectRow, request: ExportRequest) -> ExportRequest:
    """The request checked against the project, with team names turned into ids in its filter."""
    request.check()
    request = replace(
        request,
        where=replace(
            request.where,
            without_calibration_items=not request.include_calibration,
            without_gold_items=not request.include_gold,
        ),
    )
    if request.kind == "rubric" and project.kind is not ProjectKind.RUBRIC:
        raise InvalidInput("not_a_rubric_project", "Only rubric projects give rubric rows.", field="kind")
    if request.aggregation is Aggregation.DAWID_SKENE and (
        project.kind is not ProjectKind.PAIRWISE or request.kind == "rubric"
    ):
        raise InvalidInput(
            "aggregation_not_applicable",
            "Dawid-Skene aggregates pairwise votes: rankings and rubric scores are aggregated by majority.",
            field="aggregation",
        )
    if not request.teams:
        return request
    found = user_store.team_ids_by_name(session, names=list(request.teams))
    missing = [name for name in request.teams if name not in found]
    if missing:
        raise InvalidInput("team_not_found", f"No team named {', '.join(missing)}.", field="team")
    team_ids = tuple(sorted(set(request.where.team_ids) | set(found.values())))
    return replace(request, where=replace(request.where, team_ids=team_ids), teams=())


class _Tracker:
    """Counts what the card reports while items and rows stream past, holding no rows.

    Builders finish an item's rows before they read the next item, so each row belongs to
    the item read last.
    """

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self.items_read = 0
        self.languages: Counter[str] = Counter()
        self.annotators: set[int] = set()
        self.teams: set[int] = set()
        self.agreements: Counter[float] = Counter()
        self.first_version: int | None = None
        self.last_version: int | None = None
        self.arbitrated = 0
        """Items whose label came from an arbitration verdict."""
        self._progress = progress
        self._current: ItemJudgments | None = None
        self._counted_item: int | None = None

    def items(self, items: Iterable[ItemJudgments]) -> Iterator[ItemJudgments]:
        for item in items:
            self._current = item
            self.items_read += 1
            if self._progress is not None:
                self._progress(self.items_read)
            yield item

    def rows(self, rows: Iterable[Row]) -> Iterator[Row]:
        for row in rows:
            self._count(row)
            yield row

    def _count(self, row: Row) -> None:
        item = self._current
        if item is None:
            return
        self.languages[str(item.metadata.get("language") or "unknown")] += 1
        if row.get("agreement") is not None:
            self.agreements[round(float(row["agreement"]), 4)] += 1
        if self._counted_item == item.item_id:
            return
        self._counted_item = item.item_id
        for vote in item.votes:
            self.annotators.add(vote.annotator_id)
            if vote.team_id is not None:
                self.teams.add(vote.team_id)
            version = vote.guidelines_version
            self.first_version = version if self.first_version is None else min(self.first_version, version)
            self.last_version = version if self.last_version is None else max(self.last_version, version)

    def agreement_stats(self) -> tuple[float | None, float | None]:
        """Mean and median of the exported rows' agreement (None when no row has one)."""
        total = sum(self.agreements.values())
        if not total:
            return None, None
        mean = sum(value * count for value, count in self.agreements.items()) / total
        median = (_nth(self.agreements, (total - 1) // 2) + _nth(self.agreements, total // 2)) / 2
        return round(mean, 4), round(median, 4)


def _nth(counts: Counter[float], index: int) -> float:
    """The value at `index` of the sorted values a counter holds."""
    seen = 0
    for value, count in sorted(counts.items()):
        seen += count
        if index < seen:
            return value
    raise IndexError(index)


def rows_for(
    session: Session, *, project: ProjectRow, request: ExportRequest, skips: Counter[str] | None = None
) -> Iterator[Row]:
    """Stream the export rows of a resolved request (KTO rows come out shuffled by the seed).

    Args:
        session: kept open while the rows are read.
        project: the project (from `authorize_export`).
        request: a request passed through `resolve_request`.
        skips: refused items and rows are counted here by reason.

    Returns:
        An iterator of rows with TRL's columns (and provenance when asked).

    Example:
        >>> next(rows_for(session, project=project, request=ExportRequest(kind="kto")))["label"]
        True
    """
    return _rows(session, project=project, request=request, skips=skips, tracker=_Tracker(None))


def _rows(
    session: Session, *, project: ProjectRow, request: ExportRequest, skips: Counter[str] | None, tracker: _Tracker
) -> Iterator[Row]:
    skips = Counter() if skips is None else skips
    fitted: dict[int, ModelLabel] = {}
    if request.aggregation is Aggregation.DAWID_SKENE:
        votes = iter_votes(session, project_id=project.id, where=request.where)
        fitted = dawid_skene_labels(votes, ties=request.ties, both_bad=request.both_bad)
    items = tracker.items(iter_judged_items(session, project_id=project.id, where=request.where))
    if request.arbitration is ArbitrationMode.VERDICT_FIRST:
        items = _verdict_first(items, fitted, tracker)
    # Provenance is always built: the tracker reads each row's agreement, then it is dropped unless asked for.
    built = tracker.rows(_build(items, project=project, request=request, fitted=fitted, skips=skips))
    if request.kind == "kto":
        built = _spilled_shuffle(built, seed=request.seed)
    if request.provenance:
        return built
    return ({name: value for name, value in row.items() if name not in PROVENANCE_COLUMNS} for row in built)


def _verdict_first(
    items: Iterable[ItemJudgments], fitted: dict[int, ModelLabel], tracker: _Tracker
) -> Iterator[ItemJudgments]:
    """Items with a resolved arbitration verdict carry it as every judgment's decision (and lose any fitted label)."""
    for item in items:
        if item.arbitration is None:
            yield item
            continue
        fitted.pop(item.item_id, None)
        tracker.arbitrated += 1
        yield replace(item, payloads=arbitrated_payloads(item.payloads, item.arbitration))


def _build(
    items: Iterable[ItemJudgments],
    *,
    project: ProjectRow,
    request: ExportRequest,
    fitted: dict[int, ModelLabel],
    skips: Counter[str],
) -> Iterator[Row]:
    options = cached_options(project)
    scales = {
        criterion.name: (criterion.scale.min, criterion.scale.max)
        for criterion in options.rubric
        if criterion.scale.min is not None and criterion.scale.max is not None
    }
    fmt, min_judgments, min_agreement = request.row_format, request.min_judgments, request.min_agreement
    ties, both_bad = request.ties, request.both_bad
    if request.kind in ("dpo", "reward"):
        pair_options = RewardOptions(
            min_judgments=min_judgments,
            min_agreement=min_agreement,
            ties=ties,
            both_bad=both_bad,
            ranking_pairs=request.ranking_pairs,
            from_rewrites=request.rewrites,
            rubric_scales=scales,
            row_format=fmt,
            provenance=True,
            fitted_labels=fitted,
            margin=request.margin,
        )
        if request.kind == "dpo":
            return build_dpo_rows(items, pair_options, skips=skips)
        return build_reward_rows(items, pair_options, skips=skips)
    if request.kind == "kto":
        kto = KtoOptions(
            min_judgments=min_judgments,
            min_agreement=min_agreement,
            ties=ties,
            both_bad=both_bad,
            rubric_scales=scales,
            desirable_at=request.kto_desirable_at,
            undesirable_at=request.kto_undesirable_at,
            violating_labels=frozenset(label.name for label in options.taxonomy if label.violates_policy),
            row_format=fmt,
            provenance=True,
            fitted_labels=fitted,
        )
        return build_kto_rows(items, kto, skips=skips)
    if request.kind == "sft":
        sft = SftOptions(
            min_judgments=min_judgments,
            min_agreement=min_agreement,
            ties=ties,
            both_bad=both_bad,
            from_rewrites=request.rewrites,
            row_format=fmt,
            provenance=True,
            fitted_labels=fitted,
        )
        return build_sft_rows(items, sft, skips=skips)
    rubric = RubricOptions(min_judgments=min_judgments, scales=scales, row_format=fmt, provenance=True)
    return build_rubric_rows(items, rubric, skips=skips)


def _spilled_shuffle(rows: Iterable[Row], *, seed: int) -> Iterator[Row]:
    """The seeded KTO order with flat memory: spill into ordered bucket files, sort each alone."""
    with tempfile.TemporaryDirectory(prefix="prefstack-kto-") as spill:
        paths = [Path(spill) / f"{bucket:03d}.jsonl" for bucket in range(KTO_SPILL_BUCKETS)]
        streams: list[IO[bytes]] = [path.open("wb") for path in paths]
        try:
            for row in rows:
                streams[shuffle_bucket(row, seed, KTO_SPILL_BUCKETS)].write(orjson.dumps(row) + b"\n")
        finally:
            for stream in streams:
                stream.close()
        for path in paths:
            with path.open("rb") as stream:
                bucket = [orjson.loads(line) for line in stream]
            yield from seeded_shuffle(bucket, seed)
            del bucket


def schema_for(project: ProjectRow, request: ExportRequest) -> pa.Schema:
    """The Arrow schema of a request's rows, so Parquet and hf types never depend on the first rows."""
    text: pa.DataType = pa.string() if request.row_format is RowFormat.STANDARD else _MESSAGES
    fields: list[tuple[str, pa.DataType]]
    if request.kind in ("dpo", "reward"):
        fields = [("prompt", text), ("chosen", text), ("rejected", text)]
        if request.kind == "reward" and request.margin:
            fields.append(("margin", pa.float64()))
    elif request.kind == "kto":
        fields = [("prompt", text), ("completion", text), ("label", pa.bool_())]
    elif request.kind == "sft":
        standard = request.row_format is RowFormat.STANDARD
        fields = [("prompt", text), ("completion", text)] if standard else [("messages", _MESSAGES)]
    else:
        criteria = [
            (criterion.name, pa.string() if criterion.scale.labels is not None else pa.float64())
            for criterion in sorted(cached_options(project).rubric, key=lambda criterion: criterion.name)
        ]
        fields = [
            ("prompt", text),
            ("completion", text),
            ("scores", pa.struct(criteria)),
            ("overall", pa.float64()),
            ("n_judgments", pa.int64()),
        ]
    if request.provenance:
        fields += [
            ("external_id", pa.string()),
            ("source", pa.string()),
            ("annotators", pa.int64()),
            ("votes", pa.int64()),
            ("agreement", pa.float64()),
        ]
    return pa.schema(fields)


def export_dataset(
    session: Session,
    *,
    principal: Principal,
    slug: str,
    request: ExportRequest,
    out: Path,
    prefstack_version: str,
    progress: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Write a project's dataset directory: the split files, `README.md` (the card) and `export.json`.

    The directory appears under `out` complete, or not at all; `out` must not exist or be empty.

    Args:
        session: the database session (read only).
        principal: a lead or admin.
        slug: the project.
        request: kind, format, split, aggregation and filters.
        out: the directory to create.
        prefstack_version: recorded in the card and the manifest.
        progress: called with the number of items read so far, after each item.

    Returns:
        Rows per split, items read, skip reasons and the content hash.

    Example:
        >>> export_dataset(session, principal=lead, slug="th-safety", request=ExportRequest(kind="kto"),
        ...                out=Path("exports/kto"), prefstack_version="0.1.0").split_rows
        {'train': 120}
    """
    project = authorize_export(session, principal=principal, slug=slug)
    request = resolve_request(session, project=project, request=request)
    spec = request.split
    skips: Counter[str] = Counter()
    tracker = _Tracker(progress)
    rows = _rows(session, project=project, request=request, skips=skips, tracker=tracker)
    pairs = unsplit(rows) if spec is None else split_rows(rows, spec)
    parameters: dict[str, Any] = {"project": project.slug, **request.parameters()}
    try:
        with staged_directory(out) as stage:
            written = write_splits(
                pairs,
                stage,
                fmt=request.fmt,
                schema=schema_for(project, request),
                compress=request.gzip,
                splits=["train"] if spec is None else spec.names(),
            )
            mean, median = tracker.agreement_stats()
            parameters["arbitrated_labels"] = tracker.arbitrated
            source = SourceProject(project.slug, tracker.first_version, tracker.last_version)
            stats = CardStats(
                kind=request.kind,
                prefstack_version=prefstack_version,
                split_rows=written.rows_per_split(),
                languages=dict(tracker.languages),
                annotators=len(tracker.annotators),
                teams=len(tracker.teams),
                agreement_mean=mean,
                agreement_median=median,
                parameters=parameters,
                sources=[source],
            )
            write_card(stage, stats, written)
            manifest = build_manifest(
                written,
                kind=request.kind,
                parameters=parameters,
                sources=[source],
                prefstack_version=prefstack_version,
                other_files=[CARD_NAME],
                created_at=datetime.now(UTC),
            )
            write_manifest(stage, manifest)
    except FileExistsError as error:
        raise InvalidInput("export_exists", str(error), field="out") from error
    return ExportSummary(
        kind=request.kind,
        directory=out,
        split_rows=written.rows_per_split(),
        items_read=tracker.items_read,
        skips=dict(sorted(skips.items())),
        content_sha256=str(manifest["content_sha256"]),
    )


def split_filter(rows: Iterable[Row], *, request: ExportRequest, split: str | None) -> Iterable[Row]:
    """Only the rows of one split of the request's grouped split (all rows when `split` is None).

    Raises `InvalidInput` at once (not on the first row) for a split the request cannot give.
    """
    spec = request.split
    if split is None:
        return rows
    if spec is None:
        raise InvalidInput("split_without_sizes", "Pick a split only with test_size or validation_size.", field="split")
    if split not in spec.names():
        raise InvalidInput("invalid_split", f"split must be one of {', '.join(spec.names())}.", field="split")
    return (row for row in rows if split_of(row, spec) == split)
