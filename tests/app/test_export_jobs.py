"""Export jobs: started through the API, run by the runner (at once, or in a real thread), downloaded as a zip."""

from __future__ import annotations

import io
import os
import socket
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app import database
from app.errors import InvalidInput
from app.principal import command_line_principal
from app.services import accounts, annotation, export_jobs, importing, projects
from app.services.export_jobs import INTERRUPTED, ExportJobRunner, ExportOptions, in_a_thread
from export.manifest import MANIFEST_NAME, verify
from preference_store import export_jobs as job_store
from preference_store.base import utcnow
from preference_store.engine import build_engine, session_factory
from preference_store.models import ExportJob, Role
from tests.app.test_exporting import ANNOTATORS, LEAD, _pairwise_project, _staff
from tests.conftest import People, native_item
from tests.databases import fresh_database

Headers = dict[str, str]
SLUG = "ex-pair"


@pytest.fixture
def lead(client: TestClient, people: People) -> Headers:
    headers = _staff(people)
    _pairwise_project(client, people, headers)
    return headers


def _start(client: TestClient, lead: Headers, **options: Any) -> dict[str, Any]:
    started = client.post(f"/api/v1/projects/{SLUG}/exports", json=options, headers=lead)
    assert started.status_code == 202, started.text
    return dict(started.json())


def _zip(client: TestClient, lead: Headers, job_id: int) -> zipfile.ZipFile:
    download = client.get(f"/api/v1/projects/{SLUG}/exports/{job_id}/download", headers=lead)
    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == "application/zip"
    assert f'filename="{SLUG}-' in download.headers["content-disposition"]
    return zipfile.ZipFile(io.BytesIO(download.content))


@pytest.mark.parametrize(("fmt", "data_files"), [("jsonl", ["test.jsonl", "train.jsonl"]),
                                                 ("parquet", ["test.parquet", "train.parquet"])])  # fmt: skip
def test_a_job_runs_to_done_and_its_zip_holds_card_manifest_and_splits(
    client: TestClient, runner: ExportJobRunner, lead: Headers, fmt: str, data_files: list[str], tmp_path: Path
) -> None:
    started = _start(client, lead, kind="dpo", format=fmt, test_size=0.3, seed=3, provenance=True)
    assert started["kind"] == "dpo"
    assert started["parameters"]["test_size"] == 0.3
    job = client.get(f"/api/v1/projects/{SLUG}/exports/{started['id']}", headers=lead).json()
    assert job["state"] == "done", job
    assert job["items_read"] == 8
    assert set(job["split_rows"]) == {"train", "test"}
    assert job["rows"] == sum(job["split_rows"].values()) == 7
    assert len(job["content_hash"]) == 64
    assert job["download_url"] == f"/api/v1/projects/{SLUG}/exports/{job['id']}/download"

    written = runner.directory / SLUG / f"{job['id']}-dpo"
    assert sorted(path.name for path in written.iterdir()) == sorted(["README.md", "export.json", *data_files])
    archive = _zip(client, lead, job["id"])
    assert sorted(archive.namelist()) == sorted(["README.md", "export.json", *data_files])
    stored = {info.filename: info.compress_type for info in archive.infolist()}
    assert stored["README.md"] == zipfile.ZIP_DEFLATED
    assert stored[data_files[0]] == (zipfile.ZIP_STORED if fmt == "parquet" else zipfile.ZIP_DEFLATED)
    unpacked = tmp_path / "unpacked"
    archive.extractall(unpacked)
    assert not verify(unpacked).problems
    manifest = orjson.loads((unpacked / MANIFEST_NAME).read_bytes())
    assert manifest["content_sha256"] == job["content_hash"]
    if fmt == "jsonl":
        rows = [orjson.loads(line) for name in data_files for line in archive.read(name).splitlines()]
        assert len(rows) == 7
        assert {"prompt", "chosen", "rejected", "external_id", "agreement"} <= set(rows[0])

    listed = client.get(f"/api/v1/projects/{SLUG}/exports", headers=lead).json()
    assert [entry["id"] for entry in listed] == [job["id"]]


