"""The export page in a real browser: a lead exports KTO with a test split, waits for it, and loads the zip."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import datasets
import huggingface_hub.constants
import pytest
from playwright.sync_api import Page, expect

from app.principal import command_line_principal
from app.services import accounts, annotation, importing, projects
from preference_store.models import Role

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer, PageEvents

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
SLUG = "browser-export"
LEAD = "erin@example.com"
LogIn = Callable[[Page, str, str], None]
ITEMS = 12


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Hub access for `datasets`."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)


def _seed(live_server: LiveServer) -> None:
    """A lead, and a pairwise project whose every item one annotator judged."""
    operator = command_line_principal()
    with live_server.sessions() as session:
        accounts.create_user(session, email=LEAD, name="Erin", role=Role.LEAD, password=PASSWORD)
        accounts.create_user(session, email="kto-ann@example.com", name="Ann", role=Role.ANNOTATOR, password=None)
        token = accounts.create_api_token(session, email="kto-ann@example.com").token
        projects.create_project(session, principal=operator, slug=SLUG, name="Browser export", overlap=1)
        projects.add_members(session, principal=operator, slug=SLUG, emails=["kto-ann@example.com"])
        rows = [
            {
                "external_id": f"x{n}",
                "prompt": f"Is comment {n} allowed in the live chat?",
                "responses": [{"model": "a", "content": f"Yes, comment {n} is fine."},
                              {"model": "b", "content": f"No, comment {n} breaks the rules."}],
                "metadata": {"language": "en"},
            }
            for n in range(ITEMS)
        ]  # fmt: skip
        importing.import_items(session, principal=operator, slug=SLUG, rows=list(enumerate(rows, start=1)))
    with live_server.sessions() as session:
        annotator = accounts.principal_for_api_token(session, token=token, cache=accounts.TokenCache(0))
        assert annotator is not None
        while (task := annotation.next_task(session, principal=annotator, slug=SLUG)) is not None:
            annotation.submit_pairwise(session, principal=annotator, assignment_id=task.assignment_id, choice="A")


@pytest.mark.usefixtures("offline")
def test_a_lead_exports_kto_with_a_test_split_and_loads_the_zip(
    live_server: LiveServer, page: Page, page_events: PageEvents, log_in: LogIn, tmp_path: Path
) -> None:
    _seed(live_server)
    log_in(page, LEAD, PASSWORD)
    page.click(f'a.exports-link[data-slug="{SLUG}"]')
    expect(page).to_have_url(f"{live_server.url}/projects/{SLUG}/exports")
    expect(page.locator("#no-jobs")).to_be_visible()

    expect(page.locator("#option-margin")).to_be_hidden()  # dpo is chosen: no margin
    page.select_option("#field-kind", "kto")
    expect(page.locator("#option-rewrites")).to_be_hidden()
    expect(page.locator("#option-ties")).to_be_visible()
    page.select_option("#field-format", "parquet")
    expect(page.locator("#option-gzip")).to_be_hidden()
    page.select_option("#field-format", "jsonl")
    expect(page.locator("#option-gzip")).to_be_visible()
    page.fill("#field-test_size", "0.25")
    page.fill("#field-seed", "11")
    page.click("#start-export")

    row = page.locator("#jobs-table tr.job-row").first
    expect(row).to_have_attribute("data-state", "done", timeout=30_000)
    expect(row.locator(".split[data-split=test]")).to_be_visible()
    expect(page.locator("#field-kind")).to_have_value("kto")  # the form keeps the options for the next run

    with page.expect_download() as info:
        row.locator("a.download-link").click()
    archive_path = tmp_path / "export.zip"
    info.value.save_as(archive_path)
    assert info.value.suggested_filename.startswith(f"{SLUG}-kto-")
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(archive_path) as archive:
        assert sorted(archive.namelist()) == ["README.md", "export.json", "test.jsonl", "train.jsonl"]
        archive.extractall(unpacked)
    loaded = datasets.load_dataset(
        "json",
        data_files={"train": str(unpacked / "train.jsonl"), "test": str(unpacked / "test.jsonl")},
        cache_dir=str(tmp_path / "cache"),
    )
    assert isinstance(loaded, datasets.DatasetDict)
    assert set(loaded) == {"train", "test"}
    for split in loaded.values():
        assert split.column_names == ["prompt", "completion", "label"]
    assert loaded["train"].num_rows + loaded["test"].num_rows == 2 * ITEMS
    assert loaded["test"].num_rows > 0
    assert {label for split in loaded.values() for label in split["label"]} == {True, False}

    row.locator("a.card-link").click()
    expect(page.locator("#card-body h1")).to_be_visible()
    expect(page.locator("#card-front-matter")).to_contain_text("kto")
    assert page_events.errors == []
