"""Hostile stored text renders as text on every page that shows it (no browser: the HTML itself)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.services.export_jobs import ExportJobRunner
from tests.security.hostile import seed_hostile
from tests.security.xss_corpus import PAYLOADS, offences


@pytest.mark.parametrize(
    ("html", "caught"),
    [
        ("<p>&lt;script&gt;__pwned(1)&lt;/script&gt;</p>", False),
        ("<script>__pwned(1)</script>", True),
        ('<img src="x" onerror="__pwned(3)">', True),
        ('<div hx-get="/logout?pwned18">x</div>', True),
        ('<a href="javascript:alert(1)">x</a>', True),
        ("<p>49pwned42</p>", True),
        ('<script type="application/json">{"a": "__pwned(1)"}</script>', False),
    ],
)
def test_the_inspector_tells_text_from_markup(html: str, caught: bool) -> None:
    assert bool(offences(html)) is caught


def test_the_corpus_is_broad() -> None:
    assert len(PAYLOADS) >= 40
    assert len(set(PAYLOADS)) == len(PAYLOADS)


def test_no_page_turns_hostile_text_into_markup(client: TestClient, session: Session, runner: ExportJobRunner) -> None:
    world = seed_hostile(client, session, tag="html")
    shown = 0
    for viewer, paths in world.pages.items():
        headers = {"Authorization": f"Bearer {world.tokens[viewer]}"}
        for path in paths:
            response = client.get(path, headers=headers)
            assert response.status_code == 200, f"{viewer} {path}: {response.status_code}"
            found = offences(response.text)
            assert found == [], f"{viewer} {path}: {found[:5]}"
            shown += "pwned" in response.text
            # htmx fragments go through the same templates: check them too.
            fragment = client.get(path, headers={**headers, "HX-Request": "true"})
            assert offences(fragment.text) == [], f"{viewer} {path} (htmx)"
    assert shown >= 20  # the payloads were on the pages, as text
