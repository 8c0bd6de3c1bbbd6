"""Fixtures: one database backend per run, schema from Alembic, each test rolled back."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from annotation_ui.asgi import create_app
from app import database
from app.principal import Principal, command_line_principal
from app.services import accounts
from app.services.export_jobs import ExportJobRunner, at_once
from app.settings import ExportSettings, Settings, UploadSettings
from preference_store.engine import build_engine
from preference_store.models import Role
from tests.databases import backend, fresh_database


def pytest_report_header() -> str:
    return f"prefstack database backend: {backend()}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = build_engine(database_url, pool_size=5)
    database.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    with engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        if transaction.is_active:
            transaction.rollback()


@pytest.fixture
def sessions(connection: Connection) -> sessionmaker[Session]:
    """Sessions whose commits are savepoints inside the test's transaction."""
    return sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False, autoflush=False
    )


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session:
        yield session


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        secret_key="test-secret-key-for-the-suite-0123456789",
        exports=ExportSettings(directory=tmp_path / "exports"),
        uploads=UploadSettings(directory=tmp_path / "uploads"),
    )


@pytest.fixture
def app(settings: Settings, sessions: sessionmaker[Session]) -> FastAPI:
    application = create_app(settings)
    context = application.state.context
    application.state.context = replace(context, sessions=sessions)
    return application


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture
def runner(app: FastAPI, client: TestClient) -> ExportJobRunner:
    """The app's export job runner (started with the client), made to run each job at once in the request."""
    started: ExportJobRunner = app.state.export_jobs
    started.launch = at_once
    return started


@pytest.fixture
def operator() -> Principal:
    return command_line_principal()


class People:
    """Users made for a test, with API tokens and auth headers."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.tokens: dict[str, str] = {}

    def make(self, email: str, role: Role = Role.ANNOTATOR, *, password: str | None = None, **kwargs: object) -> str:
        accounts.create_user(
            self._session,
            email=email,
            name=email.split("@", maxsplit=1)[0],
            role=role,
            password=password,
            **kwargs,  # type: ignore[arg-type]
        )
        self.tokens[email] = accounts.create_api_token(self._session, email=email).token
        return email

    def headers(self, email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[email]}"}


@pytest.fixture
def people(session: Session) -> People:
    return People(session)


def native_item(
    external_id: str, *, prompt: str = "Is this comment allowed?", a: str = "Yes.", b: str = "No."
) -> dict[str, object]:
    return {
        "external_id": external_id,
        "prompt": prompt,
        "responses": [{"model": "m-a", "content": a}, {"model": "m-b", "content": b}],
        "metadata": {"language": "en", "market": "US", "category": "spam"},
    }
