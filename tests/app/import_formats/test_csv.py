"""CSV: one response a column, or one response a row grouped by external_id."""

from __future__ import annotations

import io

import pytest

from app.errors import InvalidInput
from app.import_formats import ReadRow, RowError, SourceRow
from app.import_formats.csv_format import read_csv


def _read(text: str | bytes) -> list[ReadRow]:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return list(read_csv(io.BytesIO(data)))


def test_one_response_a_column_with_models_and_metadata() -> None:
    rows = _read(
        "External_ID,prompt,response_a,model_a,response_b,model_b,language,priority,metadata.team\n"
        'c1,"Is this spam?\nReally?",Yes.,m-a,No.,m-b,en,5,blue\n'
        "c2,Second,A,,B,,,,\n"
    )
    assert all(isinstance(row, SourceRow) for row in rows)
    first, second = (row.item for row in rows if isinstance(row, SourceRow))
    assert [row.number for row in rows] == [2, 4]  # the quoted newline makes record 1 two lines long
    assert first == {
        "external_id": "c1",
        "prompt": "Is this spam?\nReally?",
        "priority": 5,
        "metadata": {"language": "en", "team": "blue"},
        "responses": [{"content": "Yes.", "model": "m-a"}, {"content": "No.", "model": "m-b"}],
    }
    assert second == {
        "external_id": "c2",
        "prompt": "Second",
        "responses": [{"content": "A", "model": ""}, {"content": "B", "model": ""}],
    }


def test_one_response_a_row_groups_consecutive_rows_of_an_item() -> None:
    rows = _read(
        "\ufeffexternal_id,system,prompt,response,model\n"
        "r1,Be brief.,Rank these,One,m1\n"
        "r1,,,Two,m2\n"
        "r1,,,Three,m3\n"
        "r2,,Other,Alpha,m1\n"
        "r2,,,Beta,m2\n"
    )
    assert [row.number for row in rows] == [2, 5]
    first = rows[0]
    assert isinstance(first, SourceRow)
    assert first.item["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Rank these"},
    ]
    assert [r["content"] for r in first.item["responses"]] == ["One", "Two", "Three"]


def test_ids_are_content_hashes_when_the_file_has_none() -> None:
    text = "prompt,response_a,response_b\nq,a,b\n"
    (first,), (second,) = _read(text), _read(text)
    assert isinstance(first, SourceRow) and isinstance(second, SourceRow)
    assert first.item["external_id"] == second.item["external_id"] and first.item["external_id"].startswith("csv-")


def test_bad_rows_name_line_and_column() -> None:
    rows = _read("id,prompt,response_a,response_b,priority\na,q,yes,,1\nb,,x,y,high\nc,q,x\n")
    assert all(isinstance(row, RowError) for row in rows)
    assert [str(problem) for row in rows if isinstance(row, RowError) for problem in row.problems] == [
        "line 2: response_b: must be a non-empty text",
        "line 3: prompt: required: the prompt (or a 'messages' JSON list)",
        "line 3: priority: must be a whole number",
        "line 4: has 3 cells, the header has 5",
        "line 4: response_b: must be a non-empty text",
    ]


def test_invalid_utf8_is_reported_on_its_line() -> None:
    rows = _read(b"id,prompt,response_a,response_b\na,q,x,y\nb,q,\xff,y\n")
    assert isinstance(rows[0], SourceRow)
    bad = rows[1]
    assert isinstance(bad, RowError) and [str(p) for p in bad.problems] == [
        "line 3: not valid UTF-8 (byte 5 of a line)"
    ]


def test_long_form_rows_of_one_item_must_agree() -> None:
    rows = _read("external_id,prompt,response\nr1,q,One\nr1,other,Two\nr1,,\n")
    (row,) = rows
    assert isinstance(row, RowError)
    assert [str(p) for p in row.problems] == [
        "line 2: prompt: line 3 differs from line 2 of the same item",
        "line 2: response: line 4: must be a non-empty text",
    ]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("id,prompt,response_a,respnse_b", "unknown column(s) respnse_b"),
        ("id,prompt,response_a,response_b,model", "unknown column(s) model"),
        ("id,prompt,response_a,response", "give either response_a, response_b, ... columns or one 'response' column"),
        ("prompt,response", "one response a row needs an 'external_id' column"),
        ("id,prompt,prompt,response_a", "column(s) prompt appear more than once"),
    ],
)
def test_bad_headers_refuse_the_file(header: str, message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        _read(header + "\nx,y,z,w\n")
    assert refused.value.row == 1 and message in refused.value.message


def test_empty_file_is_refused() -> None:
    with pytest.raises(InvalidInput, match="the CSV file is empty"):
        _read("")