def test_download_is_409_until_the_job_is_done(client: TestClient, runner: ExportJobRunner, lead: Headers) -> None:
    waiting: list[Callable[[], None]] = []
    runner.launch = waiting.append
    started = _start(client, lead, kind="kto")
    assert started["state"] == "queued"
    assert started["download_url"] is None
    refused = client.get(f"/api/v1/projects/{SLUG}/exports/{started['id']}/download", headers=lead)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "export_not_ready"
    assert refused.json()["error"]["field"] == "job_id"
    (work,) = waiting
    work()
    archive = _zip(client, lead, started["id"])
    rows = [orjson.loads(line) for line in archive.read("train.jsonl").splitlines()]
    assert rows
    assert set(rows[0]) == {"prompt", "completion", "label"}


def test_a_failed_job_records_its_error(client: TestClient, runner: ExportJobRunner, lead: Headers) -> None:
    waiting: list[Callable[[], None]] = []
    runner.launch = waiting.append
    started = _start(client, lead, kind="dpo")
    taken = runner.directory / SLUG / f"{started['id']}-dpo"
    taken.mkdir(parents=True)
    (taken / "someone-else.txt").write_text("not ours", encoding="utf-8")
    waiting.pop()()
    job = client.get(f"/api/v1/projects/{SLUG}/exports/{started['id']}", headers=lead).json()
    assert job["state"] == "failed"
    assert job["error"].startswith("out: ")
    assert "already exists" in job["error"]
    assert f"<exports>/{SLUG}/{started['id']}-dpo" in job["error"]
    assert str(runner.directory) not in job["error"]
    assert job["finished_at"] is not None
    assert (taken / "someone-else.txt").read_text(encoding="utf-8") == "not ours"
    refused = client.get(f"/api/v1/projects/{SLUG}/exports/{started['id']}/download", headers=lead)
    assert refused.status_code == 409


def test_an_unexpected_error_fails_the_job_with_its_type(
    client: TestClient, runner: ExportJobRunner, lead: Headers
) -> None:
    runner.directory.parent.mkdir(parents=True, exist_ok=True)
    runner.directory.write_text("a file where the exports directory should be", encoding="utf-8")
    started = _start(client, lead, kind="dpo")
    job = client.get(f"/api/v1/projects/{SLUG}/exports/{started['id']}", headers=lead).json()
    assert job["state"] == "failed"
    assert job["error"].startswith("NotADirectoryError: ")
    assert str(runner.directory) not in job["error"]


def _unfinished(session: Session, *, worker: str, heartbeat_age: timedelta) -> int:
    project = projects.create_project(session, principal=command_line_principal(), slug=f"gone-{os.urandom(3).hex()}",
                                      name="Gone")  # fmt: skip
    job_id = job_store.insert_job(
        session, project_id=project.id, requested_by_id=None, kind="dpo", parameters={}, worker=worker, at=utcnow()
    )
    job_store.start_job(session, job_id=job_id, output_path="gone/1-dpo", at=utcnow() - heartbeat_age)
    session.commit()
    return job_id


def test_jobs_of_a_dead_server_are_marked_failed_at_start_up(app: FastAPI, session: Session) -> None:
    host = socket.gethostname()
    same_pid_earlier_life = _unfinished(session, worker=f"{host}:{os.getpid()}:old", heartbeat_age=timedelta(0))
    dead_pid = _unfinished(session, worker=f"{host}:999999999:x", heartbeat_age=timedelta(0))
    silent_elsewhere = _unfinished(session, worker="other-host:12:x", heartbeat_age=timedelta(hours=1))
    busy_elsewhere = _unfinished(session, worker="other-host:12:x", heartbeat_age=timedelta(seconds=5))
    with TestClient(app):
        pass
    session.expire_all()
    states = dict(session.execute(select(ExportJob.id, ExportJob.state)).all())
    errors = dict(session.execute(select(ExportJob.id, ExportJob.error)).all())
    for job_id in (same_pid_earlier_life, dead_pid, silent_elsewhere):
        assert states[job_id] == "failed"
        assert errors[job_id] == INTERRUPTED
    assert states[busy_elsewhere] == "running"


