"""Call.run: inline on SQLite, to the threadpool when the writer lock is taken."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

from fastapi import FastAPI
from sqlalchemy.orm import Session

from app.deps import Call
from app.principal import command_line_principal
from preference_store.engine import NOWAIT_SESSION_FLAG, WriterBusy


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
