"""Train/test(/validation) splits grouped by prompt, so no prompt leaks across splits.

The group of a row is its first user turn, normalised (Unicode NFKC, case-folded, runs of
whitespace collapsed to one space, trimmed). Every conversation that continues the same
opening lands in the same split, and so do prompts that differ only in case or spacing.
The split of a group is `blake2b(seed, group)` read as a number in [0, 1): below `test` is
test, below `test + validation` is validation, the rest is train. It needs no pass over the
data and holds nothing in memory; the same seed gives the same split for the same group in
every export, whatever else the export holds. Fractions are expected shares, not exact counts.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

TRAIN, TEST, VALIDATION = "train", "test", "validation"


@dataclass(frozen=True, slots=True)
class SplitSpec:
    """Expected shares of the test and validation splits (train takes the rest), and the seed."""

    test: float = 0.1
    validation: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.test < 0 or self.validation < 0 or self.test + self.validation >= 1:
            raise ValueError("test and validation must be >= 0 and leave a share for train")

    def names(self) -> list[str]:
        """The splits this spec may give, in writing order."""
        return [TRAIN, TEST] + ([VALIDATION] if self.validation else [])


def normalise(text: str) -> str:
    """A prompt's grouping form: NFKC, case-folded, whitespace collapsed."""
    # str.split() splits on the same Unicode whitespace as the regex \s, several times faster.
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def group_key(row: dict[str, Any]) -> str:
    """The normalised first user turn of a row of any kind and format.

    Args:
        row: an export row with `prompt` (messages or string) or `messages`.

    Returns:
        The grouping key.

    Example:
        >>> group_key({"prompt": [{"role": "system", "content": "x"}, {"role": "user", "content": " Hi  there"}]})
        'hi there'
    """
    prompt = row["prompt"] if "prompt" in row else row["messages"]
    if isinstance(prompt, str):
        return normalise(prompt)
    users = [message for message in prompt if message.get("role") == "user"]
    first = users[0] if users else (prompt[0] if prompt else {"content": ""})
    return normalise(str(first.get("content") or ""))


def split_of_key(key: str, spec: SplitSpec) -> str:
    """The split a group key falls in under a spec."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, key=str(spec.seed).encode()).digest()
    share = int.from_bytes(digest, "big") / 2**64
    if share < spec.test:
        return TEST
    if share < spec.test + spec.validation:
        return VALIDATION
    return TRAIN


def split_of(row: dict[str, Any], spec: SplitSpec) -> str:
    """The split a row belongs to (its prompt group's).

    Args:
        row: an export row.
        spec: shares and seed.

    Returns:
        `train`, `test` or `validation`.

    Example:
        >>> split_of({"prompt": "What is 2+2?"}, SplitSpec(test=0.2, seed=3)) in ("train", "test")
        True
    """
    return split_of_key(group_key(row), spec)


def split_rows(rows: Iterable[dict[str, Any]], spec: SplitSpec) -> Iterator[tuple[str, dict[str, Any]]]:
    """Tag each row with its split, streaming (a writer routes each to its split's file).

    Args:
        rows: export rows.
        spec: shares and seed.

    Returns:
        An iterator of `(split, row)`.

    Example:
        >>> [name for name, _ in split_rows([{"prompt": "a"}], SplitSpec(test=0.0))]
        ['train']
    """
    for row in rows:
        yield split_of(row, spec), row
