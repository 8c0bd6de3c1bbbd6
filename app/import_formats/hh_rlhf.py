"""Anthropic HH-RLHF rows: `chosen` and `rejected` transcripts that share every turn but the last reply.

A transcript is `\n\nHuman: ...\n\nAssistant: ...` turns. The two are split where they actually
diverge, at the last `\n\nAssistant:` that both share and that follows a human turn; never at the
last marker of each, because real replies contain "Human:" text and assistant turns in a row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from app.import_formats.rows import ExternalVerdict, RowError, SourceRow, content_id, row_error

NAME = "hh-rlhf"
SOURCE = "hh-rlhf"
HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"
_MARKER = re.compile(r"(\n\nHuman:|\n\nAssistant:)")
_ROLE_OF_MARKER = {HUMAN: "user", ASSISTANT: "assistant"}


@dataclass(frozen=True, slots=True)
class HhSplit:
    """`prefix + chosen` and `prefix + rejected` are the original transcripts, character for character."""

    prefix: str
    chosen: str
    rejected: str


def matches(record: dict[str, Any]) -> bool:
    return isinstance(record.get("chosen"), str) and isinstance(record.get("rejected"), str)


def split_transcripts(chosen: str, rejected: str) -> HhSplit | str:
    """The shared conversation (ending with `\\n\\nAssistant:`) and the two replies, or why they cannot be split."""
    if chosen == rejected:
        return "chosen and rejected are the same transcript"
    common = _common_prefix_length(chosen, rejected)
    end = common
    while True:
        start = chosen.rfind(ASSISTANT, 0, end)
        if start < 0:
            return "the transcripts share no assistant turn that follows a human turn"
        before = chosen[:start]
        if before.rfind(HUMAN) > before.rfind(ASSISTANT):
            cut = start + len(ASSISTANT)
            return HhSplit(prefix=chosen[:cut], chosen=chosen[cut:], rejected=rejected[cut:])
        end = start


def transcript_messages(prefix: str) -> list[dict[str, str]] | str:
    """The turns of a shared prefix (ending with the assistant marker) as messages, or why not."""
    parts = _MARKER.split(prefix[: -len(ASSISTANT)])
    if parts[0].strip():
        return "the transcript must start with '\\n\\nHuman:'"
    messages = [
        {"role": _ROLE_OF_MARKER[marker], "content": _reply_text(text)}
        for marker, text in zip(parts[1::2], parts[2::2], strict=True)
    ]
    if not messages:
        return "the transcript has no human turn"
    return messages


def convert(number: int, record: Any) -> SourceRow | RowError:
    """One HH-RLHF row as a pairwise item with the dataset's preference as a verdict.

    The chosen reply is response 0; nothing in the item says so (annotators must not see it):
    the preference travels only in the verdict. A reply that is empty (the transcript ends at
    'Assistant:', a few rows of the harmless set) becomes content "" marked `empty_reply`.
    """
    if not isinstance(record, dict):
        return row_error(number, record, ("expected an object with 'chosen' and 'rejected'", "record"))
    bad = [
        (f"must be a transcript string, got {type(record.get(key)).__name__}", key)
        for key in ("chosen", "rejected")
        if not isinstance(record.get(key), str)
    ]
    if bad:
        return row_error(number, record, *bad)
    split = split_transcripts(record["chosen"], record["rejected"])
    if isinstance(split, str):
        return row_error(number, record, (split, "chosen"))
    messages = transcript_messages(split.prefix)
    if isinstance(messages, str):
        return row_error(number, record, (messages, "chosen"))
    if not split.chosen.strip() and not split.rejected.strip():
        return row_error(number, record, ("both final replies are empty", "chosen"))
    external_id = record.get("external_id") or content_id(SOURCE, [record["chosen"], record["rejected"]])
    item = {
        "external_id": external_id,
        "messages": messages,
        "responses": [_response(split.chosen), _response(split.rejected)],
        "metadata": {"source": SOURCE},
    }
    verdict = ExternalVerdict(source=SOURCE, judge=SOURCE, kind="choice", payload={"choice": 0})
    return SourceRow(number, item, (verdict,), record=record, empty_replies=True)


def _response(reply: str) -> dict[str, Any]:
    """A reply as a response; a transcript that ends at 'Assistant:' is an empty reply (silence was preferred)."""
    if not reply.strip():
        return {"content": "", "metadata": {"empty_reply": True}}
    return {"content": _reply_text(reply)}


def _reply_text(text: str) -> str:
    """A turn's text without the one space that follows its marker (so the transcript can be rebuilt)."""
    return text[1:] if text.startswith(" ") else text


def _common_prefix_length(first: str, second: str) -> int:
    low, high = 0, min(len(first), len(second))
    while low < high:  # binary search on equal prefixes: transcripts are long, comparisons are C-speed
        middle = (low + high + 1) // 2
        if first[:middle] == second[:middle]:
            low = middle
        else:
            high = middle - 1
    return low
