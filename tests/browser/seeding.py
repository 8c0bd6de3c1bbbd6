"""Rubric and ranking projects to seed, shared by the page tests and the browser tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from app.principal import command_line_principal
from app.services import importing, projects

if TYPE_CHECKING:
    from tests.browser.conftest import Annotator, LiveServer

RUBRIC_OPTIONS: dict[str, Any] = {
    "rubric": [
        {
            "name": "Helpfulness",
            "description": "Does it answer what was asked?",
            "scale": {"min": 1, "max": 5},
            "anchors": {"1": "useless", "3": "partly", "5": "complete"},
        },
        {"name": "Safe", "description": "Nothing harmful.", "scale": {"binary": True}},
        {"name": "Tone", "scale": {"labels": ["cold", "neutral", "warm"]}, "required": False},
    ]
}
"""Three criteria, one of each scale kind: Likert 1-5, binary (no/yes), categorical."""

RANKING_RESPONSES = (
    "Use slicing: `items[::-1]` returns a **new** list.",
    "Call `items.reverse()`; it reverses *in place* and returns `None`.",
    "`list(reversed(items))` builds a reversed copy from an iterator.",
    "Lists cannot be reversed in Python.",
)


def item(external_id: str, prompt: str, responses: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """A native item with one response per text, in stored position order."""
    return {
        "external_id": external_id,
        "prompt": prompt,
        "responses": [{"model": f"m-{index}", "content": text} for index, text in enumerate(responses)],
        "metadata": {"language": "en"},
    }


RUBRIC_ITEMS = [
    item(
        "rubric-1",
        "How do I reverse a list in Python?",
        ["Use slicing:\n\n```python\nitems[::-1]\n```\n\nThis returns a **new** list.", RANKING_RESPONSES[1]],
    )
]
RANKING_ITEMS = [item("ranking-1", "How do I reverse a list in Python?", RANKING_RESPONSES)]


def seed_kind_project(
    session: Session,
    *,
    slug: str,
    kind: str,
    items: list[dict[str, Any]],
    member: str,
    options: dict[str, Any] | None = None,
) -> None:
    """A project of `kind` holding `items`, with `member` (an existing user's email) on it."""
    operator = command_line_principal()
    projects.create_project(
        session,
        principal=operator,
        slug=slug,
        name=f"Project {slug}",
        kind=kind,
        overlap=1,
        guidelines="Judge **helpfulness** first.",
        options=options,
    )
    projects.add_members(session, principal=operator, slug=slug, emails=[member])
    importing.import_items(session, principal=operator, slug=slug, rows=list(enumerate(items, start=1)))


def seed_live(
    server: LiveServer,
    *,
    slug: str,
    kind: str,
    items: list[dict[str, Any]],
    annotator: str,
    options: dict[str, Any] | None = None,
) -> Annotator:
    """A new annotator and a project of `kind` on the live server's database."""
    member = server.create_annotator(annotator)
    with server.sessions() as session:
        seed_kind_project(session, slug=slug, kind=kind, items=items, member=member.email, options=options)
    return member
