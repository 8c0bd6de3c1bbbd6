"""Importing every format through the service, the CLI and the API: stored items, idempotency, refusals."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli import cli
from app.errors import InvalidInput
from app.import_formats import read_source
from app.principal import Principal
from app.services import importing, projects
from app.services.importing import ImportResult, OnError, Rejected
from preference_store import external_verdicts
from preference_store.models import Item, Project, Response, Role
from tests.app.import_formats.shared_data import (
    HH_RLHF_EMPTY_CHOSEN_LINES,
    HH_RLHF_FILE,
    HH_RLHF_ROWS,
    shared_data_file,
)
from tests.conftest import People, native_item
from tests.databases import fresh_database

H, A = "\n\nHuman:", "\n\nAssistant:"
USER_Q = [{"role": "user", "content": "Is this spam?"}]
Stored = dict[str, tuple[list[dict[str, Any]], list[tuple[str, str]], dict[str, Any]]]


def _stored(session: Session, slug: str) -> Stored:
    """Every item of the project: external_id -> (messages, [(model, content)] by position, metadata)."""
    items = session.execute(
        select(Item.id, Item.external_id, Item.messages, Item.metadata_).join(Project).where(Project.slug == slug)
    ).all()
    responses: dict[int, list[tuple[str, str]]] = {}
    for item_id, model, content in session.execute(
        select(Response.item_id, Response.model_name, Response.content)
        .where(Response.item_id.in_([item.id for item in items]))
        .order_by(Response.item_id, Response.position)
    ):
        responses.setdefault(item_id, []).append((model, content))
    return {item.external_id: (item.messages, responses[item.id], item.metadata_) for item in items}


def _import(
    session: Session, operator: Principal, slug: str, path: Path, fmt: str | None = None, **options: Any
) -> ImportResult:
    return importing.import_items(session, principal=operator, slug=slug, rows=read_source(path, fmt), **options)


def _lines(path: Path, *records: object) -> Path:
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
    return path


def _native_jsonl(tmp: Path) -> Path:
    return _lines(
        tmp / "items.jsonl",
        native_item("n1", prompt="Is this spam?"),
        native_item("n2", prompt="Is this spam?", a="Sure.", b="Never."),
    )


def _csv_wide(tmp: Path) -> Path:
    path = tmp / "items.csv"
    path.write_text(
        "id,prompt,response_a,model_a,response_b,model_b,language\nc1,Is this spam?,Yes.,m-a,No.,m-b,en\n",
        encoding="utf-8",
    )
    return path


def _csv_long(tmp: Path) -> Path:
    path = tmp / "ranked.csv"
    path.write_text(
        "external_id,prompt,response,model\nr1,Is this spam?,Yes.,m1\nr1,,No.,m2\nr1,,Maybe.,m3\n", encoding="utf-8"
    )
    return path


def _hh_parquet(tmp: Path) -> Path:
    path = tmp / "pairs.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"chosen": f"{H} Is this spam?{A} Yes.", "rejected": f"{H} Is this spam?{A} No."}]), path
    )
    return path


def _ultrafeedback_dataset(tmp: Path) -> Path:
    completions = [
        {"model": model, "response": text, "annotations": {"helpfulness": {"Rating": rating, "Rationale": "-"}}}
        for model, text, rating in (("m1", "Yes.", "5"), ("m2", "No.", "2"), ("m3", "Maybe.", "N/A"))
    ]
    datasets.Dataset.from_list(
        [{"instruction": "Is this spam?", "completions": completions, "source": "sharegpt"}]
    ).save_to_disk(str(tmp / "ultra"))
    return tmp / "ultra"


def _openai_jsonl(tmp: Path) -> Path:
    return _lines(
        tmp / "chat.jsonl",
        {
            "id": "o1",
            "model": "gpt",
            "messages": USER_Q,
            "choices": [
                {"message": {"role": "assistant", "content": "Yes."}},
                {"message": {"role": "assistant", "content": "No."}},
            ],
        },
    )


def _label_studio(tmp: Path) -> Path:
    path = tmp / "project-3-export.json"
    task = {
        "id": 9,
        "data": {"prompt": "Is this spam?", "answer1": "Yes.", "answer2": "No."},
        "annotations": [{"completed_by": 2, "result": [{"value": {"selected": "left"}}]}],
    }
    path.write_text(json.dumps([task]), encoding="utf-8")
    return path


SAMPLES = [
    # (writer, project kind, expected stored items, external verdicts read)
    (
        _native_jsonl,
        "pairwise",
        {"n1": [("m-a", "Yes."), ("m-b", "No.")], "n2": [("m-a", "Sure."), ("m-b", "Never.")]},
        0,
    ),
    (_csv_wide, "pairwise", {"c1": [("m-a", "Yes."), ("m-b", "No.")]}, 0),
    (_csv_long, "ranking", {"r1": [("m1", "Yes."), ("m2", "No."), ("m3", "Maybe.")]}, 0),
    (_hh_parquet, "pairwise", {None: [("", "Yes."), ("", "No.")]}, 1),
    (_ultrafeedback_dataset, "ranking", {None: [("m1", "Yes."), ("m2", "No."), ("m3", "Maybe.")]}, 1),
    (_openai_jsonl, "pairwise", {"o1": [("gpt", "Yes."), ("gpt", "No.")]}, 0),
    (_label_studio, "pairwise", {"label-studio-9": [("", "Yes."), ("", "No.")]}, 1),
]


@pytest.mark.parametrize(
    ("write", "kind", "expected", "verdicts"), SAMPLES, ids=lambda value: getattr(value, "__name__", None)
)
def test_each_format_stores_its_items_and_reimports_unchanged(
    session: Session,
    operator: Principal,
    tmp_path: Path,
    write: Any,
    kind: str,
    expected: dict[str | None, Any],
    verdicts: int,
) -> None:
    slug = f"fmt-{kind}"
    projects.create_project(session, principal=operator, slug=slug, name=slug, kind=kind)
    path = write(tmp_path)
    first = _import(session, operator, slug, path)
    assert (first.created, first.unchanged, first.rejected, first.verdicts) == (len(expected), 0, 0, verdicts)
    stored = _stored(session, slug)
    assert len(stored) == len(expected)
    for external_id, responses in expected.items():
        key = external_id if external_id is not None else next(iter(stored))
        messages, stored_responses, _ = stored[key]
        assert messages == USER_Q
        assert stored_responses == responses
    again = _import(session, operator, slug, path)
    assert (again.created, again.unchanged) == (0, len(expected))
    assert _stored(session, slug) == stored


def _hh_records() -> list[dict[str, str]]:
    with gzip.open(shared_data_file(HH_RLHF_FILE), "rt", encoding="utf-8") as stream:
        return [json.loads(line) for line in stream]


def test_the_hh_rlhf_test_split_in_full(session: Session, operator: Principal) -> None:
    path = shared_data_file(HH_RLHF_FILE)
    projects.create_project(session, principal=operator, slug="hh-full", name="HH")
    result = _import(session, operator, "hh-full", path)
    assert (result.created, result.unchanged, result.rejected, result.verdicts) == (HH_RLHF_ROWS, 0, 0, HH_RLHF_ROWS)
    records = _hh_records()
    stored = _stored(session, "hh-full")
    assert len(stored) == HH_RLHF_ROWS
    rebuilt: set[tuple[str, str]] = set()
    empty = 0
    for messages, responses, metadata in stored.values():
        assert messages[-1]["role"] == "user" and metadata == {"source": "hh-rlhf"}
        turns = "".join(f"{H if m['role'] == 'user' else A} {m['content']}" for m in messages)
        (_, chosen), (_, rejected) = responses
        assert rejected.strip() and chosen != rejected
        if not chosen:
            empty += 1
            continue
        rebuilt.add((f"{turns}{A} {chosen}", f"{turns}{A} {rejected}"))
    assert empty == len(HH_RLHF_EMPTY_CHOSEN_LINES)
    kept = {(r["chosen"], r["rejected"]) for n, r in enumerate(records, start=1) if n not in HH_RLHF_EMPTY_CHOSEN_LINES}
    assert rebuilt == kept

    again = _import(session, operator, "hh-full", path)
    assert (again.created, again.unchanged, again.rejected, again.verdicts) == (0, HH_RLHF_ROWS, 0, HH_RLHF_ROWS)
    project_id = session.scalar(select(Project.id).where(Project.slug == "hh-full"))
    assert project_id is not None
    verdicts = list(external_verdicts.verdicts_of_project(session, project_id=project_id))
    assert len(verdicts) == HH_RLHF_ROWS
    assert {(v.source, v.judge, v.kind, v.verdict) for v in verdicts} == {("hh-rlhf", "hh-rlhf", "choice", "p0")}


BROKEN: list[tuple[str, bytes, str]] = [
    ("bad_json", b'{"external_id": "x", "prompt": \n', "line 1: not valid JSON"),
    (
        "missing_field",
        json.dumps({"external_id": "x", "prompt": "q"}).encode(),
        "line 1: responses: required, a list of {model, content}",
    ),
    (
        "wrong_types",
        json.dumps({"external_id": ["x"], "prompt": 3, "responses": "ab"}).encode(),
        "line 1: external_id: required, a non-empty string",
    ),
    (
        "empty_response",
        json.dumps(native_item("x", b="  ")).encode(),
        "line 1: responses[1].content: must be a non-empty string",
    ),
    (
        "duplicate_ids",
        (json.dumps(native_item("x")) + "\n" + json.dumps(native_item("x"))).encode(),
        "line 2: external_id: duplicate of line 1",
    ),
    (
        "ten_mb_field",
        json.dumps(native_item("x", a="y" * 10_000_000)).encode(),
        "line 1: responses[0].content: longer than 200000 characters",
    ),
    ("invalid_utf8", b'{"external_id": "x\xc3\x28", "prompt": "q"}', "line 1: not valid UTF-8 (byte 19 of the line)"),
    (
        "nul_in_response",
        json.dumps(native_item("x", b="before\u0000after")).encode(),
        "line 1: responses[1].content: contains a NUL character (\\u0000), which a database cannot store",
    ),
    (
        "nul_in_prompt",
        json.dumps(native_item("x", prompt="q\u0000")).encode(),
        "line 1: prompt: contains a NUL character",
    ),
    (
        "nul_in_metadata_key",
        json.dumps({**native_item("x"), "metadata": {"tags": [{"a\u0000": 1}]}}).encode(),
        "line 1: metadata: contains a NUL character",
    ),
    (
        "nul_in_external_id",
        json.dumps(native_item("x\u0000")).encode(),
        "line 1: external_id: contains a NUL character",
    ),
]


@pytest.mark.parametrize(("name", "content", "message"), BROKEN, ids=[case[0] for case in BROKEN])
def test_broken_files_are_refused_precisely_and_change_nothing(
    session: Session, operator: Principal, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    projects.create_project(session, principal=operator, slug="broken", name="Broken")
    importing.import_items(session, principal=operator, slug="broken", rows=[(1, native_item("kept"))])
    before = _stored(session, "broken")
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(content + b"\n")
    with pytest.raises(InvalidInput) as refused:
        _import(session, operator, "broken", path, "native")
    assert refused.value.code == "invalid_import"
    assert str(refused.value.problems[0]).startswith(message), refused.value.problems
    assert _stored(session, "broken") == before


BROKEN_CSV: list[tuple[str, bytes, str]] = [
    (
        "ten_mb_cell",
        b"id,prompt,response_a,response_b\nx,q," + b"y" * 10_000_000 + b",b\n",
        "line 2: responses[0].content: longer than 200000 characters",
    ),
    ("invalid_utf8", b"id,prompt,response_a,response_b\nx,q,\xff,b\n", "line 2: not valid UTF-8 (byte 5 of a line)"),
    ("empty_response", b"id,prompt,response_a,response_b\nx,q,a,\n", "line 2: response_b: must be a non-empty text"),
    (
        "duplicate_ids",
        b"id,prompt,response_a,response_b\nx,q,a,b\nx,q,a,c\n",
        "line 3: external_id: duplicate of line 2",
    ),
]


@pytest.mark.parametrize(("name", "content", "message"), BROKEN_CSV, ids=[case[0] for case in BROKEN_CSV])
def test_broken_csv_files_are_refused_precisely_and_change_nothing(
    session: Session, operator: Principal, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    projects.create_project(session, principal=operator, slug="broken-csv", name="Broken")
    path = tmp_path / f"{name}.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidInput) as refused:
        _import(session, operator, "broken-csv", path)
    assert [str(problem) for problem in refused.value.problems] == [message]
    assert _stored(session, "broken-csv") == {}


def test_skip_stores_the_good_rows_and_rejects_the_bad_with_reasons(
    session: Session, operator: Principal, tmp_path: Path
) -> None:
    projects.create_project(session, principal=operator, slug="skip", name="Skip")
    importing.import_items(session, principal=operator, slug="skip", rows=[(1, native_item("taken", a="Old."))])
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        b"\n".join(
            [
                json.dumps(native_item("good-1")).encode(),
                b"{broken",
                json.dumps(native_item("good-1")).encode(),
                json.dumps(native_item("empty", a="")).encode(),
                json.dumps(native_item("taken", a="New.")).encode(),
                json.dumps(native_item("good-2")).encode(),
            ]
        )
    )
    rejects: list[Rejected] = []
    result = _import(session, operator, "skip", path, on_error=OnError.SKIP, reject=rejects.append)
    assert (result.created, result.unchanged, result.rejected) == (2, 0, 4)
    assert set(_stored(session, "skip")) == {"taken", "good-1", "good-2"}
    assert [(r.number, r.as_json()["reasons"]) for r in rejects] == [
        (2, ["not valid JSON: unexpected character, expected a string key at column 2"]),
        (3, ["external_id: duplicate of line 1"]),
        (4, ["responses[0].content: must be a non-empty string"]),
        (5, ["external_id: 'taken' is already in the project with different content"]),
    ]
    assert rejects[0].record == "{broken"
    assert rejects[2].record == native_item("empty", a="")
    assert rejects[3].record["responses"][0]["content"] == "New."


runner = CliRunner()


@pytest.fixture
def cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with fresh_database(tmp_path) as url:
        monkeypatch.setenv("PREFSTACK_DATABASE_URL", url)
        monkeypatch.chdir(tmp_path)
        assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
        assert runner.invoke(cli, ["project", "create", "--slug", "cli-hh", "--name", "HH"]).exit_code == 0
        yield url


def test_cli_imports_with_skip_and_writes_the_rejects_file(cli_database: str, tmp_path: Path) -> None:
    path = _lines(
        tmp_path / "pairs.jsonl",
        {"chosen": f"{H} q{A} good", "rejected": f"{H} q{A} bad"},
        {"chosen": f"{H} q2{A} ", "rejected": f"{H} q2{A}"},
    )
    rejects = tmp_path / "rejects.jsonl"
    args = ["import", "cli-hh", str(path), "--on-error", "skip", "--rejects", str(rejects)]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "reading" in first.output and "as jsonl:hh-rlhf" in first.output
    assert f"created 1, unchanged 0, rejected 1 (written to {rejects}); 1 external verdicts stored" in first.output
    (line,) = [orjson.loads(text) for text in rejects.read_bytes().splitlines()]
    assert line["line"] == 2 and line["reasons"] == ["chosen: both final replies are empty"]
    assert line["record"]["chosen"].endswith("q2\n\nAssistant: ")
    again = runner.invoke(cli, args)
    assert "created 0, unchanged 1, rejected 1" in again.output

    refused = runner.invoke(cli, ["import", "cli-hh", str(path)])
    assert refused.exit_code == 1 and "line 2: chosen: both final replies are empty" in refused.output
    assert "nothing was imported" in refused.output
    no_rejects = runner.invoke(cli, ["import", "cli-hh", str(path), "--on-error", "skip"])
    assert no_rejects.exit_code == 1 and "--rejects: --on-error skip needs the file" in no_rejects.output
    unknown = runner.invoke(cli, ["import", "cli-hh", str(path), "--format", "yaml"])
    assert unknown.exit_code == 1 and "unknown format 'yaml'" in unknown.output


def test_api_takes_a_format_for_json_records(client: TestClient, people: People, session: Session) -> None:
    lead = people.headers(people.make("lead@example.org", Role.LEAD))
    created = client.post("/api/v1/projects", json={"slug": "api-hh", "name": "HH", "kind": "pairwise"}, headers=lead)
    assert created.status_code == 201, created.text
    pairs = [{"chosen": f"{H} q{A} good", "rejected": f"{H} q{A} bad"}]
    url = "/api/v1/projects/api-hh/items"
    assert client.post(f"{url}?format=hh-rlhf", content=orjson.dumps(pairs), headers=lead).json() == {
        "created": 1,
        "unchanged": 0,
    }
    assert client.post(f"{url}?format=auto", content=orjson.dumps(pairs), headers=lead).json() == {
        "created": 0,
        "unchanged": 1,
    }
    as_native = client.post(url, content=orjson.dumps(pairs), headers=lead)
    assert as_native.status_code == 422 and as_native.json()["error"]["problems"][0]["field"] == "chosen"
    unknown = client.post(f"{url}?format=csv", content=b"[]", headers=lead)
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_format"
    assert session.scalar(select(func.count()).select_from(Item)) == 1
