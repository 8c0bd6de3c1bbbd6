"""Row shapes and the guarantees every exported row keeps, enforced and counted in one place.

Conversational rows (the default) carry messages: `prompt` is the conversation ending on a
user turn and each completion is one assistant turn. Standard rows carry plain strings: the
prompt is the text of the only user turn, so only single-turn items qualify (a conversation
with more turns, or with a system message, is refused with the reason `multi_turn_standard`,
never flattened). One builder call writes one format: never both in a file.

Every builder passes its candidate rows through the functions below; a refused row is
counted under its reason in the `skips` counter the caller passes in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from preference_store.judgments import ItemJudgments

Message = dict[str, str]
Row = dict[str, Any]

EMPTY_PROMPT = "empty_prompt"
PROMPT_NOT_ON_USER = "prompt_not_ending_on_user"
MULTI_TURN_STANDARD = "multi_turn_standard"
EMPTY_COMPLETION = "empty_completion"
CHOSEN_EQUALS_REJECTED = "chosen_equals_rejected"
UNKNOWN_RESPONSE = "unknown_response"


class RowFormat(StrEnum):
    """TRL's two dataset formats."""

    CONVERSATIONAL = "conversational"
    STANDARD = "standard"


def item_kind(item: ItemJudgments) -> str | None:
    """The task kind an item's payloads were stored by: `pairwise`, `rubric`, `ranking` or None."""
    if not item.payloads:
        return None
    first = item.payloads[0]
    if "ranking" in first or "all_bad" in first:
        return "ranking"
    if "scores" in first:
        return "rubric"
    return "pairwise"


def response_text(item: ItemJudgments, position: int | None) -> str | None:
    """The content of the response stored at a position, or None."""
    return next((response.content for response in item.responses if response.position == position), None)


def provenance(item: ItemJudgments, *, source: str, agreement: float | None) -> Row:
    """The optional provenance columns: TRL ignores them, analysts join on them."""
    return {
        "external_id": item.external_id,
        "source": source,
        "annotators": len(set(item.annotator_ids)),
        "votes": len(item.payloads),
        "agreement": agreement,
    }


def _prompt(messages: Sequence[dict[str, Any]], fmt: RowFormat) -> list[Message] | str:
    """The prompt in the format, or raise `_Refused` with the reason."""
    conversation = [{"role": str(m.get("role", "")), "content": str(m.get("content") or "")} for m in messages]
    if not conversation or not any(message["content"].strip() for message in conversation):
        raise _Refused(EMPTY_PROMPT)
    if conversation[-1]["role"] != "user":
        raise _Refused(PROMPT_NOT_ON_USER)
    if not conversation[-1]["content"].strip():
        raise _Refused(EMPTY_PROMPT)
    if fmt is RowFormat.STANDARD:
        if len(conversation) != 1:
            raise _Refused(MULTI_TURN_STANDARD)
        return conversation[0]["content"]
    return conversation


def _completion(text: str | None, fmt: RowFormat) -> list[Message] | str:
    if text is None:
        raise _Refused(UNKNOWN_RESPONSE)
    if not text.strip():
        raise _Refused(EMPTY_COMPLETION)
    return text if fmt is RowFormat.STANDARD else [{"role": "assistant", "content": text}]


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def preference_row(
    messages: Sequence[dict[str, Any]], chosen: str | None, rejected: str | None, fmt: RowFormat, skips: Counter[str]
) -> Row | None:
    """`{prompt, chosen, rejected}`, or None (counted) when a guarantee would break.

    Args:
        messages: the item's conversation, ending on a user turn.
        chosen: the preferred response text.
        rejected: the other response text.
        fmt: conversational or standard.
        skips: refusals are counted here by reason.

    Returns:
        The row, or None.

    Example:
        >>> preference_row([{"role": "user", "content": "2+2?"}], "4", "5", RowFormat.STANDARD, Counter())
        {'prompt': '2+2?', 'chosen': '4', 'rejected': '5'}
    """
    try:
        row: Row = {
            "prompt": _prompt(messages, fmt),
            "chosen": _completion(chosen, fmt),
            "rejected": _completion(rejected, fmt),
        }
    except _Refused as refused:
        skips[refused.reason] += 1
        return None
    if (chosen or "").strip() == (rejected or "").strip():
        skips[CHOSEN_EQUALS_REJECTED] += 1
        return None
    return row


def unpaired_row(
    messages: Sequence[dict[str, Any]], completion: str | None, label: bool, fmt: RowFormat, skips: Counter[str]
) -> Row | None:
    """`{prompt, completion, label}` (KTO), or None (counted) when a guarantee would break.

    Args:
        messages: the item's conversation, ending on a user turn.
        completion: the response text.
        label: whether the completion is desirable.
        fmt: conversational or standard.
        skips: refusals are counted here by reason.

    Returns:
        The row, or None.

    Example:
        >>> unpaired_row([{"role": "user", "content": "2+2?"}], "5", False, RowFormat.STANDARD, Counter())
        {'prompt': '2+2?', 'completion': '5', 'label': False}
    """
    return _prompt_completion(messages, completion, fmt, skips, extra={"label": bool(label)})


def completion_row(
    messages: Sequence[dict[str, Any]], completion: str | None, fmt: RowFormat, skips: Counter[str]
) -> Row | None:
    """`{prompt, completion}`, or None (counted) when a guarantee would break."""
    return _prompt_completion(messages, completion, fmt, skips, extra={})


def conversation_row(
    messages: Sequence[dict[str, Any]], completion: str | None, fmt: RowFormat, skips: Counter[str]
) -> Row | None:
    """SFT: `{messages}` (prompt + one assistant turn); standard: `{prompt, completion}` strings.

    Args:
        messages: the item's conversation, ending on a user turn.
        completion: the assistant turn to learn.
        fmt: conversational or standard.
        skips: refusals are counted here by reason.

    Returns:
        The row, or None.

    Example:
        >>> conversation_row([{"role": "user", "content": "hi"}], "hello", RowFormat.CONVERSATIONAL, Counter())
        {'messages': [{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'hello'}]}
    """
    row = completion_row(messages, completion, fmt, skips)
    if row is None or fmt is RowFormat.STANDARD:
        return row
    return {"messages": [*row["prompt"], *row["completion"]]}


def _prompt_completion(
    messages: Sequence[dict[str, Any]], completion: str | None, fmt: RowFormat, skips: Counter[str], *, extra: Row
) -> Row | None:
    try:
        return {"prompt": _prompt(messages, fmt), "completion": _completion(completion, fmt), **extra}
    except _Refused as refused:
        skips[refused.reason] += 1
        return None
