"""The import page in a real browser: a lead uploads a file with bad rows, reads the errors, skips them and imports."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from app.principal import command_line_principal
from app.services import accounts, projects
from preference_store.models import Item, Project, Role

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer, PageEvents

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
SLUG = "browser-import"
LEAD = "ivy@example.com"
LogIn = Callable[[Page, str, str], None]


def _row(number: int) -> dict[str, object]:
    return {
        "external_id": f"up-{number}",
        "prompt": f"Is message {number} allowed in the live chat?",
        "responses": [{"model": "a", "content": f"Yes, message {number} is fine."},
                      {"model": "b", "content": f"No, message {number} breaks the rules."}],
        "metadata": {"language": "th", "category": "spam"},
    }  # fmt: skip


def _file() -> bytes:
    rows: list[bytes] = [json.dumps(_row(number)).encode() for number in range(1, 6)]
    rows.insert(2, json.dumps({"external_id": "broken", "prompt": "No responses"}).encode())  # line 3
    rows.append(b'{"external_id": "cut-off", "prompt": ')  # line 7: not JSON
    return b"\n".join(rows) + b"\n"


def _items(live_server: LiveServer) -> int:
    with live_server.sessions() as session:
        count = session.scalar(
            select(func.count())
            .select_from(Item)
            .join(Project, Project.id == Item.project_id)
            .where(Project.slug == SLUG)
        )
    return count or 0


def test_a_lead_uploads_previews_skips_the_bad_rows_and_imports(
    live_server: LiveServer, page: Page, page_events: PageEvents, log_in: LogIn
) -> None:
    with live_server.sessions() as session:
        accounts.create_user(session, email=LEAD, name="Ivy", role=Role.LEAD, password=PASSWORD)
        projects.create_project(session, principal=command_line_principal(), slug=SLUG, name="Browser import")
    log_in(page, LEAD, PASSWORD)
    page.click(f'a.import-link[data-slug="{SLUG}"]')
    expect(page).to_have_url(f"{live_server.url}/projects/{SLUG}/import")

    page.set_input_files("#field-file", {"name": "chat.jsonl", "mimeType": "application/jsonl", "buffer": _file()})
    page.click("#upload-button")
    preview = page.locator("#import-preview")
    expect(preview).to_be_visible()
    expect(page).to_have_url(f"{live_server.url}/projects/{SLUG}/import/{preview.get_attribute('data-token')}")
    expect(page.locator("#detected-format")).to_have_text("jsonl:native")
    expect(page.locator("#count-valid")).to_have_text("5")
    expect(page.locator("#count-invalid")).to_have_text("2")
    expect(page.locator("tr.preview-item")).to_have_count(5)
    expect(page.locator('tr.row-error[data-line="3"][data-field="responses"]')).to_be_visible()
    expect(page.locator('tr.row-error[data-line="7"]')).to_be_visible()
    assert _items(live_server) == 0

    page.click("#import-button")  # fail mode: the bad rows refuse the file
    expect(page.locator("#error-on_error")).to_be_visible()
    assert _items(live_server) == 0

    page.select_option("#field-on_error", "skip")
    page.click("#import-button")
    expect(page.locator("#result-created")).to_have_text("5")
    expect(page.locator("#result-rejected")).to_have_text("2")
    assert _items(live_server) == 5

    page.click("#browse-items")
    expect(page).to_have_url(f"{live_server.url}/projects/{SLUG}/items")
    expect(page.locator("tr.item-row")).to_have_count(5)
    expect(page.locator('tr.item-row[data-external-id="up-1"]')).to_be_visible()
    assert page_events.errors == []
