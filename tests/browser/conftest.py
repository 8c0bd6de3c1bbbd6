"""A real server on a committed database, and Debian's chromium driven by Playwright.

The server runs uvicorn in a thread for the whole session, on its own fresh database of
the run's backend (`PREFSTACK_TEST_BACKEND`). Each test seeds its own users and project
through the services, so tests share the server but never each other's data.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, Playwright, ViewportSize, sync_playwright
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from annotation_ui.asgi import create_app
from app import database
from app.principal import command_line_principal
from app.services import accounts, importing, projects
from app.settings import ExportSettings, Settings, UploadSettings
from preference_store.engine import build_engine, session_factory
from preference_store.models import Assignment, Judgment, Role
from tests.databases import fresh_database

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1366, "height": 768}
PASSWORD = "correct horse battery"
SERVER_START_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class Annotator:
    """A seeded annotator who can log in through the form."""

    id: int
    email: str
    password: str = PASSWORD


@dataclass(frozen=True, slots=True)
class LiveServer:
    """The running app: its address and a way to seed and read its database."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    def create_annotator(self, email: str) -> Annotator:
        """An annotator with a password, able to log in through the form."""
        with self.sessions() as session:
            user = accounts.create_user(
                session, email=email, name=email.split("@", maxsplit=1)[0], role=Role.ANNOTATOR, password=PASSWORD
            )
        return Annotator(id=user.id, email=user.email)

    def seed_pairwise(self, *, slug: str, annotator: str, items: list[dict[str, Any]], overlap: int = 1) -> Annotator:
        """A new annotator and a pairwise project holding `items` that they are a member of."""
        member = self.create_annotator(annotator)
        operator = command_line_principal()
        with self.sessions() as session:
            projects.create_project(session, principal=operator, slug=slug, name=f"Project {slug}", overlap=overlap)
            projects.add_members(session, principal=operator, slug=slug, emails=[member.email])
            importing.import_items(session, principal=operator, slug=slug, rows=list(enumerate(items, start=1)))
        return member

    def seed_project(
        self,
        *,
        slug: str,
        annotator: str,
        items: list[dict[str, Any]],
        kind: str = "pairwise",
        options: dict[str, Any] | None = None,
        guidelines: str = "",
        overlap: int = 1,
    ) -> Annotator:
        """A new annotator and a project of `kind` with `options` holding `items` that they are a member of."""
        member = self.create_annotator(annotator)
        operator = command_line_principal()
        with self.sessions() as session:
            projects.create_project(
                session,
                principal=operator,
                slug=slug,
                name=f"Project {slug}",
                kind=kind,
                overlap=overlap,
                guidelines=guidelines,
                options=options,
            )
            projects.add_members(session, principal=operator, slug=slug, emails=[member.email])
            importing.import_items(session, principal=operator, slug=slug, rows=list(enumerate(items, start=1)))
        return member

    def judgments_by(self, annotator_id: int) -> list[tuple[Judgment, Assignment]]:
        """The annotator's stored judgments with their assignments, oldest assignment first."""
        with self.sessions() as session:
            rows = session.execute(
                select(Judgment, Assignment)
                .join(Assignment, Assignment.id == Judgment.assignment_id)
                .where(Judgment.annotator_id == annotator_id)
                .order_by(Assignment.id)
            ).all()
            return [(judgment, assignment) for judgment, assignment in rows]


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with fresh_database(tmp_path_factory.mktemp("browser-db")) as url:
        engine = build_engine(url, pool_size=2)
        database.upgrade(engine)
        settings = Settings(
            environment="test",
            database_url=url,
            secret_key="browser-test-secret-key-0123456789abcdef",
            exports=ExportSettings(directory=tmp_path_factory.mktemp("browser-exports")),
            uploads=UploadSettings(directory=tmp_path_factory.mktemp("browser-uploads")),
        )
        application = create_app(settings)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="on")
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="uvicorn", daemon=True)
        thread.start()
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("the uvicorn test server did not start")
            time.sleep(0.02)
        try:
            yield LiveServer(url=f"http://127.0.0.1:{port}", engine=engine, sessions=session_factory(engine))
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            listener.close()
            engine.dispose()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass(slots=True)
class PageEvents:
    """What the page reported: uncaught script errors and dialogs."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture
def context(chromium: Browser, live_server: LiveServer) -> Iterator[BrowserContext]:
    """A fresh browser profile per test: no cookies or storage carried over."""
    context = chromium.new_context(base_url=live_server.url, viewport=VIEWPORT)
    context.set_default_timeout(5_000)
    yield context
    context.close()


@pytest.fixture
def page_events() -> PageEvents:
    return PageEvents()


@pytest.fixture
def page(context: BrowserContext, page_events: PageEvents) -> Page:
    page = context.new_page()
    page.on("pageerror", lambda error: page_events.errors.append(str(error)))

    def on_dialog(dialog: Dialog) -> None:
        page_events.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return page


def submit_login_form(page: Page, email: str, password: str) -> None:
    """Log in through the form, as a person would; returns once the answer has loaded."""
    page.goto("/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("#login-form button[type=submit]")


@pytest.fixture
def log_in() -> Callable[[Page, str, str], None]:
    return submit_login_form
