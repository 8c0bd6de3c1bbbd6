"""SFT rows (TRL's conversational language-modeling format) from rewrites and top-ranked responses."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from export.aggregate import Abstain, MajorityRule, ModelLabel, pairwise_decision, ranking_consensus
from export.formats import RowFormat, conversation_row, item_kind, provenance, response_text
from preference_store.judgments import ItemJudgments


@dataclass(frozen=True, slots=True)
class SftOptions:
    """Which responses are worth imitating.

    Args:
        min_judgments, min_agreement, ties, both_bad: the majority rule (see `MajorityRule`).
        from_rewrites: every distinct annotator rewrite.
        from_rankings: a ranked item's Condorcet winner (beats each other response by majority),
            unless most judgments said all responses are bad.
        from_pairwise: pairwise (and rubric overall-choice) majority winners; off by default,
            as a winner may only be the lesser evil.
        row_format: conversational `{messages}` (default) or standard `{prompt, completion}`.
        provenance: add external_id, source, annotators, votes, agreement columns.
        fitted_labels: item id -> outcome fitted over the whole export (Dawid-Skene); replaces the majority.
    """

    min_judgments: int = 1
    min_agreement: float = 0.0
    ties: Abstain = Abstain.KEEP
    both_bad: Abstain = Abstain.KEEP
    from_rewrites: bool = True
    from_rankings: bool = True
    from_pairwise: bool = False
    row_format: RowFormat = RowFormat.CONVERSATIONAL
    provenance: bool = False
    fitted_labels: Mapping[int, ModelLabel] = field(default_factory=dict)

    @property
    def rule(self) -> MajorityRule:
        return MajorityRule(self.min_judgments, self.min_agreement, self.ties, self.both_bad)


def _completions(
    item: ItemJudgments, options: SftOptions, skips: Counter[str]
) -> Iterator[tuple[str | None, str, float | None]]:
    kind = item_kind(item)
    if len(item.payloads) < options.min_judgments:
        skips["too_few_judgments"] += 1
        return
    if kind == "ranking" and options.from_rankings:
        consensus = ranking_consensus(item.payloads, [response.position for response in item.responses])
        winner = consensus.condorcet_winner()
        if options.both_bad is Abstain.KEEP and consensus.all_bad:
            skips["both_bad"] += 1
        elif winner is None:
            skips["no_majority"] += 1
        else:
            agreement = min(pair.agreement for pair in consensus.pairs if pair.better == winner)
            if agreement >= options.min_agreement:
                yield response_text(item, winner), "ranking", agreement
            else:
                skips["low_agreement"] += 1
    choice_payloads = [p for p in item.payloads if kind == "pairwise" or (kind == "rubric" and "choice" in p)]
    if options.from_pairwise and choice_payloads:
        decision = pairwise_decision(choice_payloads, options.rule, options.fitted_labels.get(item.item_id))
        if decision.winner is None:
            skips[decision.outcome] += 1
        else:
            yield response_text(item, decision.winner), kind or "pairwise", decision.agreement
    if options.from_rewrites:
        for payload in item.payloads:
            if payload.get("rewrite"):
                yield str(payload["rewrite"]["content"]), "rewrite", None


def build_sft_rows(
    items: Iterable[ItemJudgments], options: SftOptions | None = None, *, skips: Counter[str] | None = None
) -> Iterator[dict[str, Any]]:
    """Rows for TRL's SFTTrainer: `messages` = the prompt plus one assistant turn.

    An item gives at most one row per distinct completion text.

    Args:
        items: judged items in a stable order.
        options: sources, aggregation and format.
        skips: refused items and rows are counted here by reason.

    Returns:
        An iterator of `{"messages": [...]}` rows (standard: `{"prompt", "completion"}` strings).

    Example:
        >>> next(build_sft_rows(items))["messages"][-1]
        {'role': 'assistant', 'content': '...'}
    """
    options = options or SftOptions()
    skips = Counter() if skips is None else skips
    for item in items:
        seen: set[str] = set()
        for completion, source, agreement in _completions(item, options, skips):
            if completion is not None and completion.strip() in seen:
                continue
            row = conversation_row(item.messages, completion, options.row_format, skips)
            if row is None:
                continue
            seen.add((completion or "").strip())
            if options.provenance:
                row |= provenance(item, source=source, agreement=agreement)
            yield row
