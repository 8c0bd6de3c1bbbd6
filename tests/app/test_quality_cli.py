"""`prefstack quality report` prints the headline figures and writes every table; the API returns the same."""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli import cli
from app.principal import Principal, command_line_principal
from app.services import quality_reports, quality_summary
from preference_store.engine import build_engine, session_factory
from tests.app.test_quality_gaps import SLUG, SeededGaps, seed_gaps_project
from tests.conftest import People
from tests.databases import fresh_database

runner = CliRunner()
TABLES = ["agreement", "volume", "labels", "annotators", "teams", "gaps", "trends"]


@pytest.fixture
def seeded_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with fresh_database(tmp_path) as url:
        monkeypatch.setenv("PREFSTACK_DATABASE_URL", url)
        monkeypatch.chdir(tmp_path)
        result = runner.invoke(cli, ["db", "upgrade"])
        assert result.exit_code == 0, result.output
        engine = build_engine(url)
        try:
            with session_factory(engine)() as session:
                seed_gaps_project(session, People(session), command_line_principal())
                session.commit()
        finally:
            engine.dispose()
        yield url


def _report(*args: str) -> str:
    result = runner.invoke(cli, ["quality", "report", "--project", SLUG, "--resamples", "200", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_report_prints_headlines_and_writes_every_table(seeded_database: str, tmp_path: Path) -> None:
    output = _report("--out", str(tmp_path / "report"), "--min-judgments", "4")
    assert "Gaps (gaps, pairwise): 32 judgments, 8 items, 4 annotators" in output
    assert "Agreement" in output and "outcome" in output
    assert "Teams" in output and "Blue" in output and "Red" in output
    assert "Worst cells" in output
    for name in TABLES:
        path = tmp_path / "report" / f"{SLUG}-quality-{name}.csv"
        assert path.exists(), name
        assert f"wrote {path}" in output.replace("\n", "")
    with (tmp_path / "report" / f"{SLUG}-quality-gaps.csv").open(newline="") as stream:
        first = next(csv.DictReader(stream))
    assert (first["team"], first["category"], first["agreement"]) == ("Blue", "spam", "0.5")
    with (tmp_path / "report" / f"{SLUG}-quality-trends.csv").open(newline="") as stream:
        assert [row["judgments"] for row in csv.DictReader(stream)] == ["16", "16"]


def test_report_writes_parquet_and_xlsx_to_the_default_directory(seeded_database: str, tmp_path: Path) -> None:
    _report("--format", "parquet", "--since", "2026-11-09")
    trends = pq.read_table(tmp_path / f"{SLUG}-quality" / f"{SLUG}-quality-trends.parquet")
    assert trends.column("period_start").to_pylist() == ["2026-11-09"]
    _report("--format", "xlsx", "--out", "sheets", "--group-by", "market")
    with zipfile.ZipFile(tmp_path / "sheets" / f"{SLUG}-quality-teams.xlsx") as workbook:
        assert "xl/worksheets/sheet1.xml" in workbook.namelist()


def test_report_refuses_bad_options(seeded_database: str) -> None:
    for args, message in (
        (["--format", "pdf"], "--format is one of csv, parquet, xlsx"),
        (["--group-by", "planet"], "group_by is one of"),
        (["--since", "someday"], "judged_from is a date"),
    ):
        result = runner.invoke(cli, ["quality", "report", "--project", SLUG, *args])
        assert result.exit_code == 1
        assert message in result.output
    missing = runner.invoke(cli, ["quality", "report", "--project", "nope"])
    assert missing.exit_code == 1 and "nope" in missing.output


@pytest.fixture
def seeded(session: Session, people: People, operator: Principal) -> SeededGaps:
    return seed_gaps_project(session, people, operator)


def test_api_returns_the_headline_figures(
    client: TestClient, people: People, seeded: SeededGaps, session: Session
) -> None:
    response = client.get(
        f"/api/v1/projects/{SLUG}/quality", params={"resamples": 200}, headers=people.headers(seeded.lead_email)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    query = quality_reports.report_query(resamples=200)
    expected = quality_summary.quality_summary(session, principal=seeded.lead, slug=SLUG, query=query)
    assert (body["judgments"], body["items"], body["annotators"]) == (32, 8, 4)
    assert body["agreement"][0]["alpha"] == pytest.approx(expected.agreement[0].alpha)
    assert body["agreement"][0]["alpha_low"] == pytest.approx(expected.agreement[0].alpha_low)
    assert [team["team"] for team in body["teams"]] == ["Blue", "Red"]
    assert [card["name"] for card in body["flagged"]] == [card.name for card in expected.flagged]
    assert (
        client.get(f"/api/v1/projects/{SLUG}/quality", headers=people.headers(seeded.emails["ben"])).status_code == 403
    )
