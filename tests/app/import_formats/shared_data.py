"""Where the shared real-world data lives; tests never copy it into the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HH_RLHF_FILE = "hh-rlhf-harmless-base-test.jsonl.gz"
HH_RLHF_ROWS = 2312
HH_RLHF_EMPTY_CHOSEN_LINES = (87, 517, 926, 1104)
"""Rows whose chosen transcript ends at 'Assistant:' with nothing after it: imported as an empty reply."""
_REPO = Path(__file__).resolve().parents[3]


def shared_data_file(name: str) -> Path:
    """The file from $PREFSTACK_SHARED_DATA, <repo>/../shared/data or /work/shared/data.

    Without it the test is skipped, or fails when CI=true.
    """
    candidates = [Path(os.environ["PREFSTACK_SHARED_DATA"])] if os.environ.get("PREFSTACK_SHARED_DATA") else []
    candidates += [_REPO.parent / "shared" / "data", Path("/work/shared/data")]
    for directory in candidates:
        if (directory / name).is_file():
            return directory / name
    reason = f"shared data file {name} not found in {', '.join(map(str, candidates))} (set PREFSTACK_SHARED_DATA)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)
