"""Screenshots for the docs, taken by the browser tests.

A normal run writes them beside the other test screenshots (git ignores those); with
PREFSTACK_DOC_IMAGES=1 they replace the images in docs/images:
`PREFSTACK_DOC_IMAGES=1 .venv/bin/pytest -m browser tests/browser`.
"""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Page

REPO = Path(__file__).resolve().parents[2]
DOC_IMAGES = REPO / "docs" / "images"
SCRATCH = REPO / "tests" / "browser" / "screenshots"
MAX_DOC_IMAGE_BYTES = 150 * 1024


def save_doc_image(page: Page, name: str) -> Path:
    """Screenshot the page (its 1366x768 viewport) as the docs image `name`; docs images stay small."""
    folder = DOC_IMAGES if os.environ.get("PREFSTACK_DOC_IMAGES") == "1" else SCRATCH
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), animations="disabled")
    size = path.stat().st_size
    assert size < MAX_DOC_IMAGE_BYTES, f"{name} is {size} bytes"
    return path
