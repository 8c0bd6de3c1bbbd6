"""The import page over HTTP: upload, preview with row errors, import or cancel; limits, owners and refusals."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import datasets
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.services.import_uploads import FORM_OVERHEAD_BYTES
from app.settings import Settings
from preference_store.models import Item, Role
from tests.conftest import People, native_item

SLUG = "imp-page"
LEAD = "imp-lead@example.org"
OTHER_LEAD = "imp-other@example.org"
ANNOTATOR = "imp-ann@example.org"
PASSWORD = "lead password 123"
HTMX = {"HX-Request": "true"}
TOKEN_URL = re.compile(rf"/projects/{SLUG}/import/([A-Za-z0-9_-]+)")


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


def _jsonl(*records: Any) -> bytes:
    return b"".join(
        (record if isinstance(record, bytes) else json.dumps(record).encode()) + b"\n" for record in records
    )


@pytest.fixture
def csrf(client: TestClient, people: People) -> str:
    people.make(LEAD, Role.LEAD, password=PASSWORD)
    people.make(OTHER_LEAD, Role.LEAD, password=PASSWORD)
    people.make(ANNOTATOR, Role.ANNOTATOR, password=PASSWORD)
    lead = people.headers(LEAD)
    created = client.post("/api/v1/projects", json={"slug": SLUG, "name": "Imports", "overlap": 1}, headers=lead)
    assert created.status_code == 201, created.text
    members = client.post(f"/api/v1/projects/{SLUG}/members", json={"emails": [ANNOTATOR]}, headers=lead)
    assert members.status_code == 200, members.text
    imported = client.post(f"/api/v1/projects/{SLUG}/items", json=[native_item("old-1")], headers=lead)
    assert imported.status_code == 200, imported.text
    return _log_in(client, LEAD)


def _items(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Item)) or 0


def _uploads(settings: Settings) -> list[Path]:
    directory = settings.uploads.directory
    assert directory is not None
    return sorted(directory.iterdir()) if directory.exists() else []


MIXED = _jsonl(
    native_item("new-1"),
    native_item("old-1"),
    {"external_id": "bad-1", "prompt": "No responses here"},
    b"{not json",
    native_item("new-2", prompt="Second new prompt"),
)


def _upload(
    client: TestClient,
    csrf: str,
    content: bytes = MIXED,
    *,
    name: str = "batch.jsonl",
    fmt: str = "auto",
    on_error: str = "fail",
    headers: dict[str, str] | None = None,
) -> Any:
    return client.post(
        f"/projects/{SLUG}/import",
        data={"csrf_token": csrf, "format": fmt, "on_error": on_error},
        files={"file": (name, content, "application/octet-stream")},
        headers=headers,
        follow_redirects=False,
    )


def _token(client: TestClient, csrf: str, content: bytes = MIXED, **options: Any) -> str:
    answer = _upload(client, csrf, content, **options)
    assert answer.status_code == 303, answer.text
    match = TOKEN_URL.fullmatch(answer.headers["location"])
    assert match is not None
    return match.group(1)


def test_the_form_offers_every_format_and_both_modes(client: TestClient, csrf: str) -> None:
    page = client.get(f"/projects/{SLUG}/import")
    assert page.status_code == 200, page.text
    formats = re.findall(r'<option value="([^"]+)"', page.text.split('id="field-format"')[1].split("</select>")[0])
    assert formats == [
        "auto", "jsonl", "json", "csv", "parquet", "hf-dataset",
        "native", "openai", "hh-rlhf", "ultrafeedback", "label-studio",
    ]  # fmt: skip
    modes = re.findall(r'<option value="([^"]+)"', page.text.split('id="field-on_error"')[1].split("</select>")[0])
    assert modes == ["fail", "skip"]
    assert 'enctype="multipart/form-data"' in page.text
    assert 'href="/projects/imp-page/import"' in client.get("/").text


def test_upload_previews_counts_items_and_row_errors_without_writing(
    client: TestClient, csrf: str, session: Session, settings: Settings
) -> None:
    before = _items(session)
    answer = _upload(client, csrf, headers=HTMX)
    assert answer.status_code == 200, answer.text
    assert answer.text.lstrip().startswith('<div id="import-panel">')
    token = TOKEN_URL.fullmatch(answer.headers["HX-Push-Url"])
    assert token is not None
    assert '<code id="detected-format">jsonl:native</code>' in answer.text
    assert '<dd id="count-valid">2</dd>' in answer.text
    assert '<dd id="count-unchanged">1</dd>' in answer.text
    assert re.search(r'<dd id="count-invalid" class="bad">2</dd>', answer.text)
    shown = re.findall(r'<tr class="preview-item" data-external-id="([^"]+)">', answer.text)
    assert shown == ["new-1", "old-1", "new-2"]
    errors = re.findall(r'<tr class="row-error" data-line="(\d+)" data-field="([^"]*)">', answer.text)
    assert ("3", "responses") in errors
    assert any(line == "4" for line, _ in errors)
    assert _items(session) == before
    assert [folder.name for folder in _uploads(settings)] == [token.group(1)]
    rejects = client.get(f"/projects/{SLUG}/import/{token.group(1)}/rejects.jsonl")
    assert rejects.status_code == 200
    assert [json.loads(line)["line"] for line in rejects.text.splitlines()] == [3, 4]


def test_without_javascript_the_upload_redirects_to_its_preview(client: TestClient, csrf: str) -> None:
    token = _token(client, csrf)
    page = client.get(f"/projects/{SLUG}/import/{token}")
    assert page.status_code == 200
    assert 'id="import-form"' in page.text
    assert '<dd id="count-valid">2</dd>' in page.text


def test_fail_mode_refuses_bad_rows_then_skip_imports_the_good_ones(
    client: TestClient, csrf: str, session: Session, settings: Settings
) -> None:
    token = _token(client, csrf)
    before = _items(session)
    refused = client.post(f"/projects/{SLUG}/import/{token}", data={"csrf_token": csrf, "on_error": "fail"})
    assert refused.status_code == 422, refused.text
    assert 'id="error-on_error"' in refused.text
    assert 'aria-invalid="true"' in refused.text
    assert _items(session) == before
    done = client.post(
        f"/projects/{SLUG}/import/{token}", data={"csrf_token": csrf, "on_error": "skip"}, follow_redirects=False
    )
    assert done.status_code == 303, done.text
    result = client.get(done.headers["location"])
    assert '<dd id="result-created">2</dd>' in result.text
    assert '<dd id="result-unchanged">1</dd>' in result.text
    assert '<dd id="result-rejected">2</dd>' in result.text
    assert f'href="/projects/{SLUG}/items" id="browse-items"' in result.text
    assert _items(session) == before + 2
    folder = settings.uploads.directory / token  # type: ignore[operator]
    assert sorted(path.name for path in folder.iterdir()) == ["rejects.jsonl", "upload.json"]
    again = client.post(f"/projects/{SLUG}/import/{token}", data={"csrf_token": csrf, "on_error": "skip"})
    assert again.status_code == 409
    items = client.get(f"/projects/{SLUG}/items")
    assert "new-2" in items.text


def test_a_clean_file_imports_with_htmx(client: TestClient, csrf: str, session: Session) -> None:
    before = _items(session)
    token = _token(client, csrf, _jsonl(native_item("c-1"), native_item("c-2")), name="clean.jsonl.gz")
    answer = client.post(
        f"/projects/{SLUG}/import/{token}", data={"csrf_token": csrf, "on_error": "fail"}, headers=HTMX
    )
    assert answer.status_code == 200, answer.text
    assert answer.text.lstrip().startswith('<div id="import-panel">')
    assert '<dd id="result-created">2</dd>' in answer.text
    assert _items(session) == before + 2


def test_cancel_deletes_the_upload(client: TestClient, csrf: str, settings: Settings) -> None:
    token = _token(client, csrf)
    assert len(_uploads(settings)) == 1
    cancelled = client.post(
        f"/projects/{SLUG}/import/{token}/cancel", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert cancelled.status_code == 303
    assert cancelled.headers["location"] == f"/projects/{SLUG}/import"
    assert _uploads(settings) == []
    assert client.get(f"/projects/{SLUG}/import/{token}").status_code == 404


def test_an_expired_upload_is_deleted(client: TestClient, csrf: str, settings: Settings) -> None:
    first, second = _token(client, csrf), _token(client, csrf)
    for token in (first, second):
        meta = settings.uploads.directory / token / "upload.json"  # type: ignore[operator]
        data = json.loads(meta.read_text())
        data["expires_at"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
        meta.write_text(json.dumps(data))
    assert client.get(f"/projects/{SLUG}/import/{first}").status_code == 404
    assert [folder.name for folder in _uploads(settings)] == [second]
    third = _token(client, csrf)  # a new upload sweeps the expired ones
    assert [folder.name for folder in _uploads(settings)] == [third]


def test_annotators_are_refused(client: TestClient, csrf: str, settings: Settings) -> None:
    client.post("/logout", data={"csrf_token": csrf})
    annotator_csrf = _log_in(client, ANNOTATOR)
    assert client.get(f"/projects/{SLUG}/import").status_code == 403
    assert _upload(client, annotator_csrf).status_code == 403
    assert _uploads(settings) == []


def test_csrf_is_required(client: TestClient, csrf: str, session: Session, settings: Settings) -> None:
    refused = _upload(client, "forged")
    assert refused.status_code == 403
    assert _uploads(settings) == []
    token = _token(client, csrf)
    before = _items(session)
    imported = client.post(f"/projects/{SLUG}/import/{token}", data={"on_error": "skip"})
    assert imported.status_code == 403
    cancelled = client.post(f"/projects/{SLUG}/import/{token}/cancel", data={"csrf_token": "forged"})
    assert cancelled.status_code == 403
    assert _items(session) == before
    assert len(_uploads(settings)) == 1


@pytest.fixture
def one_megabyte(settings: Settings) -> None:
    """Uploads limited to 1 MB (set before the app is built, as its body-size limit reads it then)."""
    settings.annotation.max_upload_mb = 1


def test_an_oversized_file_is_refused_with_413(
    one_megabyte: None, client: TestClient, csrf: str, settings: Settings
) -> None:
    megabyte = 1024 * 1024
    whole = _upload(client, csrf, b"x" * (2 * megabyte))  # refused by its Content-Length, unread
    assert whole.status_code == 413
    assert "1 MB" in whole.text
    just_over = _upload(client, csrf, b"x" * (megabyte - FORM_OVERHEAD_BYTES + 1), headers=HTMX)  # while copying
    assert just_over.status_code == 413
    assert 'id="error-file"' in just_over.text
    assert _uploads(settings) == []


def test_another_leads_token_is_refused(client: TestClient, csrf: str, settings: Settings) -> None:
    token = _token(client, csrf)
    client.post("/logout", data={"csrf_token": csrf})
    other = _log_in(client, OTHER_LEAD)
    assert client.get(f"/projects/{SLUG}/import/{token}").status_code in (403, 404)
    assert client.get(f"/projects/{SLUG}/import/{token}/rejects.jsonl").status_code in (403, 404)
    refused = client.post(f"/projects/{SLUG}/import/{token}", data={"csrf_token": other, "on_error": "skip"})
    assert refused.status_code in (403, 404)
    cancel = client.post(f"/projects/{SLUG}/import/{token}/cancel", data={"csrf_token": other})
    assert cancel.status_code in (403, 404)
    assert [folder.name for folder in _uploads(settings)] == [token]
    assert client.get(f"/projects/{SLUG}/import/..%2F..%2Fetc").status_code == 404


def test_hostile_content_in_the_preview_is_escaped(client: TestClient, csrf: str) -> None:
    hostile = native_item('x"><img src=x onerror=alert(1)>', prompt="<script>alert('p')</script> hello")
    unknown = {**native_item("u-1"), "<b>bold</b>": 1}
    answer = _upload(client, csrf, _jsonl(hostile, unknown), name="<i>evil</i>.jsonl", headers=HTMX)
    assert answer.status_code == 200, answer.text
    assert "<script>alert" not in answer.text
    assert "<img src=x" not in answer.text
    assert "<b>bold</b>" not in answer.text
    assert "<i>evil</i>" not in answer.text
    assert "&lt;script&gt;alert(&#39;p&#39;)&lt;/script&gt; hello" in answer.text
    assert "&lt;b&gt;bold&lt;/b&gt;" in answer.text


def test_format_errors_are_shown_at_the_field(client: TestClient, csrf: str, settings: Settings) -> None:
    unknown = _upload(client, csrf, b"a,b\n", name="data.txt", headers=HTMX)
    assert unknown.status_code == 422
    assert 'id="error-format"' in unknown.text
    empty = _upload(client, csrf, b"", name="empty.jsonl", headers=HTMX)
    assert empty.status_code == 422
    assert 'id="error-file"' in empty.text
    no_file = client.post(f"/projects/{SLUG}/import", data={"csrf_token": csrf, "format": "auto"})
    assert no_file.status_code == 422
    assert 'id="error-file"' in no_file.text
    overridden = _upload(client, csrf, _jsonl(native_item("t-1")), name="data.txt", fmt="jsonl")
    assert overridden.status_code == 303, overridden.text
    assert len(_uploads(settings)) == 1


def test_a_zipped_save_to_disk_directory_is_previewed(client: TestClient, csrf: str, tmp_path: Path) -> None:
    rows = [native_item(f"z-{n}") for n in range(3)]
    table = datasets.Dataset.from_list(rows)
    table.save_to_disk(str(tmp_path / "ds"))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted((tmp_path / "ds").rglob("*")):
            bundle.write(path, f"ds/{path.relative_to(tmp_path / 'ds')}")
    answer = _upload(client, csrf, archive.getvalue(), name="ds.zip", headers=HTMX)
    assert answer.status_code == 200, answer.text
    assert "hf-dataset" in answer.text
    assert re.findall(r'<tr class="preview-item" data-external-id="([^"]+)">', answer.text) == ["z-0", "z-1", "z-2"]
