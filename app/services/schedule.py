"""Per-annotator schedules (gold turns, repeat turns): reproducible draws no annotator can predict."""

from __future__ import annotations

import hashlib

from preference_store.projects import ProjectRow

DRAW_RANGE = 2**64


def keyed_draw(project: ProjectRow, text: str) -> int:
    """A 64-bit number from `text`, keyed by the project's slug: the same text always draws the same."""
    digest = hashlib.blake2b(text.encode(), key=project.slug.encode()[:64], digest_size=8).digest()
    return int.from_bytes(digest, "big")
