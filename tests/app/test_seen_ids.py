import random

import pytest

from app.services import seen_ids
from app.services.seen_ids import SeenIds


@pytest.fixture
def small_merges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seen_ids, "MERGE_EVERY", 7)


@pytest.mark.usefixtures("small_merges")
def test_every_key_is_found_with_its_first_line_across_merges() -> None:
    rnd = random.Random(3)
    keys = list({rnd.randrange(-(2**63), 2**63) for _ in range(100)})
    seen = SeenIds()
    for line, key in enumerate(keys, start=1):
        assert seen.first_line(key) is None
        seen.add(key, line)
    assert len(seen) == 100
    for line, key in enumerate(keys, start=1):
        assert seen.first_line(key) == line
    assert seen.first_line(12345) is None


def test_an_empty_set_finds_nothing() -> None:
    seen = SeenIds()
    assert seen.first_line(hash("q-1")) is None
    assert len(seen) == 0


def test_a_million_ids_take_a_few_megabytes() -> None:
    seen = SeenIds()
    for line in range(1, 1_000_001):
        seen.add(hash(f"item-{line}"), line)
    merged = seen._keys.nbytes + seen._lines.nbytes
    assert merged < 13_000_000
    assert seen.first_line(hash("item-999999")) == 999_999
