"""The `prefstack` command line against a fresh database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from tests.conftest import native_item
from tests.databases import fresh_database

runner = CliRunner()


@pytest.fixture
def cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with fresh_database(tmp_path) as url:
        monkeypatch.setenv("PREFSTACK_DATABASE_URL", url)
        monkeypatch.chdir(tmp_path)
        result = runner.invoke(cli, ["db", "upgrade"])
        assert result.exit_code == 0, result.output
        yield url


def _ok(args: list[str]) -> str:
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_create_import_export_round_trip(cli_database: str, tmp_path: Path) -> None:
    _ok(
        [
            "user",
            "create",
            "--email",
            "Lead@Example.org",
            "--name",
            "Lead",
            "--role",
            "lead",
            "--password",
            "longenough",
        ]
    )
    _ok(
        [
            "user",
            "create",
            "--email",
            "a@example.org",
            "--name",
            "A",
            "--team",
            "Vendor TH",
            "--languages",
            "th,en",
            "--password",
            "longenough",
        ]
    )
    _ok(["project", "create", "--slug", "cli-proj", "--name", "CLI", "--overlap", "1", "--member", "a@example.org"])
    token = _ok(["token", "create", "--email", "a@example.org"]).strip()
    assert token.startswith("pst_") and "\n" not in token
    items = tmp_path / "items.jsonl"
    items.write_text("\n".join(json.dumps(native_item(f"c{n}")) for n in range(3)) + "\n", encoding="utf-8")
    assert "created 3, unchanged 0" in _ok(["import", str(items), "--project", "cli-proj"])
    assert "created 0, unchanged 3" in _ok(["import", str(items), "--project", "cli-proj"])
    out = tmp_path / "dpo"
    summary = _ok(["export", "dpo", "--project", "cli-proj", "--out", str(out), "--format", "parquet"])
    assert "wrote 0 dpo rows (train 0, test 0) from 0 items" in summary
    assert {path.name for path in out.iterdir()} == {"train.parquet", "test.parquet", "README.md", "export.json"}
    assert f"{out}: every file matches export.json" in _ok(["export", "verify", str(out)])
    (out / "train.parquet").write_bytes(b"tampered")
    tampered = runner.invoke(cli, ["export", "verify", str(out)])
    assert tampered.exit_code == 1 and "changed: train.parquet" in tampered.output

    again = runner.invoke(cli, ["export", "dpo", "--project", "cli-proj", "--out", str(out)])
    assert again.exit_code == 1 and "--out: " in again.output and "already exists" in again.output
    bad_size = runner.invoke(cli, ["export", "dpo", "--project", "cli-proj", "--out", "x", "--test-size", "1.5"])
    assert bad_size.exit_code == 1 and "--test-size: test_size must be at least 0 and below 1." in bad_size.output
    bad_ties = runner.invoke(cli, ["export", "dpo", "--project", "cli-proj", "--out", "x", "--ties", "maybe"])
    assert bad_ties.exit_code == 1 and "--ties: 'maybe' is not one of keep, drop" in bad_ties.output
    bad_kind = runner.invoke(cli, ["export", "ppo", "--project", "cli-proj", "--out", "x"])
    assert bad_kind.exit_code == 1 and "unknown export kind 'ppo'" in bad_kind.output


def test_bad_file_fails_with_the_line_and_field(cli_database: str, tmp_path: Path) -> None:
    _ok(["project", "create", "--slug", "cli-bad", "--name", "Bad"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps(native_item("ok")) + "\n{not json\n" + json.dumps({"external_id": "x"}) + "\n", encoding="utf-8"
    )
    result = runner.invoke(cli, ["import", str(bad), "--project", "cli-bad"])
    assert result.exit_code == 1
    assert "line 2: not valid JSON" in result.output
    assert "line 3: prompt:" in result.output
    assert "nothing was imported" in result.output


def test_errors_are_one_line_and_nonzero(cli_database: str) -> None:
    result = runner.invoke(cli, ["token", "create", "--email", "nobody@example.org"])
    assert result.exit_code == 1
    assert result.output.strip() == "error: No user with email nobody@example.org."


def test_demo_seeds_the_project_and_logins(cli_database: str) -> None:
    output = _ok(["demo", "--no-serve"])
    assert "livestream-safety" in output
    assert "lead@demo.prefstack" in output and "password:" in output
    again = _ok(["demo", "--no-serve"])
    assert "(0 new items)" in again


def test_rubric_project_from_an_options_file_and_a_new_guidelines_version(cli_database: str, tmp_path: Path) -> None:
    options = tmp_path / "options.json"
    options.write_text(
        json.dumps({"rubric": [{"name": "helpfulness", "scale": {"min": 1, "max": 5}}], "daily_cap": 50}),
        encoding="utf-8",
    )
    _ok(
        ["project", "create", "--slug", "rubric-cli", "--name", "Rubric", "--kind", "rubric", "--options", str(options)]
    )
    guidelines = tmp_path / "v2.md"
    guidelines.write_text("# Score every response\n", encoding="utf-8")
    assert "guidelines version 2" in _ok(["project", "guidelines", "rubric-cli", str(guidelines), "--note", "clearer"])


def test_invalid_options_file_names_the_field(cli_database: str, tmp_path: Path) -> None:
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"rubric": [{"name": "x", "scale": {"min": 5, "max": 1}}]}), encoding="utf-8")
    result = runner.invoke(
        cli,
        ["project", "create", "--slug", "bad-rubric", "--name", "Bad", "--kind", "rubric", "--options", str(options)],
    )
    assert result.exit_code != 0
    assert "rubric.0.scale" in result.output
    assert "min < max" in result.output
