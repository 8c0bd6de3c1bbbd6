"""Call.run: inline on SQLite, to the threadpool when the writer lock is taken; hot_call's teardown."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import replace
from typing import Any

import pytest
from anyio import CapacityLimiter
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app import deps
from app.deps import AppContext, Call
from app.principal import Principal, command_line_principal
from app.services.accounts import TokenCache
from app.settings import Settings
from preference_store.engine import NOWAIT_SESSION_FLAG, WriterBusy
from tests.conftest import People


def test_busy_writer_falls_back_to_the_threadpool(app: FastAPI, session: Session) -> None:
    context = replace(app.state.context, inline_database=True)
    call = Call(session=session, principal=command_line_principal(), context=context)
    seen: list[tuple[str, bool]] = []
    loop_thread = threading.get_ident()

    def service() -> str:
        inline = threading.get_ident() == loop_thread
        seen.append(("inline" if inline else "threadpool", bool(session.info.get(NOWAIT_SESSION_FLAG))))
        if inline:
            raise WriterBusy("taken")
        return "done"

    assert asyncio.run(call.run(service)) == "done"
    assert seen == [("inline", True), ("threadpool", False)]


def test_network_databases_always_use_the_threadpool(app: FastAPI, session: Session) -> None:
    context = replace(app.state.context, inline_database=False)
    call = Call(session=session, principal=command_line_principal(), context=context)
    loop_thread = threading.get_ident()
    assert asyncio.run(call.run(lambda: threading.get_ident() != loop_thread)) is True


def test_database_work_runs_in_at_most_database_concurrency_threads_at_once(app: FastAPI, session: Session) -> None:
    context = replace(app.state.context, inline_database=False, database_limiter=CapacityLimiter(2))
    call = Call(session=session, principal=command_line_principal(), context=context)
    running, most = 0, 0
    lock = threading.Lock()

    def service() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    async def six_calls() -> None:
        await asyncio.gather(*(call.run(service) for _ in range(6)))

    started = time.perf_counter()
    asyncio.run(six_calls())
    assert most == 2
    assert time.perf_counter() - started >= 0.15  # three rounds of two


def test_the_default_concurrency_follows_the_cpus_this_process_may_use(settings: Settings) -> None:
    assert settings.resolved_database_concurrency() == 2 * len(os.sched_getaffinity(0)) + 2
    assert settings.model_copy(update={"database_concurrency": 3}).resolved_database_concurrency() == 3


def test_a_hot_call_refused_before_its_endpoint_leaves_no_transaction_open(
    app: FastAPI, client: TestClient, people: People
) -> None:
    opened: list[Session] = []
    factory = app.state.context.sessions

    def recording() -> Session:
        opened.append(factory())
        return opened[-1]

    app.state.context = replace(app.state.context, sessions=recording)
    annotator = people.make("hot@example.org")
    # An unknown token is refused first, whatever the body; a known one (read from the
    # database, not yet cached) reaches body validation, and its read is over by then.
    unknown = client.post(
        "/api/v1/assignments/1/judgment",
        json={"choice": "C"},
        headers=people.headers(annotator) | {"Authorization": "Bearer pst_unknown"},
    )
    assert unknown.status_code == 401
    invalid = client.post("/api/v1/assignments/1/judgment", json={"choice": "C"}, headers=people.headers(annotator))
    assert invalid.status_code == 422
    assert len(opened) == 2
    assert not any(session.in_transaction() for session in opened)


def test_the_caller_is_read_on_the_event_loop_on_sqlite_and_in_a_thread_otherwise(
    app: FastAPI, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread beside a busy event loop waits for the GIL again after each SQLite call it makes
    (docs/benchmarks.md, "Soak"); PostgreSQL's round trips must not block the loop."""
    email = people.make("reader@example.org")
    read_in: list[int] = []
    real_read = deps._principal_for_token

    def recording_read(*args: Any) -> Principal | None:
        read_in.append(threading.get_ident())
        return real_read(*args)

    monkeypatch.setattr(deps, "_principal_for_token", recording_read)
    authorization = (b"authorization", f"Bearer {people.tokens[email]}".encode())

    async def identify(context: AppContext) -> tuple[int, Principal | None]:
        request = Request({"type": "http", "method": "GET", "headers": [authorization]})
        return threading.get_ident(), await deps._identify(request, context.sessions(), context)

    for inline in (True, False):
        context = replace(app.state.context, inline_database=inline, token_cache=TokenCache(0))
        loop_thread, principal = asyncio.run(identify(context))
        assert principal is not None and principal.user.email == email
        assert (read_in[-1] == loop_thread) is inline
    assert len(read_in) == 2