def test_annotators_may_not_export(client: TestClient, runner: ExportJobRunner, lead: Headers, people: People) -> None:
    annotator = people.headers(ANNOTATORS[0])
    for response in (
        client.post(f"/api/v1/projects/{SLUG}/exports", json={"kind": "dpo"}, headers=annotator),
        client.get(f"/api/v1/projects/{SLUG}/exports", headers=annotator),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "lead_role_required"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"kind": "everything"}, "kind"),
        ({"test_size": 1.5}, "test_size"),
        ({"test_size": 0.6, "validation_size": 0.5}, "test_size"),
        ({"format": "parquet", "gzip": True}, "gzip"),
        ({"min_agreement": 2}, "min_agreement"),
        ({"kind": "rubric"}, "kind"),
        ({"teams": ["Nobody"]}, "team"),
        ({"guidelines_versions": [1, 15_771_264_155]}, "guidelines_version"),
        ({"guidelines_versions": [0]}, "guidelines_version"),
        ({"until": "31/01/2026"}, "until"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_a_bad_option_is_refused_naming_its_field(
    client: TestClient, runner: ExportJobRunner, lead: Headers, options: dict[str, Any], field: str
) -> None:
    refused = client.post(f"/api/v1/projects/{SLUG}/exports", json=options, headers=lead)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == field
    assert client.get(f"/api/v1/projects/{SLUG}/exports", headers=lead).json() == []


def test_parse_options_names_every_bad_field() -> None:
    with pytest.raises(InvalidInput) as raised:
        export_jobs.parse_options({"test_size": "lots", "seed": "x"})
    assert raised.value.field == "test_size"
    assert [problem.field for problem in raised.value.problems] == ["test_size", "seed"]


def test_a_stored_request_rebuilds_to_the_same_parameters() -> None:
    options = ExportOptions(
        kind="reward", format="parquet", test_size=0.2, validation_size=0.1, seed=7, min_judgments=2,
        ties="drop", ranking_pairs="best_vs_rest", margin=False, languages=["th"], since="2026-01-01",
        until="2026-01-31", guidelines_versions=[2],
    )  # fmt: skip
    parameters = options.to_request().parameters()
    assert export_jobs.request_from_parameters(parameters).parameters() == parameters
    assert parameters["judged_until"] == "2026-02-01T00:00:00+00:00"


@pytest.fixture
def committed_engine(tmp_path: Path) -> Iterator[Engine]:
    with fresh_database(tmp_path) as url:
        engine = build_engine(url, pool_size=4)
        database.upgrade(engine)
        yield engine
        engine.dispose()


def test_a_job_in_a_real_thread_reports_progress_and_finishes(committed_engine: Engine, tmp_path: Path) -> None:
    sessions = session_factory(committed_engine)
    operator = command_line_principal()
    with sessions() as session:
        projects.create_project(session, principal=operator, slug="threaded", name="Threaded", overlap=1)
        importing.import_items(
            session, principal=operator, slug="threaded", rows=[(n, native_item(f"t{n}", a=f"a{n}")) for n in range(12)]
        )
        accounts.create_user(session, email="t-ann@example.org", name="t", role=Role.ANNOTATOR, password=None)
        accounts.create_user(session, email=LEAD, name="lead", role=Role.LEAD, password=None)
        projects.add_members(session, principal=operator, slug="threaded", emails=["t-ann@example.org"])
        token = accounts.create_api_token(session, email="t-ann@example.org").token
        lead_token = accounts.create_api_token(session, email=LEAD).token
    cache = accounts.TokenCache(0)
    with sessions() as session:
        annotator = accounts.principal_for_api_token(session, token=token, cache=cache)
        lead = accounts.principal_for_api_token(session, token=lead_token, cache=cache)
        assert annotator is not None and lead is not None
        while (task := annotation.next_task(session, principal=annotator, slug="threaded")) is not None:
            annotation.submit_pairwise(session, principal=annotator, assignment_id=task.assignment_id, choice="A")

    progress_seen: list[int] = []
    runner = ExportJobRunner(
        sessions=sessions, directory=tmp_path / "exports", prefstack_version="test", launch=in_a_thread,
        progress_every=5,
    )  # fmt: skip
    with sessions() as session:
        job = runner.start(session, principal=lead, slug="threaded", options=ExportOptions(kind="dpo"))
    deadline = time.monotonic() + 60
    while True:
        with sessions() as session:
            seen = export_jobs.get_job(session, principal=lead, slug="threaded", job_id=job.id)
        progress_seen.append(seen.items_read)
        if not seen.is_active or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert seen.state == "done", seen.error
    assert seen.items_read == 12
    assert seen.split_rows == {"train": 12}
    assert progress_seen == sorted(progress_seen)
    with sessions() as session:
        files = export_jobs.job_files(
            session, principal=lead, slug="threaded", job_id=job.id, directory=runner.directory
        )
    names = zipfile.ZipFile(io.BytesIO(b"".join(export_jobs.zip_stream(files.directory)))).namelist()
    assert sorted(names) == ["README.md", "export.json", "train.jsonl"]
