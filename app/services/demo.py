"""The demo: a livestream-moderation pairwise project in four languages, with its people."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from app.principal import command_line_principal
from app.services import accounts, importing, projects
from preference_store import projects as project_store
from preference_store import users as user_store
from preference_store.models import Role

DEMO_ITEMS = Path(__file__).resolve().parent.parent / "demo_data" / "demo_items.jsonl"
DEMO_PROJECT_SLUG = "livestream-safety"
DEMO_GUIDELINES = """\
# Livestream safety: which answer would you ship?

You compare two answers an assistant gave to a trust-and-safety question about a
livestream platform. Pick the one a careful moderator would rather send.

1. **Correct and safe first.** An answer that misstates the policy, or helps someone
   break it, loses even if it is better written.
2. **Helpful second.** A refusal where a clear answer was safe is a bad answer.
3. **Language.** The answer must be in the language of the question, natural for that market.

Use **tie** when both are equally good, **both bad** when you would send neither.
"""


@dataclass(frozen=True, slots=True)
class DemoLogin:
    email: str
    password: str
    role: str
    name: str


@dataclass(frozen=True, slots=True)
class DemoSummary:
    project_slug: str
    items_created: int
    logins: list[DemoLogin]


DEMO_PEOPLE = (
    DemoLogin("lead@demo.prefstack", "demo-lead-pass", Role.LEAD.value, "Dara Lead"),
    DemoLogin("ann.th@demo.prefstack", "demo-annotator-pass", Role.ANNOTATOR.value, "Somchai (TH vendor)"),
    DemoLogin("ann.id@demo.prefstack", "demo-annotator-pass", Role.ANNOTATOR.value, "Putri (ID vendor)"),
    DemoLogin("ann.vi@demo.prefstack", "demo-annotator-pass", Role.ANNOTATOR.value, "Linh (VN vendor)"),
)
_TEAMS = {
    "ann.th@demo.prefstack": ("SEA Vendor Bangkok", ["th", "en"]),
    "ann.id@demo.prefstack": ("SEA Vendor Jakarta", ["id", "en"]),
    "ann.vi@demo.prefstack": ("SEA Vendor Hanoi", ["vi", "en"]),
}


def seed_demo(session: Session) -> DemoSummary:
    """Create (or refresh) the demo people and project; safe to run again."""
    operator = command_line_principal()
    for person in DEMO_PEOPLE:
        if user_store.get_user_by_email(session, email=person.email) is None:
            team, languages = _TEAMS.get(person.email, ("Trust & Safety Quality", ["en", "th", "id", "vi"]))
            accounts.create_user(
                session,
                email=person.email,
                name=person.name,
                role=Role(person.role),
                password=person.password,
                team=team,
                languages=languages,
            )
        else:
            accounts.set_password(session, email=person.email, password=person.password)
    if project_store.get_project_by_slug(session, slug=DEMO_PROJECT_SLUG) is None:
        projects.create_project(
            session,
            principal=operator,
            slug=DEMO_PROJECT_SLUG,
            name="Livestream safety answers (EN/TH/ID/VI)",
            kind="pairwise",
            overlap=3,
            guidelines=DEMO_GUIDELINES,
        )
    with DEMO_ITEMS.open("rb") as stream:
        result = importing.import_items(
            session, principal=operator, slug=DEMO_PROJECT_SLUG, rows=importing.parse_jsonl(stream)
        )
    projects.add_members(
        session, principal=operator, slug=DEMO_PROJECT_SLUG, emails=[person.email for person in DEMO_PEOPLE]
    )
    return DemoSummary(DEMO_PROJECT_SLUG, result.created, list(DEMO_PEOPLE))
