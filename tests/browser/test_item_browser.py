"""The leads' item browser in a real browser: filter without a page load, open an item, reveal, screenshots."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect

from app.principal import Principal, command_line_principal
from app.services import accounts, annotation, importing, projects, revisions
from app.services.verdicts import VerdictInput, verdict_input_of
from preference_store.models import Role
from tests.browser.doc_images import save_doc_image

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer, PageEvents

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
SLUG = "lead-browse"
LogIn = Callable[[Page, str, str], None]


def _item(external_id: str, language: str, market: str, category: str, prompt: str, a: str, b: str) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "prompt": prompt,
        "responses": [{"model": "sea-7b", "content": a}, {"model": "sea-7b-dpo", "content": b}],
        "metadata": {"language": language, "market": market, "category": category},
    }


ITEMS = [
    _item(
        "en-0001",
        "en",
        "US",
        "gambling",
        'Is this comment allowed? "Win big tonight at lucky-spin dot com, use code VIP"',
        "Yes, it is a normal comment.",
        "No: it advertises a **gambling** site with a promo code, which the policy forbids in live chat.",
    ),
    _item(
        "th-0002",
        "th",
        "TH",
        "spam",
        "ข้อความนี้เป็นสแปมไหม: กดลิงก์รับเงินฟรี",
        "ใช่ เป็นสแปม",
        "ไม่ใช่",
    ),
    _item("id-0003", "id", "ID", "harassment", "Apakah komentar ini melanggar aturan?", "Ya.", "Tidak."),
    _item("vi-0004", "vi", "VN", "self-harm", "Bình luận này có vi phạm không?", "Có.", "Không."),
    _item("en-0005", "en", "GB", "spam", "Is 'follow for follow' spam?", "Yes, engagement bait.", "No."),
    _item("th-0006", "th", "TH", "gambling", "โพสต์นี้โฆษณาการพนันไหม", "ใช่", "ไม่ใช่"),
]


def _principal(live_server: LiveServer, email: str, role: Role, team: str | None) -> Principal:
    with live_server.sessions() as session:
        accounts.create_user(
            session, email=email, name=email.split("@", maxsplit=1)[0].title(), role=role, password=PASSWORD, team=team
        )
        token = accounts.create_api_token(session, email=email).token
        principal = accounts.principal_for_api_token(session, token=token, cache=accounts.TokenCache(0))
    assert principal is not None
    return principal


def _seed(live_server: LiveServer) -> str:
    """A lead, two annotators of two vendors, and items judged in agreement, in disagreement and not at all."""
    operator = command_line_principal()
    lead = _principal(live_server, "lena@example.com", Role.LEAD, None)
    somchai = _principal(live_server, "somchai@example.com", Role.ANNOTATOR, "Vendor Bangkok")
    dewi = _principal(live_server, "dewi@example.com", Role.ANNOTATOR, "Vendor Jakarta")
    with live_server.sessions() as session:
        projects.create_project(
            session,
            principal=operator,
            slug=SLUG,
            name="Live-chat safety",
            overlap=2,
            options={
                "strength": True,
                "rewrite": True,
                "taxonomy": [{"name": "gambling", "severities": ["minor", "severe"]}],
                "sensitive_categories": ["self-harm"],
            },
        )
        importing.import_items(session, principal=operator, slug=SLUG, rows=list(enumerate(ITEMS, start=1)))
        projects.add_members(session, principal=operator, slug=SLUG, emails=["somchai@example.com", "dewi@example.com"])

        def judge(who: Principal, pick: str, labels: dict[str, list[str]] | None = None, **extra: Any) -> int:
            task = annotation.next_task(session, principal=who, slug=SLUG)
            assert task is not None
            label = {response.content: response.label for response in task.responses}
            submitted = VerdictInput(
                choice=label.get(pick, pick),
                labels={label[content]: values for content, values in (labels or {}).items()},
                **extra,
            )
            return annotation.submit_judgment(
                session, principal=who, assignment_id=task.assignment_id, submitted=submitted, time_spent_ms=38_500
            ).judgment_id

        advert, refusal = (response["content"] for response in ITEMS[0]["responses"])
        first = judge(
            somchai,
            refusal,
            strength="clearly",
            labels={advert: ["gambling:minor"]},
            rationale="Promo code for a gambling site.",
        )
        judge(
            dewi,
            refusal,
            strength="much",
            rewrite="No. It advertises a gambling site with a promo code; live chat forbids that.",
            rationale="Right, but wordy.",
        )
        judge(somchai, ITEMS[1]["responses"][0]["content"], strength="slightly")
        judge(dewi, "tie", rationale="Both answers are too short to tell.")
        judge(somchai, ITEMS[2]["responses"][0]["content"], strength="slightly")
        shown = revisions.get_own_judgment(session, principal=somchai, judgment_id=first).verdict
        changed = replace(
            verdict_input_of(shown),
            labels={label: ["gambling:severe"] for label in shown["labels"]},
            rationale="Promo code for a gambling site: severe in live chat.",
        )
        revisions.revise_judgment(session, principal=somchai, judgment_id=first, submitted=changed)
    return lead.user.email


def test_lead_filters_items_and_reads_every_judgment_of_one(
    live_server: LiveServer, page: Page, page_events: PageEvents, log_in: LogIn
) -> None:
    lead_email = _seed(live_server)
    log_in(page, lead_email, PASSWORD)
    page.goto(f"/projects/{SLUG}/items")
    rows = page.locator("#items tr.item-row")
    expect(rows).to_have_count(len(ITEMS))
    save_doc_image(page, "lead-items.png")

    page.evaluate("window.__marker = 1")
    page.select_option("#filter-has_disagreement", "true")
    page.click("#item-filters button[type=submit]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-external-id", "th-0002")
    expect(page).to_have_url(re.compile(r"has_disagreement=true"))
    assert page.evaluate("window.__marker") == 1  # htmx swapped the results, no page load

    page.select_option("#filter-has_disagreement", "")
    page.select_option("#filter-state", "open")
    page.click("#item-filters button[type=submit]")
    expect(rows).to_have_count(3)

    page.goto(f"/projects/{SLUG}/items/vi-0004")
    sensitive = page.locator("#conversation .sensitive").first
    expect(sensitive.locator(".sensitive-body")).to_have_css("filter", "blur(8px)")
    sensitive.locator("button.lead-reveal").click()
    expect(sensitive).to_have_class(re.compile(r"\bis-revealed\b"))
    expect(sensitive.locator(".sensitive-body")).to_have_css("filter", "none")

    page.goto(f"/projects/{SLUG}/items/en-0001")
    expect(page.locator("article.judgment")).to_have_count(2)
    expect(page.locator(".rewrite")).to_have_count(1)
    page.locator("article.judgment details.history summary").first.click()
    page.evaluate("document.querySelector('#judgments-heading').scrollIntoView()")
    save_doc_image(page, "lead-item-detail.png")
    assert page_events.errors == []
