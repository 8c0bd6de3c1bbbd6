"""A judged batch for the demo: twelve vendor annotators' past work, so leads' reports and exports have data.

Each rater judges in turn, so items mix raters from the three teams; the judgments are dated
over the three weeks before the seeding. The raters differ on purpose, as real vendor teams
do: most are careful, but one picks the left response far too often, one answers at random
and one clicks through in two seconds. The quality pages flag exactly those three.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from app.principal import AuthMethod, Principal
from app.services import accounts, annotation, projects
from app.services.annotation import Task
from app.services.verdicts import VerdictInput
from preference_store import users as user_store
from preference_store.base import utcnow
from preference_store.models import Role

HISTORY_DAYS = 21
STRENGTHS = ("slightly", "clearly", "much")


@dataclass(frozen=True, slots=True)
class HistoryRater:
    """A past annotator of the demo's judged batch, and how they judge."""

    email: str
    name: str
    team: str
    accuracy: float
    """Chance of preferring the response the batch's hidden answer key prefers."""
    left_share: float
    """Chance of picking the left response whatever it says (position bias)."""
    seconds: tuple[float, float]
    """Active time per judgment, drawn uniformly from this range."""
    random: bool = False
    """Answers at random among A, B, tie and both bad, whatever the responses say."""


HISTORY_RATERS = (
    HistoryRater("nok.history@demo.prefstack", "Nok (Bangkok)", "SEA Vendor Bangkok", 0.93, 0.0, (25.0, 70.0)),
    HistoryRater("arthit.history@demo.prefstack", "Arthit (Bangkok)", "SEA Vendor Bangkok", 0.88, 0.0, (15.0, 45.0)),
    HistoryRater("kanya.history@demo.prefstack", "Kanya (Bangkok)", "SEA Vendor Bangkok", 0.9, 0.0, (20.0, 60.0)),
    HistoryRater(
        "somsak.history@demo.prefstack", "Somsak (Bangkok)", "SEA Vendor Bangkok", 0.5, 0.0, (12.0, 40.0), random=True
    ),
    HistoryRater("budi.history@demo.prefstack", "Budi (Jakarta)", "SEA Vendor Jakarta", 0.85, 0.95, (10.0, 30.0)),
    HistoryRater("dewi.history@demo.prefstack", "Dewi (Jakarta)", "SEA Vendor Jakarta", 0.9, 0.0, (18.0, 50.0)),
    HistoryRater("agus.history@demo.prefstack", "Agus (Jakarta)", "SEA Vendor Jakarta", 0.87, 0.0, (15.0, 40.0)),
    HistoryRater("sari.history@demo.prefstack", "Sari (Jakarta)", "SEA Vendor Jakarta", 0.85, 0.0, (1.2, 2.6)),
    HistoryRater("linh.history@demo.prefstack", "Linh (Hanoi)", "SEA Vendor Hanoi", 0.92, 0.0, (20.0, 55.0)),
    HistoryRater("minh.history@demo.prefstack", "Minh (Hanoi)", "SEA Vendor Hanoi", 0.89, 0.0, (15.0, 45.0)),
    HistoryRater("thao.history@demo.prefstack", "Thao (Hanoi)", "SEA Vendor Hanoi", 0.9, 0.0, (18.0, 50.0)),
    HistoryRater("hung.history@demo.prefstack", "Hung (Hanoi)", "SEA Vendor Hanoi", 0.88, 0.0, (12.0, 40.0)),
)


def seed_history(session: Session, *, operator: Principal, slug: str, items: int, overlap: int) -> int:
    """Have the history raters judge a pairwise project until it is done; returns the judgments stored."""
    raters = [_ensure_rater(session, rater) for rater in HISTORY_RATERS]
    projects.add_members(session, principal=operator, slug=slug, emails=[rater.email for rater in HISTORY_RATERS])
    start = utcnow() - timedelta(days=HISTORY_DAYS)
    # Every rater takes one task per round; a project of N items at overlap k needs about kN/12 rounds.
    rounds = max(1, (overlap * items + len(raters) - 1) // len(raters))
    stored = 0
    judged: set[tuple[int, str]] = set()
    # Seeded sides: a careful rater's left share is a coin's, and at some seedings a random
    # one crossed the position-bias flag; this way every seeding shows the same batch.
    sides = random.Random(f"sides:{slug}")  # noqa: S311 (demo data, not secrets)
    for round_number in range(rounds + len(raters)):
        when = start + timedelta(days=HISTORY_DAYS * round_number / rounds, minutes=round_number)
        served = 0
        for principal, rater in zip(raters, HISTORY_RATERS, strict=True):
            task = annotation.next_task(session, principal=principal, slug=slug, now=when, shuffle=sides)
            if task is None:
                continue
            served += 1
            chooser = random.Random(f"{rater.email}:{task.external_id}")  # noqa: S311 (demo data, not secrets)
            seconds = chooser.uniform(*rater.seconds)
            annotation.submit_judgment(
                session,
                principal=principal,
                assignment_id=task.assignment_id,
                submitted=_verdict(task, rater, chooser),
                time_spent_ms=round(seconds * 1000),
                now=when + timedelta(seconds=seconds),
            )
            # An item served again (a repeat, for self-consistency) is no new judgment.
            if (principal.id, task.external_id) not in judged:
                judged.add((principal.id, task.external_id))
                stored += 1
        if not served:
            break
    return stored


def _ensure_rater(session: Session, rater: HistoryRater) -> Principal:
    user = user_store.get_user_by_email(session, email=rater.email)
    if user is None:
        user = accounts.create_user(
            session,
            email=rater.email,
            name=rater.name,
            role=Role.ANNOTATOR,
            password=None,
            team=rater.team,
            languages=["en", "th", "id", "vi"],
        )
    return Principal(user, AuthMethod.SESSION)


def _verdict(task: Task, rater: HistoryRater, chooser: random.Random) -> VerdictInput:
    if rater.random:
        choice = chooser.choice(("A", "B", "tie", "both_bad"))
        return VerdictInput(choice=choice, strength=chooser.choice(STRENGTHS) if choice in ("A", "B") else None)
    draw = chooser.random()
    if draw < 0.04:
        return VerdictInput(choice="tie")
    if draw < 0.07:
        return VerdictInput(choice="both_bad")
    left, right = task.responses[0], task.responses[1]
    if chooser.random() < rater.left_share:
        picked = left
    else:
        better, worse = sorted((left, right), key=lambda shown: _answer_key(task.external_id, shown.content))
        picked = better if chooser.random() < rater.accuracy else worse
    return VerdictInput(choice=picked.label, strength=chooser.choice(STRENGTHS))


def better_position(external_id: str, contents: list[str]) -> int:
    """The response position the batch's hidden answer key prefers (of two)."""
    return min(range(len(contents)), key=lambda position: _answer_key(external_id, contents[position]))


def _answer_key(external_id: str, content: str) -> str:
    """The batch's hidden answer key: an arbitrary but fixed order of each item's two responses."""
    return hashlib.sha256(f"{external_id}\n{content}".encode()).hexdigest()
