"""Oversized bodies get a 413 before they are read whole; bulk endpoints have the larger limit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from annotation_ui.asgi import create_app
from app.body_limit import BULK_PATHS
from app.settings import AnnotationSettings, Settings


@pytest.fixture
def small_limits(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """An app on the suite's migrated database, with small limits."""
    limited = settings.model_copy(update={"annotation": AnnotationSettings(max_request_kb=64, max_upload_mb=1)})
    with TestClient(create_app(limited)) as client:
        yield client


def test_a_declared_oversized_body_is_refused_before_authentication(small_limits: TestClient) -> None:
    answer = small_limits.post("/api/v1/assignments/1/judgment", content=b"x" * (65 * 1024))
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"
    assert "64 KB" in answer.json()["error"]["message"]


def test_a_chunked_body_is_counted_as_it_arrives(small_limits: TestClient) -> None:
    chunks = (b"y" * 8192 for _ in range(20))  # 160 KB with no Content-Length
    answer = small_limits.post("/login", content=chunks, headers={"content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("text/html")
    assert "larger than 64 KB" in answer.text


def test_bodies_under_the_limit_reach_the_route(small_limits: TestClient) -> None:
    answer = small_limits.post("/api/v1/assignments/1/judgment", json={"choice": "A"})
    assert answer.status_code == 401


def test_bulk_endpoints_take_the_upload_limit(small_limits: TestClient) -> None:
    body = b"[" + b" " * (512 * 1024) + b"]"
    assert small_limits.post("/api/v1/projects/demo/items", content=body).status_code == 401
    too_big = b"[" + b" " * (1024 * 1024 + 10) + b"]"
    assert small_limits.post("/api/v1/projects/demo/items", content=too_big).status_code == 413


@pytest.mark.parametrize(
    ("path", "bulk"),
    [
        ("/api/v1/projects/support-th/items", True),
        ("/api/v1/projects/support-th/verdicts", True),
        ("/api/v1/projects/support-th/gold", True),
        ("/projects/support-th/import", True),
        ("/api/v1/projects/support-th/items/abc/gold", False),
        ("/projects/support-th/import/token/cancel", False),
        ("/api/v1/assignments/3/judgment", False),
    ],
)
def test_which_paths_are_bulk(path: str, bulk: bool) -> None:
    assert bool(BULK_PATHS.match(path)) is bulk
