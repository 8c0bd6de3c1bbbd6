"""Self-consistency for the quality reports: answered repeats matched to their first judgments.

A repeat is compared with the first judgment of the same annotator and item, both as the
annotator saw the pair (left, right, tie, both bad); `signals.self_consistency` maps the
swapped sides back. A repeat counts where the first judgment is in the report (its filters).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from app.quality.kinds import PairwiseOutcome
from app.quality.signals import Shares, ShownChoice, self_consistency, unswap_pairwise, wilson_interval
from preference_store import repeats as repeat_store

_OUTCOMES = {
    "p0": PairwiseOutcome.FIRST,
    "p1": PairwiseOutcome.SECOND,
    "tie": PairwiseOutcome.TIE,
    "both_bad": PairwiseOutcome.BOTH_BAD,
}


@dataclass(frozen=True)
class RepeatPairs:
    """Per answered repeat: the report row of its first judgment, the position it showed on the left, its outcome."""

    row: npt.NDArray[np.intp]
    left_position: npt.NDArray[np.intp]
    outcome: npt.NDArray[np.intp]
    """`PairwiseOutcome` by stored position, -1 when the answer has no pairwise decision."""

    @classmethod
    def empty(cls) -> RepeatPairs:
        return cls(np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0, np.intp))


@dataclass(frozen=True)
class Consistency:
    """Per rater: self-consistency shares with their Wilson 95% interval; per report row, repeated differently."""

    shares: Shares
    low: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    inconsistent_rows: npt.NDArray[np.bool_]


def load_repeat_pairs(
    session: Session,
    *,
    project_id: int,
    item_ids: npt.NDArray[np.int64],
    item: npt.NDArray[np.intp],
    annotator_ids: Sequence[int],
    annotator: npt.NDArray[np.intp],
) -> RepeatPairs:
    """The project's answered repeats whose first judgment is a report row.

    `item_ids` is the stored id per item code, `item` and `annotator` the codes per report row.
    """
    answered = repeat_store.answered_repeats(session, project_id=project_id)
    if not answered or item_ids.size == 0:
        return RepeatPairs.empty()
    code_of_annotator = {annotator_id: code for code, annotator_id in enumerate(annotator_ids)}
    annotator_code = np.asarray([code_of_annotator.get(r.annotator_id, -1) for r in answered], dtype=np.int64)
    repeated_items = np.asarray([r.item_id for r in answered], dtype=np.int64)
    sorter = np.argsort(item_ids)
    at = np.minimum(np.searchsorted(item_ids, repeated_items, sorter=sorter), item_ids.size - 1)
    item_code = sorter[at].astype(np.int64)
    known = (item_ids[item_code] == repeated_items) & (annotator_code >= 0)
    n_annotators = max(len(annotator_ids), 1)
    wanted = item_code * n_annotators + annotator_code
    row_keys = item.astype(np.int64) * n_annotators + annotator
    # An annotator judges an item at most once, so a key names one report row.
    candidates = np.flatnonzero(np.isin(row_keys, wanted[known]))
    row_of_key = dict(zip(row_keys[candidates].tolist(), candidates.tolist(), strict=True))
    found = [row_of_key.get(key, -1) if ok else -1 for key, ok in zip(wanted.tolist(), known.tolist(), strict=True)]
    rows = np.asarray(found, dtype=np.intp)
    keep = rows >= 0
    left = np.asarray([r.shown_order[0] if r.shown_order else -1 for r in answered], dtype=np.intp)
    outcome = np.asarray([_OUTCOMES.get(r.verdict.split("|", 1)[0], -1) for r in answered], dtype=np.intp)
    return RepeatPairs(rows[keep].astype(np.intp), left[keep], outcome[keep])


def shown_choice(outcome: npt.NDArray[np.intp], left_position: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """`ShownChoice` of pairwise outcomes given the position shown on the left (-1 where unknown)."""
    choices = np.full(outcome.shape, -1, dtype=np.intp)
    preferred = np.isin(outcome, (PairwiseOutcome.FIRST, PairwiseOutcome.SECOND)) & (left_position >= 0)
    choices[preferred] = np.where(outcome[preferred] == left_position[preferred], ShownChoice.LEFT, ShownChoice.RIGHT)
    choices[outcome == PairwiseOutcome.TIE] = ShownChoice.TIE
    choices[outcome == PairwiseOutcome.BOTH_BAD] = ShownChoice.BOTH_BAD
    return choices


def consistency(
    pairs: RepeatPairs,
    *,
    first_choices: npt.NDArray[np.intp],
    first_left_position: npt.NDArray[np.intp],
    codes: npt.NDArray[np.intp],
    n: int,
) -> Consistency:
    """Self-consistency per rater code; `first_choices`, `first_left_position` and `codes` are per report row."""
    first = first_choices[pairs.row]
    repeat = shown_choice(pairs.outcome, pairs.left_position)
    is_swapped = pairs.left_position != first_left_position[pairs.row]
    counted = (first >= 0) & (repeat >= 0)
    shares = self_consistency(
        codes[pairs.row[counted]], first[counted], repeat[counted], is_swapped[counted], n_annotators=n
    )
    low, high = wilson_interval(shares.hits, shares.total)
    differs = counted & (first != np.where(is_swapped, unswap_pairwise(repeat), repeat))
    inconsistent_rows = np.zeros(first_choices.shape, dtype=bool)
    inconsistent_rows[pairs.row[differs]] = True
    return Consistency(shares, low, high, inconsistent_rows)
