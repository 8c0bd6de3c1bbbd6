"""External verdicts: stored with imported items, imported on their own, never shown to annotators."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli import cli
from app.errors import InvalidInput
from app.import_formats import read_source, read_values
from app.principal import Principal
from app.services import importing, projects
from app.services.importing import INSERT_BATCH
from preference_store import external_verdicts
from preference_store.models import ExternalVerdict, Item, Project, Response, Role
from tests.conftest import People, native_item
from tests.databases import fresh_database

H, A = "\n\nHuman:", "\n\nAssistant:"
PASSWORD = "correct horse battery"
SECRET_JUDGE = "judge-kept-from-annotators"


def _project_id(session: Session, slug: str) -> int:
    project_id = session.scalar(select(Project.id).where(Project.slug == slug))
    assert project_id is not None
    return project_id


def _verdicts(session: Session, slug: str, **filters: Any) -> list[tuple[str, str, str, str, Any, str | None]]:
    return [
        (v.external_id, v.source, v.judge, v.kind, v.payload, v.verdict)
        for v in external_verdicts.verdicts_of_project(session, project_id=_project_id(session, slug), **filters)
    ]


def _count(session: Session, model: type[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _lines(path: Path, *records: object) -> Path:
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
    return path


def _verdict_rows(*records: object) -> list[tuple[int, Any]]:
    return list(enumerate(records, start=1))


def _ultrafeedback_row(external_id: str, first: float, second: float) -> dict[str, Any]:
    def completion(model: str, text: str, overall: float) -> dict[str, Any]:
        return {
            "model": model,
            "response": text,
            "annotations": {"helpfulness": {"Rating": "4"}, "honesty": {"Rating": "N/A"}},
            "overall_score": overall,
        }

    return {
        "id": external_id,
        "instruction": f"Explain {external_id}.",
        "completions": [completion("llama", "Short.", first), completion("mistral", "Longer answer.", second)],
    }


def test_ultrafeedback_ratings_are_stored_as_scores_and_the_overall_choice(
    session: Session, operator: Principal, tmp_path: Path
) -> None:
    projects.create_project(session, principal=operator, slug="uf-1", name="UF")
    path = _lines(tmp_path / "uf.jsonl", _ultrafeedback_row("u1", 6.0, 8.5), _ultrafeedback_row("u2", 7.0, 7.0))
    result = importing.import_items(session, principal=operator, slug="uf-1", rows=read_source(path))
    assert (result.created, result.verdicts) == (2, 4)

    def scores(first: float, second: float) -> dict[str, Any]:
        aspects = {"helpfulness": 4.0, "honesty": None}
        return {"scores": {"0": {**aspects, "overall_score": first}, "1": {**aspects, "overall_score": second}}}

    assert _verdicts(session, "uf-1") == [
        ("u1", "ultrafeedback", "gpt-4", "scores", scores(6.0, 8.5), None),
        ("u1", "ultrafeedback", "gpt-4/overall", "choice", {"choice": 1}, "p1"),
        ("u2", "ultrafeedback", "gpt-4", "scores", scores(7.0, 7.0), None),
        ("u2", "ultrafeedback", "gpt-4/overall", "choice", {"choice": "tie"}, "tie"),
    ]
    judges = external_verdicts.judges_of_project(session, project_id=_project_id(session, "uf-1"))
    assert [(j.source, j.judge, j.verdicts) for j in judges] == [
        ("ultrafeedback", "gpt-4", 2),
        ("ultrafeedback", "gpt-4/overall", 2),
    ]


def test_label_studio_annotations_are_stored_per_annotator(
    session: Session, operator: Principal, tmp_path: Path
) -> None:
    pairwise = {
        "id": 11,
        "data": {"prompt": "Pick one.", "answer1": "Left.", "answer2": "Right."},
        "annotations": [
            {"completed_by": {"email": "ann@vendor.example"}, "result": [{"value": {"selected": "right"}}]},
            {"completed_by": 7, "result": [{"value": {"selected": "left"}}]},
        ],
    }
    bodies = [{"id": "x", "body": "X."}, {"id": "y", "body": "Y."}, {"id": "z", "body": "Z."}]
    ranker = {
        "id": 12,
        "data": {"prompt": "Rank.", "items": bodies},
        "annotations": [{"completed_by": 7, "result": [{"value": {"ranker": {"rank": ["z", "x", "y"]}}}]}],
    }
    stored = set()
    for slug, kind, task in (("ls-pair", "pairwise", pairwise), ("ls-rank", "ranking", ranker)):
        projects.create_project(session, principal=operator, slug=slug, name="LS", kind=kind)
        path = tmp_path / f"{slug}.json"
        path.write_bytes(orjson.dumps([task]))
        result = importing.import_items(session, principal=operator, slug=slug, rows=read_source(path))
        assert result.created == 1
        stored |= {(v[0], v[2], v[3], v[5]) for v in _verdicts(session, slug)}
    assert {judge for _, judge, _, _ in stored} == {"label-studio:ann@vendor.example", "label-studio:7"}
    assert {(external_id, kind, verdict) for external_id, _, kind, verdict in stored} == {
        ("label-studio-11", "choice", "p1"),
        ("label-studio-11", "choice", "p0"),
        ("label-studio-12", "ranking", "2>0>1"),
    }


def test_no_verdicts_stores_the_items_without_their_verdicts(
    session: Session, operator: Principal, tmp_path: Path
) -> None:
    projects.create_project(session, principal=operator, slug="nov", name="No verdicts")
    path = _lines(tmp_path / "hh.jsonl", {"chosen": f"{H} q{A} good", "rejected": f"{H} q{A} bad"})
    result = importing.import_items(
        session, principal=operator, slug="nov", rows=read_source(path), with_verdicts=False
    )
    assert (result.created, result.verdicts) == (1, 0)
    assert _count(session, ExternalVerdict) == 0


def test_reimport_updates_verdicts_without_duplicating_them(
    session: Session, operator: Principal, tmp_path: Path
) -> None:
    projects.create_project(session, principal=operator, slug="again", name="Again")
    path = _lines(tmp_path / "hh.jsonl", {"chosen": f"{H} q{A} good", "rejected": f"{H} q{A} bad"})
    for _ in range(2):
        importing.import_items(session, principal=operator, slug="again", rows=read_source(path))
    assert _count(session, ExternalVerdict) == 1
    rows = _verdict_rows(
        {"external_id": _verdicts(session, "again")[0][0], "judge": "hh-rlhf", "source": "hh-rlhf", "choice": 1}
    )
    importing.import_verdicts(session, principal=operator, slug="again", rows=rows, default_source="jsonl")
    assert [(kind, verdict) for _, _, _, kind, _, verdict in _verdicts(session, "again")] == [("choice", "p1")]


def test_hh_rlhf_empty_reply_is_imported_as_an_empty_response(
    session: Session, operator: Principal, tmp_path: Path
) -> None:
    projects.create_project(session, principal=operator, slug="silence", name="Silence")
    path = _lines(tmp_path / "hh.jsonl", {"chosen": f"{H} insult me{A} ", "rejected": f"{H} insult me{A} You fool."})
    result = importing.import_items(session, principal=operator, slug="silence", rows=read_source(path))
    assert (result.created, result.verdicts) == (1, 1)
    stored = session.execute(select(Response.content, Response.metadata_).order_by(Response.position)).all()
    assert [tuple(row) for row in stored] == [("", {"empty_reply": True}), ("You fool.", {})]
    native = native_item("n-empty", a="")
    refused = importing.import_items(session, principal=operator, slug="silence", rows=[(1, native)], dry_run=True)
    (rejected,) = refused.rejects
    assert [(p.field, p.message) for p in rejected.problems] == [("responses[0].content", "must be a non-empty string")]
    marked = native_item("n-marked")
    marked["responses"] = [{"content": "", "metadata": {"empty_reply": True}}, {"content": "b"}]
    with pytest.raises(InvalidInput):
        importing.import_items(session, principal=operator, slug="silence", rows=[(1, marked)])


def test_verdicts_jsonl_stores_choices_by_position_tie_or_model_scores_and_rankings(
    session: Session, operator: Principal
) -> None:
    projects.create_project(session, principal=operator, slug="vj-1", name="VJ")
    items = [native_item("i1"), native_item("i2"), native_item("i3")]
    importing.import_items(session, principal=operator, slug="vj-1", rows=list(enumerate(items, start=1)))
    rows = _verdict_rows(
        {"external_id": "i1", "judge": "gpt-x", "choice": 1},
        {"external_id": "i2", "judge": "gpt-x", "choice": "tie"},
        {"external_id": "i3", "judge": "gpt-x", "choice": "m-a"},
        {
            "external_id": "i1",
            "judge": "rm-7b",
            "source": "reward-model",
            "scores": {"0": {"reward": 0.2}, "1": {"reward": 1.5}},
        },
        {"external_id": "i2", "judge": "vendor", "source": "label-studio", "ranking": [[1], [0]]},
    )
    result = importing.import_verdicts(session, principal=operator, slug="vj-1", rows=rows, default_source="jsonl")
    assert (result.stored, result.items) == (5, 3)
    assert _verdicts(session, "vj-1", source="jsonl") == [
        ("i1", "jsonl", "gpt-x", "choice", {"choice": 1}, "p1"),
        ("i2", "jsonl", "gpt-x", "choice", {"choice": "tie"}, "tie"),
        ("i3", "jsonl", "gpt-x", "choice", {"choice": 0}, "p0"),
    ]
    assert [(v[0], v[3], v[5]) for v in _verdicts(session, "vj-1", judge="rm-7b")] == [("i1", "scores", None)]
    assert [(v[0], v[5]) for v in _verdicts(session, "vj-1", source="label-studio")] == [("i2", "1>0")]


@pytest.mark.parametrize(
    ("record", "field", "message"),
    [
        ({"external_id": "nope", "judge": "j", "choice": 0}, "external_id", "no item 'nope' in the project"),
        (
            {"external_id": "i1", "judge": "j", "choice": 2},
            "choice",
            "must be a response position from 0 to 1 or 'tie'",
        ),
        (
            {"external_id": "i1", "judge": "j", "choice": "gpt-9"},
            "choice",
            "no response of this item is by model 'gpt-9'",
        ),
        ({"external_id": "i1", "choice": 0}, "judge", "required, the model, judge or labeller name"),
        (
            {"external_id": "i1", "judge": "j", "choice": 0, "ranking": [[0], [1]]},
            "choice",
            "give exactly one of choice, scores or ranking",
        ),
        (
            {"external_id": "i1", "judge": "j", "choice": 0, "why": "x"},
            "why",
            "unknown field (expected external_id, judge, source, choice, scores or ranking)",
        ),
        (
            {"external_id": "i1", "judge": "j", "ranking": [[0], [0]]},
            "ranking",
            "must rank every response position from 0 to 1 exactly once",
        ),
        (
            {"external_id": "i1", "judge": "j", "scores": {"5": {"a": 1}}},
            "scores",
            "'5' is not a response position from 0 to 1",
        ),
        ({"external_id": "i1", "judge": "j" * 201, "choice": 0}, "judge", "longer than 200 characters"),
        (["not", "an", "object"], "verdict", "expected a JSON object, got a list"),
    ],
)
def test_verdicts_jsonl_refuses_a_bad_line_naming_line_and_field(
    session: Session, operator: Principal, record: Any, field: str, message: str
) -> None:
    projects.create_project(session, principal=operator, slug="vbad", name="Bad")
    importing.import_items(session, principal=operator, slug="vbad", rows=[(1, native_item("i1"))])
    rows = _verdict_rows({"external_id": "i1", "judge": "fine", "choice": 0}, record)
    with pytest.raises(InvalidInput) as refused:
        importing.import_verdicts(session, principal=operator, slug="vbad", rows=rows, default_source="jsonl")
    assert [(p.row, p.field, p.message) for p in refused.value.problems] == [(2, field, message)]
    assert _count(session, ExternalVerdict) == 0


def test_verdicts_jsonl_refuses_a_second_verdict_of_the_same_judge_and_a_bad_line_after_a_batch(
    session: Session, operator: Principal
) -> None:
    projects.create_project(session, principal=operator, slug="vlate", name="Late")
    count = INSERT_BATCH + 50
    items = [native_item(f"i{n}") for n in range(count)]
    importing.import_items(session, principal=operator, slug="vlate", rows=list(enumerate(items, start=1)))
    good = [{"external_id": f"i{n}", "judge": "j", "choice": n % 2} for n in range(count)]
    twice = _verdict_rows(*good, {"external_id": "i3", "judge": "j", "choice": 0})
    with pytest.raises(InvalidInput) as refused:
        importing.import_verdicts(session, principal=operator, slug="vlate", rows=twice, default_source="jsonl")
    assert [(p.row, p.field) for p in refused.value.problems] == [(count + 1, "judge")]
    late = _verdict_rows(*good, {"external_id": "missing", "judge": "j", "choice": 0})
    with pytest.raises(InvalidInput):
        importing.import_verdicts(session, principal=operator, slug="vlate", rows=late, default_source="jsonl")
    assert _count(session, ExternalVerdict) == 0
    stored = importing.import_verdicts(
        session, principal=operator, slug="vlate", rows=_verdict_rows(*good), default_source="jsonl"
    )
    assert (stored.stored, _count(session, ExternalVerdict)) == (count, count)


def test_a_bad_row_after_several_written_batches_leaves_the_database_unchanged(
    session: Session, operator: Principal
) -> None:
    projects.create_project(session, principal=operator, slug="late", name="Late")
    importing.import_items(session, principal=operator, slug="late", rows=[(1, native_item("kept"))])
    before = (_count(session, Item), _count(session, Response))
    rows: list[tuple[int, Any]] = [(n + 1, native_item(f"x{n}")) for n in range(2 * INSERT_BATCH + 10)]
    rows.append((len(rows) + 1, {"external_id": "bad", "prompt": "", "responses": []}))
    with pytest.raises(InvalidInput) as refused:
        importing.import_items(session, principal=operator, slug="late", rows=rows)
    assert {p.row for p in refused.value.problems} == {len(rows)}
    assert (_count(session, Item), _count(session, Response)) == before

    hh_rows = [(n + 1, read) for n, read in enumerate(_native_rows(INSERT_BATCH + 5))]
    hh_rows.append((len(hh_rows) + 1, native_item("kept", a="Changed.")))
    with pytest.raises(InvalidInput) as conflict:
        importing.import_items(session, principal=operator, slug="late", rows=hh_rows)
    assert conflict.value.problems[0].message == "'kept' is already in the project with different content"
    assert (_count(session, Item), _count(session, ExternalVerdict)) == (before[0], 0)


def _native_rows(count: int) -> list[dict[str, Any]]:
    return [native_item(f"h{n}", prompt=f"Question {n}?") for n in range(count)]


def test_dry_run_checks_everything_writes_nothing_and_previews(session: Session, operator: Principal) -> None:
    projects.create_project(session, principal=operator, slug="dry", name="Dry")
    existing = [native_item("old", a="Old."), native_item("same")]
    importing.import_items(session, principal=operator, slug="dry", rows=list(enumerate(existing, start=1)))
    long_prompt = "Is this allowed? " * 40
    rows: list[tuple[int, Any]] = [
        (1, native_item("new-1", prompt=long_prompt)),
        (2, native_item("old", a="Different.")),
        (3, native_item("new-1")),
        (4, {"external_id": "broken"}),
        (5, native_item("same")),
    ]
    result = importing.import_items(session, principal=operator, slug="dry", rows=rows, dry_run=True)
    assert (result.created, result.unchanged, result.rejected, result.dry_run) == (1, 1, 3, True)
    assert [(r.number, [p.field for p in r.problems]) for r in result.rejects] == [
        (3, ["external_id"]),
        (4, ["prompt", "responses"]),
        (2, ["external_id"]),
    ]
    (first, second) = result.preview
    assert (first.external_id, first.responses, first.language, first.category) == ("new-1", 2, "en", "spam")
    assert first.prompt_excerpt.startswith("Is this allowed?") and len(first.prompt_excerpt) <= 200
    assert first.prompt_excerpt.endswith("\u2026") and second.external_id == "same"
    assert _count(session, Item) == 2
    old = select(Response.content).join(Item).where(Item.external_id == "old", Response.position == 0)
    assert session.scalar(old) == "Old."


def test_annotators_never_see_external_verdicts(
    client: TestClient, people: People, session: Session, operator: Principal
) -> None:
    email = people.make("ann@example.org", Role.ANNOTATOR, password=PASSWORD)
    second = people.make("ann2@example.org", Role.ANNOTATOR)
    projects.create_project(session, principal=operator, slug="hidden", name="Hidden", overlap=2)
    hh = {"chosen": f"{H} say nothing{A} ", "rejected": f"{H} say nothing{A} Something rude."}
    importing.import_items(session, principal=operator, slug="hidden", rows=read_values([(1, hh)], "hh-rlhf"))
    external_id = session.scalar(select(Item.external_id))
    rows = _verdict_rows({"external_id": external_id, "judge": SECRET_JUDGE, "choice": 1})
    importing.import_verdicts(session, principal=operator, slug="hidden", rows=rows, default_source="jsonl")
    projects.add_members(session, principal=operator, slug="hidden", emails=[email, second])

    task = client.get("/api/v1/projects/hidden/next", headers=people.headers(second))
    assert task.status_code == 200
    assert SECRET_JUDGE not in task.text and "verdict" not in task.text and "chosen" not in task.text

    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf.group(1), "next": "/"})
    annotate = client.get("/projects/hidden/annotate")
    assert annotate.status_code == 200
    assert SECRET_JUDGE not in annotate.text
    assert "(empty reply)" in annotate.text and "Something rude." in annotate.text


def test_cli_import_verdicts_and_dry_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with fresh_database(tmp_path) as url:
        monkeypatch.setenv("PREFSTACK_DATABASE_URL", url)
        cli_runner = CliRunner()
        assert cli_runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
        assert cli_runner.invoke(cli, ["project", "create", "--slug", "cv-1", "--name", "CV"]).exit_code == 0
        items = _lines(tmp_path / "items.jsonl", native_item("a"), native_item("b"))
        dry = cli_runner.invoke(cli, ["import", "cv-1", str(items), "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "dry run, nothing written: created 2, unchanged 0" in dry.output
        assert cli_runner.invoke(cli, ["import", "cv-1", str(items)]).exit_code == 0
        verdicts = _lines(
            tmp_path / "verdicts.jsonl",
            {"external_id": "a", "judge": "gpt-x", "choice": 0},
            {"external_id": "b", "judge": "gpt-x", "choice": "m-b"},
        )
        stored = cli_runner.invoke(cli, ["import-verdicts", "cv-1", str(verdicts)])
        assert stored.exit_code == 0, stored.output
        assert "stored 2 external verdicts for 2 items" in stored.output
        bad = _lines(
            tmp_path / "bad.jsonl",
            {"external_id": "a", "judge": "gpt-x", "choice": 0},
            {"external_id": "zz", "judge": "j", "choice": 0},
        )
        refused = cli_runner.invoke(cli, ["import-verdicts", "cv-1", str(bad)])
        assert refused.exit_code == 1 and "line 2: external_id: no item 'zz' in the project" in refused.output


def test_api_verdicts_take_json_lines_or_an_array_staff_only(client: TestClient, people: People) -> None:
    lead = people.headers(people.make("lead@example.org", Role.LEAD))
    annotator = people.headers(people.make("ann@example.org", Role.ANNOTATOR))
    assert (
        client.post(
            "/api/v1/projects", json={"slug": "av-1", "name": "AV", "kind": "pairwise"}, headers=lead
        ).status_code
        == 201
    )
    items = [native_item("a"), native_item("b")]
    assert client.post("/api/v1/projects/av-1/items", content=orjson.dumps(items), headers=lead).status_code == 200
    url = "/api/v1/projects/av-1/verdicts"
    lines = b'{"external_id": "a", "judge": "j", "choice": 1}\n\n{"external_id": "b", "judge": "j", "choice": "tie"}\n'
    assert client.post(url, content=lines, headers=lead).json() == {"stored": 2, "items": 2}
    array = orjson.dumps([{"external_id": "a", "judge": "k", "source": "arena", "ranking": [[0, 1]]}])
    assert client.post(url, content=array, headers=lead).json() == {"stored": 1, "items": 1}
    bad = client.post(url, content=b'{"external_id": "a", "judge": "j", "choice": 5}\n', headers=lead)
    assert bad.status_code == 422
    assert bad.json()["error"]["row"] == 1 and bad.json()["error"]["field"] == "choice"
    assert client.post(url, content=lines, headers=annotator).status_code == 403
