"""Exports end to end: projects built and judged through the JSON API, written by the service, read by `datasets`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import huggingface_hub.constants
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.principal import Principal
from app.services import exporting
from app.services.export_labels import Aggregation
from app.services.exporting import ExportRequest
from export.aggregate import Abstain
from export.formats import RowFormat
from export.manifest import MANIFEST_NAME, verify
from export.pairs import RankingPairs
from export.split import group_key
from export.writers import ExportFormat
from preference_store.judgments import JudgmentFilter
from preference_store.models import Role
from tests.conftest import People

Headers = dict[str, str]

LEAD = "ex-lead@example.org"
ANNOTATORS = ("ex-ann1@example.org", "ex-ann2@example.org", "ex-ann3@example.org")
TEAMS = ("Vendor North", "Vendor North", "Vendor South")
VERSION = "0.1.0-test"

# Pairwise: p0..p5 the "good" answer wins by all three (strengths much, clearly, clearly), p6 both bad,
# p7 tie; the first annotator rewrites p0's better answer; everybody flags p2's good answer as spam.
PAIRWISE_ITEMS = 8
RUBRIC = [
    {"name": "helpfulness", "scale": {"min": 1, "max": 5}},
    {"name": "safe", "scale": {"binary": True}},
]


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Hub access for `datasets`."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)


def _staff(people: People) -> Headers:
    people.make(LEAD, Role.LEAD)
    for email, team in zip(ANNOTATORS, TEAMS, strict=True):
        people.make(email, Role.ANNOTATOR, team=team)
    return people.headers(LEAD)


def _create(client: TestClient, lead: Headers, body: dict[str, Any], items: list[dict[str, Any]]) -> None:
    created = client.post("/api/v1/projects", json={"overlap": len(ANNOTATORS), **body}, headers=lead)
    assert created.status_code == 201, created.text
    slug = body["slug"]
    members = client.post(f"/api/v1/projects/{slug}/members", json={"emails": list(ANNOTATORS)}, headers=lead)
    assert members.status_code == 200, members.text
    imported = client.post(f"/api/v1/projects/{slug}/items", content=orjson.dumps(items), headers=lead)
    assert imported.status_code == 200, imported.text


def _judge_all(client: TestClient, people: People, slug: str, annotator: int, verdict: Any) -> int:
    """Judge every item an annotator is served; `verdict(annotator, task)` gives the body."""
    headers = people.headers(ANNOTATORS[annotator])
    judged = 0
    while True:
        task = client.get(f"/api/v1/projects/{slug}/next", headers=headers)
        if task.status_code == 204:
            return judged
        assert task.status_code == 200, task.text
        body = verdict(annotator, task.json())
        done = client.post(f"/api/v1/assignments/{task.json()['assignment_id']}/judgment", json=body, headers=headers)
        assert done.status_code == 201, done.text
        judged += 1


def _label(task: dict[str, Any], word: str) -> str:
    label: str = next(r["label"] for r in task["item"]["responses"] if word in r["content"])
    return label


def _pairwise_verdict(annotator: int, task: dict[str, Any]) -> dict[str, Any]:
    number = int(task["item"]["external_id"][1:])
    if number == 6:
        return {"choice": "both_bad"}
    if number == 7:
        return {"choice": "tie"}
    good = _label(task, "good")
    body: dict[str, Any] = {"choice": good, "strength": "much" if annotator == 0 else "clearly"}
    if number == 0 and annotator == 0:
        body["rewrite"] = "p0 rewritten answer"
    if number == 2:
        body["labels"] = {good: ["spam"]}
    return body


def _pairwise_project(client: TestClient, people: People, lead: Headers, *, slug: str = "ex-pair") -> None:
    items = [
        {
            "external_id": f"p{n}",
            "prompt": f"Question p{n}?",
            "responses": [{"model": "m0", "content": f"p{n} good answer"}, {"model": "m1", "content": f"p{n} weak"}],
            "metadata": {"language": "th" if n < 4 else "en"},
        }
        for n in range(PAIRWISE_ITEMS)
    ]
    options = {"strength": True, "rewrite": True, "taxonomy": [{"name": "spam"}]}
    _create(client, lead, {"slug": slug, "name": "Pairs", "kind": "pairwise", **options}, items)
    for annotator in range(2):
        assert _judge_all(client, people, slug, annotator, _pairwise_verdict) == PAIRWISE_ITEMS
    # The third annotator judges under guidelines version 2.
    published = client.put(f"/api/v1/projects/{slug}/guidelines", json={"text": "Version two."}, headers=lead)
    assert published.status_code == 200, published.text
    assert _judge_all(client, people, slug, 2, _pairwise_verdict) == PAIRWISE_ITEMS


def _ranking_project(client: TestClient, people: People, lead: Headers) -> None:
    items = [
        {
            "external_id": f"k{n}",
            "prompt": f"Rank answers to k{n}?",
            "responses": [{"model": f"m{i}", "content": f"k{n} {word} answer"} for i, word in enumerate(WORDS)],
        }
        for n in range(3)
    ]
    _create(client, lead, {"slug": "ex-rank", "name": "Ranks", "kind": "ranking"}, items)
    for annotator in range(3):
        assert _judge_all(client, people, "ex-rank", annotator, _ranking_verdict) == 3


WORDS = ("worst", "best", "middle")


def _ranking_verdict(annotator: int, task: dict[str, Any]) -> dict[str, Any]:
    return {"ranking": [[_label(task, "best")], [_label(task, "middle")], [_label(task, "worst")]]}


def _rubric_project(client: TestClient, people: People, lead: Headers) -> None:
    items = [
        {
            "external_id": f"r{n}",
            "prompt": f"Score answers to r{n}.",
            "responses": [{"model": "m0", "content": f"r{n} fine answer"}, {"model": "m1", "content": f"r{n} poor"}],
            "metadata": {"language": "id"},
        }
        for n in range(2)
    ]
    _create(client, lead, {"slug": "ex-rubric", "name": "Rubric", "kind": "rubric", "rubric": RUBRIC}, items)

    def verdict(annotator: int, task: dict[str, Any]) -> dict[str, Any]:
        fine, poor = _label(task, "fine"), _label(task, "poor")
        return {"scores": {fine: {"helpfulness": 5, "safe": True}, poor: {"helpfulness": 1, "safe": False}}}

    for annotator in range(3):
        assert _judge_all(client, people, "ex-rubric", annotator, verdict) == 2


def _export(session: Session, operator: Principal, slug: str, out: Path, **request: Any) -> exporting.ExportSummary:
    return exporting.export_dataset(
        session,
        principal=operator,
        slug=slug,
        request=ExportRequest(**request),
        out=out,
        prefstack_version=VERSION,
    )


def _load(directory: Path, fmt: ExportFormat, cache: Path) -> datasets.DatasetDict:
    if fmt is ExportFormat.HF:
        loaded = datasets.load_from_disk(str(directory))
        assert isinstance(loaded, datasets.DatasetDict)
        return loaded
    manifest = orjson.loads((directory / MANIFEST_NAME).read_bytes())
    files: dict[str, list[str]] = {}
    for entry in manifest["files"]:
        if entry["data"]:
            files.setdefault(entry["split"], []).append(str(directory / entry["path"]))
    builder = "parquet" if fmt is ExportFormat.PARQUET else "json"
    loaded = datasets.load_dataset(builder, data_files=files, cache_dir=str(cache))
    assert isinstance(loaded, datasets.DatasetDict)
    return loaded


# kind -> (project, expected train rows, TRL columns)
KINDS: dict[str, tuple[str, int, list[str]]] = {
    "dpo": ("ex-pair", 7, ["prompt", "chosen", "rejected"]),
    "reward": ("ex-pair", 7, ["prompt", "chosen", "rejected", "margin"]),
    "kto": ("ex-pair", 14, ["prompt", "completion", "label"]),
    "sft": ("ex-rank", 3, ["messages"]),
    "rubric": ("ex-rubric", 4, ["prompt", "completion", "scores", "overall", "n_judgments"]),
}
FORMATS = [
    (ExportFormat.JSONL, False),
    (ExportFormat.JSONL, True),
    (ExportFormat.PARQUET, False),
    (ExportFormat.HF, False),
]


def _build(client: TestClient, people: People, slug: str) -> None:
    lead = _staff(people)
    {"ex-pair": _pairwise_project, "ex-rank": _ranking_project, "ex-rubric": _rubric_project}[slug](
        client, people, lead
    )


@pytest.mark.usefixtures("offline")
@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_in_each_format_loads_with_datasets(
    kind: str, client: TestClient, people: People, session: Session, operator: Principal, tmp_path: Path
) -> None:
    slug, expected, columns = KINDS[kind]
    _build(client, people, slug)
    for fmt, gzip in FORMATS:
        out = tmp_path / f"{kind}-{fmt.value}-{gzip}"
        summary = _export(session, operator, slug, out, kind=kind, fmt=fmt, gzip=gzip)
        assert summary.split_rows == {"train": expected}
        names = {path.name for path in out.iterdir()}
        assert {"README.md", MANIFEST_NAME} <= names
        if fmt is ExportFormat.JSONL:
            assert ("train.jsonl.gz" if gzip else "train.jsonl") in names
        assert verify(out).ok
        loaded = _load(out, fmt, tmp_path / "cache")
        assert list(loaded) == ["train"]
        assert loaded["train"].num_rows == expected
        assert loaded["train"].column_names == columns
        card = (out / "README.md").read_text(encoding="utf-8")
        assert f"| train | {expected} |" in card
        assert "3 annotators in 2 teams" in card
        assert "@example.org" not in card and "Vendor" not in card
        manifest = orjson.loads((out / MANIFEST_NAME).read_bytes())
        assert manifest["kind"] == kind and manifest["parameters"]["project"] == slug
        assert manifest["prefstack_version"] == VERSION


def test_rows_follow_the_aggregation_options(
    client: TestClient, people: People, session: Session, operator: Principal, tmp_path: Path
) -> None:
    lead = _staff(people)
    _pairwise_project(client, people, lead)
    _ranking_project(client, people, lead)

    def rows(slug: str, **request: Any) -> list[dict[str, Any]]:
        project = exporting.authorize_export(session, principal=operator, slug=slug)
        resolved = exporting.resolve_request(session, project=project, request=ExportRequest(**request))
        return list(exporting.rows_for(session, project=project, request=resolved))

    reward = rows("ex-pair", kind="reward")
    assert sorted(row["margin"] for row in reward) == [0.0] + [pytest.approx(4 / 3)] * 6
    assert len(rows("ex-pair", kind="dpo", rewrites=False)) == 6
    standard = rows("ex-pair", kind="dpo", row_format=RowFormat.STANDARD)
    assert {"prompt": "Question p0?", "chosen": "p0 rewritten answer", "rejected": "p0 good answer"} in standard
    kto = rows("ex-pair", kind="kto", provenance=True)
    assert sum(row["label"] for row in kto) == 5  # p2's winner is flagged as spam by everyone
    assert {row["source"] for row in kto if not row["label"]} == {"pairwise", "both_bad", "policy"}
    assert len(rows("ex-pair", kind="kto", both_bad=Abstain.DROP)) == 12  # p6's votes abstain: no negatives
    assert len(rows("ex-rank", kind="dpo")) == 9
    best = rows("ex-rank", kind="dpo", ranking_pairs=RankingPairs.BEST_VS_REST)
    assert len(best) == 6 and all("best" in row["chosen"][0]["content"] for row in best)
    assert len(rows("ex-pair", kind="dpo", min_agreement=1.0, min_judgments=4)) == 0


@pytest.mark.usefixtures("offline")
@pytest.mark.parametrize(("fmt", "gzip"), FORMATS)
def test_same_parameters_give_byte_identical_exports(
    fmt: ExportFormat,
    gzip: bool,
    client: TestClient,
    people: People,
    session: Session,
    operator: Principal,
    tmp_path: Path,
) -> None:
    _build(client, people, "ex-pair")
    for kind in ("dpo", "kto"):
        first, second = tmp_path / f"{kind}-1", tmp_path / f"{kind}-2"
        for out in (first, second):
            _export(session, operator, "ex-pair", out, kind=kind, fmt=fmt, gzip=gzip, test_size=0.3, seed=4)
        files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
        assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
        for relative in files:
            if relative.name == MANIFEST_NAME:
                continue
            assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative
        manifests = [orjson.loads((out / MANIFEST_NAME).read_bytes()) for out in (first, second)]
        for manifest in manifests:
            assert manifest.pop("created_at")
        assert manifests[0] == manifests[1]


def test_no_prompt_is_in_two_splits(
    client: TestClient, people: People, session: Session, operator: Principal, tmp_path: Path
) -> None:
    lead = _staff(people)
    prompts = ["Tell me a joke.", "  tell me a JOKE. ", "What is love?", "what  is love?", "Summarise this.", "Hi!"]
    items = [
        {
            "external_id": f"s{n}",
            "prompt": prompts[n % len(prompts)] if n % 5 else f"Unique question {n}?",
            "responses": [{"model": "m0", "content": f"s{n} good answer"}, {"model": "m1", "content": f"s{n} weak"}],
        }
        for n in range(60)
    ]
    _create(client, lead, {"slug": "ex-shared", "name": "Shared", "kind": "pairwise", "overlap": 1}, items)
    assert _judge_all(client, people, "ex-shared", 0, lambda _, task: {"choice": _label(task, "good")}) == 60
    out = tmp_path / "shared"
    summary = _export(
        session, operator, "ex-shared", out, kind="dpo", test_size=0.3, validation_size=0.2, seed=1, provenance=True
    )
    assert summary.rows == 60
    groups: dict[str, set[str]] = {}
    for split in ("train", "validation", "test"):
        for line in (out / f"{split}.jsonl").read_bytes().splitlines():
            groups.setdefault(split, set()).add(group_key(orjson.loads(line)))
    assert sum(1 for keys in groups.values() if keys) >= 2
    assert not groups["train"] & groups["test"]
    assert not groups["train"] & groups["validation"]
    assert not groups["validation"] & groups["test"]
    assert "tell me a joke." in set().union(*groups.values())


def test_filters_change_the_rows(
    client: TestClient, people: People, session: Session, operator: Principal, tmp_path: Path
) -> None:
    lead = _staff(people)
    _pairwise_project(client, people, lead)

    def export(name: str, **request: Any) -> list[dict[str, Any]]:
        out = tmp_path / name
        _export(session, operator, "ex-pair", out, kind="dpo", provenance=True, **request)
        return [orjson.loads(line) for line in (out / "train.jsonl").read_bytes().splitlines()]

    everything = export("all")
    assert len(everything) == 7
    card = (tmp_path / "all" / "README.md").read_text(encoding="utf-8")
    assert "| ex-pair | 1 to 2 |" in card
    thai = export("th", where=JudgmentFilter(languages=("th",)))
    assert sorted(row["external_id"] for row in thai) == ["p0", "p0", "p1", "p2", "p3"]
    assert "| th | 5 |" in (tmp_path / "th" / "README.md").read_text(encoding="utf-8")
    second = export("v2", where=JudgmentFilter(guidelines_versions=(2,)))
    assert len(second) == 6 and {row["votes"] for row in second} == {1}  # no rewrite: its annotator used v1
    first = export("v1", where=JudgmentFilter(guidelines_versions=(1,)))
    assert len(first) == 7 and {row["votes"] for row in first} == {2}
    south = export("south", teams=("Vendor South",))
    assert {row["votes"] for row in south} == {1}
    manifest = orjson.loads((tmp_path / "south" / MANIFEST_NAME).read_bytes())
    assert manifest["parameters"]["team_ids"] and "Vendor South" not in str(manifest)


def test_bad_requests_are_refused_by_field(
    client: TestClient, people: People, session: Session, operator: Principal, tmp_path: Path
) -> None:
    _build(client, people, "ex-pair")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kind": "ppo"}, "kind"),
        ({"test_size": 1.0}, "test_size"),
        ({"fmt": ExportFormat.PARQUET, "gzip": True}, "gzip"),
        ({"kind": "rubric"}, "kind"),
        ({"teams": ("Nobody",)}, "team"),
    ]
    for request, field in cases:
        with pytest.raises(InvalidInput) as refused:
            _export(session, operator, "ex-pair", tmp_path / "bad", **request)
        assert refused.value.field == field
    assert not (tmp_path / "bad").exists()


def test_api_streams_every_kind_and_one_split(client: TestClient, people: People) -> None:
    _build(client, people, "ex-pair")
    lead = people.headers(LEAD)

    def lines(url: str) -> list[dict[str, Any]]:
        response = client.get(url, headers=lead)
        assert response.status_code == 200, response.text
        return [orjson.loads(line) for line in response.content.splitlines()]

    counts = {kind: len(lines(f"/api/v1/projects/ex-pair/export/{kind}")) for kind in ("dpo", "reward", "kto", "sft")}
    assert counts == {"dpo": 7, "reward": 7, "kto": 14, "sft": 1}
    kto = lines("/api/v1/projects/ex-pair/export/kto?seed=3")
    assert kto == lines("/api/v1/projects/ex-pair/export/kto?seed=3")
    assert set(kto[0]) == {"prompt", "completion", "label"}
    base = "/api/v1/projects/ex-pair/export/dpo?test_size=0.4&seed=2"
    train, test = lines(base + "&split=train"), lines(base + "&split=test")
    assert len(train) + len(test) == 7
    assert not {group_key(row) for row in train} & {group_key(row) for row in test}
    thai = lines("/api/v1/projects/ex-pair/export/dpo?language=th&rewrites=false&standard=true")
    assert sorted(row["prompt"] for row in thai) == [f"Question p{n}?" for n in range(4)]
    refused = client.get("/api/v1/projects/ex-pair/export/dpo?split=test", headers=lead)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "split"
    refused = client.get("/api/v1/projects/ex-pair/export/dpo?min_agreement=2", headers=lead)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "min_agreement"
    refused = client.get("/api/v1/projects/ex-pair/export/dpo?guidelines_version=15771264155", headers=lead)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "guidelines_version"


def _contrarian_project(client: TestClient, people: People, lead: Headers) -> None:
    """Annotators 0 and 1 pick the good answer, annotator 2 always the weak one; 1 skips d10 and d11."""
    items = [
        {
            "external_id": f"d{n}",
            "prompt": f"Question d{n}?",
            "responses": [
                {"model": "m0", "content": f"d{n} good answer" if n % 2 else f"d{n} weak"},
                {"model": "m1", "content": f"d{n} weak" if n % 2 else f"d{n} good answer"},
            ],
        }
        for n in range(12)
    ]
    _create(client, lead, {"slug": "ex-ds", "name": "Contrarian", "kind": "pairwise"}, items)
    for annotator in range(3):
        headers = people.headers(ANNOTATORS[annotator])
        while (task := client.get("/api/v1/projects/ex-ds/next", headers=headers)).status_code == 200:
            assignment = task.json()["assignment_id"]
            if annotator == 1 and task.json()["item"]["external_id"] in ("d10", "d11"):
                skipped = client.post(f"/api/v1/assignments/{assignment}/skip", json={"reason": "x"}, headers=headers)
                assert skipped.status_code == 204, skipped.text
                continue
            body = {"choice": _label(task.json(), "weak" if annotator == 2 else "good")}
            done = client.post(f"/api/v1/assignments/{assignment}/judgment", json=body, headers=headers)
            assert done.status_code == 201, done.text


def test_dawid_skene_decides_the_split_items_the_majority_leaves_out(
    client: TestClient, people: People, session: Session, operator: Principal, tmp_path: Path
) -> None:
    lead = _staff(people)
    _contrarian_project(client, people, lead)
    _rubric_project(client, people, lead)
    project = exporting.authorize_export(session, principal=operator, slug="ex-ds")

    def rows(**request: Any) -> list[dict[str, Any]]:
        resolved = exporting.resolve_request(session, project=project, request=ExportRequest(**request))
        return list(exporting.rows_for(session, project=project, request=resolved))

    majority = rows(kind="dpo", provenance=True)
    assert sorted(row["external_id"] for row in majority) == sorted(f"d{n}" for n in range(10))
    fitted = rows(kind="dpo", provenance=True, aggregation=Aggregation.DAWID_SKENE)
    assert len(fitted) == 12
    assert all("good" in row["chosen"][0]["content"] for row in fitted)
    split_items = [row for row in fitted if row["external_id"] in ("d10", "d11")]
    assert all(row["agreement"] > 0.9 for row in split_items)
    assert len(rows(kind="dpo", aggregation=Aggregation.DAWID_SKENE, min_judgments=3)) == 10

    summary = _export(session, operator, "ex-ds", tmp_path / "ds", kind="kto", aggregation=Aggregation.DAWID_SKENE)
    assert summary.rows == 24
    manifest = orjson.loads((tmp_path / "ds" / MANIFEST_NAME).read_bytes())
    assert manifest["parameters"]["aggregation"] == "dawid-skene"
    with pytest.raises(InvalidInput) as refused:
        _export(session, operator, "ex-rubric", tmp_path / "no", kind="kto", aggregation=Aggregation.DAWID_SKENE)
    assert refused.value.field == "aggregation"
