"""The export page over HTTP: the form, starting a job with and without htmx, 422 per field, polling, card, refusals."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.services import accounts
from app.services.export_jobs import ExportJobRunner
from preference_store.models import Role
from tests.app.test_exporting import ANNOTATORS, LEAD, _pairwise_project, _ranking_project, _rubric_project, _staff
from tests.conftest import People

SLUG = "ex-pair"
PASSWORD = "lead password 123"
HTMX = {"HX-Request": "true"}


def _log_in(client: TestClient, email: str) -> str:
    """Log in through the form; returns the session's CSRF token."""
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    answer = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token.group(1), "next": "/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    home = client.get("/")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', home.text)
    assert csrf is not None
    return csrf.group(1)


@pytest.fixture
def csrf(client: TestClient, people: People, session: Session, runner: ExportJobRunner) -> str:
    lead = _staff(people)
    _pairwise_project(client, people, lead)
    accounts.set_password(session, email=LEAD, password=PASSWORD)
    return _log_in(client, LEAD)


def _jobs(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr class="job-row" id="job-(\d+)" data-job-id="\d+" data-state="(\w+)">', html)


def test_the_page_offers_every_option_of_a_pairwise_project(client: TestClient, csrf: str) -> None:
    page = client.get(f"/projects/{SLUG}/exports")
    assert page.status_code == 200, page.text
    assert '<script src="/static/exports.js" defer></script>' in page.text
    names = set(re.findall(r'name="([a-z_]+)"', page.text))
    assert {
        "kind", "row_format", "format", "gzip", "provenance", "test_size", "validation_size", "seed",
        "min_judgments", "min_agreement", "ties", "both_bad", "aggregation", "rewrites", "margin",
        "languages", "markets", "categories", "guidelines_versions", "since", "until", "teams",
    } <= names  # fmt: skip
    assert "ranking_pairs" not in names  # only ranking projects give ranked pairs
    assert "kto_desirable_at" not in names  # only rubric projects have scores
    kinds = re.findall(r'<option value="(\w+)"[^>]*>', page.text.split('name="kind"')[1].split("</select>")[0])
    assert kinds == ["dpo", "reward", "kto", "sft"]
    assert re.search(r'id="option-margin" data-kinds="reward"', page.text)
    assert re.search(r'id="option-gzip" data-formats="jsonl"', page.text)
    languages = page.text.split('name="languages"')[1].split("</select>")[0]
    assert re.findall(r'<option value="([^"]+)"', languages) == ["en", "th"]
    assert 'id="no-jobs"' in page.text
    assert 'hx-trigger="every 2s"' not in page.text


def test_starting_without_javascript_redirects_to_the_job(client: TestClient, csrf: str) -> None:
    form = {
        "csrf_token": csrf, "kind": "kto", "format": "jsonl", "gzip": ["false", "true"], "test_size": "0.25",
        "seed": "4", "rewrites": "false", "languages": ["th"], "teams": "",
    }  # fmt: skip
    answer = client.post(f"/projects/{SLUG}/exports", data=form, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    job_id = re.fullmatch(rf"/projects/{SLUG}/exports#job-(\d+)", answer.headers["location"])
    assert job_id is not None
    page = client.get(f"/projects/{SLUG}/exports")
    assert _jobs(page.text) == [(job_id.group(1), "done")]
    assert re.search(r'<span class="split" data-split="test">test <b>\d+</b></span>', page.text)
    download = client.get(f"/projects/{SLUG}/exports/{job_id.group(1)}/download")
    assert download.status_code == 200
    names = sorted(zipfile.ZipFile(io.BytesIO(download.content)).namelist())
    assert names == ["README.md", "export.json", "test.jsonl.gz", "train.jsonl.gz"]
    assert re.search(r"<dt>languages</dt><dd>th</dd>", page.text)
    assert re.search(r"<dt>gzip</dt><dd>true</dd>", page.text)
    assert re.search(r"<dt>rewrites</dt><dd>false</dd>", page.text)


@pytest.mark.parametrize(
    ("build", "slug", "offered", "absent"),
    [
        (
            _rubric_project,
            "ex-rubric",
            ["kto_desirable_at", "kto_undesirable_at"],
            ["ranking_pairs", "rewrites", "aggregation"],
        ),
        (_ranking_project, "ex-rank", ["ranking_pairs"], ["kto_desirable_at", "rewrites", "aggregation"]),
    ],
)
def test_options_follow_the_project_kind(
    client: TestClient,
    people: People,
    session: Session,
    runner: ExportJobRunner,
    build: Callable[[TestClient, People, dict[str, str]], None],
    slug: str,
    offered: list[str],
    absent: list[str],
) -> None:
    build(client, people, _staff(people))
    accounts.set_password(session, email=LEAD, password=PASSWORD)
    _log_in(client, LEAD)
    page = client.get(f"/projects/{slug}/exports")
    names = set(re.findall(r'name="([a-z_]+)"', page.text))
    assert set(offered) <= names
    assert not set(absent) & names
    kinds = re.findall(r'<option value="(\w+)"', page.text.split('name="kind"')[1].split("</select>")[0])
    assert ("rubric" in kinds) is (slug == "ex-rubric")


def test_starting_with_htmx_returns_the_panel_with_the_new_job(client: TestClient, csrf: str) -> None:
    answer = client.post(
        f"/projects/{SLUG}/exports", data={"kind": "dpo", "format": "parquet"}, headers=HTMX | {"X-CSRF-Token": csrf}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["vary"] == "HX-Request"
    assert answer.text.lstrip().startswith('<div id="exports-panel">')
    assert "<html" not in answer.text
    assert [state for _, state in _jobs(answer.text)] == ["done"]
    assert re.search(r'<option value="parquet" selected>', answer.text)


def test_a_bad_option_re_renders_the_form_with_422_at_that_field(client: TestClient, csrf: str) -> None:
    answer = client.post(
        f"/projects/{SLUG}/exports",
        data={"kind": "dpo", "test_size": "0.7", "validation_size": "0.5", "teams": "Nobody, Vendor North"},
        headers=HTMX | {"X-CSRF-Token": csrf},
    )
    assert answer.status_code == 422
    assert answer.text.lstrip().startswith('<div id="exports-panel">')
    assert re.search(r'id="field-test_size" value="0.7"[^>]*aria-invalid="true"', answer.text)
    assert 'id="error-test_size"' in answer.text
    assert 'value="Nobody, Vendor North"' in answer.text
    assert _jobs(answer.text) == []

    no_js = client.post(f"/projects/{SLUG}/exports", data={"csrf_token": csrf, "teams": "Nobody"})
    assert no_js.status_code == 422
    assert "<html" in no_js.text
    assert re.search(r'<p class="field-error" id="error-teams">[^<]*Nobody', no_js.text)

    typed = client.post(f"/projects/{SLUG}/exports", data={"csrf_token": csrf, "seed": "many", "min_agreement": "x"})
    assert typed.status_code == 422
    assert 'id="error-seed"' in typed.text
    assert 'id="error-min_agreement"' in typed.text


def test_the_jobs_table_polls_only_while_a_job_is_unfinished(
    client: TestClient, csrf: str, runner: ExportJobRunner
) -> None:
    waiting: list[Callable[[], None]] = []
    runner.launch = waiting.append
    client.post(f"/projects/{SLUG}/exports", data={"csrf_token": csrf, "kind": "dpo"})
    polled = client.get(f"/projects/{SLUG}/exports", headers=HTMX)
    assert polled.text.lstrip().startswith('<section id="jobs"')
    assert 'hx-trigger="every 2s"' in polled.text
    assert [state for _, state in _jobs(polled.text)] == ["queued"]
    assert "download-link" not in polled.text
    work = waiting.pop()
    work()
    finished = client.get(f"/projects/{SLUG}/exports", headers=HTMX)
    assert 'hx-trigger="every 2s"' not in finished.text
    assert [state for _, state in _jobs(finished.text)] == ["done"]
    assert "download-link" in finished.text


def test_the_dataset_card_is_rendered_through_the_sanitizer(client: TestClient, csrf: str) -> None:
    client.post(f"/projects/{SLUG}/exports", data={"csrf_token": csrf, "kind": "reward"})
    job_id = _jobs(client.get(f"/projects/{SLUG}/exports").text)[0][0]
    card = client.get(f"/projects/{SLUG}/exports/{job_id}/card")
    assert card.status_code == 200, card.text
    assert 'id="card-front-matter"' in card.text
    assert re.search(r'<article class="card markdown" id="card-body">\s*<h1>', card.text)
    assert "<script" not in card.text.split('id="card-body"')[1]


def test_annotators_get_403_on_the_page(client: TestClient, people: People, session: Session) -> None:
    _staff(people)
    _pairwise_project(client, people, people.headers(LEAD))
    accounts.set_password(session, email=ANNOTATORS[0], password=PASSWORD)
    _log_in(client, ANNOTATORS[0])
    page = client.get(f"/projects/{SLUG}/exports")
    assert page.status_code == 403
    assert 'data-code="lead_role_required"' in page.text
    assert client.get(f"/projects/{SLUG}/exports/1/download").status_code == 403


def test_leads_find_the_page_from_the_project_list_and_the_item_browser(client: TestClient, csrf: str) -> None:
    assert f'href="/projects/{SLUG}/exports" class="exports-link"' in client.get("/").text
    assert f'href="/projects/{SLUG}/exports" id="exports-link"' in client.get(f"/projects/{SLUG}/items").text


def test_the_role_of_a_lead_is_needed_even_for_a_known_job(client: TestClient, people: People) -> None:
    people.make("other-lead@example.org", Role.LEAD)
    missing = client.get(f"/api/v1/projects/{SLUG}/exports/99", headers=people.headers("other-lead@example.org"))
    assert missing.status_code == 404
