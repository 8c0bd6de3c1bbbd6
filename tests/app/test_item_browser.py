"""The leads' item browser: filters, keyset pages, query cost, the detail, and who may see it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound, PermissionDenied
from app.principal import Principal
from app.services import accounts, annotation, importing, item_browser, projects, revisions
from app.services.verdicts import VerdictInput
from preference_store.models import Role
from tests.conftest import People

SLUG = "browse"
HOSTILE_PROMPT = "<script>alert('prompt')</script> Is this **spam**?"
HOSTILE_RATIONALE = "<script>alert('rationale')</script> both fine"


def _item(external_id: str, language: str, market: str, category: str, prompt: str = "Is this spam?") -> dict[str, Any]:
    return {
        "external_id": external_id,
        "prompt": prompt,
        "responses": [{"model": "model-yes", "content": "Yes."}, {"model": "model-no", "content": "No."}],
        "metadata": {"language": language, "market": market, "category": category},
    }


ITEMS = [
    _item("b-agree", "th", "TH", "news"),
    _item("b-split", "en", "US", "news", prompt=HOSTILE_PROMPT),
    _item("b-half", "id", "ID", "spam"),
    _item("b-leased", "en", "GB", "self-harm"),
    _item("b-open", "en", "US", "spam"),
]
ALL = [item["external_id"] for item in ITEMS]


@dataclass(frozen=True, slots=True)
class Seeded:
    """A pairwise project (overlap 2) whose items are open, in progress and complete."""

    lead: Principal
    annotator: Principal
    lead_email: str
    annotator_email: str
    revised_judgment_id: int


def _principal(session: Session, people: People, email: str) -> Principal:
    principal = accounts.principal_for_api_token(session, token=people.tokens[email], cache=accounts.TokenCache(0))
    assert principal is not None
    return principal


def _label_of(task: annotation.Task, content: str) -> str:
    return next(response.label for response in task.responses if response.content == content)


def seed_browse_project(session: Session, people: People, operator: Principal, password: str | None = None) -> Seeded:
    """b-agree: two judgments preferring 'Yes.'; b-split: tie and both bad (a revised judgment);
    b-half: one judgment and an open slot; b-leased: one judgment and a live lease; b-open: none."""
    lead_email = people.make("lead@example.org", Role.LEAD, password=password)
    ann_emails = [
        people.make("ann.one@example.org", Role.ANNOTATOR, password=password, team="Vendor One"),
        people.make("ann.two@example.org", Role.ANNOTATOR, password=password),
    ]
    projects.create_project(
        session,
        principal=operator,
        slug=SLUG,
        name="Browse",
        overlap=2,
        options={
            "strength": True,
            "rewrite": True,
            "taxonomy": [{"name": "spam"}],
            "sensitive_categories": ["self-harm"],
        },
    )
    importing.import_items(session, principal=operator, slug=SLUG, rows=list(enumerate(ITEMS, start=1)))
    projects.add_members(session, principal=operator, slug=SLUG, emails=ann_emails)
    one, two = (_principal(session, people, email) for email in ann_emails)

    def next_task(who: Principal, expected: str) -> annotation.Task:
        task = annotation.next_task(session, principal=who, slug=SLUG)
        assert task is not None and task.external_id == expected
        return task

    def submit(who: Principal, task: annotation.Task, verdict: VerdictInput) -> int:
        stored = annotation.submit_judgment(
            session, principal=who, assignment_id=task.assignment_id, submitted=verdict, time_spent_ms=4200
        )
        return stored.judgment_id

    task = next_task(one, "b-agree")
    submit(one, task, VerdictInput(choice=_label_of(task, "Yes."), strength="slightly"))
    task = next_task(one, "b-split")
    split_id = submit(
        one, task, VerdictInput(choice="tie", rationale="first thought", labels={_label_of(task, "Yes."): ["spam"]})
    )
    task = next_task(one, "b-half")
    submit(one, task, VerdictInput(choice=_label_of(task, "No."), strength="clearly"))
    task = next_task(one, "b-leased")
    submit(one, task, VerdictInput(choice="both_bad"))

    task = next_task(two, "b-agree")
    submit(two, task, VerdictInput(choice=_label_of(task, "Yes."), strength="much", rewrite="Yes, certainly."))
    task = next_task(two, "b-split")
    submit(two, task, VerdictInput(choice="both_bad", labels={_label_of(task, "No."): ["spam"]}))
    task = next_task(two, "b-half")
    annotation.skip_assignment(session, principal=two, assignment_id=task.assignment_id, reason="not my language")
    next_task(two, "b-leased")  # held, never submitted

    revisions.revise_judgment(
        session, principal=one, judgment_id=split_id, submitted=VerdictInput(choice="tie", rationale=HOSTILE_RATIONALE)
    )
    return Seeded(
        lead=_principal(session, people, lead_email),
        annotator=one,
        lead_email=lead_email,
        annotator_email=ann_emails[0],
        revised_judgment_id=split_id,
    )


@pytest.fixture
def seeded(session: Session, people: People, operator: Principal) -> Seeded:
    return seed_browse_project(session, people, operator)


def _ids(session: Session, lead: Principal, *, limit: int = 50, **filters: Any) -> list[str]:
    page = item_browser.list_items(
        session, principal=lead, slug=SLUG, filters=item_browser.item_filters(**filters), limit=limit
    )
    return [item.external_id for item in page.items]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ALL),
        ({"language": "en"}, ["b-split", "b-leased", "b-open"]),
        ({"market": "US"}, ["b-split", "b-open"]),
        ({"category": "spam"}, ["b-half", "b-open"]),
        ({"language": "en", "category": "spam"}, ["b-open"]),
        ({"state": "open"}, ["b-open"]),
        ({"state": "in_progress"}, ["b-half", "b-leased"]),
        ({"state": "complete"}, ["b-agree", "b-split"]),
        ({"has_disagreement": True}, ["b-split"]),
        ({"has_disagreement": False}, ["b-agree", "b-half", "b-leased"]),
        ({"state": "complete", "has_disagreement": False}, ["b-agree"]),
        ({"q": "SPLIT"}, ["b-split"]),
        ({"q": "b-"}, ALL),
        ({"q": "%"}, []),
        ({"language": "vi"}, []),
    ],
)
def test_each_filter_keeps_only_matching_items(
    session: Session, seeded: Seeded, filters: dict[str, Any], expected: list[str]
) -> None:
    assert _ids(session, seeded.lead, **filters) == expected


def test_empty_filter_values_mean_no_filter(session: Session, seeded: Seeded) -> None:
    filters = item_browser.item_filters(language="", market="", category="", state="", q="  ")
    page = item_browser.list_items(session, principal=seeded.lead, slug=SLUG, filters=filters)
    assert [item.external_id for item in page.items] == ALL


def test_keyset_pages_walk_every_item_once(session: Session, seeded: Seeded) -> None:
    seen: list[str] = []
    after: int | None = None
    pages = 0
    while True:
        page = item_browser.list_items(
            session, principal=seeded.lead, slug=SLUG, filters=item_browser.item_filters(), after=after, limit=2
        )
        pages += 1
        seen += [item.external_id for item in page.items]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == ALL
    assert pages == 3


def test_keyset_pages_combine_with_filters(session: Session, seeded: Seeded) -> None:
    filters = item_browser.item_filters(language="en")
    first = item_browser.list_items(session, principal=seeded.lead, slug=SLUG, filters=filters, limit=2)
    assert [item.external_id for item in first.items] == ["b-split", "b-leased"]
    assert first.next_after is not None
    second = item_browser.list_items(
        session, principal=seeded.lead, slug=SLUG, filters=filters, after=first.next_after, limit=2
    )
    assert [item.external_id for item in second.items] == ["b-open"]
    assert second.next_after is None


def test_list_rows_show_counts_verdicts_excerpt_and_sensitivity(session: Session, seeded: Seeded) -> None:
    page = item_browser.list_items(session, principal=seeded.lead, slug=SLUG, filters=item_browser.item_filters())
    rows = {item.external_id: item for item in page.items}
    split = rows["b-split"]
    assert (split.judgments, split.overlap, split.state, split.has_disagreement) == (2, 2, "complete", True)
    assert sorted(share.verdict for share in split.verdicts) == ["both_bad", "tie"]
    assert split.prompt_excerpt == HOSTILE_PROMPT
    agree = rows["b-agree"]
    assert [(share.verdict, share.count) for share in agree.verdicts] == [("p0", 2)]
    assert (agree.language, agree.market, agree.category) == ("th", "TH", "news")
    assert (rows["b-leased"].judgments, rows["b-leased"].state) == (1, "in_progress")
    assert rows["b-leased"].sensitive is True
    assert rows["b-open"].sensitive is False
    assert (rows["b-open"].judgments, rows["b-open"].verdicts, rows["b-open"].state) == (0, [], "open")
    assert page.facets is not None
    assert page.facets.languages == ["en", "id", "th"]
    assert page.facets.markets == ["GB", "ID", "TH", "US"]
    assert page.facets.categories == ["news", "self-harm", "spam"]


def test_prompt_excerpt_is_one_short_line_of_the_last_user_turn() -> None:
    messages = [
        {"role": "system", "content": "You moderate."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "word \n\n " * 100},
    ]
    excerpt = item_browser.prompt_excerpt(messages)
    assert excerpt.startswith("word word") and excerpt.endswith("…")
    assert len(excerpt) <= item_browser.EXCERPT_CHARS
    assert "\n" not in excerpt


@contextmanager
def _count_statements(session: Session) -> Iterator[list[str]]:
    statements: list[str] = []
    engine = session.get_bind().engine

    def record(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize("with_facets", [False, True])
def test_the_list_costs_the_same_few_queries_for_any_page_size(
    session: Session, seeded: Seeded, with_facets: bool
) -> None:
    counts = []
    for limit in (1, 2, 200):
        with _count_statements(session) as statements:
            item_browser.list_items(
                session,
                principal=seeded.lead,
                slug=SLUG,
                filters=item_browser.item_filters(state="complete", has_disagreement=True),
                limit=limit,
                with_facets=with_facets,
            )
            item_browser.list_items(
                session,
                principal=seeded.lead,
                slug=SLUG,
                filters=item_browser.item_filters(),
                limit=limit,
                with_facets=with_facets,
            )
        counts.append(len(statements))
    expected = 2 * (3 + (3 if with_facets else 0))
    assert counts == [expected] * 3


def test_the_detail_shows_every_judgment_with_annotator_verdict_and_history(session: Session, seeded: Seeded) -> None:
    detail = item_browser.item_detail(session, principal=seeded.lead, slug=SLUG, external_id="b-split")
    assert [(r.position, r.model_name, r.content) for r in detail.responses] == [
        (0, "model-yes", "Yes."),
        (1, "model-no", "No."),
    ]
    assert detail.messages == [{"role": "user", "content": HOSTILE_PROMPT}]
    assert detail.distinct_verdicts == 2
    first, second = detail.judgments
    assert (first.annotator_name, first.annotator_team) == ("ann.one", "Vendor One")
    assert (second.annotator_name, second.annotator_team) == ("ann.two", None)
    assert first.judgment_id == seeded.revised_judgment_id
    assert (first.revision, first.verdict.outcome, first.verdict.rationale) == (2, "tie", HOSTILE_RATIONALE)
    assert first.time_spent_ms == 4200 and first.guidelines_version == 1
    assert first.revised_at is not None
    [earlier] = first.history
    assert (earlier.revision, earlier.verdict.rationale, earlier.verdict.outcome) == (1, "first thought", "tie")
    assert [(entry.position, entry.labels) for entry in earlier.verdict.labels] == [(0, ["spam"])]
    assert earlier.made_at == first.created_at
    assert earlier.replaced_at == first.revised_at
    assert second.verdict.outcome == "both_bad"
    assert [(entry.position, entry.labels) for entry in second.verdict.labels] == [(1, ["spam"])]
    assert second.history == []


def test_the_detail_shows_preference_strength_and_rewrite_by_stored_position(session: Session, seeded: Seeded) -> None:
    detail = item_browser.item_detail(session, principal=seeded.lead, slug=SLUG, external_id="b-agree")
    verdicts = [judgment.verdict for judgment in detail.judgments]
    assert [(v.outcome, v.preferred_position, v.strength) for v in verdicts] == [
        ("preferred", 0, "slightly"),
        ("preferred", 0, "much"),
    ]
    assert verdicts[1].rewrite == item_browser.Rewrite(position=0, content="Yes, certainly.")
    assert detail.sensitive is False
    leased = item_browser.item_detail(session, principal=seeded.lead, slug=SLUG, external_id="b-leased")
    assert leased.sensitive is True
    assert all(response.sensitive for response in leased.responses)


def seed_rubric_and_ranking(session: Session, people: People, operator: Principal) -> str:
    """Projects rank-b and rubric-b, item x with three responses judged once each; returns a lead's email."""
    lead_email = people.make("lead2@example.org", Role.LEAD)
    annotator = _principal(session, people, people.make("ranker@example.org", Role.ANNOTATOR))
    three = [{"model": f"m{n}", "content": f"answer {n}"} for n in range(3)]
    projects.create_project(session, principal=operator, slug="rank-b", name="Rank", kind="ranking")
    projects.create_project(
        session,
        principal=operator,
        slug="rubric-b",
        name="Rubric",
        kind="rubric",
        options={
            "rubric": [
                {"name": "helpful", "scale": {"min": 1, "max": 5}},
                {"name": "safe", "scale": {"binary": True}, "required": False},
            ]
        },
    )
    for slug in ("rank-b", "rubric-b"):
        importing.import_items(
            session, principal=operator, slug=slug, rows=[(1, {"external_id": "x", "prompt": "?", "responses": three})]
        )
        projects.add_members(session, principal=operator, slug=slug, emails=["ranker@example.org"])

    task = annotation.next_task(session, principal=annotator, slug="rank-b")
    assert task is not None
    label = {response.content: response.label for response in task.responses}
    ranking = [[label["answer 2"]], [label["answer 0"], label["answer 1"]]]
    annotation.submit_judgment(
        session, principal=annotator, assignment_id=task.assignment_id, submitted=VerdictInput(ranking=ranking)
    )
    task = annotation.next_task(session, principal=annotator, slug="rubric-b")
    assert task is not None
    label = {response.content: response.label for response in task.responses}
    scores = {
        label["answer 0"]: {"helpful": 5, "safe": True},
        label["answer 1"]: {"helpful": 2},
        label["answer 2"]: {"helpful": 1},
    }
    annotation.submit_judgment(
        session, principal=annotator, assignment_id=task.assignment_id, submitted=VerdictInput(scores=scores)
    )
    return lead_email


