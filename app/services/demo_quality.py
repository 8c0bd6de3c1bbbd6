"""The judged demo batch's quality material: gold answers, an LLM judge, arbitration cases, a calibration.

Run once, after `demo_history` has judged the batch, so that a lead's first login shows
every quality page with data: gold accuracy in the scorecards, a model-vs-human report, an
arbitration queue and a revealed calibration session.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from app.principal import Principal
from app.services import arbitration, calibration, gold, importing
from app.services.demo_history import HISTORY_RATERS, better_position
from app.services.verdicts import VerdictInput
from preference_store import users as user_store

GOLD_EVERY = 5
"""Every fifth item of the batch has a gold answer."""
JUDGE = "sea-judge-llm-v1"
JUDGE_ACCURACY = 0.8
CALIBRATION_TEAMS = ("SEA Vendor Bangkok", "SEA Vendor Jakarta")
CALIBRATION_ITEMS = 4
GOLD_EXPLANATION = (
    "Agreed in the October calibration. The preferred response names the rule that applies, says what "
    "the moderator should do, and keeps a respectful tone; the other misses at least one of these."
)


@dataclass(frozen=True, slots=True)
class ArchiveQuality:
    gold_items: int
    judge_verdicts: int
    arbitration_cases: int
    """Open cases: opened as the batch was judged, or by the scan after gold was set."""
    calibration_items: int


def seed_archive_quality(session: Session, *, operator: Principal, slug: str, items_file: Path) -> ArchiveQuality:
    """Add gold answers, a judge's verdicts, arbitration cases and a calibration session to the judged batch."""
    contents = _contents(items_file)
    external_ids = sorted(contents)
    answers = {external_id: better_position(external_id, contents[external_id]) for external_id in external_ids}
    gold_ids = external_ids[::GOLD_EVERY]
    gold_rows = [
        gold.GoldInput(external_id, VerdictInput(choice="AB"[answers[external_id]]), explanation=GOLD_EXPLANATION)
        for external_id in gold_ids
    ]
    gold.mark_gold_bulk(session, principal=operator, slug=slug, rows=gold_rows)
    verdicts = importing.import_verdicts(
        session, principal=operator, slug=slug, rows=enumerate(_judge_rows(answers), start=1), default_source="demo"
    )
    arbitration.scan_project(session, principal=operator, slug=slug)
    queue = arbitration.list_queue(session, principal=operator, slug=slug, filters=arbitration.case_filters())
    calibrated = _calibration(
        session, operator=operator, slug=slug, contents=contents, answers=answers, gold_ids=set(gold_ids)
    )
    return ArchiveQuality(len(gold_rows), verdicts.stored, queue.counts.get("open", 0), calibrated)


def _contents(items_file: Path) -> dict[str, list[str]]:
    contents = {}
    with items_file.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            contents[record["external_id"]] = [response["content"] for response in record["responses"]]
    return contents


def _judge_rows(answers: dict[str, int]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for external_id, better in answers.items():
        chooser = random.Random(f"{JUDGE}:{external_id}")  # noqa: S311 (demo data, not secrets)
        choice = better if chooser.random() < JUDGE_ACCURACY else 1 - better
        rows.append({"external_id": external_id, "judge": JUDGE, "choice": choice})
    return rows


def _calibration(
    session: Session,
    *,
    operator: Principal,
    slug: str,
    contents: dict[str, list[str]],
    answers: dict[str, int],
    gold_ids: set[str],
) -> int:
    """A revealed and closed session: two teams answered four items blind, the lead agreed the answers."""
    picked = [external_id for external_id in answers if external_id not in gold_ids][:CALIBRATION_ITEMS]
    created = calibration.create_session(
        session,
        principal=operator,
        slug=slug,
        name="October calibration: gambling and scam promotions",
        notes="Bangkok and Jakarta disagreed on promotions that link off-platform; this session settles them.",
        teams=CALIBRATION_TEAMS,
    )
    calibration.add_items(session, principal=operator, slug=slug, session_id=created.id, external_ids=picked)
    for rater in HISTORY_RATERS:
        if rater.team not in CALIBRATION_TEAMS:
            continue
        user = user_store.get_user_by_email(session, email=rater.email)
        assert user is not None
        participant = Principal(user, operator.method)
        chooser = random.Random(f"calibration:{rater.email}")  # noqa: S311 (demo data, not secrets)
        while (mine := calibration.my_task(session, principal=participant, slug=slug, session_id=created.id)).task:
            task = mine.task
            assert mine.calibration_item_id is not None
            better = contents[task.external_id][answers[task.external_id]]
            shown_better = next(response.label for response in task.responses if response.content == better)
            shown_worse = next(response.label for response in task.responses if response.content != better)
            choice = shown_better if chooser.random() < rater.accuracy * (1 - rater.left_share) + 0.05 else shown_worse
            calibration.answer(
                session,
                principal=participant,
                slug=slug,
                session_id=created.id,
                calibration_item_id=mine.calibration_item_id,
                submitted=VerdictInput(choice=choice, strength="clearly"),
                time_spent_ms=chooser.randint(20_000, 60_000),
            )
    revealed = calibration.reveal(session, principal=operator, slug=slug, session_id=created.id)
    for review in revealed.items:
        calibration.agree(
            session,
            principal=operator,
            slug=slug,
            session_id=created.id,
            calibration_item_id=review.id,
            submitted=VerdictInput(choice="AB"[answers[review.external_id]], strength="clearly"),
            note="A link to an off-platform betting site is gambling promotion, even when it is framed as a giveaway.",
        )
    calibration.close(session, principal=operator, slug=slug, session_id=created.id)
    return len(picked)
