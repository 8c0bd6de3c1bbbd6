"""Schemathesis over the OpenAPI schema, through the ASGI app: no 5xx, answers match their schemas.

A bounded, deterministic run for CI (`bench/fuzz.py` runs the long one against a live server).
Each operation gets a few generated requests as a lead and as an annotator on a seeded project,
in an app on a database of its own that commits for real, as a server's does: export jobs run
(at once, in the request) with their own sessions, and whatever the app logs at ERROR, a job
failing after its 202 among them, fails the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotation_ui.asgi import create_app
from app.services.export_jobs import at_once
from app.settings import Settings
from preference_store.models import ExportJob, ExportJobState, Role
from tests.conftest import People
from tests.databases import migrated_database
from tests.security.world import LEAD, OWNER, SLUG
from tests.security.world import seed as seed_world

MAX_EXAMPLES = 4
START_EXPORT = "POST /api/v1/projects/{slug}/exports"
MORE_EXAMPLES = {START_EXPORT: 40}
"""Operations whose failures come after their answer (a job's), given a wider search."""
BUDGET_SECONDS = 60


@pytest.fixture
def committing_app(tmp_path: Path, settings: Settings) -> Iterator[tuple[FastAPI, TestClient]]:
    """An app on a fresh database of its own (no test transaction around it), its jobs run at once."""
    with migrated_database(tmp_path) as url:
        application = create_app(settings.model_copy(update={"database_url": url}))
        with TestClient(application) as client:
            application.state.export_jobs.launch = at_once
            yield application, client


def _fuzz(operation: schemathesis.APIOperation[Any, Any, Any, Any], headers: dict[str, str]) -> None:
    @seed(20261202)
    @settings(
        max_examples=MORE_EXAMPLES.get(operation.label, MAX_EXAMPLES),
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case: schemathesis.Case[Any]) -> None:
        if case.path_parameters and "slug" in case.path_parameters:
            case.path_parameters["slug"] = SLUG  # the seeded project, so requests get past the lookup
        response = case.call(headers=headers)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    check()


def test_the_api_never_fails_and_matches_its_schema(
    committing_app: tuple[FastAPI, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    app, client = committing_app
    # Closed inside the test: schemathesis ends the lifespan it starts (disposing the engine) before fixtures end.
    with app.state.context.sessions() as session:
        people = People(session)
        seed_world(client, session, people)
        callers = {"lead": people.headers(LEAD), "annotator": people.headers(OWNER)}
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        app.state.export_jobs.launch = at_once  # the runner of the app's lifespan that schemathesis has started
        started = time.monotonic()
        failures: list[str] = []
        operations: set[str] = set()
        for result in schema.get_all_operations():
            if isinstance(result, Err):  # a part of the schema that does not resolve
                raise result.err()
            operation = result.ok()
            operations.add(operation.label)
            for name, headers in callers.items():
                try:
                    _fuzz(operation, headers)
                except Exception as error:
                    failures.append(f"{operation.label} as {name}: {str(error)[:600]}")
        session.rollback()
        jobs = _export_jobs_by_state(session)
    assert len(operations) > 50
    assert START_EXPORT in operations
    assert failures == [], "\n\n".join(failures)
    assert _logged_at_error(caplog) == []
    assert jobs.keys() == {ExportJobState.DONE.value}, jobs
    assert jobs[ExportJobState.DONE.value] > 1, "the fuzz ran no export job of its own"
    assert time.monotonic() - started < BUDGET_SECONDS * 2


def _logged_at_error(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{record.name}: {record.getMessage()}" for record in caplog.records if record.levelno >= logging.ERROR]


def _export_jobs_by_state(session: Session) -> dict[str, int]:
    counted = session.execute(select(ExportJob.state, func.count()).group_by(ExportJob.state))
    return dict(counted.all())


def test_an_id_too_large_for_the_database_is_bad_input(client: TestClient, people: People) -> None:
    people.make(LEAD, Role.LEAD)
    too_large = client.get(f"/api/v1/judgments/{2**64}", headers=people.headers(LEAD))
    assert (too_large.status_code, too_large.json()["error"]["code"]) == (422, "value_out_of_range")
    # Past PostgreSQL's int4 but within SQLite's integers: refused or simply not found, never a 5xx.
    assert client.get(f"/api/v1/judgments/{2**40}", headers=people.headers(LEAD)).status_code in (404, 422)
