"""How a request's session ends: a GET's reads with COMMIT, anything that failed with ROLLBACK."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Connection

from preference_store.models import Role
from tests.conftest import People
from tests.databases import rollbacks_on


def _lead_with_project(client: TestClient, people: People) -> dict[str, str]:
    headers = people.headers(people.make("lead@example.org", Role.LEAD))
    created = client.post(
        "/api/v1/projects", json={"slug": "reads", "name": "Reads", "kind": "pairwise", "overlap": 1}, headers=headers
    )
    assert created.status_code == 201, created.text
    return headers


def test_reads_of_a_successful_get_end_with_a_commit(
    client: TestClient, people: People, connection: Connection
) -> None:
    """psycopg forgets a connection's prepared statements on every ROLLBACK, so a lead's pages and
    the API's reads must not end that way on the connections the annotation loop shares."""
    lead = _lead_with_project(client, people)
    with rollbacks_on(connection) as rollbacks:
        answers = [
            client.get(path, headers=lead).status_code
            for path in (
                "/api/v1/projects/reads",
                "/api/v1/projects/reads/guidelines",
                "/",
                "/projects/reads/items",
                "/projects/reads/quality/annotators",
            )
        ]
    assert answers == [200] * 5
    assert rollbacks == []


def test_a_request_that_fails_or_changes_state_leaves_what_it_did_uncommitted(
    client: TestClient, people: People, connection: Connection
) -> None:
    lead = _lead_with_project(client, people)
    with rollbacks_on(connection) as rollbacks:
        missing = client.get("/api/v1/projects/no-such-project", headers=lead)
    assert missing.status_code == 404
    assert rollbacks != []
    with rollbacks_on(connection) as rollbacks:
        refused = client.post("/api/v1/projects/reads/members", json={"emails": ["nobody@example.org"]}, headers=lead)
    assert refused.status_code == 422, refused.text
    assert rollbacks != []
