"""The external ids an import has read so far, in about 12 bytes each, to find duplicates inside one file."""

from __future__ import annotations

import numpy as np

MERGE_EVERY = 65_536


class SeenIds:
    """hash(external_id) -> the line it was first read on.

    New keys go to a small dict; every MERGE_EVERY keys the dict is merged into two sorted
    numpy arrays (an int64 key and a uint32 line each), so a million ids cost about 12 MB
    where a dict of them would cost over 100 MB.
    """

    def __init__(self) -> None:
        self._recent: dict[int, int] = {}
        self._keys = np.empty(0, dtype=np.int64)
        self._lines = np.empty(0, dtype=np.uint32)

    def __len__(self) -> int:
        return len(self._recent) + len(self._keys)

    def first_line(self, key: int) -> int | None:
        """The line `key` was first read on, or None if it is new."""
        line = self._recent.get(key)
        if line is not None:
            return line
        if not len(self._keys):
            return None
        index = int(np.searchsorted(self._keys, key))
        if index < len(self._keys) and self._keys[index] == key:
            return int(self._lines[index])
        return None

    def add(self, key: int, line: int) -> None:
        """Remember `key`; the caller has checked it with `first_line`."""
        self._recent[key] = line
        if len(self._recent) >= MERGE_EVERY:
            self._merge()

    def _merge(self) -> None:
        keys = np.fromiter(self._recent.keys(), dtype=np.int64, count=len(self._recent))
        lines = np.fromiter(self._recent.values(), dtype=np.uint32, count=len(self._recent))
        self._recent = {}
        keys = np.concatenate((self._keys, keys))
        lines = np.concatenate((self._lines, lines))
        order = np.argsort(keys, kind="stable")
        self._keys, self._lines = keys[order], lines[order]
