"""Call.run: inline on SQLite, to the threadpool when the writer lock is taken; hot_call's teardown."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.deps import Call
from app.principal import command_line_principal
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