def test_rubric_and_ranking_verdicts_read_in_stored_positions(
    session: Session, people: People, operator: Principal
) -> None:
    lead = _principal(session, people, seed_rubric_and_ranking(session, people, operator))
    [ranked] = item_browser.item_detail(session, principal=lead, slug="rank-b", external_id="x").judgments
    assert ranked.verdict.ranking == [[2], [0, 1]]
    assert ranked.verdict.all_bad is False
    [scored] = item_browser.item_detail(session, principal=lead, slug="rubric-b", external_id="x").judgments
    assert [(line.criterion, line.scores) for line in scored.verdict.scores] == [
        ("helpful", ["5", "2", "1"]),
        ("safe", ["yes", None, None]),
    ]


def test_annotators_are_refused_even_in_their_own_project(session: Session, seeded: Seeded) -> None:
    with pytest.raises(PermissionDenied):
        item_browser.list_items(session, principal=seeded.annotator, slug=SLUG, filters=item_browser.item_filters())
    with pytest.raises(PermissionDenied):
        item_browser.item_detail(session, principal=seeded.annotator, slug=SLUG, external_id="b-split")


def test_unknown_project_or_item_is_not_found(session: Session, seeded: Seeded) -> None:
    with pytest.raises(NotFound):
        item_browser.list_items(session, principal=seeded.lead, slug="nope", filters=item_browser.item_filters())
    with pytest.raises(NotFound):
        item_browser.item_detail(session, principal=seeded.lead, slug=SLUG, external_id="missing")
    with pytest.raises(NotFound):
        item_browser.item_detail(session, principal=seeded.lead, slug="nope", external_id="b-split")


