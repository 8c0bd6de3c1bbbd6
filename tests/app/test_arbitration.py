"""Arbitration: agreement per kind, cases opening on the last judgment, adaptive overlap, gold, verdicts, exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli import cli
from app.principal import Principal
from app.services import arbitration, exporting
from app.services.export_jobs import ExportOptions, request_from_parameters
from app.services.exporting import ExportRequest
from export.aggregate import ArbitrationMode
from preference_store.models import ArbitrationCase, GoldAnswer, Item, ItemQueue, Judgment, ProjectKind, Role
from tests.app.test_cli import cli_database  # noqa: F401 (a fixture)
from tests.conftest import People

Headers = dict[str, str]
LEAD = "arb-lead@example.org"
ANNOTATORS = ("arb-ann1@example.org", "arb-ann2@example.org", "arb-ann3@example.org", "arb-ann4@example.org")


# ---- agreement, pure ----


def test_pairwise_agreement_is_the_modal_choice_share_strength_aside() -> None:
    measured = arbitration.measure(ProjectKind.PAIRWISE, ["p0", "p0", "p1"], [{}, {}, {}])
    assert measured.share == pytest.approx(2 / 3)
    assert measured.majority == "p0"
    assert arbitration.measure(ProjectKind.PAIRWISE, ["p0", "tie"], [{}, {}]).share == 0.5


def test_ranking_agreement_is_on_the_top_choice() -> None:
    measured = arbitration.measure(ProjectKind.RANKING, ["1>0>2", "1>2>0", "0>1>2"], [{}, {}, {}])
    assert measured.share == pytest.approx(2 / 3)
    assert arbitration.decision_key(ProjectKind.RANKING, "all_bad:1>0") == "all_bad"


def test_rubric_agreement_uses_the_overall_choice_or_else_the_criteria() -> None:
    with_choice = arbitration.measure(ProjectKind.RUBRIC, ["p1|s:aa", "p1|s:bb"], [{}, {}])
    assert with_choice.share == 1.0
    payloads = [
        {"scores": {"0": {"help": 5, "safe": True}}},
        {"scores": {"0": {"help": 2, "safe": True}}},
    ]
    # help: 1 of 2 agree (0.5), safe: 2 of 2 (1.0).
    assert arbitration.measure(ProjectKind.RUBRIC, ["s:1", "s:2"], payloads).share == pytest.approx(0.75)


# ---- a pairwise project judged through the API ----


def _staff(people: People) -> Headers:
    people.make(LEAD, Role.LEAD)
    for email in ANNOTATORS:
        people.make(email, Role.ANNOTATOR)
    return people.headers(LEAD)


def _project(
    client: TestClient,
    lead: Headers,
    *,
    slug: str,
    items: int,
    overlap: int = 2,
    kind: str = "pairwise",
    **options: Any,
) -> None:
    body: dict[str, Any] = {"slug": slug, "name": slug, "kind": kind, "overlap": overlap, **options}
    assert client.post("/api/v1/projects", json=body, headers=lead).status_code == 201
    added = client.post(f"/api/v1/projects/{slug}/members", json={"emails": list(ANNOTATORS)}, headers=lead)
    assert added.status_code == 200, added.text
    count = 3 if kind == "ranking" else 2
    rows = [
        {
            "external_id": f"i{n}",
            "prompt": f"Question {n}?",
            "responses": [{"model": f"m{r}", "content": f"answer {r} to {n}"} for r in range(count)],
            "metadata": {"language": "th" if n % 2 else "en", "market": "TH", "category": "spam"},
        }
        for n in range(items)
    ]
    imported = client.post(f"/api/v1/projects/{slug}/items", content=orjson.dumps(rows), headers=lead)
    assert imported.status_code == 200, imported.text


def _label(task: dict[str, Any], position: int) -> str:
    return str(next(r["label"] for r in task["item"]["responses"] if r["content"].startswith(f"answer {position} ")))


def _judge(client: TestClient, people: People, slug: str, annotator: int, body_of: Any) -> list[str]:
    """Judge everything the annotator is served; returns the external ids judged."""
    headers = people.headers(ANNOTATORS[annotator])
    judged: list[str] = []
    while True:
        task = client.get(f"/api/v1/projects/{slug}/next", headers=headers)
        if task.status_code == 204:
            return judged
        assert task.status_code == 200, task.text
        body = body_of(annotator, task.json())
        done = client.post(f"/api/v1/assignments/{task.json()['assignment_id']}/judgment", json=body, headers=headers)
        assert done.status_code == 201, done.text
        judged.append(task.json()["item"]["external_id"])


def _prefer(position_of: Any) -> Any:
    """Pairwise bodies: annotator `a` prefers the response `position_of(a, n)` of item i<n> (or ties on None)."""

    def body(annotator: int, task: dict[str, Any]) -> dict[str, Any]:
        number = int(task["item"]["external_id"][1:])
        position = position_of(annotator, number)
        return {"choice": "tie"} if position is None else {"choice": _label(task, position)}

    return body


def _cases(session: Session, slug: str) -> dict[str, ArbitrationCase]:
    rows = session.execute(
        select(Item.external_id, ArbitrationCase).join(Item, Item.id == ArbitrationCase.item_id)
    ).all()
    return {external_id: case for external_id, case in rows if external_id.startswith("i")}


def test_a_case_opens_when_the_last_judgment_disagrees(client: TestClient, people: People, session: Session) -> None:
    lead = _staff(people)
    _project(client, lead, slug="arb-open", items=3)
    # i0: both prefer 0; i1: 0 vs 1; i2: 0 vs tie.
    position = _prefer(lambda a, n: 0 if a == 0 or n == 0 else (1 if n == 1 else None))
    _judge(client, people, "arb-open", 0, position)
    assert _cases(session, "arb-open") == {}, "no case before the last slot fills"
    _judge(client, people, "arb-open", 1, position)
    cases = _cases(session, "arb-open")
    assert sorted(cases) == ["i1", "i2"]
    assert cases["i1"].reason == "low_agreement" and cases["i1"].state == "open"
    assert cases["i1"].agreement == 0.5 and cases["i1"].judgments == 2 and cases["i1"].extended_by == 0


def test_adaptive_overlap_adds_annotators_once_then_opens_a_case(
    client: TestClient, people: People, session: Session
) -> None:
    lead = _staff(people)
    _project(client, lead, slug="arb-adapt", items=2, arbitration={"extra_annotators": 1, "max_overlap": 3})
    # i0: 0, 1, then 0 (agreed 2 of 3); i1: 0, 1, then tie (a third each: a case).
    answers = {0: 0, 1: 1}
    position = _prefer(lambda a, n: answers.get(a, 0 if n == 0 else None))
    _judge(client, people, "arb-adapt", 0, position)
    _judge(client, people, "arb-adapt", 1, position)
    assert _cases(session, "arb-adapt") == {}
    slots = session.execute(
        select(Item.external_id, ItemQueue.open_slots, ItemQueue.is_reopened).join(
            ItemQueue, ItemQueue.item_id == Item.id
        )
    ).all()
    assert {row[0]: (row[1], row[2]) for row in slots if row[0].startswith("i")} == {"i0": (1, True), "i1": (1, True)}
    assert sorted(_judge(client, people, "arb-adapt", 2, position)) == ["i0", "i1"]
    cases = _cases(session, "arb-adapt")
    assert list(cases) == ["i1"]
    assert cases["i1"].judgments == 3 and cases["i1"].extended_by == 1
    assert _judge(client, people, "arb-adapt", 3, position) == [], "extended once only"


def test_scan_opens_cases_for_items_judged_before_and_against_gold(
    client: TestClient, people: People, session: Session, operator: Principal
) -> None:
    lead = _staff(people)
    _project(client, lead, slug="arb-scan", items=3, arbitration={"enabled": False})
    position = _prefer(lambda a, n: 0 if a == 0 or n != 1 else 1)
    _judge(client, people, "arb-scan", 0, position)
    _judge(client, people, "arb-scan", 1, position)
    assert _cases(session, "arb-scan") == {}
    # i2 was judged 0 by both, but its gold answer says 1.
    item_id, project_id = session.execute(select(Item.id, Item.project_id).where(Item.external_id == "i2")).one()
    session.add(GoldAnswer(item_id=item_id, project_id=project_id, verdict="p1", accepted_verdicts=[], payload={}))
    session.commit()
    summary = arbitration.scan_project(session, principal=operator, slug="arb-scan")
    assert (summary.items_checked, summary.opened, summary.extended) == (3, 2, 0)
    cases = _cases(session, "arb-scan")
    assert {name: case.reason for name, case in cases.items()} == {"i1": "low_agreement", "i2": "against_gold"}
    assert arbitration.scan_project(session, principal=operator, slug="arb-scan").opened == 0


def test_leads_open_cases_by_hand_and_annotators_get_403(client: TestClient, people: People) -> None:
    lead = _staff(people)
    _project(client, lead, slug="arb-manual", items=1)
    annotator = people.headers(ANNOTATORS[0])
    for method, url in (
        ("POST", "/api/v1/projects/arb-manual/items/i0/arbitration"),
        ("GET", "/api/v1/projects/arb-manual/arbitration"),
    ):
        assert client.request(method, url, headers=annotator).status_code == 403
    opened = client.post("/api/v1/projects/arb-manual/items/i0/arbitration", headers=lead)
    assert opened.status_code == 201 and opened.json()["created"] is True
    again = client.post("/api/v1/projects/arb-manual/items/i0/arbitration", headers=lead)
    assert again.json() == {"case_id": opened.json()["case_id"], "created": False}
    queue = client.get("/api/v1/projects/arb-manual/arbitration", headers=lead).json()
    assert [case["reason"] for case in queue["cases"]] == ["manual"]
    assert queue["counts"] == {"open": 1, "resolved": 0, "dismissed": 0}
    case_id = opened.json()["case_id"]
    assert client.get(f"/api/v1/projects/arb-manual/arbitration/{case_id}", headers=annotator).status_code == 403
    refused = client.post(
        f"/api/v1/projects/arb-manual/arbitration/{case_id}/verdict",
        json={"choice": "A", "rationale": "x"},
        headers=annotator,
    )
    assert refused.status_code == 403
    missing = client.post("/api/v1/projects/arb-manual/items/nope/arbitration", headers=lead)
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "external_id"


def _open_pairwise_case(client: TestClient, people: People, slug: str, items: int = 1) -> tuple[Headers, list[int]]:
    lead = _staff(people)
    _project(client, lead, slug=slug, items=items, strength=True)

    def body(annotator: int, task: dict[str, Any]) -> dict[str, Any]:
        return {"choice": _label(task, annotator), "strength": "clearly"}

    _judge(client, people, slug, 0, body)
    _judge(client, people, slug, 1, body)
    queue = client.get(f"/api/v1/projects/{slug}/arbitration", headers=lead).json()
    return lead, [case["id"] for case in queue["cases"]]


def test_verdicts_are_checked_field_by_field(client: TestClient, people: People) -> None:
    lead, (case_id, *_) = _open_pairwise_case(client, people, "arb-check")
    url = f"/api/v1/projects/arb-check/arbitration/{case_id}/verdict"
    cases = [
        ({"choice": "A", "rationale": "  "}, "rationale"),
        ({"rationale": "no choice"}, "choice"),
        ({"choice": "tie", "strength": "much", "rationale": "r"}, "strength"),
        ({"ranking": [["A"], ["B"]], "choice": "A", "rationale": "r"}, "ranking"),
    ]
    for body, field in cases:
        refused = client.post(url, json=body, headers=lead)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["field"] == field, body


def test_a_verdict_resolves_the_case_leaves_votes_and_labels_the_export(
    client: TestClient, people: People, session: Session, operator: Principal, tmp_path: Path
) -> None:
    lead, case_ids = _open_pairwise_case(client, people, "arb-export", items=3)
    assert len(case_ids) == 3
    votes_before = session.execute(select(Judgment.id, Judgment.verdict, Judgment.payload).order_by(Judgment.id)).all()
    first, second = case_ids[0], case_ids[1]
    done = client.post(
        f"/api/v1/projects/arb-export/arbitration/{first}/verdict",
        json={"choice": "B", "strength": "much", "rationale": "B answers the question."},
        headers=lead,
    )
    assert done.status_code == 200, done.text
    assert done.json()["case"]["state"] == "resolved" and done.json()["case"]["verdict"] == "p1"
    assert done.json()["next_case_id"] == second
    dismissed = client.post(f"/api/v1/projects/arb-export/arbitration/{second}/dismiss", json={}, headers=lead)
    assert dismissed.json()["case"]["state"] == "dismissed"
    assert session.execute(select(Judgment.id, Judgment.verdict, Judgment.payload).order_by(Judgment.id)).all() == (
        votes_before
    )
    detail = client.get(f"/api/v1/projects/arb-export/arbitration/{first}", headers=lead).json()
    assert len(detail["judgments"]) == 2
    assert detail["judgments"][0]["annotator_history"]["judgments"] == 3
    assert detail["final_verdict"]["preferred_position"] == 1

    def rows(mode: ArbitrationMode, kind: str = "reward") -> dict[str, dict[str, Any]]:
        project = exporting.authorize_export(session, principal=operator, slug="arb-export")
        request = exporting.resolve_request(
            session, project=project, request=ExportRequest(kind=kind, provenance=True, arbitration=mode)
        )
        return {row["external_id"]: row for row in exporting.rows_for(session, project=project, request=request)}

    verdict_first = rows(ArbitrationMode.VERDICT_FIRST)
    external = session.scalar(
        select(Item.external_id)
        .join(ArbitrationCase, ArbitrationCase.item_id == Item.id)
        .where(ArbitrationCase.id == first)
    )
    assert list(verdict_first) == [external], "the other two items have no majority"
    assert external is not None
    row = verdict_first[external]
    assert row["chosen"][-1]["content"].startswith("answer 1 ") and row["margin"] == 2.0
    assert (row["votes"], row["agreement"]) == (2, 1.0)
    assert rows(ArbitrationMode.IGNORE) == {}
    summary = exporting.export_dataset(
        session,
        principal=operator,
        slug="arb-export",
        request=ExportRequest(kind="dpo"),
        out=tmp_path / "dpo",
        prefstack_version="test",
    )
    manifest = orjson.loads((tmp_path / "dpo" / "export.json").read_bytes())
    assert summary.rows == 1
    assert manifest["parameters"]["arbitration"] == "verdict-first"
    assert manifest["parameters"]["arbitrated_labels"] == 1


def test_ranking_export_follows_the_verdict_order(
    client: TestClient, people: People, session: Session, operator: Principal
) -> None:
    lead = _staff(people)
    _project(client, lead, slug="arb-rank", items=1, kind="ranking")

    def body(annotator: int, task: dict[str, Any]) -> dict[str, Any]:
        order = [0, 1, 2] if annotator == 0 else [1, 2, 0]
        return {"ranking": [[_label(task, position)] for position in order]}

    _judge(client, people, "arb-rank", 0, body)
    _judge(client, people, "arb-rank", 1, body)
    (case,) = client.get("/api/v1/projects/arb-rank/arbitration", headers=lead).json()["cases"]
    page = client.get(f"/projects/arb-rank/arbitration/{case['id']}", headers=lead)
    assert page.status_code == 200 and 'id="ranking"' in page.text and 'name="choice"' not in page.text
    # A, B, C are positions 0, 1, 2: the verdict ranks 2 first, then 0, then 1.
    done = client.post(
        f"/api/v1/projects/arb-rank/arbitration/{case['id']}/verdict",
        json={"ranking": [["C"], ["A"], ["B"]], "rationale": "C is the only correct one."},
        headers=lead,
    )
    assert done.status_code == 200, done.text
    project = exporting.authorize_export(session, principal=operator, slug="arb-rank")
    request = exporting.resolve_request(session, project=project, request=ExportRequest(kind="dpo"))
    pairs = {
        (row["chosen"][-1]["content"][7], row["rejected"][-1]["content"][7])
        for row in exporting.rows_for(session, project=project, request=request)
    }
    assert pairs == {("2", "0"), ("2", "1"), ("0", "1")}
    judgments = session.scalar(select(func.count()).select_from(Judgment))
    assert judgments is not None and judgments >= 2


def test_export_jobs_keep_the_arbitration_mode() -> None:
    request = ExportRequest(arbitration=ArbitrationMode.IGNORE)
    assert request_from_parameters(request.parameters()).arbitration is ArbitrationMode.IGNORE
    assert request_from_parameters(ExportRequest().parameters()).arbitration is ArbitrationMode.VERDICT_FIRST
    assert ExportOptions(arbitration="ignore").to_request().arbitration is ArbitrationMode.IGNORE


@pytest.mark.usefixtures("cli_database")
def test_the_cli_scans_a_project() -> None:
    def ok(args: list[str]) -> str:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        return result.output

    ok(["project", "create", "--slug", "cli-arb", "--name", "CLI", "--overlap", "2"])
    assert "cli-arb: 0 complete items checked, 0 cases opened" in ok(["arbitration", "scan", "cli-arb"])
    failed = CliRunner().invoke(cli, ["arbitration", "scan", "nope"])
    assert failed.exit_code == 1


def test_rubric_cases_open_on_criteria_and_the_verdict_sets_the_scores(
    client: TestClient, people: People, session: Session, operator: Principal
) -> None:
    lead = _staff(people)
    rubric = [{"name": "help", "scale": {"min": 1, "max": 5}}]
    _project(client, lead, slug="arb-rubric", items=1, kind="rubric", rubric=rubric, arbitration={"min_agreement": 0.8})

    def body(annotator: int, task: dict[str, Any]) -> dict[str, Any]:
        return {"scores": {_label(task, 0): {"help": 5 - 3 * annotator}, _label(task, 1): {"help": 3}}}

    _judge(client, people, "arb-rubric", 0, body)
    _judge(client, people, "arb-rubric", 1, body)
    (case,) = client.get("/api/v1/projects/arb-rubric/arbitration", headers=lead).json()["cases"]
    assert case["agreement"] == 0.75, "help of response 1 split (0.5), of response 2 agreed (1.0)"
    page = client.get(f"/projects/arb-rubric/arbitration/{case['id']}", headers=lead)
    assert page.status_code == 200 and '<select name="score.B.help"' in page.text
    url = f"/api/v1/projects/arb-rubric/arbitration/{case['id']}/verdict"
    refused = client.post(url, json={"scores": {"A": {"help": 4}}, "rationale": "r"}, headers=lead)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "scores.B.help"
    done = client.post(url, json={"scores": {"A": {"help": 4}, "B": {"help": 1}}, "rationale": "r"}, headers=lead)
    assert done.status_code == 200, done.text
    project = exporting.authorize_export(session, principal=operator, slug="arb-rubric")
    request = exporting.resolve_request(session, project=project, request=ExportRequest(kind="rubric", test_size=0))
    rows = list(exporting.rows_for(session, project=project, request=request))
    assert [(row["scores"]["help"], row["n_judgments"]) for row in rows] == [(4.0, 2), (1.0, 2)]
