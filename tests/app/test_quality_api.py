"""The quality report API: JSON figures, filters, permissions and CSV, Parquet and XLSX downloads."""

from __future__ import annotations

import csv
import io
import zipfile
from xml.etree import ElementTree

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.principal import Principal
from tests.app.test_quality_reports import SLUG, SeededQuality, seed_quality_project
from tests.conftest import People

BASE = f"/api/v1/projects/{SLUG}/quality"
SHEET = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


@pytest.fixture
def seeded(session: Session, people: People, operator: Principal) -> SeededQuality:
    return seed_quality_project(session, people, operator)


def _xml(workbook: zipfile.ZipFile, name: str) -> ElementTree.Element:
    # The workbook is the one the test's own server just wrote, not untrusted input.
    return ElementTree.fromstring(workbook.read(name))  # noqa: S314


def _xlsx_rows(content: bytes) -> tuple[list[str], list[list[str]]]:
    """The sheet names and the first sheet's cells as text, read from the workbook's XML parts."""
    with zipfile.ZipFile(io.BytesIO(content)) as workbook:
        names = [sheet.get("name", "") for sheet in _xml(workbook, "xl/workbook.xml").iter(f"{SHEET}sheet")]
        shared: list[str] = []
        if "xl/sharedStrings.xml" in workbook.namelist():
            strings = _xml(workbook, "xl/sharedStrings.xml")
            shared = [
                "".join(text.text or "" for text in item.iter(f"{SHEET}t")) for item in strings.iter(f"{SHEET}si")
            ]
        sheet = _xml(workbook, "xl/worksheets/sheet1.xml")
    rows = []
    for row in sheet.iter(f"{SHEET}row"):
        cells: dict[int, str] = {}
        for cell in row.iter(f"{SHEET}c"):
            value = cell.find(f"{SHEET}v")
            inline = cell.find(f"{SHEET}is")
            if cell.get("t") == "s" and value is not None:
                text = shared[int(value.text or 0)]
            elif inline is not None:
                text = "".join(part.text or "" for part in inline.iter(f"{SHEET}t"))
            else:
                text = value.text or "" if value is not None else ""
            cells[_column(cell.get("r", ""))] = text
        rows.append([cells.get(index, "") for index in range(max(cells, default=-1) + 1)])
    return names, rows


def _column(reference: str) -> int:
    """0-based column of a cell reference such as `AB12`."""
    number = 0
    for letter in reference.rstrip("0123456789"):
        number = number * 26 + ord(letter) - ord("A") + 1
    return number - 1


def test_dashboard_json_has_the_figures(client: TestClient, people: People, seeded: SeededQuality) -> None:
    response = client.get(f"{BASE}/dashboard?resamples=200&group_by=team", headers=people.headers(seeded.lead_email))
    assert response.status_code == 200
    body = response.json()
    assert body["judgments"] == 64
    assert body["agreement"][0]["measure"] == "outcome"
    assert body["agreement"][0]["percent"] == pytest.approx((7 + 0.5 + 1 / 6 + 7 * 0.5) / 16)
    assert [day["day"] for day in body["volume"]] == ["2026-11-03", "2026-11-10"]
    assert {group["group"] for group in body["groups"]} == {"Vendor One", "Vendor Two"}


def test_annotators_json_lists_flags_with_items(client: TestClient, people: People, seeded: SeededQuality) -> None:
    response = client.get(f"{BASE}/annotators?resamples=200", headers=people.headers(seeded.lead_email))
    assert response.status_code == 200
    flags = {card["name"]: [flag["code"] for flag in card["flags"]] for card in response.json()["annotators"]}
    assert flags == {"alice": [], "bob": [], "carol": ["too_fast"], "dave": ["position_bias"]}


def test_benchmark_json_compares_the_named_teams(client: TestClient, people: People, seeded: SeededQuality) -> None:
    response = client.get(
        f"{BASE}/benchmark?teams=Vendor One,Vendor Two&resamples=200", headers=people.headers(seeded.lead_email)
    )
    assert response.status_code == 200
    body = response.json()
    assert body["shared_items"] == 16
    assert [team["vs_aggregate"] for team in body["teams"]] == [30 / 32, 24 / 32]


def test_annotator_gets_403(client: TestClient, people: People, seeded: SeededQuality) -> None:
    for report in ("dashboard", "annotators", "teams", "benchmark?teams=Vendor One,Vendor Two"):
        response = client.get(f"{BASE}/{report}", headers=people.headers(seeded.emails["alice"]))
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "lead_role_required"


def test_invalid_filters_and_formats_answer_422(client: TestClient, people: People, seeded: SeededQuality) -> None:
    headers = people.headers(seeded.lead_email)
    for query, code in (
        ("dashboard?format=pdf", "invalid_format"),
        ("dashboard?judged_from=yesterday", "invalid_judged_from"),
        ("dashboard?format=csv&table=nope", "invalid_table"),
        ("teams?teams=Nobody", "unknown_team"),
        ("benchmark?teams=Vendor One", "invalid_teams"),
    ):
        response = client.get(f"{BASE}/{query}", headers=headers)
        assert response.status_code == 422, query
        assert response.json()["error"]["code"] == code


def test_annotators_csv_download_parses(client: TestClient, people: People, seeded: SeededQuality) -> None:
    response = client.get(f"{BASE}/annotators?format=csv&resamples=200", headers=people.headers(seeded.lead_email))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="{SLUG}-quality-annotators.csv"'
    rows = list(csv.DictReader(io.StringIO(response.text)))
    by_name = {row["annotator"]: row for row in rows}
    assert by_name["dave"]["flags"] == "position_bias"
    assert float(by_name["dave"]["left_share"]) == 1.0
    assert by_name["alice"]["team"] == "Vendor One"


def test_dashboard_volume_parquet_download_reads_with_pyarrow(
    client: TestClient, people: People, seeded: SeededQuality
) -> None:
    response = client.get(
        f"{BASE}/dashboard?format=parquet&table=volume&resamples=200", headers=people.headers(seeded.lead_email)
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert response.headers["content-disposition"] == f'attachment; filename="{SLUG}-quality-volume.parquet"'
    table = pq.read_table(io.BytesIO(response.content))
    assert table.to_pydict() == {"day": ["2026-11-03", "2026-11-10"], "judgments": [32, 32]}


def test_teams_xlsx_download_opens_as_a_workbook(client: TestClient, people: People, seeded: SeededQuality) -> None:
    response = client.get(f"{BASE}/teams?format=xlsx&resamples=200", headers=people.headers(seeded.lead_email))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response.headers["content-disposition"] == f'attachment; filename="{SLUG}-quality-teams.xlsx"'
    sheets, rows = _xlsx_rows(response.content)
    assert sheets == ["teams"]
    header, *body = rows
    assert header[:3] == ["team", "is_vendor", "annotators"]
    by_team = {row[0]: dict(zip(header, row, strict=False)) for row in body}
    assert set(by_team) == {"Vendor One", "Vendor Two"}
    assert float(by_team["Vendor Two"]["left_share"]) == 0.75
    assert by_team["Vendor Two"]["flags"] == "too_fast"
