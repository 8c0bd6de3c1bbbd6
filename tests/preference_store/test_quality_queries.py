"""The facts quality reports read: one row per judgment with its side, team, text length and filters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from app.principal import Principal
from preference_store.judgments import JudgmentFilter
from preference_store.projects import get_project_by_slug
from preference_store.quality import iter_judgment_facts, teams_by_name
from tests.app.test_quality_reports import BAD, EXTERNAL_IDS, GOOD, SLUG, SeededQuality, seed_quality_project
from tests.conftest import People


@pytest.fixture
def seeded(session: Session, people: People, operator: Principal) -> SeededQuality:
    return seed_quality_project(session, people, operator)


def _project_id(session: Session) -> int:
    project = get_project_by_slug(session, slug=SLUG)
    assert project is not None
    return project.id


@pytest.mark.parametrize("batch_size", [1, 7, 5000])
def test_facts_stream_every_judgment_once_in_batches(session: Session, seeded: SeededQuality, batch_size: int) -> None:
    batches = list(iter_judgment_facts(session, project_id=_project_id(session), batch_size=batch_size))
    facts = [fact for batch in batches for fact in batch]
    assert len(facts) == 64
    assert all(len(batch) <= batch_size for batch in batches)
    assert len(batches) == -(-64 // batch_size)
    assert [fact.judgment_id for fact in facts] == sorted(fact.judgment_id for fact in facts)


def test_a_fact_carries_side_team_text_length_time_and_item_metadata(session: Session, seeded: SeededQuality) -> None:
    facts = [fact for batch in iter_judgment_facts(session, project_id=_project_id(session)) for fact in batch]
    dave = [fact for fact in facts if fact.annotator_name == "dave"]
    assert [fact.external_id for fact in dave] == EXTERNAL_IDS
    # GOOD (position 0) was shown on the left of even items; dave always chose the left one.
    assert [fact.left_position for fact in dave] == [0, 1] * 8
    assert [fact.verdict for fact in dave] == ["p0", "p1"] * 8
    first = dave[0]
    assert (first.team_name, first.is_vendor, first.time_spent_ms) == ("Vendor Two", True, 20_000)
    assert first.text_chars == len(GOOD) + len(BAD)
    assert (first.language, first.market, first.category) == ("en", "US", "spam")
    assert (dave[-1].language, dave[-1].market, dave[-1].category) == ("th", "TH", "news")
    assert first.created_at == datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    assert first.payload is None
    with_payload = next(iter(iter_judgment_facts(session, project_id=_project_id(session), with_payload=True)))
    assert with_payload[0].payload is not None and with_payload[0].payload["choice"] in ("A", "B", "tie")


def test_facts_honour_team_date_and_item_filters(session: Session, seeded: SeededQuality) -> None:
    project_id = _project_id(session)
    vendor_two = teams_by_name(session, names=["Vendor Two", "Nobody"])
    assert list(vendor_two) == ["Vendor Two"]

    def names(where: JudgmentFilter) -> list[str]:
        batches = iter_judgment_facts(session, project_id=project_id, where=where)
        return sorted({fact.annotator_name for batch in batches for fact in batch})

    def count(where: JudgmentFilter) -> int:
        return sum(len(batch) for batch in iter_judgment_facts(session, project_id=project_id, where=where))

    assert names(JudgmentFilter(team_ids=(vendor_two["Vendor Two"].id,))) == ["carol", "dave"]
    assert count(JudgmentFilter(judged_from=datetime(2026, 11, 5, tzinfo=UTC))) == 32
    assert count(JudgmentFilter(judged_until=datetime(2026, 11, 5, tzinfo=UTC))) == 32
    assert count(JudgmentFilter(languages=("th",))) == 32
    assert count(JudgmentFilter(markets=("US",), categories=("spam",))) == 32
    assert count(JudgmentFilter(markets=("US",), categories=("news",))) == 0
