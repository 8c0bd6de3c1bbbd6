"""KTO rows (TRL's unpaired preference format) and their seeded, memory-bounded shuffle.

TRL reads KTO rows in file order, so a file must not hold an item's True row right beside its
False one. The order is a sort by a seeded hash of each row's TRL columns: it depends on the
seed and the rows only (not on the input order, nor on provenance columns). A writer that must
keep memory flat spills rows into `shuffle_bucket` files (the bucket is the hash's leading
bits, so the buckets in order are ranges of the sort key), then sorts each bucket alone with
`shuffle_key` and concatenates them: the same order as `seeded_shuffle` on the whole export.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from export.aggregate import (
    BOTH_BAD,
    Abstain,
    MajorityRule,
    ModelLabel,
    flagged_positions,
    pairwise_decision,
    rubric_scores,
)
from export.formats import RowFormat, item_kind, provenance, response_text, unpaired_row
from preference_store.judgments import ItemJudgments

TRL_KTO_COLUMNS = ("prompt", "completion", "label")


@dataclass(frozen=True, slots=True)
class KtoOptions:
    """Where labels come from.

    Args:
        min_judgments, min_agreement, ties, both_bad: the majority rule (see `MajorityRule`).
        from_pairwise: pairwise (and rubric overall-choice) winners True, losers False.
        both_bad_negatives: an item decided both-bad gives each response as False.
        rubric_scales: `(min, max)` per Likert criterion, for the rubric overall score.
        desirable_at: rubric overall score (0..1) at or above which a response is True.
        undesirable_at: rubric overall score at or below which a response is False.
        violating_labels: policy label names (or `name:severity` values) that violate policy.
        policy_min_share: a response is flagged when more than this share of judgments flag it.
        row_format: conversational (default) or standard.
        provenance: add external_id, source, annotators, votes, agreement columns.
        fitted_labels: item id -> outcome fitted over the whole export (Dawid-Skene); replaces the majority.
    """

    min_judgments: int = 1
    min_agreement: float = 0.0
    ties: Abstain = Abstain.KEEP
    both_bad: Abstain = Abstain.KEEP
    from_pairwise: bool = True
    both_bad_negatives: bool = True
    rubric_scales: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    desirable_at: float | None = None
    undesirable_at: float | None = None
    violating_labels: Collection[str] = frozenset()
    policy_min_share: float = 0.5
    row_format: RowFormat = RowFormat.CONVERSATIONAL
    provenance: bool = False
    fitted_labels: Mapping[int, ModelLabel] = field(default_factory=dict)

    @property
    def rule(self) -> MajorityRule:
        return MajorityRule(self.min_judgments, self.min_agreement, self.ties, self.both_bad)


def response_labels(
    item: ItemJudgments, options: KtoOptions, skips: Counter[str]
) -> dict[int, tuple[bool, str, float | None]]:
    """Each labelled response position: (label, source, agreement).

    A policy flag (False) overrides any other source: a response flagged as violating is
    never a positive example, even when it won its pair.

    Args:
        item: a judged item.
        options: label sources.
        skips: item-level reasons are counted here.

    Returns:
        Labels by response position.

    Example:
        >>> response_labels(item, KtoOptions(), Counter())
        {1: (True, 'pairwise', 1.0), 0: (False, 'pairwise', 1.0)}
    """
    kind = item_kind(item)
    labels: dict[int, tuple[bool, str, float | None]] = {}
    choice_payloads = [p for p in item.payloads if kind == "pairwise" or (kind == "rubric" and "choice" in p)]
    if options.from_pairwise and choice_payloads:
        decision = pairwise_decision(choice_payloads, options.rule, options.fitted_labels.get(item.item_id))
        positions = [response.position for response in item.responses]
        if decision.winner is not None and len(positions) == 2:
            labels[decision.winner] = (True, kind or "pairwise", decision.agreement)
            for position in positions:
                if position != decision.winner:
                    labels[position] = (False, kind or "pairwise", decision.agreement)
        elif decision.outcome == BOTH_BAD and options.both_bad_negatives:
            labels |= dict.fromkeys(positions, (False, BOTH_BAD, decision.agreement))
        else:
            skips[decision.outcome if decision.winner is None else "not_two_responses"] += 1
    if kind == "rubric" and (options.desirable_at is not None or options.undesirable_at is not None):
        if len(item.payloads) < options.min_judgments:
            skips["too_few_judgments"] += 1
        else:
            scores = rubric_scores(item.payloads, [r.position for r in item.responses], options.rubric_scales)
            for position, score in scores.items():
                if position in labels or score.overall is None:
                    continue
                if options.desirable_at is not None and score.overall >= options.desirable_at:
                    labels[position] = (True, "rubric", None)
                elif options.undesirable_at is not None and score.overall <= options.undesirable_at:
                    labels[position] = (False, "rubric", None)
    for position in flagged_positions(item.payloads, options.violating_labels, min_share=options.policy_min_share):
        labels[position] = (False, "policy", None)
    return labels


def build_kto_rows(
    items: Iterable[ItemJudgments], options: KtoOptions | None = None, *, skips: Counter[str] | None = None
) -> Iterator[dict[str, Any]]:
    """Unpaired rows for TRL's KTOTrainer (`prompt`, `completion`, `label`), in item order.

    One row per labelled response; shuffle them with `seeded_shuffle` (or the bucketed
    external sort described in this module) before writing.

    Args:
        items: judged items in a stable order.
        options: label sources, aggregation and format.
        skips: refused items and rows are counted here by reason.

    Returns:
        An iterator of `{"prompt", "completion", "label"}` rows, plus provenance when asked.

    Example:
        >>> [row["label"] for row in build_kto_rows(items)]
        [True, False]
    """
    options = options or KtoOptions()
    skips = Counter() if skips is None else skips
    for item in items:
        labels = response_labels(item, options, skips)
        for position in sorted(labels, key=lambda p: (not labels[p][0], p)):
            label, source, agreement = labels[position]
            row = unpaired_row(item.messages, response_text(item, position), label, options.row_format, skips)
            if row is None:
                continue
            if options.provenance:
                row |= provenance(item, source=source, agreement=agreement)
            yield row


def shuffle_key(row: dict[str, Any], seed: int) -> bytes:
    """The row's place in the seeded order: a hash of the seed and its TRL columns.

    Args:
        row: a KTO row (provenance columns are ignored).
        seed: the shuffle seed.

    Returns:
        16 bytes; sorting rows by them shuffles them.

    Example:
        >>> len(shuffle_key({"prompt": "p", "completion": "c", "label": True}, 7))
        16
    """
    content = orjson.dumps({name: row[name] for name in TRL_KTO_COLUMNS}, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(content, digest_size=16, key=str(seed).encode()).digest()


def shuffle_bucket(row: dict[str, Any], seed: int, buckets: int) -> int:
    """Which of `buckets` ordered spill files a row goes to (a range of `shuffle_key`)."""
    return int.from_bytes(shuffle_key(row, seed)[:8], "big") * buckets >> 64


def seeded_shuffle(rows: Iterable[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Rows in the seeded order, held in memory (for one bucket, or a small export).

    Args:
        rows: KTO rows.
        seed: the shuffle seed.

    Returns:
        The rows sorted by `shuffle_key` (identical rows keep their relative order).

    Example:
        >>> seeded_shuffle(rows, 1) == seeded_shuffle(reversed(rows), 1)
        True
    """
    return sorted(rows, key=lambda row: shuffle_key(row, seed))