@pytest.mark.parametrize(
    ("filters", "limit", "field"),
    [({"state": "done"}, 50, "state"), ({}, 0, "limit"), ({}, 201, "limit"), ({"q": "x" * 201}, 50, "q")],
)
def test_bad_filters_are_invalid_input(
    session: Session, seeded: Seeded, filters: dict[str, Any], limit: int, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        item_browser.list_items(
            session, principal=seeded.lead, slug=SLUG, filters=item_browser.item_filters(**filters), limit=limit
        )
    assert caught.value.field == field


def test_api_lists_filters_and_pages(client: TestClient, people: People, seeded: Seeded) -> None:
    headers = people.headers(seeded.lead_email)
    first = client.get(f"/api/v1/projects/{SLUG}/items", params={"language": "en", "limit": 2}, headers=headers)
    assert first.status_code == 200, first.text
    body = first.json()
    assert [item["external_id"] for item in body["items"]] == ["b-split", "b-leased"]
    assert body["facets"] is None
    assert body["filters"]["language"] == "en"
    second = client.get(
        f"/api/v1/projects/{SLUG}/items",
        params={"language": "en", "limit": 2, "after": body["next_after"], "facets": "true"},
        headers=headers,
    )
    assert [item["external_id"] for item in second.json()["items"]] == ["b-open"]
    assert second.json()["next_after"] is None
    assert second.json()["facets"]["languages"] == ["en", "id", "th"]
    split = client.get(
        f"/api/v1/projects/{SLUG}/items", params={"has_disagreement": "true", "state": "complete"}, headers=headers
    ).json()["items"]
    assert [(item["external_id"], item["judgments"], item["has_disagreement"]) for item in split] == [
        ("b-split", 2, True)
    ]
    bad = client.get(f"/api/v1/projects/{SLUG}/items", params={"state": "done"}, headers=headers)
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_state"
    too_many = client.get(f"/api/v1/projects/{SLUG}/items", params={"limit": 500}, headers=headers)
    assert too_many.status_code == 422


def test_api_detail_returns_judgments_with_history(client: TestClient, people: People, seeded: Seeded) -> None:
    response = client.get(f"/api/v1/projects/{SLUG}/items/b-split", headers=people.headers(seeded.lead_email))
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["model_name"] for r in body["responses"]] == ["model-yes", "model-no"]
    first = body["judgments"][0]
    assert first["annotator_name"] == "ann.one" and first["annotator_team"] == "Vendor One"
    assert first["verdict"]["rationale"] == HOSTILE_RATIONALE
    assert [old["verdict"]["rationale"] for old in first["history"]] == ["first thought"]


def test_api_refuses_annotators_and_answers_404_for_unknown_things(
    client: TestClient, people: People, seeded: Seeded
) -> None:
    annotator = people.headers(seeded.annotator_email)
    lead = people.headers(seeded.lead_email)
    for path in (f"/api/v1/projects/{SLUG}/items", f"/api/v1/projects/{SLUG}/items/b-split"):
        refused = client.get(path, headers=annotator)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "lead_role_required"
        assert "judgments" not in refused.text
    assert client.get("/api/v1/projects/nope/items", headers=lead).status_code == 404
    missing = client.get(f"/api/v1/projects/{SLUG}/items/missing", headers=lead)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "item_not_found"
    assert client.get(f"/api/v1/projects/{SLUG}/items").status_code == 401
