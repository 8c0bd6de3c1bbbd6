"""COPY text payloads: what psycopg would send, built without a connection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from preference_store.copy_text import copy_field, copy_payload


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (None, "\\N"),
        (True, "t"),
        (False, "f"),
        (0, "0"),
        (-42, "-42"),
        ("plain ไทย tiếng Việt 🙂", "plain ไทย tiếng Việt 🙂"),
        ("a\\b", "a\\\\b"),
        ("\\N", "\\\\N"),
        ("tab\there", "tab\\there"),
        ("line\nbreak\r\n", "line\\nbreak\\r\\n"),
        ("\\n is not a newline", "\\\\n is not a newline"),
        (datetime(2026, 12, 3, 4, 5, 6, 789, tzinfo=UTC), "2026-12-03T04:05:06.000789+00:00"),
        (datetime(2026, 12, 3, 11, 0, tzinfo=timezone(timedelta(hours=7))), "2026-12-03T11:00:00+07:00"),
    ],
)
def test_each_value_is_written_as_copy_text_reads_it(value: object, written: str) -> None:
    assert copy_field(value) == written


def test_a_payload_is_one_tab_separated_line_per_row_in_utf8() -> None:
    payload = copy_payload([(1, "a\tb", None), (2, "ข้อ", True)])
    assert payload == "1\ta\\tb\t\\N\n2\tข้อ\tt\n".encode()


def test_values_it_cannot_write_faithfully_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        copy_field(datetime(2026, 12, 3))
    with pytest.raises(TypeError, match="float"):
        copy_field(0.5)
