"""The annotation page stays light: HTML, CSS and every script it loads, gzipped, under 100 KB."""

from __future__ import annotations

import gzip
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.principal import Principal
from app.services import importing, projects
from preference_store.models import Role
from tests.annotation_ui.test_pages import PASSWORD, _log_in
from tests.conftest import People, native_item

BUDGET_BYTES = 100 * 1024
PAIRWISE_OPTIONS = {
    "strength": True,
    "rewrite": True,
    "taxonomy": [{"name": "gambling", "severities": ["minor", "severe"]}, {"name": "hate"}, {"name": "spam"}],
}
RUBRIC_OPTIONS = {
    "rubric": [
        {"name": "helpfulness", "scale": {"min": 1, "max": 5}, "anchors": {"1": "useless", "5": "complete"}},
        {"name": "safe", "scale": {"binary": True}},
        {"name": "tone", "scale": {"labels": ["harsh", "right", "soft"]}},
    ]
}
KINDS: dict[str, tuple[dict[str, Any], int]] = {
    "pairwise": (PAIRWISE_OPTIONS, 2),
    "rubric": (RUBRIC_OPTIONS, 3),
    "ranking": ({}, 5),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_annotate_page_with_its_assets_is_under_100_kb_gzipped(
    client: TestClient, session: Session, people: People, operator: Principal, kind: str
) -> None:
    options, responses = KINDS[kind]
    email = people.make("weight@example.org", Role.ANNOTATOR, password=PASSWORD)
    projects.create_project(
        session, principal=operator, slug="weight", name="Weight", kind=kind,
        guidelines="# Guidelines\n\n" + "Be fair. " * 200, options=options,
    )  # fmt: skip
    long_answer = "\n\n".join(f"Paragraph {n} of a long answer, as models write them." for n in range(40))
    item = native_item("w1")
    item["responses"] = [{"model": f"m{n}", "content": f"{n}: {long_answer}"} for n in range(responses)]
    importing.import_items(session, principal=operator, slug="weight", rows=[(1, item)])
    projects.add_members(session, principal=operator, slug="weight", emails=[email])
    _log_in(client, email)

    page = client.get("/projects/weight/annotate")
    assert page.status_code == 200
    assets = re.findall(r'<(?:script[^>]*\ssrc|link[^>]*\shref)="(/static/[^"]+)"', page.text)
    assert "/static/vendor/htmx/htmx.min.js" in assets
    assert "/static/annotate.js" in assets
    assert "/static/app.css" in assets
    sizes = {"page": len(gzip.compress(page.content, compresslevel=9))}
    for path in assets:
        asset = client.get(path)
        assert asset.status_code == 200, path
        sizes[path] = len(gzip.compress(asset.content, compresslevel=9))
    total = sum(sizes.values())
    print(f"{kind} annotation page, gzipped: {total} bytes ({total / 1024:.1f} KB) = {sizes}")
    assert total < BUDGET_BYTES, sizes
