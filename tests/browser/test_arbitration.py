"""Arbitration in a real browser: a lead opens the queue, reads the judgments, decides by keyboard, moves on."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.principal import Principal, command_line_principal
from app.services import accounts, annotation, exporting, importing, projects
from app.services.exporting import ExportRequest
from app.services.verdicts import VerdictInput
from preference_store.models import ArbitrationCase, Role

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer, PageEvents

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
SLUG = "arb-browser"
LogIn = Callable[[Page, str, str], None]
ITEMS: list[dict[str, Any]] = [
    {
        "external_id": f"arb-{n}",
        "prompt": f"Is comment {n} spam: 'free coins at spin{n} dot com'?",
        "responses": [
            {"model": "m-a", "content": f"Yes, comment {n} advertises a site."},
            {"model": "m-b", "content": f"No, comment {n} is fine."},
        ],
        "metadata": {"language": "en", "market": "US", "category": "spam"},
    }
    for n in range(2)
]


def _principal(live_server: LiveServer, email: str, role: Role, team: str | None = None) -> Principal:
    with live_server.sessions() as session:
        accounts.create_user(
            session, email=email, name=email.split("@", maxsplit=1)[0].title(), role=role, password=PASSWORD, team=team
        )
        token = accounts.create_api_token(session, email=email).token
        principal = accounts.principal_for_api_token(session, token=token, cache=accounts.TokenCache(0))
    assert principal is not None
    return principal


def _seed(live_server: LiveServer) -> str:
    """Two annotators disagree on both items: two open cases."""
    operator = command_line_principal()
    lead = _principal(live_server, "arb-lena@example.com", Role.LEAD)
    first = _principal(live_server, "arb-somchai@example.com", Role.ANNOTATOR, "Vendor Bangkok")
    second = _principal(live_server, "arb-dewi@example.com", Role.ANNOTATOR, "Vendor Jakarta")
    with live_server.sessions() as session:
        projects.create_project(session, principal=operator, slug=SLUG, name="Arbitration live", overlap=2)
        importing.import_items(session, principal=operator, slug=SLUG, rows=list(enumerate(ITEMS, start=1)))
        projects.add_members(session, principal=operator, slug=SLUG, emails=[first.user.email, second.user.email])
        for who, pick, why in ((first, "Yes", "Links to a coin site."), (second, "No", "Just a joke between friends.")):
            for _ in ITEMS:
                task = annotation.next_task(session, principal=who, slug=SLUG)
                assert task is not None
                label = next(response.label for response in task.responses if response.content.startswith(pick))
                annotation.submit_judgment(
                    session,
                    principal=who,
                    assignment_id=task.assignment_id,
                    submitted=VerdictInput(choice=label, rationale=why),
                    time_spent_ms=21_000,
                )
    return lead.user.email


def test_lead_decides_a_case_by_keyboard_and_lands_on_the_next(
    live_server: LiveServer, page: Page, page_events: PageEvents, log_in: LogIn
) -> None:
    lead = _seed(live_server)
    log_in(page, lead, PASSWORD)
    page.goto(f"/projects/{SLUG}/arbitration")
    rows = page.locator("#case-list .case-row")
    expect(rows).to_have_count(2)
    expect(page.locator('#case-counts [data-state="open"] .count')).to_have_text("2")
    first_id, second_id = (row.get_attribute("data-case-id") for row in rows.all())
    rows.first.locator(".case-link").click()
    expect(page).to_have_url(re.compile(rf"/projects/{SLUG}/arbitration/{first_id}$"))

    judgments = page.locator(".judgment.card")
    expect(judgments).to_have_count(2)
    expect(judgments.nth(0)).to_contain_text("Links to a coin site.")
    expect(judgments.nth(1)).to_contain_text("Just a joke between friends.")
    expect(judgments.nth(0)).to_contain_text("Vendor Bangkok")
    expect(judgments.nth(0).locator(".annotator-history")).to_contain_text("2")

    # j and k move between open cases.
    page.keyboard.press("j")
    expect(page).to_have_url(re.compile(rf"/arbitration/{second_id}$"))
    page.keyboard.press("k")
    expect(page).to_have_url(re.compile(rf"/arbitration/{first_id}$"))

    # "2" picks response B (position 1: "No ..."), then the rationale, then Ctrl+Enter saves.
    page.keyboard.press("2")
    expect(page.locator('input[name="choice"][value="B"]')).to_be_checked()
    page.locator("#arbitration-rationale").fill("A joke between friends is not spam.")
    page.keyboard.press("Control+Enter")
    expect(page).to_have_url(re.compile(rf"/arbitration/{second_id}$"))
    expect(page.locator("#case-state")).to_have_text("open")
    assert page_events.errors == []

    with live_server.sessions() as session:
        stored = session.scalar(select(ArbitrationCase).where(ArbitrationCase.id == int(str(first_id))))
        assert stored is not None and stored.state == "resolved" and stored.verdict == "p1"
        project = exporting.authorize_export(session, principal=command_line_principal(), slug=SLUG)
        request = exporting.resolve_request(session, project=project, request=ExportRequest(provenance=True))
        rows_out = list(exporting.rows_for(session, project=project, request=request))
    assert [row["external_id"] for row in rows_out] == ["arb-0"]
    assert rows_out[0]["chosen"][-1]["content"] == "No, comment 0 is fine."
